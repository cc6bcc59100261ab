//! Typed reads of decoded form parameters, with Stripe's error messages.

use serde_json::{Map, Value};

use crate::error::ApiError;

pub fn string<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

pub fn required<'a>(params: &'a Value, key: &str) -> Result<&'a str, ApiError> {
    string(params, key)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| ApiError::missing_parameter(key))
}

pub fn integer(params: &Value, key: &str, display: &str) -> Result<Option<i64>, ApiError> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::String(raw)) => raw
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid_integer(display, raw)),
        Some(other) => Err(ApiError::invalid_integer(display, &other.to_string())),
    }
}

pub fn boolean(params: &Value, key: &str) -> Result<Option<bool>, ApiError> {
    match string(params, key) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(raw) => Err(ApiError::invalid_parameter(
            key,
            format!("Invalid boolean: {raw}"),
        )),
    }
}

/// `metadata[k]=v` pairs; on update an empty value deletes the key, and
/// `metadata=` clears all of it (Stripe's rules).
pub fn merge_metadata(current: &Value, params: &Value) -> Value {
    match params.get("metadata") {
        None => current.clone(),
        Some(Value::String(s)) if s.is_empty() => Value::Object(Map::new()),
        Some(Value::Object(updates)) => {
            let mut merged = current.as_object().cloned().unwrap_or_default();
            for (key, value) in updates {
                match value.as_str() {
                    Some("") => {
                        merged.remove(key);
                    }
                    _ => {
                        merged.insert(key.clone(), value.clone());
                    }
                }
            }
            Value::Object(merged)
        }
        Some(_) => current.clone(),
    }
}

pub fn metadata(params: &Value) -> Value {
    merge_metadata(&Value::Object(Map::new()), params)
}

pub fn expand(params: &Value) -> Vec<String> {
    match params.get("expand") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}
