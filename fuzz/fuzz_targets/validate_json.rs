//! `track()` input from arbitrary JSON: validation, the wire body, the queue record and the
//! body replayed from it. Invariants: nothing panics; a refusal is `invalid_input` naming a
//! field; an accepted event's wire body is JSON that reads back to the same customer, feature
//! or event name, entity, value, properties, key and timestamp, with no other member, and its
//! length is bounded; a tighter `properties` limit never accepts what the default refuses.
//! The options parser gets the same value (it must never panic either).
#![no_main]

use autumn_track::event::{parse_input, wire_body, DEFAULT_MAX_PROPERTIES_BYTES, MAX_ID_CHARS};
use autumn_track::key::uuid_v7;
use autumn_track::queue::{batch_body, body_for, new_record, Clock};
use autumn_track::value::Value;
use autumn_track::{parse_options, Code, Event};
use autumn_track_fuzz::{same, to_value};
use libfuzzer_sys::fuzz_target;

const NOW: f64 = 1_800_000_000_000.0;
const SMALL_LIMIT: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let input = to_value(&json);

    if let Ok(o) = parse_options(&input) {
        assert!((2..=1_048_576).contains(&o.max_properties_bytes));
        assert!(o.queue_policy.batch_size >= 1 && o.queue_policy.batch_size <= 1000);
        assert!(!o.base_url.ends_with('/') || o.base_url.is_empty());
    }

    let generated = uuid_v7(NOW as u64, [7; 10]);
    let mut accepted_small = false;
    for limit in [SMALL_LIMIT, DEFAULT_MAX_PROPERTIES_BYTES] {
        let mut calls = 0;
        let result = parse_input(&input, limit, || {
            calls += 1;
            generated.clone()
        });
        assert!(calls <= 1, "the key generator is called at most once");
        match result {
            Err(e) => {
                assert_eq!(e.code, Code::InvalidInput, "{e:?}");
                assert!(e.field.is_some(), "a refusal names its field: {e:?}");
                assert!(!e.message.is_empty());
                assert!(e.status.is_none() && e.idempotency_key.is_none());
                assert!(
                    !(accepted_small && limit == DEFAULT_MAX_PROPERTIES_BYTES),
                    "accepted under {SMALL_LIMIT} bytes but refused under the default: {e:?}"
                );
            }
            Ok(ev) => {
                if limit == SMALL_LIMIT {
                    accepted_small = true;
                }
                assert_eq!(calls == 1, field(&input, "idempotencyKey").is_none());
                check_event(&input, &ev, limit, &generated);
            }
        }
    }
});

/// The member `camel` (or its snake_case alias) of the input.
fn field<'a>(input: &'a Value, camel: &str) -> Option<&'a Value> {
    let snake = match camel {
        "customerId" => "customer_id",
        "featureId" => "feature_id",
        "eventName" => "event_name",
        "entityId" => "entity_id",
        "idempotencyKey" => "idempotency_key",
        "overageBehavior" => "overage_behavior",
        other => other,
    };
    input.get(camel).or_else(|| input.get(snake))
}

fn str_field<'a>(input: &'a Value, camel: &str) -> Option<&'a str> {
    match field(input, camel) {
        Some(Value::Str(s)) => Some(s),
        None => None,
        Some(other) => panic!("accepted a non-string `{camel}`: {other:?}"),
    }
}

fn check_event(input: &Value, ev: &Event, limit: usize, generated: &str) {
    let body = wire_body(ev);
    // Four ids of at most 256 chars, each char at most 6 bytes escaped (`\u001f`), plus quotes;
    // the properties; a number, a timestamp and the member names.
    let bound = limit + 4 * (6 * MAX_ID_CHARS + 2) + 300;
    assert!(
        body.len() <= bound,
        "wire body of {} bytes over the bound {bound}",
        body.len()
    );
    let wire: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("wire body is not JSON ({e}): {body}"));
    let obj = wire.as_object().expect("the wire body is an object");
    for k in obj.keys() {
        assert!(
            [
                "customer_id",
                "feature_id",
                "event_name",
                "entity_id",
                "value",
                "properties",
                "idempotency_key",
                "timestamp",
                "overage_behavior",
                "async"
            ]
            .contains(&k.as_str()),
            "unexpected member {k} in {body}"
        );
    }
    let wire_str = |k: &str| obj.get(k).map(|v| v.as_str().expect("a string member"));

    // Ids: what the caller gave, 1..=256 chars.
    for (camel, snake) in [
        ("customerId", "customer_id"),
        ("featureId", "feature_id"),
        ("eventName", "event_name"),
        ("entityId", "entity_id"),
    ] {
        let given = str_field(input, camel);
        assert_eq!(wire_str(snake), given, "{snake} in {body}");
        if let Some(s) = given {
            let n = s.chars().count();
            assert!(
                (1..=MAX_ID_CHARS).contains(&n),
                "{camel} of {n} chars accepted"
            );
        }
    }
    assert!(obj.contains_key("customer_id"));
    assert!(
        obj.contains_key("feature_id") != obj.contains_key("event_name"),
        "exactly one of feature_id / event_name: {body}"
    );
    assert_eq!(wire_str("customer_id"), Some(ev.customer_id.as_str()));

    // The key: the caller's, or the generated one; the same in the event and on the wire.
    let key = str_field(input, "idempotencyKey").unwrap_or(generated);
    assert_eq!(wire_str("idempotency_key"), Some(key));
    assert_eq!(ev.idempotency_key, key);

    // The value: the caller's (finite), or 1.
    let want = match field(input, "value") {
        None => 1.0,
        Some(Value::Num(n)) => *n,
        Some(other) => panic!("accepted value {other:?}"),
    };
    assert!(want.is_finite());
    assert_eq!(
        obj.get("value").and_then(|v| v.as_f64()),
        Some(want),
        "{body}"
    );

    match field(input, "properties") {
        None => assert!(!obj.contains_key("properties")),
        Some(p) => {
            let w = obj.get("properties").expect("properties on the wire");
            same(w, p, "properties").unwrap_or_else(|e| panic!("{e}\nbody: {body}"));
            let written = ev.properties.as_deref().expect("serialized properties");
            assert!(written.len() <= limit, "properties over the limit accepted");
        }
    }
    match field(input, "timestamp") {
        None => assert!(!obj.contains_key("timestamp")),
        Some(Value::Num(n)) => {
            assert_eq!(
                obj.get("timestamp").and_then(|t| t.as_u64()),
                Some(*n as u64)
            );
            assert!(*n >= 1e12 && *n <= 9_007_199_254_740_991.0 && n.fract() == 0.0);
        }
        Some(other) => panic!("accepted timestamp {other:?}"),
    }
    match field(input, "overageBehavior") {
        None => assert!(!obj.contains_key("overage_behavior")),
        Some(Value::Str(s)) => assert_eq!(wire_str("overage_behavior"), Some(s.as_str())),
        Some(other) => panic!("accepted overageBehavior {other:?}"),
    }
    match field(input, "async") {
        None => assert!(!obj.contains_key("async")),
        Some(Value::Bool(b)) => assert_eq!(obj.get("async").and_then(|a| a.as_bool()), Some(*b)),
        Some(other) => panic!("accepted async {other:?}"),
    }

    // The queue record and what a replay sends: the same event, plus a timestamp.
    let rec = new_record(ev, 1.0, NOW);
    let stored: serde_json::Value = serde_json::from_str(&rec.body).expect("record body is JSON");
    assert!(stored.get("timestamp").is_none(), "no timestamp until sent");
    let sent = body_for(&rec, &Clock::default(), NOW + 5.0, true);
    let mut replay: serde_json::Value = serde_json::from_str(&sent)
        .unwrap_or_else(|e| panic!("replay body not JSON ({e}): {sent}"));
    let ts = ev.timestamp.unwrap_or(NOW as u64);
    assert_eq!(replay.get("timestamp").and_then(|t| t.as_u64()), Some(ts));
    let mut wire_with_ts = wire.clone();
    wire_with_ts["timestamp"] = ts.into();
    replay["timestamp"] = ts.into();
    assert_eq!(replay, wire_with_ts, "a replay carries the same event");
    let batch: serde_json::Value =
        serde_json::from_str(&batch_body([&rec, &rec], &Clock::default(), NOW)).expect("batch");
    assert_eq!(batch.as_array().map(Vec::len), Some(2));
}
