//! `TrackError` → a real JavaScript `Error` with `name = "TrackError"`, `code`, and context.
//! The npm entry points register their `TrackError` class so `instanceof` works; without it
//! (e.g. under wasm-bindgen-test) a plain `Error` with the same fields is thrown.

use core::cell::RefCell;

use js_sys::{Function, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::TrackError;

thread_local! {
    static ERROR_CLASS: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Registers the `TrackError` class the package exports, and what to call after a panic (see
/// `panic.rs`). Internal: called by the entry modules, again for each fresh instance.
#[wasm_bindgen(js_name = __setTrackErrorClass, skip_typescript)]
pub fn set_track_error_class(class: Function, on_panic: Option<Function>) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = Some(class));
    super::panic::install(on_panic);
}

fn set(o: &JsValue, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

/// Builds the JavaScript error object.
pub fn to_js(e: &TrackError) -> JsValue {
    let msg = JsValue::from_str(&e.message);
    let class = ERROR_CLASS.with(|c| c.borrow().clone());
    let err: JsValue = class
        .and_then(|c| Reflect::construct(&c, &js_sys::Array::of1(&msg)).ok())
        .unwrap_or_else(|| js_sys::Error::new(&e.message).into());
    set(&err, "name", &JsValue::from_str("TrackError"));
    set(&err, "code", &JsValue::from_str(e.code.as_str()));
    if let Some(f) = &e.field {
        set(&err, "field", &JsValue::from_str(f));
    }
    if let Some(s) = e.status {
        set(&err, "status", &JsValue::from(s));
    }
    if let Some(k) = &e.idempotency_key {
        set(&err, "idempotencyKey", &JsValue::from_str(k));
    }
    if e.unanswered {
        set(&err, "unanswered", &JsValue::TRUE);
    }
    if let Some(ms) = e.retry_after_ms {
        set(&err, "retryAfterMs", &JsValue::from_f64(ms as f64));
    }
    err
}
