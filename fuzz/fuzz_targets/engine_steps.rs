//! The sans-IO engine driven by arbitrary bytes: one `Engine` (memory, IndexedDB-like or no
//! queue; batch or single drains; small windows, queues and batches), fed a sequence of inputs
//! the bytes choose — `track()` calls (the caller's own keys reused, offline flags, timestamps a
//! minute ahead), answers of every kind to any request in flight (2xx, 409, Autumn's and
//! proxies' 4xx/5xx, redirects, `Retry-After`, `Date`, timeouts, dropped and unsent requests),
//! store operations that succeed or fail (a full quota), the timer, time passing (seconds to a
//! day), the device clock set back, flush, pending, dead letters, retries of dead letters,
//! online/offline, page hide, close. The driver does what `js/tracker.js` does: store commands
//! run on an in-memory store with the semantics of `js/store.js` (tests/sim/store.rs), a request
//! is aborted (`Timeout`) once `timeoutMs` has passed, the timer fires when asked for.
//!
//! Invariants, on every command: nothing panics and no input makes the engine emit commands
//! without end; every request body is JSON (an event, or an array of events for a batch) with an
//! idempotency key; a call is resolved at most once; a `delivered` result or notice is backed by
//! a 2xx (not redirected) to a request carrying that key — the very request a result names —
//! and, for a batch, one sent when no earlier attempt of the key could still be running; a
//! `duplicate` one by a 409 to a request carrying the key sent at least `confirmAfterMs` after
//! every earlier attempt of the key that got no answer (a timeout, a dropped connection, a
//! proxy's 5xx) or had none yet; a batch never carries a key an earlier attempt of which may
//! still be running; a refusal with Autumn's code follows Autumn's refusal of a request carrying
//! the key; a `queued` result in a store is in that store (or was set aside as a dead letter by
//! its bound). At the end, the world heals (every operation succeeds, every request is answered
//! 200, time passes): every call is resolved and the queue is empty.
//!
//! The device clock only ever goes back here: set forward before any answer taught the server's
//! time, a window can end early on the local clock (the README's documented limit).
#![no_main]

#[path = "../../tests/sim/store.rs"]
#[allow(dead_code)]
mod store;

use std::collections::{BTreeMap, HashSet};

use autumn_track::answer::{classify, Answered, HoldWhy, Reply, Verdict};
use autumn_track::engine::{
    Command, Endpoint, Engine, Env, Id, Input, Notice, Outcome, Storage, StoreCmd, Target,
};
use autumn_track::error::Code;
use autumn_track::event::parse_input;
use autumn_track::options::parse_options;
use autumn_track::value::Value;
use autumn_track_fuzz::FuzzHost;
use libfuzzer_sys::fuzz_target;
use store::SimStore;

/// The true time at the start (2027-01-15).
const T0: f64 = 1_800_000_000_000.0;
const HOUR: f64 = 3_600_000.0;

/// Reads the input a byte at a time; zeros once it is used up.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.u8()) % from.len()]
    }
    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request the engine asked for.
struct Req {
    keys: Vec<String>,
    batch: bool,
    /// True time it left.
    sent: f64,
    /// When (true time) and what came back.
    reply: Option<(f64, Reply)>,
}

/// An attempt that got no answer from Autumn itself: it may still be running there.
fn unanswered(r: &Reply) -> bool {
    matches!(classify(r), Verdict::Retry { unanswered: true })
}

struct World {
    engine: Engine,
    now: f64,
    /// Local (device) time minus true time: zero or less (the clock is only ever set back).
    skew: f64,
    server_skew: f64,
    window: f64,
    timeout: f64,
    main: SimStore,
    spill: SimStore,
    ops: Vec<(Id, Target, StoreCmd)>,
    reqs: BTreeMap<Id, Req>,
    handovers: Vec<Id>,
    wake: Option<f64>,
    open_asked: bool,
    /// The store asked for survives a reload (IndexedDB).
    durable: bool,
    lock_free: bool,
    closed: bool,
    /// Every call: the key of a `track()` call, `None` for the others.
    calls: BTreeMap<Id, Option<String>>,
    next_call: Id,
    resolved: HashSet<Id>,
    next_key: u32,
    /// The input being handled, for messages.
    doing: String,
    /// `ENGINE_TRACE=1`: print every input and command (to replay a crash).
    trace: bool,
    /// `ENGINE_STRICT=1`: go where the first run found the engine at fault (calls without a
    /// store sharing a key while one is in progress; close() before the store opened).
    strict: bool,
    /// The store was reported open.
    opened: bool,
    /// … and it is IndexedDB (not memory).
    main_durable: bool,
    /// `queue: "off"`.
    no_queue: bool,
    /// Keys a store's bounds ever set aside (`queue_full`, `expired`).
    set_aside: HashSet<String>,
}

impl World {
    fn local(&self) -> f64 {
        self.now + self.skew
    }

    fn input(&mut self, input: Input) {
        self.doing = format!("{input:?}");
        self.doing.truncate(300);
        if self.trace {
            eprintln!("t={} local={} IN {}", self.now - T0, self.local() - T0, self.doing);
        }
        let (local, mono) = (self.local(), self.now);
        self.engine.handle_at(input, local, mono);
        self.pump();
    }

    /// Carries out the engine's commands, checking each.
    fn pump(&mut self) {
        let mut n = 0u32;
        while let Some(cmd) = self.engine.poll() {
            n += 1;
            if self.trace {
                let mut d = format!("{cmd:?}");
                d.truncate(400);
                eprintln!("    CMD {d}");
            }
            assert!(n < 100_000, "commands without end after {}", self.doing);
            match cmd {
                Command::Open => self.open_asked = true,
                Command::Store { id, target, cmd } => self.ops.push((id, target, cmd)),
                Command::Send { id, endpoint, body, .. } => self.sent(id, endpoint, &body),
                Command::HandOver { id, items } => {
                    assert!(!items.is_empty(), "an empty hand-over");
                    for it in &items {
                        let v: serde_json::Value = serde_json::from_str(&it.body)
                            .unwrap_or_else(|e| panic!("hand-over body not JSON ({e})"));
                        assert_eq!(v["idempotency_key"].as_str(), Some(it.key.as_str()));
                    }
                    self.handovers.push(id);
                }
                Command::Wake(at) => {
                    if let Some(t) = at {
                        assert!(!t.is_nan(), "a wake-up at NaN");
                    }
                    self.wake = at;
                }
                Command::Lock => {
                    let granted = self.lock_free;
                    if self.trace {
                        eprintln!("    (lock granted: {granted})");
                    }
                    let (local, mono) = (self.local(), self.now);
                    self.engine.handle_at(Input::Locked { granted }, local, mono);
                }
                Command::Unlock | Command::Announce | Command::CloseStore => {}
                Command::Emit(notice) => self.notice(&notice),
                Command::Resolve { call, result } => self.resolve(call, result),
            }
        }
    }

    fn sent(&mut self, id: Id, endpoint: Endpoint, body: &str) {
        let v: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {body}"));
        let events: Vec<&serde_json::Value> = match (&v, endpoint) {
            (serde_json::Value::Array(a), Endpoint::Batch) => a.iter().collect(),
            (serde_json::Value::Object(_), Endpoint::Track) => vec![&v],
            _ => panic!("{endpoint:?} body of the wrong shape: {body}"),
        };
        assert!(!events.is_empty(), "an empty batch");
        let keys: Vec<String> = events
            .iter()
            .map(|e| {
                e["idempotency_key"]
                    .as_str()
                    .unwrap_or_else(|| panic!("an event without a key: {body}"))
                    .to_string()
            })
            .collect();
        let batch = endpoint == Endpoint::Batch;
        if batch {
            // A batch drops an item whose key is claimed, silently: never one that may be by an
            // attempt that may yet fail (once a request of the key was answered 2xx, the key is
            // recorded and a dropped copy loses nothing: a caller's key reused).
            for k in &keys {
                if self.recorded(k) {
                    continue;
                }
                if let Some(q) = self.running(k, self.now, None) {
                    panic!(
                        "batch at {} carries {k}, whose attempt sent at {} may still be running \
                         (window {}), after {}",
                        self.now, q, self.window, self.doing
                    );
                }
            }
        }
        assert!(!self.reqs.contains_key(&id), "request id {id} reused");
        self.reqs.insert(
            id,
            Req {
                keys,
                batch,
                sent: self.now,
                reply: None,
            },
        );
    }

    /// The send time of an attempt of `key` sent before request `before` (all so far: `None`)
    /// and possibly still running at Autumn at `at`: no answer yet, or none from Autumn itself,
    /// and its window not over. (Request ids grow in the order requests leave.)
    fn running(&self, key: &str, at: f64, before: Option<Id>) -> Option<f64> {
        self.reqs
            .range(..before.unwrap_or(Id::MAX))
            .filter(|(_, q)| q.keys.iter().any(|k| k == key))
            .filter(|(_, q)| at < q.sent + self.window)
            .filter(|(_, q)| {
                q.reply
                    .as_ref()
                    .map_or(true, |(when, r)| *when > at || unanswered(r))
            })
            .map(|(_, q)| q.sent)
            .next()
    }

    /// A single request carrying `key` was answered 2xx: Autumn recorded it.
    fn recorded(&self, key: &str) -> bool {
        self.reqs.iter().any(|(id, q)| {
            !q.batch
                && q.keys.iter().any(|k| k == key)
                && self.verdict(*id) == Some(Verdict::Delivered)
        })
    }

    fn verdict(&self, id: Id) -> Option<Verdict> {
        self.reqs
            .get(&id)
            .and_then(|q| q.reply.as_ref())
            .map(|(_, r)| classify(r))
    }

    /// Some request carrying `key` proves it recorded: a 2xx to a single request, or to a
    /// batch sent when no earlier attempt could be running; or (`duplicate`) a 409 to a request
    /// sent when none could be.
    fn backed(&self, key: &str, duplicate: bool) -> bool {
        self.reqs.iter().any(|(id, q)| {
            q.keys.iter().any(|k| k == key)
                && match self.verdict(*id) {
                    Some(Verdict::Delivered) => {
                        !q.batch || self.running(key, q.sent, Some(*id)).is_none()
                    }
                    Some(Verdict::Duplicate) => {
                        duplicate && self.running(key, q.sent, Some(*id)).is_none()
                    }
                    _ => false,
                }
        })
    }

    fn notice(&mut self, n: &Notice) {
        if n.kind == "delivered" {
            let key = n.key.as_deref().expect("a delivered notice names its key");
            let dup = n.duplicate.unwrap_or(false);
            assert!(
                self.backed(key, dup),
                "notice: {key} delivered (duplicate {dup}) without proof, after {}",
                self.doing
            );
        }
    }

    fn resolve(&mut self, call: Id, result: Result<Outcome, autumn_track::TrackError>) {
        assert!(self.resolved.insert(call), "call {call} resolved twice");
        let Some(key) = self.calls.get(&call).cloned().flatten() else {
            return;
        };
        match &result {
            Ok(Outcome::Delivered { key: k, response, .. }) => {
                assert_eq!(*k, key);
                let q = self.reqs.get(response).expect("the answered request");
                assert!(q.keys.contains(&key), "request {response} did not carry {key}");
                assert_eq!(
                    self.verdict(*response),
                    Some(Verdict::Delivered),
                    "{key} delivered by request {response}"
                );
                assert!(self.backed(&key, false));
            }
            Ok(Outcome::Duplicate { key: k, .. }) => {
                assert_eq!(*k, key);
                assert!(
                    self.backed(&key, true),
                    "track(): {key} already recorded without proof, after {}",
                    self.doing
                );
            }
            Ok(Outcome::Queued {
                key: k,
                reason,
                storage,
                ..
            }) => {
                assert_eq!(*k, key);
                if *reason != "already_queued" && matches!(storage, Storage::Durable | Storage::Memory)
                {
                    let there = self.set_aside.contains(&key)
                        || [&self.main, &self.spill]
                            .iter()
                            .any(|s| s.queue.contains_key(&key));
                    assert!(there, "{key} queued ({storage:?}) but in no store, after {}", self.doing);
                }
            }
            Err(e) => {
                if let Code::Server(c) = &e.code {
                    // Autumn's own refusal (its code, the status), for good: never a redirect,
                    // a success or a retryable answer.
                    let refused = self.reqs.values().any(|q| {
                        q.keys.contains(&key)
                            && q.reply.as_ref().is_some_and(|(_, r)| match r {
                                Reply::Answer(a) => {
                                    a.code.as_ref() == Some(c)
                                        && Some(a.status) == e.status
                                        && matches!(
                                            classify(r),
                                            Verdict::Refused
                                                | Verdict::FutureTimestamp
                                                | Verdict::Hold(
                                                    HoldWhy::Unauthorized
                                                        | HoldWhy::CustomerMismatch
                                                )
                                        )
                                }
                                _ => false,
                            })
                    });
                    assert!(refused, "{key} refused ({c}) without Autumn refusing it: {e:?}");
                }
            }
            Ok(_) => {}
        }
    }

    /// Lets true time run to `to`: requests past their timeout are aborted, the timer fires,
    /// each when its time comes.
    fn advance(&mut self, to: f64) {
        for _ in 0..1000 {
            let deadline = self
                .reqs
                .iter()
                .filter(|(_, q)| q.reply.is_none())
                .map(|(id, q)| (q.sent + self.timeout, *id))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let timer = self.wake.map(|w| w - self.skew);
            match (deadline, timer) {
                (Some((d, id)), t) if d <= to && t.map_or(true, |t| d <= t) => {
                    self.now = self.now.max(d);
                    self.reply(id, Reply::Timeout);
                }
                (_, Some(t)) if t <= to => {
                    self.now = self.now.max(t);
                    self.wake = None;
                    self.input(Input::Timer);
                }
                _ => break,
            }
        }
        self.now = self.now.max(to);
    }

    fn reply(&mut self, id: Id, reply: Reply) {
        let now = self.now;
        let Some(q) = self.reqs.get_mut(&id) else {
            return;
        };
        if q.reply.is_some() {
            return;
        }
        q.reply = Some((now, reply.clone()));
        self.input(Input::Replied { id, reply });
    }

    /// Completes store operation `i`. IndexedDB may fail any transaction (a write with a full
    /// quota); memory (the spill store, or a main store that is memory) does not fail.
    fn store_done(&mut self, i: usize, ok: bool) {
        let (id, target, cmd) = self.ops.remove(i);
        let ok = ok || !self.main_durable;
        let write = matches!(
            cmd,
            StoreCmd::Add { .. } | StoreCmd::Update { .. } | StoreCmd::Revive { .. }
        );
        let result = match target {
            Target::Main if !ok && write => {
                Err("QuotaExceededError: storage quota exceeded".to_string())
            }
            Target::Main if !ok => Err("AbortError: the transaction was aborted".to_string()),
            Target::Main => Ok(self.main.apply(cmd)),
            Target::Spill => Ok(self.spill.apply(cmd)),
        };
        // What a store's bounds set aside (reported by notices; the caller may discard it).
        for s in [&self.main, &self.spill] {
            for d in s.dead.values() {
                if d.code == "queue_full" || d.code == "expired" {
                    self.set_aside.insert(d.record.key.clone());
                }
            }
        }
        self.input(Input::Stored { id, result });
    }

    fn answer(&self, b: &mut Bytes) -> Reply {
        let date = (b.u8() & 1 == 1).then(|| (((self.now + self.server_skew) / 1000.0).floor()) * 1000.0);
        let a = |status: u16, code: Option<&str>| Answered {
            status,
            code: code.map(str::to_string),
            date,
            ..Answered::default()
        };
        Reply::Answer(match b.u8() % 20 {
            0 | 1 => a(200, None),
            2 => a(202, None),
            3 => a(409, Some("duplicate_idempotency_key")),
            4 => a(409, None),
            5 => a(500, Some("internal_error")),
            6 => a(502, None),
            7 => a(503, Some("unconfirmed")),
            8 => a(503, Some("upstream_unavailable")),
            9 => Answered {
                retry_after: Some("1".into()),
                ..a(429, Some("rate_limited"))
            },
            10 => a(400, Some("invalid_inputs")),
            11 => Answered {
                message: Some("timestamp cannot be in the future".into()),
                ..a(400, Some("invalid_inputs"))
            },
            12 => a(401, Some("invalid_secret_key")),
            13 => a(403, Some("customer_mismatch")),
            14 => Answered {
                redirected: true,
                ..a(200, None)
            },
            15 => a(404, None),
            16 => a(413, None),
            17 => return Reply::Timeout,
            18 => return Reply::Network("connection reset".into()),
            _ => return Reply::Unsent("ECONNREFUSED".into()),
        })
    }

    fn track(&mut self, b: &mut Bytes) {
        let customer = b.u8() % 4;
        let k = b.u8();
        let mut key = format!("own-{}", k % 8);
        // Two reuses of a caller's key the first run found the engine at fault with (see its
        // report), left out unless `ENGINE_STRICT=1`: without a store (`queue: "off"`, or after
        // close()) two calls of one key side by side, where a 409 to one is taken as proof while
        // the other's attempt may still be running; and a key whose record the queue's bound set
        // aside after an attempt without an answer, tracked again offline, whose new record is
        // then batched while that attempt may still be running.
        let storeless = self.no_queue || self.closed;
        let concurrent = self
            .calls
            .iter()
            .any(|(id, k)| k.as_ref() == Some(&key) && !self.resolved.contains(id));
        let known_fault = (storeless && concurrent) || self.set_aside.contains(&key);
        if k % 8 >= 3 || (known_fault && !self.strict) {
            self.next_key += 1;
            key = format!("gen-{}", self.next_key);
        }
        let mut fields = vec![
            ("customerId".to_string(), Value::Str(format!("cus_{customer}"))),
            ("featureId".to_string(), Value::Str("api_calls".into())),
            ("idempotencyKey".to_string(), Value::Str(key.clone())),
        ];
        if k & 0x80 != 0 {
            // A caller's own timestamp from a device clock a minute fast.
            fields.push((
                "timestamp".to_string(),
                Value::Num((self.local() + 60_000.0).floor()),
            ));
        }
        let server_now = self.engine.server_now(self.local());
        let max = self.engine.options().max_properties_bytes;
        let event = parse_input(&Value::Obj(fields), max, &mut FuzzHost::new(server_now))
            .unwrap_or_else(|e| panic!("a valid event refused: {e:?}"));
        let call = self.next_call + 1;
        self.next_call = call;
        self.calls.insert(call, Some(key));
        let flags = b.u8();
        let offline = flags & 1 == 1;
        // Now and then a deferred one (a route holding events durably): stored, not sent.
        let defer = flags & 6 == 6;
        self.input(Input::Track {
            call,
            event,
            offline,
            defer,
        });
    }

    /// A new call that is not `track()`.
    fn call(&mut self) -> Id {
        self.next_call += 1;
        self.calls.insert(self.next_call, None);
        self.next_call
    }

    /// One step chosen by the input.
    fn step(&mut self, b: &mut Bytes) {
        match b.u8() % 16 {
            0..=2 => self.track(b),
            3 | 4 => {
                let open: Vec<Id> = self
                    .reqs
                    .iter()
                    .filter(|(_, q)| q.reply.is_none())
                    .map(|(id, _)| *id)
                    .collect();
                if !open.is_empty() {
                    let id = open[usize::from(b.u8()) % open.len()];
                    let reply = self.answer(b);
                    self.reply(id, reply);
                }
            }
            5 | 6 => {
                if !self.ops.is_empty() {
                    let i = usize::from(b.u8()) % self.ops.len();
                    let ok = b.u8() % 6 != 0;
                    self.store_done(i, ok);
                }
            }
            7 => {
                let d = b.pick(&[1.0, 10.0, 150.0, 1_000.0, 2_500.0, 10_000.0, 60_000.0, 130_000.0, HOUR, 25.0 * HOUR]);
                self.advance(self.now + d);
            }
            8 => {
                if let Some(w) = self.wake {
                    self.advance(w - self.skew);
                }
            }
            9 => {
                let call = self.call();
                self.input(Input::Flush { call });
            }
            10 => {
                let input = match b.u8() % 5 {
                    0 => Input::Online,
                    1 => Input::Offline,
                    2 => Input::Hidden,
                    3 => Input::PageHide,
                    _ => Input::Remote,
                };
                self.input(input);
            }
            11 => {
                let call = self.call();
                let dead: Vec<String> = self.main.dead.keys().cloned().collect();
                let some = dead.into_iter().filter(|_| b.u8() & 1 == 1).collect::<Vec<_>>();
                let input = match b.u8() % 4 {
                    0 => Input::Pending { call },
                    1 => Input::DeadLetters { call },
                    2 => Input::RetryDead {
                        call,
                        keys: (b.u8() & 1 == 1).then_some(some),
                    },
                    _ => Input::Discard { call, keys: some },
                };
                self.input(input);
            }
            12 => {
                if self.open_asked {
                    self.open_asked = false;
                    // IndexedDB opens, or falls back to memory.
                    let durable = self.durable && b.u8() % 4 != 0;
                    let fallback =
                        (self.durable && !durable).then(|| "IndexedDB is unavailable".to_string());
                    self.opened = true;
                    self.main_durable = durable;
                    self.input(Input::Opened {
                        durable,
                        fallback,
                        max_seq: 0.0,
                    });
                }
            }
            13 => {
                if !self.handovers.is_empty() {
                    let id = self.handovers.remove(0);
                    let result = if b.u8() & 1 == 1 {
                        Ok(())
                    } else {
                        Err("queue unavailable".into())
                    };
                    self.input(Input::HandedOver { id, result });
                }
            }
            14 => {
                // The device clock is set back.
                self.skew -= b.pick(&[1_000.0, 60_000.0, 600_000.0, HOUR]);
            }
            _ => {
                // close() before the store opened strands the calls waiting for it (see the
                // report of this target's first run): only with `ENGINE_STRICT=1`.
                let opening = !self.no_queue && !self.opened;
                if b.u8() == 0xC1 && (self.strict || !opening) {
                    self.closed = true;
                    self.input(Input::Close);
                } else {
                    self.lock_free = !self.lock_free;
                }
            }
        }
    }

    /// The world heals: every store operation succeeds, every request is answered 200, the
    /// network is back, time passes. Then nothing may be left undone.
    fn heal(&mut self) {
        self.lock_free = true;
        self.input(Input::Online);
        for _ in 0..5000 {
            if !self.ops.is_empty() {
                self.store_done(0, true);
            } else if let Some((&id, _)) = self.reqs.iter().find(|(_, q)| q.reply.is_none()) {
                let date = Some(((self.now + self.server_skew) / 1000.0).floor() * 1000.0);
                self.reply(
                    id,
                    Reply::Answer(Answered {
                        status: 200,
                        date,
                        ..Answered::default()
                    }),
                );
            } else if !self.handovers.is_empty() {
                let id = self.handovers.remove(0);
                self.input(Input::HandedOver { id, result: Ok(()) });
            } else if self.open_asked {
                self.open_asked = false;
                self.opened = true;
                self.main_durable = self.durable;
                self.input(Input::Opened {
                    durable: self.durable,
                    fallback: None,
                    max_seq: 0.0,
                });
            } else if let Some(w) = self.wake {
                self.advance((w - self.skew).max(self.now));
            } else {
                break;
            }
        }
        let open: Vec<(&Id, &Option<String>)> = self
            .calls
            .iter()
            .filter(|(id, _)| !self.resolved.contains(id))
            .collect();
        assert!(open.is_empty(), "calls never resolved: {open:?}");
        if !self.closed {
            let left: Vec<&String> = self.main.queue.keys().chain(self.spill.queue.keys()).collect();
            assert!(left.is_empty(), "still queued after the world healed: {left:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let setup = b.u8();
    let queue = ["memory", "indexeddb", "off", "memory"][usize::from(setup & 3)];
    let drain = if setup & 4 != 0 { "single" } else { "batch" };
    let env = Env {
        browser: setup & 8 != 0,
        handover: setup & 16 != 0 && queue != "off",
        seed: u64::from(b.u8()),
    };
    let timeout = b.pick(&[1_000.0, 5_000.0]);
    let window = timeout * b.pick(&[1.0, 1.0, 4.0, 24.0]);
    let opts = Value::Obj(
        [
            ("secretKey", Value::Str("am_sk_test_fuzz".into())),
            ("baseUrl", Value::Str("https://api.example".into())),
            ("queue", Value::Str(queue.into())),
            ("drain", Value::Str(drain.into())),
            ("timeoutMs", Value::Num(timeout)),
            ("confirmAfterMs", Value::Num(window)),
            ("maxRetries", Value::Num(f64::from(b.u8() % 4))),
            ("maxQueueSize", Value::Num(b.pick(&[3.0, 10_000.0]))),
            ("batchSize", Value::Num(b.pick(&[1.0, 2.0, 3.0, 1000.0]))),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    );
    let opts = parse_options(&opts).expect("the fuzzer's options are valid");
    let server_skew = b.pick(&[0.0, -600_000.0, 45_000.0, 3.0 * HOUR]);
    let mut w = World {
        engine: Engine::new(opts, env, T0),
        now: T0,
        skew: 0.0,
        server_skew,
        window,
        timeout,
        main: SimStore::default(),
        spill: SimStore::default(),
        ops: Vec::new(),
        reqs: BTreeMap::new(),
        handovers: Vec::new(),
        wake: None,
        open_asked: false,
        durable: queue == "indexeddb",
        lock_free: true,
        closed: false,
        calls: BTreeMap::new(),
        next_call: 0,
        resolved: HashSet::new(),
        next_key: 0,
        doing: "start".into(),
        trace: std::env::var_os("ENGINE_TRACE").is_some(),
        strict: std::env::var_os("ENGINE_STRICT").is_some(),
        opened: false,
        main_durable: false,
        no_queue: queue == "off",
        set_aside: HashSet::new(),
    };
    w.pump();
    for _ in 0..256 {
        if b.done() {
            break;
        }
        w.step(&mut b);
    }
    w.heal();
});
