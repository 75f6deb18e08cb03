//! The durable queue inside a dedicated Web Worker (IndexedDB there too).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[path = "suite/common.rs"]
mod common;

#[path = "suite/tracker.rs"]
mod tracker;

#[path = "suite/queue.rs"]
mod queue;
