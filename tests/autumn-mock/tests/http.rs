//! HTTP surface: CORS, Date, 404s, body limits, keep-alive, raw-socket abuse, and many
//! concurrent connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn cors_preflight_on_every_path() {
    let srv = start_default().await;
    for path in [
        TRACK,
        BATCH,
        "/v1/track",
        "/_mock/events",
        "/_mock/faults",
        "/anything/else",
    ] {
        let r = send(
            srv.addr(),
            "OPTIONS",
            path,
            &[
                ("origin", "http://localhost:9000"),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type, x-custom-test, authorization",
                ),
            ],
            Vec::new(),
        )
        .await
        .unwrap()
        .expect(204);
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("http://localhost:9000")
        );
        assert_eq!(
            r.header("access-control-allow-methods").as_deref(),
            Some("POST, GET, OPTIONS")
        );
        let allow = r
            .header("access-control-allow-headers")
            .unwrap()
            .to_lowercase();
        for h in [
            "authorization",
            "content-type",
            "accept",
            "x-api-version",
            "idempotency-key",
            "x-custom-test",
        ] {
            assert!(allow.contains(h), "{allow} lacks {h}");
        }
        assert!(r.header("access-control-max-age").is_some());
        assert!(r.header("date").is_some());
        assert_eq!(
            r.header("access-control-expose-headers").as_deref(),
            Some("Retry-After, Date")
        );
    }
    // Without Origin: `*`.
    let r = send(srv.addr(), "OPTIONS", TRACK, &[], Vec::new())
        .await
        .unwrap()
        .expect(204);
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    // Private network access preflight.
    let r = send(
        srv.addr(),
        "OPTIONS",
        TRACK,
        &[
            ("origin", "https://x.test"),
            ("access-control-request-private-network", "true"),
        ],
        Vec::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        r.header("access-control-allow-private-network").as_deref(),
        Some("true")
    );
    assert_eq!(
        stats(&srv).await["requests"],
        0,
        "preflights are not API requests"
    );
}

#[tokio::test]
async fn every_response_carries_cors_and_date() {
    let srv = start_default().await;
    let origin = [("origin", "http://app.test")];
    let responses = vec![
        post(
            &srv,
            TRACK,
            &json!({"customer_id": "cus_1", "feature_id": "messages"}),
            &origin,
        )
        .await
        .unwrap()
        .expect(200),
        post(&srv, TRACK, &json!({}), &origin)
            .await
            .unwrap()
            .expect(400),
        post(
            &srv,
            TRACK,
            &json!({}),
            &[("origin", "http://app.test"), ("authorization", "x")],
        )
        .await
        .unwrap()
        .expect(401),
        send(srv.addr(), "GET", "/nope", &origin, Vec::new())
            .await
            .unwrap()
            .expect(404),
        send(srv.addr(), "GET", "/_mock/stats", &origin, Vec::new())
            .await
            .unwrap()
            .expect(200),
        send(srv.addr(), "GET", "/_mock/events", &origin, Vec::new())
            .await
            .unwrap()
            .expect(200),
    ];
    for r in responses {
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("http://app.test")
        );
        assert_eq!(
            r.header("access-control-expose-headers").as_deref(),
            Some("Retry-After, Date")
        );
        assert!(r.header("date").unwrap().ends_with("GMT"));
    }
    let r = get(&srv, "/_mock/health").await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let srv = start_default().await;
    for (m, p) in [
        ("GET", TRACK),
        ("PUT", TRACK),
        ("GET", BATCH),
        ("POST", "/v1/balances.track/"),
        ("POST", "/v1/check"),
        ("GET", "/"),
        ("POST", "/_mock/nope"),
        ("GET", "/_mock/reset"),
        ("DELETE", "/_mock/faults"),
    ] {
        let r = send(
            srv.addr(),
            m,
            p,
            &[("authorization", "Bearer am_sk_live_x")],
            Vec::new(),
        )
        .await
        .unwrap()
        .expect(404);
        let j = r.json();
        assert!(j["message"].as_str().is_some());
        assert!(j["code"].as_str().is_some());
        assert!(j["env"].as_str().is_some());
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/json")
        );
    }
}

#[tokio::test]
async fn ten_megabyte_body_is_413() {
    let srv = start_default().await;
    let mut big =
        b"{\"customer_id\":\"cus_1\",\"feature_id\":\"messages\",\"properties\":{\"x\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    big.extend_from_slice(b"\"}}");
    let r = post_raw(&srv, TRACK, big.clone(), &[]).await.unwrap();
    let r = r.expect_err(413, "payload_too_large");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    let r = post_raw(&srv, BATCH, big, &[]).await.unwrap();
    assert_eq!(r.status, 413);
    // Just under the limit is processed (here: a valid body with large properties).
    let mut ok =
        b"{\"customer_id\":\"cus_1\",\"feature_id\":\"messages\",\"properties\":{\"x\":\"".to_vec();
    ok.extend(std::iter::repeat_n(b'a', 2 * 1024 * 1024 - 100));
    ok.extend_from_slice(b"\"}}");
    post_raw(&srv, TRACK, ok, &[]).await.unwrap().expect(200);
    assert_eq!(stats(&srv).await["payload_too_large"], 2);
    get(&srv, "/_mock/health").await.expect(200);
}

/// Write `request` raw, read until EOF/error (or, with `head_only`, the end of the response
/// head). Returns the bytes read and the read error, if any.
async fn raw_exchange(
    addr: std::net::SocketAddr,
    request: &[u8],
    head_only: bool,
) -> (Vec<u8>, Option<std::io::ErrorKind>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) => return (out, None),
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if head_only && out.windows(4).any(|w| w == b"\r\n\r\n") {
                    return (out, None);
                }
            }
            Ok(Err(e)) => return (out, Some(e.kind())),
            Err(_) => panic!(
                "raw exchange timed out; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[tokio::test]
async fn raw_socket_abuse() {
    let srv = start_default().await;
    // Declared 10 MB with Expect: 100-continue: 413 before any body byte is sent.
    let (out, _) = raw_exchange(
        srv.addr(),
        b"POST /v1/balances.track HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\nExpect: 100-continue\r\nAuthorization: Bearer am_sk_test_a\r\n\r\n",
        true,
    )
    .await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Garbage request line: hyper answers 400 and closes; the server survives.
    let (out, _) = raw_exchange(srv.addr(), b"\x00\xffGARBAGE\r\n\r\n", false).await;
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text}"
    );
    // Truncated body, client half-closes.
    let mut s = TcpStream::connect(srv.addr()).await.unwrap();
    s.write_all(
        b"POST /v1/balances.track HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"cus",
    )
    .await
    .unwrap();
    drop(s);
    // Scripted reset after the body: the client sees a reset or EOF, never a response.
    set_faults(&srv, json!({"scripts": {"rk": ["reset_before_body"]}})).await;
    let body = br#"{"customer_id":"cus_1","feature_id":"messages","idempotency_key":"rk"}"#;
    let req = format!(
        "POST /v1/balances.track HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer am_sk_test_a\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(body)
    );
    let (out, err) = raw_exchange(srv.addr(), req.as_bytes(), false).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(err, Some(std::io::ErrorKind::ConnectionReset));
    get(&srv, "/_mock/health").await.expect(200);
}

#[tokio::test]
async fn chunked_body_over_limit_is_413() {
    let srv = start_default().await;
    let mut s = TcpStream::connect(srv.addr()).await.unwrap();
    s.write_all(
        b"POST /v1/balances.track HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer am_sk_test_a\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..48 {
        // 3 MiB in 64 KiB chunks, no Content-Length: the limit trips mid-stream.
        s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        s.write_all(&chunk).await.unwrap();
        s.write_all(b"\r\n").await.unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("payload_too_large"), "{text}");
}

#[tokio::test]
async fn keep_alive_many_requests_on_one_connection() {
    let srv = start_default().await;
    let mut tx = connect(srv.addr()).await;
    let hs = [
        ("authorization", "Bearer am_sk_test_a"),
        ("content-type", "application/json"),
    ];
    for i in 0..50 {
        let body = serde_json::to_vec(&json!({"customer_id": "cus_1", "feature_id": "api_calls", "idempotency_key": format!("ka-{i}")})).unwrap();
        send_on(&mut tx, srv.addr(), "POST", TRACK, &hs, body)
            .await
            .unwrap()
            .expect(200);
    }
    // Errors keep the connection alive too.
    send_on(&mut tx, srv.addr(), "POST", TRACK, &hs, b"{}".to_vec())
        .await
        .unwrap()
        .expect(400);
    send_on(&mut tx, srv.addr(), "GET", "/nope", &hs, Vec::new())
        .await
        .unwrap()
        .expect(404);
    let r = send_on(&mut tx, srv.addr(), "GET", "/_mock/stats", &hs, Vec::new())
        .await
        .unwrap();
    assert_eq!(r.json()["recorded_events"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_connections() {
    let srv = start_default().await;
    let addr = srv.addr();
    const N: usize = 2000;
    // Open every connection first, then fire all requests at once.
    let mut conns = Vec::with_capacity(N);
    for _ in 0..N {
        conns.push(connect(addr).await);
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N));
    let mut tasks = Vec::with_capacity(N);
    for (i, mut tx) in conns.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let body = serde_json::to_vec(&json!({
                "customer_id": "cus_2", "feature_id": "api_calls", "idempotency_key": format!("c-{i}")
            }))
            .unwrap();
            let hs = [("authorization", "Bearer am_sk_test_a"), ("content-type", "application/json")];
            send_on(&mut tx, addr, "POST", TRACK, &hs, body).await.map(|r| r.status)
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == Ok(200) {
            ok += 1;
        }
    }
    assert_eq!(ok, N);
    let s = stats(&srv).await;
    assert_eq!(s["recorded_events"], N as u64);
    let b = get_json(&srv, "/_mock/balances?customer_id=cus_2").await;
    assert_eq!(
        b["customers"]["cus_2"]["features"]["api_calls"]["usage"],
        N as u64
    );
}
