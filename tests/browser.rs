//! `track()` end to end in a real browser page (Chromium, Firefox) against `autumn-mock`.
//! Run by `scripts/test.sh`, which starts the mock and sets `AUTUMN_MOCK_URL` at build time.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

#[path = "suite/common.rs"]
mod common;

#[path = "suite/tracker.rs"]
mod tracker;

#[path = "suite/track.rs"]
mod track;

#[path = "suite/lying.rs"]
mod lying;

#[path = "suite/hostile.rs"]
mod hostile;

#[path = "suite/heap.rs"]
mod heap;
