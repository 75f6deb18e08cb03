//! Records ↔ the plain objects the JS stores keep, for the store suites (`tests/suite`): the
//! same encoding the engine's commands carry (`engine::wire`, parsed by `JSON.parse`) and the
//! same decoding its store results get (the guarded converter, then `engine::wire`).

use alloc::string::String;

use wasm_bindgen::JsValue;

use super::{convert, js_num, sys};
use crate::engine::wire;
use crate::queue::{DeadLetter, Record};

/// A record as the stores keep it.
pub fn encode_record(r: &Record) -> Result<JsValue, JsValue> {
    let mut s = String::new();
    wire::write_record(&mut s, r, true, &js_num);
    sys::json_parse(&s)
}

/// A dead letter as the stores keep it.
pub fn encode_dead(d: &DeadLetter) -> Result<JsValue, JsValue> {
    let mut s = String::new();
    wire::write_dead(&mut s, d, &js_num);
    sys::json_parse(&s)
}

/// A stored record, validated; `Err((key or "", reason))` otherwise.
pub fn decode_record(o: &JsValue) -> Result<Record, (String, String)> {
    wire::record_from(&convert::to_value(o, usize::MAX >> 1))
}

/// A stored dead letter; garbage becomes a `corrupt_record` letter.
pub fn decode_dead(o: &JsValue) -> DeadLetter {
    wire::dead_from(&convert::to_value(o, usize::MAX >> 1))
}
