//! Balances, entities, event_name mapping, negative/fractional values, cap, async, inspection.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn balances_after_several_tracks() {
    let srv = start_default().await;
    for v in [1, 5, 10] {
        track(
            &srv,
            json!({"customer_id": "cus_1", "feature_id": "messages", "value": v}),
        )
        .await
        .expect(200);
    }
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["customer_id"], "cus_1");
    assert_eq!(r["value"], 1);
    let b = &r["balance"];
    assert_eq!(b["feature_id"], "messages");
    assert_eq!(b["granted"], 100);
    assert_eq!(b["usage"], 17);
    assert_eq!(b["remaining"], 83);
    assert_eq!(b["unlimited"], false);
    assert_eq!(b["overage_allowed"], false);
    assert_eq!(
        r["deductions"],
        json!([{"feature_id": "messages", "deducted": 1}])
    );
    assert!(r.get("balances").is_none());
    assert!(r.get("entity_id").is_none());
    assert!(r.get("event_name").is_none());
    // Other customers untouched.
    let r = track(
        &srv,
        json!({"customer_id": "cus_2", "feature_id": "messages", "value": 0}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 100);
    let bal = get_json(&srv, "/_mock/balances").await;
    assert_eq!(
        bal["customers"]["cus_1"]["features"]["messages"]["usage"],
        17
    );
    assert_eq!(
        bal["customers"]["cus_1"]["features"]["messages"]["remaining"],
        83
    );
    assert_eq!(
        bal["customers"]["cus_1"]["features"]["api_calls"]["remaining"],
        10000
    );
    assert_eq!(
        bal["customers"]["cus_2"]["features"]["messages"]["usage"],
        0
    );
    let only = get_json(&srv, "/_mock/balances?customer_id=cus_2").await;
    assert_eq!(only["customers"].as_object().unwrap().len(), 1);
}

#[tokio::test]
async fn overage_goes_negative_by_default_and_cap_caps() {
    let srv = start_default().await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "value": 150}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], -50);
    assert_eq!(r["deductions"][0]["deducted"], 150);
    let r = track(
        &srv,
        json!({"customer_id": "cus_2", "feature_id": "messages", "value": 90}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 10);
    let r = track(
        &srv,
        json!({"customer_id": "cus_2", "feature_id": "messages", "value": 25, "overage_behavior": "cap"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["value"], 25, "value echoes the request");
    assert_eq!(r["deductions"][0]["deducted"], 10);
    assert_eq!(r["balance"]["remaining"], 0);
    let r = track(
        &srv,
        json!({"customer_id": "cus_2", "feature_id": "messages", "value": 5, "overage_behavior": "cap"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["deductions"][0]["deducted"], 0);
}

#[tokio::test]
async fn negative_and_fractional_values() {
    let srv = start_default().await;
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "value": 10}),
    )
    .await
    .expect(200);
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "value": -4}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["value"], -4);
    assert_eq!(r["balance"]["usage"], 6);
    assert_eq!(r["balance"]["remaining"], 94);
    assert_eq!(r["deductions"][0]["deducted"], -4);
    for v in [0.1, 0.2] {
        track(
            &srv,
            json!({"customer_id": "cus_1", "feature_id": "messages", "value": v}),
        )
        .await
        .expect(200);
    }
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "value": 0.5}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["value"], 0.5);
    assert_eq!(r["balance"]["usage"], 6.8);
    assert_eq!(r["balance"]["remaining"], 93.2);
    // Credit back below zero usage is allowed too.
    let r = track(
        &srv,
        json!({"customer_id": "cus_3", "feature_id": "messages", "value": -3}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 103);
}

#[tokio::test]
async fn event_name_mapping() {
    let srv = start_default().await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "event_name": "message_sent", "value": 2}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["event_name"], "message_sent");
    assert_eq!(r["balance"]["feature_id"], "messages");
    assert_eq!(r["balance"]["remaining"], 98);
    assert!(r.get("balances").is_none());
    // One event hitting two features: balances map, balance null.
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "event_name": "report_generated", "value": 3}),
    )
    .await
    .expect(200)
    .json();
    assert!(r["balance"].is_null());
    assert_eq!(r["balances"]["reports"]["remaining"], 17);
    assert_eq!(r["balances"]["credits"]["remaining"], 997);
    assert_eq!(r["balances"].as_object().unwrap().len(), 2);
    let mut ded: Vec<String> = r["deductions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{}={}", d["feature_id"].as_str().unwrap(), d["deducted"]))
        .collect();
    ded.sort();
    assert_eq!(ded, ["credits=3", "reports=3"]);
    let ev = events(&srv, "?event_name=report_generated").await;
    assert_eq!(ev.len(), 1);
    assert!(ev[0]["feature_id"].is_null());
}

#[tokio::test]
async fn unlimited_feature() {
    let srv = start_default().await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "ai_tokens", "value": 12345}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["unlimited"], true);
    assert_eq!(r["balance"]["usage"], 12345);
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "event_name": "ai_completion", "value": 5, "overage_behavior": "cap"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["deductions"][0]["deducted"], 5);
}

#[tokio::test]
async fn entities_have_their_own_pools() {
    let srv = start_default().await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "seats", "entity_id": "seat_1", "value": 2}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["entity_id"], "seat_1");
    assert_eq!(r["balance"]["granted"], 5);
    assert_eq!(r["balance"]["remaining"], 3);
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "seats", "entity_id": "seat_2", "value": 1}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 4, "seat_2 has its own balance");
    // cap is per entity pool
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "seats", "entity_id": "seat_1", "value": 10,
               "overage_behavior": "cap"}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["deductions"][0]["deducted"], 3);
    assert_eq!(r["balance"]["remaining"], 0);
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_1").await;
    let c = &b["customers"]["cus_1"];
    assert_eq!(c["entities"]["seat_1"]["seats"]["usage"], 5);
    assert_eq!(c["entities"]["seat_2"]["seats"]["usage"], 1);
    // The customer-level balance aggregates every entity's usage.
    assert_eq!(c["features"]["seats"]["usage"], 6);
    assert_eq!(events(&srv, "?entity_id=seat_2").await.len(), 1);
}

#[tokio::test]
async fn async_true_answers_202_and_records() {
    let srv = start_default().await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "value": 7, "async": true}),
    )
    .await
    .expect(202)
    .json();
    assert_eq!(
        r,
        json!({"customer_id": "cus_1", "value": 7, "balance": null})
    );
    let ev = events(&srv, "").await;
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["async"], true);
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_1").await;
    assert_eq!(b["customers"]["cus_1"]["features"]["messages"]["usage"], 7);
}

#[tokio::test]
async fn customer_without_balance_for_feature_gets_null() {
    let cfg = Config::from_json(
        r#"{"customers": [{"id": "c", "entities": [], "features": ["messages"]}]}"#,
    )
    .unwrap();
    let srv = start(cfg).await;
    let r = track(&srv, json!({"customer_id": "c", "feature_id": "api_calls"}))
        .await
        .expect(200)
        .json();
    assert!(r["balance"].is_null());
    assert_eq!(r["deductions"], json!([]));
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .expect_err(404, "customer_not_found");
}

#[tokio::test]
async fn custom_config_features() {
    let cfg = Config::from_json(
        r#"{"secret_keys": ["am_sk_test_k"],
            "features": [{"id": "tok", "included": 3, "event_names": ["t", "u"]},
                         {"id": "inf", "unlimited": true, "event_names": ["u"]}],
            "customers": [{"id": "x", "entities": ["e"]}],
            "extra_key": 1}"#,
    )
    .unwrap();
    let srv = start(cfg).await;
    let auth = [("authorization", "Bearer am_sk_test_k")];
    let r = post(
        &srv,
        TRACK,
        &json!({"customer_id": "x", "event_name": "t", "value": 2}),
        &auth,
    )
    .await
    .unwrap()
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 1);
    let r = post(
        &srv,
        TRACK,
        &json!({"customer_id": "x", "event_name": "u"}),
        &auth,
    )
    .await
    .unwrap()
    .expect(200)
    .json();
    assert!(r["balance"].is_null());
    assert_eq!(r["balances"]["tok"]["remaining"], 0);
    assert_eq!(r["balances"]["inf"]["unlimited"], true);
    assert!(Config::from_json(r#"{"features": [{"id": "a"}, {"id": "a"}]}"#).is_err());
    assert!(Config::from_json(r#"{"secret_keys": ["nope"]}"#).is_err());
    assert!(Config::from_json(r#"{"faults": {"error_500": 3}}"#).is_err());
}

#[tokio::test]
async fn events_inspection_and_reset() {
    let srv = start_default().await;
    let ts = now_ms() - 1000;
    let r = post(
        &srv,
        TRACK,
        &json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "key 1/α",
                "timestamp": ts, "properties": {"model": "x", "n": 2}}),
        &[("x-test-header", "hello"), ("idempotency-key", "hk-1")],
    )
    .await
    .unwrap()
    .expect(200);
    drop(r);
    track(
        &srv,
        json!({"customer_id": "cus_2", "event_name": "api_call", "value": 3}),
    )
    .await
    .expect(200);
    batch(
        &srv,
        json!([{"customer_id": "cus_2", "feature_id": "messages"}]),
    )
    .await
    .expect(200);
    let all = events(&srv, "").await;
    assert_eq!(all.len(), 3);
    let e = &all[0];
    assert_eq!(e["seq"], 1);
    assert_eq!(e["idempotency_key"], "key 1/α");
    assert_eq!(e["customer_id"], "cus_1");
    assert_eq!(e["feature_id"], "messages");
    assert!(e["event_name"].is_null());
    assert!(e["entity_id"].is_null());
    assert_eq!(e["value"], 1);
    assert_eq!(e["timestamp"], ts);
    assert_eq!(e["properties"], json!({"model": "x", "n": 2}));
    assert!(e["received_at"].as_u64().unwrap() >= ts);
    assert_eq!(e["api_version"], "2.3.0");
    assert_eq!(e["headers"]["x-test-header"], "hello");
    assert_eq!(e["headers"]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(e["via"], "track");
    assert_eq!(e["idempotency_header"], "hk-1");
    assert_eq!(all[1]["event_name"], "api_call");
    assert_eq!(all[2]["via"], "batch");
    // Filters (URL-encoded).
    assert_eq!(events(&srv, "?customer_id=cus_2").await.len(), 2);
    assert_eq!(
        events(&srv, "?idempotency_key=key%201%2F%CE%B1")
            .await
            .len(),
        1
    );
    assert_eq!(events(&srv, "?customer_id=cus_2&via=batch").await.len(), 1);
    assert_eq!(events(&srv, "?idempotency_header=hk-1").await.len(), 1);
    assert_eq!(events(&srv, "?customer_id=nobody").await.len(), 0);
    let s = stats(&srv).await;
    assert_eq!(s["recorded_events"], 3);
    assert_eq!(s["requests"], 3);
    assert_eq!(s["batch_requests"], 1);
    assert_eq!(s["by_status"]["200"], 3);
    // Reset clears events, balances, keys, stats and faults.
    set_faults(&srv, json!({"error_500": 0.5})).await;
    post(&srv, "/_mock/reset", &json!({}), &[])
        .await
        .unwrap()
        .expect(200);
    assert!(events(&srv, "").await.is_empty());
    let s = stats(&srv).await;
    assert_eq!(s["requests"], 0);
    assert_eq!(s["recorded_events"], 0);
    assert_eq!(get_json(&srv, "/_mock/faults").await["error_500"], 0.0);
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_1").await;
    assert_eq!(b["customers"]["cus_1"]["features"]["messages"]["usage"], 0);
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "key 1/α"}),
    )
    .await
    .expect(200);
    assert_eq!(get_json(&srv, "/_mock/health").await["ok"], true);
}

#[tokio::test]
async fn max_events_evicts_oldest() {
    let cfg = Config {
        max_events: 2,
        ..Config::default()
    };
    let srv = start(cfg).await;
    for v in 1..=3 {
        track(
            &srv,
            json!({"customer_id": "cus_1", "feature_id": "messages", "value": v}),
        )
        .await
        .expect(200);
    }
    let ev = events(&srv, "").await;
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["seq"], 2);
    let s = stats(&srv).await;
    assert_eq!(s["events_evicted"], 1);
    assert_eq!(s["recorded_events"], 3);
}
