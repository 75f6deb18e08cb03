//! A simulated Autumn with the contract's claim rules (shared/autumn-contract.md): a key is
//! claimed when a request starts and held while it runs; a duplicate gets 409 at once; a request
//! that ends with a status ≥ 400 (other than 409) releases its claim; a batch drops an item whose
//! key is claimed, silently; 10 batch requests a second; keys live 24 hours; timestamps in the
//! future are refused. It also misbehaves: slow requests that outlive the client, held claims
//! that then fail, recorded-then-dropped connections, proxies answering for it, redirects,
//! outages, a key that stops working.

use std::collections::{HashMap, VecDeque};

use autumn_track::answer::Answered;
use serde_json::Value;

use super::Rng;

pub const TTL_MS: f64 = 24.0 * 3_600_000.0;

/// One claim, and how the request holding it will end (the simulation knows the future, so it
/// can tell a 409 that proves a recording from one that does not).
#[derive(Clone, Debug)]
pub struct Claim {
    pub attempt: u64,
    pub will_record: bool,
}

#[derive(Default)]
pub struct Server {
    pub claims: HashMap<String, Claim>,
    /// Key → (times recorded, world time of the first).
    pub recorded: HashMap<String, (u32, f64)>,
    pub violations: Vec<String>,
    batch_times: VecDeque<f64>,
    next_attempt: u64,
    /// Running requests: attempt → (claimed keys, keys to record at the end, whether it records).
    running: HashMap<u64, (Vec<String>, bool)>,
    pub faults: Faults,
    pub outage_until: f64,
    pub auth_down_until: f64,
    pub stats: HashMap<&'static str, u64>,
}

/// Fault probabilities (per request) while faults are on.
#[derive(Clone, Copy, Default)]
pub struct Faults {
    pub on: bool,
    pub rate: f64,
}

/// How a request ends for the client.
pub enum Reaction {
    /// The answer, this many ms after arrival.
    Answer(f64, Answered),
    /// The connection drops, this many ms after arrival (no answer).
    Drop(f64),
}

/// What the world must schedule for one request.
pub struct Arrival {
    pub reaction: Reaction,
    /// The request's end at the server (records or releases), this many ms after arrival.
    pub end: Option<(f64, u64)>,
}

pub struct Item {
    pub key: String,
    pub poison: bool,
    pub ts: Option<f64>,
}

/// Reads a track body.
pub fn item(v: &Value) -> Item {
    Item {
        key: v["idempotency_key"].as_str().unwrap_or("").to_owned(),
        poison: v["feature_id"].as_str() == Some("no_such_feature"),
        ts: v["timestamp"].as_f64(),
    }
}

fn json_err(status: u16, code: &str, message: &str, date: f64) -> Answered {
    Answered {
        status,
        code: Some(code.into()),
        message: Some(message.into()),
        date: Some(date),
        ..Answered::default()
    }
}

fn plain(status: u16, date: f64) -> Answered {
    Answered {
        status,
        date: Some(date),
        snippet: Some("<html>proxy</html>".into()),
        ..Answered::default()
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ok,
    E500,
    E503,
    E429,
    SlowOk,
    SlowFail,
    HoldFail,
    Drop,
    Proxy502,
    Html503,
    Redirect,
    Reset,
}

impl Server {
    fn bump(&mut self, k: &'static str) {
        *self.stats.entry(k).or_default() += 1;
    }

    fn draw(&mut self, rng: &mut Rng) -> Kind {
        if !self.faults.on || rng.unit() >= self.faults.rate {
            return Kind::Ok;
        }
        const KINDS: [(Kind, u32); 11] = [
            (Kind::E500, 10),
            (Kind::E503, 10),
            (Kind::E429, 8),
            (Kind::SlowOk, 8),
            (Kind::SlowFail, 8),
            (Kind::HoldFail, 10),
            (Kind::Drop, 8),
            (Kind::Proxy502, 8),
            (Kind::Html503, 5),
            (Kind::Redirect, 4),
            (Kind::Reset, 6),
        ];
        let total: u32 = KINDS.iter().map(|k| k.1).sum();
        let mut x = rng.below(u64::from(total)) as u32;
        for (k, w) in KINDS {
            if x < w {
                return k;
            }
            x -= w;
        }
        Kind::Ok
    }

    /// Key TTL: a recording older than 24 h no longer dedupes.
    fn claimed(&mut self, key: &str, now: f64) -> bool {
        if self.claims.contains_key(key) {
            return true;
        }
        match self.recorded.get(key) {
            Some((_, at)) => now - at < TTL_MS,
            None => false,
        }
    }

    /// Would a 409 for `key` now be backed by a recording (done, or certain to come)?
    pub fn backed(&self, key: &str) -> bool {
        self.recorded.contains_key(key) || self.claims.get(key).is_some_and(|c| c.will_record)
    }

    fn record(&mut self, key: &str, now: f64) {
        let e = self.recorded.entry(key.to_owned()).or_insert((0, now));
        e.0 += 1;
        if e.0 > 1 {
            self.violations
                .push(format!("key {key} recorded {} times", e.0));
        }
    }

    /// A request arrives at world time `now` (server clock `server_now`); `timeout` is the
    /// client's, `window` the engine's confirmation window (slow requests stay inside it).
    #[allow(clippy::too_many_arguments)]
    pub fn arrive(
        &mut self,
        now: f64,
        server_now: f64,
        batch: bool,
        body: &str,
        timeout: f64,
        window: f64,
        rng: &mut Rng,
    ) -> Arrival {
        let date = (server_now / 1000.0).floor() * 1000.0;
        let quick = |ms: f64, a: Answered| Arrival {
            reaction: Reaction::Answer(ms, a),
            end: None,
        };
        if now < self.outage_until {
            self.bump("outage");
            let mut a = json_err(503, "internal_error", "Service unavailable", date);
            a.retry_after = Some("1".into());
            return quick(2.0, a);
        }
        if now < self.auth_down_until {
            self.bump("auth_down");
            return quick(
                2.0,
                json_err(401, "invalid_secret_key", "Invalid secret key", date),
            );
        }
        let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let items: Vec<Item> = if batch {
            parsed
                .as_array()
                .map(|a| a.iter().map(item).collect())
                .unwrap_or_default()
        } else {
            vec![item(&parsed)]
        };
        if batch {
            while self.batch_times.front().is_some_and(|t| now - t >= 1000.0) {
                self.batch_times.pop_front();
            }
            if self.batch_times.len() >= 10 {
                self.bump("batch_429");
                let mut a = plain(429, date);
                a.snippet = Some("Too many requests, please try again later.".into());
                a.retry_after = Some("1".into());
                return quick(1.0, a);
            }
            self.batch_times.push_back(now);
        }
        if items
            .iter()
            .any(|i| i.ts.is_some_and(|t| t > server_now + 1000.0))
        {
            self.bump("future_ts");
            return quick(
                2.0,
                json_err(
                    400,
                    "invalid_inputs",
                    "timestamp cannot be in the future",
                    date,
                ),
            );
        }
        let kind = self.draw(rng);
        let fast = 1.0 + rng.below(20) as f64;
        match kind {
            Kind::E500 => {
                return quick(
                    fast,
                    json_err(500, "internal_error", "Internal error", date),
                )
            }
            Kind::E503 => {
                let mut a = json_err(503, "internal_error", "Service unavailable", date);
                a.retry_after = Some("1".into());
                return quick(fast, a);
            }
            Kind::E429 => {
                let mut a = plain(429, date);
                a.retry_after = Some(format!("{}", 1 + rng.below(3)));
                return quick(fast, a);
            }
            Kind::Html503 => return quick(fast, plain(503, date)),
            Kind::Redirect => {
                let mut a = plain(302, date);
                a.redirected = true;
                a.status = 200;
                return quick(fast, a);
            }
            Kind::Reset => {
                return Arrival {
                    reaction: Reaction::Drop(fast),
                    end: None,
                }
            }
            _ => {}
        }
        self.bump(match kind {
            Kind::Ok => "ok",
            Kind::SlowOk => "slow_ok",
            Kind::SlowFail => "slow_fail",
            Kind::HoldFail => "hold_fail",
            Kind::Drop => "drop_after_record",
            Kind::Proxy502 => "proxy_502",
            _ => "other",
        });
        // Processed: the claim comes first.
        let poison = items.iter().any(|i| i.poison);
        if !batch {
            let key = items.first().map(|i| i.key.clone()).unwrap_or_default();
            if self.claimed(&key, now) {
                self.bump("409");
                return quick(
                    2.0,
                    json_err(409, "duplicate_idempotency_key", "duplicate", date),
                );
            }
        } else if poison {
            // A batch is looked up as a whole before anything is claimed.
            return quick(
                fast,
                json_err(
                    404,
                    "feature_not_found",
                    "items[0]: Feature not found",
                    date,
                ),
            );
        }
        // Requests run at most 80% of the confirmation window: the window is the promise that
        // no request outlives it (its default, 2 minutes, is far beyond what Autumn was seen to
        // take; see README).
        let slow = (timeout + rng.unit() * (window * 0.8 - timeout).max(1.0)).min(window * 0.8);
        let (duration, records) = match kind {
            Kind::Ok | Kind::Drop => (fast, !poison),
            Kind::SlowOk => (slow, !poison),
            Kind::SlowFail => (slow, false),
            Kind::HoldFail => (100.0 + rng.unit() * 700.0, false),
            Kind::Proxy502 => (slow, !poison && rng.unit() < 0.5),
            _ => (fast, !poison),
        };
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        let mut claimed = Vec::new();
        for i in &items {
            if !self.claimed(&i.key, now) && !claimed.contains(&i.key) {
                self.claims.insert(
                    i.key.clone(),
                    Claim {
                        attempt,
                        will_record: records,
                    },
                );
                claimed.push(i.key.clone());
            }
        }
        self.running.insert(attempt, (claimed, records));
        let end_date = ((server_now + duration) / 1000.0).floor() * 1000.0;
        let answer = if records {
            Answered {
                status: 200,
                date: Some(end_date),
                ..Answered::default()
            }
        } else if poison {
            json_err(404, "feature_not_found", "Feature not found", end_date)
        } else {
            json_err(500, "internal_error", "Internal error", end_date)
        };
        let reaction = match kind {
            Kind::Drop => Reaction::Drop(duration),
            // A proxy in front gives up on Autumn and answers for it, while Autumn goes on.
            Kind::Proxy502 => Reaction::Answer((timeout * 0.3).min(duration), plain(502, date)),
            _ => Reaction::Answer(duration, answer),
        };
        Arrival {
            reaction,
            end: Some((duration, attempt)),
        }
    }

    /// A running request ends at world time `now`: it records, or releases its claims.
    pub fn end(&mut self, attempt: u64, now: f64) {
        let Some((claimed, records)) = self.running.remove(&attempt) else {
            return;
        };
        for k in claimed {
            if self.claims.get(&k).is_some_and(|c| c.attempt == attempt) {
                self.claims.remove(&k);
                if records {
                    self.record(&k, now);
                }
            }
        }
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }
}
