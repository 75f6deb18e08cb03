//! JavaScript values → [`Value`], defensively: every read can throw (getters, Proxies), strings
//! can hold lone surrogates, objects can be cyclic or enormous. `js/value.js` walks the value
//! once in JavaScript and writes what it found as text — whatever JSON cannot carry as a marker
//! where it was found — and [`crate::decode`] reads it; the core turns a marker into a
//! `TrackError` naming the field. One call into JavaScript per value converted, not one per
//! probe (it was ~90 per `track()` input). Nothing here panics or lets an exception through.

use wasm_bindgen::JsValue;

use super::sys;
use crate::value::{Bad, Value, MAX_DEPTH};

/// Converts `v`, reading at most about `budget` bytes of strings and keys before stopping with
/// [`Bad::TooLarge`] (so a 10 MB string is refused without being copied into wasm).
pub fn to_value(v: &JsValue, budget: usize) -> Value {
    match sys::encode(v, budget as f64, MAX_DEPTH as u32) {
        Ok(text) => crate::decode::decode(&text),
        Err(_) => Value::Bad(Bad::Threw),
    }
}
