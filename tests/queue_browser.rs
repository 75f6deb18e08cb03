//! The durable queue in a real browser page (IndexedDB), against `autumn-mock`.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "suite/common.rs"]
mod common;

#[path = "suite/tracker.rs"]
mod tracker;

#[path = "suite/queue.rs"]
mod queue;
