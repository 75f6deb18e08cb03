//! The `autumn-mock` binary as a child process: first stdout line, flags, config file,
//! exit on stdin EOF and on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_autumn-mock");

struct Proc {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let line = line.trim_end_matches('\n');
    let port: u16 = line
        .strip_prefix("listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("bad first line {line:?}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn wait_exit(p: &mut Proc, within: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < within, "did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn track_raw(addr: SocketAddr, key: &str, body: serde_json::Value) -> Result<Resp, String> {
    let auth = format!("Bearer {key}");
    let hs = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    send(addr, "POST", TRACK, &hs, serde_json::to_vec(&body).unwrap()).await
}

#[tokio::test]
async fn exits_when_stdin_closes() {
    let mut p = spawn(&["--port", "0", "--exit-on-stdin-eof"]);
    let r = send(p.addr, "GET", "/_mock/health", &[], Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Keep an idle keep-alive connection open: shutdown must not hang on it.
    let _idle = connect(p.addr).await;
    drop(p.child.stdin.take());
    let status = wait_exit(&mut p, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn exits_cleanly_on_sigterm() {
    let mut p = spawn(&["--port=0"]);
    track_raw(
        p.addr,
        KEY,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .unwrap()
    .expect(200);
    let pid = p.child.id().to_string();
    let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(ok.success());
    let status = wait_exit(&mut p, Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn flags_and_config_file() {
    let dir = std::env::temp_dir().join(format!("autumn-mock-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("cfg.json");
    std::fs::write(
        &cfg,
        r#"{"secret_keys": ["am_sk_live_cfgkey"],
            "features": [{"id": "widgets", "included": 7, "event_names": ["widget"]}],
            "customers": [{"id": "acme", "entities": ["e1"]}]}"#,
    )
    .unwrap();
    let p = spawn(&[
        "--port",
        "0",
        "--config",
        cfg.to_str().unwrap(),
        "--auto-create-customers",
        "--batch-rate-limit",
        "1",
    ]);
    let r = track_raw(
        p.addr,
        "am_sk_live_cfgkey",
        json!({"customer_id": "acme", "event_name": "widget", "value": 2}),
    )
    .await
    .unwrap()
    .expect(200);
    assert_eq!(r.json()["balance"]["remaining"], 5);
    let r = track_raw(
        p.addr,
        KEY,
        json!({"customer_id": "acme", "feature_id": "widgets"}),
    )
    .await
    .unwrap()
    .expect_err(401, "invalid_secret_key");
    assert_eq!(r.json()["env"], "sandbox");
    track_raw(
        p.addr,
        "am_sk_live_cfgkey",
        json!({"customer_id": "brand_new", "feature_id": "widgets"}),
    )
    .await
    .unwrap()
    .expect(200);
    let _ = std::fs::remove_dir_all(&dir);

    // Fault flags.
    let p2 = spawn(&[
        "--port",
        "0",
        "--error-503",
        "1",
        "--seed",
        "9",
        "--retry-after-secs",
        "2",
    ]);
    let r = track_raw(
        p2.addr,
        KEY,
        json!({"customer_id": "cus_1", "feature_id": "messages"}),
    )
    .await
    .unwrap()
    .expect_err(503, "internal_error");
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    let f = send(p2.addr, "GET", "/_mock/faults", &[], Vec::new())
        .await
        .unwrap()
        .json();
    assert_eq!(f["seed"], 9);
    assert_eq!(f["error_503"], 1.0);
    let p3 = spawn(&["--port", "0", "--outage", "--outage-mode", "reset"]);
    assert!(track_raw(
        p3.addr,
        KEY,
        json!({"customer_id": "cus_1", "feature_id": "messages"})
    )
    .await
    .is_err());
}

#[test]
fn help_and_bad_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--config",
        "--exit-on-stdin-eof",
        "--seed",
        "--idempotency-ttl-secs",
    ] {
        assert!(text.contains(flag), "help lacks {flag}");
    }
    let out = Command::new(BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["--error-500", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/autumn.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
