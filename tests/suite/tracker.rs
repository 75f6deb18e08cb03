//! `AutumnTracker` for the wasm suites: the package's own driver (`js/tracker.js`) over this
//! test build's `Engine`, exactly as the npm entries put them together. The suites call it
//! through this binding with the same methods JavaScript users have.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(module = "/js/tracker.js")]
extern "C" {
    #[wasm_bindgen(js_name = bindTracker)]
    fn bind_tracker(parts: &JsValue) -> JsValue;
}

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    #[wasm_bindgen(js_name = storeParts)]
    fn store_parts() -> JsValue;
}

#[wasm_bindgen(module = "/js/error.js")]
extern "C" {
    #[wasm_bindgen(js_name = errorClass)]
    fn error_class() -> JsValue;
}

#[wasm_bindgen]
extern "C" {
    /// The public tracker class, as JavaScript users have it.
    pub type AutumnTracker;

    #[wasm_bindgen(method)]
    pub fn track(this: &AutumnTracker, input: JsValue) -> Promise;
    #[wasm_bindgen(method, catch)]
    pub fn validate(this: &AutumnTracker, input: JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method)]
    pub fn flush(this: &AutumnTracker) -> Promise;
    #[wasm_bindgen(method)]
    pub fn pending(this: &AutumnTracker) -> Promise;
    #[wasm_bindgen(method, js_name = deadLetters)]
    pub fn dead_letters(this: &AutumnTracker) -> Promise;
    #[wasm_bindgen(method)]
    pub fn discard(this: &AutumnTracker, keys: JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = retryDeadLetters)]
    fn retry_dead_letters_js(this: &AutumnTracker, keys: JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = addEventListener)]
    pub fn add_event_listener(this: &AutumnTracker, f: js_sys::Function);
    #[wasm_bindgen(method, js_name = removeEventListener)]
    pub fn remove_event_listener(this: &AutumnTracker, f: &js_sys::Function);
    #[wasm_bindgen(method)]
    pub fn close(this: &AutumnTracker);
}

thread_local! {
    static CLASS: JsValue = {
        let make = Closure::<dyn Fn(JsValue, JsValue) -> Result<JsValue, JsValue>>::new(
            |o: JsValue, env: JsValue| autumn_track::__Engine::new(o, env).map(JsValue::from),
        );
        let parts = js_sys::Object::new();
        Reflect::set(&parts, &"makeEngine".into(), make.as_ref()).unwrap();
        make.forget();
        Reflect::set(&parts, &"stores".into(), &store_parts()).unwrap();
        Reflect::set(&parts, &"TrackError".into(), &error_class()).unwrap();
        bind_tracker(&parts)
    };
}

impl AutumnTracker {
    /// `new AutumnTracker(options)`; `Err` is the `TrackError` it throws.
    pub fn new(options: JsValue) -> Result<AutumnTracker, JsValue> {
        CLASS.with(|c| {
            Reflect::construct(c.unchecked_ref::<js_sys::Function>(), &Array::of1(&options))
                .map(JsCast::unchecked_into)
        })
    }

    /// `retryDeadLetters(keys?)`.
    pub fn retry_dead_letters(&self, keys: Option<JsValue>) -> Promise {
        self.retry_dead_letters_js(keys.unwrap_or(JsValue::UNDEFINED))
    }
}
