//! Responses that lie: proxies' HTML pages, garbage and truncated bodies, `Retry-After` values
//! of ten years, in the past or unreadable, and slow-loris answers (headers that never finish,
//! bodies that trickle forever) — each as a script action and as a global probability.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn body(key: &str) -> serde_json::Value {
    json!({"customer_id": "cus_1", "feature_id": "messages", "idempotency_key": key})
}

async fn fault_count(srv: &MockServer, kind: &str) -> u64 {
    stats(srv).await["faults_injected"][kind].as_u64().unwrap()
}

async fn script(srv: &MockServer, key: &str, actions: &[&str]) {
    set_faults(srv, json!({"scripts": {key: actions}})).await;
}

fn assert_html(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    let text = r.text();
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(text.contains(&format!("<title>{status} ")), "{text}");
    assert!(text.trim_end().ends_with("<!-- end of proxy page -->"));
    assert!(text.len() > 1000, "long enough to notice if quoted whole");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
}

#[tokio::test]
async fn html_pages_are_not_processed_and_release_the_key() {
    let srv = start_default().await;
    for status in [502u16, 503, 403] {
        let key = format!("h{status}");
        script(&srv, &key, &[&format!("html_{status}")]).await;
        let r = track(&srv, body(&key)).await;
        assert_html(&r, status);
        // CORS headers still there: a browser gets to read the page.
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*")
        );
        assert!(events(&srv, &format!("?idempotency_key={key}"))
            .await
            .is_empty());
        // Nothing was claimed: the retry with the same key is processed.
        track(&srv, body(&key)).await.expect(200);
        assert_eq!(fault_count(&srv, &format!("html_{status}")).await, 1);
    }
    // As probabilities, on batches too.
    for status in [502u16, 503, 403] {
        let field = format!("html_{status}");
        set_faults(&srv, json!({"clear": true, field.as_str(): 1.0})).await;
        assert_html(&track(&srv, body("p")).await, status);
        assert_html(&batch(&srv, json!([body("pb")])).await, status);
        assert_eq!(fault_count(&srv, &field).await, 3);
    }
    set_faults(&srv, json!({"clear": true})).await;
    assert_eq!(events(&srv, "?idempotency_key=p").await.len(), 0);
}

#[tokio::test]
async fn garbage_and_truncated_bodies_come_after_processing() {
    let srv = start_default().await;
    script(&srv, "g1", &["garbage_body"]).await;
    let r = track(&srv, body("g1")).await.expect(200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert!(std::str::from_utf8(&r.body).is_err(), "not even UTF-8");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    // The server accepted the event; only the answer was mangled.
    assert_eq!(events(&srv, "?idempotency_key=g1").await.len(), 1);
    track(&srv, body("g1"))
        .await
        .expect_err(409, "duplicate_idempotency_key");

    script(&srv, "t1", &["truncated_body"]).await;
    let r = track(&srv, body("t1")).await.expect(200);
    let text = r.text();
    assert!(text.starts_with("{\"customer_id\":\"cus_1\""), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
    assert_eq!(
        r.header("content-length").as_deref(),
        Some(text.len().to_string().as_str()),
        "the length matches what is sent: the body is short, not cut off"
    );
    assert_eq!(events(&srv, "?idempotency_key=t1").await.len(), 1);

    // A refusal, truncated: still the refusal's status, and nothing recorded.
    script(&srv, "t4", &["truncated_body"]).await;
    let r = track(
        &srv,
        json!({"customer_id": "cus_1", "feature_id": "nope", "idempotency_key": "t4"}),
    )
    .await
    .expect(404);
    assert!(r.text().starts_with("{\"message\":"), "{}", r.text());
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    assert!(events(&srv, "?idempotency_key=t4").await.is_empty());

    // As probabilities.
    set_faults(&srv, json!({"garbage_body": 1.0})).await;
    let r = track(&srv, body("g2")).await.expect(200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    set_faults(&srv, json!({"clear": true, "truncated_body": 1.0})).await;
    let r = batch(&srv, json!([body("b1"), body("b2")]))
        .await
        .expect(200);
    assert_eq!(r.text(), "{\"succes");
    set_faults(&srv, json!({"clear": true})).await;
    assert_eq!(events(&srv, "?idempotency_key=b2").await.len(), 1);
    assert_eq!(fault_count(&srv, "garbage_body").await, 2);
    assert_eq!(fault_count(&srv, "truncated_body").await, 3);
}

#[tokio::test]
async fn retry_after_lies() {
    let srv = start_default().await;
    let cases = [
        ("429_retry_after_10y", 429, "315360000"),
        ("503_retry_after_10y", 503, "315360000"),
        ("429_retry_after_past", 429, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("503_retry_after_past", 503, "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("429_retry_after_garbage", 429, "in a while"),
        ("503_retry_after_garbage", 503, "in a while"),
    ];
    for (i, (action, status, value)) in cases.iter().enumerate() {
        let key = format!("ra{i}");
        script(&srv, &key, &[action]).await;
        let r = track(&srv, body(&key)).await.expect(*status);
        assert_eq!(r.header("retry-after").as_deref(), Some(*value), "{action}");
        assert!(events(&srv, &format!("?idempotency_key={key}"))
            .await
            .is_empty());
        track(&srv, body(&key)).await.expect(200);
    }
    // The global override applies to every injected 429/503, outages included.
    let past = "Thu, 01 Jan 1970 00:00:00 GMT";
    let v = set_faults(&srv, json!({"rate_limit_429": 1.0, "retry_after": past})).await;
    assert_eq!(v["retry_after"], past);
    let r = track(&srv, body("x")).await.expect(429);
    assert_eq!(r.header("retry-after").as_deref(), Some(past));
    set_faults(&srv, json!({"rate_limit_429": 0.0, "outage": true})).await;
    let r = track(&srv, body("x")).await.expect(503);
    assert_eq!(r.header("retry-after").as_deref(), Some(past));
    // "" goes back to retry_after_secs.
    let v = set_faults(&srv, json!({"retry_after": "", "retry_after_secs": 7})).await;
    assert!(v["retry_after"].is_null());
    let r = track(&srv, body("x")).await.expect(503);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    // A value that cannot be a header is refused, and nothing changes.
    let r = post(
        &srv,
        "/_mock/faults",
        &json!({"retry_after": "a\nb", "error_500": 1.0}),
        &[],
    )
    .await
    .unwrap()
    .expect_err(400, "invalid_inputs");
    assert!(r.text().contains("retry_after"));
    assert_eq!(get_json(&srv, "/_mock/faults").await["error_500"], 0.0);
}

/// Sends one raw track request and returns the socket (the answer is read by the caller).
async fn raw_track(srv: &MockServer, key: &str) -> TcpStream {
    let body = serde_json::to_vec(&body(key)).unwrap();
    let mut s = TcpStream::connect(srv.addr()).await.unwrap();
    let head = format!(
        "POST {TRACK} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        srv.addr(),
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    s
}

/// Everything the server sends within `for_how_long`.
async fn read_for(s: &mut TcpStream, for_how_long: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + for_how_long;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return got,
            Ok(Ok(0)) => panic!(
                "the server closed the connection: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => panic!("read error {e}"),
        }
    }
}

#[tokio::test]
async fn slow_headers_never_finish() {
    let srv = start_default().await;
    script(&srv, "sh1", &["slow_headers"]).await;
    let mut s = raw_track(&srv, "sh1").await;
    let first = read_for(&mut s, Duration::from_millis(700)).await;
    let more = read_for(&mut s, Duration::from_millis(1000)).await;
    let text = String::from_utf8_lossy(&first).into_owned() + &String::from_utf8_lossy(&more);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    assert!(text.contains("\r\nx-slow-loris: a"), "{text:?}");
    assert!(!text.contains("\r\n\r\n"), "the head never ends: {text:?}");
    assert!(!more.is_empty(), "it keeps trickling");
    assert!(more.iter().all(|&b| b == b'a'), "{more:?}");
    drop(s);
    // Not processed; the server is fine afterwards.
    assert!(events(&srv, "?idempotency_key=sh1").await.is_empty());
    track(&srv, body("sh1")).await.expect(200);
    assert_eq!(fault_count(&srv, "slow_headers").await, 1);

    // As a probability.
    set_faults(&srv, json!({"slow_headers": 1.0})).await;
    let mut s = raw_track(&srv, "sh2").await;
    let text = read_for(&mut s, Duration::from_millis(700)).await;
    assert!(!text.windows(4).any(|w| w == b"\r\n\r\n"));
    assert!(text.starts_with(b"HTTP/1.1 200 OK\r\n"));
    set_faults(&srv, json!({"clear": true})).await;
    drop(s);
    get(&srv, "/_mock/health").await.expect(200);
}

#[tokio::test]
async fn slow_body_trickles_after_processing() {
    let srv = start_default().await;
    script(&srv, "sb1", &["slow_body"]).await;
    let mut s = raw_track(&srv, "sb1").await;
    let first = read_for(&mut s, Duration::from_millis(700)).await;
    let more = read_for(&mut s, Duration::from_millis(1000)).await;
    let text = String::from_utf8_lossy(&first).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text:?}");
    let (head, rest) = text.split_once("\r\n\r\n").expect("the head is complete");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(
        rest.contains("{\"customer_id\":\"cus_1\""),
        "half the answer: {rest:?}"
    );
    assert!(!more.is_empty(), "it keeps trickling");
    assert!(
        !String::from_utf8_lossy(&more).contains("0\r\n\r\n"),
        "and never ends"
    );
    drop(s);
    // Processed: the client's retry is a 409.
    assert_eq!(events(&srv, "?idempotency_key=sb1").await.len(), 1);
    track(&srv, body("sb1"))
        .await
        .expect_err(409, "duplicate_idempotency_key");
    assert_eq!(fault_count(&srv, "slow_body").await, 1);

    set_faults(&srv, json!({"slow_body": 1.0})).await;
    let mut s = raw_track(&srv, "sb2").await;
    let text = read_for(&mut s, Duration::from_millis(700)).await;
    assert!(text.windows(4).any(|w| w == b"\r\n\r\n"));
    set_faults(&srv, json!({"clear": true})).await;
    drop(s);
    assert_eq!(fault_count(&srv, "slow_body").await, 2);
}

#[tokio::test]
async fn lying_faults_in_the_faults_api_and_config() {
    let srv = start_default().await;
    let v = set_faults(
        &srv,
        json!({"html_502": 0.1, "html_503": 0.2, "html_403": 0.3, "slow_headers": 0.4,
               "garbage_body": 0.5, "truncated_body": 0.6, "slow_body": 0.7,
               "scripts": {"k": ["html_502", "slow_body", "429_retry_after_past"]}}),
    )
    .await;
    for (k, p) in [
        ("html_502", 0.1),
        ("html_503", 0.2),
        ("html_403", 0.3),
        ("slow_headers", 0.4),
        ("garbage_body", 0.5),
        ("truncated_body", 0.6),
        ("slow_body", 0.7),
    ] {
        assert_eq!(v[k], p, "{k}");
    }
    assert_eq!(
        v["scripts"]["k"],
        json!(["html_502", "slow_body", "429_retry_after_past"])
    );
    for bad in [
        json!({"slow_body": 1.5}),
        json!({"scripts": {"k": ["html_500"]}}),
        json!({"scripts": {"k": ["503_retry_after_forever"]}}),
    ] {
        post(&srv, "/_mock/faults", &bad, &[])
            .await
            .unwrap()
            .expect_err(400, "invalid_inputs");
    }
    let cfg = Config::from_json(r#"{"faults": {"html_503": 1.0, "retry_after": "soon"}}"#).unwrap();
    let srv2 = start(cfg).await;
    assert_html(&track(&srv2, body("c")).await, 503);
}
