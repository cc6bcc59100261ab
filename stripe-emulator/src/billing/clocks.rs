//! Test clocks: customers attached to a clock live at its frozen time; advancing
//! the clock runs their billing up to the new time.

use serde_json::{json, Value};

use super::subscriptions;
use crate::{
    context::{new_id, Ctx},
    error::ApiError,
    form, objects, params, str_of,
};

pub fn create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &["frozen_time", "name", "expand.[]"])?;
    let frozen_time = params::integer(p, "frozen_time", "frozen_time")?
        .ok_or_else(|| ApiError::missing_parameter("frozen_time"))?;
    let clock = objects::test_clock(
        &new_id("clock"),
        ctx.now(),
        frozen_time,
        params::string(p, "name"),
    );
    ctx.store.insert(clock.clone());
    ctx.emit("test_helpers.test_clock.created", &clock, None);
    Ok(clock)
}

/// Advances synchronously: the response already shows `ready` (Stripe goes
/// through `advancing` first; callers that poll for `ready` work the same).
pub fn advance(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(p, &["frozen_time", "expand.[]"])?;
    let clock = ctx.fetch(id, "test_helpers.test_clock", "test_clock")?;
    let to = params::integer(p, "frozen_time", "frozen_time")?
        .ok_or_else(|| ApiError::missing_parameter("frozen_time"))?;
    if to < clock["frozen_time"].as_i64().unwrap_or(0) {
        return Err(ApiError::invalid_parameter(
            "frozen_time",
            "The test clock cannot be moved backwards in time.",
        ));
    }
    ctx.update(id, None, |clock| {
        clock["frozen_time"] = json!(to);
        clock["status"] = json!("ready");
    })?;
    let customers: Vec<String> = ctx
        .store
        .list("customer")
        .filter(|c| c["test_clock"] == id)
        .filter_map(|c| str_of(c, "id").map(str::to_owned))
        .collect();
    subscriptions::catch_up(ctx, &customers)?;
    let clock = ctx.fetch(id, "test_helpers.test_clock", "test_clock")?;
    ctx.emit("test_helpers.test_clock.ready", &clock, None);
    Ok(clock)
}

pub fn delete(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, ApiError> {
    ctx.fetch(id, "test_helpers.test_clock", "test_clock")?;
    ctx.store.remove(id);
    Ok(json!({"id": id, "object": "test_helpers.test_clock", "deleted": true}))
}

/// The emulator-only time control: moves the account clock (customers without a
/// test clock) forward and runs their billing.
pub fn advance_account(ctx: &mut Ctx<'_>, seconds: i64) -> Result<(), ApiError> {
    ctx.store.time_offset += seconds.max(0);
    let customers: Vec<String> = ctx
        .store
        .list("customer")
        .filter(|c| c["test_clock"].is_null())
        .filter_map(|c| str_of(c, "id").map(str::to_owned))
        .collect();
    subscriptions::catch_up(ctx, &customers)?;
    super::checkout::expire_due(ctx)
}
