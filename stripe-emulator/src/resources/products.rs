//! `/v1/products` and `/v1/prices`: the catalog, with lookup keys.

use serde_json::{json, Value};

use crate::{
    context::{list_filtered, new_id, paginate, Ctx},
    error::ApiError,
    form, objects, params, str_of,
};

pub fn create_product(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "id",
            "name",
            "description",
            "metadata",
            "metadata.*",
            "active",
            "expand.[]",
            "tax_code",
            "unit_label",
            "url",
        ],
    )?;
    let name = params::required(p, "name")?;
    let id = match params::string(p, "id") {
        Some(id) if ctx.store.get(id).is_some() => {
            return Err(ApiError::invalid_parameter(
                "id",
                format!("Product already exists: {id}"),
            ));
        }
        Some(id) => id.to_owned(),
        None => new_id("prod"),
    };
    let product = objects::product(
        &id,
        ctx.now(),
        name,
        params::string(p, "description"),
        params::metadata(p),
        params::boolean(p, "active")?.unwrap_or(true),
    );
    ctx.store.insert(product.clone());
    ctx.emit("product.created", &product, None);
    Ok(product)
}

pub fn update_product(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "name",
            "description",
            "metadata",
            "metadata.*",
            "active",
            "default_price",
            "expand.[]",
        ],
    )?;
    ctx.fetch(id, "product", "id")?;
    if let Some(price) = params::string(p, "default_price") {
        ctx.fetch(price, "price", "default_price")?;
    }
    let active = params::boolean(p, "active")?;
    let now = ctx.now();
    ctx.update(id, Some("product.updated"), |product| {
        if let Some(name) = params::string(p, "name") {
            product["name"] = json!(name);
        }
        if let Some(description) = params::string(p, "description") {
            product["description"] = if description.is_empty() {
                Value::Null
            } else {
                json!(description)
            };
        }
        if let Some(active) = active {
            product["active"] = json!(active);
        }
        if let Some(price) = params::string(p, "default_price") {
            product["default_price"] = json!(price);
        }
        product["metadata"] = params::merge_metadata(&product["metadata"], p);
        product["updated"] = json!(now);
    })
}

pub fn list_products(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    let mut q = p.clone();
    let active = params::boolean(p, "active")?;
    if let Some(map) = q.as_object_mut() {
        map.remove("active");
    }
    let mut list = list_filtered(ctx, &q, "product", "/v1/products", &[])?;
    if let (Some(active), Some(data)) = (active, list["data"].as_array_mut()) {
        data.retain(|product| product["active"] == active);
    }
    Ok(list)
}

// ---------------------------------------------------------------- prices

fn take_lookup_key(
    ctx: &mut Ctx<'_>,
    lookup_key: &str,
    transfer: bool,
    except: Option<&str>,
) -> Result<(), ApiError> {
    let holder = ctx
        .store
        .list("price")
        .find(|price| {
            price["lookup_key"] == lookup_key
                && Some(price["id"].as_str().unwrap_or_default()) != except
        })
        .and_then(|price| str_of(price, "id").map(str::to_owned));
    match holder {
        None => Ok(()),
        Some(holder) if transfer => {
            ctx.update(&holder, Some("price.updated"), |price| price["lookup_key"] = Value::Null)?;
            Ok(())
        }
        Some(holder) => Err(ApiError::invalid_parameter(
            "lookup_key",
            format!("A price ({holder}) already uses that lookup key. Pass transfer_lookup_key=true to move it."),
        )),
    }
}

pub fn create_price(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "currency",
            "unit_amount",
            "product",
            "product_data.name",
            "product_data.metadata.*",
            "recurring.interval",
            "recurring.interval_count",
            "lookup_key",
            "transfer_lookup_key",
            "nickname",
            "metadata",
            "metadata.*",
            "active",
            "expand.[]",
            "tax_behavior",
            "billing_scheme",
        ],
    )?;
    let currency = params::required(p, "currency")?.to_lowercase();
    let unit_amount = params::integer(p, "unit_amount", "unit_amount")?
        .ok_or_else(|| ApiError::missing_parameter("unit_amount"))?;
    if unit_amount < 0 {
        return Err(ApiError::invalid_parameter(
            "unit_amount",
            "This value must be greater than or equal to 0.",
        ));
    }
    let product = match (
        params::string(p, "product"),
        p["product_data"]["name"].as_str(),
    ) {
        (Some(product), _) => {
            ctx.fetch(product, "product", "product")?;
            product.to_owned()
        }
        (None, Some(name)) => {
            let id = new_id("prod");
            let product = objects::product(
                &id,
                ctx.now(),
                name,
                None,
                p["product_data"]["metadata"]
                    .clone()
                    .as_object()
                    .map_or(json!({}), |m| json!(m)),
                true,
            );
            ctx.store.insert(product.clone());
            ctx.emit("product.created", &product, None);
            id
        }
        (None, None) => return Err(ApiError::missing_parameter("product")),
    };
    let interval = match p["recurring"]["interval"].as_str() {
        None => None,
        Some(interval @ ("day" | "week" | "month" | "year")) => {
            let count = params::integer(&p["recurring"], "interval_count", "recurring[interval_count]")?.unwrap_or(1);
            Some((interval, count))
        }
        Some(other) => return Err(ApiError::invalid_parameter("recurring[interval]", format!("Invalid recurring[interval]: must be one of day, week, month, or year (got {other})"))),
    };
    let lookup_key = params::string(p, "lookup_key");
    if let Some(key) = lookup_key {
        take_lookup_key(
            ctx,
            key,
            params::boolean(p, "transfer_lookup_key")?.unwrap_or(false),
            None,
        )?;
    }
    let id = new_id("price");
    let price = objects::price(objects::PriceSpec {
        id: &id,
        now: ctx.now(),
        product: &product,
        currency: &currency,
        unit_amount,
        interval,
        lookup_key,
        nickname: params::string(p, "nickname"),
        metadata: params::metadata(p),
        active: params::boolean(p, "active")?.unwrap_or(true),
    });
    ctx.store.insert(price.clone());
    ctx.emit("price.created", &price, None);
    Ok(price)
}

pub fn update_price(ctx: &mut Ctx<'_>, id: &str, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "active",
            "lookup_key",
            "transfer_lookup_key",
            "nickname",
            "metadata",
            "metadata.*",
            "expand.[]",
            "tax_behavior",
        ],
    )?;
    ctx.fetch(id, "price", "id")?;
    let lookup_key = params::string(p, "lookup_key");
    if let Some(key) = lookup_key.filter(|key| !key.is_empty()) {
        take_lookup_key(
            ctx,
            key,
            params::boolean(p, "transfer_lookup_key")?.unwrap_or(false),
            Some(id),
        )?;
    }
    let active = params::boolean(p, "active")?;
    ctx.update(id, Some("price.updated"), |price| {
        if let Some(active) = active {
            price["active"] = json!(active);
        }
        if let Some(key) = lookup_key {
            price["lookup_key"] = if key.is_empty() {
                Value::Null
            } else {
                json!(key)
            };
        }
        if let Some(nickname) = params::string(p, "nickname") {
            price["nickname"] = json!(nickname);
        }
        price["metadata"] = params::merge_metadata(&price["metadata"], p);
    })
}

pub fn list_prices(ctx: &Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "limit",
            "starting_after",
            "ending_before",
            "expand.[]",
            "active",
            "product",
            "type",
            "currency",
            "lookup_keys.[]",
        ],
    )?;
    let active = params::boolean(p, "active")?;
    let lookup_keys: Option<Vec<&str>> = p["lookup_keys"]
        .as_array()
        .map(|keys| keys.iter().filter_map(Value::as_str).collect());
    let items: Vec<Value> = ctx
        .store
        .list("price")
        .filter(|price| active.is_none_or(|a| price["active"] == a))
        .filter(|price| params::string(p, "product").is_none_or(|want| price["product"] == want))
        .filter(|price| params::string(p, "type").is_none_or(|want| price["type"] == want))
        .filter(|price| params::string(p, "currency").is_none_or(|want| price["currency"] == want))
        .filter(|price| {
            lookup_keys.as_ref().is_none_or(|keys| {
                price["lookup_key"]
                    .as_str()
                    .is_some_and(|key| keys.contains(&key))
            })
        })
        .cloned()
        .collect();
    paginate(items, p, "/v1/prices")
}
