//! Fault injection: seeded probabilities, outage switch and per-idempotency-key scripts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// SplitMix64: a tiny, good-enough seeded PRNG (replayable fault runs).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// New generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p` (no draw is made when `p <= 0`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else if max == u64::MAX {
            self.next_u64()
        } else {
            self.next_u64() % (max + 1)
        }
    }
}

/// What `outage: true` does to API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OutageMode {
    /// Answer 503 `internal_error` with `Retry-After` (browsers see a response).
    #[default]
    #[serde(rename = "503")]
    Status503,
    /// Drop the connection (TCP reset) without answering.
    #[serde(rename = "reset")]
    Reset,
}

/// A `Retry-After` that lies (scripted `429_retry_after_*` / `503_retry_after_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LyingRetryAfter {
    /// `315360000`: ten years, in seconds.
    TenYears,
    /// An HTTP-date long past (`Sun, 06 Nov 1994 08:49:37 GMT`).
    Past,
    /// Neither seconds nor a date (`in a while`).
    Garbage,
}

impl LyingRetryAfter {
    /// The header value.
    pub fn value(self) -> &'static str {
        match self {
            LyingRetryAfter::TenYears => "315360000",
            LyingRetryAfter::Past => "Sun, 06 Nov 1994 08:49:37 GMT",
            LyingRetryAfter::Garbage => "in a while",
        }
    }

    fn name(self) -> &'static str {
        match self {
            LyingRetryAfter::TenYears => "10y",
            LyingRetryAfter::Past => "past",
            LyingRetryAfter::Garbage => "garbage",
        }
    }

    fn parse(s: &str) -> Option<LyingRetryAfter> {
        Some(match s {
            "10y" => LyingRetryAfter::TenYears,
            "past" => LyingRetryAfter::Past,
            "garbage" => LyingRetryAfter::Garbage,
            _ => return None,
        })
    }
}

/// How a processed answer is mangled on its way back (the event *was* processed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mangle {
    /// The body is replaced by bytes that are not JSON (status and headers kept).
    Garbage,
    /// The JSON body is cut in half (status and headers kept).
    Truncate,
    /// Status and headers go out, then the body trickles (a byte every 250 ms) and never ends.
    SlowBody,
}

/// One scripted action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Behave normally.
    Ok,
    /// 500 `internal_error`.
    E500,
    /// 502 `internal_error`.
    E502,
    /// 503 `internal_error` + `Retry-After`.
    E503,
    /// 429 plain text + `Retry-After`.
    E429,
    /// Process and record normally, then drop the connection without answering.
    DropAfterRecord,
    /// Close the connection (reset) without answering or processing.
    ResetBeforeBody,
    /// Sleep this many milliseconds, then behave normally.
    Latency(u64),
    /// A proxy's HTML error page with this status (502, 503 or 403), not processed.
    Html(u16),
    /// A 429 or 503 (not processed) whose `Retry-After` lies.
    LyingRetryAfter(u16, LyingRetryAfter),
    /// Not processed; the status line and some headers go out, then the headers trickle and
    /// never finish.
    SlowHeaders,
    /// Processed normally; the answer is mangled.
    Mangle(Mangle),
    /// Claim the request's idempotency keys as Autumn does when a request starts, hold them
    /// this many milliseconds (a stalled database), then end with this status: 200 processes
    /// the request normally (still under the claim); 500/502/503/404 release the keys and
    /// answer that error (404 as `customer_not_found`), as a request that failed late does.
    Hold(u64, u16),
    /// A 302 to `/login` (an auth layer sending an expired session to its sign-in page), not
    /// processed. `fetch` follows it to a 200 HTML page.
    Redirect,
    /// A plain-text 409 from something in between (Autumn never answers a batch 409), not
    /// processed. Script only.
    Conflict,
}

/// Statuses a `hold:<ms>:<status>` action may end with.
pub const HOLD_STATUSES: [u16; 5] = [200, 404, 500, 502, 503];

impl Action {
    /// Parse a script action string.
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "ok" => Action::Ok,
            "500" => Action::E500,
            "502" => Action::E502,
            "503" => Action::E503,
            "429" => Action::E429,
            "drop_after_record" => Action::DropAfterRecord,
            "reset_before_body" => Action::ResetBeforeBody,
            "html_502" => Action::Html(502),
            "html_503" => Action::Html(503),
            "html_403" => Action::Html(403),
            "slow_headers" => Action::SlowHeaders,
            "garbage_body" => Action::Mangle(Mangle::Garbage),
            "truncated_body" => Action::Mangle(Mangle::Truncate),
            "slow_body" => Action::Mangle(Mangle::SlowBody),
            "redirect_302" => Action::Redirect,
            "conflict_409" => Action::Conflict,
            _ => {
                if let Some(rest) = s.strip_prefix("hold:") {
                    let (ms, status) = match rest.split_once(':') {
                        Some((ms, st)) => (ms, st.trim().parse().ok()?),
                        None => (rest, 500),
                    };
                    if !HOLD_STATUSES.contains(&status) {
                        return None;
                    }
                    return Some(Action::Hold(ms.trim().parse().ok()?, status));
                }
                if let Some(ms) = s.strip_prefix("latency:") {
                    return Some(Action::Latency(ms.trim().parse().ok()?));
                }
                let (status, kind) = s.split_once("_retry_after_")?;
                let status = match status {
                    "429" => 429,
                    "503" => 503,
                    _ => return None,
                };
                Action::LyingRetryAfter(status, LyingRetryAfter::parse(kind)?)
            }
        })
    }

    /// The string form.
    pub fn as_string(self) -> String {
        match self {
            Action::Ok => "ok".into(),
            Action::E500 => "500".into(),
            Action::E502 => "502".into(),
            Action::E503 => "503".into(),
            Action::E429 => "429".into(),
            Action::DropAfterRecord => "drop_after_record".into(),
            Action::ResetBeforeBody => "reset_before_body".into(),
            Action::Latency(ms) => format!("latency:{ms}"),
            Action::Html(status) => format!("html_{status}"),
            Action::LyingRetryAfter(status, ra) => format!("{status}_retry_after_{}", ra.name()),
            Action::SlowHeaders => "slow_headers".into(),
            Action::Mangle(Mangle::Garbage) => "garbage_body".into(),
            Action::Mangle(Mangle::Truncate) => "truncated_body".into(),
            Action::Mangle(Mangle::SlowBody) => "slow_body".into(),
            Action::Hold(ms, status) => format!("hold:{ms}:{status}"),
            Action::Redirect => "redirect_302".into(),
            Action::Conflict => "conflict_409".into(),
        }
    }
}

/// Partial update of the faults (`POST /_mock/faults`, config `faults`, CLI flags).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    /// Reset everything to "no faults" (and reseed) before applying the other fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear: Option<bool>,
    /// Reseed the fault RNG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Probability of 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_500: Option<f64>,
    /// Probability of 502.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_502: Option<f64>,
    /// Probability of 503 (+ `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_503: Option<f64>,
    /// Probability of 429 (plain text + `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_429: Option<f64>,
    /// Fixed added latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Extra uniform latency in `0..=latency_jitter_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_jitter_ms: Option<u64>,
    /// Probability of "record, then drop the connection".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_after_record: Option<f64>,
    /// Probability of "reset the connection before reading the body".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_before_body: Option<f64>,
    /// Refuse every API request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage: Option<bool>,
    /// How the outage refuses: `"503"` or `"reset"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outage_mode: Option<OutageMode>,
    /// `Retry-After` seconds on injected 429/503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// A raw `Retry-After` value for injected 429/503, used instead of `retry_after_secs`
    /// (`""` goes back to `retry_after_secs`): lies such as `"315360000"`, a past HTTP-date or
    /// `"soon"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// Probability of a proxy's 502 HTML page (not processed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_502: Option<f64>,
    /// Probability of a proxy's 503 HTML page (not processed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_503: Option<f64>,
    /// Probability of a proxy's 403 HTML page (not processed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_403: Option<f64>,
    /// Probability of headers that never finish (not processed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_headers: Option<f64>,
    /// Probability of a processed answer whose body is replaced by garbage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub garbage_body: Option<f64>,
    /// Probability of a processed answer whose JSON body is cut in half.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_body: Option<f64>,
    /// Probability of a processed answer whose body trickles and never ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_body: Option<f64>,
    /// Probability of "claim the keys, stall, then fail and release" (see [`Action::Hold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_claim: Option<f64>,
    /// How long a probabilistic `hold_claim` stalls, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_claim_ms: Option<u64>,
    /// How a probabilistic `hold_claim` ends (one of [`HOLD_STATUSES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_claim_status: Option<u16>,
    /// Probability of a 302 to the sign-in page (not processed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_302: Option<f64>,
    /// Per-idempotency-key scripts, merged key by key (an empty list removes a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scripts: Option<HashMap<String, Vec<String>>>,
}

fn check_p(name: &str, p: Option<f64>) -> Result<(), String> {
    match p {
        Some(p) if !(p.is_finite() && (0.0..=1.0).contains(&p)) => Err(format!(
            "{name} must be a probability between 0 and 1, got {p}"
        )),
        _ => Ok(()),
    }
}

impl FaultsPatch {
    /// Validate probabilities and script actions.
    pub fn check(&self) -> Result<(), String> {
        check_p("error_500", self.error_500)?;
        check_p("error_502", self.error_502)?;
        check_p("error_503", self.error_503)?;
        check_p("rate_limit_429", self.rate_limit_429)?;
        check_p("drop_after_record", self.drop_after_record)?;
        check_p("reset_before_body", self.reset_before_body)?;
        check_p("html_502", self.html_502)?;
        check_p("html_503", self.html_503)?;
        check_p("html_403", self.html_403)?;
        check_p("slow_headers", self.slow_headers)?;
        check_p("garbage_body", self.garbage_body)?;
        check_p("truncated_body", self.truncated_body)?;
        check_p("slow_body", self.slow_body)?;
        check_p("hold_claim", self.hold_claim)?;
        check_p("redirect_302", self.redirect_302)?;
        if let Some(st) = self.hold_claim_status {
            if !HOLD_STATUSES.contains(&st) {
                return Err(format!(
                    "hold_claim_status must be one of {HOLD_STATUSES:?}, got {st}"
                ));
            }
        }
        if let Some(ra) = &self.retry_after {
            if ra.len() > 200 || !ra.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(format!(
                    "retry_after must be at most 200 printable ASCII characters, got {ra:?}"
                ));
            }
        }
        if let Some(scripts) = &self.scripts {
            for (k, actions) in scripts {
                for a in actions {
                    if Action::parse(a).is_none() {
                        return Err(format!(
                            "scripts[{k:?}]: unknown action {a:?} (expected one of \"ok\", \"500\", \"502\", \"503\", \"429\", \"drop_after_record\", \"reset_before_body\", \"latency:<ms>\", \"html_502\", \"html_503\", \"html_403\", \"slow_headers\", \"garbage_body\", \"truncated_body\", \"slow_body\", \"429_retry_after_10y|past|garbage\", \"503_retry_after_10y|past|garbage\", \"hold:<ms>[:200|404|500|502|503]\", \"redirect_302\", \"conflict_409\")"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The current fault settings, as `GET /_mock/faults` shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultsView {
    /// Seed the RNG was last seeded with.
    pub seed: u64,
    /// Probability of 500.
    pub error_500: f64,
    /// Probability of 502.
    pub error_502: f64,
    /// Probability of 503.
    pub error_503: f64,
    /// Probability of 429.
    pub rate_limit_429: f64,
    /// Fixed latency.
    pub latency_ms: u64,
    /// Latency jitter.
    pub latency_jitter_ms: u64,
    /// Probability of drop-after-record.
    pub drop_after_record: f64,
    /// Probability of reset-before-body.
    pub reset_before_body: f64,
    /// Outage switch.
    pub outage: bool,
    /// Outage mode.
    pub outage_mode: OutageMode,
    /// `Retry-After` on injected 429/503.
    pub retry_after_secs: u64,
    /// Raw `Retry-After` override on injected 429/503 (`null` = `retry_after_secs`).
    pub retry_after: Option<String>,
    /// Probability of a 502 HTML page.
    pub html_502: f64,
    /// Probability of a 503 HTML page.
    pub html_503: f64,
    /// Probability of a 403 HTML page.
    pub html_403: f64,
    /// Probability of never-ending headers.
    pub slow_headers: f64,
    /// Probability of a garbage body on a processed answer.
    pub garbage_body: f64,
    /// Probability of a truncated body on a processed answer.
    pub truncated_body: f64,
    /// Probability of a never-ending body on a processed answer.
    pub slow_body: f64,
    /// Probability of "claim, stall, then fail and release".
    pub hold_claim: f64,
    /// How long a `hold_claim` stalls, ms.
    pub hold_claim_ms: u64,
    /// How a `hold_claim` ends.
    pub hold_claim_status: u16,
    /// Probability of a 302 to the sign-in page.
    pub redirect_302: f64,
    /// Remaining scripted actions per key.
    pub scripts: BTreeMap<String, Vec<String>>,
}

/// What to do before the body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pre {
    /// Carry on.
    Continue,
    /// Outage: answer 503.
    Outage503,
    /// Outage: drop the connection.
    OutageReset,
    /// Probabilistic reset before the body.
    Reset,
}

/// What to do once the body (and its idempotency key) is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Plan {
    /// Sleep first.
    pub latency: Option<Duration>,
    /// Answer with this injected error instead of processing (E500/E502/E503/E429).
    pub error: Option<Action>,
    /// Close the connection without answering, without processing.
    pub reset: bool,
    /// Process, then close the connection without answering.
    pub drop_after_record: bool,
    /// Process, then mangle the answer.
    pub mangle: Option<Mangle>,
    /// Claim the keys, stall this long, then end with this status ([`Action::Hold`]).
    pub hold: Option<(Duration, u16)>,
    /// The action came from a script.
    pub scripted: bool,
}

/// Live fault state.
#[derive(Debug)]
pub struct Faults {
    view: FaultsView,
    base_seed: u64,
    scripts: HashMap<String, VecDeque<Action>>,
    rng: SplitMix64,
}

impl Faults {
    /// No faults, seeded with `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            view: FaultsView {
                seed,
                error_500: 0.0,
                error_502: 0.0,
                error_503: 0.0,
                rate_limit_429: 0.0,
                latency_ms: 0,
                latency_jitter_ms: 0,
                drop_after_record: 0.0,
                reset_before_body: 0.0,
                outage: false,
                outage_mode: OutageMode::Status503,
                retry_after_secs: 1,
                retry_after: None,
                html_502: 0.0,
                html_503: 0.0,
                html_403: 0.0,
                slow_headers: 0.0,
                garbage_body: 0.0,
                truncated_body: 0.0,
                slow_body: 0.0,
                hold_claim: 0.0,
                hold_claim_ms: 3000,
                hold_claim_status: 500,
                redirect_302: 0.0,
                scripts: BTreeMap::new(),
            },
            base_seed: seed,
            scripts: HashMap::new(),
            rng: SplitMix64::new(seed),
        }
    }

    /// Apply a patch (validated first; on error nothing changes).
    pub fn apply(&mut self, p: &FaultsPatch) -> Result<(), String> {
        p.check()?;
        if p.clear == Some(true) {
            *self = Faults::new(self.base_seed);
        }
        if let Some(seed) = p.seed {
            self.view.seed = seed;
            self.rng = SplitMix64::new(seed);
        }
        let v = &mut self.view;
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(x) = p.$f { v.$f = x; } )* };
        }
        set!(
            error_500,
            error_502,
            error_503,
            rate_limit_429,
            latency_ms,
            latency_jitter_ms,
            drop_after_record,
            reset_before_body,
            outage,
            outage_mode,
            retry_after_secs,
            html_502,
            html_503,
            html_403,
            slow_headers,
            garbage_body,
            truncated_body,
            slow_body,
            hold_claim,
            hold_claim_ms,
            hold_claim_status,
            redirect_302
        );
        if let Some(ra) = &p.retry_after {
            v.retry_after = Some(ra.clone()).filter(|s| !s.is_empty());
        }
        if let Some(scripts) = &p.scripts {
            for (k, actions) in scripts {
                let parsed: VecDeque<Action> =
                    actions.iter().filter_map(|a| Action::parse(a)).collect();
                if parsed.is_empty() {
                    self.scripts.remove(k);
                } else {
                    self.scripts.insert(k.clone(), parsed);
                }
            }
        }
        Ok(())
    }

    /// Snapshot for `GET /_mock/faults`.
    pub fn view(&self) -> FaultsView {
        let mut v = self.view.clone();
        v.scripts = self
            .scripts
            .iter()
            .map(|(k, q)| (k.clone(), q.iter().map(|a| a.as_string()).collect()))
            .collect();
        v
    }

    /// `Retry-After` value for injected 429/503: the raw override, else the seconds.
    pub fn retry_after_value(&self) -> String {
        match &self.view.retry_after {
            Some(v) => v.clone(),
            None => self.view.retry_after_secs.to_string(),
        }
    }

    /// Decide before reading the body.
    pub fn before_body(&mut self) -> Pre {
        if self.view.outage {
            return match self.view.outage_mode {
                OutageMode::Status503 => Pre::Outage503,
                OutageMode::Reset => Pre::OutageReset,
            };
        }
        if self.rng.chance(self.view.reset_before_body) {
            return Pre::Reset;
        }
        Pre::Continue
    }

    /// True when any script is pending (lets the server skip key extraction otherwise).
    pub fn has_scripts(&self) -> bool {
        !self.scripts.is_empty()
    }

    /// Decide once the request's idempotency key is known. A pending script action for the key
    /// is consumed and replaces every probabilistic fault for that request.
    pub fn plan(&mut self, key: Option<&str>) -> Plan {
        if let Some(k) = key {
            if let Some(q) = self.scripts.get_mut(k) {
                let action = q.pop_front();
                if q.is_empty() {
                    self.scripts.remove(k);
                }
                if let Some(a) = action {
                    let mut plan = Plan {
                        scripted: true,
                        ..Plan::default()
                    };
                    match a {
                        Action::Ok => {}
                        Action::Latency(ms) => plan.latency = Some(Duration::from_millis(ms)),
                        Action::DropAfterRecord => plan.drop_after_record = true,
                        Action::ResetBeforeBody => plan.reset = true,
                        Action::Mangle(m) => plan.mangle = Some(m),
                        Action::Hold(ms, st) => plan.hold = Some((Duration::from_millis(ms), st)),
                        e => plan.error = Some(e),
                    }
                    return plan;
                }
            }
        }
        let v = &self.view;
        let mut plan = Plan::default();
        if v.latency_ms > 0 || v.latency_jitter_ms > 0 {
            let ms = v
                .latency_ms
                .saturating_add(self.rng.up_to(v.latency_jitter_ms));
            plan.latency = Some(Duration::from_millis(ms));
        }
        if self.rng.chance(v.rate_limit_429) {
            plan.error = Some(Action::E429);
        } else if self.rng.chance(v.error_503) {
            plan.error = Some(Action::E503);
        } else if self.rng.chance(v.error_500) {
            plan.error = Some(Action::E500);
        } else if self.rng.chance(v.error_502) {
            plan.error = Some(Action::E502);
        } else if self.rng.chance(v.drop_after_record) {
            plan.drop_after_record = true;
        } else if self.rng.chance(v.html_502) {
            plan.error = Some(Action::Html(502));
        } else if self.rng.chance(v.html_503) {
            plan.error = Some(Action::Html(503));
        } else if self.rng.chance(v.html_403) {
            plan.error = Some(Action::Html(403));
        } else if self.rng.chance(v.slow_headers) {
            plan.error = Some(Action::SlowHeaders);
        } else if self.rng.chance(v.garbage_body) {
            plan.mangle = Some(Mangle::Garbage);
        } else if self.rng.chance(v.truncated_body) {
            plan.mangle = Some(Mangle::Truncate);
        } else if self.rng.chance(v.slow_body) {
            plan.mangle = Some(Mangle::SlowBody);
        } else if self.rng.chance(v.hold_claim) {
            plan.hold = Some((Duration::from_millis(v.hold_claim_ms), v.hold_claim_status));
        } else if self.rng.chance(v.redirect_302) {
            plan.error = Some(Action::Redirect);
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_replayable() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let f = a.next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn actions_round_trip() {
        for s in [
            "ok",
            "500",
            "502",
            "503",
            "429",
            "drop_after_record",
            "reset_before_body",
            "latency:25",
            "html_502",
            "html_503",
            "html_403",
            "slow_headers",
            "garbage_body",
            "truncated_body",
            "slow_body",
            "429_retry_after_10y",
            "503_retry_after_past",
            "503_retry_after_garbage",
            "hold:3000:500",
            "hold:10:200",
            "hold:4000:404",
            "redirect_302",
        ] {
            assert_eq!(Action::parse(s).map(Action::as_string).as_deref(), Some(s));
        }
        assert_eq!(Action::parse("404"), None);
        assert_eq!(Action::parse("latency:x"), None);
        assert_eq!(Action::parse("html_500"), None);
        assert_eq!(Action::parse("500_retry_after_10y"), None);
        assert_eq!(Action::parse("503_retry_after_soon"), None);
        assert_eq!(Action::parse("hold:5"), Some(Action::Hold(5, 500)));
        assert_eq!(Action::parse("hold:5:418"), None);
        assert_eq!(Action::parse("hold:x:500"), None);
    }

    #[test]
    fn scripts_consume_in_order_then_fall_back() {
        let mut f = Faults::new(1);
        let mut scripts = HashMap::new();
        scripts.insert("k".to_string(), vec!["503".to_string(), "ok".to_string()]);
        assert!(f
            .apply(&FaultsPatch {
                scripts: Some(scripts),
                ..FaultsPatch::default()
            })
            .is_ok());
        assert_eq!(f.plan(Some("k")).error, Some(Action::E503));
        let p = f.plan(Some("k"));
        assert!(p.scripted && p.error.is_none());
        assert!(!f.plan(Some("k")).scripted);
        assert!(!f.has_scripts());
    }
}
