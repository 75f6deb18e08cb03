//! Tracker options: validated once, in the constructor, so a typo or a bad value fails loudly
//! at start-up instead of losing events later.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::TrackError;
use crate::event::{msg as cat, take_fields, DEFAULT_MAX_PROPERTIES_BYTES};
use crate::retry::Policy;
use crate::value::Value;

/// Autumn's API.
pub const DEFAULT_BASE_URL: &str = "https://api.useautumn.com";
/// Sent as `x-api-version` unless overridden: pins the response shape.
pub const DEFAULT_API_VERSION: &str = "2.3.0";
/// Per-attempt timeout, as Autumn's SDKs use.
pub const DEFAULT_TIMEOUT_MS: u32 = 5_000;

/// Validated tracker options.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `am_sk_…` (or a customer JWT); `None` when talking to the app's own proxy.
    pub secret_key: Option<String>,
    /// Without a trailing `/`. May be a path (`/api/autumn`) for a same-origin proxy.
    pub base_url: String,
    /// `x-api-version`.
    pub api_version: String,
    /// Extra headers, in the order given.
    pub headers: Vec<(String, String)>,
    /// Per attempt.
    pub timeout_ms: u32,
    /// Retry timing.
    pub retry: Policy,
    /// Cap on serialized `properties`.
    pub max_properties_bytes: usize,
    /// Permit a secret key in a browser (for tests and trusted kiosks only).
    pub dangerously_allow_browser: bool,
    /// Where undeliverable events wait.
    pub queue: QueueMode,
    /// IndexedDB database name (one queue per name, shared by the tabs of an origin).
    pub queue_name: String,
    /// Bounds and replay timing of the queue.
    pub queue_policy: crate::queue::Policy,
    /// How a backlog is replayed.
    pub drain: DrainMode,
}

/// `queue` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMode {
    /// IndexedDB where it works, memory elsewhere (Node, Workers, private mode).
    Auto,
    /// IndexedDB; falls back to memory (reported) when it cannot be opened.
    IndexedDb,
    /// In memory only: survives retries, not a reload.
    Memory,
    /// No queue: `track()` rejects with `unavailable` when retries run out.
    Off,
}

/// `drain` option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainMode {
    /// Backlogs go through `POST /v1/balances.batch_track` (up to `batchSize` a request).
    /// Autumn accepts a batch as a whole and records it asynchronously: no per-event answer.
    Batch,
    /// One `POST /v1/balances.track` per event: slower, but each event gets Autumn's answer.
    Single,
}

const NAMES: [(&str, Option<&str>); 16] = [
    ("secretKey", None),
    ("baseUrl", None),
    ("apiVersion", None),
    ("headers", None),
    ("timeoutMs", None),
    ("maxRetries", None),
    ("maxPropertiesBytes", None),
    ("dangerouslyAllowBrowser", None),
    ("queue", None),
    ("queueName", None),
    ("maxQueueSize", None),
    ("maxEventAgeMs", None),
    ("batchSize", None),
    ("drain", None),
    ("onEvent", None),
    ("confirmAfterMs", None),
];

fn opt_err(field: &str, m: String) -> TrackError {
    TrackError::options(field, m)
}

fn string_opt<'a>(name: &str, v: Option<&'a Value>) -> Result<Option<&'a str>, TrackError> {
    match v {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(other) => Err(TrackError::options(
            name,
            cat(&["`", name, "` must be a string, got ", other.type_name()]),
        )),
    }
}

fn int_opt(
    name: &str,
    v: Option<&Value>,
    min: f64,
    max: f64,
    default: f64,
) -> Result<f64, TrackError> {
    match v {
        None => Ok(default),
        Some(Value::Num(n)) if crate::float::fract(*n) == 0.0 && *n >= min && *n <= max => Ok(*n),
        Some(_) => {
            let mut m = cat(&["`", name, "` must be an integer from "]);
            crate::value::push_u64(&mut m, min as u64);
            m.push_str(" to ");
            crate::value::push_u64(&mut m, max as u64);
            Err(TrackError::options(name, m))
        }
    }
}

/// True for an RFC 9110 header-name token.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// True for a header value `fetch` accepts: visible ASCII/Latin-1 and inner spaces/tabs.
fn is_header_value(s: &str) -> bool {
    s.chars()
        .all(|c| (c == '\t' || c >= ' ') && c != '\u{7f}' && (c as u32) < 256)
}

/// Validates the options object given to `new AutumnTracker(options)`. `undefined` means all
/// defaults.
pub fn parse_options(v: &Value) -> Result<Options, TrackError> {
    let empty = Value::Obj(Vec::new());
    let v = if matches!(v, Value::Undefined) {
        &empty
    } else {
        v
    };
    let [key, base, version, headers, timeout, retries, max_props, allow_browser, queue, queue_name, max_queue, max_age, batch, drain, on_event, confirm] =
        take_fields(v, &NAMES, "options", opt_err)?;

    let secret_key = match string_opt("secretKey", key)? {
        None => None,
        Some("") => {
            return Err(TrackError::options(
                "secretKey",
                "`secretKey` must not be empty",
            ))
        }
        Some(k) if k.starts_with("am_pk_") => {
            return Err(TrackError::options(
                "secretKey",
                "a publishable key (am_pk_…) cannot track usage: Autumn refuses it with \
                 endpoint_not_public. Use a secret key (am_sk_…) on your server, and point browser \
                 trackers at your own route with `baseUrl`",
            ))
        }
        Some(k) if k.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(TrackError::options(
                "secretKey",
                "`secretKey` contains whitespace or control characters (a stray newline from an \
                 environment file?)",
            ))
        }
        Some(k) => Some(String::from(k)),
    };

    let base_url = match string_opt("baseUrl", base)? {
        None => String::from(DEFAULT_BASE_URL),
        Some(u) => {
            let ok_scheme = u.starts_with("https://") || u.starts_with("http://");
            let ok_path = u.starts_with('/') && !u.starts_with("//");
            if !(ok_scheme && u.len() > "https://".len() || ok_path)
                || u.chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
            {
                return Err(TrackError::options(
                    "baseUrl",
                    "`baseUrl` must be an http(s) URL (\"https://api.useautumn.com\") or a path on \
                     this origin (\"/api/autumn\"), without query or fragment",
                ));
            }
            // Without trailing `/`s (a byte loop: `trim_end_matches` brings core's reverse
            // UTF-8 decoder into the wasm).
            let end = u.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1);
            String::from(u.get(..end).unwrap_or(u))
        }
    };

    let api_version = match string_opt("apiVersion", version)? {
        None => String::from(DEFAULT_API_VERSION),
        Some(s) => {
            // 2 or 3 parts between dots, each 1 to 4 digits (read byte by byte: `split` brings
            // core's string searcher into the wasm).
            let (mut parts, mut len, mut ok) = (1, 0, true);
            for b in s.bytes() {
                if b == b'.' {
                    ok &= len > 0;
                    parts += 1;
                    len = 0;
                } else {
                    ok &= b.is_ascii_digit() && len < 4;
                    len += 1;
                }
            }
            if !(ok && len > 0 && (2..=3).contains(&parts)) {
                return Err(TrackError::options(
                    "apiVersion",
                    "`apiVersion` must look like \"2.3.0\"",
                ));
            }
            String::from(s)
        }
    };

    let mut extra = Vec::new();
    match headers {
        None => {}
        Some(Value::Obj(members)) => {
            for (name, value) in members {
                if matches!(value, Value::Undefined) {
                    continue;
                }
                let Value::Str(value) = value else {
                    return Err(TrackError::options(
                        "headers",
                        cat(&["header `", name, "` must have a string value"]),
                    ));
                };
                if !is_token(name) || !is_header_value(value) {
                    return Err(TrackError::options(
                        "headers",
                        cat(&[
                            "header `",
                            name,
                            "` is not a valid HTTP header name or value",
                        ]),
                    ));
                }
                let lower = name.to_ascii_lowercase();
                if matches!(
                    lower.as_str(),
                    "content-type" | "idempotency-key" | "x-api-version" | "accept"
                ) {
                    return Err(TrackError::options(
                        "headers",
                        cat(&[
                            "header `",
                            name,
                            "` is set by the tracker (use `apiVersion` for x-api-version)",
                        ]),
                    ));
                }
                if lower == "authorization" && secret_key.is_some() {
                    return Err(TrackError::options(
                        "headers",
                        "give `secretKey` or an `Authorization` header, not both",
                    ));
                }
                extra.push((name.clone(), value.clone()));
            }
        }
        Some(other) => {
            return Err(TrackError::options(
                "headers",
                cat(&[
                    "`headers` must be an object of strings, got ",
                    other.type_name(),
                ]),
            ))
        }
    }

    let timeout_ms = int_opt(
        "timeoutMs",
        timeout,
        1.0,
        600_000.0,
        f64::from(DEFAULT_TIMEOUT_MS),
    )? as u32;
    let max_retries = int_opt("maxRetries", retries, 0.0, 20.0, 5.0)? as u32;
    let max_properties_bytes = int_opt(
        "maxPropertiesBytes",
        max_props,
        2.0,
        1_048_576.0,
        DEFAULT_MAX_PROPERTIES_BYTES as f64,
    )? as usize;
    let dangerously_allow_browser = match allow_browser {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(TrackError::options(
                "dangerouslyAllowBrowser",
                "`dangerouslyAllowBrowser` must be a boolean",
            ))
        }
    };

    let queue = match string_opt("queue", queue)? {
        None | Some("auto") => QueueMode::Auto,
        Some("indexeddb") => QueueMode::IndexedDb,
        Some("memory") => QueueMode::Memory,
        Some("off") => QueueMode::Off,
        Some(_) => {
            return Err(TrackError::options(
                "queue",
                "`queue` must be \"auto\", \"indexeddb\", \"memory\" or \"off\"",
            ))
        }
    };
    let queue_name = match string_opt("queueName", queue_name)? {
        None => String::from("autumn-track"),
        Some(n) if !n.is_empty() && crate::value::char_len(n) <= 128 => String::from(n),
        Some(_) => {
            return Err(TrackError::options(
                "queueName",
                "`queueName` must be 1 to 128 characters",
            ))
        }
    };
    let defaults = crate::queue::Policy::default();
    let queue_policy = crate::queue::Policy {
        max_queue_size: int_opt(
            "maxQueueSize",
            max_queue,
            1.0,
            1_000_000.0,
            defaults.max_queue_size as f64,
        )? as usize,
        max_event_age_ms: int_opt(
            "maxEventAgeMs",
            max_age,
            1_000.0,
            30.0 * 86_400_000.0,
            defaults.max_event_age_ms,
        )?,
        batch_size: int_opt("batchSize", batch, 1.0, 1000.0, defaults.batch_size as f64)? as usize,
        confirm_after_ms: int_opt(
            "confirmAfterMs",
            confirm,
            100.0,
            86_400_000.0,
            defaults.confirm_after_ms,
        )?,
        ..defaults
    };
    if queue_policy.confirm_after_ms < f64::from(timeout_ms) {
        return Err(TrackError::options(
            "confirmAfterMs",
            "`confirmAfterMs` must be at least `timeoutMs`: it is how long an attempt can still be \
             running at Autumn after it was sent",
        ));
    }
    let drain = match string_opt("drain", drain)? {
        None | Some("batch") => DrainMode::Batch,
        Some("single") => DrainMode::Single,
        Some(_) => {
            return Err(TrackError::options(
                "drain",
                "`drain` must be \"batch\" or \"single\"",
            ))
        }
    };
    match on_event {
        None | Some(Value::Bad(crate::value::Bad::Function)) => {}
        Some(_) => {
            return Err(TrackError::options(
                "onEvent",
                "`onEvent` must be a function",
            ))
        }
    }

    Ok(Options {
        queue,
        queue_name,
        queue_policy,
        drain,
        secret_key,
        base_url,
        api_version,
        headers: extra,
        timeout_ms,
        retry: Policy {
            max_retries,
            ..Policy::default()
        },
        max_properties_bytes,
        dangerously_allow_browser,
    })
}

impl Options {
    /// The URL of the batch endpoint.
    pub fn batch_url(&self) -> String {
        let mut u = self.base_url.clone();
        u.push_str("/v1/balances.batch_track");
        u
    }

    /// The URL of the single-event track endpoint.
    pub fn track_url(&self) -> String {
        let mut u = self.base_url.clone();
        u.push_str("/v1/balances.track");
        u
    }

    /// Every header of a track request, in order. The secret key never appears elsewhere. The
    /// idempotency key goes in the body only: Autumn's `Idempotency-Key` header claims are shared
    /// with every other route (`/v1/attach`, …), so a business id reused there would make the
    /// track a 409; the body key dedupes single and batch sends alike.
    pub fn request_headers(&self) -> Vec<(&str, HeaderValue<'_>)> {
        let mut h = Vec::with_capacity(5 + self.headers.len());
        h.push(("Content-Type", HeaderValue::Plain("application/json")));
        h.push(("Accept", HeaderValue::Plain("application/json")));
        h.push(("x-api-version", HeaderValue::Plain(&self.api_version)));
        if let Some(k) = &self.secret_key {
            h.push(("Authorization", HeaderValue::Bearer(k)));
        }
        for (n, v) in &self.headers {
            h.push((n, HeaderValue::Plain(v)));
        }
        h
    }
}

/// A header value; `Bearer` is assembled only at the moment of sending.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeaderValue<'a> {
    /// As is.
    Plain(&'a str),
    /// `Bearer <key>`.
    Bearer(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use crate::value::tests_support::from_serde;
    use serde_json::json;

    fn parse(j: serde_json::Value) -> Result<Options, TrackError> {
        parse_options(&from_serde(&j))
    }

    #[test]
    fn defaults() {
        let o = parse_options(&Value::Undefined).unwrap();
        assert_eq!(o.base_url, DEFAULT_BASE_URL);
        assert_eq!(o.api_version, "2.3.0");
        assert_eq!(o.timeout_ms, 5000);
        assert_eq!(o.retry.max_retries, 5);
        assert_eq!(o.max_properties_bytes, 65536);
        assert_eq!(o.secret_key, None);
        assert_eq!(o.track_url(), "https://api.useautumn.com/v1/balances.track");
        assert_eq!(
            o.batch_url(),
            "https://api.useautumn.com/v1/balances.batch_track"
        );
        assert_eq!(o.queue, QueueMode::Auto);
        assert_eq!(o.drain, DrainMode::Batch);
        assert_eq!(o.queue_name, "autumn-track");
        assert_eq!(o.queue_policy, crate::queue::Policy::default());
    }

    #[test]
    fn queue_options() {
        let o = parse(json!({"queue": "memory", "queueName": "app", "maxQueueSize": 5, "maxEventAgeMs": 60000, "batchSize": 10, "drain": "single"})).unwrap();
        assert_eq!(
            (o.queue, o.drain, o.queue_name.as_str()),
            (QueueMode::Memory, DrainMode::Single, "app")
        );
        assert_eq!(
            (o.queue_policy.max_queue_size, o.queue_policy.batch_size),
            (5, 10)
        );
        assert_eq!(o.queue_policy.max_event_age_ms, 60000.0);
        // onEvent arrives as a function (which JSON cannot carry): accepted.
        let v = Value::Obj(vec![(
            "onEvent".into(),
            Value::Bad(crate::value::Bad::Function),
        )]);
        assert!(parse_options(&v).is_ok());
    }

    #[test]
    fn full_options() {
        let o = parse(json!({
            "secretKey": "am_sk_test_abc", "baseUrl": "http://127.0.0.1:8787/", "apiVersion": "2.1",
            "headers": {"x-tenant": "t1"}, "timeoutMs": 100, "maxRetries": 0,
            "maxPropertiesBytes": 1024, "dangerouslyAllowBrowser": true
        }))
        .unwrap();
        assert_eq!(o.track_url(), "http://127.0.0.1:8787/v1/balances.track");
        assert_eq!(o.retry.max_retries, 0);
        let h = o.request_headers();
        assert!(h.contains(&("Authorization", HeaderValue::Bearer("am_sk_test_abc"))));
        assert!(
            h.iter()
                .all(|(n, _)| !n.eq_ignore_ascii_case("idempotency-key")),
            "the key goes in the body only"
        );
        assert!(h.contains(&("x-api-version", HeaderValue::Plain("2.1"))));
        assert!(h.contains(&("x-tenant", HeaderValue::Plain("t1"))));
        // Every trailing `/` goes; a version of three parts of up to 4 digits passes.
        let o = parse(json!({"baseUrl": "https://x.example/api///", "apiVersion": "2024.10.1"}))
            .unwrap();
        assert_eq!(o.track_url(), "https://x.example/api/v1/balances.track");
        assert_eq!(o.api_version, "2024.10.1");
        assert_eq!(
            parse(json!({"baseUrl": "/api/autumn"}))
                .unwrap()
                .track_url(),
            "/api/autumn/v1/balances.track"
        );
    }

    #[test]
    fn no_authorization_without_key() {
        let o = parse(json!({"baseUrl": "/track"})).unwrap();
        assert!(o
            .request_headers()
            .iter()
            .all(|(n, _)| *n != "Authorization"));
    }

    #[test]
    fn refusals() {
        let rows = [
            (json!({"secretKey": "am_pk_test_x"}), "secretKey"),
            (json!({"secretKey": ""}), "secretKey"),
            (json!({"secretKey": "am_sk_test_x\n"}), "secretKey"),
            (json!({"secretKey": 5}), "secretKey"),
            (json!({"baseUrl": "ftp://x"}), "baseUrl"),
            (json!({"baseUrl": "https://"}), "baseUrl"),
            (json!({"baseUrl": "//evil.example"}), "baseUrl"),
            (json!({"baseUrl": "https://x/?a=1"}), "baseUrl"),
            (json!({"apiVersion": "v2"}), "apiVersion"),
            (json!({"apiVersion": "2"}), "apiVersion"),
            (json!({"apiVersion": "2.3.0.1"}), "apiVersion"),
            (json!({"apiVersion": "2..3"}), "apiVersion"),
            (json!({"apiVersion": ".2.3"}), "apiVersion"),
            (json!({"apiVersion": "2.3."}), "apiVersion"),
            (json!({"apiVersion": "2.12345"}), "apiVersion"),
            (json!({"apiVersion": "2.３"}), "apiVersion"),
            (json!({"apiVersion": ""}), "apiVersion"),
            (json!({"baseUrl": "https://x/#top"}), "baseUrl"),
            (json!({"headers": {"bad header": "x"}}), "headers"),
            (json!({"headers": {"x": 1}}), "headers"),
            (json!({"headers": {"x": "a\nb"}}), "headers"),
            (
                json!({"headers": {"Content-Type": "text/plain"}}),
                "headers",
            ),
            (
                json!({"headers": {"Authorization": "Bearer x"}, "secretKey": "am_sk_test_a"}),
                "headers",
            ),
            (json!({"headers": []}), "headers"),
            (json!({"timeoutMs": 0}), "timeoutMs"),
            (json!({"timeoutMs": 1.5}), "timeoutMs"),
            (json!({"maxRetries": -1}), "maxRetries"),
            (json!({"maxRetries": 21}), "maxRetries"),
            (json!({"maxPropertiesBytes": "big"}), "maxPropertiesBytes"),
            (
                json!({"dangerouslyAllowBrowser": 1}),
                "dangerouslyAllowBrowser",
            ),
            (json!({"secretkey": "am_sk_test_x"}), "secretkey"),
            (json!("am_sk_test_x"), "options"),
            (json!({"confirmAfterMs": 10}), "confirmAfterMs"),
            (
                json!({"confirmAfterMs": 1000, "timeoutMs": 2000}),
                "confirmAfterMs",
            ),
        ];
        for (j, field) in rows {
            let e = parse(j.clone()).expect_err(&j.to_string());
            assert_eq!(e.code, Code::InvalidOptions, "{j}");
            assert_eq!(e.field.as_deref(), Some(field), "{j}");
            assert!(
                !e.message.contains("am_sk_test_x"),
                "a key must never be echoed: {}",
                e.message
            );
        }
    }

    #[test]
    fn typo_in_option_is_suggested() {
        let e = parse(json!({"secretkey": "am_sk_test_x"})).unwrap_err();
        assert!(
            e.message.contains("did you mean `secretKey`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn authorization_header_alone_is_allowed_for_proxies() {
        let o =
            parse(json!({"baseUrl": "/api", "headers": {"Authorization": "Bearer user-session"}}))
                .unwrap();
        assert_eq!(o.headers.len(), 1);
    }
}
