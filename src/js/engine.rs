//! The tracker's engine: real-time delivery, the durable queue and its drain. Decisions come
//! from the pure core (`retry::decide`, `queue::{plan, fate}`); this file does the I/O —
//! `fetch`, the store, timers, events — and keeps no `RefCell` borrow across an `.await`.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::http::{self, Reply, Send};
use super::store::{Kind, Store};
use super::sys;
use crate::error::{Code, TrackError};
use crate::event::Event;
use crate::options::{DrainMode, Options, QueueMode};
use crate::queue::{self, Clock, DeadLetter, Fate, Record};
use crate::retry::{decide, Next, Outcome};
use crate::value::push_u64;

/// How long an event being sent in real time is reserved for that call before a drain (in
/// this or another tab) may pick it up: covers the inline attempts of a page that died.
const LEASE_MS: f64 = 60_000.0;
/// What a queued event says when it was tracked offline.
const OFFLINE: &str = "the device is offline";

/// Counts one `flush()` reports.
#[derive(Default, Clone, Copy)]
pub struct Summary {
    pub delivered: u32,
    pub duplicates: u32,
    pub failed: u32,
}

struct State {
    store: Option<Rc<Store>>,
    clock: Clock,
    seq: f64,
    in_flight: Vec<String>,
    /// Keys the replay pass under way has picked (reserved as a whole, released as a whole).
    pass: Vec<String>,
    listeners: Vec<Function>,
    timer: Option<(JsValue, f64)>,
    draining: Option<Promise>,
    closed: bool,
    fallback_reported: bool,
    /// Bytes of `keepalive` requests in flight (browsers allow 64 KiB in all).
    keepalive_bytes: usize,
    /// The server asked for quiet (`Retry-After` on a 429/503) until this local time: no
    /// drain sends before it, forced or not.
    hold_until: f64,
    /// When the last `batch_track` request left: Autumn allows 10 a second.
    last_batch_at: f64,
    /// The page is going away: replay with `keepalive` requests (within the browser's budget).
    exiting: bool,
    /// Tells other tabs when this one queues an event.
    channel: Option<super::store::Channel>,
    /// A drain held records back behind a real-time send of this tab: when a `track()` call
    /// settles, drain again (nothing else would wake those records up).
    recheck: bool,
}

/// Least time between two `batch_track` requests (Autumn: 10 per second per organisation).
const BATCH_SPACING_MS: f64 = 110.0;

/// Share of the browser's 64 KiB keepalive budget this tracker uses.
const KEEPALIVE_BUDGET: usize = 48 * 1024;

type BusyFn = dyn FnMut(String) -> bool;

/// Shared by the exported `AutumnTracker` and every pending call, timer and listener.
pub struct Inner {
    pub opts: Options,
    track_url: String,
    batch_url: String,
    st: RefCell<State>,
    ready: RefCell<Option<Promise>>,
    // Kept alive while the tracker lives; dropped (and unregistered) by close().
    timer_cb: RefCell<Option<Closure<dyn FnMut()>>>,
    online_cb: RefCell<Option<Closure<dyn FnMut()>>>,
    exit_cb: RefCell<Option<Closure<dyn FnMut()>>>,
    remote_cb: RefCell<Option<Closure<dyn FnMut()>>>,
    /// `busy(key)` for the store's bound: is this tab sending it right now?
    busy_cb: RefCell<Option<Closure<BusyFn>>>,
}

impl Inner {
    pub fn new(opts: Options, on_event: Option<Function>) -> Rc<Inner> {
        let inner = Rc::new(Inner {
            track_url: opts.track_url(),
            batch_url: opts.batch_url(),
            opts,
            st: RefCell::new(State {
                store: None,
                clock: Clock::default(),
                seq: 0.0,
                in_flight: Vec::new(),
                pass: Vec::new(),
                listeners: on_event.into_iter().collect(),
                timer: None,
                draining: None,
                closed: false,
                fallback_reported: false,
                keepalive_bytes: 0,
                hold_until: 0.0,
                last_batch_at: 0.0,
                exiting: false,
                channel: None,
                recheck: false,
            }),
            ready: RefCell::new(None),
            timer_cb: RefCell::new(None),
            online_cb: RefCell::new(None),
            exit_cb: RefCell::new(None),
            remote_cb: RefCell::new(None),
            busy_cb: RefCell::new(None),
        });
        if inner.opts.queue != QueueMode::Off {
            Inner::start(&inner);
        }
        inner
    }

    /// Opens the store in the background, picks up a previous page's leftovers, and listens
    /// for the network coming back.
    fn start(this: &Rc<Inner>) {
        let weak = Rc::downgrade(this);
        let cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                // Back online, or the page is going away: whatever the backoff said, now.
                Inner::spawn_drain(&inner, true);
            }
        });
        let weak = Rc::downgrade(this);
        let timer_cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.st.borrow_mut().timer = None;
                Inner::spawn_drain(&inner, false);
            }
        });
        // Back online, or the page is being hidden/closed: deliver what is queued now.
        for kind in ["online", "visibilitychange"] {
            sys::add_global_listener(kind, cb.as_ref().unchecked_ref());
        }
        *this.online_cb.borrow_mut() = Some(cb);
        let weak = Rc::downgrade(this);
        let exit = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                // Requests that outlive the page, while the keepalive budget allows.
                inner.st.borrow_mut().exiting = true;
                Inner::spawn_drain(&inner, true);
            }
        });
        sys::add_global_listener("pagehide", exit.as_ref().unchecked_ref());
        *this.exit_cb.borrow_mut() = Some(exit);
        // Another tab queued something: this one may be the one holding the queue.
        let weak = Rc::downgrade(this);
        let remote = Closure::<dyn FnMut()>::new(move || {
            if let Some(inner) = weak.upgrade() {
                Inner::schedule(&inner, sys::now_ms() + 200.0);
            }
        });
        *this.remote_cb.borrow_mut() = Some(remote);
        let weak = Rc::downgrade(this);
        let busy = Closure::<BusyFn>::new(move |k: String| {
            // Unknown (gone, or state in use) counts as busy: never set aside by mistake.
            weak.upgrade().map_or(true, |inner| {
                inner
                    .st
                    .try_borrow()
                    .map_or(true, |st| st.in_flight.contains(&k) || st.pass.contains(&k))
            })
        });
        *this.busy_cb.borrow_mut() = Some(busy);
        *this.timer_cb.borrow_mut() = Some(timer_cb);

        let weak = Rc::downgrade(this);
        let kind = match this.opts.queue {
            QueueMode::Memory => Kind::Memory,
            QueueMode::IndexedDb => Kind::IndexedDb,
            _ => Kind::Auto,
        };
        let name = this.opts.queue_name.clone();
        let ready = sys::promise(async move {
            let (store, fallback) = Store::open(kind, &name).await;
            let seq = store.max_seq().await.unwrap_or(0.0);
            let Some(inner) = weak.upgrade() else {
                store.close();
                return Ok(JsValue::UNDEFINED);
            };
            inner.bound(&store);
            {
                let mut st = inner.st.borrow_mut();
                st.store = Some(Rc::new(store));
                st.seq = st.seq.max(seq);
            }
            if let Some(reason) = fallback {
                inner.report_fallback(&reason);
            }
            // Tabs share a durable queue: tell each other when one queues something. (A memory
            // queue is this process's alone.)
            let durable = inner
                .st
                .borrow()
                .store
                .as_ref()
                .is_some_and(|s| s.is_durable());
            if durable {
                let mut name = String::from("autumn-track:");
                name.push_str(&inner.opts.queue_name);
                let channel =
                    inner.remote_cb.borrow().as_ref().and_then(|cb| {
                        super::store::open_channel(&name, cb.as_ref().unchecked_ref())
                    });
                inner.st.borrow_mut().channel = channel;
            }
            // Leftovers from an earlier page or process: try them all now.
            Inner::spawn_drain(&inner, true);
            Ok(JsValue::UNDEFINED)
        });
        *this.ready.borrow_mut() = Some(ready);
    }

    /// Gives `store` the queue's bound (`maxQueueSize`) and this tab's `busy(key)`.
    fn bound(&self, store: &Store) {
        if let Some(cb) = self.busy_cb.borrow().as_ref() {
            store.limit(
                self.opts.queue_policy.max_queue_size,
                cb.as_ref().unchecked_ref(),
            );
        }
    }

    fn report_fallback(&self, reason: &str) {
        let first = !core::mem::replace(&mut self.st.borrow_mut().fallback_reported, true);
        if first {
            let mut msg = String::from("events are queued in memory only: ");
            msg.push_str(reason);
            self.emit(
                "storage_fallback",
                None,
                &[("message", &JsValue::from_str(&msg))],
            );
        }
    }

    async fn store(&self) -> Option<Rc<Store>> {
        let ready = self.ready.borrow().clone();
        if let Some(p) = ready {
            let _ = JsFuture::from(p).await;
        }
        self.st.borrow().store.clone()
    }

    /// Replaces a failing durable store by memory, once, and says so.
    async fn fall_back(&self, why: &str) -> Rc<Store> {
        let (mem, _) = Store::open(Kind::Memory, &self.opts.queue_name).await;
        let mem = Rc::new(mem);
        self.bound(&mem);
        let old = self.st.borrow_mut().store.replace(Rc::clone(&mem));
        if let Some(old) = old {
            old.close();
        }
        self.report_fallback(why);
        mem
    }

    // ---- events -------------------------------------------------------------------------

    pub fn add_listener(&self, f: Function) {
        self.st.borrow_mut().listeners.push(f);
    }

    pub fn remove_listener(&self, f: &Function) {
        self.st.borrow_mut().listeners.retain(|g| g != f);
    }

    /// Calls every listener with `{ type, idempotencyKey?, …extra }`. A listener that throws
    /// is ignored. Never carries the secret key.
    fn emit(&self, kind: &str, key: Option<&str>, extra: &[(&str, &JsValue)]) {
        let listeners = self.st.borrow().listeners.clone();
        if listeners.is_empty() {
            return;
        }
        let o = Object::new();
        set(&o, "type", &JsValue::from_str(kind));
        if let Some(k) = key {
            set(&o, "idempotencyKey", &JsValue::from_str(k));
        }
        for (k, v) in extra {
            set(&o, k, v);
        }
        for f in listeners {
            let _ = f.call1(&JsValue::UNDEFINED, &o);
        }
    }

    // ---- real time ----------------------------------------------------------------------

    /// Delivers `ev` now, or queues it durably when it cannot be delivered now.
    pub async fn track(this: Rc<Inner>, ev: Event) -> Result<JsValue, TrackError> {
        // After close() there is no drain to replay a queued event: send without a queue, so a
        // failure rejects (`unavailable`, with the key) instead of queuing into the void.
        if this.opts.queue == QueueMode::Off || this.st.borrow().closed {
            return this
                .deliver_inline(&ev.idempotency_key, &crate::event::wire_body(&ev), None)
                .await;
        }
        let store = match this.store().await {
            Some(s) => s,
            None => this.fall_back("the queue could not be opened").await,
        };
        let now = sys::now_ms();
        // Time-based, so events of several tabs (each with its own counter) still sort in the
        // order they were tracked; +1 keeps it strictly increasing within this tab.
        let seq = {
            let mut st = this.st.borrow_mut();
            st.seq = (st.seq + 1.0).max(now);
            st.seq
        };
        let mut rec = queue::new_record(&ev, seq, now);
        // Offline, the record is written once, already due (one IndexedDB write, not two);
        // online, it is leased to this call until its send has an answer.
        let offline = sys::is_offline();
        rec.next_at = if offline { now } else { now + LEASE_MS };
        if offline {
            rec.last_error = Some(String::from(OFFLINE));
        }
        // Durable before the first send: whatever happens to this page, the next visit's
        // replay carries the same key. Beyond maxQueueSize the oldest are set aside in the
        // same transaction.
        let one = core::slice::from_ref(&rec);
        let (store, evicted) = match store.add(one).await {
            Ok(ev) => (store, ev),
            Err(e) => {
                let mem = this.fall_back(&e).await;
                let ev = mem.add(one).await.unwrap_or_default();
                (mem, ev)
            }
        };
        for k in &evicted {
            this.emit(
                "evicted",
                Some(k),
                &[("reason", &JsValue::from_str("queue_full"))],
            );
        }
        if offline {
            return Ok(this.queued(&store, rec, "offline", OFFLINE, false).await);
        }
        this.st.borrow_mut().in_flight.push(rec.key.clone());
        super::panic::test_point("track");
        let body = queue::body_for(&rec, &Clock::default(), now, false);
        let r = this.deliver_inline(&rec.key, &body, Some(&rec)).await;
        let key = rec.key.clone();
        // The key stays in flight until the stored copy says what happened (deleted, or
        // rescheduled): a drain in between must not send it again.
        let out = match r {
            Err(e) if e.code == Code::Unavailable => {
                let (reason, detail) = unavailable_reason(&e);
                rec.attempts = rec.attempts.saturating_add(1);
                rec.next_at = match queue::fate(
                    Outcome::Network,
                    rec.attempts,
                    sys::now_ms(),
                    sys::random01(),
                    &this.opts.queue_policy,
                ) {
                    Fate::Retry { next_at } => next_at,
                    _ => sys::now_ms(),
                };
                Ok(this.queued(&store, rec, reason, &detail, true).await)
            }
            other => {
                // Delivered, duplicate or refused for good: the caller has the answer.
                let _ = store.delete(core::slice::from_ref(&rec.key)).await;
                if let Ok(v) = &other {
                    let status =
                        Reflect::get(v, &JsValue::from_str("status")).unwrap_or(JsValue::UNDEFINED);
                    self_emit_delivered(
                        &this,
                        &rec.key,
                        status.as_string().as_deref() == Some("duplicate"),
                    );
                }
                other
            }
        };
        let recheck = {
            let mut st = this.st.borrow_mut();
            if let Some(i) = st.in_flight.iter().position(|k| *k == key) {
                st.in_flight.swap_remove(i);
            }
            core::mem::take(&mut st.recheck)
        };
        if recheck {
            Inner::schedule(&this, sys::now_ms());
        }
        out
    }

    async fn queued(
        self: &Rc<Self>,
        store: &Store,
        mut rec: Record,
        reason: &str,
        detail: &str,
        update: bool,
    ) -> JsValue {
        if update {
            rec.last_error = Some(String::from(detail));
            let _ = store.update(core::slice::from_ref(&rec)).await;
        }
        let reason_js = JsValue::from_str(reason);
        self.emit(
            "queued",
            Some(&rec.key),
            &[
                ("reason", &reason_js),
                ("message", &JsValue::from_str(detail)),
            ],
        );
        Inner::schedule(self, rec.next_at);
        if let Some(c) = &self.st.borrow().channel {
            c.post();
        }
        let o = Object::new();
        set(&o, "status", &JsValue::from_str("queued"));
        set(&o, "idempotencyKey", &JsValue::from_str(&rec.key));
        set(&o, "reason", &reason_js);
        o.into()
    }

    /// Sends one event with in-call retries (`maxRetries`) for 5xx/429. With a queue, network
    /// errors and timeouts stop at once (the queue takes over); without one they are retried.
    async fn deliver_inline(
        &self,
        key: &str,
        body: &str,
        queued: Option<&Record>,
    ) -> Result<JsValue, TrackError> {
        let mut attempt: u32 = 0;
        // In a browser, a real-time send outlives the page (keepalive) while the budget
        // allows: a tab closed right after track() still delivers, and the stored copy's
        // replay on the next visit is then a harmless 409.
        let keepalive = queued.is_some() && sys::is_browser() && {
            let mut st = self.st.borrow_mut();
            let ok = st.keepalive_bytes + body.len() <= KEEPALIVE_BUDGET;
            if ok {
                st.keepalive_bytes += body.len();
            }
            ok
        };
        let r = self
            .deliver_attempts(key, body, queued.is_some(), keepalive, &mut attempt)
            .await;
        if keepalive {
            let mut st = self.st.borrow_mut();
            st.keepalive_bytes = st.keepalive_bytes.saturating_sub(body.len());
        }
        r
    }

    async fn deliver_attempts(
        &self,
        key: &str,
        body: &str,
        queued: bool,
        keepalive: bool,
        attempt: &mut u32,
    ) -> Result<JsValue, TrackError> {
        let opts = &self.opts;
        loop {
            let attempt_no = *attempt;
            let reply = http::attempt(
                opts,
                Send {
                    url: &self.track_url,
                    body,
                    key: Some(key),
                    keepalive,
                },
            )
            .await;
            self.observe(&reply);
            let outcome = match &reply {
                Reply::Network(_) => Outcome::Network,
                Reply::Timeout => Outcome::Timeout,
                Reply::Unsendable(m) => {
                    let mut msg = String::from("the request could not be built: ");
                    msg.push_str(clip(m, 300));
                    return Err(TrackError::options("baseUrl", msg).with_key(key));
                }
                Reply::Answer {
                    status,
                    retry_after,
                    ..
                } => Outcome::Status {
                    status: *status,
                    retry_after: retry_after.as_deref(),
                },
            };
            let mut next = decide(
                outcome,
                attempt_no,
                &opts.retry,
                sys::now_ms(),
                sys::random01(),
            );
            if queued && matches!(outcome, Outcome::Network | Outcome::Timeout) {
                next = Next::GiveUp;
            }
            *attempt += 1;
            let attempt = *attempt;
            match (next, &reply) {
                (Next::Delivered, Reply::Answer { text, .. }) => {
                    let response = sys::json_parse(text).unwrap_or(JsValue::NULL);
                    return Ok(result("delivered", key, attempt, Some(response)));
                }
                (Next::Duplicate, _) => return Ok(result("duplicate", key, attempt, None)),
                (Next::RetryIn(ms), _) => sys::sleep(ms).await,
                (Next::Permanent, Reply::Answer { status, text, .. }) => {
                    return Err(refusal(*status, text, key));
                }
                (_, reply) => return Err(unavailable(reply, attempt, opts.timeout_ms, key)),
            }
        }
    }

    fn observe(&self, reply: &Reply) {
        if let Reply::Answer { date: Some(d), .. } = reply {
            if let Some(ms) = crate::retry::parse_http_date(d) {
                self.st.borrow_mut().clock.observe(ms, sys::now_ms());
            }
        }
    }

    // ---- the drain ----------------------------------------------------------------------

    /// Makes sure a drain runs at `at` (local ms) or earlier.
    pub fn schedule(this: &Rc<Inner>, at: f64) {
        let now = sys::now_ms();
        let mut st = this.st.borrow_mut();
        if st.closed {
            return;
        }
        if let Some((_, when)) = &st.timer {
            if *when <= at {
                return;
            }
        }
        if let Some((id, _)) = st.timer.take() {
            sys::clear_timeout(&id);
        }
        let delay = (at - now).clamp(0.0, 2_147_483_000.0) as i32;
        if let Some(cb) = this.timer_cb.borrow().as_ref() {
            // No timer outside a request in Workers: the next track() or flush() drains.
            if let Some(id) = sys::set_timeout(cb.as_ref().unchecked_ref(), delay) {
                st.timer = Some((id, at));
            }
        }
    }

    fn spawn_drain(this: &Rc<Inner>, force: bool) {
        let inner = Rc::clone(this);
        let _ = sys::promise(async move {
            let _ = Inner::flush(inner, force).await;
            Ok(JsValue::UNDEFINED)
        });
    }

    /// Delivers what is due; joins a drain already running in this tab. Resolves with what it
    /// did and what remains.
    pub async fn flush(this: Rc<Inner>, force: bool) -> Result<(Summary, u32), TrackError> {
        if this.opts.queue == QueueMode::Off {
            return Ok((Summary::default(), 0));
        }
        let running = this.st.borrow().draining.clone();
        if let Some(p) = running {
            let _ = JsFuture::from(p).await;
        }
        let inner = Rc::clone(&this);
        let summary = Rc::new(RefCell::new(Summary::default()));
        let out = Rc::clone(&summary);
        let job = sys::promise(async move {
            inner.drain_with_lock(&out, force).await;
            Ok(JsValue::UNDEFINED)
        });
        this.st.borrow_mut().draining = Some(job.clone());
        let _ = JsFuture::from(job).await;
        this.st.borrow_mut().draining = None;
        let remaining = match this.store().await {
            Some(s) => s.count().await.unwrap_or(0),
            None => 0,
        };
        let s = *summary.borrow();
        Ok((s, remaining))
    }

    /// One tab drains at a time: the Web Locks API where present (browsers); elsewhere (Node,
    /// Workers) there is only this process.
    async fn drain_with_lock(self: &Rc<Self>, summary: &Rc<RefCell<Summary>>, force: bool) {
        // Open the store first: a flush() right after `new AutumnTracker()` must not drain an
        // IndexedDB queue without the tab lock because the store had not opened yet.
        let Some(store) = self.store().await else {
            return;
        };
        if store.is_durable() {
            let mut lock_name = String::from("autumn-track:");
            lock_name.push_str(&self.opts.queue_name);
            let inner = Rc::clone(self);
            let out = Rc::clone(summary);
            let run = Closure::once(move || -> Promise {
                sys::promise(async move {
                    inner.drain(&out, force).await;
                    Ok(JsValue::UNDEFINED)
                })
            });
            let ran = JsFuture::from(super::store::exclusive(
                &lock_name,
                run.as_ref().unchecked_ref(),
            ))
            .await;
            if ran.ok().and_then(|v| v.as_bool()) == Some(false) {
                // Another tab is draining and will deliver these events; look again shortly
                // in case it finished before seeing ours.
                Inner::schedule(self, sys::now_ms() + 2_000.0);
            }
            return;
        }
        self.drain(summary, force).await;
    }

    async fn drain(self: &Rc<Self>, summary: &Rc<RefCell<Summary>>, mut force: bool) {
        let Some(store) = self.store().await else {
            return;
        };
        // A few passes: events tracked during a pass are picked up by the next one.
        for _ in 0..8 {
            if self.st.borrow().closed || sys::is_offline() {
                return;
            }
            let hold = self.st.borrow().hold_until;
            if hold > sys::now_ms() {
                // The server said when to come back; even a forced drain waits for it.
                Inner::schedule(self, hold);
                return;
            }
            let Ok(loaded) = store.load().await else {
                return;
            };
            let now = sys::now_ms();
            let mut records = Vec::with_capacity(loaded.len());
            let mut corrupt = Vec::new();
            for item in loaded {
                match item {
                    Ok(r) => records.push(r),
                    Err((key, why)) => corrupt.push(dead(
                        Record::unreadable(key),
                        "corrupt_record",
                        &why,
                        None,
                        now,
                    )),
                }
            }
            if !corrupt.is_empty() && store.move_to_dead(&corrupt).await.is_ok() {
                for d in &corrupt {
                    summary.borrow_mut().failed += 1;
                    self.emit_dead(d);
                }
            }
            {
                // Records being sent right now (by track() or this drain) are not sent again,
                // and still hold back their customer's later events.
                let mut st = self.st.borrow_mut();
                let mut held = false;
                for r in records.iter_mut().filter(|r| st.in_flight.contains(&r.key)) {
                    r.attempts = 0;
                    r.next_at = f64::INFINITY;
                    held = true;
                }
                st.recheck |= held;
            }
            let plan = queue::plan_with(&records, now, &self.opts.queue_policy, force);
            // Only the first pass ignores backoff: what fails again now waits its turn.
            force = false;
            if !plan.expired.is_empty() {
                let expired: Vec<DeadLetter> = plan
                    .expired
                    .iter()
                    .filter_map(|&i| records.get(i))
                    .map(|r| {
                        dead(
                            r.clone(),
                            "expired",
                            "older than maxEventAgeMs: past Autumn's idempotency window a replay could be counted twice",
                            None,
                            now,
                        )
                    })
                    .collect();
                if store.move_to_dead(&expired).await.is_ok() {
                    for d in &expired {
                        summary.borrow_mut().failed += 1;
                        self.emit(
                            "evicted",
                            Some(&d.record.key),
                            &[("reason", &JsValue::from_str("expired"))],
                        );
                    }
                }
            }
            if plan.send.is_empty() {
                if let Some(at) = plan.wake_at {
                    Inner::schedule(self, at);
                }
                return;
            }
            let due: Vec<Record> = plan
                .send
                .iter()
                .filter_map(|&i| records.get(i).cloned())
                .collect();
            let more_later = plan.wake_at;
            // Planned records are busy until this pass is done with them: a concurrent
            // track() must not evict one the drain is about to send.
            self.st.borrow_mut().pass = due.iter().map(|r| r.key.clone()).collect();
            super::panic::test_point("drain");
            let stopped = match self.opts.drain {
                DrainMode::Batch => self.send_batches(&store, due, summary).await,
                DrainMode::Single => self.send_singles(&store, due, summary).await,
            };
            self.st.borrow_mut().pass.clear();
            if let Some(at) = more_later {
                Inner::schedule(self, at);
            }
            if stopped {
                return;
            }
        }
        // Still busy after several passes: come back shortly rather than spin.
        Inner::schedule(self, sys::now_ms() + 100.0);
    }

    /// Sends `due` in chunks through `batch_track`; a chunk refused for good is split until
    /// the bad event is alone (then sent singly, for its own answer). Returns true when the
    /// drain should stop (network down, server struggling).
    async fn send_batches(
        self: &Rc<Self>,
        store: &Store,
        due: Vec<Record>,
        summary: &Rc<RefCell<Summary>>,
    ) -> bool {
        let size = self.opts.queue_policy.batch_size.max(1);
        let mut chunks: Vec<Vec<Record>> = Vec::new();
        let mut rest = due;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(size));
            chunks.push(rest);
            rest = tail;
        }
        chunks.reverse();
        while let Some(chunk) = chunks.pop() {
            if chunk.len() == 1 {
                if self.send_singles(store, chunk, summary).await {
                    return true;
                }
                continue;
            }
            let now = sys::now_ms();
            let clock = self.st.borrow().clock;
            let wait = self.st.borrow().last_batch_at + BATCH_SPACING_MS - now;
            if wait > 0.0 {
                sys::sleep(wait as u64).await;
            }
            self.st.borrow_mut().last_batch_at = sys::now_ms();
            let body = queue::batch_body(chunk.iter(), &clock, now);
            let reply = http::attempt(
                &self.opts,
                Send {
                    url: &self.batch_url,
                    body: &body,
                    key: None,
                    keepalive: self.exit_keepalive(body.len()),
                },
            )
            .await;
            self.observe(&reply);
            match &reply {
                Reply::Answer { status, .. } if (200..300).contains(status) => {
                    let keys: Vec<String> = chunk.iter().map(|r| r.key.clone()).collect();
                    let _ = store.delete(&keys).await;
                    summary.borrow_mut().delivered += keys.len() as u32;
                    for k in &keys {
                        self_emit_delivered(self, k, false);
                    }
                }
                Reply::Answer { status, .. }
                    if !crate::retry::is_retryable_status(*status) && *status != 409 =>
                {
                    // One bad event fails the whole batch: isolate it.
                    let mut a = chunk;
                    let b = a.split_off(a.len() / 2);
                    chunks.push(b);
                    chunks.push(a);
                }
                _ => {
                    self.reschedule(store, chunk, &reply).await;
                    return true;
                }
            }
        }
        false
    }

    /// One request per event, each with its own answer.
    async fn send_singles(
        self: &Rc<Self>,
        store: &Store,
        due: Vec<Record>,
        summary: &Rc<RefCell<Summary>>,
    ) -> bool {
        for (i, rec) in due.iter().enumerate() {
            let mut with_ts = true;
            let reply = loop {
                let now = sys::now_ms();
                let clock = self.st.borrow().clock;
                let body = queue::body_for(rec, &clock, now, with_ts);
                let reply = http::attempt(
                    &self.opts,
                    Send {
                        url: &self.track_url,
                        body: &body,
                        key: Some(&rec.key),
                        keepalive: self.exit_keepalive(body.len()),
                    },
                )
                .await;
                self.observe(&reply);
                if let Reply::Answer { status, text, .. } = &reply {
                    let (_, message) = server_error(text);
                    if with_ts
                        && rec.ts.is_none()
                        && queue::is_future_timestamp_refusal(*status, message.as_deref())
                    {
                        // The client clock is ahead of Autumn's: resend once without it.
                        with_ts = false;
                        continue;
                    }
                }
                break reply;
            };
            let outcome = outcome_of(&reply);
            let attempts = rec.attempts.saturating_add(1);
            match queue::fate(
                outcome,
                attempts,
                sys::now_ms(),
                sys::random01(),
                &self.opts.queue_policy,
            ) {
                Fate::Done => {
                    let _ = store.delete(core::slice::from_ref(&rec.key)).await;
                    let dup = matches!(outcome, Outcome::Status { status: 409, .. });
                    if dup {
                        summary.borrow_mut().duplicates += 1;
                    } else {
                        summary.borrow_mut().delivered += 1;
                    }
                    self_emit_delivered(self, &rec.key, dup);
                }
                Fate::Dead => {
                    let (code, status, message) = match &reply {
                        Reply::Answer { status, text, .. } => {
                            let e = refusal(*status, text, &rec.key);
                            (String::from(e.code.as_str()), Some(*status), e.message)
                        }
                        _ => (String::from("http_error"), None, String::from("refused")),
                    };
                    let d = dead(rec.clone(), &code, &message, status, sys::now_ms());
                    if store.move_to_dead(core::slice::from_ref(&d)).await.is_ok() {
                        summary.borrow_mut().failed += 1;
                        self.emit_dead(&d);
                    }
                }
                Fate::Retry { .. } => {
                    let rest: Vec<Record> =
                        due.get(i..).map(<[Record]>::to_vec).unwrap_or_default();
                    self.reschedule(store, rest, &reply).await;
                    return true;
                }
            }
        }
        false
    }

    /// On page exit, small replays go out as `keepalive` requests (which outlive the page; the
    /// stored copy stays until an answer, so at worst the next visit resends it for a 409).
    fn exit_keepalive(&self, len: usize) -> bool {
        self.st.borrow().exiting && len <= KEEPALIVE_BUDGET
    }

    /// Records a failed attempt on each of `recs` and plans their next try.
    async fn reschedule(self: &Rc<Self>, store: &Store, mut recs: Vec<Record>, reply: &Reply) {
        let outcome = outcome_of(reply);
        let now = sys::now_ms();
        if let Reply::Answer {
            retry_after: Some(h),
            ..
        } = reply
        {
            if let Some(ms) = crate::retry::parse_retry_after(h, now) {
                let mut st = self.st.borrow_mut();
                st.hold_until = st.hold_until.max(now + ms.min(3_600_000) as f64);
            }
        }
        let detail = describe_reply(reply);
        let mut earliest = f64::INFINITY;
        for r in &mut recs {
            r.attempts = r.attempts.saturating_add(1);
            r.next_at = match queue::fate(
                outcome,
                r.attempts,
                now,
                sys::random01(),
                &self.opts.queue_policy,
            ) {
                Fate::Retry { next_at } => next_at,
                _ => now,
            };
            earliest = earliest.min(r.next_at);
            r.last_error = Some(detail.clone());
        }
        let _ = store.update(&recs).await;
        if let Some(r) = recs.first() {
            self.emit(
                "retrying",
                Some(&r.key),
                &[
                    ("message", &JsValue::from_str(&detail)),
                    ("count", &JsValue::from(recs.len() as u32)),
                ],
            );
        }
        if earliest.is_finite() {
            Inner::schedule(self, earliest);
        }
    }

    fn emit_dead(&self, d: &DeadLetter) {
        let mut extra: Vec<(&str, JsValue)> = vec![
            ("code", JsValue::from_str(&d.code)),
            ("message", JsValue::from_str(&d.message)),
        ];
        if let Some(s) = d.status {
            extra.push(("status", JsValue::from(s)));
        }
        let refs: Vec<(&str, &JsValue)> = extra.iter().map(|(k, v)| (*k, v)).collect();
        self.emit("dead_letter", Some(&d.record.key), &refs);
    }

    // ---- inspection ---------------------------------------------------------------------

    pub async fn pending(&self) -> JsValue {
        let counts = match self.store().await {
            Some(s) => s.pending().await.ok(),
            None => None,
        };
        let o = counts.unwrap_or_else(|| {
            let o = Object::new();
            set(&o, "queued", &JsValue::from(0));
            set(&o, "deadLetters", &JsValue::from(0));
            set(&o, "storage", &JsValue::from_str("off"));
            o.into()
        });
        let in_flight = {
            let st = self.st.borrow();
            (st.in_flight.len() + st.pass.len()) as u32
        };
        let queued = Reflect::get(&o, &JsValue::from_str("queued"))
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as u32;
        let o: Object = o.unchecked_into();
        set(
            &o,
            "queued",
            &JsValue::from(queued.saturating_sub(in_flight)),
        );
        set(&o, "inFlight", &JsValue::from(in_flight));
        o.into()
    }

    pub async fn dead_letters(&self) -> JsValue {
        let list = match self.store().await {
            Some(s) => s.dead_list().await.ok(),
            None => None,
        };
        list.unwrap_or_else(|| js_sys::Array::new().into())
    }

    pub async fn discard(&self, keys: &[String]) -> u32 {
        match self.store().await {
            Some(s) => s.delete_dead(keys).await.unwrap_or(0),
            None => 0,
        }
    }

    pub async fn retry_dead_letters(this: &Rc<Inner>, keys: Option<Vec<String>>) -> u32 {
        let Some(s) = this.store().await else {
            return 0;
        };
        let now = sys::now_ms();
        // A fresh window: the caller chose to resend them (see the README on expired letters).
        let min_created = now - this.opts.queue_policy.max_event_age_ms / 2.0;
        let n = s
            .revive_dead(keys.as_deref(), now, min_created)
            .await
            .unwrap_or(0);
        if n > 0 {
            Inner::schedule(this, now);
        }
        n
    }

    pub fn close(&self) {
        let mut st = self.st.borrow_mut();
        st.closed = true;
        if let Some((id, _)) = st.timer.take() {
            sys::clear_timeout(&id);
        }
        if let Some(s) = st.store.take() {
            s.close();
        }
        if let Some(c) = st.channel.take() {
            c.close_channel();
        }
        st.listeners.clear();
        drop(st);
        if let Some(cb) = self.online_cb.borrow_mut().take() {
            for kind in ["online", "visibilitychange"] {
                sys::remove_global_listener(kind, cb.as_ref().unchecked_ref());
            }
        }
        if let Some(cb) = self.exit_cb.borrow_mut().take() {
            sys::remove_global_listener("pagehide", cb.as_ref().unchecked_ref());
        }
        self.remote_cb.borrow_mut().take();
        self.timer_cb.borrow_mut().take();
    }
}

/// A tracker dropped without close() (its JS object was garbage-collected) must not leave a
/// timer or listener behind that would call into closures dropped with it.
impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

fn self_emit_delivered(inner: &Inner, key: &str, duplicate: bool) {
    inner.emit(
        "delivered",
        Some(key),
        &[("duplicate", &JsValue::from(duplicate))],
    );
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

fn outcome_of(reply: &Reply) -> Outcome<'_> {
    match reply {
        Reply::Network(_) | Reply::Unsendable(_) => Outcome::Network,
        Reply::Timeout => Outcome::Timeout,
        Reply::Answer {
            status,
            retry_after,
            ..
        } => Outcome::Status {
            status: *status,
            retry_after: retry_after.as_deref(),
        },
    }
}

fn describe_reply(reply: &Reply) -> String {
    let mut s = String::new();
    match reply {
        Reply::Network(m) => {
            s.push_str("network error: ");
            s.push_str(clip(m, 200));
        }
        Reply::Timeout => s.push_str("timeout"),
        Reply::Unsendable(m) => s.push_str(clip(m, 200)),
        Reply::Answer { status, text, .. } => {
            s.push_str("HTTP ");
            push_u64(&mut s, u64::from(*status));
            let (_, m) = server_error(text);
            let detail = m.as_deref().unwrap_or(text.as_str());
            if !detail.is_empty() {
                s.push(' ');
                s.push_str(clip(detail, 200));
            }
        }
    }
    s
}

fn unavailable_reason(e: &TrackError) -> (&'static str, String) {
    let reason = match e.status {
        Some(429) => "rate_limited",
        Some(_) => "server_error",
        None if e.message.as_bytes().windows(9).any(|w| w == b"no answer") => "timeout",
        None => "network_error",
    };
    (reason, e.message.clone())
}

pub fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

pub fn result(status: &str, key: &str, attempts: u32, response: Option<JsValue>) -> JsValue {
    let o = Object::new();
    set(&o, "status", &JsValue::from_str(status));
    set(&o, "idempotencyKey", &JsValue::from_str(key));
    set(&o, "attempts", &JsValue::from(attempts));
    if let Some(r) = response {
        set(&o, "response", &r);
    }
    o.into()
}

/// Reads Autumn's `{ code, message }` error body; anything else yields `None`s.
pub fn server_error(text: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = sys::json_parse(text) else {
        return (None, None);
    };
    if !v.is_object() {
        return (None, None);
    }
    let field = |k: &str| {
        Reflect::get(&v, &JsValue::from_str(k))
            .ok()
            .and_then(|x| x.as_string())
    };
    let code = field("code").filter(|c| {
        !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    });
    (code, field("message"))
}

/// The first `max` characters of `s`, for messages.
pub fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// A permanent refusal as a `TrackError` with Autumn's code, status and message.
fn refusal(status: u16, text: &str, key: &str) -> TrackError {
    let (code, message) = server_error(text);
    // Autumn claims a key before processing, so its own refusal is final. An answer without
    // Autumn's code comes from something in between (a proxy, a CDN) and proves nothing: an
    // earlier copy of this request (a browser resends a POST by itself when a reused
    // connection drops) may have been recorded.
    let mut msg = String::from(if code.is_some() {
        "Autumn refused the event (HTTP "
    } else {
        "refused without an Autumn answer (HTTP "
    });
    push_u64(&mut msg, u64::from(status));
    if let Some(c) = &code {
        msg.push(' ');
        msg.push_str(c);
    }
    msg.push(')');
    if code.is_none() {
        msg.push_str("; it may have been recorded: resend only with idempotencyKey");
    }
    match message {
        Some(m) => {
            msg.push_str(": ");
            msg.push_str(clip(&m, 500));
        }
        None if !text.is_empty() => {
            msg.push_str(": ");
            msg.push_str(clip(text, 200));
        }
        None => {}
    }
    let mut e = TrackError::new(code.map_or(Code::HttpError, Code::Server), msg).with_key(key);
    e.status = Some(status);
    e
}

fn unavailable(reply: &Reply, attempts: u32, timeout_ms: u32, key: &str) -> TrackError {
    let mut msg = String::from("could not deliver the event after ");
    push_u64(&mut msg, u64::from(attempts));
    msg.push_str(if attempts == 1 {
        " attempt"
    } else {
        " attempts"
    });
    msg.push_str(" (last: ");
    let mut status = None;
    match reply {
        Reply::Timeout => {
            msg.push_str("no answer within ");
            push_u64(&mut msg, u64::from(timeout_ms));
            msg.push_str(" ms");
        }
        Reply::Answer { status: s, .. } => {
            status = Some(*s);
            msg.push_str(&describe_reply(reply));
        }
        other => msg.push_str(&describe_reply(other)),
    }
    msg.push_str("). Resend with the same idempotencyKey: it cannot be counted twice");
    let mut e = TrackError::new(Code::Unavailable, msg).with_key(key);
    e.status = status;
    e
}
