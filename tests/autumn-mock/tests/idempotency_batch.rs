//! Idempotency (body key and Idempotency-Key header), batch rules and the batch rate limit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn body(key: &str) -> serde_json::Value {
    json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": key})
}

#[tokio::test]
async fn duplicate_body_key_is_409_without_replay() {
    let srv = start_default().await;
    track(&srv, body("k1")).await.expect(200);
    let r = track(&srv, body("k1"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    let j = r.json();
    assert!(j.get("balance").is_none(), "original response not replayed");
    assert_eq!(j["env"], "sandbox");
    // Keys are global: a different payload/customer/route with the same key is a duplicate.
    post(
        &srv,
        "/v1/events",
        &json!({"customer_id": "cus_2", "event_name": "api_call", "idempotency_key": "k1"}),
        &[],
    )
    .await
    .unwrap()
    .expect_err(409, "duplicate_idempotency_key");
    assert_eq!(events(&srv, "?idempotency_key=k1").await.len(), 1);
    let s = stats(&srv).await;
    assert_eq!(s["duplicates_rejected"], 2);
    assert_eq!(s["by_status"]["409"], 2);
    // Every alias is the same handler.
    track(&srv, body("k2")).await.expect(200);
    post(&srv, "/v1/track", &body("k3"), &[])
        .await
        .unwrap()
        .expect(200);
    post(&srv, "/v1/events", &body("k4"), &[])
        .await
        .unwrap()
        .expect(200);
    assert_eq!(events(&srv, "").await.len(), 4);
}

#[tokio::test]
async fn failed_requests_release_their_key() {
    let srv = start_default().await;
    // 404: released.
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "nope", "idempotency_key": "a"}),
    )
    .await
    .expect_err(404, "feature_not_found");
    track(&srv, body("a")).await.expect(200);
    // 400: never claimed / released.
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "b", "value": "x"}),
    )
    .await
    .expect_err(400, "invalid_inputs");
    track(&srv, body("b")).await.expect(200);
    // 401: released.
    post(&srv, TRACK, &body("c"), &[("authorization", "Bearer nope")])
        .await
        .unwrap()
        .expect_err(401, "invalid_secret_key");
    track(&srv, body("c")).await.expect(200);
    // Injected 5xx / 429: released.
    set_faults(
        &srv,
        json!({"scripts": {"d": ["503", "500", "502", "429"]}}),
    )
    .await;
    for s in [503, 500, 502, 429] {
        assert_eq!(track(&srv, body("d")).await.status, s);
    }
    track(&srv, body("d")).await.expect(200);
    track(&srv, body("d"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    // A 409 does not release the key.
    track(&srv, body("d"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
}

#[tokio::test]
async fn keys_expire_after_ttl() {
    let cfg = Config {
        idempotency_ttl_secs: 1.0,
        ..Config::default()
    };
    let srv = start(cfg).await;
    track(&srv, body("ttl")).await.expect(200);
    track(&srv, body("ttl")).await.expect(409);
    post(
        &srv,
        TRACK,
        &json!({"customer_id": "cus_1", "feature_id": "messages"}),
        &[("idempotency-key", "ttl-h")],
    )
    .await
    .unwrap()
    .expect(200);
    tokio::time::sleep(Duration::from_millis(1150)).await;
    track(&srv, body("ttl")).await.expect(200);
    post(
        &srv,
        TRACK,
        &json!({"customer_id": "cus_1", "feature_id": "messages"}),
        &[("idempotency-key", "ttl-h")],
    )
    .await
    .unwrap()
    .expect(200);
    assert_eq!(events(&srv, "?idempotency_key=ttl").await.len(), 2);
}

#[tokio::test]
async fn header_key_is_a_separate_namespace() {
    let srv = start_default().await;
    let plain = json!({"customer_id": "cus_1", "feature_id": "messages"});
    // Same string in the body namespace and the header namespace: no conflict.
    track(&srv, body("same")).await.expect(200);
    post(&srv, TRACK, &plain, &[("idempotency-key", "same")])
        .await
        .unwrap()
        .expect(200);
    let r = post(&srv, TRACK, &plain, &[("idempotency-key", "same")])
        .await
        .unwrap()
        .expect_err(409, "duplicate_idempotency_key");
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    // Header keys work on the batch route too (any route), shared with track.
    post(
        &srv,
        BATCH,
        &json!([plain.clone()]),
        &[("idempotency-key", "hb")],
    )
    .await
    .unwrap()
    .expect(200);
    post(
        &srv,
        BATCH,
        &json!([plain.clone()]),
        &[("idempotency-key", "hb")],
    )
    .await
    .unwrap()
    .expect_err(409, "duplicate_idempotency_key");
    post(&srv, TRACK, &plain, &[("idempotency-key", "hb")])
        .await
        .unwrap()
        .expect_err(409, "duplicate_idempotency_key");
    // Released on failure.
    post(
        &srv,
        TRACK,
        &json!({"customer_id": "zzz", "feature_id": "messages"}),
        &[("idempotency-key", "hf")],
    )
    .await
    .unwrap()
    .expect_err(404, "customer_not_found");
    post(&srv, TRACK, &json!({}), &[("idempotency-key", "hf")])
        .await
        .unwrap()
        .expect_err(400, "invalid_inputs");
    post(&srv, TRACK, &plain, &[("idempotency-key", "hf")])
        .await
        .unwrap()
        .expect(200);
    // Both keys on one request: a fresh header key with a used body key is a 409.
    post(&srv, TRACK, &body("same"), &[("idempotency-key", "fresh")])
        .await
        .unwrap()
        .expect_err(409, "duplicate_idempotency_key");
    let ev = events(&srv, "?idempotency_header=same").await;
    assert_eq!(ev.len(), 1);
    assert!(ev[0]["idempotency_key"].is_null());
}

#[tokio::test]
async fn batch_size_limits() {
    let cfg = Config {
        batch_rate_limit_per_sec: 0,
        ..Config::default()
    };
    let srv = start(cfg).await;
    let item = json!({"customer_id": "cus_1", "feature_id": "messages"});
    batch(&srv, json!([]))
        .await
        .expect_err(400, "invalid_inputs");
    let big: Vec<_> = (0..1001).map(|_| item.clone()).collect();
    let r = batch(&srv, json!(big))
        .await
        .expect_err(400, "invalid_inputs");
    assert!(r.json()["message"].as_str().unwrap().contains("1001"));
    batch(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .expect_err(400, "invalid_inputs");
    assert!(events(&srv, "").await.is_empty());
    let max: Vec<_> = (0..1000).map(|_| item.clone()).collect();
    let r = batch(&srv, json!(max)).await.expect(200);
    assert_eq!(r.json(), json!({"success": true}));
    assert_eq!(events(&srv, "?via=batch").await.len(), 1000);
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_1").await;
    assert_eq!(
        b["customers"]["cus_1"]["features"]["messages"]["usage"],
        1000
    );
    batch(&srv, json!([item])).await.expect(200);
}

#[tokio::test]
async fn one_bad_item_fails_the_whole_batch() {
    let srv = start_default().await;
    let ok = json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "b-ok"});
    let r = batch(&srv, json!([ok, ok, {"customer_id": "cus_1"}]))
        .await
        .expect_err(400, "invalid_inputs");
    let msg = r.json()["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("items[2]"), "{msg}");
    let r = batch(
        &srv,
        json!([ok, {"customer_id": "cus_1", "feature_id": "nope"}]),
    )
    .await
    .expect_err(404, "feature_not_found");
    assert!(r.json()["message"].as_str().unwrap().contains("items[1]"));
    batch(
        &srv,
        json!([ok, {"customer_id": "ghost", "feature_id": "messages"}]),
    )
    .await
    .expect_err(404, "customer_not_found");
    batch(
        &srv,
        json!([{"customer_id": "cus_1", "event_name": "nope"}]),
    )
    .await
    .expect_err(404, "invalid_request");
    batch(
        &srv,
        json!([{"customer_id": "cus_1", "feature_id": "messages", "entity_id": "nope"}]),
    )
    .await
    .expect_err(404, "entity_not_found");
    batch(
        &srv,
        json!([ok, {"customer_id": "cus_1", "feature_id": "messages", "timestamp": 1.5}]),
    )
    .await
    .expect_err(400, "invalid_inputs");
    assert!(events(&srv, "").await.is_empty(), "nothing recorded");
    // The key of the good item was not consumed.
    track(&srv, ok.clone()).await.expect(200);
}

#[tokio::test]
async fn batch_duplicates_dropped_silently() {
    let srv = start_default().await;
    track(&srv, body("already")).await.expect(200);
    let items = json!([
        {"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "x"},
        {"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "x", "value": 50},
        {"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "already"},
        {"customer_id": "cus_2", "feature_id": "messages"},
        {"customer_id": "cus_2", "feature_id": "messages"},
    ]);
    batch(&srv, items).await.expect(200);
    let ev = events(&srv, "?via=batch").await;
    assert_eq!(ev.len(), 3, "x once, two key-less items");
    assert_eq!(ev[0]["value"], 1, "the first occurrence wins");
    let s = stats(&srv).await;
    assert_eq!(s["duplicates_dropped_in_batch"], 2);
    assert_eq!(s["duplicates_rejected"], 0);
    // The batch claimed "x" for single tracks too.
    track(&srv, body("x"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    // Replaying the whole batch is fine: everything keyed is dropped.
    batch(
        &srv,
        json!([{"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": "x"}]),
    )
    .await
    .expect(200);
    assert_eq!(events(&srv, "?via=batch").await.len(), 3);
}

#[tokio::test]
async fn batch_rate_limit_is_plain_text_429() {
    let srv = start_default().await;
    let item = json!([{"customer_id": "cus_1", "feature_id": "messages"}]);
    // Fired concurrently so all 12 land well inside one rolling second even on a loaded box.
    let addr = srv.addr();
    let body = serde_json::to_vec(&item).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let hs = [
                ("authorization", "Bearer am_sk_test_a"),
                ("content-type", "application/json"),
            ];
            send(addr, "POST", BATCH, &hs, body).await.unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        ok,
        10,
        "{:?}",
        statuses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let limited = statuses.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(limited.text(), "Too many requests, please try again later.");
    assert_eq!(limited.header("retry-after").as_deref(), Some("1"));
    assert!(limited
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        limited.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    // Track is not limited by it.
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .expect(200);
    assert_eq!(stats(&srv).await["batch_rate_limited"], 2);
    // A rolling second later it admits again.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    batch(&srv, item).await.expect(200);
}
