//! Helpers shared by the fuzz targets: JSON text → the core's [`Value`] (with a few sentinels
//! for what only JavaScript can pass), a comparison of a written body against the value it came
//! from, and a small source of numbers biased towards the edges.

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

/// Formats Unix milliseconds as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), for
/// round-trip checks of the native HTTP-date parser. Whole seconds only; years 0–9999.
pub fn imf_fixdate(ms: i64) -> Option<String> {
    if ms.rem_euclid(1000) != 0 {
        return None;
    }
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    Some(format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    ))
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}
