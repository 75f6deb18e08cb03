//! `TrackError` → a real JavaScript `Error` with `name = "TrackError"`, `code`, and context,
//! built by `js/value.js` in one call. The npm entry points register their `TrackError` class
//! so `instanceof` works; without it (e.g. under wasm-bindgen-test) a plain `Error` with the
//! same fields is thrown.

use core::cell::RefCell;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::sys;
use crate::error::TrackError;

static ERROR_CLASS: super::Local<RefCell<JsValue>> =
    super::Local::new(RefCell::new(JsValue::UNDEFINED));

/// Registers the `TrackError` class the package exports, and what to call after a panic (see
/// `panic.rs`). Internal: called by the entry modules, again for each fresh instance.
#[wasm_bindgen(js_name = __setTrackErrorClass, skip_typescript)]
pub fn set_track_error_class(class: Function, on_panic: Option<Function>) {
    ERROR_CLASS.with(|c| *c.borrow_mut() = class.into());
    super::panic::install(on_panic);
}

/// Builds the JavaScript error object.
pub fn to_js(e: &TrackError) -> JsValue {
    ERROR_CLASS.with(|c| {
        sys::error(
            &c.borrow(),
            e.code.as_str(),
            &e.message,
            e.field.clone(),
            e.status,
            e.idempotency_key.clone(),
            e.unanswered,
            e.retry_after_ms.map(|ms| ms as f64),
        )
    })
}
