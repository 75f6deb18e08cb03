//! `Retry-After`: `retry::retry_after_ms(raw, date_ms, now)`. HTTP dates are read by the JS edge
//! (`Date.parse`) and passed in as `date_ms`; the core reads delay-seconds itself.
//!
//! Input: an optional first line `now [date_ms]` (Unix ms, any f64 syntax; `-` for no date),
//! then the header value. Invariants: nothing panics; delay-seconds (digits with at most one
//! `.`) agree with an exact reference parser whatever the date and clock say, saturating at
//! 2^53 − 1 ms; anything else is the edge's date, `date − now` rounded down and clamped to
//! [0, 2^53 − 1], never longer as the clock advances nor shorter for a later date, whatever the
//! text says; no date (or not a finite one) and not seconds is `None`; surrounding (ASCII)
//! whitespace changes nothing; the retry decisions honour the wait or give up, never waiting past a cap.
#![no_main]

use autumn_track::queue::{retry_at, Policy as QueuePolicy, MAX_WAIT_MS};
use autumn_track::retry::{in_call_delay, retry_after_ms, Policy};
use autumn_track::value::MAX_SAFE_INTEGER;
use autumn_track_fuzz::num;
use libfuzzer_sys::fuzz_target;

/// `now` when the input does not give one: Fri, 15 Jan 2027 08:00:00 GMT.
const NOW: f64 = 1_800_000_000_000.0;

/// The first line as `now [date]`, if it is one.
fn clock_line(line: &str) -> Option<(f64, Option<f64>)> {
    let mut it = line.split_ascii_whitespace();
    let now = num(it.next()?)?;
    let date = match it.next() {
        None | Some("-") => None,
        Some(d) => Some(num(d)?),
    };
    it.next().is_none().then_some((now, date))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (now, date, header) = match text.split_once('\n') {
        Some((first, rest)) => match clock_line(first) {
            Some((now, date)) => (now, date, rest),
            None => (NOW, None, &*text),
        },
        None => (NOW, None, &*text),
    };

    let got = retry_after_ms(header, date, now);
    if let Some(w) = got {
        assert!(w as f64 <= MAX_SAFE_INTEGER, "{w} past 2^53 - 1");
    }
    assert_eq!(
        retry_after_ms(&format!(" \t{header}\t "), date, now),
        got,
        "surrounding whitespace"
    );

    // HTTP's whitespace is ASCII's (the core trims only that).
    let t = header.trim_ascii();
    if t.is_empty() {
        assert_eq!(got, None, "an empty header");
    } else if t.bytes().all(|c| c.is_ascii_digit() || c == b'.') {
        let want = reference_seconds(t);
        assert_eq!(got, want, "delay-seconds {t:?}");
        // Seconds are seconds: neither the edge's date reading nor the clock changes them.
        assert_eq!(retry_after_ms(t, None, 0.0), want);
        assert_eq!(retry_after_ms(t, Some(now + 5e3), f64::NAN), want);
    } else {
        match date.filter(|d| d.is_finite()) {
            None => assert_eq!(got, None, "{t:?}: neither seconds nor a date"),
            Some(d) => {
                let w = got.expect("a finite date is a wait");
                // The text is the edge's business: only its reading counts.
                assert_eq!(retry_after_ms("x", date, now), got);
                if now.is_finite() {
                    let ahead = d - now;
                    if ahead <= 0.0 {
                        assert_eq!(w, 0, "a date in the past: retry now");
                    } else if ahead >= MAX_SAFE_INTEGER {
                        assert_eq!(w as f64, MAX_SAFE_INTEGER);
                    } else {
                        assert!(
                            w as f64 <= ahead && ahead - (w as f64) < 1.0,
                            "{w} ms for a date {ahead} ms ahead"
                        );
                    }
                    for later in [1.0, 999.5, 86_400_000.0, 1e300] {
                        if (now + later).is_finite() {
                            let w2 = retry_after_ms(t, date, now + later);
                            assert!(w2.is_some_and(|w2| w2 <= w), "{w2:?} at now + {later}");
                        }
                        if (d + later).is_finite() {
                            let w3 = retry_after_ms(t, Some(d + later), now);
                            assert!(w3.is_some_and(|w3| w3 >= w), "{w3:?} for date + {later}");
                        }
                    }
                }
            }
        }
    }

    // A `track()` call's next step on a 429/503 carrying it.
    let p = Policy::default();
    for rand in [0.0, 0.999, 1.0] {
        match (in_call_delay(0, got, &p, rand), got) {
            (Some(ms), Some(w)) => {
                assert!(w <= p.max_retry_after_ms, "waits {w} > {}", p.max_retry_after_ms);
                assert!(ms >= w && ms <= w + 250, "{ms} for a wait of {w}");
            }
            (None, Some(w)) => assert!(w > p.max_retry_after_ms, "gave up on a wait of {w}"),
            (Some(ms), None) => assert!(ms <= p.base_ms, "first backoff {ms}"),
            (None, None) => panic!("gave up on the first attempt without a wait"),
        }
    }
    // A queued record's: the wait, up to an hour, and the backoff's cap otherwise.
    if now.is_finite() && now.abs() < 8.64e15 {
        let q = QueuePolicy::default();
        let at = retry_at(1, now, 0.5, got, &q);
        let honoured = got.map_or(0.0, |w| (w as f64).min(MAX_WAIT_MS));
        assert!(at >= now + honoured, "{at} does not honour {got:?}");
        assert!(at <= now + honoured.max(q.cap_ms as f64), "{at} for {got:?}");
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
