//! The offline queue's policy: what is due, what to batch, what a delivery outcome does to a
//! record, what the bounds evict, and how timestamps stay behind the server's clock. Pure:
//! storage (IndexedDB or memory) lives in the JS edge and only stores [`Record`]s.

use alloc::string::String;

/// Version of the persisted record layout. Records of another version are migrated or
/// dead-lettered, never crash the drain.
pub const RECORD_VERSION: u32 = 1;

/// One queued event, exactly as persisted (never with the secret key or headers).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The idempotency key; the store's primary key.
    pub key: String,
    /// Insertion order (monotonic per store): replays keep it, so order per customer holds.
    pub seq: f64,
    /// Customer id, for per-customer ordering.
    pub customer: String,
    /// The wire body without `timestamp` (added at send time, see [`Clock`]).
    pub body: String,
    /// The caller's own `timestamp`, if given.
    pub ts: Option<f64>,
    /// When `track()` was called (local Unix ms).
    pub created_at: f64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Local Unix ms before which the record is not retried.
    pub next_at: f64,
    /// What went wrong last time, for `pending()` and the demo.
    pub last_error: Option<String>,
}

impl Record {
    /// A record of which only the key is known: stands in for a stored value that could not be
    /// read, so it can still be set aside as a `corrupt_record` dead letter.
    pub fn unreadable(key: String) -> Record {
        Record {
            key,
            seq: 0.0,
            customer: String::new(),
            body: String::new(),
            ts: None,
            created_at: 0.0,
            attempts: 0,
            next_at: 0.0,
            last_error: None,
        }
    }
}

/// A record the server refused for good, or the policy had to give up on, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The event.
    pub record: Record,
    /// Autumn's error code, or the SDK's (`expired`, `corrupt_record`, …).
    pub code: String,
    /// Human-readable reason.
    pub message: String,
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Local Unix ms it was set aside.
    pub failed_at: f64,
}

use alloc::vec::Vec;

use crate::event::{write_body, Event};
use crate::retry::{backoff, is_retryable_status, parse_retry_after, Outcome};

/// Queue bounds and replay timing.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Most events kept; beyond it the oldest are set aside (reported, never dropped silently).
    pub max_queue_size: usize,
    /// Events older than this are set aside instead of replayed: past Autumn's 24 h
    /// idempotency window a replay could be counted twice. Default 23 h.
    pub max_event_age_ms: f64,
    /// Events per `batch_track` request (1–1000).
    pub batch_size: usize,
    /// First replay backoff ceiling, ms.
    pub base_ms: u64,
    /// Largest replay backoff ceiling, ms.
    pub cap_ms: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_queue_size: 10_000,
            max_event_age_ms: 23.0 * 3600.0 * 1000.0,
            batch_size: 1000,
            base_ms: 1_000,
            cap_ms: 5 * 60 * 1000,
        }
    }
}

/// The record for a freshly validated event: its wire body without `timestamp`.
pub fn new_record(ev: &Event, seq: f64, now: f64) -> Record {
    let mut body = String::new();
    write_body(&mut body, ev, None);
    Record {
        key: ev.idempotency_key.clone(),
        seq,
        customer: ev.customer_id.clone(),
        body,
        ts: ev.timestamp.map(|t| t as f64),
        created_at: now,
        attempts: 0,
        next_at: now,
        last_error: None,
    }
}

/// What we know of the server's clock. Autumn rejects timestamps in the future and has no
/// `sent_at` correction, so a replayed event's timestamp must never be ahead of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clock {
    /// `server_now - local_now` is at least this (from the last readable `Date` header).
    offset_lower: Option<f64>,
}

impl Clock {
    /// Learns from a response: its `Date` header (second resolution, so a lower bound of the
    /// server's time when it answered) and the local time the answer arrived.
    pub fn observe(&mut self, server_date_ms: f64, local_now: f64) {
        if server_date_ms.is_finite() && server_date_ms > 0.0 {
            self.offset_lower = Some(server_date_ms - local_now);
        }
    }

    /// The lower bound of `server - local`, once known.
    pub fn offset(&self) -> Option<f64> {
        self.offset_lower
    }

    /// The timestamp to send for an event created at local time `created_at`: shifted to the
    /// server's clock when known, and never later than the server's `now`. Without a `Date`
    /// seen yet, local time is trusted (a future-timestamp refusal is then resent without it).
    pub fn timestamp_for(&self, created_at: f64, now: f64) -> u64 {
        let off = self.offset_lower.unwrap_or(0.0);
        let t = (created_at.min(now) + off).floor();
        if t.is_finite() && t > 1.0 {
            t as u64
        } else {
            1
        }
    }
}

/// The body to send for `rec` now: the caller's own timestamp if given, else the time
/// `track()` was called on the server's clock; `with_ts = false` leaves it out.
pub fn body_for(rec: &Record, clock: &Clock, now: f64, with_ts: bool) -> String {
    let ts = match rec.ts {
        Some(t) => Some(t as u64),
        None if with_ts => Some(clock.timestamp_for(rec.created_at, now)),
        None => None,
    };
    match (ts, rec.body.strip_suffix('}')) {
        (Some(t), Some(open)) => {
            let mut s = String::with_capacity(rec.body.len() + 28);
            s.push_str(open);
            s.push_str(",\"timestamp\":");
            crate::value::push_u64(&mut s, t);
            s.push('}');
            s
        }
        _ => rec.body.clone(),
    }
}

/// A `batch_track` body for `recs` (each with its timestamp).
pub fn batch_body<'a>(
    recs: impl IntoIterator<Item = &'a Record>,
    clock: &Clock,
    now: f64,
) -> String {
    let mut s = String::from("[");
    for (i, r) in recs.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&body_for(r, clock, now, true));
    }
    s.push(']');
    s
}

/// What a drain should do with the stored records, given the time.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// Indices of records to send now, in `seq` order.
    pub send: Vec<usize>,
    /// Indices of records too old to replay safely.
    pub expired: Vec<usize>,
    /// Earliest `next_at` among records held back, if any (when to wake up).
    pub wake_at: Option<f64>,
}

/// Plans a drain over `records`, which must be in `seq` order (as the stores return them).
/// Order per customer is kept: once one of a customer's events is held back (backing off),
/// that customer's later events wait too.
pub fn plan(records: &[Record], now: f64, policy: &Policy) -> Plan {
    plan_with(records, now, policy, false)
}

/// [`plan`], ignoring backoff when `force` (the network just came back, a page opened, the app
/// called `flush()`). Leases are kept even then: a record never attempted (`attempts == 0`)
/// with `next_at` ahead is being sent by a `track()` call (of this or another tab), and
/// `next_at = +∞` marks one this tab is sending right now. Expiry and per-customer order hold.
pub fn plan_with(records: &[Record], now: f64, policy: &Policy, force: bool) -> Plan {
    let mut out = Plan::default();
    let mut held: Vec<&str> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if now - r.created_at > policy.max_event_age_ms {
            out.expired.push(i);
        } else if (r.next_at > now && (!force || r.attempts == 0))
            || held.contains(&r.customer.as_str())
        {
            if !held.contains(&r.customer.as_str()) {
                held.push(&r.customer);
            }
            if r.next_at > now && r.next_at.is_finite() {
                out.wake_at = Some(out.wake_at.map_or(r.next_at, |w: f64| w.min(r.next_at)));
            }
        } else {
            out.send.push(i);
        }
    }
    out
}

/// How many of the oldest records must be set aside to make room for `incoming` new ones.
pub fn overflow(current: usize, incoming: usize, policy: &Policy) -> usize {
    (current + incoming).saturating_sub(policy.max_queue_size)
}

/// What happens to a queued record after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    /// Recorded (2xx) or already recorded (409): delete it.
    Done,
    /// Try again at this local time.
    Retry {
        /// Local Unix ms.
        next_at: f64,
    },
    /// Refused for good: move to dead letters.
    Dead,
}

/// Decides a queued record's fate after an attempt that was its `attempts`-th (1-based).
pub fn fate(outcome: Outcome<'_>, attempts: u32, now: f64, rand01: f64, policy: &Policy) -> Fate {
    let retry_after = match outcome {
        Outcome::Status { status, .. } if (200..300).contains(&status) || status == 409 => {
            return Fate::Done
        }
        Outcome::Status { status, .. } if !is_retryable_status(status) => return Fate::Dead,
        Outcome::Status { retry_after, .. } => retry_after.and_then(|h| parse_retry_after(h, now)),
        Outcome::Network | Outcome::Timeout => None,
    };
    let rp = crate::retry::Policy {
        base_ms: policy.base_ms,
        cap_ms: policy.cap_ms,
        ..crate::retry::Policy::default()
    };
    let wait = backoff(attempts.saturating_sub(1), &rp, rand01)
        .max(policy.base_ms / 2)
        .max(retry_after.unwrap_or(0).min(3_600_000));
    Fate::Retry {
        next_at: now + wait as f64,
    }
}

/// True when a 400 answer says the timestamp is in the future (the client clock is ahead):
/// resend once without a timestamp.
pub fn is_future_timestamp_refusal(status: u16, message: Option<&str>) -> bool {
    status == 400
        && message.is_some_and(|m| contains_ci(m, b"timestamp") && contains_ci(m, b"future"))
}

/// ASCII case-insensitive substring test (small: no two-way searcher in the wasm).
fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse_input;
    use crate::value::tests_support::from_serde;
    use serde_json::json;

    fn rec(key: &str, customer: &str, seq: f64, created: f64, next: f64) -> Record {
        Record {
            key: key.into(),
            seq,
            customer: customer.into(),
            body: format!(
                r#"{{"customer_id":"{customer}","feature_id":"f","value":1,"idempotency_key":"{key}"}}"#
            ),
            ts: None,
            created_at: created,
            attempts: 0,
            next_at: next,
            last_error: None,
        }
    }

    #[test]
    fn record_body_has_no_timestamp_until_sent() {
        let ev = parse_input(
            &from_serde(&json!({"customerId": "c", "featureId": "f", "idempotencyKey": "k"})),
            1000,
            String::new,
        )
        .unwrap();
        let r = new_record(&ev, 7.0, 1_800_000_000_000.0);
        assert_eq!(
            r.body,
            r#"{"customer_id":"c","feature_id":"f","value":1,"idempotency_key":"k"}"#
        );
        assert_eq!(
            (r.key.as_str(), r.seq, r.attempts, r.ts),
            ("k", 7.0, 0, None)
        );
        let clock = Clock::default();
        let sent = body_for(&r, &clock, 1_800_000_005_000.0, true);
        assert_eq!(
            sent,
            r#"{"customer_id":"c","feature_id":"f","value":1,"idempotency_key":"k","timestamp":1800000000000}"#
        );
        let v: serde_json::Value = serde_json::from_str(&sent).unwrap();
        assert_eq!(v["timestamp"], 1_800_000_000_000u64);
        assert_eq!(body_for(&r, &clock, 0.0, false), r.body);
    }

    #[test]
    fn callers_timestamp_wins() {
        let ev = parse_input(
            &from_serde(&json!({"customerId": "c", "featureId": "f", "idempotencyKey": "k", "timestamp": 1_700_000_000_000u64})),
            1000,
            String::new,
        )
        .unwrap();
        let r = new_record(&ev, 1.0, 1_800_000_000_000.0);
        assert!(!r.body.contains("timestamp"));
        let sent = body_for(&r, &Clock::default(), 1_800_000_000_000.0, true);
        assert!(sent.ends_with(r#""timestamp":1700000000000}"#), "{sent}");
    }

    #[test]
    fn timestamps_never_lead_the_server_clock() {
        let mut c = Clock::default();
        // Client clock 10 minutes ahead of the server.
        let local_now = 1_800_000_600_000.0;
        c.observe(1_800_000_000_000.0, local_now);
        assert_eq!(c.offset(), Some(-600_000.0));
        let created = local_now - 5_000.0;
        assert_eq!(c.timestamp_for(created, local_now), 1_799_999_995_000);
        // A created_at "in the future" of local now (clock jumped back) is clamped to now.
        assert_eq!(
            c.timestamp_for(local_now + 9e6, local_now),
            1_800_000_000_000
        );
        // Client behind: the event moves later, but not past server-now.
        let mut c = Clock::default();
        c.observe(1_800_000_000_000.0, 1_799_999_000_000.0);
        assert_eq!(
            c.timestamp_for(1_799_999_000_000.0, 1_799_999_000_000.0),
            1_800_000_000_000
        );
        // Garbage dates are ignored.
        c.observe(f64::NAN, 1.0);
        assert_eq!(c.offset(), Some(1_000_000.0));
    }

    #[test]
    fn batch_body_is_a_json_array_of_track_bodies() {
        let a = rec("a", "c1", 1.0, 1_800_000_000_000.0, 0.0);
        let b = rec("b", "c2", 2.0, 1_800_000_000_001.0, 0.0);
        let s = batch_body([&a, &b], &Clock::default(), 1_800_000_000_010.0);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 2);
        assert_eq!(v[1]["idempotency_key"], "b");
        assert_eq!(v[1]["timestamp"], 1_800_000_000_001u64);
        assert_eq!(batch_body([], &Clock::default(), 0.0), "[]");
    }

    #[test]
    fn plan_keeps_order_per_customer_and_expires_old_events() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let records = vec![
            rec("old", "c3", 0.5, now - 24.0 * 3600e3, now),
            rec("c1-early", "c1", 1.0, now - 10.0, now),
            rec("c2-a", "c2", 2.0, now - 10.0, now + 5_000.0), // backing off
            rec("c2-b", "c2", 3.0, now - 10.0, now),           // due, but behind c2-a
            rec("c3", "c3", 4.0, now - 10.0, now - 1.0),
            rec("c1-late", "c1", 5.0, now - 10.0, now),
        ];
        let plan = plan(&records, now, &p);
        let keys: Vec<&str> = plan.send.iter().map(|&i| records[i].key.as_str()).collect();
        assert_eq!(keys, ["c1-early", "c3", "c1-late"]);
        let expired: Vec<&str> = plan
            .expired
            .iter()
            .map(|&i| records[i].key.as_str())
            .collect();
        assert_eq!(expired, ["old"]);
        assert_eq!(plan.wake_at, Some(now + 5_000.0));
    }

    #[test]
    fn forced_plans_ignore_backoff_but_not_expiry() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let mut backing_off = rec("later", "c2", 2.0, now - 10.0, now + 300_000.0);
        backing_off.attempts = 3;
        let records = vec![
            rec("old", "c1", 1.0, now - 24.0 * 3600e3, now + 1e6),
            backing_off,
            rec("due", "c3", 3.0, now - 10.0, now),
            rec("leased", "c4", 4.0, now - 10.0, now + 60_000.0),
            rec("sending", "c5", 5.0, now - 10.0, f64::INFINITY),
            rec("after-sending", "c5", 6.0, now - 10.0, now),
        ];
        let normal = plan(&records, now, &p);
        assert_eq!(normal.send, [2]);
        assert_eq!(normal.wake_at, Some(now + 60_000.0));
        let forced = plan_with(&records, now, &p, true);
        assert_eq!(
            forced.send,
            [1, 2],
            "backoff ignored; leases and in-flight sends kept, and their customers held"
        );
        assert_eq!(forced.expired, [0]);
    }

    #[test]
    fn overflow_counts() {
        let p = Policy {
            max_queue_size: 3,
            ..Policy::default()
        };
        assert_eq!(overflow(0, 1, &p), 0);
        assert_eq!(overflow(3, 1, &p), 1);
        assert_eq!(overflow(2, 5, &p), 4);
    }

    #[test]
    fn fate_table() {
        let p = Policy::default();
        let now = 1_000.0;
        let st = |status| Outcome::Status {
            status,
            retry_after: None,
        };
        assert_eq!(fate(st(200), 1, now, 0.5, &p), Fate::Done);
        assert_eq!(fate(st(202), 1, now, 0.5, &p), Fate::Done);
        assert_eq!(fate(st(409), 3, now, 0.5, &p), Fate::Done);
        assert_eq!(fate(st(404), 1, now, 0.5, &p), Fate::Dead);
        assert_eq!(fate(st(400), 1, now, 0.5, &p), Fate::Dead);
        assert_eq!(fate(st(401), 1, now, 0.5, &p), Fate::Dead);
        assert_eq!(
            fate(st(503), 1, now, 1.0, &p),
            Fate::Retry { next_at: 2_000.0 }
        );
        assert_eq!(
            fate(st(503), 1, now, 0.0, &p),
            Fate::Retry { next_at: 1_500.0 },
            "floor of base/2"
        );
        assert_eq!(
            fate(Outcome::Network, 4, now, 1.0, &p),
            Fate::Retry { next_at: 9_000.0 }
        );
        assert_eq!(
            fate(Outcome::Timeout, 40, now, 1.0, &p),
            Fate::Retry { next_at: 301_000.0 }
        );
        let ra = Outcome::Status {
            status: 429,
            retry_after: Some("30"),
        };
        assert_eq!(fate(ra, 1, now, 0.0, &p), Fate::Retry { next_at: 31_000.0 });
        let huge = Outcome::Status {
            status: 429,
            retry_after: Some("315360000"),
        };
        assert_eq!(
            fate(huge, 1, now, 0.0, &p),
            Fate::Retry {
                next_at: 3_601_000.0
            },
            "capped at 1 h"
        );
    }

    #[test]
    fn future_timestamp_refusals_are_recognised() {
        assert!(is_future_timestamp_refusal(
            400,
            Some("timestamp cannot be in the future")
        ));
        assert!(is_future_timestamp_refusal(
            400,
            Some("Timestamp is in the Future")
        ));
        assert!(!is_future_timestamp_refusal(
            400,
            Some("customer_id is required")
        ));
        assert!(!is_future_timestamp_refusal(
            404,
            Some("timestamp in the future")
        ));
        assert!(!is_future_timestamp_refusal(400, None));
    }
}
