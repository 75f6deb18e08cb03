//! `Retry-After` parsing, the native path (in wasm, HTTP dates go to `Date.parse`). Input: an
//! optional first line holding `now`, then the header value. Invariants: nothing panics;
//! delay-seconds agree with a reference parser (saturating at 2^53 − 1 ms); an accepted
//! HTTP-date is an IMF-fixdate that formats back to itself and lies within JavaScript's date
//! range; the retry decision honours the wait or gives up, never waiting past its cap.
#![no_main]

use autumn_track::retry::{decide, parse_http_date, parse_retry_after, Next, Outcome, Policy};
use autumn_track::value::MAX_SAFE_INTEGER;
use autumn_track_fuzz::{imf_fixdate, num};
use libfuzzer_sys::fuzz_target;

/// `now` when the input does not give one: Thu, 15 Jan 2027 08:00:00 GMT.
const NOW: f64 = 1_800_000_000_000.0;

fuzz_target!(|data: &[u8]| {
    // Input: an optional first line with `now` (Unix ms, any f64 syntax), then the header value.
    let text = String::from_utf8_lossy(data);
    let (now, header) = match text.split_once('\n') {
        Some((first, rest)) => match num(first) {
            Some(n) => (n, rest),
            None => (NOW, &*text),
        },
        None => (NOW, &*text),
    };

    // The other direction: any whole second from 1970 to 9999, formatted, reads back exactly.
    if now.is_finite() && (0.0..=253_402_300_799_000.0).contains(&now) {
        let whole = (now / 1000.0).floor() * 1000.0;
        let s = imf_fixdate(whole as i64).expect("in range");
        assert_eq!(parse_http_date(&s), Some(whole), "{s}");
    }

    let got = parse_retry_after(header, now);
    let t = header.trim();

    if !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        assert_eq!(got, reference_seconds(t), "delay-seconds {t:?}");
    } else {
        let date = parse_http_date(t);
        if let Some(ms) = date {
            // Years 0000 to 9999, whole seconds.
            assert!(
                (-62_167_219_200_000.0..=253_402_300_800_000.0).contains(&ms),
                "{t:?} → {ms}"
            );
            assert_eq!(ms % 1000.0, 0.0);
            let norm = without_weekday(t);
            if norm.contains(":60 ") {
                // A leap second: one second after :59.
                let before = format!("Xxx, {}", norm.replace(":60 ", ":59 "));
                assert_eq!(
                    parse_http_date(&before).map(|b| b + 1000.0),
                    Some(ms),
                    "{t:?}"
                );
            } else {
                let back = imf_fixdate(ms as i64).expect("a formattable date");
                assert_eq!(
                    without_weekday(&back),
                    norm,
                    "accepted {t:?}, which is not the IMF-fixdate of the instant it names"
                );
                assert_eq!(parse_http_date(&back), Some(ms), "round trip of {back}");
            }
            assert_eq!(got, Some((ms - now).max(0.0) as u64), "{t:?} at {now}");
        } else {
            assert_eq!(got, None, "{t:?} is neither seconds nor a date");
        }
    }

    // The decision on a 429/503 carrying it.
    let p = Policy::default();
    for status in [429u16, 503] {
        let o = Outcome::Status {
            status,
            retry_after: Some(header),
        };
        match decide(o, 0, &p, now, 0.999) {
            Next::RetryIn(ms) => match got {
                Some(wait) => {
                    assert!(wait <= p.max_retry_after_ms);
                    assert!(ms >= wait && ms <= wait + 250, "{ms} for a wait of {wait}");
                }
                None => assert!(ms <= p.base_ms),
            },
            Next::GiveUp => assert!(got.is_some_and(|w| w > p.max_retry_after_ms)),
            other => panic!("{status} decided {other:?}"),
        }
    }
});

/// Delay-seconds with exact (u128) arithmetic: whole seconds, an optional fraction of which
/// the first three digits count; saturating at 2^53 − 1 ms.
fn reference_seconds(t: &str) -> Option<u64> {
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    if int.is_empty() || frac.contains('.') {
        return None;
    }
    let cap = MAX_SAFE_INTEGER as u128;
    let mut ms: u128 = 0;
    for c in int.bytes() {
        ms = (ms * 10 + u128::from(c - b'0')).min(cap * 10);
    }
    ms *= 1000;
    let mut scale = 100;
    for c in frac.bytes().take(3) {
        ms += u128::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(ms.min(cap) as u64)
}

/// The date without its weekday (which is not checked), tokens joined by one space.
fn without_weekday(s: &str) -> String {
    s.split_ascii_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}
