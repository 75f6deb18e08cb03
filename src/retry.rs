//! Retry timing: how long to wait before the next attempt with the same key, as pure functions
//! of the attempt number, the policy, the server's `Retry-After` and a random draw — no I/O and
//! no clock reading, so every case is a table row. What an answer *means* is
//! [`answer::classify`](crate::answer::classify); this module only says *when*.

use crate::value::MAX_SAFE_INTEGER;

/// Retry timing of a `track()` call's own attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Retries after the first attempt (0 = try once).
    pub max_retries: u32,
    /// First backoff ceiling, milliseconds.
    pub base_ms: u64,
    /// Largest backoff ceiling, milliseconds.
    pub cap_ms: u64,
    /// Longest `Retry-After` honoured before giving up on this call (the queue takes over).
    pub max_retry_after_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_retries: 5,
            base_ms: 500,
            cap_ms: 30_000,
            max_retry_after_ms: 60_000,
        }
    }
}

/// The wait before retry number `attempt + 1` of a call (`attempt` = attempts made so far,
/// minus one: 0 after the first), or `None` when the call should stop retrying: the retries are
/// used up, or the server asks for a longer wait than the call may take. `retry_after_ms` is
/// the server's wait, if it gave one; `rand01` in `[0, 1)` draws the jitter.
pub fn in_call_delay(
    attempt: u32,
    retry_after_ms: Option<u64>,
    policy: &Policy,
    rand01: f64,
) -> Option<u64> {
    if attempt >= policy.max_retries {
        return None;
    }
    match retry_after_ms {
        Some(ms) if ms > policy.max_retry_after_ms => None,
        // Honour the server's wait, plus a little jitter so clients told the same thing do not
        // all return at once.
        Some(ms) => Some(ms + (rand01.clamp(0.0, 1.0) * 250.0) as u64),
        None => Some(backoff(attempt, policy.base_ms, policy.cap_ms, rand01)),
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base·2^attempt)]`.
pub fn backoff(attempt: u32, base_ms: u64, cap_ms: u64, rand01: f64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(32)).min(cap_ms);
    (ceiling as f64 * rand01.clamp(0.0, 1.0)) as u64
}

/// Reads a `Retry-After` value: delay-seconds (`"120"`, also a decimal such as `"1.5"`), or an
/// HTTP-date, which the edge has already read into Unix ms (`date_ms`; JavaScript's
/// `Date.parse`). Returns milliseconds from `now_ms` (0 for a date in the past), or `None` when
/// it is neither.
pub fn retry_after_ms(raw: &str, date_ms: Option<f64>, now_ms: f64) -> Option<u64> {
    // HTTP's whitespace (ASCII): `trim()` would bring Unicode's tables and a backwards UTF-8
    // decoder into the wasm.
    let h = raw.trim_ascii();
    if h.is_empty() {
        return None;
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_seconds(h);
    }
    let at = date_ms.filter(|d| d.is_finite())?;
    Some((at - now_ms).clamp(0.0, MAX_SAFE_INTEGER) as u64)
}

/// `"120"` or `"1.5"` seconds → milliseconds, saturating; without float parsing (which would
/// add kilobytes to the wasm).
fn parse_seconds(h: &str) -> Option<u64> {
    // Byte by byte: `split_once` brings core's string searcher into the wasm.
    let dot = h.bytes().position(|b| b == b'.').unwrap_or(h.len());
    let (int, frac) = (h.get(..dot)?, h.get(dot + 1..).unwrap_or(""));
    if int.is_empty() || frac.bytes().any(|b| b == b'.') {
        return None;
    }
    let cap = MAX_SAFE_INTEGER as u64;
    let mut ms: u64 = 0;
    for b in int.bytes() {
        ms = ms.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    ms = ms.saturating_mul(1000);
    let mut scale = 100;
    for b in frac.bytes().take(3) {
        ms = ms.saturating_add(u64::from(b - b'0') * scale);
        scale /= 10;
    }
    Some(ms.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 784_111_777_000.0; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn in_call_table() {
        let p = Policy::default();
        // (attempt, retry_after, rand, expected)
        let rows: &[(u32, Option<u64>, f64, Option<u64>)] = &[
            (0, None, 1.0, Some(500)),
            (0, None, 0.5, Some(250)),
            (1, None, 1.0, Some(1000)),
            (2, None, 1.0, Some(2000)),
            (3, None, 0.0, Some(0)),
            (4, None, 1.0, Some(8000)),
            (5, None, 0.5, None),
            (0, Some(2000), 0.0, Some(2000)),
            (0, Some(2000), 1.0, Some(2250)),
            (0, Some(0), 0.0, Some(0)),
            (0, Some(60_000), 0.0, Some(60_000)),
            (0, Some(60_001), 0.0, None),
            (0, Some(3_600_000), 0.0, None),
            (5, Some(1000), 0.0, None),
        ];
        for (i, (attempt, ra, r, want)) in rows.iter().enumerate() {
            assert_eq!(in_call_delay(*attempt, *ra, &p, *r), *want, "row {i}");
        }
        let none = Policy {
            max_retries: 0,
            ..Policy::default()
        };
        assert_eq!(
            in_call_delay(0, None, &none, 0.5),
            None,
            "0 retries: one attempt"
        );
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        assert_eq!(backoff(6, 500, 30_000, 1.0), 30_000);
        assert_eq!(backoff(u32::MAX, 500, 30_000, 1.0), 30_000);
        assert_eq!(backoff(63, 500, 30_000, 2.0), 30_000, "rand is clamped");
        assert_eq!(backoff(0, 500, 30_000, -1.0), 0);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after_ms("120", None, NOW), Some(120_000));
        assert_eq!(retry_after_ms(" 1.5 ", None, NOW), Some(1_500));
        assert_eq!(retry_after_ms("\t120\r\n", None, NOW), Some(120_000));
        // HTTP's whitespace is ASCII's: a no-break space is text, and text needs a date.
        assert_eq!(retry_after_ms("\u{a0}120", None, NOW), None);
        assert_eq!(retry_after_ms("", None, NOW), None);
        assert_eq!(retry_after_ms("-1", None, NOW), None);
        assert_eq!(retry_after_ms("1e3", None, NOW), None);
        assert_eq!(retry_after_ms("..", None, NOW), None);
        assert_eq!(retry_after_ms(".5", None, NOW), None);
        assert_eq!(retry_after_ms("1.2.3", None, NOW), None);
        assert_eq!(retry_after_ms("2.", None, NOW), Some(2_000));
        assert_eq!(retry_after_ms("0.25", None, NOW), Some(250));
        assert_eq!(retry_after_ms("0.0009", None, NOW), Some(0));
        assert_eq!(
            retry_after_ms("99999999999999999999999", None, NOW),
            Some(MAX_SAFE_INTEGER as u64)
        );
        // A date, as the edge read it.
        let d = "Sun, 06 Nov 1994 08:49:47 GMT";
        assert_eq!(retry_after_ms(d, Some(NOW + 10_000.0), NOW), Some(10_000));
        assert_eq!(retry_after_ms(d, Some(NOW - 10_000.0), NOW), Some(0));
        assert_eq!(retry_after_ms("soon", None, NOW), None);
        assert_eq!(retry_after_ms("soon", Some(f64::NAN), NOW), None);
        assert_eq!(
            retry_after_ms(d, Some(f64::MAX), NOW),
            Some(MAX_SAFE_INTEGER as u64)
        );
    }
}
