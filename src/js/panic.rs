//! After a panic. The release build aborts on panic (a wasm trap): the instance's state is
//! lost, so every later call could fail. Instead the panic handler asks wasm-bindgen for a fresh
//! instance on the next call into the module and tells the JavaScript side (`js/tracker.js`),
//! which rejects the calls in flight with a `TrackError` (`internal`), lets a drain's tab lock
//! go, and rebuilds each tracker's engine from its options. Queued events are in the JavaScript
//! stores, outside the instance: the rebuilt engine replays them with their keys.

use core::cell::Cell;

use js_sys::Function;
use wasm_bindgen::prelude::*;

static ON_PANIC: super::Local<Cell<Option<Function>>> = super::Local::new(Cell::new(None));

/// Sets what to call (once) after a panic.
pub fn install(on_panic: Option<Function>) {
    ON_PANIC.with(|c| c.set(on_panic));
    #[cfg(feature = "std")]
    std::panic::set_hook(alloc::boxed::Box::new(|_| after_panic()));
}

/// A fresh instance for the next call, and the JavaScript side told.
fn after_panic() {
    wasm_bindgen::handler::schedule_reinit();
    if let Some(f) = ON_PANIC.with(Cell::take) {
        let _ = f.call0(&JsValue::UNDEFINED);
    }
}

/// The shipped build's panic handler (`no_std`): recover, then trap as `panic = "abort"` did.
/// The message is not formatted: nothing reads it, and formatting is most of what std's
/// handler cost.
#[cfg(not(feature = "std"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    after_panic();
    core::arch::wasm32::unreachable()
}

/// Test builds only (cargo feature `test-panic`, never published): panics when the global
/// `__autumnTrackPanic` equals `at`, clearing it first (one panic per request, across
/// instances).
#[cfg(feature = "test-panic")]
#[allow(clippy::panic)]
pub fn test_point(at: &str) {
    let g = js_sys::global();
    let k = JsValue::from_str("__autumnTrackPanic");
    if js_sys::Reflect::get(&g, &k)
        .ok()
        .and_then(|v| v.as_string())
        .as_deref()
        == Some(at)
    {
        let _ = js_sys::Reflect::set(&g, &k, &JsValue::UNDEFINED);
        panic!("autumn-track test panic");
    }
}

/// Without the `test-panic` feature: nothing at all.
#[cfg(not(feature = "test-panic"))]
#[inline(always)]
pub fn test_point(_: &str) {}
