//! Mock configuration: secret keys, features, customers and limits.
//!
//! The JSON file given with `--config FILE` has this shape (every key optional, unknown keys
//! ignored):
//!
//! ```json
//! {
//!   "secret_keys": ["am_sk_test_abc"],
//!   "auto_create_customers": false,
//!   "features": [{"id": "messages", "included": 100, "event_names": ["message_sent"], "unlimited": false}],
//!   "customers": [{"id": "cus_1", "entities": ["seat_1"]}],
//!   "idempotency_ttl_secs": 86400,
//!   "batch_rate_limit_per_sec": 10,
//!   "max_body_bytes": 2097152,
//!   "max_events": 500000,
//!   "seed": 1,
//!   "faults": {"error_503": 0.1}
//! }
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::faults::FaultsPatch;

/// Default TCP port of the binary (`--port`).
pub const DEFAULT_PORT: u16 = 8787;
/// Default idempotency-key lifetime: 24 hours, as Autumn.
pub const DEFAULT_IDEMPOTENCY_TTL_SECS: f64 = 86_400.0;
/// Default batch rate limit (requests per rolling second), as Autumn.
pub const DEFAULT_BATCH_RATE_LIMIT: u32 = 10;
/// Default request body limit: 2 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
/// Default number of events kept for `/_mock/events` (oldest evicted first).
pub const DEFAULT_MAX_EVENTS: usize = 500_000;
/// Default fault RNG seed.
pub const DEFAULT_SEED: u64 = 1;

/// One metered feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureConfig {
    /// Feature id, e.g. `messages`.
    pub id: String,
    /// Included (granted) amount per customer and per entity.
    #[serde(default)]
    pub included: f64,
    /// Event names that map to this feature (`event_name` tracking).
    #[serde(default)]
    pub event_names: Vec<String>,
    /// Unlimited feature: usage is counted, `granted`/`remaining` are 0.
    #[serde(default)]
    pub unlimited: bool,
    /// Reported as `overage_allowed` in balances (the mock always allows overage unless the
    /// request says `overage_behavior: "cap"`).
    #[serde(default)]
    pub overage_allowed: bool,
}

/// One customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerConfig {
    /// Customer id, e.g. `cus_1`.
    pub id: String,
    /// Entity ids that exist for this customer (for `entity_id`).
    #[serde(default)]
    pub entities: Vec<String>,
    /// Feature ids this customer has a balance for; absent = every feature. Tracking a feature
    /// the customer has no balance for answers 200 with `balance: null`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

/// The whole mock configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// Accepted secret keys. `None` = any well-formed `am_sk_test_…` / `am_sk_live_…` key.
    #[serde(default)]
    pub secret_keys: Option<Vec<String>>,
    /// Create unknown customers on first track instead of 404 `customer_not_found`.
    #[serde(default)]
    pub auto_create_customers: bool,
    /// Features.
    #[serde(default = "default_features")]
    pub features: Vec<FeatureConfig>,
    /// Customers.
    #[serde(default = "default_customers")]
    pub customers: Vec<CustomerConfig>,
    /// Idempotency-key lifetime in seconds (fractions allowed).
    #[serde(default = "default_ttl")]
    pub idempotency_ttl_secs: f64,
    /// Batch requests allowed per rolling second; 0 disables the limit.
    #[serde(default = "default_batch_rate")]
    pub batch_rate_limit_per_sec: u32,
    /// Largest accepted request body in bytes (bigger: 413).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Events kept for inspection; the oldest are evicted past this.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Fault RNG seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Faults active from the start.
    #[serde(default)]
    pub faults: Option<FaultsPatch>,
}

fn default_ttl() -> f64 {
    DEFAULT_IDEMPOTENCY_TTL_SECS
}
fn default_batch_rate() -> u32 {
    DEFAULT_BATCH_RATE_LIMIT
}
fn default_max_body() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_events() -> usize {
    DEFAULT_MAX_EVENTS
}

fn feature(id: &str, included: f64, events: &[&str], unlimited: bool) -> FeatureConfig {
    FeatureConfig {
        id: id.to_owned(),
        included,
        event_names: events.iter().map(|s| (*s).to_owned()).collect(),
        unlimited,
        overage_allowed: false,
    }
}

/// Built-in features.
///
/// | id | included | event_names |
/// |---|---|---|
/// | `messages` | 100 | `message_sent` |
/// | `api_calls` | 10000 | `api_call` |
/// | `ai_tokens` | unlimited | `ai_completion` |
/// | `seats` | 5 | — |
/// | `reports` | 20 | `report_generated` |
/// | `credits` | 1000 | `report_generated` |
///
/// `report_generated` maps to two features, so tracking it answers `balances` (a map) and
/// `balance: null`.
pub fn default_features() -> Vec<FeatureConfig> {
    vec![
        feature("messages", 100.0, &["message_sent"], false),
        feature("api_calls", 10_000.0, &["api_call"], false),
        feature("ai_tokens", 0.0, &["ai_completion"], true),
        feature("seats", 5.0, &[], false),
        feature("reports", 20.0, &["report_generated"], false),
        feature("credits", 1000.0, &["report_generated"], false),
    ]
}

/// Built-in customers: `cus_1` (entities `seat_1`, `seat_2`), `cus_2` and `cus_3` (entity
/// `seat_1`).
pub fn default_customers() -> Vec<CustomerConfig> {
    let c = |id: &str, ents: &[&str]| CustomerConfig {
        id: id.to_owned(),
        entities: ents.iter().map(|s| (*s).to_owned()).collect(),
        features: None,
    };
    vec![
        c("cus_1", &["seat_1", "seat_2"]),
        c("cus_2", &["seat_1"]),
        c("cus_3", &["seat_1"]),
    ]
}

impl Default for Config {
    fn default() -> Self {
        Config {
            secret_keys: None,
            auto_create_customers: false,
            features: default_features(),
            customers: default_customers(),
            idempotency_ttl_secs: DEFAULT_IDEMPOTENCY_TTL_SECS,
            batch_rate_limit_per_sec: DEFAULT_BATCH_RATE_LIMIT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_events: DEFAULT_MAX_EVENTS,
            seed: None,
            faults: None,
        }
    }
}

impl Config {
    /// Parse a config from JSON text.
    pub fn from_json(text: &str) -> Result<Config, String> {
        let cfg: Config = serde_json::from_str(text).map_err(|e| format!("config: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Read and parse a config file.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("config {}: {e}", path.display()))?;
        Config::from_json(&text)
    }

    /// Check ids are unique and references resolve.
    pub fn validate(&self) -> Result<(), String> {
        let mut ids = HashSet::new();
        for f in &self.features {
            if f.id.is_empty() {
                return Err("config: a feature has an empty id".into());
            }
            if !ids.insert(f.id.as_str()) {
                return Err(format!("config: duplicate feature id {:?}", f.id));
            }
            if !f.included.is_finite() {
                return Err(format!(
                    "config: feature {:?}: included must be finite",
                    f.id
                ));
            }
        }
        let mut cids = HashSet::new();
        for c in &self.customers {
            if c.id.is_empty() {
                return Err("config: a customer has an empty id".into());
            }
            if !cids.insert(c.id.as_str()) {
                return Err(format!("config: duplicate customer id {:?}", c.id));
            }
            if let Some(fs) = &c.features {
                for f in fs {
                    if !ids.contains(f.as_str()) {
                        return Err(format!(
                            "config: customer {:?} lists unknown feature {f:?}",
                            c.id
                        ));
                    }
                }
            }
        }
        if !(self.idempotency_ttl_secs.is_finite() && self.idempotency_ttl_secs >= 0.0) {
            return Err("config: idempotency_ttl_secs must be a non-negative number".into());
        }
        if self.max_body_bytes == 0 {
            return Err("config: max_body_bytes must be > 0".into());
        }
        if let Some(keys) = &self.secret_keys {
            for k in keys {
                if crate::auth::secret_env(k).is_none() {
                    return Err(format!(
                        "config: secret key {k:?} is not of the form am_sk_test_… / am_sk_live_…"
                    ));
                }
            }
        }
        if let Some(f) = &self.faults {
            f.check()?;
        }
        Ok(())
    }
}

/// Feature lookup tables derived from the config.
#[derive(Debug)]
pub(crate) struct Catalog {
    pub features: Vec<FeatureConfig>,
    pub ids: Vec<std::sync::Arc<str>>,
    pub by_id: HashMap<String, usize>,
    pub by_event: HashMap<String, Vec<usize>>,
}

impl Catalog {
    pub fn new(features: &[FeatureConfig]) -> Catalog {
        let mut by_id = HashMap::new();
        let mut by_event: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, f) in features.iter().enumerate() {
            by_id.insert(f.id.clone(), i);
            for e in &f.event_names {
                let v = by_event.entry(e.clone()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        Catalog {
            features: features.to_vec(),
            ids: features
                .iter()
                .map(|f| std::sync::Arc::from(f.id.as_str()))
                .collect(),
            by_id,
            by_event,
        }
    }
}
