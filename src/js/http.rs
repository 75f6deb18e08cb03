//! One delivery attempt: `fetch` with a timeout that also covers reading the body, reporting
//! what happened. No decisions here: `retry::decide` and `queue::fate` make them.
//!
//! Requests are `fetch(url, init)` with a plain init object rather than gloo-net's builder:
//! the page-exit path needs `keepalive`, which gloo-net cannot set; its `send()` panics
//! (`unreachable!`) when a polyfilled `fetch` rejects with a non-`Error`; and it constructs
//! and URL-parses every request twice. Nothing here sets `mode`, `credentials`, `cache` or
//! `referrer` (Cloudflare Workers reject them).

use alloc::string::String;

use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::sys;
use crate::options::{HeaderValue, Options};

/// What came back.
pub enum Reply {
    /// `fetch` rejected (offline, refused, reset, CORS).
    Network(String),
    /// The timeout fired before the whole answer arrived.
    Timeout,
    /// The request could not even be built (e.g. a relative `baseUrl` outside a browser).
    Unsendable(String),
    /// An answer.
    Answer {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, when present and readable.
        retry_after: Option<String>,
        /// `Date`, when present and readable (cross-origin needs it exposed).
        date: Option<String>,
        /// The body as text (possibly empty or not JSON).
        text: String,
    },
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| String::from("fetch failed"))
}

/// How to send.
pub struct Send<'a> {
    /// Full URL.
    pub url: &'a str,
    /// JSON body.
    pub body: &'a str,
    /// `Idempotency-Key` header (single events only; batch items carry theirs in the body).
    pub key: Option<&'a str>,
    /// Let the request outlive the page (page exit); the body must fit the 64 KiB budget.
    pub keepalive: bool,
}

/// The `RequestInit` as a plain object: `{ method, headers, body, signal, keepalive? }` (no
/// web-sys `Request`/`Headers` objects: fewer imports, smaller wasm, same request).
fn init(opts: &Options, s: &Send<'_>, signal: &web_sys::AbortSignal) -> js_sys::Object {
    let set = |o: &js_sys::Object, k: &str, v: &JsValue| {
        let _ = js_sys::Reflect::set(o, &JsValue::from_str(k), v);
    };
    let headers = js_sys::Object::new();
    let mut auth = String::new();
    for (name, value) in opts.request_headers(s.key) {
        let value = match value {
            HeaderValue::Plain(v) => v,
            HeaderValue::Bearer(k) => {
                auth.clear();
                auth.push_str("Bearer ");
                auth.push_str(k);
                &auth
            }
        };
        set(&headers, name, &JsValue::from_str(value));
    }
    let init = js_sys::Object::new();
    set(&init, "method", &JsValue::from_str("POST"));
    set(&init, "headers", &headers);
    set(&init, "body", &JsValue::from_str(s.body));
    set(&init, "signal", signal);
    if s.keepalive {
        set(&init, "keepalive", &JsValue::TRUE);
    }
    init
}

/// Sends once, giving up after `timeoutMs`.
pub async fn attempt(opts: &Options, s: Send<'_>) -> Reply {
    // One signal aborts the fetch and the body read alike when the time is up: the runtime's
    // own `AbortSignal.timeout` (no Rust closure, no timer to clear, nothing per request).
    let Ok(signal) = sys::abort_after(opts.timeout_ms) else {
        return Reply::Unsendable(String::from("AbortSignal.timeout is not available"));
    };
    let init = init(opts, &s, &signal);
    send(s.url, &init, &signal).await
}

async fn send(url: &str, init: &js_sys::Object, signal: &web_sys::AbortSignal) -> Reply {
    let fail = |e: JsValue| {
        if signal.aborted() {
            Reply::Timeout
        } else {
            Reply::Network(describe(&e))
        }
    };
    // A URL or header `fetch` refuses throws synchronously: that request can never be sent.
    let promise = match sys::fetch(url, init) {
        Ok(p) => p,
        Err(e) => return Reply::Unsendable(describe(&e)),
    };
    let response: web_sys::Response = match JsFuture::from(promise).await {
        Ok(r) => match r.dyn_into() {
            Ok(r) => r,
            Err(_) => {
                return Reply::Network(String::from(
                    "fetch resolved with something that is not a Response",
                ))
            }
        },
        Err(e) => return fail(e),
    };
    let status = response.status();
    let headers = response.headers();
    let retry_after = headers.get("retry-after").ok().flatten();
    let date = headers.get("date").ok().flatten();
    let text = match response.text() {
        Ok(p) => match JsFuture::from(p).await {
            Ok(t) => t.as_string().unwrap_or_default(),
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    Reply::Answer {
        status,
        retry_after,
        date,
        text,
    }
}
