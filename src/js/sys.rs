//! The few JavaScript functions the edge calls. Every one that can throw is bound with `catch`,
//! so a hostile or missing global becomes a `Result`, never an exception unwinding through wasm
//! frames. No clock, no timers, no `fetch` here: the driver (`js/tracker.js`) does all I/O.

use alloc::string::String;

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `crypto.getRandomValues(bytes)`.
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    fn get_random_values(bytes: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `String(n)`: JavaScript's shortest round-trip number formatting.
    #[wasm_bindgen(js_name = String)]
    pub fn js_string_of(n: f64) -> String;

    /// `JSON.parse(text)`.
    #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
    pub fn json_parse(text: &str) -> Result<JsValue, JsValue>;
}

#[wasm_bindgen(module = "/js/value.js")]
extern "C" {
    /// A JavaScript value as the text [`crate::decode`] reads (it catches every read itself;
    /// bound with `catch` all the same).
    #[wasm_bindgen(catch)]
    pub fn encode(v: &JsValue, budget: f64, depth: u32) -> Result<String, JsValue>;

    /// A `TrackError` of `class` (a plain `Error` when it is missing or throws) with these
    /// fields. Catches everything itself.
    #[allow(clippy::too_many_arguments)]
    pub fn error(
        class: &JsValue,
        code: &str,
        message: &str,
        field: Option<String>,
        status: Option<u16>,
        key: Option<String>,
        unanswered: bool,
        retry_after_ms: Option<f64>,
    ) -> JsValue;
}

/// Bytes from `crypto.getRandomValues`, drawn 512 at a time: a call per key cost more than
/// the rest of making it (Node's is ~8 µs a call). Each byte is used once.
static POOL: super::Local<core::cell::RefCell<([u8; 512], usize)>> =
    super::Local::new(core::cell::RefCell::new(([0; 512], 512)));

/// Fills `buf` from `crypto.getRandomValues`, or from `Math.random` where no Web Crypto exists.
pub fn random_bytes(buf: &mut [u8]) {
    POOL.with(|p| {
        let Ok(mut p) = p.try_borrow_mut() else {
            return fill(buf);
        };
        let (pool, used) = &mut *p;
        if *used + buf.len() > pool.len() {
            fill(pool);
            *used = 0;
        }
        if let Some(src) = pool.get(*used..*used + buf.len()) {
            buf.copy_from_slice(src);
            // Used bytes are not kept around.
            if let Some(dst) = pool.get_mut(*used..*used + buf.len()) {
                dst.fill(0);
            }
            *used += buf.len();
        } else {
            fill(buf);
        }
    });
}

fn fill(buf: &mut [u8]) {
    if get_random_values(buf).is_err() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}
