//! The queue's storage (IndexedDB and memory) in a real browser page (Chromium, Firefox).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "suite/store_api.rs"]
mod store_api;

#[path = "suite/store.rs"]
mod store;
