//! A `track()` call in real time: write the record (durable before the first send), send, read
//! the answer, then settle — delete the record (delivered, already recorded, refused) or keep it
//! for the drain (`queued`) — and only then tell the caller.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::report::{self, clip};
use super::{
    Command, Endpoint, Engine, HandOverItem, Id, Limit, Notice, Outcome, Storage, StoreCmd,
    StorePhase, Stored, Target, Waiter, HANDOVER_BUDGET_MS, INLINE_BUDGET_MS, KEEPALIVE_BUDGET,
};
use crate::answer::{self, classify, Reply, Verdict};
use crate::error::TrackError;
use crate::event::Event;
use crate::queue::{self, Record, Sent, LEASE_MS};

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
    match e.store {
        // After close() there is no drain to replay a queued event: send without a queue, so a
        // failure rejects (`unavailable`, with the key) instead of queuing into the void.
        StorePhase::Off | StorePhase::Closed => {
            call.offline = false;
            call.defer = false;
            // Another call of this key may be running, or the drain's request that carries it
            // (closed while it was in flight): its claim is no proof for this one.
            let other = e
                .calls
                .values()
                .filter(|c| c.rec.key == call.rec.key)
                .map(|c| c.sent_at)
                .last();
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
    let twice = e
        .calls
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

/// Writes the record: durable before the first send, so whatever happens to this page or
/// process, the next tracker replays it with the same key. Offline, it is written once, due
/// now; online, it is leased to this call, and marked as sent (an attempt is about to go out).
fn add(e: &mut Engine, id: Id) {
    if already_here(e, id) {
        return;
    }
    let now = e.now;
    // Time-based, so the events of several tabs (each with its own counter) still sort in the
    // order they were tracked; a small step keeps it strictly increasing within this tab.
    e.seq = (e.seq + 1.0 / 1024.0).max(now);
    let seq = e.seq;
    let max = e.opts.queue_policy.max_queue_size;
    let busy = e.busy_keys();
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    c.rec.seq = seq;
    c.rec.created_at = now;
    c.rec.server_created = e.clock.known_server_now(now);
    if c.offline || c.defer {
        c.rec.next_at = now;
        c.rec.last_error = Some(String::from(if c.defer { ACCEPTED } else { OFFLINE }));
        c.rec.sent_at = None;
    } else {
        c.rec.next_at = now + LEASE_MS;
        c.rec.sent_at = Some(e.clock.stamp(now));
    }
    c.written_mono = e.mono;
    c.stored_sent = c.rec.sent_at.map(|s| s.local);
    c.phase = Phase::Adding;
    c.stored = Some(Target::Main);
    let rec = c.rec.clone();
    e.store_op(
        Target::Main,
        StoreCmd::Add {
            recs: alloc::vec![rec],
            limit: Some(Limit { max, busy, now }),
        },
        Waiter::Call(id),
    );
}

/// A store operation of call `id` ended.
pub(super) fn stored(e: &mut Engine, id: Id, result: Result<Stored, String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    // The call's record was gone when it was to be rewritten: another tab took the event over
    // (this one was suspended past its lease) and has delivered it or set it aside.
    let gone = matches!(&result, Ok(Stored::Updated { missing }) if missing.contains(&c.rec.key));
    match core::mem::replace(&mut c.phase, Phase::Sending) {
        Phase::Adding => added(e, id, result),
        Phase::Leasing if gone => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored = None;
            }
            let s = taken_over(e, id);
            settle_now(e, id, s);
        }
        Phase::Leasing if result.is_err() => {
            // The record could not be marked as being sent again: leave the retry to the queue.
            let reply = Reply::Network(String::from(
                "the queue could not be updated before a retry",
            ));
            keep(e, id, &reply, Verdict::Retry { unanswered: false }, None);
        }
        Phase::Leasing => {
            // The renewal took long (the machine slept mid-transaction): its lease looks over to
            // other tabs, and the earlier attempt may be past Autumn's dedupe window: the queue
            // replays it (one at a time, under the tab lock).
            let (now, mono) = (e.now, e.mono);
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored_sent = c.rec.sent_at.map(|s| s.local);
            }
            let late = e.calls.get(&id).is_some_and(|c| {
                mono - c.written_mono > STALE_WRITE_MS
                    || c.rec
                        .sent_at
                        .is_some_and(|s| now - s.local > STALE_WRITE_MS)
            });
            if late {
                let reply = Reply::Network(String::from(
                    "the queue write took too long (did the machine sleep?): the replay delivers it",
                ));
                keep(e, id, &reply, Verdict::Retry { unanswered: false }, None);
            } else {
                send(e, id);
            }
        }
        Phase::Settling(s) => {
            let s = if gone && matches!(s.result, Ok(Outcome::Queued { .. })) {
                taken_over(e, id)
            } else {
                *s
            };
            if let Some(c) = e.calls.remove(&id) {
                e.keepalive_bytes = e.keepalive_bytes.saturating_sub(c.keepalive);
            }
            if let Some(n) = s.notice {
                e.emit(n);
            }
            if s.announce {
                e.out.push_back(Command::Announce);
            }
            if let Some(at) = s.wake_at {
                e.schedule(at);
            }
            e.resolve(id, s.result);
            // A drain may have held this customer's later events behind this send.
            if e.drain.held_behind_calls {
                e.drain.held_behind_calls = false;
                e.schedule(e.now);
            }
        }
        other => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.phase = other;
            }
        }
    }
}

fn added(e: &mut Engine, id: Id, result: Result<Stored, String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let key = c.rec.key.clone();
    let target = c.stored.unwrap_or(Target::Main);
    match result {
        Ok(Stored::Added {
            evicted,
            existing,
            dead_sent,
        }) => {
            // The same key was set aside earlier, after an attempt that got no answer: that
            // attempt may still be running, so a 409 is no proof for this call.
            // A record stored without a send stamp took that attempt's (the stores copy it), so
            // a drain sends it alone and waits the window for a 409 as well.
            if let Some((_, s)) = dead_sent.iter().find(|(k, _)| *k == key) {
                if let Some(c) = e.calls.get_mut(&id) {
                    c.earlier_unanswered = Some(*s);
                    if c.rec.sent_at.is_none() {
                        c.rec.sent_at = Some(*s);
                        c.stored_sent = Some(s.local);
                    }
                }
            }
            for k in &evicted {
                e.emit(Notice {
                    reason: Some("queue_full"),
                    ..Notice::keyed("evicted", k)
                });
            }
            if existing.contains(&key) {
                // The caller resent a key that is queued already: the stored copy (its age, its
                // attempts) stands, and is delivered by the drain.
                let storage = e.storage_of(&key);
                if let Some(c) = e.calls.remove(&id) {
                    drop(c);
                }
                e.resolve(
                    id,
                    Ok(Outcome::Queued {
                        key,
                        reason: "already_queued",
                        message: String::from(
                            "an event with this idempotency key is queued already; that copy is delivered",
                        ),
                        storage,
                    }),
                );
                e.schedule(e.now);
                return;
            }
            if target == Target::Spill {
                e.spilled.insert(key.clone());
            }
            let held = e
                .calls
                .get(&id)
                .and_then(|c| (c.offline || c.defer).then_some(c.defer));
            if let Some(defer) = held {
                let (reason, message) = if defer {
                    ("accepted", ACCEPTED)
                } else {
                    ("offline", OFFLINE)
                };
                let storage = e.storage_of(&key);
                settle(
                    e,
                    id,
                    None,
                    Settled {
                        result: Ok(Outcome::Queued {
                            key: key.clone(),
                            reason,
                            message: String::from(message),
                            storage,
                        }),
                        notice: Some(Notice {
                            reason: Some(reason),
                            message: Some(String::from(message)),
                            storage: Some(storage),
                            ..Notice::keyed("queued", &key)
                        }),
                        announce: true,
                        wake_at: Some(e.now),
                    },
                );
                return;
            }
            let budget = if e.env.handover {
                HANDOVER_BUDGET_MS
            } else {
                INLINE_BUDGET_MS
            };
            let now = e.now;
            let mono = e.mono;
            if let Some(c) = e.calls.get_mut(&id) {
                c.deadline = Some(c.start + budget);
                let late = mono - c.written_mono > STALE_WRITE_MS
                    || c.rec
                        .sent_at
                        .is_some_and(|s| now - s.local > STALE_WRITE_MS);
                if late {
                    // The write took long (the machine slept mid-transaction): its lease looks
                    // over to other tabs, which may already be sending it. Leave it to the drain
                    // (one at a time, under the tab lock).
                    let storage = e.storage_of(&key);
                    let msg = String::from(
                        "the queue write took too long (did the machine sleep?): the replay delivers it",
                    );
                    return settle_now(
                        e,
                        id,
                        Settled {
                            result: Ok(Outcome::Queued {
                                key: key.clone(),
                                reason: "deferred",
                                message: msg.clone(),
                                storage,
                            }),
                            notice: Some(Notice {
                                reason: Some("deferred"),
                                message: Some(msg),
                                storage: Some(storage),
                                ..Notice::keyed("queued", &key)
                            }),
                            announce: true,
                            wake_at: Some(now),
                        },
                    );
                }
            }
            send(e, id);
        }
        Ok(_) => send(e, id),
        Err(why) if target == Target::Main => {
            // The main store refused the write (a full quota, say): this event waits in memory,
            // and says so; the main store keeps serving everything it holds.
            let mut m = String::from("a write to the queue failed: ");
            m.push_str(clip(&why, 200));
            e.report_fallback(&m);
            e.spill_used = true;
            let Some(c) = e.calls.get_mut(&id) else {
                return;
            };
            c.stored = Some(Target::Spill);
            c.phase = Phase::Adding;
            let rec = c.rec.clone();
            e.store_op(
                Target::Spill,
                StoreCmd::Add {
                    recs: alloc::vec![rec],
                    limit: None,
                },
                Waiter::Call(id),
            );
        }
        Err(_) => {
            // Not even memory took it: deliver without a stored copy (a failure rejects with
            // the key).
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored = None;
                c.offline = false;
            }
            send(e, id);
        }
    }
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

/// The answer to call `id`'s attempt `req`.
pub(super) fn replied(e: &mut Engine, id: Id, req: Id, reply: Reply) {
    let now = e.now;
    let window = e.opts.queue_policy.confirm_after_ms;
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let verdict = classify(&reply);
    let key = c.rec.key.clone();
    let attempts = c.attempts;
    let queued = c.stored.is_some();
    match verdict {
        Verdict::Delivered => {
            let o = Outcome::Delivered {
                key: key.clone(),
                attempts,
                response: req,
            };
            finish(e, id, Ok(o), Some(delivered_notice(&key, false)));
        }
        Verdict::Duplicate
            if e.clock
                .proves(c.earlier_unanswered.as_ref(), c.sent_at.local, window) =>
        {
            let o = Outcome::Duplicate {
                key: key.clone(),
                attempts,
            };
            finish(e, id, Ok(o), Some(delivered_notice(&key, true)));
        }
        // The claim may belong to the earlier attempt that got no answer, which may still fail
        // and release it: not a recording until that attempt must have ended. Nor is a refusal
        // final then: that attempt's body (its timestamp) was not this one's, and it may have
        // been recorded.
        Verdict::Duplicate | Verdict::Refused | Verdict::FutureTimestamp
            if verdict == Verdict::Duplicate
                || !e
                    .clock
                    .proves(c.earlier_unanswered.as_ref(), c.sent_at.local, window) =>
        {
            let until = queue::resend_after_window(
                c.earlier_unanswered
                    .map(|s| e.clock.ended_by(&s, now, window)),
                now,
            );
            if queued {
                keep(e, id, &reply, Verdict::Duplicate, None);
            } else {
                let status = match &reply {
                    Reply::Answer(a) => a.status,
                    _ => 409,
                };
                let err = report::unconfirmed(&key, until - now, status);
                finish(e, id, Err(err), None);
            }
        }
        Verdict::Retry { unanswered } => {
            if unanswered {
                c.earlier_unanswered = Some(c.sent_at);
                // Also with a queue: a drain that read the record before this call marks it
                // must still know (drain::planned).
                let sent = c.sent_at;
                e.remember_unanswered(&key, sent);
            }
            let Some(c) = e.calls.get_mut(&id) else {
                return;
            };
            let retry_after = match &reply {
                Reply::Answer(a) => a
                    .retry_after
                    .as_deref()
                    .and_then(|h| crate::retry::retry_after_ms(h, a.retry_after_date, now)),
                _ => None,
            };
            // With a queue, an attempt that got no answer at all (a timeout, the network) ends
            // the call at once: the caller hears `queued` within `timeoutMs`, and the queue
            // resends (a prompt resend would mostly meet that attempt's claim, a 409 that proves
            // nothing). Answered 5xx/429 are retried while the call's budget allows.
            let no_answer = matches!(reply, Reply::Timeout | Reply::Network(_) | Reply::Unsent(_));
            let attempt = c.attempts.saturating_sub(1);
            let deadline = c.deadline;
            let r = e.rand01();
            let timeout = f64::from(e.opts.timeout_ms);
            let delay = crate::retry::in_call_delay(attempt, retry_after, &e.opts.retry, r)
                .filter(|d| deadline.map_or(true, |dl| now + *d as f64 + timeout <= dl))
                .filter(|_| !(queued && no_answer));
            match delay {
                Some(d) => {
                    if let Some(c) = e.calls.get_mut(&id) {
                        c.phase = Phase::Sleeping(now + d as f64);
                        e.sleepers.push((now + d as f64, id));
                    }
                }
                None if queued => keep(e, id, &reply, verdict, retry_after),
                None => {
                    let unanswered = e
                        .calls
                        .get(&id)
                        .is_some_and(|c| c.earlier_unanswered.is_some());
                    let err =
                        report::unavailable(&reply, attempts, e.opts.timeout_ms, &key, unanswered);
                    finish(e, id, Err(err), None);
                }
            }
        }
        Verdict::Hold(_) if queued => keep(e, id, &reply, verdict, None),
        Verdict::FutureTimestamp if c.rec.ts.is_some() && !c.ts_retried => {
            // The caller's timestamp is ahead of Autumn's clock (a device clock running fast):
            // this answer's `Date` taught the clock; resend once with it clamped — and keep that
            // value, so every later attempt carries the same body.
            c.ts_retried = true;
            if let Some(ts) = c.rec.ts {
                c.rec.ts = Some(e.clock.clamp(ts, now) as f64);
            }
            send(e, id);
        }
        Verdict::Hold(_)
        | Verdict::Refused
        | Verdict::Unproven
        | Verdict::FutureTimestamp
        | Verdict::Duplicate => {
            let err = match &reply {
                Reply::Answer(a) => {
                    if a.code.is_none() && !queued {
                        // "It may have been recorded": an answer from something in between
                        // proves nothing about a copy of this request it did not see (a
                        // browser's own resend), so a prompt resend's 409 waits the window.
                        let sent = c.sent_at;
                        e.remember_unanswered(&key, sent);
                    }
                    report::refusal(a, &key)
                }
                other => report::unavailable(other, attempts, e.opts.timeout_ms, &key, true),
            };
            finish(e, id, Err(err), None);
        }
    }
}

/// The outcome of a call whose record another tab took over: the shared queue has the event.
fn taken_over(e: &Engine, id: Id) -> Settled {
    let key = e
        .calls
        .get(&id)
        .map(|c| c.rec.key.clone())
        .unwrap_or_default();
    let storage = e.storage_of(&key);
    let message = String::from(
        "another tab took this event over while this one was suspended: the shared queue delivers it (or sets it aside), and says so there",
    );
    Settled {
        result: Ok(Outcome::Queued {
            key: key.clone(),
            reason: "taken_over",
            message: message.clone(),
            storage,
        }),
        notice: Some(Notice {
            reason: Some("taken_over"),
            message: Some(message),
            storage: Some(storage),
            ..Notice::keyed("queued", &key)
        }),
        announce: false,
        wake_at: None,
    }
}

fn delivered_notice(key: &str, duplicate: bool) -> Notice {
    Notice {
        duplicate: Some(duplicate),
        ..Notice::keyed("delivered", key)
    }
}

/// The call is over with `result`: the record is deleted first (if there is one), then the
/// caller is told.
fn finish(e: &mut Engine, id: Id, result: Result<Outcome, TrackError>, notice: Option<Notice>) {
    let has_record = e.calls.get(&id).and_then(|c| c.stored);
    let key = e.calls.get(&id).map(|c| c.rec.key.clone());
    let s = Settled {
        result,
        notice,
        announce: false,
        wake_at: None,
    };
    if let (Some(_), Some(k)) = (has_record, key) {
        // Settling first, so the delete's answer finds the call waiting for it.
        if let Some(c) = e.calls.get_mut(&id) {
            c.phase = Phase::Settling(Box::new(s));
        }
        if e.forget(alloc::vec![k], Waiter::Call(id)).is_none() {
            stored(e, id, Ok(Stored::Done));
        }
        return;
    }
    settle_now(e, id, s);
}

fn settle_now(e: &mut Engine, id: Id, s: Settled) {
    if let Some(c) = e.calls.get_mut(&id) {
        c.phase = Phase::Settling(Box::new(s));
    }
    stored(e, id, Ok(Stored::Done));
}

/// Writes `s`'s record change with `cmd` (when given), then settles.
fn settle(e: &mut Engine, id: Id, cmd: Option<(Target, StoreCmd)>, s: Settled) {
    match cmd {
        Some((t, cmd)) if e.is_open() => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.phase = Phase::Settling(Box::new(s));
            }
            e.store_op(t, cmd, Waiter::Call(id));
        }
        _ => settle_now(e, id, s),
    }
}

/// The event cannot be delivered now: keep it for the drain (or hand it to the Cloudflare
/// Queue) with what happened, and tell the caller it is queued.
fn keep(e: &mut Engine, id: Id, reply: &Reply, verdict: Verdict, retry_after: Option<u64>) {
    let now = e.now;
    let r = e.rand01();
    let policy = e.opts.queue_policy.clone();
    let handover = e.env.handover;
    let clock = e.clock;
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let reason = answer::queued_reason(verdict, reply);
    c.reason = reason;
    queue::anchor(&mut c.rec, &clock, now);
    c.rec.attempts = c.rec.attempts.saturating_add(1);
    c.rec.sent_at = c.earlier_unanswered;
    let until = queue::confirmed_at(&c.rec, now, &clock, &policy);
    c.rec.next_at = match verdict {
        // A 409 an earlier attempt may own: due once that attempt must have ended, and not
        // before, forced or not (queue::plan).
        Verdict::Duplicate => queue::resend_after_window(until, now),
        // Otherwise alone while inside the window, batched after (queue::plan).
        _ => queue::retry_at(c.rec.attempts, now, r, retry_after, &policy),
    };
    let message = report::queued_message(reply, until, now);
    c.rec.last_error = Some(message.clone());
    let key = c.rec.key.clone();
    let target = c.stored.unwrap_or(Target::Main);
    let wake_at = Some(c.rec.next_at);
    if handover {
        let item = HandOverItem {
            key: key.clone(),
            body: queue::body_for(&c.rec, &e.clock, now, true),
            created_at: c.rec.created_at,
            reason,
            sent_at: c.rec.sent_at.map(|s| s.server.unwrap_or(s.local)),
            delay_ms: until.map_or(0, |u| (u - now).max(0.0).ceil() as u64),
        };
        c.phase = Phase::HandingOver;
        let hid = e.id();
        e.waiting.insert(hid, Waiter::Call(id));
        e.out.push_back(Command::HandOver {
            id: hid,
            items: alloc::vec![item],
        });
        return;
    }
    let prev = c.stored_sent;
    c.stored_sent = c.rec.sent_at.map(|s| s.local);
    let rec = c.rec.clone();
    let storage = e.storage_of(&key);
    let s = Settled {
        result: Ok(Outcome::Queued {
            key: key.clone(),
            reason,
            message: message.clone(),
            storage,
        }),
        notice: Some(Notice {
            reason: Some(reason),
            message: Some(message),
            storage: Some(storage),
            ..Notice::keyed("queued", &key)
        }),
        announce: true,
        wake_at,
    };
    settle(e, id, Some((target, StoreCmd::Renew { rec, prev })), s);
}

/// The hand-over of call `id`'s event ended.
pub(super) fn handed_over(e: &mut Engine, id: Id, result: Result<(), String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let key = c.rec.key.clone();
    let reason = c.reason;
    match result {
        Ok(()) => {
            let msg = String::from("handed over to the Cloudflare Queue");
            let s = Settled {
                result: Ok(Outcome::Queued {
                    key: key.clone(),
                    reason,
                    message: msg.clone(),
                    storage: Storage::Cloudflare,
                }),
                notice: Some(Notice {
                    reason: Some(reason),
                    message: Some(msg),
                    storage: Some(Storage::Cloudflare),
                    ..Notice::keyed("queued", &key)
                }),
                announce: false,
                wake_at: None,
            };
            let t = c.stored.unwrap_or(Target::Main);
            settle(
                e,
                id,
                Some((
                    t,
                    StoreCmd::Delete {
                        keys: alloc::vec![key],
                    },
                )),
                s,
            );
        }
        Err(why) => {
            let mut msg = String::from("the Cloudflare Queue did not take the event (");
            msg.push_str(clip(&why, 300));
            msg.push_str("); it is kept in this isolate's memory until flush()");
            c.rec.last_error = Some(msg.clone());
            let rec = c.rec.clone();
            let t = c.stored.unwrap_or(Target::Main);
            let s = Settled {
                result: Ok(Outcome::Queued {
                    key: key.clone(),
                    reason,
                    message: msg.clone(),
                    storage: Storage::Memory,
                }),
                notice: Some(Notice {
                    reason: Some(reason),
                    message: Some(msg),
                    storage: Some(Storage::Memory),
                    ..Notice::keyed("queued", &key)
                }),
                announce: false,
                wake_at: None,
            };
            settle(
                e,
                id,
                Some((
                    t,
                    StoreCmd::Update {
                        recs: alloc::vec![rec],
                    },
                )),
                s,
            );
        }
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
