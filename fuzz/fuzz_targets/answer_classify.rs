//! What one attempt's result means and when to try again: `answer::classify` over an arbitrary
//! `Reply` (any status, redirect flag, `{code, message}`, `Retry-After` with the edge's reading
//! of it as a date, `Date`), `queued_reason`, `says_future_timestamp`, and the timing that
//! follows — `retry::retry_after_ms`, `in_call_delay`, `backoff`, `queue::retry_at` — for an
//! arbitrary attempt number, policy, clock and random draw.
//!
//! Invariants: nothing panics; only a 2xx that was not redirected is a delivery and only a 409
//! that was not redirected a duplicate; a redirect, a 3xx or the status 0 of an opaque redirect
//! is always held, never a delivery; timeouts and dropped connections are retried as
//! unanswered, unsent requests as answered; a 5xx claims Autumn answered (and released the key)
//! only with Autumn's own code; a refusal proves nothing was recorded only with Autumn's code;
//! the verdict depends on nothing but the status, the redirect flag, the code and (for a 400)
//! the message; a wait is never past its cap, a `Retry-After` is honoured or the call gives up;
//! a queued record's next attempt is never in the past, honours `Retry-After` up to an hour, and
//! is never later than the longest of its backoff cap and that hour.
#![no_main]

use autumn_track::answer::{
    classify, is_retryable_status, is_setup_code, queued_reason, route, says_future_timestamp,
    Answered, HoldWhy, Reply, Verdict,
};
use autumn_track::queue::{retry_at, Policy as QueuePolicy, MAX_WAIT_MS};
use autumn_track::retry::{backoff, in_call_delay, retry_after_ms, Policy};
use autumn_track::value::MAX_SAFE_INTEGER as MAX_SAFE;
use autumn_track_fuzz::{get, get_bool, get_num, pairs};
use libfuzzer_sys::fuzz_target;

const NOW: f64 = 1_800_000_000_000.0;

fuzz_target!(|data: &[u8]| {
    // Input, as text:
    //   line 1: `key=value` pairs: kind=answer|timeout|network|unsent, status, redirected=1,
    //           ra_date and date (the edge's readings, Unix ms), attempt, retries, base, cap,
    //           max_ra (retry::Policy), qbase, qcap (queue::Policy), now, rand;
    //   then lines `code: …`, `message: …`, `snippet: …`, `retry-after: …`, `error: …` (the
    //   text of a network failure); other lines are ignored.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let kv = pairs(lines.next().unwrap_or(""));
    let n = |k: &str, default: f64| get_num(&kv, k).unwrap_or(default);
    let mut fields: [Option<String>; 5] = Default::default();
    for line in lines {
        const NAMES: [&str; 5] = ["code:", "message:", "snippet:", "retry-after:", "error:"];
        for (slot, name) in fields.iter_mut().zip(NAMES) {
            if line.len() >= name.len()
                && line.is_char_boundary(name.len())
                && line[..name.len()].eq_ignore_ascii_case(name)
            {
                *slot = Some(line[name.len()..].trim_start_matches(' ').to_string());
            }
        }
    }
    let [code, message, snippet, retry_after, error] = fields;
    let answered = Answered {
        status: n("status", 503.0) as u16,
        redirected: get_bool(&kv, "redirected"),
        code,
        message,
        snippet,
        retry_after,
        retry_after_date: get_num(&kv, "ra_date"),
        date: get_num(&kv, "date"),
    };
    let error = error.unwrap_or_default();
    let reply = match get(&kv, "kind").unwrap_or("answer") {
        "timeout" => Reply::Timeout,
        "network" => Reply::Network(error),
        "unsent" => Reply::Unsent(error),
        _ => Reply::Answer(answered.clone()),
    };
    // `now` is Date.now() in the edge: finite and within JavaScript's dates. The random draw
    // may be anything.
    let now = Some(n("now", NOW))
        .filter(|t| t.is_finite() && (0.0..=8.64e15).contains(t))
        .unwrap_or(NOW);
    let rand01 = n("rand", 0.5);

    // ---- the verdict ----
    let v = classify(&reply);
    match &reply {
        Reply::Timeout | Reply::Network(_) => {
            assert_eq!(v, Verdict::Retry { unanswered: true })
        }
        Reply::Unsent(_) => assert_eq!(v, Verdict::Retry { unanswered: false }),
        Reply::Answer(a) => check_answer(a, v),
    }

    // ---- the reason a `queued` result gives ----
    let reason = queued_reason(v, &reply);
    assert!(
        [
            "timeout",
            "network_error",
            "redirected",
            "customer_mismatch",
            "unauthorized",
            "unconfirmed",
            "rate_limited",
            "unanswered",
            "server_error"
        ]
        .contains(&reason),
        "reason {reason:?}"
    );
    match (&reply, v) {
        (Reply::Timeout, _) => assert_eq!(reason, "timeout"),
        (Reply::Network(_) | Reply::Unsent(_), _) => assert_eq!(reason, "network_error"),
        (_, Verdict::Hold(HoldWhy::Redirected)) => assert_eq!(reason, "redirected"),
        (_, Verdict::Duplicate) => assert_eq!(reason, "unconfirmed"),
        (Reply::Answer(a), Verdict::Retry { .. }) if a.status == 429 => {
            assert_eq!(reason, "rate_limited")
        }
        (_, Verdict::Retry { unanswered: true }) => assert_eq!(reason, "unanswered"),
        _ => {}
    }

    // ---- a future-timestamp message: both words, ASCII case-insensitive ----
    for m in [&answered.message, &answered.snippet, &Some(text.to_string())] {
        let want = m.as_deref().is_some_and(|m| {
            let lower = m.to_ascii_lowercase();
            lower.contains("timestamp") && lower.contains("future")
        });
        assert_eq!(says_future_timestamp(m.as_deref()), want, "{m:?}");
    }

    // ---- when to try again ----
    // Durations are milliseconds a JavaScript number holds exactly (the options give the
    // defaults; anything up to 2^53 is fuzzed).
    let ms = |k: &str, default: f64| n(k, default).clamp(0.0, MAX_SAFE) as u64;
    let policy = Policy {
        max_retries: (n("retries", 5.0) as u32).min(20),
        base_ms: ms("base", 500.0),
        cap_ms: ms("cap", 30_000.0),
        max_retry_after_ms: ms("max_ra", 60_000.0),
    };
    let qpolicy = QueuePolicy {
        base_ms: ms("qbase", 1_000.0),
        cap_ms: ms("qcap", 300_000.0),
        ..QueuePolicy::default()
    };
    let attempt = n("attempt", 0.0) as u32;
    let ra = match &reply {
        Reply::Answer(a) => a
            .retry_after
            .as_deref()
            .and_then(|h| retry_after_ms(h, a.retry_after_date, now)),
        _ => None,
    };
    if let Some(w) = ra {
        assert!(w as f64 <= MAX_SAFE, "Retry-After {w} past 2^53 - 1");
    }

    match in_call_delay(attempt, ra, &policy, rand01) {
        None => assert!(
            attempt >= policy.max_retries || ra.is_some_and(|w| w > policy.max_retry_after_ms),
            "gave up at attempt {attempt} of {} with Retry-After {ra:?}",
            policy.max_retries
        ),
        Some(ms) => {
            assert!(attempt < policy.max_retries, "retry {attempt} past the limit");
            match ra {
                Some(w) => {
                    assert!(w <= policy.max_retry_after_ms);
                    assert!(ms >= w && ms - w <= 250, "{ms} for Retry-After {w}");
                }
                None => {
                    assert!(ms <= policy.cap_ms, "{ms} over the cap {}", policy.cap_ms);
                    assert!(u128::from(ms) <= ceiling(policy.base_ms, attempt));
                }
            }
        }
    }

    // Backoff: within [0, min(cap, base·2^attempt)], growing with the draw and with the
    // attempt number, never overflowing.
    let (b, c) = (policy.base_ms, policy.cap_ms);
    let full = backoff(attempt, b, c, 1.0);
    let drawn = backoff(attempt, b, c, rand01);
    assert!(drawn <= full && full <= c && u128::from(full) <= ceiling(b, attempt));
    assert!(backoff(attempt.saturating_add(1), b, c, 1.0) >= full);
    assert_eq!(backoff(attempt, b, c, 0.0), 0);
    if rand01 >= 0.0 {
        let lower = backoff(attempt, b, c, rand01 / 2.0);
        assert!(lower <= drawn, "backoff shrinks as the draw grows: {lower} > {drawn}");
    }

    // A queued record's next attempt.
    let attempts = attempt.saturating_add(1);
    let at = retry_at(attempts, now, rand01, ra, &qpolicy);
    let honoured = ra.map_or(0, |w| w.min(MAX_WAIT_MS as u64));
    assert!(at >= now, "next attempt {at} before now {now}");
    assert!(at >= now + (qpolicy.base_ms / 2) as f64, "at least half the base");
    assert!(at >= now + honoured as f64, "Retry-After {ra:?} not honoured: {at}");
    let longest = qpolicy.cap_ms.max(qpolicy.base_ms / 2).max(honoured);
    assert!(at <= now + longest as f64, "{at} past now + {longest}");
    assert!(at <= now + (qpolicy.cap_ms.max(qpolicy.base_ms / 2) as f64).max(MAX_WAIT_MS));
});

/// `base·2^attempt`, exactly (u128, the shift bounded so it cannot overflow).
fn ceiling(base: u64, attempt: u32) -> u128 {
    if attempt >= 64 {
        u128::MAX
    } else {
        u128::from(base) << attempt
    }
}

/// The documented rules, checked one property at a time against an answer's verdict.
fn check_answer(a: &Answered, v: Verdict) {
    let s = a.status;
    let code = a.code.as_deref();
    let redirect = a.redirected || (300..400).contains(&s) || s == 0;
    // 408, 429 and every 5xx but 501 and 505.
    let retryable = matches!(s, 408 | 429 | 500 | 502..=504 | 506..=599);
    assert_eq!(is_retryable_status(s), retryable, "status {s}");

    // A redirect, however it shows, is held; a delivery is a 2xx from the endpoint itself.
    assert_eq!(redirect, v == Verdict::Hold(HoldWhy::Redirected), "{a:?} → {v:?}");
    assert_eq!(
        !redirect && (200..300).contains(&s),
        v == Verdict::Delivered,
        "{a:?} → {v:?}"
    );
    assert_eq!(!redirect && s == 409, v == Verdict::Duplicate, "{a:?} → {v:?}");
    assert_eq!(
        !redirect && retryable,
        matches!(v, Verdict::Retry { .. }),
        "{a:?} → {v:?}"
    );
    match v {
        Verdict::Retry { unanswered } => {
            // Autumn answered (and released the key) only when the answer says so: its own 5xx
            // code `internal_error`, or the app's route saying `upstream_unavailable`; any other
            // 5xx may come from something in front of Autumn. A 408/429 was never processed.
            let autumns = matches!(code, Some("internal_error" | route::UPSTREAM_UNAVAILABLE));
            assert_eq!(unanswered, s >= 500 && !autumns, "{a:?} → {v:?}");
        }
        Verdict::Hold(HoldWhy::CustomerMismatch) => {
            assert_eq!(code, Some(route::CUSTOMER_MISMATCH))
        }
        Verdict::Hold(HoldWhy::Unauthorized) => {
            assert!(
                matches!(s, 401 | 403) || code.is_some_and(is_setup_code),
                "{a:?} → {v:?}"
            );
            assert_ne!(code, Some(route::CUSTOMER_MISMATCH));
        }
        Verdict::Refused | Verdict::FutureTimestamp | Verdict::Unproven => {
            // Only Autumn's own refusal (with its code) proves nothing was recorded.
            assert_eq!(code.is_none(), v == Verdict::Unproven, "{a:?} → {v:?}");
            assert!(!matches!(s, 401 | 403) && !code.is_some_and(is_setup_code));
            assert_ne!(code, Some(route::CUSTOMER_MISMATCH));
            let lower = a.message.as_deref().map(str::to_ascii_lowercase);
            let future = lower
                .as_deref()
                .is_some_and(|m| m.contains("timestamp") && m.contains("future"));
            assert_eq!(
                v == Verdict::FutureTimestamp,
                s == 400 && code.is_some() && future,
                "{a:?} → {v:?}"
            );
        }
        Verdict::Delivered | Verdict::Duplicate | Verdict::Hold(HoldWhy::Redirected) => {}
    }
    // Not a redirect, not a success, not retryable: the mismatch code, then the credentials.
    if !redirect && !(200..300).contains(&s) && s != 409 && !retryable {
        if code == Some(route::CUSTOMER_MISMATCH) {
            assert_eq!(v, Verdict::Hold(HoldWhy::CustomerMismatch));
        } else if matches!(s, 401 | 403) || code.is_some_and(is_setup_code) {
            assert_eq!(v, Verdict::Hold(HoldWhy::Unauthorized));
        }
    }

    // Nothing else matters: the headers, the snippet, and the message except on a 400.
    let bare = Answered {
        status: s,
        redirected: a.redirected,
        code: a.code.clone(),
        message: if s == 400 { a.message.clone() } else { None },
        ..Answered::default()
    };
    assert_eq!(classify(&Reply::Answer(bare)), v, "{a:?}");
    if v != Verdict::FutureTimestamp {
        let quiet = Answered {
            message: None,
            ..a.clone()
        };
        assert_eq!(classify(&Reply::Answer(quiet)), v, "{a:?}");
    }
}
