//! Helpers every wasm suite that talks to `autumn-mock` shares (included by each wrapper as
//! `crate::common`). Not every wrapper uses every helper.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use js_sys::{Reflect, JSON};
use wasm_bindgen::JsValue;

/// The mock's URL, baked in at build time by scripts/test.sh. Read through `option_env!` on
/// purpose: the suites still compile (for clippy) without a mock.
pub fn mock() -> &'static str {
    match option_env!("AUTUMN_MOCK_URL") {
        Some(url) => url,
        None => panic!(
            "AUTUMN_MOCK_URL must be set when building the wasm tests (scripts/test.sh does)"
        ),
    }
}

pub fn json(text: &str) -> JsValue {
    JSON::parse(text).unwrap_or_else(|_| panic!("bad JSON in test: {text}"))
}

pub fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(k)).unwrap()
}

pub fn s(v: &JsValue, k: &str) -> String {
    get(v, k)
        .as_string()
        .unwrap_or_else(|| panic!("{k} is not a string in {:?}", JSON::stringify(v)))
}

pub fn num(v: &JsValue, k: &str) -> f64 {
    get(v, k)
        .as_f64()
        .unwrap_or_else(|| panic!("{k} is not a number in {:?}", JSON::stringify(v)))
}

/// A fresh id with `prefix`, so tests never see each other's customers or keys in the mock.
pub fn uid(prefix: &str) -> String {
    format!("{prefix}_{:x}", (js_sys::Math::random() * 1e15) as u64)
}
