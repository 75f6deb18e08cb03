//! `track()` input: validation into an [`Event`], and the event's wire body.
//!
//! Everything a caller can get wrong is caught here, before anything is sent, with a message a
//! person understands and the name of the field at fault.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::TrackError;
use crate::value::{check_json, write_json, write_str, Value, MAX_SAFE_INTEGER};

/// Longest id (customer, feature, event name, entity) and idempotency key accepted, in characters.
pub const MAX_ID_CHARS: usize = 256;

/// Default cap on `properties`, serialized (64 KiB): events far larger are lost downstream.
pub const DEFAULT_MAX_PROPERTIES_BYTES: usize = 64 * 1024;

/// Timestamps below this (Sep 2001 in milliseconds) are almost surely seconds by mistake.
const MIN_PLAUSIBLE_MS: f64 = 1_000_000_000_000.0;

/// Timestamps above this (year 5138 in milliseconds) are almost surely microseconds by mistake.
const MAX_PLAUSIBLE_MS: f64 = 100_000_000_000_000.0;

/// How far ahead of the clock a timestamp may be before it is refused outright. Autumn refuses
/// any timestamp in the future; a small lead (a device clock running fast) is corrected against
/// the server's clock when sent, a day or more is a mistake in the caller's arithmetic.
pub const MAX_FUTURE_MS: f64 = 86_400_000.0;

/// What validation needs from its surroundings, injected so `cargo test` runs the very code
/// that ships: the clock, a number formatter, and fresh keys.
pub trait Host {
    /// Unix ms now, on the server's clock as far as it is known (bounds `timestamp`).
    fn now_ms(&self) -> f64;
    /// Writes a number that is not a safe integer as JSON (JavaScript's `String(n)` in wasm).
    fn format_num(&self, n: f64, out: &mut String);
    /// A fresh idempotency key; called (once) only when the caller gave none.
    fn new_key(&mut self) -> String;
}

/// A validated event, ready to be written to the wire or to the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Autumn customer id (non-empty).
    pub customer_id: String,
    /// Metered feature id; exactly one of this and `event_name` is set.
    pub feature_id: Option<String>,
    /// Event name mapped to features server-side.
    pub event_name: Option<String>,
    /// Entity (seat, workspace…) within the customer.
    pub entity_id: Option<String>,
    /// Units used; negative credits back. Finite. Default 1.
    pub value: f64,
    /// `value` as JSON when it is not a safe integer (written by the host's formatter).
    pub value_text: Option<String>,
    /// `properties` already serialized as a JSON object.
    pub properties: Option<String>,
    /// Generated once (UUID v7) unless the caller gave one; reused on every retry and replay.
    pub idempotency_key: String,
    /// Unix milliseconds the usage happened at, if the caller said.
    pub timestamp: Option<u64>,
    /// `"cap"` or `"overflow"`.
    pub overage_behavior: Option<&'static str>,
    /// Ask the server to record asynchronously (answers 202).
    pub r#async: Option<bool>,
}

/// The accepted fields: JavaScript name and REST (snake_case) alias.
const FIELDS: [(&str, Option<&str>); 10] = [
    ("customerId", Some("customer_id")),
    ("featureId", Some("feature_id")),
    ("eventName", Some("event_name")),
    ("entityId", Some("entity_id")),
    ("value", None),
    ("properties", None),
    ("idempotencyKey", Some("idempotency_key")),
    ("timestamp", None),
    ("overageBehavior", Some("overage_behavior")),
    ("async", None),
];

/// Reads the option or input object `input`: rejects unknown keys (with a suggestion when one is
/// close) and both spellings of one field, and returns each accepted field's value in
/// `names` order.
pub(crate) fn take_fields<'a, const N: usize>(
    input: &'a Value,
    names: &[(&str, Option<&str>); N],
    what: &str,
    err: fn(&str, String) -> TrackError,
) -> Result<[Option<&'a Value>; N], TrackError> {
    let Value::Obj(members) = input else {
        let mut m = String::from(what);
        m.push_str(" must be an object, got ");
        m.push_str(input.type_name());
        return Err(err(what, m));
    };
    let mut out: [Option<&Value>; N] = [None; N];
    let mut seen_as: [Option<&str>; N] = [None; N];
    for (key, v) in members {
        if matches!(v, Value::Undefined) {
            continue;
        }
        let pos = names
            .iter()
            .position(|(camel, snake)| key == camel || Some(key.as_str()) == *snake);
        let Some(i) = pos else {
            let mut m = String::from("unknown field `");
            m.push_str(key);
            m.push('`');
            if let Some(s) = suggest(key, names) {
                m.push_str(": did you mean `");
                m.push_str(s);
                m.push_str("`?");
            } else {
                m.push_str(" (a typo must not pass silently)");
            }
            return Err(err(key, m));
        };
        let (Some(slot), Some(seen)) = (out.get_mut(i), seen_as.get_mut(i)) else {
            continue;
        };
        if let Some(prev) = seen {
            let camel = names.get(i).map_or("", |n| n.0);
            let mut m = String::from("give `");
            m.push_str(prev);
            m.push_str("` or `");
            m.push_str(key);
            m.push_str("`, not both");
            return Err(err(camel, m));
        }
        *seen = Some(key);
        *slot = Some(v);
    }
    Ok(out)
}

/// The accepted name closest to `key`: the same letters ignoring case and `_`, or one edit
/// away (two for names of six letters or more). ASCII only, which every field name is.
fn suggest<'n>(key: &str, names: &[(&'n str, Option<&'n str>)]) -> Option<&'n str> {
    let norm = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|c| *c != b'_')
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let k = norm(key);
    names.iter().map(|(camel, _)| *camel).find(|camel| {
        let d = edit_distance(&k, &norm(camel));
        d <= 1 || (k.len() >= 6 && d <= 2)
    })
}

/// Levenshtein distance, small inputs only.
fn edit_distance(a: &[u8], b: &[u8]) -> usize {
    if a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = alloc::vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        if let Some(c0) = cur.first_mut() {
            *c0 = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        core::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(usize::MAX)
}

fn input_err(field: &str, m: String) -> TrackError {
    TrackError::input(field, m)
}

/// `parts` joined (a loop: `concat()` brings alloc's generic join, ~0.4 KB of wasm).
pub(crate) fn msg(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        s.push_str(p);
    }
    s
}

/// A non-empty string of at most [`MAX_ID_CHARS`] characters.
pub(crate) fn id_field(
    name: &str,
    v: Option<&Value>,
    required: bool,
    err: fn(&str, String) -> TrackError,
) -> Result<Option<String>, TrackError> {
    match v {
        None if required => Err(err(name, msg(&["`", name, "` is required"]))),
        None => Ok(None),
        Some(Value::Str(s)) if s.is_empty() => {
            Err(err(name, msg(&["`", name, "` must not be empty"])))
        }
        Some(Value::Str(s)) if crate::value::char_len(s) > MAX_ID_CHARS => Err(err(
            name,
            msg(&["`", name, "` is longer than 256 characters"]),
        )),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(Value::Bad(b)) => Err(err(name, msg(&["`", name, "` ", b.describe()]))),
        Some(other) => Err(err(
            name,
            msg(&["`", name, "` must be a string, got ", other.type_name()]),
        )),
    }
}

/// Validates one `track()` input. The host's `new_key` is called (once) only when the caller
/// gave no idempotency key.
pub fn parse_input(
    input: &Value,
    max_properties_bytes: usize,
    host: &mut dyn Host,
) -> Result<Event, TrackError> {
    let [customer, feature, event_name, entity, value, props, key, ts, overage, asyn] =
        take_fields(input, &FIELDS, "input", input_err)?;

    let customer_id = id_field("customerId", customer, true, input_err)?.unwrap_or_default();
    let feature_id = id_field("featureId", feature, false, input_err)?;
    let event_name = id_field("eventName", event_name, false, input_err)?;
    match (&feature_id, &event_name) {
        (None, None) => {
            return Err(TrackError::input(
                "featureId",
                "give `featureId` (a metered feature) or `eventName` (an event mapped to features)",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(TrackError::input(
                "eventName",
                "give `featureId` or `eventName`, not both",
            ))
        }
        _ => {}
    }
    let entity_id = id_field("entityId", entity, false, input_err)?;

    let value = match value {
        None => 1.0,
        Some(Value::Num(n)) if n.is_finite() => *n,
        Some(Value::Num(_)) => {
            return Err(TrackError::input(
                "value",
                "`value` must be a finite number (NaN and Infinity are refused)",
            ))
        }
        Some(other) => {
            return Err(TrackError::input(
                "value",
                msg(&["`value` must be a number, got ", other.type_name()]),
            ))
        }
    };

    let properties = match props {
        None => None,
        Some(v @ Value::Obj(_)) => {
            if let Err(p) = check_json(v) {
                let mut m = String::from("`properties.");
                m.push_str(&p.path);
                m.push_str("` ");
                m.push_str(p.what);
                return Err(TrackError::input("properties", m));
            }
            let mut s = String::new();
            write_json(&mut s, v, &|n, out| host.format_num(n, out));
            if s.len() > max_properties_bytes {
                let mut m = String::from("`properties` is ");
                crate::value::push_u64(&mut m, s.len() as u64);
                m.push_str(" bytes as JSON, over the limit of ");
                crate::value::push_u64(&mut m, max_properties_bytes as u64);
                m.push_str(" (option `maxPropertiesBytes`)");
                return Err(TrackError::input("properties", m));
            }
            Some(s)
        }
        Some(Value::Bad(crate::value::Bad::TooLarge)) => {
            return Err(TrackError::input(
                "properties",
                "`properties` is too large (over the `maxPropertiesBytes` limit)",
            ))
        }
        Some(other) => {
            return Err(TrackError::input(
                "properties",
                msg(&[
                    "`properties` must be a plain object, got ",
                    other.type_name(),
                ]),
            ))
        }
    };

    let timestamp = match ts {
        None => None,
        Some(Value::Num(n)) if n.is_finite() && crate::float::fract(*n) == 0.0 && *n > 0.0 => {
            if *n > MAX_SAFE_INTEGER {
                return Err(TrackError::input(
                    "timestamp",
                    "`timestamp` is beyond the largest safe integer",
                ));
            }
            if *n < MIN_PLAUSIBLE_MS {
                return Err(TrackError::input(
                    "timestamp",
                    "`timestamp` must be Unix milliseconds; this looks like seconds (multiply by 1000)",
                ));
            }
            if *n > MAX_PLAUSIBLE_MS {
                return Err(TrackError::input(
                    "timestamp",
                    "`timestamp` must be Unix milliseconds; this looks like microseconds (divide by 1000)",
                ));
            }
            if *n > host.now_ms() + MAX_FUTURE_MS {
                return Err(TrackError::input(
                    "timestamp",
                    "`timestamp` is more than a day in the future (Autumn refuses future timestamps)",
                ));
            }
            Some(*n as u64)
        }
        Some(Value::Num(_)) => {
            return Err(TrackError::input(
                "timestamp",
                "`timestamp` must be a positive integer (Unix milliseconds)",
            ))
        }
        Some(other) => {
            return Err(TrackError::input(
                "timestamp",
                msg(&[
                    "`timestamp` must be a number (Unix milliseconds), got ",
                    other.type_name(),
                ]),
            ))
        }
    };

    let overage_behavior = match overage {
        None => None,
        Some(Value::Str(s)) if s == "cap" => Some("cap"),
        Some(Value::Str(s)) if s == "overflow" => Some("overflow"),
        Some(_) => {
            return Err(TrackError::input(
                "overageBehavior",
                "`overageBehavior` must be \"cap\" or \"overflow\"",
            ))
        }
    };
    let r#async = match asyn {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(TrackError::input(
                "async",
                msg(&["`async` must be a boolean, got ", other.type_name()]),
            ))
        }
    };

    let idempotency_key = match id_field("idempotencyKey", key, false, input_err)? {
        Some(k) => k,
        None => host.new_key(),
    };
    let value_text =
        (crate::float::fract(value) != 0.0 || value.abs() > MAX_SAFE_INTEGER).then(|| {
            let mut t = String::new();
            host.format_num(value, &mut t);
            t
        });

    Ok(Event {
        customer_id,
        feature_id,
        event_name,
        entity_id,
        value,
        value_text,
        properties,
        idempotency_key,
        timestamp,
        overage_behavior,
        r#async,
    })
}

/// The JSON body Autumn's `POST /v1/balances.track` takes: snake_case, unset fields left out.
/// `timestamp` overrides the event's own when given (replays may adjust it).
pub fn wire_body(ev: &Event) -> String {
    let mut s = String::with_capacity(
        // The field names, the key and a timestamp are ~150 bytes: room for all of it at once.
        160 + ev.customer_id.len() + ev.properties.as_ref().map_or(0, String::len),
    );
    write_body(&mut s, ev, ev.timestamp);
    s
}

/// Writes the body of `ev` with `timestamp` in place of the event's own.
pub fn write_body(s: &mut String, ev: &Event, timestamp: Option<u64>) {
    s.push_str("{\"customer_id\":");
    write_str(s, &ev.customer_id);
    if let Some(f) = &ev.feature_id {
        s.push_str(",\"feature_id\":");
        write_str(s, f);
    }
    if let Some(e) = &ev.event_name {
        s.push_str(",\"event_name\":");
        write_str(s, e);
    }
    if let Some(e) = &ev.entity_id {
        s.push_str(",\"entity_id\":");
        write_str(s, e);
    }
    s.push_str(",\"value\":");
    match &ev.value_text {
        Some(t) => s.push_str(t),
        None => {
            if ev.value < 0.0 {
                s.push('-');
            }
            crate::value::push_u64(s, ev.value.abs() as u64);
        }
    }
    if let Some(p) = &ev.properties {
        s.push_str(",\"properties\":");
        s.push_str(p);
    }
    s.push_str(",\"idempotency_key\":");
    write_str(s, &ev.idempotency_key);
    if let Some(t) = timestamp {
        s.push_str(",\"timestamp\":");
        crate::value::push_u64(s, t);
    }
    if let Some(o) = ev.overage_behavior {
        s.push_str(",\"overage_behavior\":\"");
        s.push_str(o);
        s.push('"');
    }
    if let Some(a) = ev.r#async {
        s.push_str(if a {
            ",\"async\":true"
        } else {
            ",\"async\":false"
        });
    }
    s.push('}');
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::Code;
    use crate::value::Bad;
    use alloc::string::ToString;
    use alloc::vec;
    use serde_json::json;

    fn v(j: serde_json::Value) -> Value {
        crate::value::tests_support::from_serde(&j)
    }

    /// The native host: a fixed clock, Rust's float formatting, a fixed key.
    pub(crate) struct TestHost(pub f64);

    impl Host for TestHost {
        fn now_ms(&self) -> f64 {
            self.0
        }
        fn format_num(&self, n: f64, out: &mut String) {
            crate::value::tests_support::rust_num(n, out);
        }
        fn new_key(&mut self) -> String {
            "generated-key".to_string()
        }
    }

    /// 2026-12-02.
    pub(crate) const NOW: f64 = 1_796_169_600_000.0;

    fn parse(j: serde_json::Value) -> Result<Event, TrackError> {
        parse_input(&v(j), DEFAULT_MAX_PROPERTIES_BYTES, &mut TestHost(NOW))
    }

    fn field_of(j: serde_json::Value) -> String {
        let e = parse(j.clone()).expect_err(&j.to_string());
        assert_eq!(e.code, Code::InvalidInput, "{j}");
        assert!(!e.message.is_empty());
        e.field.unwrap_or_default()
    }

    #[test]
    fn minimal_event_defaults_value_and_generates_key() {
        let ev = parse(json!({"customerId": "cus_1", "featureId": "messages"})).unwrap();
        assert_eq!(ev.value, 1.0);
        assert_eq!(ev.idempotency_key, "generated-key");
        assert_eq!(
            wire_body(&ev),
            r#"{"customer_id":"cus_1","feature_id":"messages","value":1,"idempotency_key":"generated-key"}"#
        );
    }

    #[test]
    fn wire_body_snapshot_full() {
        let ev = parse(json!({
            "customerId": "cus_\"1\"", "eventName": "message_sent", "entityId": "seat_1",
            "value": -2.5, "properties": {"model": "gpt", "n": [1, 2], "nested": {"ok": true}},
            "idempotencyKey": "k-1", "timestamp": 1764000000000u64,
            "overageBehavior": "cap", "async": true
        }))
        .unwrap();
        let body = wire_body(&ev);
        assert_eq!(
            body,
            r#"{"customer_id":"cus_\"1\"","event_name":"message_sent","entity_id":"seat_1","value":-2.5,"properties":{"model":"gpt","n":[1,2],"nested":{"ok":true}},"idempotency_key":"k-1","timestamp":1764000000000,"overage_behavior":"cap","async":true}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["customer_id"], "cus_\"1\"");
    }

    #[test]
    fn snake_case_aliases_are_accepted() {
        let ev = parse(json!({
            "customer_id": "c", "feature_id": "f", "entity_id": "e", "idempotency_key": "k",
            "overage_behavior": "overflow"
        }))
        .unwrap();
        assert_eq!(
            (
                ev.customer_id.as_str(),
                ev.feature_id.as_deref(),
                ev.entity_id.as_deref()
            ),
            ("c", Some("f"), Some("e"))
        );
        assert_eq!(ev.idempotency_key, "k");
        assert_eq!(ev.overage_behavior, Some("overflow"));
    }

    #[test]
    fn undefined_fields_are_absent() {
        let input = Value::Obj(vec![
            ("customerId".to_string(), Value::Str("c".to_string())),
            ("featureId".to_string(), Value::Str("f".to_string())),
            ("eventName".to_string(), Value::Undefined),
            ("value".to_string(), Value::Undefined),
        ]);
        let ev = parse_input(&input, 100, &mut TestHost(NOW)).unwrap();
        assert_eq!(ev.value, 1.0);
    }

    #[test]
    fn validation_table() {
        let long = "x".repeat(257);
        let ok256 = "é".repeat(256);
        assert!(parse(json!({"customerId": ok256, "featureId": "f"})).is_ok());
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!({"featureId": "f"}), "customerId"),
            (json!({"customerId": "", "featureId": "f"}), "customerId"),
            (json!({"customerId": 5, "featureId": "f"}), "customerId"),
            (json!({"customerId": null, "featureId": "f"}), "customerId"),
            (json!({"customerId": ["c"], "featureId": "f"}), "customerId"),
            (json!({"customerId": long, "featureId": "f"}), "customerId"),
            (json!({"customerId": "c"}), "featureId"),
            (
                json!({"customerId": "c", "featureId": "f", "eventName": "e"}),
                "eventName",
            ),
            (json!({"customerId": "c", "featureId": ""}), "featureId"),
            (json!({"customerId": "c", "eventName": ""}), "eventName"),
            (json!({"customerId": "c", "featureId": 1}), "featureId"),
            (
                json!({"customerId": "c", "featureId": "f", "entityId": ""}),
                "entityId",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "value": "5"}),
                "value",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "value": null}),
                "value",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "properties": []}),
                "properties",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "properties": null}),
                "properties",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "properties": "x"}),
                "properties",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "idempotencyKey": ""}),
                "idempotencyKey",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "idempotencyKey": long}),
                "idempotencyKey",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "idempotencyKey": 7}),
                "idempotencyKey",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": 0}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": -5}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": 1.5e12 + 0.5}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": "2025"}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": 1764000000}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": 1e300}),
                "timestamp",
            ),
            (
                // Microseconds (`Date.now() * 1000`).
                json!({"customerId": "c", "featureId": "f", "timestamp": NOW * 1000.0}),
                "timestamp",
            ),
            (
                // The year 3000.
                json!({"customerId": "c", "featureId": "f", "timestamp": 32_503_680_000_000u64}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "timestamp": NOW + MAX_FUTURE_MS + 1.0}),
                "timestamp",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "overageBehavior": "nope"}),
                "overageBehavior",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "async": "yes"}),
                "async",
            ),
            (
                json!({"customerId": "c", "featureId": "f", "custmerId": "x"}),
                "custmerId",
            ),
            (
                json!({"customerId": "c", "feature_id": "f", "featureId": "f"}),
                "featureId",
            ),
        ];
        for (input, field) in cases {
            assert_eq!(field_of(input.clone()), field, "{input}");
        }
    }

    #[test]
    fn non_finite_values_are_refused() {
        for n in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let input = Value::Obj(vec![
                ("customerId".to_string(), Value::Str("c".to_string())),
                ("featureId".to_string(), Value::Str("f".to_string())),
                ("value".to_string(), Value::Num(n)),
            ]);
            let e = parse_input(&input, 100, &mut TestHost(NOW)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("value"));
        }
    }

    #[test]
    fn input_must_be_an_object() {
        for j in [json!(null), json!([]), json!("cus_1"), json!(3)] {
            let e = parse(j).unwrap_err();
            assert_eq!(e.code, Code::InvalidInput);
        }
        let e = parse_input(&Value::Undefined, 10, &mut TestHost(NOW)).unwrap_err();
        assert!(e.message.contains("must be an object"), "{}", e.message);
    }

    #[test]
    fn typos_get_a_suggestion() {
        let e =
            parse(json!({"customerId": "c", "featureId": "f", "idempotencykey": "k"})).unwrap_err();
        assert!(
            e.message.contains("did you mean `idempotencyKey`"),
            "{}",
            e.message
        );
        let e = parse(json!({"customerId": "c", "featureId": "f", "zzz": 1})).unwrap_err();
        assert!(e.message.contains("unknown field `zzz`"), "{}", e.message);
        assert!(!e.message.contains("did you mean"));
    }

    #[test]
    fn properties_must_be_strict_json_and_bounded() {
        for bad in [
            Bad::Function,
            Bad::Symbol,
            Bad::BigInt,
            Bad::Cycle,
            Bad::TooDeep,
            Bad::NotPlain,
        ] {
            let input = Value::Obj(vec![
                ("customerId".to_string(), Value::Str("c".to_string())),
                ("featureId".to_string(), Value::Str("f".to_string())),
                (
                    "properties".to_string(),
                    Value::Obj(vec![(
                        "a".to_string(),
                        Value::Obj(vec![("b".to_string(), Value::Bad(bad))]),
                    )]),
                ),
            ]);
            let e = parse_input(&input, 1000, &mut TestHost(NOW)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("properties"));
            assert!(e.message.contains("properties.a.b"), "{}", e.message);
        }
        let big =
            json!({"customerId": "c", "featureId": "f", "properties": {"s": "x".repeat(70_000)}});
        let e = parse(big).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("properties"));
        assert!(e.message.contains("65536"), "{}", e.message);
        let exact = parse_input(
            &v(json!({"customerId": "c", "featureId": "f", "properties": {"s": "xx"}})),
            10,
            &mut TestHost(NOW),
        );
        assert!(exact.is_ok(), "{{\"s\":\"xx\"}} is exactly 10 bytes");
    }

    #[test]
    fn explicit_key_is_kept_and_generator_not_called() {
        struct NoKeys;
        impl Host for NoKeys {
            fn now_ms(&self) -> f64 {
                NOW
            }
            fn format_num(&self, n: f64, out: &mut String) {
                crate::value::tests_support::rust_num(n, out);
            }
            fn new_key(&mut self) -> String {
                unreachable!("generator must not run when a key is given")
            }
        }
        let ev = parse_input(
            &v(json!({"customerId": "c", "featureId": "f", "idempotencyKey": "mine"})),
            100,
            &mut NoKeys,
        )
        .unwrap();
        assert_eq!(ev.idempotency_key, "mine");
    }

    #[test]
    fn fractional_values_use_the_hosts_formatter() {
        let ev = parse(json!({"customerId": "c", "featureId": "f", "value": 0.1})).unwrap();
        assert_eq!(ev.value_text.as_deref(), Some("0.1"));
        assert!(wire_body(&ev).contains(r#""value":0.1,"#));
        let ev = parse(json!({"customerId": "c", "featureId": "f", "value": -3})).unwrap();
        assert_eq!(ev.value_text, None);
        assert!(wire_body(&ev).contains(r#""value":-3,"#));
    }
}
