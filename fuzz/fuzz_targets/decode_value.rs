//! `decode::decode`, the reader of what `js/value.js` writes for every JavaScript value that
//! enters the wasm (`track()` input, options, the driver's reports, records read from storage).
//!
//! Invariants: no text makes it panic or recurse without bound; and whatever value it reads,
//! writing that value back in the encoder's format (JSON strings with `JSON.stringify`'s
//! escapes, safe integers in decimal, every other number as `#` + its 16 hex bits, `u`, `!d`)
//! reads back as the same value, bit for bit — so every shape the encoder can produce has one
//! reading, and numbers arrive exact (NaN, -0 and ±Infinity included).
#![no_main]

use autumn_track::decode::{decode, BADS};
use autumn_track::value::{write_str, Value, MAX_SAFE_INTEGER};
use libfuzzer_sys::fuzz_target;

fn encode(v: &Value, out: &mut String) {
    match v {
        Value::Undefined => out.push('u'),
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Num(n)
            if n.fract() == 0.0
                && n.abs() <= MAX_SAFE_INTEGER
                && !(*n == 0.0 && n.is_sign_negative()) =>
        {
            out.push_str(&(*n as i64).to_string())
        }
        Value::Num(n) => out.push_str(&format!("#{:016x}", n.to_bits())),
        Value::Str(s) => write_str(out, s),
        Value::Bad(b) => {
            let i = BADS.iter().position(|x| x == b).unwrap_or(6);
            out.push_str(&format!("!{i}"));
        }
        Value::Arr(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(x, out);
            }
            out.push(']');
        }
        Value::Obj(members) => {
            out.push('{');
            for (i, (k, x)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, k);
                out.push(':');
                encode(x, out);
            }
            out.push('}');
        }
    }
}

/// Equality with numbers compared by their bits (NaN equals itself, -0 is not 0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Num(x), Value::Num(y)) => x.to_bits() == y.to_bits(),
        (Value::Arr(x), Value::Arr(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Obj(x), Value::Obj(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

/// Keys the reader made up for a key it could not read ("" with a `Bad`) are not written back
/// the same way; leave those values out of the round trip.
fn clean(v: &Value) -> bool {
    match v {
        Value::Arr(items) => items.iter().all(clean),
        Value::Obj(m) => m
            .iter()
            .all(|(k, x)| !(k.is_empty() && matches!(x, Value::Bad(_))) && clean(x)),
        _ => true,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let v = decode(&text);
    if clean(&v) {
        let mut again = String::new();
        encode(&v, &mut again);
        let w = decode(&again);
        assert!(
            same(&v, &w),
            "{text:?} read as {v:?}, written as {again:?}, read back as {w:?}"
        );
    }
});
