//! A `track()` call in real time: write the record (durable before the first send), send, read
//! the answer, then settle — delete the record (delivered, already recorded, refused) or keep it
//! for the drain (`queued`) — and only then tell the caller.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::report::{self, clip};
use super::slots::KeyMap;
use super::{
    Command, Endpoint, Engine, HandOverItem, Id, Limit, Notice, Outcome, Storage, StoreCmd,
    StorePhase, Stored, Target, Waiter, HANDOVER_BUDGET_MS, INLINE_BUDGET_MS, KEEPALIVE_BUDGET,
};
use crate::answer::{self, classify, Reply, Verdict};
use crate::error::TrackError;
use crate::event::Event;
use crate::queue::{self, Record, Sent, LEASE_MS};

mod answers;
mod write;
#[allow(clippy::wildcard_imports)]
use answers::*;
pub(super) use answers::{handed_over, replied};
pub(super) use write::stored;
#[allow(clippy::wildcard_imports)]
use write::*;

/// A write-ahead older than this when it lands is renewed before the send it announces.
pub(super) const STALE_WRITE_MS: f64 = 10_000.0;

/// What a queued event says when it was tracked offline.
const OFFLINE: &str = "the device is offline";

/// What a deferred event says (`Input::Track { defer }`).
const ACCEPTED: &str = "committed to the queue: the replay delivers it";

/// One call in progress.
pub(super) struct Call {
    rec: Record,
    /// Where its record was written, if anywhere.
    stored: Option<Target>,
    /// Requests made by this call.
    attempts: u32,
    start: f64,
    /// The monotonic clock at the start.
    start_mono: f64,
    /// When this call hands over to the queue at the latest (`None`: no queue to hand to).
    deadline: Option<f64>,
    /// The latest attempt of this key that got no answer, before the current one: a 409 proves
    /// nothing until it can no longer be running.
    earlier_unanswered: Option<Sent>,
    /// When the current attempt was sent.
    sent_at: Sent,
    /// The monotonic clock when its record was last written ahead of a send.
    written_mono: f64,
    /// The send stamp (`sent_at.local`) of its record as this call last wrote it: what a
    /// rewrite expects to find ([`StoreCmd::Renew`]).
    stored_sent: Option<f64>,
    /// Bytes of the browser's keepalive budget this call holds.
    keepalive: usize,
    /// The caller's timestamp was already corrected after a "future timestamp" refusal.
    ts_retried: bool,
    offline: bool,
    /// Stored for the drain to deliver, not sent by this call ([`Input::Track`]'s `defer`).
    ///
    /// [`Input::Track`]: super::Input::Track
    defer: bool,
    /// Why it was kept, once it was (for the hand-over's result).
    reason: &'static str,
    phase: Phase,
}

enum Phase {
    /// The store is still opening.
    WaitStore,
    /// The record is being written.
    Adding,
    Sending,
    /// Waiting to retry.
    Sleeping(f64),
    /// The record's lease is being renewed before a retry.
    Leasing,
    /// Being handed to the Cloudflare Queue.
    HandingOver,
    /// The record's fate is being written; then the caller is told.
    Settling(Box<Settled>),
}

struct Settled {
    result: Result<Outcome, TrackError>,
    notice: Option<Notice>,
    announce: bool,
    wake_at: Option<f64>,
}

impl Call {
    pub(super) fn key(&self) -> &str {
        &self.rec.key
    }

    /// True while its stored record belongs to this call (no drain may send it).
    pub(super) fn holds_record(&self) -> bool {
        self.stored.is_some() && !self.offline && !self.defer
    }

    pub(super) fn waits_for_store(&self) -> bool {
        matches!(self.phase, Phase::WaitStore)
    }

    pub(super) fn sleeping_until(&self) -> Option<f64> {
        match self.phase {
            Phase::Sleeping(t) => Some(t),
            _ => None,
        }
    }
}

/// `track(event)`; `defer`: store it and leave the delivery to the drain.
pub(super) fn start(e: &mut Engine, id: Id, event: Event, defer: bool) {
    let now = e.now;
    let rec = queue::new_record(&event, 0.0, now);
    let mut call = Call {
        earlier_unanswered: e.recent(&event.idempotency_key),
        rec,
        stored: None,
        attempts: 0,
        start: now,
        start_mono: e.mono,
        deadline: None,
        sent_at: Sent {
            local: now,
            server: None,
        },
        keepalive: 0,
        written_mono: e.mono,
        stored_sent: None,
        ts_retried: false,
        offline: e.offline,
        defer,
        reason: "server_error",
        phase: Phase::WaitStore,
    };
    let shared = e.note_call_key(&call.rec.key);
    match e.store {
        // After close() there is no drain to replay a queued event: send without a queue, so a
        // failure rejects (`unavailable`, with the key) instead of queuing into the void.
        StorePhase::Off | StorePhase::Closed => {
            call.offline = false;
            call.defer = false;
            // Another call of this key may be running, or the drain's request that carries it
            // (closed while it was in flight): its claim is no proof for this one.
            let other = shared
                .then(|| {
                    e.calls
                        .values()
                        .filter(|c| c.rec.key == call.rec.key)
                        .map(|c| c.sent_at)
                        .last()
                })
                .flatten();
            call.earlier_unanswered = other
                .or_else(|| e.drain.sending(&call.rec.key))
                .or_else(|| e.recent(&call.rec.key));
            e.calls.insert(id, call);
            send(e, id);
        }
        StorePhase::Opening => {
            e.calls.insert(id, call);
        }
        StorePhase::Open { .. } => {
            e.calls.insert(id, call);
            add(e, id);
        }
    }
}

/// The key is being sent here already (another call, the drain) or waits in the spill store:
/// this call is the same event again, which that copy delivers.
fn already_here(e: &mut Engine, id: Id) -> bool {
    let Some(key) = e.calls.get(&id).map(|c| c.rec.key.clone()) else {
        return false;
    };
    let twice = e.may_share(&key)
        && e.calls
            .iter()
            .any(|(i, c)| c.holds_record() && *i != id && c.rec.key == key);
    if !(twice || e.drain.has(&key) || e.spilled.contains(&key) || e.undeleted.contains(&key)) {
        return false;
    }
    e.calls.remove(&id);
    let storage = e.storage_of(&key);
    e.resolve(
        id,
        Ok(Outcome::Queued {
            key,
            reason: "already_queued",
            message: String::from(
                "an event with this idempotency key is queued or being sent already; that copy is delivered",
            ),
            storage,
        }),
    );
    true
}

/// The store opened: write the record of a call that waited for it.
pub(super) fn store_ready(e: &mut Engine, id: Id) {
    add(e, id);
}

/// Sends the current attempt.
fn send(e: &mut Engine, id: Id) {
    let now = e.now;
    let clock = e.clock;
    let browser = e.env.browser;
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let body = queue::body_for(&c.rec, &clock, now, false);
    // In a browser, a real-time send outlives the page (keepalive) while the budget allows: a
    // tab closed right after track() still delivers, and the stored copy's replay on the next
    // visit is then a harmless 409.
    if browser
        && c.stored.is_some()
        && c.keepalive == 0
        && e.keepalive_bytes + body.len() <= KEEPALIVE_BUDGET
    {
        c.keepalive = body.len();
        e.keepalive_bytes += body.len();
    }
    c.attempts += 1;
    c.sent_at = clock.stamp(now);
    c.phase = Phase::Sending;
    let keepalive = c.keepalive > 0;
    let rid = e.id();
    e.waiting.insert(rid, Waiter::Call(id));
    e.sent_times.insert(rid, e.now);
    e.out.push_back(Command::Send {
        id: rid,
        endpoint: Endpoint::Track,
        body,
        keepalive,
    });
}

/// A sleeping call's retry is due: renew its lease (the record stays this call's, and is marked
/// as being sent), then send.
pub(super) fn wake(e: &mut Engine, id: Id) {
    let now = e.now;
    let Some(c) = e
        .calls
        .get_mut(&id)
        .filter(|c| c.sleeping_until().is_some())
    else {
        return;
    };
    // Past the budget on either clock (a clock set back does not stretch it): the lease, which
    // outlasts the budget, may be running out, and another tab may take the record over.
    let mono_late = c
        .deadline
        .is_some_and(|d| c.start_mono.is_finite() && e.mono - c.start_mono > d - c.start);
    if c.stored.is_some() && (mono_late || c.deadline.is_some_and(|d| now > d)) {
        // Woken far too late (the machine slept): the queue replays it, with its original time.
        c.phase = Phase::Sending;
        let reply = Reply::Network(String::from(
            "the retry was due long ago (did the machine sleep?)",
        ));
        return keep(e, id, &reply, Verdict::Retry { unanswered: false }, None);
    }
    match c.stored {
        Some(t) => {
            c.rec.next_at = now + LEASE_MS;
            c.rec.sent_at = Some(e.clock.stamp(now));
            c.written_mono = e.mono;
            c.phase = Phase::Leasing;
            // `stored_sent` follows once the write succeeded (`stored`).
            let prev = c.stored_sent;
            let rec = c.rec.clone();
            e.store_op(t, StoreCmd::Renew { rec, prev }, Waiter::Call(id));
        }
        None => send(e, id),
    }
}

/// The calls that hold their record, by key and by customer: what a drain's plan asks of each
/// record it loaded, at a lookup each (a burst of 10,000 offline `track()`s meeting a queue of
/// 10,000 records was 10⁸ comparisons).
pub(super) struct Holders<'a> {
    recs: Vec<&'a Record>,
    /// Per key: how many calls (high 32 bits) and the first one's place in `recs` (low).
    keys: KeyMap,
    /// Per customer: how many calls.
    customers: KeyMap,
}

pub(super) fn holders(e: &Engine) -> Holders<'_> {
    let mut h = Holders {
        recs: Vec::new(),
        keys: KeyMap::default(),
        customers: KeyMap::default(),
    };
    for c in e.calls.values().filter(|c| c.holds_record()) {
        let r = &c.rec;
        let n = h.keys.get(&r.key).unwrap_or(h.recs.len() as u64) + (1 << 32);
        h.keys.put(r.key.clone(), n);
        let n = h.customers.get(&r.customer).unwrap_or(0) + 1;
        h.customers.put(r.customer.clone(), n);
        h.recs.push(r);
    }
    h
}

impl Holders<'_> {
    /// A call is sending `key`'s record.
    pub(super) fn has_key(&self, key: &str) -> bool {
        self.keys.contains(key)
    }

    /// Whether a drain's pass may hold `r` back behind one of these calls, so the call's
    /// settling must drain again: `r` has a call's key (another customer's event under that key
    /// waits while the key is busy) or its customer (order per customer) — and is not that
    /// call's own record, which the call settles itself. Own means every field that names the
    /// event is equal; a record that differs in any of them still gets its pass.
    pub(super) fn wait_behind(&self, r: &Record) -> bool {
        let own = |c: &&&Record| {
            c.key == r.key
                && c.customer == r.customer
                && c.seq == r.seq
                && c.created_at == r.created_at
                && c.body == r.body
        };
        let (by_key, first) = self
            .keys
            .get(&r.key)
            .map_or((0, 0), |v| (v >> 32, (v & 0xffff_ffff) as usize));
        // One call of the key (as good as always): it is the only one that can be own.
        let own = match by_key {
            0 => 0,
            1 => self.recs.get(first).filter(own).map_or(0, |_| 1),
            _ => self.recs.iter().filter(own).count() as u64,
        };
        // Own calls have `r`'s customer too: the rest of the customer's calls are others.
        by_key > own || self.customers.get(&r.customer).unwrap_or(0) > own
    }
}

/// Keys of calls whose record is held by them (for `pending().inFlight`).
pub(super) fn in_flight(e: &Engine) -> Vec<&str> {
    e.calls
        .values()
        .filter(|c| c.holds_record())
        .map(|c| c.rec.key.as_str())
        .collect()
}
