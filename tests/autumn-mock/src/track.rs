//! Track body validation (pure: no state), with Autumn's status codes and error codes.

use serde::{Serialize, Serializer};
use serde_json::{Map, Number, Value};

/// Allowed clock skew for `timestamp` "not in the future".
pub const FUTURE_SLACK_MS: u64 = 1_000;

/// An API error: status, Autumn code, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Autumn error code.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

impl ApiError {
    /// 400 `invalid_inputs`.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            code: "invalid_inputs",
            message: message.into(),
        }
    }

    /// Any status/code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// Prefix the message with a batch item index.
    pub fn at_index(mut self, i: usize) -> ApiError {
        self.message = format!("items[{i}]: {}", self.message);
        self
    }
}

/// What a track targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `feature_id`.
    Feature(String),
    /// `event_name`.
    Event(String),
}

/// `overage_behavior`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Overage {
    /// Cap the deduction at the remaining balance.
    Cap,
    /// Allow overage (the mock's default anyway).
    Overflow,
}

/// A validated track body.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInput {
    /// `customer_id`.
    pub customer_id: String,
    /// `feature_id` or `event_name`.
    pub target: Target,
    /// `value` as f64 (default 1).
    pub value: f64,
    /// `value` as sent (echoed back).
    pub value_raw: Number,
    /// `properties`.
    pub properties: Option<Map<String, Value>>,
    /// `timestamp` (Unix ms).
    pub timestamp: Option<u64>,
    /// `idempotency_key`.
    pub idempotency_key: Option<String>,
    /// `entity_id`.
    pub entity_id: Option<String>,
    /// `overage_behavior`.
    pub overage: Option<Overage>,
    /// `async`.
    pub is_async: bool,
}

/// Read a body the way Autumn does: a body that is not JSON is read as `{}`.
pub fn parse_body(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::Object(Map::new()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn opt_string(m: &mut Map<String, Value>, field: &str) -> Result<Option<String>, ApiError> {
    match m.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => {
            Err(ApiError::invalid(format!("{field}: must not be empty")))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ApiError::invalid(format!(
            "{field}: expected string, received {}",
            type_name(&other)
        ))),
    }
}

/// Validate one track body. `now_ms` is the server clock (Unix ms).
pub fn validate(body: Value, now_ms: u64) -> Result<TrackInput, ApiError> {
    let mut m = match body {
        Value::Object(m) => m,
        other => {
            return Err(ApiError::invalid(format!(
                "Invalid request body: expected object, received {}",
                type_name(&other)
            )))
        }
    };
    let customer_id = match m.remove("customer_id") {
        None => return Err(ApiError::invalid("customer_id: Required")),
        Some(Value::String(s)) if s.is_empty() => {
            return Err(ApiError::invalid("customer_id: must not be empty"))
        }
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "customer_id: expected string, received {}",
                type_name(&other)
            )))
        }
    };
    let feature_id = opt_string(&mut m, "feature_id")?;
    let event_name = opt_string(&mut m, "event_name")?;
    let target = match (feature_id, event_name) {
        (Some(f), None) => Target::Feature(f),
        (None, Some(e)) => Target::Event(e),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "Provide either feature_id or event_name, not both",
            ))
        }
        (None, None) => {
            return Err(ApiError::invalid(
                "Either feature_id or event_name is required",
            ))
        }
    };
    let (value, value_raw) = match m.remove("value") {
        None => (1.0, Number::from(1)),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) if f.is_finite() => (f, n),
            _ => return Err(ApiError::invalid("value: must be a finite number")),
        },
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "value: expected number, received {}",
                type_name(&other)
            )))
        }
    };
    let properties = match m.remove("properties") {
        None => None,
        Some(Value::Object(p)) => Some(p),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "properties: expected object, received {}",
                type_name(&other)
            )))
        }
    };
    let timestamp = match m.remove("timestamp") {
        None => None,
        Some(Value::Number(n)) => {
            if n.is_f64() {
                return Err(ApiError::invalid(
                    "timestamp: expected an integer (Unix milliseconds), received a float",
                ));
            }
            match n.as_u64() {
                Some(t) if t > 0 => {
                    if t > now_ms.saturating_add(FUTURE_SLACK_MS) {
                        return Err(ApiError::invalid(format!(
                            "timestamp: must not be in the future ({t} is {} ms ahead of the server clock {now_ms})",
                            t - now_ms
                        )));
                    }
                    Some(t)
                }
                _ => {
                    return Err(ApiError::invalid(
                        "timestamp: must be a positive Unix timestamp in milliseconds",
                    ))
                }
            }
        }
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "timestamp: expected integer (Unix milliseconds), received {}",
                type_name(&other)
            )))
        }
    };
    let idempotency_key = opt_string(&mut m, "idempotency_key")?;
    let entity_id = opt_string(&mut m, "entity_id")?;
    let overage = match m.remove("overage_behavior") {
        None => None,
        Some(Value::String(s)) if s == "cap" => Some(Overage::Cap),
        Some(Value::String(s)) if s == "overflow" => Some(Overage::Overflow),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "overage_behavior: expected \"cap\" or \"overflow\", received {other}"
            )))
        }
    };
    let is_async = match m.remove("async") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "async: expected boolean, received {}",
                type_name(&other)
            )))
        }
    };
    Ok(TrackInput {
        customer_id,
        target,
        value,
        value_raw,
        properties,
        timestamp,
        idempotency_key,
        entity_id,
        overage,
        is_async,
    })
}

/// Round away float noise (0.1 + 0.2) and print integral numbers without `.0`.
pub fn serialize_num<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    let r = (x * 1e9).round() / 1e9;
    let r = if r.is_finite() { r } else { *x };
    if r.fract() == 0.0 && r.abs() < 9.0e15 {
        s.serialize_i64(r as i64)
    } else {
        s.serialize_f64(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000_000;

    fn err(v: Value) -> String {
        match validate(v, NOW) {
            Err(e) => {
                assert_eq!(e.status, 400);
                e.message
            }
            Ok(_) => String::from("<ok>"),
        }
    }

    #[test]
    fn rules() {
        assert!(err(json!({})).contains("customer_id"));
        assert!(err(json!([])).contains("expected object"));
        assert!(err(json!({"customer_id": ""})).contains("empty"));
        assert!(err(json!({"customer_id": "c"})).contains("required"));
        assert!(
            err(json!({"customer_id": "c", "feature_id": "a", "event_name": "b"}))
                .contains("not both")
        );
        assert!(
            err(json!({"customer_id": "c", "feature_id": "a", "value": "1"})).contains("value")
        );
        assert!(
            err(json!({"customer_id": "c", "feature_id": "a", "timestamp": 1.5})).contains("float")
        );
        assert!(
            err(json!({"customer_id": "c", "feature_id": "a", "timestamp": NOW + 5000}))
                .contains("future")
        );
        let ok = validate(
            json!({"customer_id": "c", "feature_id": "a", "timestamp": NOW + 500, "x": 1}),
            NOW,
        );
        assert!(ok.is_ok());
    }
}
