//! Stripe's error responses: `{"error": {"type", "code", "message", "param", ...}}`
//! with the status codes Stripe uses.

use axum::{
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: Option<&'static str>,
    pub decline_code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
    /// `Stripe-Should-Retry` header, as Stripe sends on some failures.
    pub should_retry: Option<bool>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            code: None,
            decline_code: None,
            message: message.into(),
            param: None,
            should_retry: None,
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    pub fn unknown_parameter(param: &str) -> Self {
        Self {
            code: Some("parameter_unknown"),
            param: Some(param.to_owned()),
            ..Self::invalid_request(format!("Received unknown parameter: {param}"))
        }
    }

    pub fn missing_parameter(param: &str) -> Self {
        Self {
            code: Some("parameter_missing"),
            param: Some(param.to_owned()),
            ..Self::invalid_request(format!("Missing required param: {param}."))
        }
    }

    pub fn invalid_integer(param: &str, raw: &str) -> Self {
        Self {
            code: Some("parameter_invalid_integer"),
            param: Some(param.to_owned()),
            ..Self::invalid_request(format!("Invalid integer: {raw}"))
        }
    }

    /// A `Stripe-Version` other than the one this emulator speaks.
    pub fn unsupported_version(asked: &str, spoken: &str) -> Self {
        Self::invalid_request(format!(
            "Stripe-Version `{asked}` is not served here: this emulator answers in API version {spoken} only. Send that version, or none."
        ))
    }

    pub fn invalid_parameter(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.to_owned()),
            ..Self::invalid_request(message)
        }
    }

    /// 404 for the object a URL names (`param` is `id`), 400 for one a
    /// parameter names (`line_items[0][price]=price_missing`), as Stripe answers.
    pub fn resource_missing(kind: &str, id: &str, param: &str) -> Self {
        Self {
            status: if param == "id" {
                StatusCode::NOT_FOUND
            } else {
                StatusCode::BAD_REQUEST
            },
            code: Some("resource_missing"),
            param: Some(param.to_owned()),
            ..Self::invalid_request(format!("No such {kind}: '{id}'"))
        }
    }

    pub fn not_found_path(path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            ..Self::invalid_request(format!("Unrecognized request URL (path: {path}). This emulator implements a subset of Stripe's API; see its README."))
        }
    }

    pub fn authentication(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_request_error", message)
    }

    pub fn idempotency_mismatch(key: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "idempotency_error",
            format!("Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '{key}' if you meant to execute a different request."),
        )
    }

    /// Stripe's answer to a request whose idempotency key another request is
    /// still using: 409, to be retried.
    pub fn key_in_use() -> Self {
        Self {
            should_retry: Some(true),
            ..Self::new(
                StatusCode::CONFLICT,
                "idempotency_error",
                "There is currently another in-progress request using this idempotency key (probably a concurrent request). Try again later.",
            )
        }
    }

    pub fn card_declined(message: &str, decline_code: &'static str) -> Self {
        Self {
            code: Some("card_declined"),
            decline_code: Some(decline_code),
            ..Self::new(StatusCode::PAYMENT_REQUIRED, "card_error", message)
        }
    }

    pub fn injected(status: StatusCode) -> Self {
        let retry = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
        Self {
            code: (status == StatusCode::TOO_MANY_REQUESTS).then_some("rate_limit"),
            should_retry: Some(retry),
            ..Self::new(
                status,
                if status == StatusCode::TOO_MANY_REQUESTS {
                    "invalid_request_error"
                } else {
                    "api_error"
                },
                "Injected fault (stripe-emulator test control).",
            )
        }
    }

    /// The body with the request's log link, as Stripe's errors carry it.
    pub fn body_for(&self, request_id: &str) -> Value {
        let mut body = self.body();
        body["error"]["request_log_url"] = json!(format!(
            "https://dashboard.stripe.com/test/logs/{request_id}"
        ));
        body
    }

    pub fn body(&self) -> Value {
        let mut error = json!({
            "type": self.kind,
            "message": self.message,
        });
        if let Some(code) = self.code {
            error["code"] = json!(code);
            error["doc_url"] = json!(format!(
                "https://stripe.com/docs/error-codes/{}",
                code.replace('_', "-")
            ));
        }
        if let Some(decline_code) = self.decline_code {
            error["decline_code"] = json!(decline_code);
        }
        if let Some(param) = &self.param {
            error["param"] = json!(param);
        }
        json!({ "error": error })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(retry) = self.should_retry {
            response.headers_mut().insert(
                "stripe-should-retry",
                HeaderValue::from_static(if retry { "true" } else { "false" }),
            );
        }
        response
    }
}
