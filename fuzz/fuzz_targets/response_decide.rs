//! What follows an answer: `retry::decide` (a `track()` call's next step) and `queue::fate` (a
//! queued record's), for an arbitrary status, `Retry-After` header, body, attempt number,
//! policy, clock and random draw, plus `is_future_timestamp_refusal` on the body. (Reading the
//! body as Autumn's `{code, message}` is `JSON.parse` in the JS edge, not native code.)
//! Invariants: nothing panics; both agree on what is a success, a refusal or retryable; a
//! wait never exceeds its ceiling; a queued record's next attempt is never in the past.
#![no_main]

use autumn_track::queue::{fate, is_future_timestamp_refusal, Fate, Policy as QueuePolicy};
use autumn_track::retry::{
    backoff, decide, is_retryable_status, parse_retry_after, Next, Outcome, Policy,
};
use autumn_track_fuzz::{get_num, pairs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Input, as text:
    //   line 1: `key=value` pairs, any of kind=network|timeout, status, attempt, retries, base,
    //           cap, max_ra (retry::Policy), qbase, qcap (queue::Policy), now, rand;
    //   line 2: `Retry-After: <value>` (optional);
    //   the rest: the response body.
    let text = String::from_utf8_lossy(data);
    let (head, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (header, body) = match rest.strip_prefix("Retry-After:") {
        Some(r) => {
            let (h, b) = r.split_once('\n').unwrap_or((r, ""));
            (Some(h), b)
        }
        None => (None, rest),
    };
    let kv = pairs(head);
    let n = |k: &str, default: f64| get_num(&kv, k).unwrap_or(default);
    let kind = kv
        .iter()
        .find(|(k, _)| *k == "kind")
        .map_or("status", |(_, v)| *v);
    let status = n("status", 503.0) as u16;
    let attempt = n("attempt", 0.0) as u32;
    let policy = Policy {
        max_retries: (n("retries", 5.0) as u32).min(20),
        base_ms: n("base", 500.0) as u64,
        cap_ms: n("cap", 30_000.0) as u64,
        max_retry_after_ms: n("max_ra", 60_000.0) as u64,
    };
    let qpolicy = QueuePolicy {
        base_ms: (n("qbase", 1_000.0) as u64).min(u64::from(u32::MAX)),
        cap_ms: n("qcap", 300_000.0) as u64,
        ..QueuePolicy::default()
    };
    // `now` is Date.now() in the edge: finite and within JavaScript's dates. The random draw
    // may be anything.
    let now = Some(n("now", 1_800_000_000_000.0))
        .filter(|t| t.is_finite() && (0.0..=8.64e15).contains(t))
        .unwrap_or(1_800_000_000_000.0);
    let rand01 = n("rand", 0.5);

    let outcome = match kind {
        "network" => Outcome::Network,
        "timeout" => Outcome::Timeout,
        _ => Outcome::Status {
            status,
            retry_after: header,
        },
    };
    let ra = match outcome {
        Outcome::Status { retry_after, .. } => retry_after.and_then(|h| parse_retry_after(h, now)),
        _ => None,
    };
    let class = match outcome {
        Outcome::Status { status, .. } if (200..300).contains(&status) => "ok",
        Outcome::Status { status: 409, .. } => "ok",
        Outcome::Status { status, .. } if !is_retryable_status(status) => "refused",
        _ => "retry",
    };

    let next = decide(outcome, attempt, &policy, now, rand01);
    match (class, next) {
        ("ok", Next::Delivered) => {
            assert!(matches!(outcome, Outcome::Status { status, .. } if status != 409))
        }
        ("ok", Next::Duplicate) => assert!(matches!(outcome, Outcome::Status { status: 409, .. })),
        ("refused", Next::Permanent) => {}
        ("retry", Next::GiveUp) => assert!(
            attempt >= policy.max_retries || ra.is_some_and(|w| w > policy.max_retry_after_ms)
        ),
        ("retry", Next::RetryIn(ms)) => {
            assert!(attempt < policy.max_retries);
            match ra {
                Some(w) => assert!(ms >= w && ms - w <= 250, "{ms} for Retry-After {w}"),
                None => {
                    assert!(ms <= policy.cap_ms);
                    assert!(ms <= backoff(attempt, &policy, 1.0));
                }
            }
        }
        (c, n) => panic!("{outcome:?} is {c} but decided {n:?}"),
    }

    let attempts = attempt.saturating_add(1);
    let f = fate(outcome, attempts, now, rand01, &qpolicy);
    match (class, f) {
        ("ok", Fate::Done) | ("refused", Fate::Dead) => {}
        ("retry", Fate::Retry { next_at }) => {
            assert!(next_at >= now, "next attempt {next_at} before now {now}");
            let ceiling = qpolicy.cap_ms.max(qpolicy.base_ms / 2).max(3_600_000);
            assert!(
                next_at <= now + ceiling as f64,
                "{next_at} past now + {ceiling}"
            );
            if let Some(w) = ra {
                assert!(
                    next_at >= now + w.min(3_600_000) as f64,
                    "Retry-After honoured"
                );
            }
        }
        (c, f) => panic!("{outcome:?} is {c} but its fate is {f:?}"),
    }

    // A 400 "timestamp … in the future": ASCII case-insensitive, both words, 400 only.
    let lower = body.to_ascii_lowercase();
    let want = status == 400 && lower.contains("timestamp") && lower.contains("future");
    assert_eq!(
        is_future_timestamp_refusal(status, Some(body)),
        want,
        "{body:?}"
    );
    assert!(!is_future_timestamp_refusal(status, None));
});
