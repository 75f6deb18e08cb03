//! The few JavaScript functions the edge calls. Every one that can throw is bound with `catch`,
//! so a hostile or missing global becomes a `Result`, never an exception unwinding through wasm
//! frames. No clock, no timers, no `fetch` here: the driver (`js/tracker.js`) does all I/O.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues(bytes)`.
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(bytes: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `Object.keys(o)`; throws for hostile Proxies.
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    pub fn object_keys(o: &JsValue) -> Result<js_sys::Array, JsValue>;

    /// `Array.isArray(v)`; throws for revoked Proxies.
    #[wasm_bindgen(catch, js_namespace = Array, js_name = isArray)]
    pub fn is_array(v: &JsValue) -> Result<bool, JsValue>;

    /// `String(n)`: JavaScript's shortest round-trip number formatting.
    #[wasm_bindgen(js_name = String)]
    pub fn js_string_of(n: f64) -> String;

    /// `JSON.parse(text)`.
    #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
    pub fn json_parse(text: &str) -> Result<JsValue, JsValue>;
}

/// Fills `buf` from `crypto.getRandomValues`, or from `Math.random` where no Web Crypto exists.
pub fn random_bytes(buf: &mut [u8]) {
    if get_random_values(buf).is_err() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}
