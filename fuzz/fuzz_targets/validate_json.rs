//! `track()` input from arbitrary JSON: `parse_input` with a fixed-clock host, the wire body, the
//! queue record and the body replayed from it; and `parse_options` on the same value.
//!
//! Invariants: nothing panics; a refusal is `invalid_input` naming a field, and asks for no
//! key; a key is asked for exactly once when the caller gave none and the input is accepted; an
//! accepted event's wire body is JSON that reads back to the same customer, feature or event
//! name, entity, value (exactly, through the host's number formatter), properties, key and
//! timestamp, with no other member, and its length is bounded; a tighter `properties` limit
//! never accepts what the default refuses; a timestamp is accepted exactly when it is a whole
//! number of milliseconds from 1e12 to 1e14 and at most a day ahead of the host's clock, and
//! otherwise refused naming `timestamp` (when nothing else is wrong); a replay carries the same
//! event, and its timestamp never leads a server clock the tracker has seen. Options that parse
//! are within their documented bounds; options that do not name the option at fault.
#![no_main]

use autumn_track::event::{parse_input, wire_body, MAX_FUTURE_MS};
use autumn_track::event::{DEFAULT_MAX_PROPERTIES_BYTES, MAX_ID_CHARS};
use autumn_track::queue::{batch_body, body_for, new_record, Clock};
use autumn_track::value::{Value, MAX_SAFE_INTEGER};
use autumn_track::{parse_options, Code, Event};
use autumn_track_fuzz::{same, to_value, FuzzHost};
use libfuzzer_sys::fuzz_target;

/// The host's clock (2027-01-15).
const NOW: f64 = 1_800_000_000_000.0;
const SMALL_LIMIT: usize = 64;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let input = to_value(&json);
    check_options(&input);

    let mut accepted_small = false;
    for limit in [SMALL_LIMIT, DEFAULT_MAX_PROPERTIES_BYTES] {
        let mut host = FuzzHost::new(NOW);
        let result = parse_input(&input, limit, &mut host);
        match result {
            Err(e) => {
                assert_eq!(e.code, Code::InvalidInput, "{e:?}");
                assert!(e.field.is_some(), "a refusal names its field: {e:?}");
                assert!(!e.message.is_empty());
                assert!(e.status.is_none() && e.idempotency_key.is_none());
                assert_eq!(host.keys, 0, "a refused input asked for a key: {e:?}");
                assert!(
                    !(accepted_small && limit == DEFAULT_MAX_PROPERTIES_BYTES),
                    "accepted under {SMALL_LIMIT} bytes but refused under the default: {e:?}"
                );
            }
            Ok(ev) => {
                if limit == SMALL_LIMIT {
                    accepted_small = true;
                }
                let own_key = field(&input, "idempotencyKey").is_some();
                assert_eq!(host.keys, u32::from(!own_key), "keys asked for");
                check_event(&input, &ev, limit, &host.key(1));
            }
        }
    }
    check_timestamp_rule(&input);
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

/// Whether `n` is a timestamp `parse_input` must take at host time `now`.
fn valid_timestamp(n: f64, now: f64) -> bool {
    n.is_finite() && n.fract() == 0.0 && (1e12..=1e14).contains(&n) && n <= now + MAX_FUTURE_MS
}

/// When the input is accepted without its `timestamp`, the timestamp alone decides: accepted
/// exactly when valid at the host's time (checked at the day's edge too), else refused naming
/// `timestamp`.
fn check_timestamp_rule(input: &Value) {
    let Value::Obj(members) = input else { return };
    let Some(ts) = field(input, "timestamp") else {
        return;
    };
    let without = Value::Obj(
        members
            .iter()
            .filter(|(k, _)| k != "timestamp")
            .cloned()
            .collect(),
    );
    let limit = DEFAULT_MAX_PROPERTIES_BYTES;
    if parse_input(&without, limit, &mut FuzzHost::new(NOW)).is_err() {
        return;
    }
    let mut nows = vec![NOW];
    if let &Value::Num(n) = ts {
        if n.is_finite() && n.abs() < 1e15 {
            // A day ahead is accepted; a millisecond more is not.
            nows.extend([n - MAX_FUTURE_MS, n - MAX_FUTURE_MS - 1.0, n, n + 1e9]);
        }
    }
    for now in nows {
        let want = matches!(ts, Value::Num(n) if valid_timestamp(*n, now));
        match parse_input(input, limit, &mut FuzzHost::new(now)) {
            Ok(ev) => {
                assert!(want, "timestamp {ts:?} accepted at {now}");
                assert_eq!(ev.timestamp.map(|t| t as f64), Some(match ts {
                    Value::Num(n) => *n,
                    _ => f64::NAN,
                }));
            }
            Err(e) => {
                assert!(!want, "timestamp {ts:?} refused at {now}: {e:?}");
                assert_eq!(e.field.as_deref(), Some("timestamp"), "{e:?}");
            }
        }
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

    // The value: the caller's (finite), or 1; a fraction or a number past 2^53 through the
    // host's formatter, read back exactly.
    let want = match field(input, "value") {
        None => 1.0,
        Some(Value::Num(n)) => *n,
        Some(other) => panic!("accepted value {other:?}"),
    };
    assert!(want.is_finite());
    assert_eq!(ev.value, want);
    assert_eq!(
        ev.value_text.is_some(),
        want.fract() != 0.0 || want.abs() > MAX_SAFE_INTEGER,
        "value text {:?} for {want}",
        ev.value_text
    );
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
            assert!(valid_timestamp(*n, NOW), "timestamp {n} accepted at {NOW}");
        }
        Some(other) => panic!("accepted timestamp {other:?}"),
    }
    match field(input, "overageBehavior") {
        None => assert!(!obj.contains_key("overage_behavior")),
        Some(Value::Str(s)) => {
            assert!(s == "cap" || s == "overflow");
            assert_eq!(wire_str("overage_behavior"), Some(s.as_str()))
        }
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
    assert_eq!(rec.key, ev.idempotency_key);
    assert_eq!(rec.ts, ev.timestamp.map(|t| t as f64));
    let sent = body_for(&rec, &Clock::default(), NOW + 5.0, true);
    let mut replay: serde_json::Value = serde_json::from_str(&sent)
        .unwrap_or_else(|e| panic!("replay body not JSON ({e}): {sent}"));
    let ts = ev.timestamp.unwrap_or(NOW as u64);
    assert_eq!(replay.get("timestamp").and_then(|t| t.as_u64()), Some(ts));
    let mut wire_with_ts = wire.clone();
    wire_with_ts["timestamp"] = ts.into();
    replay["timestamp"] = ts.into();
    assert_eq!(replay, wire_with_ts, "a replay carries the same event");
    // A real-time send of an event without its own timestamp leaves it to the server.
    assert_eq!(
        body_for(&rec, &Clock::default(), NOW, false) == rec.body,
        ev.timestamp.is_none()
    );

    // The device clock 10 minutes ahead of a server it has heard from: the replay's timestamp
    // is moved back behind the server's clock, a caller's earlier one kept.
    let mut clock = Clock::default();
    clock.observe(NOW - 600_000.0, NOW);
    let server_now = NOW + 5.0 - 600_000.0;
    let behind: serde_json::Value =
        serde_json::from_str(&body_for(&rec, &clock, NOW + 5.0, true)).expect("JSON");
    let t = behind.get("timestamp").and_then(|t| t.as_u64()).expect("a timestamp");
    assert!(t as f64 <= server_now, "timestamp {t} leads the server's {server_now}");
    match ev.timestamp {
        Some(own) => assert_eq!(t, own.min(server_now as u64)),
        None => assert_eq!(t, (NOW - 600_000.0) as u64, "when track() was called, there"),
    }

    let batch: serde_json::Value =
        serde_json::from_str(&batch_body([&rec, &rec], &Clock::default(), NOW)).expect("batch");
    assert_eq!(batch.as_array().map(Vec::len), Some(2));
    assert_eq!(batch[0], batch[1]);
}

fn check_options(input: &Value) {
    match parse_options(input) {
        Err(e) => {
            assert_eq!(e.code, Code::InvalidOptions, "{e:?}");
            assert!(e.field.is_some(), "an options error names the option: {e:?}");
            assert!(!e.message.is_empty());
        }
        Ok(o) => {
            assert!((2..=1_048_576).contains(&o.max_properties_bytes));
            assert!((1..=1000).contains(&o.queue_policy.batch_size));
            assert!((1..=1_000_000).contains(&o.queue_policy.max_queue_size));
            assert!((1_000.0..=30.0 * 86_400_000.0).contains(&o.queue_policy.max_event_age_ms));
            assert!((1..=600_000).contains(&o.timeout_ms));
            assert!(o.retry.max_retries <= 20);
            assert!(
                o.queue_policy.confirm_after_ms >= f64::from(o.timeout_ms),
                "an attempt outlives its confirmation window"
            );
            assert!(!o.base_url.ends_with('/') || o.base_url.is_empty());
            assert!(!o.base_url.contains('?') && !o.base_url.contains('#'));
            assert!(!o.queue_name.is_empty() && o.queue_name.chars().count() <= 128);
            if let Some(k) = &o.secret_key {
                assert!(!k.is_empty() && !k.starts_with("am_pk_"));
                assert!(!k.chars().any(char::is_whitespace));
            }
            for (name, _) in &o.headers {
                let lower = name.to_ascii_lowercase();
                assert!(
                    !["content-type", "idempotency-key", "x-api-version", "accept"]
                        .contains(&lower.as_str()),
                    "header {name} is the tracker's"
                );
                assert!(o.secret_key.is_none() || lower != "authorization");
            }
        }
    }
}
