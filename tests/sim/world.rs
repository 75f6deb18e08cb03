//! One simulated world: tabs (engines) sharing one durable store, a network, the simulated
//! Autumn, and a workload — all driven by one seed, in simulated time, deterministically. The
//! driver here carries out the engine's commands the way `js/tracker.js` does; the invariants
//! are checked after every step.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use autumn_track::answer::Reply;
use autumn_track::engine::{
    Command, Endpoint, Engine, Env, Id, Input, Notice, Outcome, Storage, StoreCmd, Target,
    KEEPALIVE_BUDGET,
};
use autumn_track::error::Code;
use autumn_track::event::{parse_input, Host};
use autumn_track::key::uuid_v7;
use autumn_track::options::parse_options;
use autumn_track::value::Value;

use super::server::{Arrival, Faults, Reaction, Server};
use super::store::SimStore;
use super::Rng;

/// Local time at the start of every run (2027-01-15).
const T0: f64 = 1_800_000_000_000.0;
const HOUR: f64 = 3_600_000.0;

/// One run's shape, drawn from its seed.
#[derive(Clone, Debug)]
pub struct Shape {
    pub events: usize,
    pub tabs: usize,
    pub fault_rate: f64,
    pub max_queue: usize,
    pub batch_size: usize,
    pub single: bool,
    pub window_ms: f64,
    pub timeout_ms: f64,
    pub server_skew: f64,
}

impl Shape {
    pub fn draw(rng: &mut Rng, events: usize) -> Shape {
        Shape {
            events,
            tabs: 1 + rng.below(3) as usize,
            fault_rate: [0.0, 0.1, 0.3, 0.5][rng.below(4) as usize],
            max_queue: if rng.below(5) == 0 {
                5 + rng.below(40) as usize
            } else {
                10_000
            },
            batch_size: [1000, 7, 3][rng.below(3) as usize],
            single: rng.below(6) == 0,
            window_ms: [5_000.0, 20_000.0, 120_000.0][rng.below(3) as usize],
            timeout_ms: [1_000.0, 5_000.0][rng.below(2) as usize],
            server_skew: (rng.unit() - 0.5) * 600_000.0,
        }
    }
}

#[derive(Debug)]
enum Ev {
    Op(Op),
    Arrive {
        tab: usize,
        gen: u32,
        req: Id,
        batch: bool,
        body: String,
    },
    End {
        attempt: u64,
    },
    Answer {
        tab: usize,
        gen: u32,
        req: Id,
        reply: Reply,
    },
    Timeout {
        tab: usize,
        gen: u32,
        req: Id,
    },
    StoreDone {
        tab: usize,
        gen: u32,
        op: Id,
        target: Target,
        cmd: StoreCmd,
    },
    Opened {
        tab: usize,
        gen: u32,
    },
    Timer {
        tab: usize,
        gen: u32,
        at: f64,
    },
    Remote {
        tab: usize,
        gen: u32,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Track {
        tab: usize,
        customer: u32,
        poison: bool,
        own_key: Option<String>,
        ts_ahead: bool,
    },
    Flush(usize),
    Crash(usize),
    Offline(usize, bool),
    Quota(bool),
    Outage(f64),
    AuthDown(f64),
    Jump(f64),
    /// The device clock (one per machine, every tab's) steps by this many ms.
    ClockStep(f64),
    RetryDead(usize),
    /// The page is going away (`pagehide`): it replays what it can with `keepalive`, then dies.
    PageHide(usize),
}

struct Scheduled {
    at: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        self.at == o.at && self.seq == o.seq
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap by time, then insertion order.
        o.at.partial_cmp(&self.at)
            .unwrap_or(Ordering::Equal)
            .then_with(|| o.seq.cmp(&self.seq))
    }
}

struct Tab {
    engine: Option<Engine>,
    gen: u32,
    skew: f64,
    offline: bool,
    spill: SimStore,
    requests: HashMap<Id, bool>,
    timer: Option<f64>,
    calls: HashMap<Id, String>,
    /// Bodies of its `keepalive` requests not answered yet: never more than the budget.
    keepalive: HashMap<Id, usize>,
}

/// What a caller was told about a key, last.
#[derive(Clone, Debug, PartialEq)]
enum Told {
    Nothing,
    Delivered,
    Queued(Storage),
    Refused(String),
    Unproven,
    Unavailable,
}

pub struct World {
    pub seed: u64,
    shape: Shape,
    rng: Rng,
    now: f64,
    seq: u64,
    heap: BinaryHeap<Scheduled>,
    tabs: Vec<Tab>,
    store: SimStore,
    lock: Option<(usize, u32)>,
    server: Server,
    quota_fail: bool,
    device_skew: f64,
    forward: f64,
    next_call: Id,
    told: HashMap<String, Told>,
    poison: HashSet<String>,
    key_tab: HashMap<String, usize>,
    pub violations: Vec<String>,
    pub steps: u64,
    pub tracked: usize,
    /// Mutation testing: make the driver lie the way a bug would.
    pub mutant: Option<&'static str>,
    /// `SIM_TRACE=<key>`: print what happens to that key.
    pub trace: Option<String>,
    traced: HashSet<(usize, Id)>,
}

struct SimHost {
    now: f64,
    rng: u64,
}

impl Host for SimHost {
    fn now_ms(&self) -> f64 {
        self.now
    }
    fn format_num(&self, n: f64, out: &mut String) {
        out.push_str(&format!("{n}"));
    }
    fn new_key(&mut self) -> String {
        self.rng = self
            .rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = self.rng.to_le_bytes();
        let c = self.rng.rotate_left(17).to_le_bytes();
        let mut r = [0u8; 10];
        r[..8].copy_from_slice(&b);
        r[8..].copy_from_slice(&c[..2]);
        uuid_v7(self.now as u64, r)
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Obj(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

impl World {
    pub fn new(seed: u64, shape: Shape, mutant: Option<&'static str>) -> World {
        let rng = Rng(seed);
        let mut server = Server::default();
        server.faults = Faults {
            on: true,
            rate: shape.fault_rate,
        };
        let tabs = (0..shape.tabs)
            .map(|_| Tab {
                engine: None,
                gen: 0,
                skew: 0.0,
                offline: false,
                spill: SimStore::default(),
                requests: HashMap::new(),
                timer: None,
                calls: HashMap::new(),
                keepalive: HashMap::new(),
            })
            .collect();
        let mut w = World {
            seed,
            shape,
            rng,
            now: 0.0,
            seq: 0,
            heap: BinaryHeap::new(),
            tabs,
            store: SimStore::default(),
            lock: None,
            server,
            quota_fail: false,
            device_skew: 0.0,
            forward: 0.0,
            next_call: 1,
            told: HashMap::new(),
            poison: HashSet::new(),
            key_tab: HashMap::new(),
            violations: Vec::new(),
            steps: 0,
            tracked: 0,
            mutant,
            trace: std::env::var("SIM_TRACE").ok(),
            traced: HashSet::new(),
        };
        for t in 0..w.tabs.len() {
            w.boot(t);
        }
        w.plan_workload();
        w
    }

    fn at(&mut self, at: f64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn local(&self, tab: usize) -> f64 {
        T0 + self.now + self.tabs[tab].skew
    }

    fn server_now(&self) -> f64 {
        T0 + self.now + self.shape.server_skew
    }

    fn options(&self) -> Value {
        let s = &self.shape;
        obj(vec![
            ("secretKey", Value::Str("am_sk_test_sim".into())),
            ("baseUrl", Value::Str("https://api.example".into())),
            ("queue", Value::Str("indexeddb".into())),
            ("timeoutMs", Value::Num(s.timeout_ms)),
            ("maxQueueSize", Value::Num(s.max_queue as f64)),
            ("batchSize", Value::Num(s.batch_size as f64)),
            (
                "drain",
                Value::Str(if s.single { "single" } else { "batch" }.into()),
            ),
            // Mutant: a tracker that does not wait for an earlier attempt to end (as before #12).
            (
                "confirmAfterMs",
                Value::Num(if self.mutant == Some("no_window") {
                    s.timeout_ms
                } else {
                    s.window_ms
                }),
            ),
            ("maxRetries", Value::Num(2.0)),
        ])
    }

    /// A page opens in tab `t` (first load or reload).
    fn boot(&mut self, t: usize) {
        let opts = parse_options(&self.options()).expect("sim options");
        let seed = self.rng.next();
        // Tabs share the device's clock (`Date.now()`).
        self.tabs[t].skew = self.device_skew;
        let now = self.local(t);
        let tab = &mut self.tabs[t];
        tab.gen += 1;
        tab.requests.clear();
        tab.keepalive.clear();
        tab.timer = None;
        tab.calls.clear();
        tab.spill = SimStore::default();
        tab.engine = Some(Engine::new(
            opts,
            Env {
                browser: true,
                handover: false,
                seed,
            },
            now,
        ));
        self.pump(t);
    }

    fn plan_workload(&mut self) {
        let n = self.shape.events;
        let tabs = self.tabs.len();
        let span = 5_000.0 + n as f64 * 40.0;
        for i in 0..n {
            let at = self.rng.unit() * span;
            let tab = self.rng.below(tabs as u64) as usize;
            let poison = self.rng.below(40) == 0;
            // A caller's own key, reused by the same page (its retry logic); across tabs the store
            // dedupes it, except a copy one tab keeps in memory because its storage was full
            // (the README's limit).
            let own_key = (self.rng.below(30) == 0).then(|| {
                format!(
                    "own-{}-{tab}-{}",
                    self.seed,
                    self.rng.below(n as u64 / 2 + 1)
                )
            });
            let ts_ahead = self.rng.below(25) == 0;
            // A reused key of the caller's stands for one event: never a poison one.
            let poison = poison && own_key.is_none();
            let customer = self.rng.below(6) as u32;
            let _ = i;
            self.at(
                at,
                Ev::Op(Op::Track {
                    tab,
                    customer,
                    poison,
                    own_key,
                    ts_ahead,
                }),
            );
        }
        let extras = 3 + n / 25;
        for _ in 0..extras {
            let at = self.rng.unit() * span;
            let tab = self.rng.below(tabs as u64) as usize;
            let op = match self.rng.below(20) {
                0..=5 => Op::Flush(tab),
                6..=8 => Op::Crash(tab),
                9..=10 => Op::Offline(tab, true),
                11 => Op::Quota(true),
                12 => Op::Outage(1_000.0 + self.rng.unit() * 20_000.0),
                13 => Op::AuthDown(1_000.0 + self.rng.unit() * 10_000.0),
                14 => Op::Jump(self.rng.unit() * 30.0 * HOUR),
                // Set back by up to 50 minutes: within the hour between maxEventAgeMs and Autumn's
                // 24 h (more, while the tracker cannot see the server's clock, is the README's limit).
                15 => Op::ClockStep(-(self.rng.unit() * 50.0 * 60_000.0)),
                16 => Op::ClockStep(self.rng.unit() * 120_000.0),
                17 => Op::RetryDead(tab),
                18 => Op::PageHide(tab),
                _ => Op::Flush(tab),
            };
            self.at(at, Ev::Op(op.clone()));
            match op {
                Op::Offline(t, _) => {
                    let back = at + 500.0 + self.rng.unit() * 15_000.0;
                    self.at(back, Ev::Op(Op::Offline(t, false)));
                }
                Op::Quota(_) => {
                    let back = at + 500.0 + self.rng.unit() * 5_000.0;
                    self.at(back, Ev::Op(Op::Quota(false)));
                }
                _ => {}
            }
        }
    }

    /// A world that takes far more steps than its events need is a livelock: a failure.
    fn over_budget(&mut self) -> bool {
        let limit = 2_000 + self.shape.events as u64 * 2_000;
        if self.steps > limit && !self.violations.iter().any(|v| v.contains("livelock")) {
            let n = self.heap.len();
            self.fail(format!(
                "livelock: {} engine commands for {} events ({n} events pending)",
                self.steps, self.shape.events
            ));
        }
        self.steps > limit
    }

    fn fail(&mut self, what: String) {
        self.violations.push(format!("t={:.0}ms: {what}", self.now));
    }

    fn input(&mut self, t: usize, input: Input) {
        let now = self.local(t);
        if let Some(k) = &self.trace {
            let d = format!("{input:?}");
            let id = match &input {
                Input::Replied { id, .. } | Input::Stored { id, .. } => Some(*id),
                _ => None,
            };
            let track = matches!(&input, Input::Track { event, .. } if event.idempotency_key == *k);
            if track || id.is_some_and(|i| self.traced.contains(&(t, i))) {
                eprintln!(
                    "t={:.0} tab{t} local={now:.0} IN {}",
                    self.now,
                    &d[..d.len().min(600)]
                );
            }
        }
        let mono = self.now;
        let Some(e) = self.tabs[t].engine.as_mut() else {
            return;
        };
        e.handle_at(input, now, mono);
        self.pump(t);
    }

    /// Carries out tab `t`'s commands (what `js/tracker.js` does).
    fn pump(&mut self, t: usize) {
        let mut n = 0u32;
        loop {
            n += 1;
            assert!(
                n < 200_000,
                "seed {}: tab {t} emits commands without end",
                self.seed
            );
            let gen = self.tabs[t].gen;
            let Some(cmd) = self.tabs[t].engine.as_mut().and_then(Engine::poll) else {
                return;
            };
            self.steps += 1;
            if let Some(k) = &self.trace {
                let d = format!("{cmd:?}");
                let needle = format!("key: \"{k}\"");
                let hit = d.contains(&needle)
                    || matches!(&cmd, Command::Send { body, .. } if body.contains(k.as_str()))
                    || matches!(&cmd, Command::Store { cmd: StoreCmd::Delete { keys }, .. } if keys.contains(k))
                    || matches!(&cmd, Command::Emit(n) if n.key.as_deref() == Some(k.as_str()))
                    || matches!(&cmd, Command::Resolve { .. } if d.contains(k.as_str()));
                if hit {
                    if let Command::Send { id, .. } | Command::Store { id, .. } = &cmd {
                        self.traced.insert((t, *id));
                    }
                    eprintln!(
                        "t={:.0} tab{t}.{gen} local={:.0} CMD {}",
                        self.now,
                        self.local(t),
                        &d[..d.len().min(600)]
                    );
                }
            }
            let lat = 0.2 + self.rng.unit() * 3.0;
            match cmd {
                Command::Open => self.at(self.now + lat, Ev::Opened { tab: t, gen }),
                Command::Store { id, target, cmd } => self.at(
                    self.now + lat,
                    Ev::StoreDone {
                        tab: t,
                        gen,
                        op: id,
                        target,
                        cmd,
                    },
                ),
                Command::Send {
                    id,
                    endpoint,
                    body,
                    keepalive,
                } => {
                    self.tabs[t].requests.insert(id, false);
                    if keepalive {
                        self.tabs[t].keepalive.insert(id, body.len());
                        let held: usize = self.tabs[t].keepalive.values().sum();
                        if held > KEEPALIVE_BUDGET {
                            self.fail(format!(
                                "tab {t}: {held} bytes of keepalive bodies in flight, over the budget of {KEEPALIVE_BUDGET}"
                            ));
                        }
                    }
                    if self.tabs[t].offline {
                        let r = Reply::Network("Failed to fetch".into());
                        self.at(
                            self.now + 0.5,
                            Ev::Answer {
                                tab: t,
                                gen,
                                req: id,
                                reply: r,
                            },
                        );
                        continue;
                    }
                    let net = 5.0 + self.rng.unit() * 40.0;
                    let batch = endpoint == Endpoint::Batch;
                    self.at(
                        self.now + net,
                        Ev::Arrive {
                            tab: t,
                            gen,
                            req: id,
                            batch,
                            body,
                        },
                    );
                    self.at(
                        self.now + self.shape.timeout_ms,
                        Ev::Timeout {
                            tab: t,
                            gen,
                            req: id,
                        },
                    );
                }
                Command::HandOver { id, .. } => {
                    // Not in these worlds (no Cloudflare Queue): refused.
                    self.input(
                        t,
                        Input::HandedOver {
                            id,
                            result: Err("no queue".into()),
                        },
                    );
                }
                Command::Wake(at) => {
                    self.tabs[t].timer = at;
                    if let Some(at) = at {
                        let world_at = at - T0 - self.tabs[t].skew;
                        self.at(world_at.max(self.now), Ev::Timer { tab: t, gen, at });
                    }
                }
                Command::Lock => {
                    let granted = match self.lock {
                        // Mutant: no lock between tabs (two drains at once).
                        Some(_) if self.mutant == Some("no_lock") => true,
                        None => {
                            self.lock = Some((t, gen));
                            true
                        }
                        Some(_) => false,
                    };
                    let now = self.local(t);
                    let mono = self.now;
                    if let Some(e) = self.tabs[t].engine.as_mut() {
                        e.handle_at(Input::Locked { granted }, now, mono);
                    }
                }
                Command::Unlock => {
                    if self.lock == Some((t, gen)) {
                        self.lock = None;
                    }
                }
                Command::Announce => {
                    for o in 0..self.tabs.len() {
                        if o != t {
                            let g = self.tabs[o].gen;
                            self.at(self.now + 1.0, Ev::Remote { tab: o, gen: g });
                        }
                    }
                }
                Command::Emit(n) => self.notice(t, n),
                Command::Resolve { call, result } => self.resolved(t, call, result),
                Command::CloseStore => {}
            }
        }
    }

    fn notice(&mut self, _t: usize, n: Notice) {
        if n.kind == "delivered" {
            if let Some(k) = &n.key {
                if !self.server.backed(k) {
                    let k = k.clone();
                    self.fail(format!("the drain reported {k} delivered, but Autumn has not recorded it and will not"));
                }
            }
        }
    }

    fn resolved(
        &mut self,
        t: usize,
        call: Id,
        result: Result<Outcome, autumn_track::error::TrackError>,
    ) {
        let Some(key) = self.tabs[t].calls.remove(&call) else {
            return;
        };
        let told = match &result {
            Ok(Outcome::Delivered { .. }) | Ok(Outcome::Duplicate { .. }) => {
                if !self.server.backed(&key) {
                    self.fail(format!("track() said {key} was delivered, but Autumn has not recorded it and will not"));
                }
                Told::Delivered
            }
            // The same key again: the copy already here decides; nothing new was told.
            Ok(Outcome::Queued {
                reason: "already_queued",
                ..
            }) => return,
            // Another tab took it over (this one was suspended past its lease): the shared
            // queue has it (still queued there), or settled it (recorded, or a dead letter).
            Ok(Outcome::Queued {
                reason: "taken_over",
                storage,
                ..
            }) => {
                if !self.server.backed(&key)
                    && !self.store.dead.contains_key(&key)
                    && !self.store.queue.contains_key(&key)
                {
                    self.fail(format!("track() said {key} was taken over, but it is neither queued, recorded nor a dead letter"));
                }
                Told::Queued(*storage)
            }
            Ok(Outcome::Queued { storage, .. }) => {
                let there = self.store.queue.contains_key(&key)
                    || self.tabs[t].spill.queue.contains_key(&key);
                let dead = self.store.dead.get(&key).map(|d| d.code.clone());
                if !there && !matches!(dead.as_deref(), Some("queue_full" | "expired")) {
                    self.fail(format!("track() said {key} was queued ({storage:?}), but no store holds it (dead letter: {dead:?})"));
                }
                Told::Queued(*storage)
            }
            Ok(_) => Told::Nothing,
            Err(e) => match &e.code {
                Code::Server(c) => {
                    if self.server.backed(&key) {
                        self.fail(format!(
                            "track() said Autumn refused {key} ({c}), but it is recorded"
                        ));
                    }
                    Told::Refused(c.clone())
                }
                Code::HttpError => Told::Unproven,
                Code::Unavailable => Told::Unavailable,
                other => {
                    let k = key.clone();
                    self.fail(format!("track() of {k} failed with {other:?}"));
                    Told::Nothing
                }
            },
        };
        self.told.insert(key, told);
    }

    fn op(&mut self, op: Op) {
        match op {
            Op::Track {
                tab,
                customer,
                poison,
                own_key,
                ts_ahead,
            } => {
                if self.tabs[tab].engine.is_none() {
                    return;
                }
                let now = self.local(tab);
                let mut fields = vec![
                    ("customerId", Value::Str(format!("cus_{customer}"))),
                    (
                        "featureId",
                        Value::Str(
                            if poison {
                                "no_such_feature"
                            } else {
                                "api_calls"
                            }
                            .into(),
                        ),
                    ),
                ];
                if let Some(k) = own_key.clone() {
                    fields.push(("idempotencyKey", Value::Str(k)));
                }
                if self.rng.below(5) == 0 {
                    // Some events are large (a few KB of properties): chunks then outgrow the
                    // keepalive budget when a page goes away.
                    let n = 200 + self.rng.below(4_000) as usize;
                    fields.push(("properties", obj(vec![("note", Value::Str("x".repeat(n)))])));
                }
                if ts_ahead {
                    // A caller's own timestamp from a device clock running a minute fast.
                    fields.push(("timestamp", Value::Num((now + 60_000.0).floor())));
                }
                let input = obj(fields);
                let Some(engine) = self.tabs[tab].engine.as_ref() else {
                    return;
                };
                let mut host = SimHost {
                    now: engine.server_now(now),
                    rng: self.rng.next(),
                };
                let max = engine.options().max_properties_bytes;
                let ev = match parse_input(&input, max, &mut host) {
                    Ok(ev) => ev,
                    Err(e) => {
                        self.fail(format!("valid input refused: {e}"));
                        return;
                    }
                };
                let key = ev.idempotency_key.clone();
                if self.told.contains_key(&key) {
                    // A caller's own key used twice: judged by its first use.
                    if !matches!(self.told.get(&key), Some(Told::Nothing)) {
                        return;
                    }
                }
                if poison {
                    self.poison.insert(key.clone());
                }
                self.tracked += 1;
                self.told.entry(key.clone()).or_insert(Told::Nothing);
                self.key_tab.insert(key.clone(), tab);
                let call = self.next_call;
                self.next_call += 1;
                self.tabs[tab].calls.insert(call, key);
                let offline = self.tabs[tab].offline;
                // One in ten deferred (what a route holding events durably does): stored, then
                // delivered by the drain.
                let defer = self.rng.below(10) == 0;
                self.input(
                    tab,
                    Input::Track {
                        call,
                        event: ev,
                        offline,
                        defer,
                    },
                );
            }
            Op::PageHide(t) => {
                self.input(t, Input::PageHide);
                let dies = self.now + 20.0 + self.rng.unit() * 2_000.0;
                self.at(dies, Ev::Op(Op::Crash(t)));
            }
            Op::Flush(t) => {
                let call = self.next_call;
                self.next_call += 1;
                self.input(t, Input::Flush { call });
            }
            Op::RetryDead(t) => {
                // Only letters Autumn refused (never the expired: resending those past the
                // window is the documented exception).
                let keys: Vec<String> = self
                    .store
                    .dead
                    .values()
                    .filter(|d| d.code != "expired" && d.code != "queue_full")
                    .map(|d| d.record.key.clone())
                    .collect();
                let call = self.next_call;
                self.next_call += 1;
                self.input(
                    t,
                    Input::RetryDead {
                        call,
                        keys: Some(keys),
                    },
                );
            }
            Op::Crash(t) => {
                // The page dies: its requests still reach Autumn; its answers, pending store
                // transactions and memory are gone. It reloads.
                self.tabs[t].engine = None;
                if self.lock.is_some_and(|(l, _)| l == t) {
                    self.lock = None;
                }
                // Calls in progress never return: nothing was promised for them (a record
                // already written is still replayed by the next page).
                self.tabs[t].calls.clear();
                let lost: Vec<String> = self.tabs[t].spill.queue.keys().cloned().collect();
                for k in lost {
                    // Reported as waiting in memory only: allowed to be lost with the page.
                    self.told.insert(k, Told::Queued(Storage::Memory));
                }
                self.boot(t);
            }
            Op::Offline(t, off) => {
                self.tabs[t].offline = off;
                self.input(t, if off { Input::Offline } else { Input::Online });
            }
            Op::Quota(on) => self.quota_fail = on,
            Op::Outage(ms) => self.server.outage_until = self.now + ms,
            Op::AuthDown(ms) => self.server.auth_down_until = self.now + ms,
            Op::Jump(ms) => {
                // Time passes with every tab asleep (a laptop lid closed): shift every pending
                // event, as a suspended machine would.
                self.now += ms;
            }
            // The device's clock changes, for every tab at once (`Date.now()`). Set back by any
            // amount; set forward by less than what the window leaves over the longest request (a
            // larger jump before any
            // answer taught the server's time is the documented limit: see README).
            Op::ClockStep(ms) => {
                // Forward, at most 15% of the window in all (the window's margin over the
                // longest request); back, by any amount.
                let ms = if ms >= 0.0 {
                    ms.min(self.shape.window_ms * 0.15 - self.forward).max(0.0)
                } else {
                    ms.max(-50.0 * 60_000.0 - self.device_skew).min(0.0)
                };
                if ms > 0.0 {
                    self.forward += ms;
                }
                self.device_skew += ms;
                for t in &mut self.tabs {
                    t.skew += ms;
                }
            }
        }
    }

    fn store_done(&mut self, t: usize, op: Id, target: Target, cmd: StoreCmd) {
        let write = matches!(
            cmd,
            StoreCmd::Add { .. }
                | StoreCmd::Update { .. }
                | StoreCmd::Renew { .. }
                | StoreCmd::Revive { .. }
        );
        let result = if target == Target::Main && write && self.quota_fail && self.rng.below(2) == 0
        {
            Err("IndexedDB write failed: storage quota exceeded (QuotaExceededError)".to_string())
        } else {
            let s = match target {
                Target::Main => &mut self.store,
                Target::Spill => &mut self.tabs[t].spill,
            };
            Ok(s.apply(cmd))
        };
        self.input(t, Input::Stored { id: op, result });
    }

    fn arrive(&mut self, t: usize, gen: u32, req: Id, batch: bool, body: String) {
        let server_now = self.server_now();
        let a: Arrival = self.server.arrive(
            self.now,
            server_now,
            batch,
            &body,
            self.shape.timeout_ms,
            self.shape.window_ms,
            &mut self.rng,
        );
        let back = 5.0 + self.rng.unit() * 40.0;
        match a.reaction {
            Reaction::Answer(ms, mut ans) => {
                if self.mutant == Some("redirect_is_delivery") && ans.redirected {
                    ans.redirected = false;
                }
                self.at(
                    self.now + ms + back,
                    Ev::Answer {
                        tab: t,
                        gen,
                        req,
                        reply: Reply::Answer(ans),
                    },
                )
            }
            Reaction::Drop(ms) => self.at(
                self.now + ms + back,
                Ev::Answer {
                    tab: t,
                    gen,
                    req,
                    reply: Reply::Network("connection reset".into()),
                },
            ),
        }
        if let Some((ms, attempt)) = a.end {
            self.at(self.now + ms, Ev::End { attempt });
        }
    }

    fn answer(&mut self, t: usize, gen: u32, req: Id, reply: Reply) {
        if self.tabs[t].gen != gen || self.tabs[t].engine.is_none() {
            return;
        }
        match self.tabs[t].requests.get_mut(&req) {
            Some(done) if !*done => *done = true,
            _ => return,
        }
        self.tabs[t].keepalive.remove(&req);
        self.input(t, Input::Replied { id: req, reply });
    }

    fn step(&mut self, s: Scheduled) {
        self.steps += 1;
        if let Ev::Arrive { tab, gen, req, .. } = &s.ev {
            if self.now - s.at > 1_000.0 {
                // The machine slept while this request was on its way: its connection died, it
                // never reached Autumn. (A request that leaves only after a sleep — longer than
                // the confirmation window after its write-ahead — is the README's limit.)
                let (tab, gen, req) = (*tab, *gen, *req);
                self.now = self.now.max(s.at);
                return self.answer(
                    tab,
                    gen,
                    req,
                    Reply::Network("connection lost in sleep".into()),
                );
            }
        }
        if let (Some(k), Ev::Op(Op::Crash(t))) = (&self.trace, &s.ev) {
            let _ = k;
            eprintln!("t={:.0} CRASH tab{t}", s.at);
        }
        self.now = self.now.max(s.at);
        match s.ev {
            Ev::Op(op) => self.op(op),
            Ev::Arrive {
                tab,
                gen,
                req,
                batch,
                body,
            } => self.arrive(tab, gen, req, batch, body),
            Ev::End { attempt } => self.server.end(attempt, self.now),
            Ev::Answer {
                tab,
                gen,
                req,
                reply,
            } => self.answer(tab, gen, req, reply),
            Ev::Timeout { tab, gen, req } => self.answer(tab, gen, req, Reply::Timeout),
            Ev::StoreDone {
                tab,
                gen,
                op,
                target,
                cmd,
            } => {
                if self.tabs[tab].gen == gen && self.tabs[tab].engine.is_some() {
                    self.store_done(tab, op, target, cmd);
                }
            }
            Ev::Opened { tab, gen } => {
                if self.tabs[tab].gen == gen {
                    let max_seq = self.store.queue.values().map(|r| r.seq).fold(0.0, f64::max);
                    self.input(
                        tab,
                        Input::Opened {
                            durable: true,
                            fallback: None,
                            max_seq,
                        },
                    );
                }
            }
            Ev::Timer { tab, gen, at } => {
                if self.tabs[tab].gen == gen && self.tabs[tab].timer == Some(at) {
                    self.tabs[tab].timer = None;
                    // A timer fires no earlier than asked (Workers' frozen clock included).
                    let now = self.local(tab).max(at);
                    let mono = self.now;
                    if let Some(e) = self.tabs[tab].engine.as_mut() {
                        e.handle_at(Input::Timer, now, mono);
                    }
                    self.pump(tab);
                }
            }
            Ev::Remote { tab, gen } => {
                if self.tabs[tab].gen == gen {
                    self.input(tab, Input::Remote);
                }
            }
        }
        for v in std::mem::take(&mut self.server.violations) {
            self.fail(v);
        }
    }

    /// Runs the workload, then brings the network and Autumn back and drains until nothing is
    /// left; returns the violations found.
    pub fn run(&mut self) -> Vec<String> {
        while let Some(s) = self.heap.pop() {
            self.step(s);
            if self.violations.len() > 5 || self.over_budget() {
                return self.violations.clone();
            }
        }
        self.settle();
        self.check_end();
        self.violations.clone()
    }

    fn settle(&mut self) {
        self.server.faults.on = false;
        self.server.outage_until = 0.0;
        self.server.auth_down_until = 0.0;
        self.quota_fail = false;
        for t in 0..self.tabs.len() {
            if self.tabs[t].offline {
                self.tabs[t].offline = false;
                self.input(t, Input::Online);
            }
        }
        for round in 0..60 {
            while let Some(s) = self.heap.pop() {
                self.step(s);
                if self.over_budget() {
                    return;
                }
            }
            let left = self.store.queue.len()
                + self.tabs.iter().map(|t| t.spill.queue.len()).sum::<usize>();
            let calls: usize = self.tabs.iter().map(|t| t.calls.len()).sum();
            if left == 0 && calls == 0 && self.server.running() == 0 {
                return;
            }
            // Let windows and backoffs pass, then force every tab.
            self.now +=
                self.shape.window_ms.max(60_000.0) + if round > 20 { 3_600_000.0 } else { 0.0 };
            for t in 0..self.tabs.len() {
                let call = self.next_call;
                self.next_call += 1;
                self.input(t, Input::Flush { call });
            }
        }
        let left: Vec<String> = self.store.queue.keys().take(5).cloned().collect();
        let calls: usize = self.tabs.iter().map(|t| t.calls.len()).sum();
        self.fail(format!(
            "never settled: {} queued (e.g. {left:?}), {calls} calls unanswered, {} requests running at Autumn",
            self.store.queue.len(),
            self.server.running()
        ));
    }

    fn check_end(&mut self) {
        let mut dead: BTreeMap<String, String> = self
            .store
            .dead
            .values()
            .map(|d| (d.record.key.clone(), d.code.clone()))
            .collect();
        for t in &self.tabs {
            for d in t.spill.dead.values() {
                dead.insert(d.record.key.clone(), d.code.clone());
            }
        }
        let told: Vec<(String, Told)> = self
            .told
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (key, told) in told {
            let recorded = self.server.recorded.get(&key).map_or(0, |r| r.0);
            let letter = dead.get(&key).cloned();
            let poison = self.poison.contains(&key);
            if poison && recorded > 0 {
                self.fail(format!("poison event {key} was recorded"));
            }
            match (&told, recorded, &letter) {
                (_, 0, Some(_)) => {}
                (_, 1, None) => {}
                // The one overlap the client cannot see: recorded by an attempt whose answer
                // never came, then set aside by the policy (expired, bound) or a proxy's refusal.
                (_, 1, Some(code)) if code == "expired" || code == "queue_full" => {}
                (Told::Unproven, _, _) | (Told::Refused(_), 0, _) => {}
                (Told::Unavailable, 0, None) => {}
                // Told "waiting in memory only", and the page died.
                (Told::Queued(Storage::Memory), 0, None) => {}
                // Never promised anything (the page died inside track()): its record, if it was
                // written, was replayed (then it is recorded); else nothing was sent.
                (Told::Nothing, 0, None) => {}
                _ => self.fail(format!(
                    "{key}: told {told:?}, recorded {recorded}x, dead letter {letter:?}"
                )),
            }
        }
    }
}
