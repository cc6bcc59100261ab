//! `/healthz`: is this instance able to serve? Load balancers poll it, so it is
//! cheap (one trivial query) and says nothing about configuration or secrets:
//! only a digest of the price directory it holds, which `doctor` compares with
//! Stripe's to find a server still using replaced prices.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use super::AppState;

#[derive(Serialize)]
pub struct Health {
    status: &'static str,
    database: &'static str,
    prices: String,
}

pub async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let prices = state.billing.price_directory().fingerprint();
    match crate::db::ping(state.db()).await {
        Ok(_) => (
            StatusCode::OK,
            Json(Health {
                status: "ok",
                database: "ok",
                prices,
            }),
        ),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                    database: "unreachable",
                    prices,
                }),
            )
        }
    }
}
