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

mod answers;
mod plan;
mod sending;
pub(super) use answers::{handed_over, replied};
#[allow(clippy::wildcard_imports)]
use plan::*;
pub(super) use sending::timer;
#[allow(clippy::wildcard_imports)]
use sending::*;

/// Longest a customer the route would not bill is held before trying again.
const HOLD_CAP_MS: f64 = 5.0 * 60_000.0;

#[derive(Default)]
pub(super) struct Drain {
    phase: Phase,
    /// Bytes of the keepalive budget its request in flight holds.
    keepalive: usize,
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
    pub(in crate::engine) pass: KeySet,
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

    /// Halves it.
    fn split(mut self) -> (Chunk, Chunk) {
        let b = self.cut(self.recs.len() / 2);
        (self, b)
    }

    /// Keeps the first `mid` records; answers the rest as a chunk of its own.
    fn cut(&mut self, mid: usize) -> Chunk {
        let recs = self.recs.split_off(mid);
        let b = Chunk {
            single: recs.len() == 1,
            recs,
            prior: self.prior.split_off(mid),
            ..*self
        };
        self.single = self.recs.len() == 1;
        b
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
    if e.durable() && !e.handover() {
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
    if e.hold_until > now && !e.handover() {
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
