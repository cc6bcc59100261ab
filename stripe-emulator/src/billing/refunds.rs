//! Refunds of a charge (by charge or payment intent): `charge.refunded`.

use serde_json::{json, Value};

use crate::{
    context::{new_id, Ctx},
    error::ApiError,
    form, params,
};

/// Test control: the card holder disputes a charge (`charge.dispute.created`).
pub fn dispute(ctx: &mut Ctx<'_>, charge_id: &str, reason: &str) -> Result<Value, ApiError> {
    let charge = ctx.fetch(charge_id, "charge", "charge")?;
    let now = ctx.now();
    let dispute = crate::objects::build(
        "dispute",
        json!({
            "id": new_id("dp"), "created": now, "amount": charge["amount"], "currency": charge["currency"],
            "charge": charge_id, "payment_intent": charge["payment_intent"], "reason": reason,
            "status": "needs_response", "metadata": {}, "balance_transactions": [], "is_charge_refundable": false,
            "evidence_details": {"due_by": now + 7 * 86_400, "has_evidence": false, "past_due": false, "submission_count": 0, "enhanced_eligibility": {}},
        }),
    );
    ctx.store.insert(dispute.clone());
    ctx.update(charge_id, None, |charge| charge["disputed"] = json!(true))?;
    ctx.emit("charge.dispute.created", &dispute, None);
    Ok(dispute)
}

/// Test control: the bank decides a dispute (`won` or `lost`):
/// `charge.dispute.closed`, as Stripe sends when the outcome is known.
pub fn close_dispute(ctx: &mut Ctx<'_>, dispute_id: &str, status: &str) -> Result<Value, ApiError> {
    if !matches!(status, "won" | "lost") {
        return Err(ApiError::invalid_request(format!(
            "Invalid status: must be one of won, lost (got {status})"
        )));
    }
    let dispute = ctx.update(dispute_id, Some("dispute"), |dispute| {
        dispute["status"] = json!(status);
    })?;
    if status == "won" {
        if let Some(charge) = dispute["charge"].as_str() {
            ctx.update(charge, None, |charge| charge["disputed"] = json!(false))?;
        }
    }
    ctx.emit("charge.dispute.closed", &dispute, None);
    Ok(dispute)
}

pub fn create(ctx: &mut Ctx<'_>, p: &Value) -> Result<Value, ApiError> {
    form::check_allowed(
        p,
        &[
            "charge",
            "payment_intent",
            "amount",
            "reason",
            "metadata",
            "metadata.*",
            "expand.[]",
        ],
    )?;
    let charge_id = match (
        params::string(p, "charge"),
        params::string(p, "payment_intent"),
    ) {
        (Some(charge), _) => charge.to_owned(),
        (None, Some(pi)) => ctx.fetch(pi, "payment_intent", "payment_intent")?["latest_charge"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::invalid_parameter(
                    "payment_intent",
                    "This PaymentIntent has no successful charge to refund.",
                )
            })?,
        (None, None) => return Err(ApiError::missing_parameter("charge")),
    };
    let charge = ctx.fetch(&charge_id, "charge", "charge")?;
    let refundable = charge["amount_captured"].as_i64().unwrap_or(0)
        - charge["amount_refunded"].as_i64().unwrap_or(0);
    let amount = params::integer(p, "amount", "amount")?.unwrap_or(refundable);
    if amount <= 0 || amount > refundable {
        return Err(ApiError::invalid_parameter("amount", format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({refundable})")));
    }
    let now = ctx.now();
    let refund = json!({
        "id": new_id("re"), "object": "refund", "amount": amount, "charge": charge_id, "created": now,
        "currency": charge["currency"], "metadata": params::metadata(p), "payment_intent": charge["payment_intent"],
        "reason": params::string(p, "reason"), "status": "succeeded", "balance_transaction": null,
        "receipt_number": null, "source_transfer_reversal": null, "transfer_reversal": null,
    });
    ctx.store.insert(refund.clone());
    let total = charge["amount_refunded"].as_i64().unwrap_or(0) + amount;
    let full = total >= charge["amount_captured"].as_i64().unwrap_or(0);
    ctx.update(&charge_id, Some("charge.refunded"), |charge| {
        charge["amount_refunded"] = json!(total);
        charge["refunded"] = json!(full);
    })?;
    ctx.emit("refund.created", &refund, None);
    Ok(refund)
}
