//! Bindings to the few globals the tracker needs. Every call that can throw is bound with
//! `catch`, so a hostile or missing global becomes a `Result`, never an exception unwinding
//! through wasm frames. Globals, not `window`: the same code serves pages, workers, Node and
//! Cloudflare Workers.

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// `fetch(url, init)` on the global object.
    #[wasm_bindgen(catch, js_name = fetch)]
    pub fn fetch(url: &str, init: &js_sys::Object) -> Result<Promise, JsValue>;

    /// `setTimeout(handler, ms)`; a number in browsers, an object in Node. Bound with `catch`:
    /// Cloudflare Workers throw for timers set outside a request, and an exception must never
    /// unwind through wasm frames (it would skip destructors and leave `RefCell`s borrowed).
    #[wasm_bindgen(catch, js_name = setTimeout)]
    fn set_timeout_js(handler: &Function, ms: i32) -> Result<JsValue, JsValue>;

    /// `clearTimeout(id)`.
    #[wasm_bindgen(catch, js_name = clearTimeout)]
    fn clear_timeout_js(id: &JsValue) -> Result<JsValue, JsValue>;

    /// `crypto.getRandomValues(bytes)`.
    #[wasm_bindgen(catch, js_namespace = crypto, js_name = getRandomValues)]
    pub fn get_random_values(bytes: &mut [u8]) -> Result<JsValue, JsValue>;

    /// `Object.keys(o)`; throws for hostile Proxies.
    #[wasm_bindgen(catch, js_namespace = Object, js_name = keys)]
    pub fn object_keys(o: &JsValue) -> Result<js_sys::Array, JsValue>;

    /// `Array.isArray(v)`; throws for revoked Proxies.
    #[wasm_bindgen(catch, js_namespace = Array, js_name = isArray)]
    pub fn is_array(v: &JsValue) -> Result<bool, JsValue>;

    /// `AbortSignal.timeout(ms)`: a signal that aborts by itself.
    #[wasm_bindgen(catch, js_namespace = AbortSignal, js_name = timeout)]
    pub fn abort_after(ms: u32) -> Result<web_sys::AbortSignal, JsValue>;

    /// `String(n)`.
    #[wasm_bindgen(js_name = String)]
    pub fn js_string_of(n: f64) -> String;

    /// `JSON.parse(text)`.
    #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
    pub fn json_parse(text: &str) -> Result<JsValue, JsValue>;
}

type BoxedJob =
    core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = Result<JsValue, JsValue>>>>;

/// `future_to_promise` through one boxed future type: every async export shares a single
/// instance of the promise/task machinery instead of one per future type (kilobytes each).
pub fn promise(
    f: impl core::future::Future<Output = Result<JsValue, JsValue>> + 'static,
) -> Promise {
    wasm_bindgen_futures::future_to_promise(alloc::boxed::Box::pin(f) as BoxedJob)
}

/// `setTimeout`, or `None` where the runtime refuses a timer now.
pub fn set_timeout(handler: &Function, ms: i32) -> Option<JsValue> {
    set_timeout_js(handler, ms).ok()
}

/// `clearTimeout` of a timer `set_timeout` made.
pub fn clear_timeout(id: &JsValue) {
    let _ = clear_timeout_js(id);
}

/// A promise resolved after `ms` milliseconds (at once where no timer can be set).
pub async fn sleep(ms: u64) {
    let ms = ms.min(i32::MAX as u64) as i32;
    let p = Promise::new(&mut |resolve, _reject| {
        if set_timeout(&resolve, ms).is_none() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// `Date.now()`.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Fills `buf` from `crypto.getRandomValues`, or from `Math.random` where no Web Crypto exists.
pub fn random_bytes(buf: &mut [u8]) {
    if get_random_values(buf).is_err() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

/// A uniform number in `[0, 1)` for backoff jitter.
pub fn random01() -> f64 {
    js_sys::Math::random()
}

/// Reads `name` from the global object; `undefined` when absent or when reading throws.
pub fn global_get(name: &str) -> JsValue {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// True in a browser page or browser worker (where a secret key would be exposed to users):
/// a `document`, or `importScripts` (dedicated/shared/service workers). Node and Cloudflare
/// Workers have neither.
pub fn is_browser() -> bool {
    global_get("document").is_object() || global_get("importScripts").is_function()
}

/// `globalThis.addEventListener(type, f)` where the global is an event target (pages, workers).
pub fn add_global_listener(kind: &str, f: &js_sys::Function) {
    call_global_method("addEventListener", kind, f);
}

/// `globalThis.removeEventListener(type, f)`.
pub fn remove_global_listener(kind: &str, f: &js_sys::Function) {
    call_global_method("removeEventListener", kind, f);
}

fn call_global_method(method: &str, kind: &str, f: &js_sys::Function) {
    let g = js_sys::global();
    if let Ok(m) = js_sys::Reflect::get(&g, &JsValue::from_str(method)) {
        if let Some(m) = m.dyn_ref::<js_sys::Function>() {
            let _ = m.call2(&g, &JsValue::from_str(kind), f);
        }
    }
}

/// True only when the runtime says it is offline (`navigator.onLine === false`).
pub fn is_offline() -> bool {
    let nav = global_get("navigator");
    nav.is_object()
        && js_sys::Reflect::get(&nav, &JsValue::from_str("onLine"))
            .map(|v| v.as_bool() == Some(false))
            .unwrap_or(false)
}
