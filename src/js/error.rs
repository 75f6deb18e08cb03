//! `TrackError` → a real JavaScript `Error` with `name = "TrackError"`, `code`, and context,
//! built by `js/value.js` in one call. The npm entry points register their `TrackError` class
//! so `instanceof` works; without it (e.g. under wasm-bindgen-test) a plain `Error` with the
//! same fields is thrown.

use core::cell::Cell;

use js_sys::Function;
use wasm_bindgen::prelude::*;

use super::sys;
use crate::error::TrackError;

/// A `Cell`, not a `RefCell`: a borrow that can fail is a panic site with a formatted message
/// (−107 bytes of wasm; core's `Formatter::pad` stays, kept by js-sys's own `RefCell`s).
static ERROR_CLASS: super::Local<Cell<Option<JsValue>>> = super::Local::new(Cell::new(None));

/// Registers the `TrackError` class the package exports, and what to call after a panic (see
/// `panic.rs`). Internal: called by the entry modules, again for each fresh instance.
#[wasm_bindgen(js_name = __setTrackErrorClass, skip_typescript)]
pub fn set_track_error_class(class: Function, on_panic: Option<Function>) {
    ERROR_CLASS.with(|c| c.set(Some(class.into())));
    super::panic::install(on_panic);
}

/// Builds the JavaScript error object.
pub fn to_js(e: &TrackError) -> JsValue {
    ERROR_CLASS.with(|c| {
        let class = c.take();
        let e = sys::error(
            class.as_ref().unwrap_or(&JsValue::UNDEFINED),
            e.code.as_str(),
            &e.message,
            e.field.clone(),
            e.status,
            e.idempotency_key.clone(),
            e.unanswered,
            e.retry_after_ms.map(|ms| ms as f64),
        );
        c.set(class);
        e
    })
}
