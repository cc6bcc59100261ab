//! Account settings `doctor` inspects: webhook endpoints and portal
//! configurations. Read as plain JSON (these resource crates are not compiled in
//! just for a checklist), through the same async-stripe client and credentials.

use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod};

use super::{Bounded, GatewayError, StripeGateway};

impl StripeGateway {
    async fn list_json(
        &self,
        path: &'static str,
        operation: &'static str,
    ) -> Result<Vec<Value>, GatewayError> {
        let page: miniserde::json::Value = RequestBuilder::new(StripeMethod::Get, path)
            .query(&std::collections::BTreeMap::from([("limit", 100)]))
            .customize()
            .send(self.client())
            .bounded(self, operation)
            .await?;
        let page: Value = serde_json::from_str(&miniserde::json::to_string(&page))
            .map_err(|err| GatewayError::Config(err.to_string()))?;
        Ok(page["data"].as_array().cloned().unwrap_or_default())
    }

    pub async fn webhook_endpoints(&self) -> Result<Vec<Value>, GatewayError> {
        self.list_json("/webhook_endpoints", "list webhook endpoints")
            .await
    }

    pub async fn portal_configurations(&self) -> Result<Vec<Value>, GatewayError> {
        self.list_json(
            "/billing_portal/configurations",
            "list portal configurations",
        )
        .await
    }
}
