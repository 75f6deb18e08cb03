//! Helpers shared by the fuzz targets: JSON text → the core's [`Value`] (with a few sentinels
//! for what only JavaScript can pass), a comparison of a written body against the value it came
//! from, readers of the `key=value` header lines the text seed formats use, and a validation
//! [`Host`](autumn_track::event::Host) with a fixed clock.

use autumn_track::value::{Bad, Value};

/// Converts parsed JSON into a [`Value`] as the JS edge would. A string that starts with a NUL
/// character names something JSON text cannot hold but a JavaScript caller can pass:
/// `"\u0000nan"`, `"\u0000inf"`, `"\u0000-inf"`, `"\u0000-0"`, `"\u0000undefined"`, and the
/// kinds of [`Bad`] (`"\u0000function"`, `"\u0000symbol"`, `"\u0000bigint"`, `"\u0000cycle"`,
/// `"\u0000deep"`, `"\u0000notplain"`, `"\u0000threw"`, `"\u0000surrogate"`,
/// `"\u0000toolarge"`). Any other string is itself.
pub fn to_value(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => sentinel(s).unwrap_or_else(|| Value::Str(s.clone())),
        serde_json::Value::Array(a) => Value::Arr(a.iter().map(to_value).collect()),
        serde_json::Value::Object(o) => {
            Value::Obj(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

fn sentinel(s: &str) -> Option<Value> {
    let name = s.strip_prefix('\u{0}')?;
    Some(match name {
        "nan" => Value::Num(f64::NAN),
        "inf" => Value::Num(f64::INFINITY),
        "-inf" => Value::Num(f64::NEG_INFINITY),
        "-0" => Value::Num(-0.0),
        "undefined" => Value::Undefined,
        "function" => Value::Bad(Bad::Function),
        "symbol" => Value::Bad(Bad::Symbol),
        "bigint" => Value::Bad(Bad::BigInt),
        "cycle" => Value::Bad(Bad::Cycle),
        "deep" => Value::Bad(Bad::TooDeep),
        "notplain" => Value::Bad(Bad::NotPlain),
        "threw" => Value::Bad(Bad::Threw),
        "surrogate" => Value::Bad(Bad::LoneSurrogate),
        "toolarge" => Value::Bad(Bad::TooLarge),
        _ => return None,
    })
}

/// Checks that `wire` (JSON read back from what the core wrote) carries exactly `ours`:
/// same types, same strings, numerically equal numbers, same members (`undefined` members left
/// out, as `JSON.stringify` does).
pub fn same(
    wire: &serde_json::Value,
    ours: &Value,
    path: &str,
) -> core::result::Result<(), String> {
    let fail = |what: &str| Err(format!("{path}: {what}: wire {wire} vs ours {ours:?}"));
    match (wire, ours) {
        (serde_json::Value::Null, Value::Null) => Ok(()),
        (serde_json::Value::Bool(a), Value::Bool(b)) if a == b => Ok(()),
        (serde_json::Value::Number(a), Value::Num(b)) => match a.as_f64() {
            Some(a) if a == *b => Ok(()),
            _ => fail("number differs"),
        },
        (serde_json::Value::String(a), Value::Str(b)) if a == b => Ok(()),
        (serde_json::Value::Array(a), Value::Arr(b)) => {
            if a.len() != b.len() {
                return fail("array length differs");
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (serde_json::Value::Object(a), Value::Obj(b)) => {
            let present: Vec<&(String, Value)> = b
                .iter()
                .filter(|(_, v)| !matches!(v, Value::Undefined))
                .collect();
            if a.len() != present.len() {
                return fail("member count differs");
            }
            for (k, v) in present {
                match a.get(k) {
                    Some(w) => same(w, v, &format!("{path}.{k}"))?,
                    None => return fail("member missing"),
                }
            }
            Ok(())
        }
        _ => fail("type or value differs"),
    }
}

/// Parses a number the way the text seed formats write them: Rust's `f64` syntax (so `NaN`,
/// `inf`, `-0`, `1e308` all work); `None` for anything else.
pub fn num(s: &str) -> Option<f64> {
    s.trim().parse().ok()
}

/// `key=value` pairs of a header line (`status=503 attempt=2`), in order; junk is skipped.
pub fn pairs(line: &str) -> Vec<(&str, &str)> {
    line.split_ascii_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect()
}

/// The value of `key` in `pairs`, parsed as a number.
pub fn get_num(pairs: &[(&str, &str)], key: &str) -> Option<f64> {
    pairs
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| num(v))
}

/// The value of `key` in `pairs`, as text.
pub fn get<'a>(pairs: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// A flag in `pairs`: `1`, `true` or `yes`.
pub fn get_bool(pairs: &[(&str, &str)], key: &str) -> bool {
    matches!(get(pairs, key), Some("1" | "true" | "yes"))
}

/// Rust's shortest round-trip float formatting in JavaScript's notation (what `String(n)` gives:
/// plain between 1e-7 and 1e21, exponent form outside), the native stand-in for the edge's
/// formatter (the core's own copy is test-only).
pub fn rust_num(n: f64, out: &mut String) {
    use core::fmt::Write;
    let _ = if (1e-7..1e21).contains(&n.abs()) {
        write!(out, "{n}")
    } else {
        write!(out, "{n:e}")
    };
}

/// A validation host: a fixed clock, [`rust_num`], and UUID v7 keys from a counter, counting how
/// often a key was asked for.
pub struct FuzzHost {
    /// What `now_ms` answers.
    pub now: f64,
    /// `new_key` calls so far.
    pub keys: u32,
}

impl FuzzHost {
    /// A host whose clock reads `now`.
    pub fn new(now: f64) -> FuzzHost {
        FuzzHost { now, keys: 0 }
    }

    /// The key the `n`-th call (1-based) of `new_key` returns.
    pub fn key(&self, n: u32) -> String {
        let mut r = [0u8; 10];
        r[..4].copy_from_slice(&n.to_le_bytes());
        autumn_track::key::uuid_v7(self.now.max(0.0) as u64, r)
    }
}

impl autumn_track::event::Host for FuzzHost {
    fn now_ms(&self) -> f64 {
        self.now
    }
    fn format_num(&self, n: f64, out: &mut String) {
        rust_num(n, out);
    }
    fn new_key(&mut self) -> String {
        self.keys += 1;
        self.key(self.keys)
    }
}
