//! The delivery engine, sans-IO: every decision that makes an event recorded exactly once, with
//! no I/O, no clock reading and no randomness of its own.
//!
//! The engine takes [`Input`]s — a `track()` call, a store result, an answer, the timer, the
//! network coming back, a page hiding — and returns [`Command`]s — write, delete, send, wake me
//! at, tell the caller, emit a notice. A driver carries the commands out and feeds the results
//! back: `js/tracker.js` in browsers, Node and Workers; the deterministic simulation in
//! `tests/simulation.rs` natively. The engine is the same code in both, so `cargo test` tests
//! what ships (the shape of quinn-proto and rustls).
//!
//! Data path: [`Engine::handle`]`(Input::Track)` → the record is written to the store (durable
//! before the first send; [`track`]) → sent → the answer is classified
//! ([`answer::classify`](crate::answer::classify)) → the record is deleted, kept for a replay,
//! or set aside as a dead letter → the caller is told. Replays are the drain ([`drain`]), one per
//! engine, structurally.

mod admin;
mod drain;
mod records;
pub mod report;
pub mod slots;
mod track;
mod types;
pub mod wire;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

pub use types::*;

use slots::{IdMap, KeySet, Recent};

use crate::answer::Reply;
use crate::options::{Options, QueueMode};
use crate::queue::Clock;

/// Share of a browser's 64 KiB `keepalive` budget the tracker uses.
pub const KEEPALIVE_BUDGET: usize = 48 * 1024;

/// Least time between two `batch_track` requests (Autumn: 10 per second per organisation).
pub const BATCH_SPACING_MS: f64 = 110.0;

/// Longest time a `track()` call spends on its own attempts while a queue can take over: the
/// whole call, attempts and their timeouts included, fits in it (with IndexedDB or memory the
/// record's lease of 60 s outlasts it).
pub const INLINE_BUDGET_MS: f64 = 30_000.0;

/// The same with a Cloudflare Queue: attempts plus the hand-over (at most
/// [`HANDOVER_TIMEOUT_MS`]) fit well inside a Worker's 30 s `waitUntil`.
pub const HANDOVER_BUDGET_MS: f64 = 15_000.0;

/// Longest a hand-over to a Cloudflare Queue may take before it counts as failed (the driver
/// enforces it).
pub const HANDOVER_TIMEOUT_MS: f64 = 10_000.0;

/// Cloudflare Queues: messages per `sendBatch`.
pub const HANDOVER_BATCH: usize = 100;

/// Most passes one drain makes over the store while events keep arriving.
const MAX_PASSES: u32 = 8;

/// How many recently unanswered keys a tracker remembers (see
/// [`Engine::recent`]).
const RECENT_MAX: usize = 4096;

/// The engine of one tracker.
pub struct Engine {
    opts: Options,
    env: Env,
    now: f64,
    rng: u64,
    out: alloc::collections::VecDeque<Command>,
    next_id: Id,
    // ---- the store
    store: StorePhase,
    /// Keys whose record lives in the spill store (memory), because the main store refused a
    /// write (a full quota, say). The main store keeps serving what it holds.
    spilled: KeySet,
    spill_used: bool,
    fallback_reported: bool,
    /// Settled keys whose delete has not gone through (yet): never sent again; deleted again
    /// by the next drain if the delete failed.
    undeleted: KeySet,
    /// The last list [`Engine::busy_keys`] made, and the sets' change counts it was made at.
    busy_cache: Option<(u64, u64, Rc<Vec<String>>)>,
    /// The keys of each delete in flight.
    deleting: IdMap<Vec<String>>,
    seq: f64,
    // ---- time
    clock: Clock,
    wake_sent: Option<f64>,
    hold_until: f64,
    last_batch_at: f64,
    offline: bool,
    exiting: bool,
    keepalive_bytes: usize,
    closed: bool,
    // ---- work in progress
    calls: IdMap<track::Call>,
    /// The keys of live calls (and of some ended ones; rebuilt as it grows) and, among them,
    /// those two calls may share: a call's checks for another call of its key look only when
    /// the key is in `shared_keys` — not through 10,000 calls for each of 10,000 events.
    call_keys: KeySet,
    shared_keys: KeySet,
    /// What each store operation, request and hand-over in flight is for.
    waiting: IdMap<Waiter>,
    /// When each request in flight left.
    sent_times: IdMap<f64>,
    drain: drain::Drain,
    admin: IdMap<admin::Job>,
    /// Customers the app's route would not bill now (`customer_mismatch`), until when.
    held_customers: Vec<(String, f64)>,
    /// Without a queue: keys whose latest attempt got no answer, with its send time, so that a
    /// resend with the same key within the confirmation window does not take a 409 as proof.
    recent: Recent,
    totals: Totals,
    /// Calls put to sleep before a retry, with when: checked against the call when read (a call
    /// woken or gone meanwhile is dropped then), so that the timer's work follows the sleepers,
    /// not every call in flight.
    sleepers: Vec<(f64, Id)>,
    /// The monotonic clock's last reading.
    mono: f64,
    mono_seen: bool,
    /// The store operation whose result is being handled.
    last_op: Id,
    /// Emitted notices need listeners; the driver says when there are none.
    pub quiet: bool,
}

/// What an operation in flight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiter {
    Call(Id),
    Drain,
    Admin(Id),
    /// No one waits (a cleanup delete): a failure only marks the keys undeleted.
    Cleanup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorePhase {
    /// No queue at all (`queue: "off"`).
    Off,
    Opening,
    Open {
        durable: bool,
    },
    Closed,
}

/// Monotonic counts of what drains did, for `flush()` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Delivered (2xx).
    pub delivered: u32,
    /// Already recorded (409, proven).
    pub duplicates: u32,
    /// Set aside as dead letters.
    pub failed: u32,
    /// Handed to a Cloudflare Queue.
    pub handed_over: u32,
}

impl Engine {
    /// A new engine for validated `opts`. With a queue it asks for the store at once.
    pub fn new(opts: Options, env: Env, now: f64) -> Engine {
        let off = opts.queue == QueueMode::Off;
        let mut e = Engine {
            rng: env.seed | 1,
            opts,
            env,
            now,
            out: alloc::collections::VecDeque::new(),
            next_id: 1,
            store: if off {
                StorePhase::Off
            } else {
                StorePhase::Opening
            },
            spilled: KeySet::default(),
            spill_used: false,
            fallback_reported: false,
            undeleted: KeySet::default(),
            busy_cache: None,
            deleting: IdMap::default(),
            seq: 0.0,
            clock: Clock::default(),
            wake_sent: None,
            hold_until: 0.0,
            last_batch_at: f64::NEG_INFINITY,
            offline: false,
            exiting: false,
            keepalive_bytes: 0,
            closed: false,
            calls: IdMap::default(),
            call_keys: KeySet::default(),
            shared_keys: KeySet::default(),
            waiting: IdMap::default(),
            sent_times: IdMap::default(),
            drain: drain::Drain::default(),
            admin: IdMap::default(),
            held_customers: Vec::new(),
            recent: Recent::default(),
            totals: Totals::default(),
            sleepers: Vec::new(),
            mono: f64::NEG_INFINITY,
            mono_seen: false,
            last_op: 0,
            quiet: false,
        };
        if !off {
            e.out.push_back(Command::Open);
        }
        e
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// What validation bounds timestamps by: the later of the local clock and the server's as
    /// far as the engine knows (a stale `Date` can only make the estimate lag, never lead).
    pub fn server_now(&self, now: f64) -> f64 {
        now.max(self.clock.server_now(now))
    }

    /// What the drains did so far.
    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// The next command to carry out, if any.
    pub fn poll(&mut self) -> Option<Command> {
        self.out.pop_front()
    }

    /// Feeds one input at local time `now` (`Date.now()`).
    pub fn handle(&mut self, input: Input, now: f64) {
        let mono = if self.mono_seen { self.mono } else { now };
        self.handle_at(input, now, mono);
    }

    /// [`Engine::handle`] with a monotonic clock too (`performance.now()` plus its origin): it
    /// tells how long a write took even when the wall clock was set back meanwhile.
    pub fn handle_at(&mut self, input: Input, now: f64, mono: f64) {
        // The wall clock as it is (tabs share it): set back, it goes back here too, and every
        // stored time is judged against what the other tabs see.
        if now.is_finite() {
            self.now = now;
        }
        if mono.is_finite() && mono >= self.mono {
            self.mono = mono;
            self.mono_seen = true;
        }
        match input {
            Input::Track {
                call,
                event,
                offline,
                defer,
            } => {
                self.offline = offline;
                track::start(self, call, event, defer);
            }
            Input::Flush { call } => drain::flush(self, call),
            Input::Pending { call } => admin::pending(self, call),
            Input::DeadLetters { call } => admin::dead_letters(self, call),
            Input::Discard { call, keys } => admin::discard(self, call, keys),
            Input::RetryDead { call, keys } => admin::retry_dead(self, call, keys),
            Input::Opened {
                durable,
                fallback,
                max_seq,
            } => {
                if max_seq.is_finite() {
                    self.seq = self.seq.max(max_seq);
                }
                // A memory store that holds nothing, not even a dead letter, has no leftovers
                // of an earlier tracker to replay: no pass over it (~0.5 ms of a Worker's first
                // request, code run for the first time). Unknown (NaN): a pass.
                let leftovers = durable || max_seq != 0.0;
                self.opened(durable, fallback, leftovers)
            }
            Input::Stored { id, result } => self.stored(id, result),
            Input::Replied { id, reply } => self.replied(id, reply),
            Input::HandedOver { id, result } => self.handed_over(id, result),
            Input::Locked { granted } => drain::locked(self, granted),
            Input::Timer => self.timer(),
            Input::Online => {
                self.offline = false;
                drain::start(self, true);
            }
            Input::Offline => self.offline = true,
            Input::Hidden => drain::start(self, true),
            Input::PageHide => {
                self.exiting = true;
                drain::start(self, true);
            }
            Input::Remote => self.schedule(self.now + 200.0),
            Input::Close => self.close(),
        }
        self.rearm();
    }

    // ---- plumbing ------------------------------------------------------------------------

    fn id(&mut self) -> Id {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// A uniform number in `[0, 1)` (splitmix64, seeded by the driver).
    fn rand01(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn emit(&mut self, n: Notice) {
        if !self.quiet {
            self.out.push_back(Command::Emit(n));
        }
    }

    fn resolve(&mut self, call: Id, result: Result<Outcome, crate::error::TrackError>) {
        self.out.push_back(Command::Resolve { call, result });
    }

    /// Makes sure a drain runs at `at` (local ms) or earlier.
    fn schedule(&mut self, at: f64) {
        if self.closed || self.store == StorePhase::Off {
            return;
        }
        let at = at.max(self.now);
        self.drain.due_at = Some(self.drain.due_at.map_or(at, |d| d.min(at)));
    }

    /// Tells the driver when to wake the engine next, if that changed.
    fn rearm(&mut self) {
        let mut next: Option<f64> = None;
        let mut take = |t: f64| next = Some(next.map_or(t, |n: f64| n.min(t)));
        if !self.closed {
            if let Some(d) = self.drain.due_at {
                take(d);
            }
        }
        if let Some(t) = self.drain.waiting_until() {
            take(t);
        }
        let calls = &self.calls;
        self.sleepers
            .retain(|(t, id)| calls.get(id).and_then(|c| c.sleeping_until()) == Some(*t));
        for (t, _) in &self.sleepers {
            take(*t);
        }
        if next != self.wake_sent {
            self.wake_sent = next;
            self.out.push_back(Command::Wake(next));
        }
    }

    fn timer(&mut self) {
        // The driver passes a time no earlier than the wake-up it was asked for (in Workers,
        // `Date.now()` stands still within a request), so due work is due.
        self.wake_sent = None;
        let now = self.now;
        let calls = &self.calls;
        let due: Vec<Id> = self
            .sleepers
            .iter()
            .filter(|(t, id)| {
                *t <= now && calls.get(id).and_then(|c| c.sleeping_until()) == Some(*t)
            })
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            track::wake(self, id);
        }
        drain::timer(self);
        if self.drain.due_at.is_some_and(|d| d <= now) {
            self.drain.due_at = None;
            drain::start(self, false);
        }
    }

    fn opened(&mut self, durable: bool, fallback: Option<String>, leftovers: bool) {
        if self.store != StorePhase::Opening {
            return;
        }
        if self.closed {
            // close() came first: release what the driver just opened (a database left open
            // would block its deletion).
            self.store = StorePhase::Closed;
            self.out.push_back(Command::CloseStore);
            return;
        }
        self.store = StorePhase::Open { durable };
        if let Some(why) = fallback {
            self.report_fallback(&why);
        }
        let waiting: Vec<Id> = self
            .calls
            .iter()
            .filter(|(_, c)| c.waits_for_store())
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            track::store_ready(self, id);
        }
        drain::store_ready(self);
        admin::store_ready(self);
        // Leftovers of an earlier page or process: try them all now.
        if leftovers {
            drain::start(self, true);
        }
    }

    fn report_fallback(&mut self, why: &str) {
        if core::mem::replace(&mut self.fallback_reported, true) {
            return;
        }
        let mut m = String::from("events are queued in memory only: ");
        m.push_str(why);
        self.emit(Notice {
            message: Some(m),
            ..Notice::new("storage_fallback")
        });
    }

    fn stored(&mut self, id: Id, result: Result<Stored, String>) {
        self.last_op = id;
        if let Some(keys) = self.deleting.remove(&id) {
            if result.is_ok() {
                for k in &keys {
                    self.undeleted.remove(k);
                }
            }
        }
        match self.waiting.remove(&id) {
            Some(Waiter::Call(c)) => track::stored(self, c, result),
            Some(Waiter::Drain) => drain::stored(self, id, result),
            Some(Waiter::Admin(a)) => admin::stored(self, a, result),
            Some(Waiter::Cleanup) | None => {}
        }
    }

    fn replied(&mut self, id: Id, reply: Reply) {
        let sent = self.sent_times.remove(&id);
        if let (Reply::Answer(a), Some(sent)) = (&reply, sent) {
            if let Some(d) = a.date {
                self.clock.observe_round_trip(d, sent, self.now);
            }
        }
        match self.waiting.remove(&id) {
            Some(Waiter::Call(c)) => track::replied(self, c, id, reply),
            Some(Waiter::Drain) => drain::replied(self, id, reply),
            _ => {}
        }
    }

    fn handed_over(&mut self, id: Id, result: Result<(), String>) {
        match self.waiting.remove(&id) {
            Some(Waiter::Call(c)) => track::handed_over(self, c, result),
            Some(Waiter::Drain) => drain::handed_over(self, result),
            _ => {}
        }
    }

    fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.drain.due_at = None;
        match self.store {
            StorePhase::Open { .. } => {
                self.out.push_back(Command::CloseStore);
                self.store = StorePhase::Closed;
            }
            // Still opening: closed when the driver reports it open (see `opened`).
            StorePhase::Opening | StorePhase::Off | StorePhase::Closed => {}
        }
        drain::close(self);
    }
}
