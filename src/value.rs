//! A JSON-like value tree: what JavaScript input is converted into before validation, and the
//! writer that turns validated values back into JSON text for the wire.
//!
//! The JS edge converts whatever the caller passed into a [`Value`]; values JSON cannot carry
//! (functions, symbols, `BigInt`, cycles, throwing getters, …) become [`Value::Bad`] at the spot
//! where they were found, so the pure core can report *which* field is wrong. Nothing here
//! touches JavaScript, so `cargo test` runs it natively.

use alloc::string::String;
use alloc::vec::Vec;

/// Why a piece of input could not be represented as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bad {
    /// A function value.
    Function,
    /// A `Symbol`.
    Symbol,
    /// A `BigInt` (JSON has no big integers; convert it to a number or string first).
    BigInt,
    /// An object that contains itself.
    Cycle,
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A class instance, `Date`, `Map`, typed array, … — only plain objects and arrays are JSON.
    NotPlain,
    /// Reading the value threw (a throwing getter, a hostile `Proxy`, …).
    Threw,
    /// A string with a lone UTF-16 surrogate: it has no UTF-8 form.
    LoneSurrogate,
    /// The input was larger than the conversion budget; conversion stopped here.
    TooLarge,
}

impl Bad {
    /// What a person should read about this value.
    pub fn describe(self) -> &'static str {
        match self {
            Bad::Function => "is a function, which JSON cannot carry",
            Bad::Symbol => "is a Symbol, which JSON cannot carry",
            Bad::BigInt => {
                "is a BigInt, which JSON cannot carry (convert it to a number or string)"
            }
            Bad::Cycle => "refers back to itself (a cycle), which JSON cannot carry",
            Bad::TooDeep => "is nested too deeply (more than 32 levels)",
            Bad::NotPlain => {
                "is not a plain object or array (class instances, Dates, Maps are not JSON)"
            }
            Bad::Threw => "threw while being read (a getter or Proxy trap failed)",
            Bad::LoneSurrogate => "contains a lone UTF-16 surrogate, which is not valid text",
            Bad::TooLarge => "is too large",
        }
    }
}

/// Deepest nesting accepted inside `properties`.
pub const MAX_DEPTH: usize = 32;

/// A JSON value, plus `Undefined` (an absent field) and `Bad` (something JSON cannot carry).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// JavaScript `undefined`: a field that is not there.
    Undefined,
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any JavaScript number, including NaN and ±Infinity (validation rejects those).
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    Arr(Vec<Value>),
    /// A plain object, members in their enumeration order.
    Obj(Vec<(String, Value)>),
    /// Something JSON cannot represent.
    Bad(Bad),
}

impl Value {
    /// The member `key` of an object, if this is an object that has it (and it is not
    /// `undefined`).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(members) => members
                .iter()
                .find(|(k, v)| k == key && !matches!(v, Value::Undefined))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the JSON type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Num(_) => "a number",
            Value::Str(_) => "a string",
            Value::Arr(_) => "an array",
            Value::Obj(_) => "an object",
            Value::Bad(_) => "not JSON",
        }
    }
}

/// Where, inside a value, the first thing that is not valid JSON sits.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonProblem {
    /// A dotted path from the value's root, e.g. `user.tags[2]`. Empty for the root itself.
    pub path: String,
    /// What is wrong there.
    pub what: &'static str,
}

/// Checks that `v` is strict JSON: finite numbers, no `Bad` values, no `undefined` inside arrays.
/// (`undefined` object members are allowed: they are left out, as `JSON.stringify` does.)
pub fn check_json(v: &Value) -> Result<(), JsonProblem> {
    let mut path = String::new();
    check_inner(v, &mut path)
}

fn check_inner(v: &Value, path: &mut String) -> Result<(), JsonProblem> {
    let fail = |path: &String, what| {
        Err(JsonProblem {
            path: path.clone(),
            what,
        })
    };
    match v {
        Value::Null | Value::Bool(_) | Value::Str(_) => Ok(()),
        Value::Num(n) if n.is_finite() => Ok(()),
        Value::Num(_) => fail(
            path,
            "is not a finite number (NaN and Infinity are not JSON)",
        ),
        Value::Undefined => fail(path, "is undefined, which JSON cannot carry"),
        Value::Bad(b) => fail(path, b.describe()),
        Value::Arr(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push('[');
                push_usize(path, i);
                path.push(']');
                check_inner(item, path)?;
                cut(path, len);
            }
            Ok(())
        }
        Value::Obj(members) => {
            for (k, item) in members {
                if matches!(item, Value::Undefined) {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                check_inner(item, path)?;
                cut(path, len);
            }
            Ok(())
        }
    }
}

/// Shortens `path` back to `len` bytes (always a char boundary here: an earlier length; were it
/// not, the path stays as it is rather than trapping in `truncate`). Not popping characters (a
/// UTF-8 decoder run backwards), nor bytes checked again by `from_utf8` (its validator, 0.7 KB
/// of wasm).
fn cut(path: &mut String, len: usize) {
    if path.is_char_boundary(len) {
        path.truncate(len);
    }
}

/// Writes a number that is not a safe integer (`0.1`, `1e300`) as JSON: the host's shortest
/// round-trip form. The wasm edge passes JavaScript's `String(n)` (no float formatter in the
/// binary); native tests pass Rust's.
pub type FormatNum<'a> = &'a dyn Fn(f64, &mut String);

/// Appends `v` as JSON text. Call only on values [`check_json`] accepted: anything else is
/// written as `null`.
pub fn write_json(out: &mut String, v: &Value, num: FormatNum<'_>) {
    match v {
        Value::Null | Value::Undefined | Value::Bad(_) => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Num(n) => write_num(out, *n, num),
        Value::Str(s) => write_str(out, s),
        Value::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item, num);
            }
            out.push(']');
        }
        Value::Obj(members) => {
            out.push('{');
            let mut first = true;
            for (k, item) in members {
                if matches!(item, Value::Undefined) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_str(out, k);
                out.push(':');
                write_json(out, item, num);
            }
            out.push('}');
        }
    }
}

/// Writes a JSON string literal, escaping as `JSON.stringify` does.
#[inline(never)]
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs that need no escape are copied whole (keys and bodies are mostly such a run): a
    // char at a time was a fifth of the time of an offline `track()`.
    let mut rest = s;
    while let Some(i) = rest
        .bytes()
        .position(|b| b < 0x20 || b == b'"' || b == b'\\')
    {
        // (`i` is an ASCII byte's index: a char boundary.)
        out.push_str(rest.get(..i).unwrap_or_default());
        let mut chars = rest.get(i..).unwrap_or_default().chars();
        match chars.next() {
            Some('"') => out.push_str("\\\""),
            Some('\\') => out.push_str("\\\\"),
            Some('\n') => out.push_str("\\n"),
            Some('\r') => out.push_str("\\r"),
            Some('\t') => out.push_str("\\t"),
            Some('\u{08}') => out.push_str("\\b"),
            Some('\u{0c}') => out.push_str("\\f"),
            Some(c) => {
                let n = c as u8;
                out.push_str("\\u00");
                out.push(crate::key::hex_digit(n >> 4));
                out.push(crate::key::hex_digit(n));
            }
            None => {}
        }
        rest = chars.as_str();
    }
    out.push_str(rest);
    out.push('"');
}

/// Largest integer a JavaScript number holds exactly (2^53 − 1).
pub const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// Writes a finite number. Integers (the common case: values, timestamps) take a short path
/// with no float formatting; other numbers go to `num` (the host's formatter).
#[inline(never)]
pub fn write_num(out: &mut String, n: f64, num: FormatNum<'_>) {
    if !n.is_finite() {
        out.push_str("null");
    } else if crate::float::fract(n) == 0.0 && n.abs() <= MAX_SAFE_INTEGER {
        if n < 0.0 {
            out.push('-');
        }
        push_u64(out, n.abs() as u64);
    } else {
        num(n, out);
    }
}

/// Appends the decimal digits of `n` without `format!`.
#[inline(never)]
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    for &b in buf.get(i..).unwrap_or(&[]) {
        out.push(char::from(b));
    }
}

fn push_usize(out: &mut String, n: usize) {
    push_u64(out, n as u64)
}

/// Number of chars in `s`, counted as UTF-8 lead bytes: `chars().count()` without the
/// vectorised counting routine it brings into the wasm.
pub fn char_len(s: &str) -> usize {
    s.bytes().filter(|b| (b & 0xC0) != 0x80).count()
}

/// Test helpers shared by the crate's native tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// Converts a `serde_json` value (what tests write with `json!`) into a [`Value`].
    pub(crate) fn from_serde(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::Arr(a.iter().map(from_serde).collect()),
            serde_json::Value::Object(o) => {
                Value::Obj(o.iter().map(|(k, v)| (k.clone(), from_serde(v))).collect())
            }
        }
    }

    /// Rust's shortest round-trip float formatting in JavaScript's notation (what `String(n)`
    /// gives for the numbers tests use), the native stand-in for the edge's formatter.
    pub(crate) fn rust_num(n: f64, out: &mut String) {
        use core::fmt::Write;
        let _ = if (1e-7..1e21).contains(&n.abs()) {
            write!(out, "{n}")
        } else {
            write!(out, "{n:e}")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::from_serde;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn json(v: &Value) -> String {
        let mut s = String::new();
        write_json(&mut s, v, &tests_support::rust_num);
        s
    }

    #[test]
    fn strings_are_escaped_as_json_stringify_does() {
        let mut all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        all.push_str("é\u{2028}😀\"\\end");
        for s in [
            all.as_str(),
            "",
            "plain",
            "\"",
            "a\nb",
            "\u{1f}x\u{7f}",
            "ü\\",
        ] {
            let mut out = String::new();
            write_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
            assert_eq!(back, s);
            // JSON.stringify's escapes: the short forms, \u00XX for other controls, nothing else.
            let want = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(out, want);
        }
    }

    #[test]
    fn writes_what_serde_json_reads_back() {
        let samples = [
            r#"{"a":1,"b":[true,false,null],"c":"x\"y\\z\n\u0001é😀","d":{"e":-2.5,"f":1e-7}}"#,
            r#"[0,9007199254740991,-9007199254740991,1e300,0.1,123456.789]"#,
            r#""\u001f\b\f\t\r""#,
            r#"{}"#,
            r#"[]"#,
        ];
        for s in samples {
            let parsed: serde_json::Value = serde_json::from_str(s).unwrap();
            let ours = json(&from_serde(&parsed));
            let back: serde_json::Value = serde_json::from_str(&ours).unwrap();
            assert_eq!(parsed, back, "round trip of {s} through {ours}");
        }
    }

    #[test]
    fn integers_have_no_fraction_or_exponent() {
        assert_eq!(json(&Value::Num(1.0)), "1");
        assert_eq!(json(&Value::Num(-0.0)), "0");
        assert_eq!(json(&Value::Num(1_732_000_000_000.0)), "1732000000000");
        assert_eq!(json(&Value::Num(0.5)), "0.5");
        assert_eq!(json(&Value::Num(-3.25)), "-3.25");
        assert_eq!(json(&Value::Num(1e300)), "1e300");
        assert_eq!(json(&Value::Num(-1.5e-9)), "-1.5e-9");
        assert_eq!(json(&Value::Num(1e21)), "1e21");
    }

    #[test]
    fn escapes_control_characters_like_json_stringify() {
        assert_eq!(
            json(&Value::Str("\u{1}\u{1f}".to_string())),
            r#""\u0001\u001f""#
        );
        assert_eq!(
            json(&Value::Str("a\u{2028}b".to_string())),
            "\"a\u{2028}b\""
        );
    }

    #[test]
    fn undefined_members_are_left_out() {
        let v = Value::Obj(vec![
            ("a".to_string(), Value::Undefined),
            ("b".to_string(), Value::Num(2.0)),
        ]);
        assert_eq!(json(&v), r#"{"b":2}"#);
        assert_eq!(check_json(&v), Ok(()));
    }

    #[test]
    fn check_json_names_the_path_of_the_problem() {
        let v = Value::Obj(vec![(
            "user".to_string(),
            Value::Obj(vec![(
                "tags".to_string(),
                Value::Arr(vec![Value::Num(1.0), Value::Num(f64::NAN)]),
            )]),
        )]);
        let p = check_json(&v).unwrap_err();
        assert_eq!(p.path, "user.tags[1]");
        assert!(p.what.contains("finite"));

        let v = Value::Arr(vec![Value::Undefined]);
        assert_eq!(check_json(&v).unwrap_err().path, "[0]");

        for bad in [
            Bad::Function,
            Bad::Symbol,
            Bad::BigInt,
            Bad::Cycle,
            Bad::Threw,
        ] {
            let v = Value::Obj(vec![("k".to_string(), Value::Bad(bad))]);
            let p = check_json(&v).unwrap_err();
            assert_eq!(p.path, "k");
            assert_eq!(p.what, bad.describe());
        }
    }

    #[test]
    fn char_len_counts_chars() {
        for s in ["", "abc", "é", "日本語", "😀x", "a\u{0}b"] {
            assert_eq!(char_len(s), s.chars().count(), "{s:?}");
        }
    }

    #[test]
    fn push_u64_edges() {
        for n in [0u64, 7, 10, 99, 100, u64::MAX] {
            let mut s = String::new();
            push_u64(&mut s, n);
            assert_eq!(s, n.to_string());
        }
    }
}
