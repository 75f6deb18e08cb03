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
    /// When `track()` was called on the server's clock, when a `Date` had been seen: ages and
    /// generated timestamps then hold whatever the device clock does later.
    pub server_created: Option<f64>,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Local Unix ms before which the record is not retried.
    pub next_at: f64,
    /// What went wrong last time, for `pending()` and the demo.
    pub last_error: Option<String>,
    /// When the latest attempt that has no answer was sent (written before the send): that
    /// attempt may still be running at Autumn, holding the key's claim. `None` when every attempt
    /// so far was answered.
    pub sent_at: Option<Sent>,
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
            server_created: None,
            attempts: 0,
            next_at: 0.0,
            last_error: None,
            sent_at: None,
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
use crate::retry::backoff;

/// When an attempt was sent: local time, and the server's time when known (an upper estimate).
/// A window is over only when it is over on both clocks, so a device clock that jumps forward
/// (between pages, or between tabs started before and after the change) cannot end it early.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sent {
    /// Local Unix ms.
    pub local: f64,
    /// Server Unix ms, at least (the `Date` header's second, plus [`STAMP_SLOP_MS`]).
    pub server: Option<f64>,
}

/// Added to a send's server-time estimate: the `Date` it is derived from is truncated to the
/// second, and the answer it came with took time to arrive.
pub const STAMP_SLOP_MS: f64 = 2_000.0;

/// How far ahead of the local clock a stored time may be before the clock is taken to have
/// been set back: a record created "in the future" has an age nobody can know.
pub const CLOCK_SLACK_MS: f64 = 10.0 * 60_000.0;

/// Longest wait the queue ever schedules (a server's `Retry-After` is capped to it).
pub const MAX_WAIT_MS: f64 = 3_600_000.0;

/// How long a record written by a `track()` call is reserved for that call's own attempts
/// before a drain (of this or another tab) may pick it up.
pub const LEASE_MS: f64 = 60_000.0;

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
    /// How long an attempt can still be running at Autumn after it was sent: until then, a 409
    /// for the same key is not proof (the claim may be that attempt's, which may yet fail) and
    /// the event is not batched (a batch drops a claimed item silently). Default 2 minutes.
    pub confirm_after_ms: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_queue_size: 10_000,
            max_event_age_ms: 23.0 * 3600.0 * 1000.0,
            batch_size: 1000,
            base_ms: 1_000,
            cap_ms: 5 * 60 * 1000,
            confirm_after_ms: 120_000.0,
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
        server_created: None,
        attempts: 0,
        next_at: now,
        last_error: None,
        sent_at: None,
    }
}

/// What we know of the server's clock. Autumn rejects timestamps in the future and has no
/// `sent_at` correction, so a timestamp we send must never be ahead of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Clock {
    /// `server_now - local_now` is at least this (from the last readable `Date` header).
    offset_lower: Option<f64>,
    /// … and at most this (the `Date` was made after the request left, within its second).
    offset_upper: Option<f64>,
}

/// Answers that took longer than this to come back teach nothing about the clock (a machine
/// suspended mid-request delivers a day-old `Date`).
pub const MAX_CLOCK_RTT_MS: f64 = 30_000.0;

impl Clock {
    /// Learns from a response: its `Date` header (second resolution, so a lower bound of the
    /// server's time when it answered) and the local time the answer arrived.
    pub fn observe(&mut self, server_date_ms: f64, local_now: f64) {
        self.observe_round_trip(server_date_ms, local_now, local_now);
    }

    /// [`Clock::observe`] for a request sent at local time `sent` and answered at `received`:
    /// bounds the offset from both sides. A slow round trip is ignored.
    ///
    /// Each answer bounds the true offset within an interval; while they overlap, the bounds are
    /// their intersection, so the estimate only tightens instead of jumping by up to a second
    /// with each `Date` (one-second resolution) — a window's end judged from it stays put. Bounds
    /// that no longer overlap mean a clock was changed: the newest answer alone counts then.
    pub fn observe_round_trip(&mut self, server_date_ms: f64, sent: f64, received: f64) {
        let rtt = received - sent;
        if server_date_ms.is_finite()
            && server_date_ms > 0.0
            && (0.0..=MAX_CLOCK_RTT_MS).contains(&rtt)
        {
            let lo = server_date_ms - received;
            let hi = server_date_ms + 1000.0 - sent;
            let (lo, hi) = match (self.offset_lower, self.offset_upper) {
                (Some(l), Some(h)) if lo <= h && hi >= l => (l.max(lo), h.min(hi)),
                _ => (lo, hi),
            };
            self.offset_lower = Some(lo);
            self.offset_upper = Some(hi);
        }
    }

    /// The lower bound of `server - local`, once known.
    pub fn offset(&self) -> Option<f64> {
        self.offset_lower
    }

    /// The server's time now as far as we can tell (local time until a `Date` was seen).
    pub fn server_now(&self, now: f64) -> f64 {
        now + self.offset_lower.unwrap_or(0.0)
    }

    /// The server's time now, once a `Date` was seen.
    pub fn known_server_now(&self, now: f64) -> Option<f64> {
        self.offset_lower.map(|o| now + o)
    }

    /// The stamp of an attempt sent now.
    pub fn stamp(&self, now: f64) -> Sent {
        Sent {
            local: now,
            server: self.offset_lower.map(|o| now + o + STAMP_SLOP_MS),
        }
    }

    /// The local time by which an attempt sent at `sent` must have ended, running at most
    /// `window_ms`: on the local clock (a send time ahead of `now` — the clock went back — counts
    /// as now) and, when both are known, on the server's.
    pub fn ended_by(&self, sent: &Sent, now: f64, window_ms: f64) -> f64 {
        let local = sent.local.min(now) + window_ms;
        match (sent.server, self.offset_lower) {
            (Some(s), Some(o)) => local.max(s + window_ms - o),
            _ => local,
        }
    }

    /// Whether a 409 to an attempt sent at local time `sent_now` proves a recording, given the
    /// latest earlier attempt that got no answer: that one must have ended before this one left.
    pub fn proves(&self, earlier: Option<&Sent>, sent_now: f64, window_ms: f64) -> bool {
        earlier.map_or(true, |e| sent_now >= self.ended_by(e, sent_now, window_ms))
    }

    /// How old `r` is, and whether that can be known: on the server's clock when both its
    /// creation and now are known there (the device clock may have changed since), else on the
    /// local clock, where a record created "in the future" (more than [`CLOCK_SLACK_MS`] ahead:
    /// the clock was set back) has an age nobody can know (`None`).
    pub fn age(&self, r: &Record, now: f64) -> Option<f64> {
        // The server's time at most: an age is never under-estimated.
        if let (Some(c), Some(n)) = (r.server_created, self.offset_upper.map(|o| now + o)) {
            return (c <= n + CLOCK_SLACK_MS).then_some((n - c).max(0.0));
        }
        (r.created_at <= now + CLOCK_SLACK_MS).then_some((now - r.created_at).max(0.0))
    }

    /// The timestamp to send for an event created at local time `created_at`: shifted to the
    /// server's clock when known, and never later than the server's `now`. Without a `Date`
    /// seen yet, local time is trusted (a future-timestamp refusal then teaches the offset).
    pub fn timestamp_for(&self, created_at: f64, now: f64) -> u64 {
        let off = self.offset_lower.unwrap_or(0.0);
        let t = crate::float::floor(created_at.min(now) + off);
        if t.is_finite() && t > 1.0 {
            t as u64
        } else {
            1
        }
    }

    /// A caller's own timestamp as sent: unchanged, unless it is ahead of the server's clock as
    /// far as we know — a device clock running fast, which Autumn would refuse — then the
    /// server's `now`.
    pub fn clamp(&self, ts: f64, now: f64) -> u64 {
        match self.offset_lower {
            Some(off) => ts.min(crate::float::floor(now + off)).max(1.0) as u64,
            None => ts as u64,
        }
    }
}

/// Gives `r` its creation time on the server's clock if it has none yet and that time can now be
/// told (a `Date` has been seen) — as long as it was created recently, so the local clock can
/// hardly have changed since. From then on its age holds whatever the device clock does.
pub fn anchor(r: &mut Record, clock: &Clock, now: f64) {
    if r.server_created.is_none() && (0.0..=CLOCK_SLACK_MS).contains(&(now - r.created_at)) {
        r.server_created = clock.known_server_now(r.created_at);
    }
}

/// The body to send for `rec` now. `ts`: the caller's own timestamp (clamped to the server's
/// clock), else the time `track()` was called on the server's clock; `with_ts = false` leaves a
/// generated one out (real-time sends: the server's own time is right).
pub fn body_for(rec: &Record, clock: &Clock, now: f64, with_ts: bool) -> String {
    let ts = match rec.ts {
        Some(t) => Some(clock.clamp(t, now)),
        None if with_ts => Some(match rec.server_created {
            Some(c) => clock.clamp(crate::float::floor(c), now),
            None => clock.timestamp_for(rec.created_at, now),
        }),
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
    /// The subset of `send` still inside its confirmation window: each goes alone (a single
    /// track's 200 is proof; a batch's says nothing of an item whose key is claimed), and a 409
    /// to it is not proof ([`Clock::proves`]).
    pub early: Vec<usize>,
    /// Indices of records too old to replay safely, or of an age nobody can know.
    pub expired: Vec<usize>,
    /// Earliest time a record held back may become due, if any (when to wake up).
    pub wake_at: Option<f64>,
}

/// When `r`'s lease ends (local time), if `r` is reserved for a `track()` call's own attempts
/// (here or in another tab): not attempted by a drain yet, and leased by either clock — on the
/// local one, a lease ahead of now but not by more than [`LEASE_MS`] plus [`CLOCK_SLACK_MS`]
/// (further means the clock was set back since); on the server's, when the lease's send stamp
/// and the server's time are both known, leased within the last [`LEASE_MS`]. Either clock may
/// have moved since the lease was taken (a stamp's server time is only as good as its tab's
/// estimate then), so it holds while either says so.
pub fn lease_end(r: &Record, now: f64, clock: &Clock) -> Option<f64> {
    if r.attempts != 0 {
        return None;
    }
    let local =
        (r.next_at > now && r.next_at <= now + LEASE_MS + CLOCK_SLACK_MS).then_some(r.next_at);
    let server = match (r.sent_at.and_then(|s| s.server), clock.offset_lower) {
        (Some(s), Some(o)) => Some(s + LEASE_MS - o).filter(|end| *end > now),
        _ => None,
    };
    match (local, server) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// True when `r` is leased ([`lease_end`]) on the local clock alone (what the stores judge by).
pub fn is_leased(r: &Record, now: f64) -> bool {
    lease_end(r, now, &Clock::default()).is_some()
}

/// Added to the end of a confirmation window when a record is scheduled for it. The window's end
/// on the server's clock moves with each `Date` read (they have one-second resolution), so a
/// resend timed exactly at the end could be judged a hair early when its answer arrives, and
/// again, and again; a resend this much later is past it under any such reading.
pub const CONFIRM_MARGIN_MS: f64 = 1_500.0;

/// When to resend a record whose latest unanswered attempt must have ended by `until` (a 409
/// told us the key is claimed): after the window and its margin ([`CONFIRM_MARGIN_MS`]).
pub fn resend_after_window(until: Option<f64>, now: f64) -> f64 {
    until.map_or(now, |u| u + CONFIRM_MARGIN_MS)
}

/// When a 409 for `r` becomes proof of a recording and `r` may go in a batch: once its latest
/// unanswered attempt (if any) can no longer be running ([`Clock::ended_by`]).
pub fn confirmed_at(r: &Record, now: f64, clock: &Clock, policy: &Policy) -> Option<f64> {
    r.sent_at
        .map(|t| clock.ended_by(&t, now, policy.confirm_after_ms))
}

/// Plans a drain over `records`, which must be in `seq` order (as the stores return them).
///
/// Due: not older than `maxEventAgeMs` (and of a known age: [`Clock::age`]; both else expire),
/// not leased, not `busy` (being sent by this tracker), past its backoff (ignored when `force`:
/// the network came back, a page opened, `flush()` — but never when the backoff reaches the end
/// of its confirmation window: an unproven 409 waits for it), and not behind one of its
/// customer's events that is held back (order per customer) or in `held_customers`. A due record
/// inside its confirmation window is sent alone ([`Plan::early`]).
#[allow(clippy::too_many_arguments)]
pub fn plan(
    records: &[Record],
    now: f64,
    clock: &Clock,
    policy: &Policy,
    force: bool,
    busy: &dyn Fn(&str) -> bool,
    held_customers: &[(String, f64)],
) -> Plan {
    let mut out = Plan::default();
    let mut held: Vec<&str> = Vec::new();
    let wake = |at: f64, out: &mut Plan| {
        if at.is_finite() {
            let at = at.min(now + MAX_WAIT_MS);
            out.wake_at = Some(out.wake_at.map_or(at, |w: f64| w.min(at)));
        }
    };
    for (i, r) in records.iter().enumerate() {
        // Being sent by this tracker: never set aside under its sender (which settles it).
        if busy(&r.key) {
            if !held.contains(&r.customer.as_str()) {
                held.push(&r.customer);
            }
            continue;
        }
        if clock
            .age(r, now)
            .map_or(true, |a| a > policy.max_event_age_ms)
        {
            out.expired.push(i);
            continue;
        }
        let customer_held = held_customers
            .iter()
            .find(|(c, _)| *c == r.customer)
            .map(|(_, until)| *until)
            .filter(|until| *until > now);
        let confirmed = confirmed_at(r, now, clock, policy).filter(|c| *c > now);
        // Told to wait for the window (an unproven 409): even a forced drain waits.
        let waits_window = confirmed.is_some_and(|c| r.next_at >= c);
        // A record never attempted with `next_at` ahead is leased (above) or holds a stale lease
        // of a clock set back, which no longer holds anything.
        let backing_off = r.attempts > 0 && r.next_at > now && (!force || waits_window);
        let lease = lease_end(r, now, clock);
        if busy(&r.key)
            || lease.is_some()
            || backing_off
            || customer_held.is_some()
            || held.contains(&r.customer.as_str())
        {
            if !held.contains(&r.customer.as_str()) {
                held.push(&r.customer);
            }
            if !busy(&r.key) {
                let mut at = customer_held.unwrap_or(now);
                if backing_off {
                    at = at.max(r.next_at.min(now + MAX_WAIT_MS));
                }
                if let Some(end) = lease {
                    at = at.max(end.min(now + MAX_WAIT_MS));
                }
                if at > now {
                    wake(at, &mut out);
                }
            }
        } else {
            if confirmed.is_some() {
                out.early.push(i);
            }
            out.send.push(i);
        }
    }
    out
}

/// When a queued record is tried again after a failed attempt that was its `attempts`-th
/// (1-based): full-jitter backoff from `base_ms` doubling to `cap_ms` (at least `base_ms / 2`),
/// or the server's `Retry-After` if longer (capped at an hour).
pub fn retry_at(
    attempts: u32,
    now: f64,
    rand01: f64,
    retry_after_ms: Option<u64>,
    policy: &Policy,
) -> f64 {
    let wait = backoff(
        attempts.saturating_sub(1),
        policy.base_ms,
        policy.cap_ms,
        rand01,
    )
    .max(policy.base_ms / 2)
    .max(retry_after_ms.unwrap_or(0).min(MAX_WAIT_MS as u64));
    now + wait as f64
}

/// A dead letter put back in the queue (`retryDeadLetters()`): the same key and body, due
/// `now`. Only an `expired` letter gets a fresh age window — its owner chose
/// to resend it past the limit — every other keeps its original age, so the queue's bound on
/// how old a replay may be still holds for it. `None` when the letter is not a whole record.
pub fn revive(d: &DeadLetter, now: f64, policy: &Policy) -> Option<Record> {
    if d.record.body.is_empty() || d.record.key.is_empty() {
        return None;
    }
    let mut r = d.record.clone();
    // Attempted before (a record never attempted, with a send stamp, would read as leased to a
    // `track()` call): due now, backing off from the start if it fails again.
    r.attempts = 1;
    r.next_at = now;
    r.last_error = None;
    if d.code == "expired" {
        r.created_at = r.created_at.max(now - policy.max_event_age_ms / 2.0);
        r.server_created = None;
        // Its key may have been recorded by an attempt that got no answer, long ago: with a fresh
        // window that one is past Autumn's dedupe window anyway (the README says so).
    }
    Some(r)
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
            server_created: None,
            attempts: 0,
            next_at: next,
            last_error: None,
            sent_at: None,
        }
    }

    fn never(_: &str) -> bool {
        false
    }

    #[test]
    fn record_body_has_no_timestamp_until_sent() {
        let ev = parse_input(
            &from_serde(&json!({"customerId": "c", "featureId": "f", "idempotencyKey": "k"})),
            1000,
            &mut crate::event::tests::TestHost(crate::event::tests::NOW),
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
            &mut crate::event::tests::TestHost(crate::event::tests::NOW),
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
        let plan = plan(&records, now, &Clock::default(), &p, false, &never, &[]);
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
    fn forced_plans_ignore_backoff_but_not_expiry_leases_or_an_unproven_409() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let mut backing_off = rec("later", "c2", 2.0, now - 10.0, now + 300_000.0);
        backing_off.attempts = 3;
        let sent = Some(Sent {
            local: now - 1_000.0,
            server: None,
        });
        // An attempt got no answer a second ago: sent again alone (a 200 is proof)...
        let mut unconfirmed = rec("unconfirmed", "c6", 7.0, now - 10.0, now);
        unconfirmed.attempts = 1;
        unconfirmed.sent_at = sent;
        // ...unless a 409 already said the key is claimed: then only after the window.
        let mut claimed = rec(
            "claimed",
            "c8",
            9.0,
            now - 10.0,
            now - 1_000.0 + p.confirm_after_ms,
        );
        claimed.attempts = 2;
        claimed.sent_at = sent;
        let records = vec![
            rec("old", "c1", 1.0, now - 24.0 * 3600e3, now + 1e6),
            backing_off,
            rec("due", "c3", 3.0, now - 10.0, now),
            rec("leased", "c4", 4.0, now - 10.0, now + 60_000.0),
            rec("sending", "c5", 5.0, now - 10.0, now),
            rec("after-sending", "c5", 6.0, now - 10.0, now),
            unconfirmed,
            rec("future", "c7", 8.0, now + CLOCK_SLACK_MS + 1.0, now),
            claimed,
        ];
        let busy = |k: &str| k == "sending";
        let normal = plan(&records, now, &Clock::default(), &p, false, &busy, &[]);
        assert_eq!(normal.send, [2, 6]);
        assert_eq!(normal.early, [6], "inside its window: alone");
        assert_eq!(
            normal.expired,
            [0, 7],
            "too old, or created ahead of the clock"
        );
        assert_eq!(normal.wake_at, Some(now + 60_000.0));
        let forced = plan(&records, now, &Clock::default(), &p, true, &busy, &[]);
        assert_eq!(
            forced.send,
            [1, 2, 6],
            "backoff ignored; leases, sends under way and an unproven 409's window kept"
        );
        assert_eq!(forced.wake_at, Some(now + 60_000.0));
        // The claimed record becomes due when its window ends, and goes in a batch then.
        let later = now - 1_000.0 + p.confirm_after_ms;
        let after = plan(
            &records[8..9],
            later,
            &Clock::default(),
            &p,
            false,
            &busy,
            &[],
        );
        assert_eq!(after.send, [0]);
        assert!(after.early.is_empty());
    }

    #[test]
    fn held_customers_wait_and_a_lease_from_a_clock_set_back_does_not_hold() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let records = vec![
            rec("a", "cus_a", 1.0, now - 10.0, now),
            rec("b", "cus_b", 2.0, now - 10.0, now),
            rec("stale-lease", "cus_c", 3.0, now - 10.0, now + 3_600_000.0),
        ];
        let held = [(String::from("cus_a"), now + 5_000.0)];
        let pl = plan(&records, now, &Clock::default(), &p, true, &never, &held);
        assert_eq!(pl.send, [1, 2]);
        assert_eq!(pl.wake_at, Some(now + 5_000.0));
    }

    #[test]
    fn ages_on_the_servers_clock_survive_a_device_clock_set_back() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let mut clock = Clock::default();
        clock.observe(now, now);
        let mut r = rec("k", "c", 1.0, now, now);
        r.server_created = Some(now);
        // The device clock goes back 3 hours a minute later; the server's does not.
        let later = now - 3.0 * 3600e3 + 60_000.0;
        let mut after = Clock::default();
        after.observe(now + 60_000.0, later);
        assert_eq!(
            after.age(&r, later),
            Some(61_000.0),
            "at most: the Date is a second wide"
        );
        assert!(plan(
            core::slice::from_ref(&r),
            later,
            &after,
            &p,
            false,
            &never,
            &[]
        )
        .expired
        .is_empty());
        // Without the server's time, the local rule: created "in the future" is of unknown age.
        assert_eq!(Clock::default().age(&r, later), None);
        // 25 hours later on the server, whatever the device says: expired.
        let mut day = Clock::default();
        day.observe(now + 25.0 * 3600e3, later);
        assert_eq!(
            plan(
                core::slice::from_ref(&r),
                later,
                &day,
                &p,
                false,
                &never,
                &[]
            )
            .expired,
            [0]
        );
    }

    #[test]
    fn a_window_ends_on_both_clocks() {
        let w = 120_000.0;
        let now = 1_800_000_000_000.0;
        let mut c = Clock::default();
        c.observe(now, now);
        let sent = c.stamp(now);
        assert_eq!(c.ended_by(&sent, now, w), now + w + STAMP_SLOP_MS);
        assert!(!c.proves(Some(&sent), now + w, w));
        assert!(c.proves(Some(&sent), now + w + STAMP_SLOP_MS, w));
        assert!(c.proves(None, now, w));
        // Another page after the device clock jumped 10 minutes ahead: the local clock alone
        // would call the window over; the server's does not.
        let ahead = now + 600_000.0;
        let mut other = Clock::default();
        other.observe(now + 30_000.0, ahead + 30_000.0);
        assert!(!other.proves(Some(&sent), ahead + 30_000.0, w));
        assert!(other.proves(Some(&sent), ahead + w + STAMP_SLOP_MS, w));
        // A send time ahead of the clock (it went back): the window runs from now.
        let back = Sent {
            local: now + 3_600_000.0,
            server: None,
        };
        assert_eq!(Clock::default().ended_by(&back, now, w), now + w);
    }

    #[test]
    fn the_offset_tightens_instead_of_jumping_with_each_date() {
        // The server is 250 ms ahead; `Date` has one-second resolution, so answers made just
        // before and just after a second's boundary alone say "−0.75 s" and "+0.25 s".
        let mut c = Clock::default();
        let t = 1_800_000_000_750.0; // local ms; server = t + 250
        c.observe(1_800_000_001_000.0, t); // server 1_800_000_001_000.0 → Date ...001_000
        let first = c.offset().unwrap();
        c.observe(1_800_000_001_000.0, t + 990.0); // server ...001_990 → Date still ...001_000
        assert!(
            c.offset().unwrap() >= first,
            "never looser: {:?}",
            c.offset()
        );
        let tight = c.offset().unwrap();
        c.observe(1_800_000_002_000.0, t + 1_000.0); // a new second
        assert!(c.offset().unwrap() >= tight && c.offset().unwrap() <= 250.0);
        // A window's end judged from it can only move earlier while the clocks hold.
        let sent = c.stamp(t);
        let end = c.ended_by(&sent, t + 5_000.0, 120_000.0);
        c.observe(1_800_000_003_000.0, t + 2_100.0);
        assert!(c.ended_by(&sent, t + 5_000.0, 120_000.0) <= end);
        // The device clock set back an hour: the bounds no longer overlap; the new answer counts.
        c.observe(1_800_000_004_000.0, t + 3_000.0 - 3_600_000.0);
        assert!(c.offset().unwrap() > 3_500_000.0, "{:?}", c.offset());
    }

    #[test]
    fn retry_times() {
        let p = Policy::default();
        let now = 1_000.0;
        assert_eq!(retry_at(1, now, 1.0, None, &p), 2_000.0);
        assert_eq!(retry_at(1, now, 0.0, None, &p), 1_500.0, "floor of base/2");
        assert_eq!(retry_at(4, now, 1.0, None, &p), 9_000.0);
        assert_eq!(retry_at(40, now, 1.0, None, &p), 301_000.0);
        assert_eq!(retry_at(1, now, 0.0, Some(30_000), &p), 31_000.0);
        assert_eq!(
            retry_at(1, now, 0.0, Some(315_360_000_000), &p),
            3_601_000.0,
            "capped at 1 h"
        );
    }

    #[test]
    fn only_expired_letters_get_a_fresh_window() {
        let p = Policy::default();
        let now = 1_800_000_000_000.0;
        let created = now - 30.0 * 3600e3;
        let letter = |code: &str| DeadLetter {
            record: rec("k", "c", 1.0, created, now),
            code: code.into(),
            message: String::new(),
            status: None,
            failed_at: now,
        };
        let r = revive(&letter("expired"), now, &p).unwrap();
        assert_eq!(r.created_at, now - p.max_event_age_ms / 2.0);
        assert_eq!((r.attempts, r.next_at), (1, now));
        for code in ["feature_not_found", "queue_full"] {
            assert_eq!(
                revive(&letter(code), now, &p).unwrap().created_at,
                created,
                "{code}"
            );
        }
        let mut corrupt = letter("corrupt_record");
        corrupt.record = Record::unreadable("k".into());
        assert_eq!(revive(&corrupt, now, &p), None);
    }

    #[test]
    fn callers_timestamps_are_clamped_to_the_server_clock() {
        let mut c = Clock::default();
        assert_eq!(
            c.clamp(2_000_000_000_000.0, 1_000.0),
            2_000_000_000_000,
            "no Date yet"
        );
        // The device runs 2 minutes fast: the server is 120 s behind it.
        c.observe(1_800_000_000_000.0, 1_800_000_120_000.0);
        let now = 1_800_000_120_000.0;
        assert_eq!(c.clamp(now, now), 1_800_000_000_000);
        assert_eq!(c.clamp(1_700_000_000_000.0, now), 1_700_000_000_000);
    }
}
