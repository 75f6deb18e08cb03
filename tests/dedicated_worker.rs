//! The same `track()` suite as `browser.rs`, run inside a dedicated Web Worker: no `window`,
//! no `document`, only the worker global scope.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[path = "suite/common.rs"]
mod common;

#[path = "suite/tracker.rs"]
mod tracker;

#[path = "suite/track.rs"]
mod track;

#[path = "suite/hostile.rs"]
mod hostile;
