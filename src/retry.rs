//! What to do after one delivery attempt: a pure function of the attempt's outcome, the attempt
//! number, the policy, the clock and a random number — no I/O, so every case is a table row.

use crate::value::MAX_SAFE_INTEGER;

/// How one attempt ended, as far as the decision needs to know.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome<'a> {
    /// `fetch` rejected: DNS, refused, reset, offline, CORS.
    Network,
    /// No complete answer within the timeout.
    Timeout,
    /// The server answered.
    Status {
        /// HTTP status.
        status: u16,
        /// The `Retry-After` header, if readable.
        retry_after: Option<&'a str>,
    },
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Next {
    /// 2xx: recorded (or queued by the server).
    Delivered,
    /// 409: the key was already recorded: a success.
    Duplicate,
    /// Try again after this many milliseconds, with the same idempotency key.
    RetryIn(u64),
    /// The server refused the event for good; do not resend it unchanged.
    Permanent,
    /// Retryable, but the attempts allowed are used up.
    GiveUp,
}

/// Retry timing.
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

/// True for statuses worth retrying with the same key: 408, 429 and 5xx but 501/505.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// Decides what follows attempt number `attempt` (0 for the first try). `now_ms` is used to
/// read an HTTP-date `Retry-After`; `rand01` in `[0, 1)` draws the jitter.
pub fn decide(
    outcome: Outcome<'_>,
    attempt: u32,
    policy: &Policy,
    now_ms: f64,
    rand01: f64,
) -> Next {
    let retry_after = match outcome {
        Outcome::Status { status, .. } if (200..300).contains(&status) => return Next::Delivered,
        Outcome::Status { status: 409, .. } => return Next::Duplicate,
        Outcome::Status { status, .. } if !is_retryable_status(status) => return Next::Permanent,
        Outcome::Status { retry_after, .. } => {
            retry_after.and_then(|h| parse_retry_after(h, now_ms))
        }
        Outcome::Network | Outcome::Timeout => None,
    };
    if attempt >= policy.max_retries {
        return Next::GiveUp;
    }
    match retry_after {
        Some(ms) if ms > policy.max_retry_after_ms => Next::GiveUp,
        // Honour the server's wait, plus a little jitter so clients told the same thing
        // do not all return at once.
        Some(ms) => Next::RetryIn(ms + (rand01.clamp(0.0, 1.0) * 250.0) as u64),
        None => Next::RetryIn(backoff(attempt, policy, rand01)),
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base·2^attempt)]`.
pub fn backoff(attempt: u32, policy: &Policy, rand01: f64) -> u64 {
    let ceiling = policy
        .base_ms
        .saturating_mul(1u64 << attempt.min(32))
        .min(policy.cap_ms);
    (ceiling as f64 * rand01.clamp(0.0, 1.0)) as u64
}

/// Reads a `Retry-After` value: delay-seconds (`"120"`, also a decimal such as `"1.5"`) or an
/// HTTP-date (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`). Returns milliseconds from now
/// (0 for a date in the past), or `None` when it is neither.
pub fn parse_retry_after(h: &str, now_ms: f64) -> Option<u64> {
    let h = h.trim();
    if h.is_empty() {
        return None;
    }
    if h.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_seconds(h);
    }
    let at = parse_http_date(h)?;
    Some((at - now_ms).max(0.0) as u64)
}

/// `"120"` or `"1.5"` seconds → milliseconds, saturating; without float parsing (which would
/// add kilobytes to the wasm).
fn parse_seconds(h: &str) -> Option<u64> {
    let (int, frac) = h.split_once('.').unwrap_or((h, ""));
    if int.is_empty() || frac.contains('.') {
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

/// Parses an HTTP date into Unix milliseconds: JavaScript's `Date.parse` in wasm (no date
/// parser in the binary), the IMF-fixdate parser below natively.
#[cfg(target_arch = "wasm32")]
pub fn parse_http_date(s: &str) -> Option<f64> {
    let ms = js_sys::Date::parse(s);
    ms.is_finite().then_some(ms)
}

/// Parses an IMF-fixdate (RFC 9110: two-digit day and time fields, four-digit year, `GMT`)
/// into Unix milliseconds; `None` for anything else, including days a month does not have.
#[cfg(not(target_arch = "wasm32"))]
pub fn parse_http_date(s: &str) -> Option<f64> {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let mut parts = s.split_ascii_whitespace();
    let _weekday = parts.next()?;
    let day = digits(parts.next()?, 2)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = digits(parts.next()?, 4)?;
    let mut hms = parts.next()?.split(':');
    let hh = digits(hms.next()?, 2)?;
    let mm = digits(hms.next()?, 2)?;
    let ss = digits(hms.next()?, 2)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if hms.next().is_some()
        || parts.next()? != "GMT"
        || parts.next().is_some()
        || !(1..=month_days).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day as u32);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) as f64)
}

/// Exactly `n` ASCII digits (no sign, no spaces) as a number.
#[cfg(not(target_arch = "wasm32"))]
fn digits(s: &str, n: usize) -> Option<i64> {
    (s.len() == n && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.bytes().fold(0, |acc, b| acc * 10 + i64::from(b - b'0')))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
#[cfg(not(target_arch = "wasm32"))]
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 784_111_777_000.0; // Sun, 06 Nov 1994 08:49:37 GMT

    #[test]
    fn decision_table() {
        let p = Policy::default();
        let st = |status| Outcome::Status {
            status,
            retry_after: None,
        };
        let ra = |status, h| Outcome::Status {
            status,
            retry_after: Some(h),
        };
        // (outcome, attempt, rand, expected)
        let rows: &[(Outcome<'_>, u32, f64, Next)] = &[
            (st(200), 0, 0.5, Next::Delivered),
            (st(202), 3, 0.5, Next::Delivered),
            (st(204), 0, 0.5, Next::Delivered),
            (st(409), 0, 0.5, Next::Duplicate),
            (st(409), 9, 0.5, Next::Duplicate),
            (st(400), 0, 0.5, Next::Permanent),
            (st(401), 0, 0.5, Next::Permanent),
            (st(403), 0, 0.5, Next::Permanent),
            (st(404), 0, 0.5, Next::Permanent),
            (st(413), 0, 0.5, Next::Permanent),
            (st(501), 0, 0.5, Next::Permanent),
            (st(302), 0, 0.5, Next::Permanent),
            (st(408), 0, 1.0, Next::RetryIn(500)),
            (st(500), 0, 0.5, Next::RetryIn(250)),
            (st(502), 1, 1.0, Next::RetryIn(1000)),
            (st(503), 2, 1.0, Next::RetryIn(2000)),
            (st(504), 3, 0.0, Next::RetryIn(0)),
            (st(520), 0, 1.0, Next::RetryIn(500)),
            (Outcome::Network, 0, 1.0, Next::RetryIn(500)),
            (Outcome::Timeout, 4, 1.0, Next::RetryIn(8000)),
            (Outcome::Network, 5, 0.5, Next::GiveUp),
            (st(503), 5, 0.5, Next::GiveUp),
            (ra(429, "2"), 0, 0.0, Next::RetryIn(2000)),
            (ra(429, "2"), 0, 1.0, Next::RetryIn(2250)),
            (ra(503, "1"), 1, 0.0, Next::RetryIn(1000)),
            (ra(429, "0"), 0, 0.0, Next::RetryIn(0)),
            (ra(429, "3600"), 0, 0.0, Next::GiveUp),
            (ra(429, "315360000"), 0, 0.0, Next::GiveUp),
            (
                ra(429, "Sun, 06 Nov 1994 08:49:39 GMT"),
                0,
                0.0,
                Next::RetryIn(2000),
            ),
            (
                ra(429, "Sun, 06 Nov 1994 08:00:00 GMT"),
                0,
                0.0,
                Next::RetryIn(0),
            ),
            (ra(429, "soon"), 0, 1.0, Next::RetryIn(500)),
            (ra(429, "1"), 5, 0.0, Next::GiveUp),
            (ra(400, "1"), 0, 0.0, Next::Permanent),
        ];
        for (i, (o, attempt, r, want)) in rows.iter().enumerate() {
            assert_eq!(
                decide(*o, *attempt, &p, NOW, *r),
                *want,
                "row {i}: {o:?} attempt {attempt}"
            );
        }
    }

    #[test]
    fn zero_retries_means_one_attempt() {
        let p = Policy {
            max_retries: 0,
            ..Policy::default()
        };
        assert_eq!(decide(Outcome::Network, 0, &p, NOW, 0.5), Next::GiveUp);
        assert_eq!(
            decide(
                Outcome::Status {
                    status: 200,
                    retry_after: None
                },
                0,
                &p,
                NOW,
                0.5
            ),
            Next::Delivered
        );
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let p = Policy::default();
        assert_eq!(backoff(6, &p, 1.0), 30_000);
        assert_eq!(backoff(u32::MAX, &p, 1.0), 30_000);
        assert_eq!(backoff(63, &p, 2.0), 30_000, "rand is clamped");
        assert_eq!(backoff(0, &p, -1.0), 0);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", NOW), Some(120_000));
        assert_eq!(parse_retry_after(" 1.5 ", NOW), Some(1_500));
        assert_eq!(parse_retry_after("", NOW), None);
        assert_eq!(parse_retry_after("-1", NOW), None);
        assert_eq!(parse_retry_after("1e3", NOW), None);
        assert_eq!(parse_retry_after("..", NOW), None);
        assert_eq!(parse_retry_after(".5", NOW), None);
        assert_eq!(parse_retry_after("1.2.3", NOW), None);
        assert_eq!(parse_retry_after("2.", NOW), Some(2_000));
        assert_eq!(parse_retry_after("0.25", NOW), Some(250));
        assert_eq!(parse_retry_after("0.0009", NOW), Some(0));
        assert_eq!(
            parse_retry_after("99999999999999999999999", NOW),
            Some(MAX_SAFE_INTEGER as u64)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", NOW),
            Some(10_000)
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 PST", NOW),
            None
        );
        assert_eq!(
            parse_retry_after("Sun, 32 Nov 1994 08:49:47 GMT", NOW),
            None
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Foo 1994 08:49:47 GMT", NOW),
            None
        );
    }

    /// Found by `fuzz/fuzz_targets/retry_after.rs`: a year of 15 digits overflowed the day
    /// arithmetic (a panic in debug builds, a wrong instant in release), and signed or
    /// one-digit fields, extra tokens and days a month lacks were read as some other instant.
    #[test]
    fn http_dates_are_strict_imf_fixdates() {
        for s in [
            "Sun, 06 Nov 999999999999999 08:49:37 GMT",
            "Sun, 06 Nov -1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 -8:49:37 GMT",
            "Sun, 06 Nov 1994 +8:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Mon, 29 Feb 1900 00:00:00 GMT",
            "Sun, 31 Apr 1994 00:00:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(s), None, "{s}");
            assert_eq!(parse_retry_after(s, NOW), None, "{s}");
        }
        assert_eq!(
            parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"),
            Some(253_402_300_799_000.0)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400_000.0)
        );
        // A leap second reads as the next minute's first second.
        assert_eq!(
            parse_http_date("Wed, 31 Dec 2025 23:59:60 GMT"),
            parse_http_date("Thu, 01 Jan 2026 00:00:00 GMT")
        );
    }

    #[test]
    fn http_dates_match_known_instants() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0.0));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(NOW));
        assert_eq!(
            parse_http_date("Thu, 26 Nov 2026 09:29:44 GMT"),
            Some(1_795_685_384_000.0)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600_000.0)
        );
    }
}
