//! The drain: replays what the store holds, one drain per engine. A `flush()` or trigger that
//! arrives while it runs does not start a second one: it asks for one more pass, and every
//! `flush()` resolves after a pass that began after it was called.
//!
//! A pass loads the store, sets aside what is too old (or unreadable), plans what is due
//! ([`queue::plan`]), and sends it in chunks: `batch_track` requests spaced for Autumn's 10 a
//! second, halved until a refused event is alone, which is then sent by itself for its own
//! answer. Before each request the chunk's records are marked as sent (durable stores), so a
//! tracker that dies mid-send leaves records no other tab batches or takes a 409 for until that
//! request must have ended.

use alloc::string::String;
use alloc::vec::Vec;

use super::report;
use super::slots::KeySet;
use super::{
    Command, Endpoint, Engine, HandOverItem, Id, Notice, Outcome, Storage, StoreCmd, Stored,
    Target, Totals, Waiter, BATCH_SPACING_MS, HANDOVER_BATCH, KEEPALIVE_BUDGET, MAX_PASSES,
};
use crate::answer::{classify, HoldWhy, Reply, Verdict};
use crate::options::DrainMode;
use crate::queue::{self, DeadLetter, Record, Sent, MAX_WAIT_MS};

/// Longest a customer the route would not bill is held before trying again.
const HOLD_CAP_MS: f64 = 5.0 * 60_000.0;

#[derive(Default)]
pub(super) struct Drain {
    phase: Phase,
    /// When a drain should start (a backoff ends, another tab queued something).
    pub due_at: Option<f64>,
    /// A pass held records back behind a `track()` call of this engine: when one settles,
    /// drain again (nothing else would wake those records up).
    pub held_behind_calls: bool,
    /// The next pass ignores backoff.
    force: bool,
    /// A pass was asked for while one ran.
    rerun: bool,
    passes: u32,
    /// Passes begun, ever: a `flush()` waits for one that began after it.
    epoch: u32,
    lock_held: bool,
    /// `flush()` calls waiting: the call, the totals when it came, the pass it waits for.
    waiters: Vec<(Id, Totals, u32)>,
    /// The records of the pass under way: busy (never set aside by the bound, never sent by
    /// anyone else here).
    pass: KeySet,
    chunks: Vec<Chunk>,
    current: Option<Chunk>,
    sent_any: bool,
    pending: u32,
    loaded: Vec<Result<Record, (String, String)>>,
    loaded_spill: Vec<Result<Record, (String, String)>>,
    loaded_spill_merged: Vec<Result<Record, (String, String)>>,
    spill_load: Option<Id>,
    load_failed: bool,
    counts: (u32, u32),
    /// When the pass under way was planned.
    planned_at: f64,
}

/// A plan older than this (the machine slept mid-drain) is made again before the next request:
/// ages and windows have moved on.
const REPLAN_MS: f64 = 30_000.0;

#[derive(Default, Clone, Copy, PartialEq)]
enum Phase {
    #[default]
    Idle,
    WaitStore,
    Locking,
    Loading,
    Burying,
    /// The current chunk leaves at this time (batch spacing), written ahead if the store is
    /// durable.
    Waiting(f64),
    WriteAhead,
    Sending,
    HandingOver,
    Settling,
    Counting,
}

#[derive(Clone)]
struct Chunk {
    recs: Vec<Record>,
    /// Each record's `sent_at` as loaded (before this pass marked it).
    prior: Vec<Option<Sent>>,
    /// Goes to the single-event endpoint.
    single: bool,
    /// Timestamps were corrected once after a "future timestamp" refusal.
    ts_retried: bool,
    /// Resend without a generated timestamp (the server's clock decides).
    without_ts: bool,
    /// Cloudflare: the queue did not take it; deliver it ourselves.
    handover_failed: bool,
    sent_at: Sent,
    /// The monotonic clock when its records were written ahead of the send.
    written_mono: f64,
    /// When it is to leave: the time its records were stamped with.
    send_at: f64,
}

impl Chunk {
    fn new(recs: Vec<Record>, single: bool) -> Chunk {
        let prior = recs.iter().map(|r| r.sent_at).collect();
        Chunk {
            recs,
            prior,
            single,
            ts_retried: false,
            without_ts: false,
            handover_failed: false,
            sent_at: Sent {
                local: 0.0,
                server: None,
            },
            written_mono: 0.0,
            send_at: 0.0,
        }
    }

    fn split(self) -> (Chunk, Chunk) {
        let mut a = self;
        let mid = a.recs.len() / 2;
        let recs_b = a.recs.split_off(mid);
        let prior_b = a.prior.split_off(mid);
        let mut b = a.clone();
        b.recs = recs_b;
        b.prior = prior_b;
        a.single = a.recs.len() == 1;
        b.single = b.recs.len() == 1;
        (a, b)
    }
}

impl Drain {
    pub(super) fn has(&self, key: &str) -> bool {
        self.pass.contains(key)
    }

    /// When the drain's request in flight that carries `key` left, if there is one (it may
    /// still be running at Autumn, holding the key's claim).
    pub(super) fn sending(&self, key: &str) -> Option<Sent> {
        let c = self.current.as_ref()?;
        (matches!(self.phase, Phase::Sending) && c.recs.iter().any(|r| r.key == key))
            .then_some(c.sent_at)
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.pass.iter().cloned()
    }

    pub(super) fn in_flight(&self) -> u32 {
        self.pass.len() as u32
    }

    pub(super) fn waiting_until(&self) -> Option<f64> {
        match self.phase {
            Phase::Waiting(t) => Some(t),
            _ => None,
        }
    }
}

/// `flush()`: resolves after a pass that began after this call.
pub(super) fn flush(e: &mut Engine, call: Id) {
    if !e.is_open() && e.store != super::StorePhase::Opening {
        e.resolve(
            call,
            Ok(Outcome::Flushed {
                delivered: 0,
                duplicates: 0,
                failed: 0,
                remaining: 0,
                handed_over: 0,
            }),
        );
        return;
    }
    let need = e.drain.epoch + 1;
    e.drain.waiters.push((call, e.totals, need));
    start(e, true);
}

/// Starts a drain, or asks the one running for another pass.
pub(super) fn start(e: &mut Engine, force: bool) {
    if e.closed {
        resolve_waiters(e, 0);
        return;
    }
    e.drain.force |= force;
    if e.drain.phase != Phase::Idle {
        e.drain.rerun = true;
        return;
    }
    e.drain.due_at = None;
    e.drain.passes = 0;
    if !e.is_open() {
        e.drain.phase = Phase::WaitStore;
        return;
    }
    if e.durable() && !e.env.handover {
        // One tab drains at a time.
        e.drain.phase = Phase::Locking;
        e.out.push_back(Command::Lock);
        return;
    }
    begin_pass(e);
}

pub(super) fn store_ready(e: &mut Engine) {
    if e.drain.phase == Phase::WaitStore {
        e.drain.phase = Phase::Idle;
        start(e, true);
    }
}

pub(super) fn locked(e: &mut Engine, granted: bool) {
    if e.drain.phase != Phase::Locking {
        if granted {
            e.out.push_back(Command::Unlock);
        }
        return;
    }
    if granted {
        e.drain.lock_held = true;
        begin_pass(e);
    } else {
        // Another tab is draining and will deliver these events; look again shortly in case it
        // finished before seeing ours.
        e.schedule(e.now + 2_000.0);
        give_up(e);
    }
}

/// No pass can run now (offline, the server asked for quiet, another tab drains): the `flush()`
/// calls waiting are answered with what is, and nothing is retried until a trigger.
fn give_up(e: &mut Engine) {
    let epoch = e.drain.epoch;
    for w in e.drain.waiters.iter_mut() {
        w.2 = w.2.min(epoch);
    }
    e.drain.rerun = false;
    finish(e);
}

fn begin_pass(e: &mut Engine) {
    let now = e.now;
    if e.closed || e.offline {
        give_up(e);
        return;
    }
    if e.hold_until > now && !e.env.handover {
        // The server said when to come back; even a forced drain waits for it. (A hand-over to
        // the Cloudflare Queue does not call Autumn: it goes on; next_chunk holds a chunk the
        // queue refused.)
        let at = e.hold_until;
        e.schedule(at);
        give_up(e);
        return;
    }
    let d = &mut e.drain;
    d.passes += 1;
    d.epoch += 1;
    d.rerun = false;
    d.sent_any = false;
    d.loaded.clear();
    d.load_failed = false;
    d.phase = Phase::Loading;
    // Deletes that failed earlier: try again (their keys stay busy until they go through).
    let stale: Vec<String> = e.undeleted.iter().cloned().collect();
    let stale: Vec<String> = stale
        .into_iter()
        .filter(|k| !e.deleting.values().any(|ks| ks.contains(k)))
        .collect();
    if !stale.is_empty() {
        let id = e.store_op(
            Target::Main,
            StoreCmd::Delete {
                keys: stale.clone(),
            },
            Waiter::Cleanup,
        );
        e.deleting.insert(id, stale);
    }
    e.drain.pending = 1;
    e.store_op(Target::Main, StoreCmd::Load, Waiter::Drain);
    e.drain.spill_load = None;
    if !e.spilled.is_empty() {
        e.drain.pending += 1;
        e.drain.spill_load = Some(e.store_op(Target::Spill, StoreCmd::Load, Waiter::Drain));
    }
}

/// A store operation of the drain ended.
pub(super) fn stored(e: &mut Engine, id: Id, result: Result<Stored, String>) {
    match e.drain.phase {
        Phase::Loading => {
            match result {
                Ok(Stored::Loaded(v)) if e.drain.spill_load == Some(id) => e.drain.loaded_spill = v,
                Ok(Stored::Loaded(v)) => e.drain.loaded.extend(v),
                Ok(_) => {}
                Err(_) => e.drain.load_failed = true,
            }
            e.drain.pending = e.drain.pending.saturating_sub(1);
            if e.drain.pending == 0 {
                if e.drain.load_failed {
                    let at = e.now + 1_000.0;
                    e.schedule(at);
                    end_pass(e, true);
                } else {
                    planned(e);
                }
            }
        }
        Phase::Burying => {
            e.drain.pending = e.drain.pending.saturating_sub(1);
            if e.drain.pending == 0 {
                next_chunk(e);
            }
        }
        Phase::WriteAhead if result.is_err() => {
            // Not marked as sent (a full quota, say), so not sent: another tab that drains
            // after this one would not know an attempt of these keys may still be running, and
            // could batch them while it holds their claims (the simulation's seed 1534 did,
            // when this sent anyway). They stay stored; try again later — a full quota frees up
            // as deliveries (real-time sends, events in memory) delete records.
            let at = e.now + e.opts.queue_policy.base_ms as f64;
            e.schedule(at);
            end_pass(e, true);
        }
        Phase::WriteAhead => {
            let limit = super::track::STALE_WRITE_MS;
            let stale = e.drain.current.as_ref().is_some_and(|c| {
                e.mono - c.written_mono > limit
                    || c.recs
                        .first()
                        .and_then(|r| r.sent_at)
                        .is_some_and(|s| e.now - s.local > limit)
            });
            if stale {
                // The write took long (the machine slept): plan again with fresh times.
                e.drain.current = None;
                e.drain.chunks.clear();
                e.drain.pass.clear();
                begin_pass(e);
            } else {
                let at = e.drain.current.as_ref().map_or(e.now, |c| c.send_at);
                send_at(e, at);
            }
        }
        Phase::Settling => {
            e.drain.pending = e.drain.pending.saturating_sub(1);
            if e.drain.pending == 0 {
                e.drain.phase = Phase::Idle;
                next_chunk(e);
            }
        }
        Phase::Counting => {
            if let Ok(Stored::Counted { queued, dead }) = result {
                e.drain.counts.0 += queued;
                e.drain.counts.1 += dead;
            }
            e.drain.pending = e.drain.pending.saturating_sub(1);
            if e.drain.pending == 0 {
                let remaining = e.drain.counts.0;
                e.drain.phase = Phase::Idle;
                resolve_waiters(e, remaining);
                after_idle(e);
            }
        }
        _ => {}
    }
}

fn planned(e: &mut Engine) {
    let now = e.now;
    let mut loaded = core::mem::take(&mut e.drain.loaded);
    // A key in both stores (the main store refused a write whose key it already held): the
    // main store's record is the event; the spill's copy goes — but an attempt of it that got no
    // answer may still be running at Autumn, and that holds for the key, whichever copy it was.
    let mut twins = Vec::new();
    for item in core::mem::take(&mut e.drain.loaded_spill) {
        let main = match &item {
            Ok(r) => loaded
                .iter_mut()
                .find_map(|m| m.as_mut().ok().filter(|x| x.key == r.key)),
            Err(_) => None,
        };
        match (item, main) {
            (Ok(r), Some(m)) => {
                if let Some(s) = r.sent_at {
                    if m.sent_at.map_or(true, |t| t.local < s.local) {
                        m.sent_at = Some(s);
                    }
                }
                twins.push(r.key)
            }
            (other, _) => e.drain.loaded_spill_merged.push(other),
        }
    }
    if !twins.is_empty() {
        for k in &twins {
            e.spilled.remove(k);
        }
        e.store_op(
            Target::Spill,
            StoreCmd::Delete { keys: twins },
            Waiter::Cleanup,
        );
    }
    // The spill store's records (few) go in queue order among the main store's (already in
    // order, as stores return them): an insertion, no sort (its panic paths cost kilobytes).
    let mut spill: Vec<Result<Record, (String, String)>> = Vec::new();
    core::mem::swap(&mut spill, &mut e.drain.loaded_spill_merged);
    for item in spill {
        let at = match &item {
            Ok(r) => loaded
                .iter()
                .position(|x| matches!(x, Ok(y) if (y.seq, &y.key) > (r.seq, &r.key)) || x.is_err())
                .unwrap_or(loaded.len()),
            Err(_) => loaded.len(),
        };
        loaded.insert(at, item);
    }
    let mut records = Vec::with_capacity(loaded.len());
    let mut letters: Vec<DeadLetter> = Vec::new();
    let mut notices: Vec<Notice> = Vec::new();
    for item in loaded {
        match item {
            Ok(mut r) => {
                // This tracker's own unanswered attempts of the key, which the stored copy may
                // not show yet (read before the call wrote it, or from the other store).
                if let Some(s) = e.recent(&r.key) {
                    if r.sent_at.map_or(true, |t| t.local < s.local) {
                        r.sent_at = Some(s);
                    }
                }
                records.push(r)
            }
            Err((key, why)) => {
                notices.push(Notice {
                    code: Some(String::from("corrupt_record")),
                    message: Some(why.clone()),
                    ..Notice::keyed("dead_letter", &key)
                });
                letters.push(dead(
                    Record::unreadable(key),
                    "corrupt_record",
                    &why,
                    None,
                    now,
                ));
            }
        }
    }
    e.held_customers.retain(|(_, until)| *until > now);
    e.drain.pass.clear();
    e.drain.planned_at = now;
    let force = core::mem::take(&mut e.drain.force);
    let calls_hold: Vec<String> = super::track::in_flight(e)
        .into_iter()
        .map(String::from)
        .collect();
    let plan = {
        let busy = |k: &str| e.busy(k);
        queue::plan(
            &records,
            now,
            &e.clock,
            &e.opts.queue_policy,
            force,
            &busy,
            &e.held_customers,
        )
    };
    if records.iter().any(|r| calls_hold.contains(&r.key)) {
        e.drain.held_behind_calls = true;
    }
    for &i in &plan.expired {
        if let Some(r) = records.get(i) {
            if let Some(s) = r.sent_at {
                // A resend of this key by the caller must not take a 409 as proof yet.
                e.remember_unanswered(&r.key, s);
            }
            notices.push(Notice {
                reason: Some("expired"),
                ..Notice::keyed("evicted", &r.key)
            });
            letters.push(dead(
                r.clone(),
                "expired",
                "older than maxEventAgeMs (or created ahead of this device's clock, whose age nobody can know): past Autumn's idempotency window a replay could be counted twice",
                None,
                now,
            ));
        }
    }
    if let Some(at) = plan.wake_at {
        e.schedule(at);
    }
    // Chunks in queue order, first one last (a stack): batches of due records, and each record
    // still inside its confirmation window alone (a batch's 200 says nothing of an item whose
    // key an earlier attempt still claims).
    let size = if e.env.handover {
        HANDOVER_BATCH
    } else if e.opts.drain == DrainMode::Single {
        1
    } else {
        e.opts.queue_policy.batch_size.max(1)
    };
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut open: Vec<Record> = Vec::new();
    let close = |open: &mut Vec<Record>, chunks: &mut Vec<Chunk>| {
        if !open.is_empty() {
            let single = open.len() == 1 && !e.env.handover;
            chunks.push(Chunk::new(core::mem::take(open), single));
        }
    };
    for &i in &plan.send {
        let Some(r) = records.get(i).cloned() else {
            continue;
        };
        e.drain.pass.insert(r.key.clone());
        if plan.early.contains(&i) && !e.env.handover {
            close(&mut open, &mut chunks);
            chunks.push(Chunk::new(alloc::vec![r], true));
        } else {
            open.push(r);
            if open.len() >= size {
                close(&mut open, &mut chunks);
            }
        }
    }
    close(&mut open, &mut chunks);
    chunks.reverse();
    e.drain.chunks = chunks;
    if !letters.is_empty() {
        e.totals.failed += letters.len() as u32;
        for n in notices {
            e.emit(n);
        }
        e.drain.phase = Phase::Burying;
        e.drain.pending = 1;
        e.bury(letters, Waiter::Drain);
        // `bury` may issue two operations (main and spill); the drain waits for the last.
        return;
    }
    next_chunk(e);
}

fn dead(record: Record, code: &str, message: &str, status: Option<u16>, now: f64) -> DeadLetter {
    DeadLetter {
        record,
        code: String::from(code),
        message: String::from(message),
        status,
        failed_at: now,
    }
}

fn next_chunk(e: &mut Engine) {
    let now = e.now;
    if e.closed {
        end_pass(e, true);
        return;
    }
    let Some(chunk) = e.drain.current.take().or_else(|| e.drain.chunks.pop()) else {
        end_pass(e, false);
        return;
    };
    e.drain.sent_any = true;
    if e.env.handover && !chunk.handover_failed {
        let items: Vec<HandOverItem> = chunk
            .recs
            .iter()
            .map(|r| HandOverItem {
                key: r.key.clone(),
                body: queue::body_for(r, &e.clock, now, true),
                created_at: r.created_at,
                reason: "retried",
                sent_at: r.sent_at.map(|s| s.server.unwrap_or(s.local)),
                delay_ms: 0,
            })
            .collect();
        e.drain.current = Some(chunk);
        e.drain.phase = Phase::HandingOver;
        let id = e.id();
        e.waiting.insert(id, Waiter::Drain);
        e.out.push_back(Command::HandOver { id, items });
        return;
    }
    if e.hold_until > now {
        let at = e.hold_until;
        e.schedule(at);
        end_pass(e, true);
        return;
    }
    e.drain.current = Some(chunk);
    write_ahead(e);
}

/// A wait for batch spacing that ended this much late (a throttled timer in a hidden page) has
/// its records stamped again before they leave: their stamp must not precede the send by more
/// than a write takes.
const LATE_MS: f64 = 1_000.0;

pub(super) fn timer(e: &mut Engine) {
    if let Phase::Waiting(t) = e.drain.phase {
        if t <= e.now {
            if e.durable() && e.now - t > LATE_MS {
                write_ahead(e);
            } else {
                send(e);
            }
        }
    }
}

/// Sends the current chunk at `at`, now if that has come.
fn send_at(e: &mut Engine, at: f64) {
    if at > e.now {
        e.drain.phase = Phase::Waiting(at);
    } else {
        send(e);
    }
}

/// Marks the chunk's records as sent before the request leaves (durable stores): a tracker that
/// dies now leaves them unconfirmed for others until this request must have ended. A batch
/// leaves once the batch spacing is over: its records are stamped with that time and written
/// meanwhile, so the wait and the write overlap (the send never precedes its stamp).
fn write_ahead(e: &mut Engine) {
    if e.now - e.drain.planned_at > REPLAN_MS {
        e.drain.current = None;
        e.drain.chunks.clear();
        e.drain.pass.clear();
        begin_pass(e);
        return;
    }
    let single = e.drain.current.as_ref().map_or(true, |c| c.single);
    let at = if single {
        e.now
    } else {
        e.now.max(e.last_batch_at + BATCH_SPACING_MS)
    };
    if !e.durable() {
        send_at(e, at);
        return;
    }
    let stamp = e.clock.stamp(at);
    let Some(c) = e.drain.current.as_mut() else {
        end_pass(e, false);
        return;
    };
    for r in &mut c.recs {
        r.sent_at = Some(stamp);
    }
    c.send_at = at;
    c.written_mono = e.mono;
    let recs = c.recs.clone();
    e.drain.phase = Phase::WriteAhead;
    e.write_back(recs, Waiter::Drain);
}

fn send(e: &mut Engine) {
    // Closed while the write-ahead was under way: nothing more leaves (a `track()` after
    // `close()` sends on its own, and could be sending one of these keys).
    if e.closed {
        end_pass(e, true);
        return;
    }
    let now = e.now;
    let clock = e.clock;
    let exiting = e.exiting;
    let Some(c) = e.drain.current.as_mut() else {
        end_pass(e, false);
        return;
    };
    c.sent_at = clock.stamp(now);
    let (endpoint, body) = match (c.single, c.recs.first()) {
        (true, Some(r)) => (
            Endpoint::Track,
            queue::body_for(r, &clock, now, !c.without_ts),
        ),
        _ => (
            Endpoint::Batch,
            queue::batch_body(c.recs.iter(), &clock, now),
        ),
    };
    if endpoint == Endpoint::Batch {
        e.last_batch_at = now;
    }
    // On page exit, small replays go out as `keepalive` requests (which outlive the page; the
    // stored copy stays until an answer, so at worst the next visit resends it for a 409).
    let keepalive = exiting && body.len() <= KEEPALIVE_BUDGET;
    e.drain.phase = Phase::Sending;
    let id = e.id();
    e.waiting.insert(id, Waiter::Drain);
    e.sent_times.insert(id, e.now);
    e.out.push_back(Command::Send {
        id,
        endpoint,
        body,
        keepalive,
    });
}

/// The answer to the drain's request.
pub(super) fn replied(e: &mut Engine, _id: Id, reply: Reply) {
    let Some(mut c) = e.drain.current.take() else {
        return;
    };
    let now = e.now;
    let verdict = classify(&reply);
    let retry_after = match &reply {
        Reply::Answer(a) => a
            .retry_after
            .as_deref()
            .and_then(|h| crate::retry::retry_after_ms(h, a.retry_after_date, now)),
        _ => None,
    };
    if let Some(ms) = retry_after {
        if matches!(verdict, Verdict::Retry { .. }) {
            e.hold_until = e.hold_until.max(now + (ms as f64).min(MAX_WAIT_MS));
        }
    }
    let window = e.opts.queue_policy.confirm_after_ms;
    if !c.single {
        match verdict {
            Verdict::Delivered => return settle_delivered(e, c, false),
            Verdict::FutureTimestamp if !c.ts_retried => {
                // This answer's `Date` taught the clock: the same chunk again, timestamps
                // corrected.
                c.ts_retried = true;
                e.drain.current = Some(c);
                return write_ahead(e);
            }
            Verdict::Refused | Verdict::FutureTimestamp => return split(e, c),
            Verdict::Unproven if is_status(&reply, 413) => return split(e, c),
            Verdict::Hold(HoldWhy::CustomerMismatch) => return mismatch(e, c, &reply),
            Verdict::Retry { unanswered: true } => {
                return reschedule(e, c, &reply, true, retry_after, true)
            }
            // A batch is never answered 409 by Autumn (something in between did): back off.
            Verdict::Retry { .. } | Verdict::Duplicate | Verdict::Hold(_) | Verdict::Unproven => {
                return reschedule(e, c, &reply, false, retry_after, true)
            }
        }
    }
    let prior = c.prior.first().copied().flatten();
    match verdict {
        Verdict::Delivered => settle_delivered(e, c, false),
        Verdict::Duplicate if e.clock.proves(prior.as_ref(), c.sent_at.local, window) => {
            settle_delivered(e, c, true)
        }
        // Not proof yet (an earlier attempt may still be running, and may fail, or have
        // recorded a body this refusal did not see): due again once it must have ended.
        Verdict::Duplicate | Verdict::Refused | Verdict::FutureTimestamp
            if verdict == Verdict::Duplicate
                || !e.clock.proves(prior.as_ref(), c.sent_at.local, window) =>
        {
            let mut recs = c.recs;
            let clock = e.clock;
            for (r, p) in recs.iter_mut().zip(c.prior.iter()) {
                let until = p.map(|t| clock.ended_by(&t, now, window));
                queue::anchor(r, &clock, now);
                r.attempts = r.attempts.saturating_add(1);
                r.sent_at = *p;
                // Not before the window ends, forced or not (queue::plan).
                r.next_at = queue::resend_after_window(until, now);
                r.last_error = Some(report::queued_message(&reply, until, now));
            }
            if let Some(at) = recs.iter().map(|r| r.next_at).reduce(f64::min) {
                e.schedule(at);
            }
            settle(e, recs, |e, recs| e.write_back(recs, Waiter::Drain));
        }
        Verdict::FutureTimestamp if !c.ts_retried && !c.without_ts => {
            // The clock is ahead of Autumn's: resend once, the caller's own timestamp corrected
            // with what this answer taught, a generated one left out.
            let has_ts = c.recs.first().is_some_and(|r| r.ts.is_some());
            if has_ts {
                c.ts_retried = true;
            } else {
                c.without_ts = true;
            }
            e.drain.current = Some(c);
            write_ahead(e);
        }
        Verdict::Refused | Verdict::FutureTimestamp | Verdict::Duplicate => {
            let Reply::Answer(a) = &reply else {
                return reschedule(e, c, &reply, false, retry_after, true);
            };
            let err = report::refusal(a, c.recs.first().map_or("", |r| r.key.as_str()));
            let letters: Vec<DeadLetter> = c
                .recs
                .iter()
                .map(|r| {
                    dead(
                        r.clone(),
                        err.code.as_str(),
                        &err.message,
                        Some(a.status),
                        now,
                    )
                })
                .collect();
            e.totals.failed += letters.len() as u32;
            for d in &letters {
                e.emit(Notice {
                    code: Some(d.code.clone()),
                    message: Some(d.message.clone()),
                    status: d.status,
                    ..Notice::keyed("dead_letter", &d.record.key)
                });
                e.drain.pass.remove(&d.record.key);
            }
            settle(e, letters, |e, l| e.bury(l, Waiter::Drain));
        }
        Verdict::Hold(HoldWhy::CustomerMismatch) => mismatch(e, c, &reply),
        // A proxy's refusal of this one event: keep it, go on with the others.
        Verdict::Unproven => reschedule(e, c, &reply, false, retry_after, false),
        Verdict::Retry { unanswered } => reschedule(e, c, &reply, unanswered, retry_after, true),
        Verdict::Hold(_) => reschedule(e, c, &reply, false, retry_after, true),
    }
}

fn is_status(reply: &Reply, status: u16) -> bool {
    matches!(reply, Reply::Answer(a) if a.status == status)
}

/// One bad event fails a whole batch: halve it until each refused event is alone.
fn split(e: &mut Engine, c: Chunk) {
    let (a, b) = c.split();
    e.drain.chunks.push(b);
    e.drain.chunks.push(a);
    e.drain.phase = Phase::Idle;
    next_chunk(e);
}

/// The route would not bill these for the customer signed in now: a chunk of several customers
/// is split by customer; one customer's events are held (with a growing wait) while the drain
/// goes on with the others.
fn mismatch(e: &mut Engine, c: Chunk, reply: &Reply) {
    let first = c
        .recs
        .first()
        .map(|r| r.customer.clone())
        .unwrap_or_default();
    if c.recs.iter().any(|r| r.customer != first) {
        let mut groups: Vec<Chunk> = Vec::new();
        for (r, p) in c.recs.into_iter().zip(c.prior) {
            match groups
                .iter_mut()
                .find(|g| g.recs.first().is_some_and(|x| x.customer == r.customer))
            {
                Some(g) => {
                    g.recs.push(r);
                    g.prior.push(p);
                }
                None => {
                    let mut g = Chunk::new(alloc::vec![r], false);
                    g.prior = alloc::vec![p];
                    groups.push(g);
                }
            }
        }
        for g in groups.iter_mut() {
            g.single = g.recs.len() == 1;
        }
        groups.reverse();
        e.drain.chunks.extend(groups);
        e.drain.phase = Phase::Idle;
        return next_chunk(e);
    }
    let now = e.now;
    let attempts = c.recs.iter().map(|r| r.attempts).max().unwrap_or(0);
    let r = e.rand01();
    let wait = crate::retry::backoff(attempts, 1_000, HOLD_CAP_MS as u64, r).max(500) as f64;
    e.held_customers.retain(|(cu, _)| *cu != first);
    e.held_customers.push((first.clone(), now + wait));
    // The rest of this pass skips that customer.
    for ch in e.drain.chunks.iter_mut() {
        ch.recs.retain(|r| r.customer != first);
    }
    e.drain.chunks.retain(|ch| !ch.recs.is_empty());
    reschedule(e, c, reply, false, None, false);
}

/// Delivered (2xx) or proven already recorded (409): delete, count, tell.
fn settle_delivered(e: &mut Engine, c: Chunk, duplicate: bool) {
    let keys: Vec<String> = c.recs.iter().map(|r| r.key.clone()).collect();
    let n = keys.len() as u32;
    if duplicate {
        e.totals.duplicates += n;
    } else {
        e.totals.delivered += n;
    }
    for k in &keys {
        e.emit(Notice {
            duplicate: Some(duplicate),
            ..Notice::keyed("delivered", k)
        });
    }
    settle(e, keys, |e, keys| e.forget(keys, Waiter::Drain));
}

/// Records a failed attempt on each of the chunk's records and plans their next try. `stop`:
/// the server is struggling (or refuses us): end this pass.
fn reschedule(
    e: &mut Engine,
    c: Chunk,
    reply: &Reply,
    unanswered: bool,
    retry_after: Option<u64>,
    stop: bool,
) {
    let now = e.now;
    let detail = report::describe(reply);
    let policy = e.opts.queue_policy.clone();
    let clock = e.clock;
    let mut recs = c.recs;
    let mut earliest = f64::INFINITY;
    // A batch without an answer was most likely accepted (Autumn answers a batch once it has
    // queued it): its events, resent one by one, would each draw a 409 that proves nothing. They
    // wait out the window instead, and go in a batch again.
    let wait_window = unanswered && recs.len() > 1;
    if unanswered {
        let keys: Vec<&str> = recs.iter().map(|r| r.key.as_str()).collect();
        e.remember_all(&keys, c.sent_at);
    }
    for (r, p) in recs.iter_mut().zip(c.prior.iter()) {
        queue::anchor(r, &clock, now);
        r.attempts = r.attempts.saturating_add(1);
        let draw = e.rand01();
        r.next_at = queue::retry_at(r.attempts, now, draw, retry_after, &policy);
        // An attempt without an answer may still be running: no 409 is proof, and no batch
        // carries the record, until it must have ended (meanwhile it goes alone, at `next_at`:
        // queue::plan). An answered attempt changes nothing about an earlier one.
        r.sent_at = if unanswered { Some(c.sent_at) } else { *p };
        let until = queue::confirmed_at(r, now, &clock, &policy);
        if wait_window {
            r.next_at = r.next_at.max(queue::resend_after_window(until, now));
        }
        r.last_error = Some(report::queued_message(reply, until, now));
        earliest = earliest.min(r.next_at);
    }
    if let Some(r) = recs.first() {
        e.emit(Notice {
            message: Some(detail),
            count: Some(recs.len() as u32),
            ..Notice::keyed("retrying", &r.key)
        });
    }
    if earliest.is_finite() {
        e.schedule(earliest);
    }
    if stop {
        // What this pass did not get to keeps its state; the next drain sees it.
        e.drain.chunks.clear();
    }
    settle(e, recs, |e, recs| e.write_back(recs, Waiter::Drain));
}

/// Writes a chunk's outcome with `op` (which issues the store operation(s), the drain waiting
/// for the last), then moves on.
fn settle<T, R: Into<Option<Id>>>(
    e: &mut Engine,
    items: Vec<T>,
    op: impl FnOnce(&mut Engine, Vec<T>) -> R,
) {
    e.drain.phase = Phase::Settling;
    e.drain.pending = 1;
    if op(e, items).into().is_none() {
        // Nothing to write (the store is gone): move on.
        e.drain.pending = 0;
        e.drain.phase = Phase::Idle;
        next_chunk(e);
    }
}

/// The hand-over of the current chunk to the Cloudflare Queue ended.
pub(super) fn handed_over(e: &mut Engine, result: Result<(), String>) {
    let Some(mut c) = e.drain.current.take() else {
        return;
    };
    match result {
        Ok(()) => {
            let keys: Vec<String> = c.recs.iter().map(|r| r.key.clone()).collect();
            e.totals.handed_over += keys.len() as u32;
            for k in &keys {
                e.emit(Notice {
                    reason: Some("retried"),
                    message: Some(String::from("handed over to the Cloudflare Queue")),
                    storage: Some(Storage::Cloudflare),
                    ..Notice::keyed("queued", k)
                });
            }
            settle(e, keys, |e, keys| e.forget(keys, Waiter::Drain));
        }
        Err(_) => {
            // The queue refuses too: deliver them ourselves if Autumn answers.
            c.handover_failed = true;
            let size = if e.opts.drain == DrainMode::Single {
                1
            } else {
                e.opts.queue_policy.batch_size.max(1)
            };
            let mut parts = Vec::new();
            let mut rest = c;
            while rest.recs.len() > size {
                let mut head = rest.clone();
                let tail_recs = head.recs.split_off(size);
                let tail_prior = head.prior.split_off(size);
                rest.recs = tail_recs;
                rest.prior = tail_prior;
                head.single = head.recs.len() == 1;
                parts.push(head);
            }
            rest.single = rest.recs.len() == 1;
            parts.push(rest);
            parts.reverse();
            e.drain.current = parts.pop();
            e.drain.chunks.extend(parts);
            e.drain.phase = Phase::Idle;
            next_chunk(e);
        }
    }
}

fn end_pass(e: &mut Engine, stopped: bool) {
    e.drain.pass.clear();
    e.drain.current = None;
    e.drain.chunks.clear();
    e.drain.phase = Phase::Idle;
    let want_pass = e.drain.rerun || e.drain.waiters.iter().any(|w| w.2 > e.drain.epoch);
    if !stopped && !e.closed && (want_pass || (e.drain.sent_any && e.drain.passes < MAX_PASSES)) {
        begin_pass(e);
        return;
    }
    if !stopped && e.drain.sent_any {
        // Still busy after several passes: come back shortly rather than spin.
        e.schedule(e.now + 100.0);
    }
    finish(e);
}

fn finish(e: &mut Engine) {
    e.drain.phase = Phase::Idle;
    if core::mem::take(&mut e.drain.lock_held) {
        e.out.push_back(Command::Unlock);
    }
    let epoch = e.drain.epoch;
    let ready = e.drain.waiters.iter().any(|w| w.2 <= epoch) || e.closed;
    if ready && e.is_open() {
        e.drain.phase = Phase::Counting;
        e.drain.counts = (0, 0);
        e.drain.pending = 1;
        e.store_op(Target::Main, StoreCmd::Count, Waiter::Drain);
        if !e.spilled.is_empty() {
            e.drain.pending += 1;
            e.store_op(Target::Spill, StoreCmd::Count, Waiter::Drain);
        }
        return;
    }
    if ready {
        resolve_waiters(e, 0);
    }
    after_idle(e);
}

fn after_idle(e: &mut Engine) {
    if e.closed {
        return;
    }
    let epoch = e.drain.epoch;
    if e.drain.rerun || e.drain.waiters.iter().any(|w| w.2 > epoch) {
        e.drain.rerun = false;
        start(e, true);
    }
}

/// Resolves the `flush()` calls whose pass has run (all of them once closed).
fn resolve_waiters(e: &mut Engine, remaining: u32) {
    let epoch = e.drain.epoch;
    let closed = e.closed;
    let (ready, later): (Vec<_>, Vec<_>) = core::mem::take(&mut e.drain.waiters)
        .into_iter()
        .partition(|w| closed || w.2 <= epoch);
    e.drain.waiters = later;
    let now = e.totals;
    for (call, then, _) in ready {
        e.resolve(
            call,
            Ok(Outcome::Flushed {
                delivered: now.delivered - then.delivered,
                duplicates: now.duplicates - then.duplicates,
                failed: now.failed - then.failed,
                remaining,
                handed_over: now.handed_over - then.handed_over,
            }),
        );
    }
}

pub(super) fn close(e: &mut Engine) {
    if matches!(
        e.drain.phase,
        Phase::Idle | Phase::WaitStore | Phase::Locking | Phase::Waiting(_)
    ) {
        if core::mem::take(&mut e.drain.lock_held) {
            e.out.push_back(Command::Unlock);
        }
        e.drain.phase = Phase::Idle;
        e.drain.current = None;
        e.drain.chunks.clear();
        e.drain.pass.clear();
        resolve_waiters(e, 0);
    }
    // Otherwise the operation in flight ends the pass (its next step sees `closed`).
}
