//! Fault injection: each probabilistic kind at probability 1.0, outage modes, scripts,
//! seeded replay, and the /_mock/faults API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn body(key: &str) -> serde_json::Value {
    json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": key})
}

async fn fault_count(srv: &MockServer, kind: &str) -> u64 {
    stats(srv).await["faults_injected"][kind].as_u64().unwrap()
}

#[tokio::test]
async fn error_faults_at_probability_one() {
    let srv = start_default().await;
    for (field, status) in [("error_500", 500), ("error_502", 502), ("error_503", 503)] {
        set_faults(&srv, json!({"clear": true, field: 1.0})).await;
        let r = track(&srv, body("e"))
            .await
            .expect_err(status, "internal_error");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*")
        );
        if status == 503 {
            assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        } else {
            assert_eq!(r.header("retry-after"), None);
        }
        // Batch routes are API routes too.
        assert_eq!(batch(&srv, json!([body("b")])).await.status, status);
        assert_eq!(fault_count(&srv, field).await, 2);
    }
    set_faults(
        &srv,
        json!({"clear": true, "rate_limit_429": 1.0, "retry_after_secs": 3}),
    )
    .await;
    let r = track(&srv, body("e")).await.expect(429);
    assert_eq!(r.text(), "Too many requests, please try again later.");
    assert_eq!(r.header("retry-after").as_deref(), Some("3"));
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    assert_eq!(fault_count(&srv, "rate_limit_429").await, 1);
    // Nothing recorded, key never kept.
    assert!(events(&srv, "").await.is_empty());
    set_faults(&srv, json!({"clear": true})).await;
    track(&srv, body("e")).await.expect(200);
    let s = stats(&srv).await;
    assert_eq!(s["by_status"]["500"], 2);
    assert_eq!(s["by_status"]["429"], 1);
}

#[tokio::test]
async fn faults_never_touch_mock_routes() {
    let srv = start_default().await;
    set_faults(
        &srv,
        json!({"error_500": 1.0, "reset_before_body": 1.0, "latency_ms": 2000, "outage": true}),
    )
    .await;
    let t = Instant::now();
    get(&srv, "/_mock/health").await.expect(200);
    get(&srv, "/_mock/stats").await.expect(200);
    get(&srv, "/_mock/events").await.expect(200);
    get(&srv, "/_mock/balances").await.expect(200);
    assert!(t.elapsed() < Duration::from_millis(1500));
    // Preflights are never faulted either.
    send(
        srv.addr(),
        "OPTIONS",
        TRACK,
        &[("origin", "http://t")],
        Vec::new(),
    )
    .await
    .unwrap()
    .expect(204);
    set_faults(&srv, json!({"clear": true})).await;
}

#[tokio::test]
async fn latency_fixed_and_jitter() {
    let srv = start_default().await;
    set_faults(&srv, json!({"latency_ms": 300})).await;
    let t = Instant::now();
    track(&srv, body("l1")).await.expect(200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    set_faults(&srv, json!({"latency_ms": 0, "latency_jitter_ms": 50})).await;
    let t = Instant::now();
    track(&srv, body("l2")).await.expect(200);
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(fault_count(&srv, "latency").await, 2);
}

#[tokio::test]
async fn drop_after_record_records_then_drops() {
    let srv = start_default().await;
    set_faults(&srv, json!({"drop_after_record": 1.0})).await;
    let r = post(&srv, TRACK, &body("d1"), &[]).await;
    assert!(r.is_err(), "connection dropped without an answer: {r:?}");
    let ev = events(&srv, "?idempotency_key=d1").await;
    assert_eq!(ev.len(), 1, "recorded");
    assert_eq!(ev[0]["dropped_after_record"], true, "marked as unanswered");
    set_faults(&srv, json!({"clear": true})).await;
    // The retry the client must do: the key was kept, so it is a 409 (already recorded).
    track(&srv, body("d1"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    assert_eq!(fault_count(&srv, "drop_after_record").await, 1);
    track(&srv, body("d2")).await.expect(200);
    let ev = events(&srv, "?idempotency_key=d2").await;
    assert!(
        ev[0].get("dropped_after_record").is_none(),
        "answered: no mark"
    );
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_1").await;
    assert_eq!(
        b["customers"]["cus_1"]["features"]["messages"]["usage"], 2,
        "d1 once, d2 once"
    );
}

#[tokio::test]
async fn reset_before_body_records_nothing() {
    let srv = start_default().await;
    set_faults(&srv, json!({"reset_before_body": 1.0})).await;
    let r = post(&srv, TRACK, &body("r1"), &[]).await;
    assert!(r.is_err(), "{r:?}");
    let r = post(&srv, BATCH, &json!([body("r2")]), &[]).await;
    assert!(r.is_err(), "{r:?}");
    assert!(events(&srv, "").await.is_empty());
    assert_eq!(fault_count(&srv, "reset_before_body").await, 2);
    set_faults(&srv, json!({"reset_before_body": 0.0})).await;
    track(&srv, body("r1")).await.expect(200);
}

#[tokio::test]
async fn outage_modes() {
    let srv = start_default().await;
    let f = set_faults(&srv, json!({"outage": true})).await;
    assert_eq!(f["outage_mode"], "503");
    let r = track(&srv, body("o"))
        .await
        .expect_err(503, "internal_error");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    batch(&srv, json!([body("o")])).await.expect(503);
    set_faults(&srv, json!({"outage_mode": "reset"})).await;
    assert!(post(&srv, TRACK, &body("o"), &[]).await.is_err());
    assert!(events(&srv, "").await.is_empty());
    assert_eq!(fault_count(&srv, "outage").await, 3);
    set_faults(&srv, json!({"outage": false})).await;
    track(&srv, body("o")).await.expect(200);
}

#[tokio::test]
async fn scripts_run_in_order_per_key() {
    let srv = start_default().await;
    let f = set_faults(
        &srv,
        json!({"scripts": {"s1": ["503", "429", "500", "502", "latency:200", "ok"]}}),
    )
    .await;
    assert_eq!(f["scripts"]["s1"].as_array().unwrap().len(), 6);
    // Merged, not replaced.
    let f = set_faults(&srv, json!({"scripts": {"s2": ["drop_after_record"]}})).await;
    assert!(f["scripts"]["s1"].is_array() && f["scripts"]["s2"].is_array());
    // Another key is unaffected by s1's script.
    track(&srv, body("other")).await.expect(200);

    let r = track(&srv, body("s1"))
        .await
        .expect_err(503, "internal_error");
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    let r = track(&srv, body("s1")).await.expect(429);
    assert_eq!(r.text(), "Too many requests, please try again later.");
    track(&srv, body("s1"))
        .await
        .expect_err(500, "internal_error");
    track(&srv, body("s1"))
        .await
        .expect_err(502, "internal_error");
    let t = Instant::now();
    track(&srv, body("s1")).await.expect(200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    // Exhausted: normal behaviour (here: the key is taken now).
    track(&srv, body("s1")).await.expect(409);
    assert!(get_json(&srv, "/_mock/faults").await["scripts"]
        .get("s1")
        .is_none());

    assert!(post(&srv, TRACK, &body("s2"), &[]).await.is_err());
    track(&srv, body("s2")).await.expect(409);

    set_faults(
        &srv,
        json!({"scripts": {"s3": ["reset_before_body", "ok", "ok"]}}),
    )
    .await;
    assert!(post(&srv, TRACK, &body("s3"), &[]).await.is_err());
    assert!(events(&srv, "?idempotency_key=s3").await.is_empty());
    track(&srv, body("s3")).await.expect(200);
    // "ok" runs normally: the key is already taken.
    track(&srv, body("s3")).await.expect(409);
}

#[tokio::test]
async fn scripts_override_probabilistic_faults_and_match_batch_and_header() {
    let srv = start_default().await;
    set_faults(
        &srv,
        json!({"error_500": 1.0, "scripts": {"first": ["ok"], "hdr": ["503"]}}),
    )
    .await;
    track(&srv, body("first")).await.expect(200);
    track(&srv, body("first2")).await.expect(500);
    set_faults(
        &srv,
        json!({"clear": true, "scripts": {"b1": ["502", "ok"]}}),
    )
    .await;
    // Batch uses the first item's key.
    batch(&srv, json!([body("b1"), body("b2")]))
        .await
        .expect(502);
    batch(&srv, json!([body("b2"), body("b1")]))
        .await
        .expect(200);
    set_faults(&srv, json!({"scripts": {"hdr": ["503"]}})).await;
    // No body key: the Idempotency-Key header is used.
    post(
        &srv,
        TRACK,
        &json!({"customer_id": "cus_1", "feature_id": "messages"}),
        &[("idempotency-key", "hdr")],
    )
    .await
    .unwrap()
    .expect(503);
    // Clear empties scripts; an empty list removes one key.
    set_faults(&srv, json!({"scripts": {"x": ["500"], "y": ["500"]}})).await;
    let f = set_faults(&srv, json!({"scripts": {"x": []}})).await;
    assert!(f["scripts"].get("x").is_none() && f["scripts"].get("y").is_some());
    let f = set_faults(&srv, json!({"clear": true})).await;
    assert_eq!(f["scripts"], json!({}));
    track(&srv, body("y")).await.expect(200);
}

async fn pattern(srv: &MockServer, n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = track(
            srv,
            json!({"customer_id": "cus_1", "feature_id": "messages"}),
        )
        .await;
        out.push(r.status);
    }
    out
}

#[tokio::test]
async fn seeded_faults_replay() {
    let srv = start_default().await;
    set_faults(
        &srv,
        json!({"seed": 42, "error_503": 0.5, "error_500": 0.2}),
    )
    .await;
    let a = pattern(&srv, 40).await;
    set_faults(&srv, json!({"seed": 42})).await;
    let b = pattern(&srv, 40).await;
    assert_eq!(a, b);
    assert!(a.contains(&200) && a.contains(&503), "{a:?}");
    set_faults(&srv, json!({"seed": 43})).await;
    let c = pattern(&srv, 40).await;
    assert_ne!(a, c);
    // A server started with the same seed in its config replays the same run.
    let cfg = Config {
        seed: Some(42),
        faults: Some(autumn_mock::FaultsPatch {
            error_503: Some(0.5),
            error_500: Some(0.2),
            ..Default::default()
        }),
        ..Config::default()
    };
    let srv2 = start(cfg).await;
    assert_eq!(pattern(&srv2, 40).await, a);
    assert_eq!(get_json(&srv2, "/_mock/faults").await["seed"], 42);
}

#[tokio::test]
async fn faults_api_validation_and_shape() {
    let srv = start_default().await;
    let f = get_json(&srv, "/_mock/faults").await;
    for k in [
        "seed",
        "error_500",
        "error_502",
        "error_503",
        "rate_limit_429",
        "latency_ms",
        "latency_jitter_ms",
        "drop_after_record",
        "reset_before_body",
        "outage",
        "outage_mode",
        "retry_after_secs",
        "scripts",
    ] {
        assert!(f.get(k).is_some(), "missing {k} in {f}");
    }
    for bad in [
        json!({"error_500": 1.5}),
        json!({"error_5OO": 0.5}),
        json!({"scripts": {"k": ["404"]}}),
        json!({"outage_mode": "off"}),
        json!([1]),
    ] {
        post(&srv, "/_mock/faults", &bad, &[])
            .await
            .unwrap()
            .expect_err(400, "invalid_inputs");
    }
    post_raw(&srv, "/_mock/faults", b"{oops".to_vec(), &[])
        .await
        .unwrap()
        .expect(400);
    // Failed patches change nothing.
    assert_eq!(get_json(&srv, "/_mock/faults").await, f);
}

/// POST from a spawned task (owns its address and body).
async fn post_at(addr: std::net::SocketAddr, path: &'static str, b: serde_json::Value) -> Resp {
    let std = std_headers(KEY);
    let hs: Vec<(&str, &str)> = std.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    send(addr, "POST", path, &hs, serde_json::to_vec(&b).unwrap())
        .await
        .expect("answered")
}

/// `hold:<ms>:<status>`: the key is claimed as the request starts, so a second request with it
/// is a 409 while the first stalls; when the first then fails, the key is free again and a
/// third request records the event. (What a running Autumn did with its database paused.)
#[tokio::test]
async fn a_held_claim_answers_409_then_fails_and_releases() {
    let srv = start_default().await;
    for (end, code) in [("500", "internal_error"), ("404", "customer_not_found")] {
        let key = format!("held-{end}");
        set_faults(
            &srv,
            json!({"clear": true, "scripts": {key.clone(): [format!("hold:600:{end}")]}}),
        )
        .await;
        let t0 = Instant::now();
        let first = {
            let (srv_addr, b) = (srv.addr(), body(&key));
            tokio::spawn(post_at(srv_addr, TRACK, b))
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        let second = track(&srv, body(&key)).await;
        second.expect_err(409, "duplicate_idempotency_key");
        assert!(
            t0.elapsed() < Duration::from_millis(550),
            "the 409 does not wait for the stall"
        );
        let first = first.await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(600));
        first.expect_err(end.parse().unwrap(), code);
        assert!(
            events(&srv, &format!("?idempotency_key={key}"))
                .await
                .is_empty(),
            "nothing recorded yet"
        );
        track(&srv, body(&key)).await.expect(200);
        assert_eq!(
            events(&srv, &format!("?idempotency_key={key}")).await.len(),
            1
        );
    }
    assert_eq!(fault_count(&srv, "hold_claim").await, 2);
}

/// A client that gives up on a held request does not stop it: it still ends, and releases, on
/// schedule.
#[tokio::test]
async fn a_held_claim_outlives_the_client() {
    let srv = start_default().await;
    set_faults(&srv, json!({"scripts": {"gone": ["hold:400:503"]}})).await;
    let addr = srv.addr();
    let gave_up = tokio::time::timeout(
        Duration::from_millis(100),
        post_at(addr, TRACK, body("gone")),
    )
    .await;
    assert!(gave_up.is_err(), "the client timed out");
    track(&srv, body("gone"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    tokio::time::sleep(Duration::from_millis(500)).await;
    track(&srv, body("gone")).await.expect(200);
    assert_eq!(events(&srv, "?idempotency_key=gone").await.len(), 1);
}

/// `hold:<ms>:200` is a slow request that records in the end, under its own claim; a batch
/// hold claims every item, so a copy sent meanwhile is dropped from its batch silently.
#[tokio::test]
async fn a_held_claim_that_succeeds_records_once() {
    let srv = start_default().await;
    set_faults(
        &srv,
        json!({"scripts": {"slow-a": ["hold:400:200"]}, "hold_claim_ms": 400}),
    )
    .await;
    let addr = srv.addr();
    let first = tokio::spawn(post_at(
        addr,
        BATCH,
        json!([body("slow-a"), body("slow-b")]),
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The copy's items are claimed by the stalled batch: dropped, yet the answer is 200.
    batch(&srv, json!([body("slow-b")])).await.expect(200);
    assert!(events(&srv, "?idempotency_key=slow-b").await.is_empty());
    first.await.unwrap().expect(200);
    assert_eq!(events(&srv, "?idempotency_key=slow-a").await.len(), 1);
    assert_eq!(events(&srv, "?idempotency_key=slow-b").await.len(), 1);
    // The probabilistic form, with its settings.
    let v = set_faults(
        &srv,
        json!({"clear": true, "hold_claim": 1.0, "hold_claim_ms": 50, "hold_claim_status": 502}),
    )
    .await;
    assert_eq!(v["hold_claim_status"], 502);
    track(&srv, body("p"))
        .await
        .expect_err(502, "internal_error");
    assert_eq!(
        fault_count(&srv, "hold_claim").await,
        2,
        "one scripted, one drawn"
    );
    let bad = post(
        &srv,
        "/_mock/faults",
        &json!({"hold_claim_status": 418}),
        &[],
    )
    .await
    .unwrap();
    bad.expect_err(400, "invalid_inputs");
}

/// `redirect_302`: an auth layer's redirect to its sign-in page; nothing is processed.
#[tokio::test]
async fn a_redirect_points_at_the_sign_in_page() {
    let srv = start_default().await;
    set_faults(&srv, json!({"scripts": {"r": ["redirect_302"]}})).await;
    let r = track(&srv, body("r")).await.expect(302);
    assert_eq!(r.header("location").as_deref(), Some("/login"));
    assert!(events(&srv, "?idempotency_key=r").await.is_empty());
    let page = get(&srv, "/login").await.expect(200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    set_faults(&srv, json!({"clear": true, "redirect_302": 1.0})).await;
    assert_eq!(batch(&srv, json!([body("r2")])).await.status, 302);
    assert_eq!(
        fault_count(&srv, "redirect_302").await,
        2,
        "one scripted, one drawn"
    );
}
