//! Text → [`Value`]: how JavaScript values reach the core. The edge's encoder (`js/value.js`)
//! walks a value once, in JavaScript, and writes JSON with four additions — `u` (undefined),
//! `#` + 16 hex digits (a number that is not a safe integer, as its IEEE-754 bits), and `!` +
//! a digit (a [`Bad`] where it was found, in the order of [`Bad`]'s variants). One string crosses
//! into the wasm instead of a call back into JavaScript for every probe of every value.
//!
//! The encoder writes `t`, `f` and `n` for `true`, `false` and `null`; the reader takes JSON's
//! spellings too, so the driver's own reports, which hold only strings, safe integers, booleans
//! and null, cross as `JSON.stringify` writes them (native, and the encoder's guards are for
//! values the driver did not build).
//!
//! The reader is total: any text gives a value and nothing panics (malformed text, which the
//! encoder never writes, reads as [`Bad::Threw`] where it breaks). Plain Rust, so `cargo test`
//! and the fuzz targets run the code that ships.

use alloc::string::String;
use alloc::vec::Vec;

use crate::value::{Bad, Value, MAX_DEPTH};

/// Reads the encoder's text.
pub fn decode(text: &str) -> Value {
    Reader {
        s: text,
        b: text.as_bytes(),
        i: 0,
    }
    .value(0)
}

struct Reader<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// What `!0` … `!8` stand for (the encoder's digits, in [`Bad`]'s order).
pub const BADS: [Bad; 9] = [
    Bad::Function,
    Bad::Symbol,
    Bad::BigInt,
    Bad::Cycle,
    Bad::TooDeep,
    Bad::NotPlain,
    Bad::Threw,
    Bad::LoneSurrogate,
    Bad::TooLarge,
];

impl Reader<'_> {
    fn next(&mut self) -> u8 {
        let c = self.b.get(self.i).copied().unwrap_or(0);
        self.i += 1;
        c
    }

    /// Malformed text: nothing after this point is read.
    fn broken(&mut self) -> Value {
        self.i = self.b.len() + 1;
        Value::Bad(Bad::Threw)
    }

    fn bad(&mut self) -> Value {
        let d = self.next().wrapping_sub(b'0');
        match BADS.get(d as usize) {
            Some(b) => Value::Bad(*b),
            None => self.broken(),
        }
    }

    fn value(&mut self, depth: usize) -> Value {
        match self.next() {
            b'u' => Value::Undefined,
            b'n' => self.word(b"ull", Value::Null),
            b't' => self.word(b"rue", Value::Bool(true)),
            b'f' => self.word(b"alse", Value::Bool(false)),
            b'!' => self.bad(),
            b'#' => match self.hex(16) {
                Some(bits) => Value::Num(f64::from_bits(bits)),
                None => self.broken(),
            },
            c @ (b'-' | b'0'..=b'9') => self.int(c),
            b'"' => match self.string() {
                Some(Ok(s)) => Value::Str(s),
                Some(Err(b)) => Value::Bad(b),
                None => self.broken(),
            },
            b'[' if depth <= MAX_DEPTH + 1 => self.array(depth + 1),
            b'{' if depth <= MAX_DEPTH + 1 => self.object(depth + 1),
            _ => self.broken(),
        }
    }

    /// `v`, past the rest of its JSON spelling where the text has it (`null` for `n`).
    fn word(&mut self, rest: &[u8], v: Value) -> Value {
        if self.b.get(self.i..).is_some_and(|b| b.starts_with(rest)) {
            self.i += rest.len();
        }
        v
    }

    /// A safe integer (the encoder writes no other number in decimal).
    fn int(&mut self, first: u8) -> Value {
        let neg = first == b'-';
        let mut n: u64 = if neg { 0 } else { u64::from(first - b'0') };
        while let Some(d) = self
            .b
            .get(self.i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d < 10)
        {
            n = n.saturating_mul(10).saturating_add(u64::from(d));
            self.i += 1;
        }
        let n = n as f64;
        Value::Num(if neg { -n } else { n })
    }

    fn hex(&mut self, digits: usize) -> Option<u64> {
        let mut n = 0u64;
        for _ in 0..digits {
            let c = self.next();
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return None,
            };
            n = n << 4 | u64::from(d);
        }
        Some(n)
    }

    /// A JSON string after its opening quote: the text, or [`Bad::LoneSurrogate`] for an
    /// escaped lone surrogate (the encoder refuses those itself; this is the reader's own
    /// guard); `None` for malformed text.
    fn string(&mut self) -> Option<Result<String, Bad>> {
        let mut out = String::new();
        let mut lone = false;
        loop {
            let start = self.i;
            while self
                .b
                .get(self.i)
                .is_some_and(|c| *c != b'"' && *c != b'\\')
            {
                self.i += 1;
            }
            // The run starts and stops at ASCII bytes, so at char boundaries of the text: a slice
            // of the `str` (no UTF-8 validation again, and no validator in the wasm).
            out.push_str(self.s.get(start..self.i)?);
            match self.next() {
                b'"' => {
                    return Some(if lone {
                        Err(Bad::LoneSurrogate)
                    } else {
                        Ok(out)
                    })
                }
                b'\\' => {}
                _ => return None,
            }
            let c = match self.next() {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = self.hex(4)? as u32;
                    if (0xD800..0xDC00).contains(&hi)
                        && self.b.get(self.i..self.i + 2) == Some(b"\\u")
                    {
                        let save = self.i;
                        self.i += 2;
                        let lo = self.hex(4)? as u32;
                        if (0xDC00..0xE000).contains(&lo) {
                            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                        } else {
                            self.i = save;
                            lone = true;
                            continue;
                        }
                    } else if let Some(c) = char::from_u32(hi) {
                        c
                    } else {
                        lone = true;
                        continue;
                    }
                }
                _ => return None,
            };
            out.push(c);
        }
    }

    fn array(&mut self, depth: usize) -> Value {
        let mut items = Vec::new();
        if self.b.get(self.i) == Some(&b']') {
            self.i += 1;
            return Value::Arr(items);
        }
        loop {
            items.push(self.value(depth));
            match self.next() {
                b',' => {}
                b']' => return Value::Arr(items),
                _ => {
                    items.push(self.broken());
                    return Value::Arr(items);
                }
            }
        }
    }

    fn object(&mut self, depth: usize) -> Value {
        let mut members = Vec::new();
        if self.b.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Value::Obj(members);
        }
        loop {
            let key = match self.next() {
                b'"' => self.string(),
                // A key the encoder could not read (too large, a lone surrogate): the object
                // ends there.
                b'!' => {
                    let bad = self.bad();
                    members.push((String::new(), bad));
                    if self.next() != b'}' {
                        members.push((String::new(), self.broken()));
                    }
                    return Value::Obj(members);
                }
                _ => None,
            };
            let key = match key {
                Some(Ok(k)) => k,
                Some(Err(b)) => {
                    members.push((String::new(), Value::Bad(b)));
                    self.broken();
                    return Value::Obj(members);
                }
                None => {
                    members.push((String::new(), self.broken()));
                    return Value::Obj(members);
                }
            };
            if self.next() != b':' {
                members.push((key, self.broken()));
                return Value::Obj(members);
            }
            let v = self.value(depth);
            members.push((key, v));
            match self.next() {
                b',' => {}
                b'}' => return Value::Obj(members),
                _ => {
                    members.push((String::new(), self.broken()));
                    return Value::Obj(members);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn reads_json_literals_as_the_driver_writes_them() {
        assert_eq!(
            decode(r#"{"ok":true,"redirected":false,"date":null,"v":[true,false,null,t,f,n]}"#),
            Value::Obj(vec![
                ("ok".into(), Value::Bool(true)),
                ("redirected".into(), Value::Bool(false)),
                ("date".into(), Value::Null),
                (
                    "v".into(),
                    Value::Arr(vec![
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Null,
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Null,
                    ])
                ),
            ])
        );
        // Half a word is no word: the rest is malformed, as before.
        assert_eq!(
            decode("[tru]"),
            Value::Arr(vec![Value::Bool(true), Value::Bad(Bad::Threw)])
        );
    }

    #[test]
    fn reads_what_the_encoder_writes() {
        assert_eq!(
            decode(
                r#"{"customerId":"c\"1\\\n\u0001","value":1,"p":[u,n,t,f,-42,#3ff8000000000000],"e":{},"a":[]}"#
            ),
            Value::Obj(vec![
                ("customerId".into(), s("c\"1\\\n\u{1}")),
                ("value".into(), Value::Num(1.0)),
                (
                    "p".into(),
                    Value::Arr(vec![
                        Value::Undefined,
                        Value::Null,
                        Value::Bool(true),
                        Value::Bool(false),
                        Value::Num(-42.0),
                        Value::Num(1.5),
                    ])
                ),
                ("e".into(), Value::Obj(vec![])),
                ("a".into(), Value::Arr(vec![])),
            ])
        );
        assert_eq!(
            decode("9007199254740991"),
            Value::Num(9_007_199_254_740_991.0)
        );
        assert_eq!(decode("-0"), Value::Num(0.0));
        assert!(
            matches!(decode("#8000000000000000"), Value::Num(n) if n == 0.0 && n.is_sign_negative())
        );
        assert!(matches!(decode("#7ff8000000000000"), Value::Num(n) if n.is_nan()));
        assert_eq!(decode("#7ff0000000000000"), Value::Num(f64::INFINITY));
        assert_eq!(decode(r#""é😀 \ud83d\ude00""#), s("é😀 😀"));
    }

    #[test]
    fn bads_stay_where_they_were_found() {
        let all = "[!0,!1,!2,!3,!4,!5,!6,!7,!8]";
        assert_eq!(
            decode(all),
            Value::Arr(BADS.iter().map(|b| Value::Bad(*b)).collect())
        );
        // A key the encoder could not read ends its object.
        assert_eq!(
            decode(r#"{"a":1,!8}"#),
            Value::Obj(vec![
                ("a".into(), Value::Num(1.0)),
                (String::new(), Value::Bad(Bad::TooLarge))
            ])
        );
        assert_eq!(
            decode(r#"{"a":!7,"b":"\ud800x","c":"\udc00"}"#),
            Value::Obj(vec![
                ("a".into(), Value::Bad(Bad::LoneSurrogate)),
                ("b".into(), Value::Bad(Bad::LoneSurrogate)),
                ("c".into(), Value::Bad(Bad::LoneSurrogate)),
            ])
        );
    }

    #[test]
    fn malformed_text_reads_as_threw_and_never_panics() {
        for t in [
            "",
            "x",
            "!",
            "!9",
            "#12",
            "\"abc",
            "\"\\x\"",
            "[1,",
            "[1 2]",
            "{\"a\"1}",
            "{1:2}",
            "{\"a\":1,",
            "\"\\u12\"",
            "{!8,\"a\":1}",
            "\"\\ud800\\u12\"",
        ] {
            let v = decode(t);
            let mut stack = vec![&v];
            let mut found = false;
            while let Some(v) = stack.pop() {
                match v {
                    Value::Bad(Bad::Threw) => found = true,
                    Value::Arr(a) => stack.extend(a),
                    Value::Obj(m) => stack.extend(m.iter().map(|(_, v)| v)),
                    _ => {}
                }
            }
            assert!(found, "{t:?} read as {v:?}");
        }
        // Deeper than the encoder ever writes: refused, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(matches!(decode(&deep), Value::Arr(_)));
    }
}
