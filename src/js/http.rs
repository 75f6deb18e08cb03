//! One delivery attempt: build the request with gloo-net, `fetch` it with a timeout that also
//! covers reading the body, and report what happened. No decisions here: `retry::decide` makes
//! them.

use alloc::string::String;

use gloo_net::http::RequestBuilder;
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

/// Sends `body` to `url` once.
pub async fn attempt(opts: &Options, url: &str, body: &str, key: &str) -> Reply {
    let Ok(controller) = web_sys::AbortController::new() else {
        return Reply::Unsendable(String::from("AbortController is not available"));
    };
    let signal = controller.signal();
    let mut builder = RequestBuilder::new(url).method(gloo_net::http::Method::POST);
    let mut auth = String::new();
    for (name, value) in opts.request_headers(key) {
        let value = match value {
            HeaderValue::Plain(v) => v,
            HeaderValue::Bearer(k) => {
                auth.clear();
                auth.push_str("Bearer ");
                auth.push_str(k);
                &auth
            }
        };
        builder = builder.header(name, value);
    }
    let request = match builder.abort_signal(Some(&signal)).body(body) {
        Ok(r) => web_sys::Request::from(r),
        Err(e) => return Reply::Unsendable(e.to_string()),
    };
    drop(auth);

    // The timer aborts the fetch and the body read alike. A Rust closure (not `new Function`),
    // so a Content-Security-Policy without `unsafe-eval` holds; dropped once the timer is
    // cleared, so nothing leaks per request.
    let on_timeout = Closure::<dyn FnMut()>::new(move || controller.abort());
    let timer = sys::set_timeout(on_timeout.as_ref().unchecked_ref(), opts.timeout_ms as i32);

    let reply = send(&request, &signal).await;
    sys::clear_timeout(&timer);
    drop(on_timeout);
    reply
}

async fn send(request: &web_sys::Request, signal: &web_sys::AbortSignal) -> Reply {
    let fail = |e: JsValue| {
        if signal.aborted() {
            Reply::Timeout
        } else {
            Reply::Network(describe(&e))
        }
    };
    let promise = match sys::fetch_request(request) {
        Ok(p) => p,
        Err(e) => return fail(e),
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
    let retry_after = response.headers().get("retry-after").ok().flatten();
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
        text,
    }
}
