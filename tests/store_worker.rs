//! The same storage suite as `store_browser.rs`, inside a dedicated Web Worker: no `window`,
//! IndexedDB reached through the worker's global scope.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

#[path = "suite/store_api.rs"]
mod store_api;

#[path = "suite/store.rs"]
mod store;
