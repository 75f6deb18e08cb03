//! Auth, x-api-version and body validation rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;

fn ok_body() -> serde_json::Value {
    json!({"customer_id": "cus_1", "feature_id": "messages"})
}

async fn with_auth(srv: &MockServer, auth: Option<&str>) -> Resp {
    let mut hs = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        hs.push(("authorization", a));
    }
    let body = serde_json::to_vec(&ok_body()).unwrap();
    send(srv.addr(), "POST", TRACK, &hs, body).await.unwrap()
}

#[tokio::test]
async fn auth_cases() {
    let srv = start_default().await;
    let r = with_auth(&srv, None).await.expect_err(401, "no_secret_key");
    assert_eq!(r.json()["env"], "sandbox");
    with_auth(&srv, Some("Bearer "))
        .await
        .expect_err(401, "no_secret_key");
    with_auth(&srv, Some(""))
        .await
        .expect_err(401, "no_secret_key");
    // "Bearer " is case-sensitive.
    with_auth(&srv, Some("bearer am_sk_test_abc"))
        .await
        .expect_err(401, "invalid_secret_key");
    with_auth(&srv, Some("am_sk_test_abc"))
        .await
        .expect_err(401, "invalid_secret_key");
    with_auth(&srv, Some("Bearer garbage"))
        .await
        .expect_err(401, "invalid_secret_key");
    with_auth(&srv, Some("Bearer am_sk_test_"))
        .await
        .expect_err(401, "invalid_secret_key");
    with_auth(&srv, Some("Bearer am_sk_prod_abc"))
        .await
        .expect_err(401, "invalid_secret_key");
    let r = with_auth(&srv, Some("Bearer am_pk_live_abc"))
        .await
        .expect_err(401, "endpoint_not_public");
    assert_eq!(r.json()["env"], "live");
    with_auth(&srv, Some("Bearer am_pk_test_abc"))
        .await
        .expect_err(401, "endpoint_not_public");
    with_auth(&srv, Some("Bearer am_sk_test_abc"))
        .await
        .expect(200);
    with_auth(&srv, Some("Bearer am_sk_live_abc"))
        .await
        .expect(200);
    // Nothing recorded for refused requests.
    assert_eq!(events(&srv, "").await.len(), 2);
}

#[tokio::test]
async fn configured_secret_keys_only() {
    let cfg = Config {
        secret_keys: Some(vec!["am_sk_test_only".into()]),
        ..Config::default()
    };
    let srv = start(cfg).await;
    with_auth(&srv, Some("Bearer am_sk_test_only"))
        .await
        .expect(200);
    with_auth(&srv, Some("Bearer am_sk_test_other"))
        .await
        .expect_err(401, "invalid_secret_key");
    let r = with_auth(&srv, Some("Bearer am_sk_live_other"))
        .await
        .expect_err(401, "invalid_secret_key");
    assert_eq!(r.json()["env"], "live");
}

#[tokio::test]
async fn env_follows_key() {
    let srv = start_default().await;
    let body = json!({"customer_id": "nobody", "feature_id": "messages"});
    let r = post(
        &srv,
        TRACK,
        &body,
        &[("authorization", &format!("Bearer {LIVE_KEY}"))],
    )
    .await
    .unwrap()
    .expect_err(404, "customer_not_found");
    assert_eq!(r.json()["env"], "live");
    let r = track(&srv, body)
        .await
        .expect_err(404, "customer_not_found");
    assert_eq!(r.json()["env"], "sandbox");
}

#[tokio::test]
async fn api_version_rules() {
    let srv = start_default().await;
    for good in ["2.3.0", "2.3", "1.2.10"] {
        post(&srv, TRACK, &ok_body(), &[("x-api-version", good)])
            .await
            .unwrap()
            .expect(200);
    }
    for bad in ["v2", "2", "2.3.0.1", "2.x", "", "2..3", "2.3 beta"] {
        post(&srv, TRACK, &ok_body(), &[("x-api-version", bad)])
            .await
            .unwrap()
            .expect_err(400, "invalid_api_version");
    }
    // Absent header: accepted, recorded as null.
    let hs = [
        ("authorization", "Bearer am_sk_test_abc"),
        ("content-type", "application/json"),
    ];
    send(
        srv.addr(),
        "POST",
        TRACK,
        &hs,
        serde_json::to_vec(&ok_body()).unwrap(),
    )
    .await
    .unwrap()
    .expect(200);
    let evs = events(&srv, "").await;
    assert_eq!(evs.len(), 4);
    assert_eq!(evs[0]["api_version"], "2.3.0");
    assert_eq!(evs[1]["api_version"], "2.3");
    assert!(evs[3]["api_version"].is_null());
}

#[tokio::test]
async fn validation_errors() {
    let srv = start_default().await;
    let now = now_ms();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!({}), "customer_id"),
        (json!([]), "expected object"),
        (json!("str"), "expected object"),
        (json!({"feature_id": "messages"}), "customer_id"),
        (
            json!({"customer_id": "", "feature_id": "messages"}),
            "customer_id",
        ),
        (
            json!({"customer_id": 5, "feature_id": "messages"}),
            "customer_id",
        ),
        (
            json!({"customer_id": null, "feature_id": "messages"}),
            "customer_id",
        ),
        (json!({"customer_id": "cus_1"}), "feature_id"),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "event_name": "message_sent"}),
            "not both",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": ""}),
            "feature_id",
        ),
        (
            json!({"customer_id": "cus_1", "event_name": ""}),
            "event_name",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": 3}),
            "feature_id",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "value": "1"}),
            "value",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "value": null}),
            "value",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "properties": [1]}),
            "properties",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "properties": "x"}),
            "properties",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": 1.5}),
            "timestamp",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": (now as f64)}),
            "timestamp",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": now + 60_000}),
            "future",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": 0}),
            "timestamp",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": -5}),
            "timestamp",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": "2024-01-01"}),
            "timestamp",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": 7}),
            "idempotency_key",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "entity_id": 7}),
            "entity_id",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "overage_behavior": "deny"}),
            "overage_behavior",
        ),
        (
            json!({"customer_id": "cus_1", "feature_id": "messages", "async": "yes"}),
            "async",
        ),
    ];
    for (body, needle) in cases {
        let r = track(&srv, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let j = r.json();
        assert_eq!(j["code"], "invalid_inputs", "{body}");
        assert_eq!(j["env"], "sandbox");
        let msg = j["message"].as_str().unwrap();
        assert!(
            msg.contains(needle),
            "{body}: message {msg:?} lacks {needle:?}"
        );
    }
    assert!(events(&srv, "").await.is_empty());
    // 1 s of clock slack is allowed; a past timestamp is fine; unknown fields are ignored.
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": now_ms() + 500,
               "whatever": {"x": 1}, "value": 2.5, "properties": {"a": [1, 2]},
               "overage_behavior": "overflow", "async": false, "idempotency_key": "k1",
               "entity_id": "seat_1"}),
    )
    .await
    .expect(200);
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "timestamp": 1_600_000_000_000u64}),
    )
    .await
    .expect(200);
}

#[tokio::test]
async fn non_json_and_non_utf8_bodies_read_as_empty_object() {
    let srv = start_default().await;
    for body in [
        b"{not json".to_vec(),
        b"".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80, b'{'],
        b"{\"customer_id\": \"\xff\xfe\", \"feature_id\": \"messages\"}".to_vec(),
    ] {
        let r = post_raw(&srv, TRACK, body, &[])
            .await
            .unwrap()
            .expect_err(400, "invalid_inputs");
        assert!(r.json()["message"]
            .as_str()
            .unwrap()
            .contains("customer_id"));
    }
    // Batch: `{}` is not an array.
    post_raw(&srv, BATCH, b"nope".to_vec(), &[])
        .await
        .unwrap()
        .expect_err(400, "invalid_inputs");
    get(&srv, "/_mock/health").await.expect(200);
}

#[tokio::test]
async fn not_found_lookups() {
    let srv = start_default().await;
    track(&srv, json!({"customer_id": "cus_1", "feature_id": "nope"}))
        .await
        .expect_err(404, "feature_not_found");
    track(&srv, json!({"customer_id": "cus_1", "event_name": "nope"}))
        .await
        .expect_err(404, "invalid_request");
    track(
        &srv,
        json!({"customer_id": "cus_404", "feature_id": "messages"}),
    )
    .await
    .expect_err(404, "customer_not_found");
    track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "messages", "entity_id": "seat_9"}),
    )
    .await
    .expect_err(404, "entity_not_found");
    track(
        &srv,
        json!({"customer_id": "cus_3", "feature_id": "messages", "entity_id": "seat_2"}),
    )
    .await
    .expect_err(404, "entity_not_found");
    assert!(events(&srv, "").await.is_empty());
}

#[tokio::test]
async fn auto_create_customers() {
    let cfg = Config {
        auto_create_customers: true,
        ..Config::default()
    };
    let srv = start(cfg).await;
    let r = track(
        &srv,
        json!({"customer_id": "new_guy", "feature_id": "messages", "value": 4}),
    )
    .await
    .expect(200)
    .json();
    assert_eq!(r["balance"]["remaining"], 96);
    let b = get_json(&srv, "/_mock/balances?customer_id=new_guy").await;
    assert_eq!(b["customers"]["new_guy"]["auto_created"], true);
    assert_eq!(
        b["customers"]["new_guy"]["features"]["messages"]["usage"],
        4
    );
    // Entities are not auto-created.
    track(
        &srv,
        json!({"customer_id": "other", "feature_id": "messages", "entity_id": "e1"}),
    )
    .await
    .expect_err(404, "entity_not_found");
    // Config JSON key.
    let cfg = Config::from_json(r#"{"auto_create_customers": true}"#).unwrap();
    assert!(cfg.auto_create_customers);
    assert_eq!(cfg.features.len(), Config::default().features.len());
}
