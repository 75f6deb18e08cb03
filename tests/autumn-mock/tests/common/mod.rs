//! Shared helpers for the integration tests: an in-process server and a tiny HTTP/1.1 client
//! (hyper's client connection API, one TCP connection per request unless told otherwise).
//! Everything talks to 127.0.0.1 only.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::HeaderMap;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

pub use autumn_mock::{Config, MockServer};

pub const KEY: &str = "am_sk_test_abc123";
pub const LIVE_KEY: &str = "am_sk_live_abc123";
pub const TRACK: &str = "/v1/balances.track";
pub const BATCH: &str = "/v1/balances.batch_track";

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    #[track_caller]
    pub fn expect_err(self, status: u16, code: &str) -> Resp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        assert_eq!(self.code(), code, "unexpected code; body: {}", self.text());
        self
    }
}

pub async fn start(cfg: Config) -> MockServer {
    autumn_mock::start(cfg).await.expect("start mock")
}

pub async fn start_default() -> MockServer {
    start(Config::default()).await
}

/// One request on a fresh connection. `Err` when the server closed/reset without answering.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Resp, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send_on(&mut tx, addr, method, path, headers, body).await
}

pub async fn send_on(
    tx: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Resp, String> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).map_err(|e| e.to_string())?;
    let res = tx.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Resp {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// A keep-alive connection.
pub async fn connect(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tx
}

pub fn std_headers(key: &str) -> Vec<(String, String)> {
    vec![
        ("authorization".into(), format!("Bearer {key}")),
        ("content-type".into(), "application/json".into()),
        ("accept".into(), "application/json".into()),
        ("x-api-version".into(), "2.3.0".into()),
    ]
}

/// POST JSON with the standard headers (test key, x-api-version 2.3.0) plus `extra`.
pub async fn post(
    srv: &MockServer,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> Result<Resp, String> {
    post_raw(srv, path, serde_json::to_vec(body).unwrap(), extra).await
}

pub async fn post_raw(
    srv: &MockServer,
    path: &str,
    body: impl Into<Bytes>,
    extra: &[(&str, &str)],
) -> Result<Resp, String> {
    let std = std_headers(KEY);
    let mut hs: Vec<(&str, &str)> = std
        .iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hs.extend_from_slice(extra);
    send(srv.addr(), "POST", path, &hs, body).await
}

/// POST /v1/balances.track; panics on a dropped connection.
pub async fn track(srv: &MockServer, body: Value) -> Resp {
    post(srv, TRACK, &body, &[]).await.expect("track answered")
}

pub async fn batch(srv: &MockServer, body: Value) -> Resp {
    post(srv, BATCH, &body, &[]).await.expect("batch answered")
}

pub async fn get(srv: &MockServer, path: &str) -> Resp {
    send(srv.addr(), "GET", path, &[], Bytes::new())
        .await
        .expect("GET answered")
}

pub async fn get_json(srv: &MockServer, path: &str) -> Value {
    get(srv, path).await.expect(200).json()
}

pub async fn set_faults(srv: &MockServer, body: Value) -> Value {
    post(srv, "/_mock/faults", &body, &[])
        .await
        .expect("faults answered")
        .expect(200)
        .json()
}

pub async fn events(srv: &MockServer, query: &str) -> Vec<Value> {
    let v = get_json(srv, &format!("/_mock/events{query}")).await;
    v["events"].as_array().cloned().unwrap_or_default()
}

pub async fn stats(srv: &MockServer) -> Value {
    get_json(srv, "/_mock/stats").await
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
