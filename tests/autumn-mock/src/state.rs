//! Bookkeeping: customers, balances, idempotency keys, recorded events, stats.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

use crate::config::{Catalog, Config, CustomerConfig};
use crate::track::{serialize_num, ApiError, Overage, Target, TrackInput};

/// Shards of the key set: a resize rehashes one shard only, which keeps the (global) lock
/// hold short when millions of unique keys pour in.
const KEY_SHARDS: usize = 32;

/// Set of claimed idempotency keys with expiry.
#[derive(Debug)]
pub struct KeyStore {
    shards: Vec<HashMap<String, Instant>>,
    hasher: std::collections::hash_map::RandomState,
    ttl: Duration,
    last_sweep: Instant,
}

impl KeyStore {
    fn new(ttl: Duration) -> KeyStore {
        KeyStore {
            shards: (0..KEY_SHARDS).map(|_| HashMap::new()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            ttl,
            last_sweep: Instant::now(),
        }
    }

    fn shard(&mut self, key: &str) -> Option<&mut HashMap<String, Instant>> {
        use std::hash::BuildHasher;
        let i = (self.hasher.hash_one(key) as usize) % KEY_SHARDS;
        self.shards.get_mut(i)
    }

    /// Claim `key`; `false` when it is already claimed and not expired.
    pub fn claim(&mut self, key: &str, now: Instant) -> bool {
        // Expired keys are ignored below anyway; sweeping only frees memory, so do it at most
        // once per TTL (clamped to 1..60 s).
        let every = self
            .ttl
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        if now.duration_since(self.last_sweep) > every {
            self.last_sweep = now;
            for s in &mut self.shards {
                s.retain(|_, exp| *exp > now);
            }
        }
        let exp = now + self.ttl;
        let Some(shard) = self.shard(key) else {
            return true;
        };
        match shard.get_mut(key) {
            Some(e) if *e > now => false,
            Some(e) => {
                *e = exp;
                true
            }
            None => {
                shard.insert(key.to_owned(), exp);
                true
            }
        }
    }

    /// Release a claim (the request failed).
    pub fn release(&mut self, key: &str) {
        if let Some(shard) = self.shard(key) {
            shard.remove(key);
        }
    }

    fn clear(&mut self) {
        for s in &mut self.shards {
            *s = HashMap::new();
        }
    }
}

/// Request metadata shared by every event of one request.
#[derive(Debug, Serialize)]
pub struct RequestMeta {
    /// `x-api-version` header.
    pub api_version: Option<String>,
    /// `Idempotency-Key` header.
    pub idempotency_header: Option<String>,
    /// Every request header as a JSON object, lowercased name → value (repeated headers
    /// joined with ", "). Pre-rendered: far smaller than a map per event.
    pub headers: Box<RawValue>,
    /// The `drop_after_record` fault hit this request: recorded, then the connection was
    /// dropped without an answer (a browser may resend such a POST on its own). Shown only
    /// when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dropped_after_record: bool,
}

/// One deduction in a track answer.
#[derive(Debug, Clone, Serialize)]
pub struct Deduction {
    /// Feature.
    pub feature_id: Arc<str>,
    /// Amount deducted (after capping).
    #[serde(serialize_with = "serialize_num")]
    pub deducted: f64,
}

/// A recorded event (`GET /_mock/events`).
#[derive(Debug, Serialize)]
pub struct Event {
    /// 1-based order of recording.
    pub seq: u64,
    /// Body `idempotency_key`.
    pub idempotency_key: Option<String>,
    /// `customer_id`.
    pub customer_id: String,
    /// `feature_id` (when tracked by feature).
    pub feature_id: Option<String>,
    /// `event_name` (when tracked by event).
    pub event_name: Option<String>,
    /// `entity_id`.
    pub entity_id: Option<String>,
    /// `value` as sent (1 when absent).
    pub value: Number,
    /// `timestamp` as sent.
    pub timestamp: Option<u64>,
    /// `properties` as sent (pre-rendered JSON).
    pub properties: Option<Box<RawValue>>,
    /// Server clock when received (Unix ms).
    pub received_at: u64,
    /// `"track"` or `"batch"`.
    pub via: &'static str,
    /// `api_version`, `idempotency_header`, `headers`.
    #[serde(flatten)]
    pub meta: Arc<RequestMeta>,
    /// `async` flag.
    #[serde(rename = "async")]
    pub is_async: bool,
    /// `overage_behavior`.
    pub overage_behavior: Option<Overage>,
    /// What was deducted.
    pub deductions: Vec<Deduction>,
}

/// A balance object in Autumn's shape.
#[derive(Debug, Clone, Serialize)]
pub struct BalanceView {
    /// Always `"balance"`.
    pub object: &'static str,
    /// Feature.
    pub feature_id: String,
    /// Granted (included) amount; 0 for unlimited.
    #[serde(serialize_with = "serialize_num")]
    pub granted: f64,
    /// `granted - usage`; 0 for unlimited.
    #[serde(serialize_with = "serialize_num")]
    pub remaining: f64,
    /// Usage so far.
    #[serde(serialize_with = "serialize_num")]
    pub usage: f64,
    /// Unlimited feature.
    pub unlimited: bool,
    /// From the feature config (default false).
    pub overage_allowed: bool,
    /// Always null.
    pub max_purchase: Option<f64>,
    /// Always null.
    pub next_reset_at: Option<u64>,
}

/// Result of applying one track.
#[derive(Debug)]
pub struct Applied {
    /// Single balance (or null).
    pub balance: Option<BalanceView>,
    /// Several balances when an event name maps to several features.
    pub balances: Option<BTreeMap<String, BalanceView>>,
    /// Deductions.
    pub deductions: Vec<Deduction>,
}

#[derive(Debug, Clone)]
struct CustomerState {
    auto_created: bool,
    has: Vec<bool>,
    usage: Vec<f64>,
    entities: HashMap<String, Vec<f64>>,
}

impl CustomerState {
    fn from_config(c: &CustomerConfig, cat: &Catalog) -> CustomerState {
        let n = cat.features.len();
        let has = match &c.features {
            None => vec![true; n],
            Some(list) => cat.features.iter().map(|f| list.contains(&f.id)).collect(),
        };
        CustomerState {
            auto_created: false,
            has,
            usage: vec![0.0; n],
            entities: c
                .entities
                .iter()
                .map(|e| (e.clone(), vec![0.0; n]))
                .collect(),
        }
    }

    fn auto(n: usize) -> CustomerState {
        CustomerState {
            auto_created: true,
            has: vec![true; n],
            usage: vec![0.0; n],
            entities: HashMap::new(),
        }
    }
}

/// Counters for `GET /_mock/stats` (lock-free).
#[derive(Debug)]
pub struct Stats {
    /// API requests (`/v1/*`, not OPTIONS).
    pub requests: AtomicU64,
    /// Track requests (any alias).
    pub track_requests: AtomicU64,
    /// Batch requests.
    pub batch_requests: AtomicU64,
    /// Events recorded.
    pub recorded_events: AtomicU64,
    /// 409 answers.
    pub duplicates_rejected: AtomicU64,
    /// Batch items dropped as duplicates.
    pub duplicates_dropped: AtomicU64,
    /// Batch requests refused by the batch rate limit.
    pub batch_rate_limited: AtomicU64,
    /// Injected faults.
    pub fault_500: AtomicU64,
    /// Injected 502.
    pub fault_502: AtomicU64,
    /// Injected 503.
    pub fault_503: AtomicU64,
    /// Injected 429.
    pub fault_429: AtomicU64,
    /// Injected latency.
    pub fault_latency: AtomicU64,
    /// Injected drop-after-record.
    pub fault_drop: AtomicU64,
    /// Injected reset-before-body.
    pub fault_reset: AtomicU64,
    /// Requests refused by the outage switch.
    pub fault_outage: AtomicU64,
    /// Injected 502 HTML pages.
    pub fault_html_502: AtomicU64,
    /// Injected 503 HTML pages.
    pub fault_html_503: AtomicU64,
    /// Injected 403 HTML pages.
    pub fault_html_403: AtomicU64,
    /// Injected never-ending headers.
    pub fault_slow_headers: AtomicU64,
    /// Injected garbage bodies.
    pub fault_garbage_body: AtomicU64,
    /// Injected truncated bodies.
    pub fault_truncated_body: AtomicU64,
    /// Injected never-ending bodies.
    pub fault_slow_body: AtomicU64,
    /// Injected "claim held, then the request ended" stalls.
    pub fault_hold_claim: AtomicU64,
    /// Injected redirects to the sign-in page.
    pub fault_redirect: AtomicU64,
    /// 413 answers.
    pub too_large: AtomicU64,
    by_status: Vec<AtomicU64>,
}

impl Stats {
    /// Count one answered API request.
    pub fn status(&self, status: u16) {
        if let Some(c) = self.by_status.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Zero everything.
    pub fn reset(&self) {
        for c in [
            &self.requests,
            &self.track_requests,
            &self.batch_requests,
            &self.recorded_events,
            &self.duplicates_rejected,
            &self.duplicates_dropped,
            &self.batch_rate_limited,
            &self.fault_500,
            &self.fault_502,
            &self.fault_503,
            &self.fault_429,
            &self.fault_latency,
            &self.fault_drop,
            &self.fault_reset,
            &self.fault_outage,
            &self.fault_html_502,
            &self.fault_html_503,
            &self.fault_html_403,
            &self.fault_slow_headers,
            &self.fault_garbage_body,
            &self.fault_truncated_body,
            &self.fault_slow_body,
            &self.fault_hold_claim,
            &self.fault_redirect,
            &self.too_large,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        for c in &self.by_status {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// JSON snapshot.
    pub fn to_json(&self, events_stored: usize, events_evicted: u64) -> Value {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut by_status = Map::new();
        for (i, c) in self.by_status.iter().enumerate() {
            let n = g(c);
            if n > 0 {
                by_status.insert((i + 100).to_string(), Value::from(n));
            }
        }
        serde_json::json!({
            "requests": g(&self.requests),
            "track_requests": g(&self.track_requests),
            "batch_requests": g(&self.batch_requests),
            "recorded_events": g(&self.recorded_events),
            "events_stored": events_stored,
            "events_evicted": events_evicted,
            "duplicates_rejected": g(&self.duplicates_rejected),
            "duplicates_dropped_in_batch": g(&self.duplicates_dropped),
            "batch_rate_limited": g(&self.batch_rate_limited),
            "payload_too_large": g(&self.too_large),
            "faults_injected": {
                "error_500": g(&self.fault_500),
                "error_502": g(&self.fault_502),
                "error_503": g(&self.fault_503),
                "rate_limit_429": g(&self.fault_429),
                "latency": g(&self.fault_latency),
                "drop_after_record": g(&self.fault_drop),
                "reset_before_body": g(&self.fault_reset),
                "outage": g(&self.fault_outage),
                "html_502": g(&self.fault_html_502),
                "html_503": g(&self.fault_html_503),
                "html_403": g(&self.fault_html_403),
                "slow_headers": g(&self.fault_slow_headers),
                "garbage_body": g(&self.fault_garbage_body),
                "truncated_body": g(&self.fault_truncated_body),
                "slow_body": g(&self.fault_slow_body),
                "hold_claim": g(&self.fault_hold_claim),
                "redirect_302": g(&self.fault_redirect),
            },
            "by_status": by_status,
        })
    }
}

impl Default for Stats {
    fn default() -> Self {
        let z = || AtomicU64::new(0);
        Stats {
            requests: z(),
            track_requests: z(),
            batch_requests: z(),
            recorded_events: z(),
            duplicates_rejected: z(),
            duplicates_dropped: z(),
            batch_rate_limited: z(),
            fault_500: z(),
            fault_502: z(),
            fault_503: z(),
            fault_429: z(),
            fault_latency: z(),
            fault_drop: z(),
            fault_reset: z(),
            fault_outage: z(),
            fault_html_502: z(),
            fault_html_503: z(),
            fault_html_403: z(),
            fault_slow_headers: z(),
            fault_garbage_body: z(),
            fault_truncated_body: z(),
            fault_slow_body: z(),
            fault_hold_claim: z(),
            fault_redirect: z(),
            too_large: z(),
            by_status: (100..600).map(|_| z()).collect(),
        }
    }
}

/// The mutable store (behind one mutex).
#[derive(Debug)]
pub struct Store {
    cat: Arc<Catalog>,
    initial: HashMap<String, CustomerState>,
    customers: HashMap<String, CustomerState>,
    auto_create: bool,
    max_events: usize,
    events: VecDeque<Event>,
    next_seq: u64,
    evicted: u64,
    /// Body `idempotency_key` namespace.
    pub body_keys: KeyStore,
    /// `Idempotency-Key` header namespace.
    pub header_keys: KeyStore,
    batch_window: VecDeque<Instant>,
    batch_limit: u32,
}

/// Features an input resolves to (validated against the store).
#[derive(Debug)]
pub struct Resolution {
    features: Vec<usize>,
    multi: bool,
}

/// Parsed `/_mock/events` filters.
#[derive(Debug, Default)]
pub struct EventFilter {
    /// `customer_id`.
    pub customer_id: Option<String>,
    /// `idempotency_key`.
    pub idempotency_key: Option<String>,
    /// `feature_id`.
    pub feature_id: Option<String>,
    /// `event_name`.
    pub event_name: Option<String>,
    /// `entity_id`.
    pub entity_id: Option<String>,
    /// `via`.
    pub via: Option<String>,
    /// `idempotency_header`.
    pub idempotency_header: Option<String>,
}

fn matches(f: &Option<String>, v: Option<&str>) -> bool {
    match f {
        None => true,
        Some(want) => v == Some(want.as_str()),
    }
}

impl Store {
    /// Build from config.
    pub fn new(cfg: &Config, cat: Arc<Catalog>) -> Store {
        let initial: HashMap<String, CustomerState> = cfg
            .customers
            .iter()
            .map(|c| (c.id.clone(), CustomerState::from_config(c, &cat)))
            .collect();
        let ttl = Duration::from_secs_f64(cfg.idempotency_ttl_secs);
        Store {
            cat,
            customers: initial.clone(),
            initial,
            auto_create: cfg.auto_create_customers,
            max_events: cfg.max_events,
            events: VecDeque::new(),
            next_seq: 0,
            evicted: 0,
            body_keys: KeyStore::new(ttl),
            header_keys: KeyStore::new(ttl),
            batch_window: VecDeque::new(),
            batch_limit: cfg.batch_rate_limit_per_sec,
        }
    }

    /// Forget all usage, events, keys and the batch window.
    pub fn reset(&mut self) {
        self.customers = self.initial.clone();
        self.events.clear();
        self.next_seq = 0;
        self.evicted = 0;
        self.body_keys.clear();
        self.header_keys.clear();
        self.batch_window.clear();
    }

    /// Batch rate limit: `true` if admitted (and counted).
    pub fn admit_batch(&mut self, now: Instant) -> bool {
        if self.batch_limit == 0 {
            return true;
        }
        while let Some(t) = self.batch_window.front() {
            if now.duration_since(*t) >= Duration::from_secs(1) {
                self.batch_window.pop_front();
            } else {
                break;
            }
        }
        if self.batch_window.len() >= self.batch_limit as usize {
            return false;
        }
        self.batch_window.push_back(now);
        true
    }

    /// Check customer, entity and feature/event exist (404s).
    pub fn resolve(&self, input: &TrackInput) -> Result<Resolution, ApiError> {
        let cust = self.customers.get(&input.customer_id);
        if cust.is_none() && !self.auto_create {
            return Err(ApiError::new(
                404,
                "customer_not_found",
                format!("Customer {} not found", input.customer_id),
            ));
        }
        if let Some(e) = &input.entity_id {
            if !cust.is_some_and(|c| c.entities.contains_key(e)) {
                return Err(ApiError::new(
                    404,
                    "entity_not_found",
                    format!("Entity {e} not found for customer {}", input.customer_id),
                ));
            }
        }
        match &input.target {
            Target::Feature(f) => match self.cat.by_id.get(f) {
                Some(&i) => Ok(Resolution {
                    features: vec![i],
                    multi: false,
                }),
                None => Err(ApiError::new(
                    404,
                    "feature_not_found",
                    format!("Feature {f} not found"),
                )),
            },
            Target::Event(e) => match self.cat.by_event.get(e) {
                Some(list) if !list.is_empty() => Ok(Resolution {
                    features: list.clone(),
                    multi: list.len() > 1,
                }),
                _ => Err(ApiError::new(
                    404,
                    "invalid_request",
                    format!("No features found for event_name {e}"),
                )),
            },
        }
    }

    fn balance_view(&self, fi: usize, usage: f64) -> Option<BalanceView> {
        let f = self.cat.features.get(fi)?;
        let granted = if f.unlimited { 0.0 } else { f.included };
        Some(BalanceView {
            object: "balance",
            feature_id: f.id.clone(),
            granted,
            remaining: if f.unlimited { 0.0 } else { granted - usage },
            usage,
            unlimited: f.unlimited,
            overage_allowed: f.overage_allowed,
            max_purchase: None,
            next_reset_at: None,
        })
    }

    /// Deduct and compute the answer's balances. Creates the customer when auto-create is on.
    pub fn apply(&mut self, input: &TrackInput, res: &Resolution) -> Applied {
        let n = self.cat.features.len();
        let cat = Arc::clone(&self.cat);
        let cust = self
            .customers
            .entry(input.customer_id.clone())
            .or_insert_with(|| CustomerState::auto(n));
        let mut deductions = Vec::with_capacity(res.features.len());
        let mut views: Vec<(usize, f64)> = Vec::with_capacity(res.features.len());
        for &fi in &res.features {
            if !cust.has.get(fi).copied().unwrap_or(false) {
                continue;
            }
            let Some(f) = cat.features.get(fi) else {
                continue;
            };
            let pool_usage = match &input.entity_id {
                Some(e) => cust.entities.get(e).and_then(|u| u.get(fi)).copied(),
                None => cust.usage.get(fi).copied(),
            }
            .unwrap_or(0.0);
            let mut d = input.value;
            if input.overage == Some(Overage::Cap) && !f.unlimited && d > 0.0 {
                let remaining = (f.included - pool_usage).max(0.0);
                d = d.min(remaining);
            }
            if let Some(u) = cust.usage.get_mut(fi) {
                *u += d;
            }
            let mut new_pool = cust.usage.get(fi).copied().unwrap_or(0.0);
            if let Some(e) = &input.entity_id {
                if let Some(u) = cust.entities.get_mut(e).and_then(|u| u.get_mut(fi)) {
                    *u += d;
                    new_pool = *u;
                }
            }
            deductions.push(Deduction {
                feature_id: cat
                    .ids
                    .get(fi)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(f.id.as_str())),
                deducted: d,
            });
            views.push((fi, new_pool));
        }
        let mut applied = Applied {
            balance: None,
            balances: None,
            deductions,
        };
        if res.multi {
            applied.balances = Some(
                views
                    .iter()
                    .filter_map(|&(fi, u)| self.balance_view(fi, u))
                    .map(|b| (b.feature_id.clone(), b))
                    .collect(),
            );
        } else if let Some(&(fi, u)) = views.first() {
            applied.balance = self.balance_view(fi, u);
        }
        applied
    }

    /// Append an event (evicting the oldest past `max_events`).
    pub fn record(&mut self, mut ev: Event) {
        self.next_seq += 1;
        ev.seq = self.next_seq;
        if self.max_events == 0 {
            self.evicted += 1;
            return;
        }
        while self.events.len() >= self.max_events {
            self.events.pop_front();
            self.evicted += 1;
        }
        self.events.push_back(ev);
    }

    /// Events kept / evicted.
    pub fn event_counts(&self) -> (usize, u64) {
        (self.events.len(), self.evicted)
    }

    /// Serialize matching events as `{"count": N, "events": [...]}`.
    pub fn events_json(&self, f: &EventFilter) -> Vec<u8> {
        let list: Vec<&Event> = self
            .events
            .iter()
            .filter(|e| {
                matches(&f.customer_id, Some(&e.customer_id))
                    && matches(&f.idempotency_key, e.idempotency_key.as_deref())
                    && matches(&f.feature_id, e.feature_id.as_deref())
                    && matches(&f.event_name, e.event_name.as_deref())
                    && matches(&f.entity_id, e.entity_id.as_deref())
                    && matches(&f.via, Some(e.via))
                    && matches(&f.idempotency_header, e.meta.idempotency_header.as_deref())
            })
            .collect();
        #[derive(Serialize)]
        struct Out<'a> {
            count: usize,
            events: Vec<&'a Event>,
        }
        serde_json::to_vec(&Out {
            count: list.len(),
            events: list,
        })
        .unwrap_or_default()
    }

    /// `GET /_mock/balances` body.
    pub fn balances_json(&self, customer: Option<&str>) -> Value {
        let mut out = Map::new();
        let mut ids: Vec<&String> = self.customers.keys().collect();
        ids.sort();
        for id in ids {
            if customer.is_some_and(|c| c != id.as_str()) {
                continue;
            }
            let Some(c) = self.customers.get(id) else {
                continue;
            };
            let mut feats = Map::new();
            for (fi, f) in self.cat.features.iter().enumerate() {
                if !c.has.get(fi).copied().unwrap_or(false) {
                    continue;
                }
                let u = c.usage.get(fi).copied().unwrap_or(0.0);
                if let Some(b) = self.balance_view(fi, u) {
                    feats.insert(f.id.clone(), serde_json::to_value(b).unwrap_or(Value::Null));
                }
            }
            let mut ents = Map::new();
            let mut eids: Vec<&String> = c.entities.keys().collect();
            eids.sort();
            for e in eids {
                let mut ef = Map::new();
                if let Some(usage) = c.entities.get(e) {
                    for (fi, f) in self.cat.features.iter().enumerate() {
                        if !c.has.get(fi).copied().unwrap_or(false) {
                            continue;
                        }
                        let u = usage.get(fi).copied().unwrap_or(0.0);
                        if let Some(b) = self.balance_view(fi, u) {
                            ef.insert(f.id.clone(), serde_json::to_value(b).unwrap_or(Value::Null));
                        }
                    }
                }
                ents.insert(e.clone(), Value::Object(ef));
            }
            out.insert(
                id.clone(),
                serde_json::json!({
                    "auto_created": c.auto_created,
                    "features": feats,
                    "entities": ents,
                }),
            );
        }
        serde_json::json!({ "customers": out })
    }
}

/// Allowed secret keys as a set (`None` = any well-formed key).
pub fn key_set(cfg: &Config) -> Option<HashSet<String>> {
    cfg.secret_keys
        .as_ref()
        .map(|v| v.iter().cloned().collect())
}
