//! The JavaScript edge: the only place with `#[wasm_bindgen]` exports. It converts values in
//! both directions and leaves every decision to the pure core: `Engine` wraps
//! [`crate::engine::Engine`], whose commands the driver in `js/tracker.js` carries out; `Consumer`
//! wraps [`crate::consumer::Consumer`] for `js/cfqueue.js`; `classify` is the answer rules for
//! `js/proxy.js`.

pub mod codec;
#[cfg(feature = "server")]
mod consumer;
pub mod convert;
mod encode;
mod error;
mod panic;
mod sys;

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::answer::{Answered, Reply};
use crate::engine::slots::IdMap;
use crate::engine::{self, Env, Id, Input, Stored};
use crate::error::{Code, TrackError};
use crate::event::{parse_input, Event, Host};
use crate::options::{parse_options, Options, QueueMode};

fn js_err(e: &TrackError) -> JsValue {
    error::to_js(e)
}

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// What a store operation in flight was, to read its result.
#[derive(Clone, Copy)]
enum OpKind {
    Added,
    Loaded,
    Counted,
    DeadLoaded,
    Number,
    Updated,
    Done,
}

/// The delivery engine for `js/tracker.js` (internal: the public class is `AutumnTracker`).
#[wasm_bindgen]
pub struct Engine {
    core: engine::Engine,
    keys: codec::Keys,
    ops: IdMap<OpKind>,
}

/// The host of validation: the engine's view of the clock, JavaScript's number formatting, and
/// keys from `crypto.getRandomValues`.
struct JsHost(f64);

impl Host for JsHost {
    fn now_ms(&self) -> f64 {
        self.0
    }
    fn format_num(&self, n: f64, out: &mut String) {
        out.push_str(&sys::js_string_of(n));
    }
    fn new_key(&mut self) -> String {
        new_key(self.0)
    }
}

/// A key as `track()` makes one now (for the key tests only).
#[doc(hidden)]
pub fn new_key_now() -> String {
    new_key(js_sys::Date::now())
}

/// A fresh idempotency key: `crypto.getRandomValues` and the time into a UUID v7.
fn new_key(now: f64) -> String {
    let mut rand = [0u8; 10];
    sys::random_bytes(&mut rand);
    crate::key::uuid_v7(now.max(0.0) as u64, rand)
}

/// Reads `track()` input: the guarded converter (hostile values are reported by field), then
/// the core's validation.
fn prepare(opts: &Options, input: &JsValue, now: f64) -> Result<Event, TrackError> {
    panic::test_point("prepare");
    let value = convert::to_value(input, opts.max_properties_bytes + 16 * 1024);
    parse_input(&value, opts.max_properties_bytes, &mut JsHost(now))
}

fn keys_of(v: &JsValue) -> Result<Vec<String>, JsValue> {
    let err = || {
        js_err(&TrackError::input(
            "keys",
            "expected an array of idempotency keys (strings)",
        ))
    };
    if !sys::is_array(v).unwrap_or(false) {
        return Err(err());
    }
    let arr: &js_sys::Array = v.unchecked_ref();
    arr.iter().map(|k| k.as_string().ok_or_else(err)).collect()
}

fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

#[wasm_bindgen]
impl Engine {
    /// `options` as `new AutumnTracker()` got them, minus `onEvent` and a `queue` object;
    /// `env`: `{ browser, handover, seed, now }`. Throws `TrackError` for wrong options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, env: JsValue) -> Result<Engine, JsValue> {
        let value = convert::to_value(&options, 64 * 1024);
        let opts = parse_options(&value).map_err(|e| js_err(&e))?;
        let browser = get(&env, "browser").as_bool() == Some(true);
        if opts.secret_key.is_some() && !opts.dangerously_allow_browser && browser {
            return Err(js_err(&TrackError::new(
                Code::SecretKeyInBrowser,
                "a secret key in a browser is readable by anyone who opens the page. Keep it on \
                 your server and point `baseUrl` at your own route (or, for tests only, set \
                 `dangerouslyAllowBrowser: true`)",
            )
            .with_field("secretKey")));
        }
        if opts.base_url.starts_with('/') && !browser {
            return Err(js_err(&TrackError::options(
                "baseUrl",
                "a path needs a page's origin; outside a browser give a full http(s) URL",
            )));
        }
        let now = get(&env, "now").as_f64().unwrap_or(0.0);
        let env = Env {
            browser,
            handover: get(&env, "handover").as_bool() == Some(true),
            seed: get(&env, "seed").as_f64().unwrap_or(1.0) as u64,
        };
        Ok(Engine {
            core: engine::Engine::new(opts, env, now),
            keys: codec::Keys::new(),
            ops: IdMap::default(),
        })
    }

    /// `{ headers, trackUrl, batchUrl, queue, queueName, timeoutMs }`: what the driver needs to
    /// carry commands out (the secret key only inside `headers.Authorization`).
    pub fn config(&self) -> JsValue {
        let o = self.core.options();
        let headers = Object::new();
        for (name, value) in o.request_headers() {
            let v = match value {
                crate::options::HeaderValue::Plain(v) => JsValue::from_str(v),
                crate::options::HeaderValue::Bearer(k) => {
                    let mut s = String::from("Bearer ");
                    s.push_str(k);
                    JsValue::from_str(&s)
                }
            };
            encode::set(&headers, name, &v);
        }
        let c = Object::new();
        encode::set(&c, "headers", &headers);
        encode::set(&c, "trackUrl", &JsValue::from_str(&o.track_url()));
        encode::set(&c, "batchUrl", &JsValue::from_str(&o.batch_url()));
        let queue = match o.queue {
            QueueMode::Auto => "auto",
            QueueMode::IndexedDb => "indexeddb",
            QueueMode::Memory => "memory",
            QueueMode::Off => "off",
        };
        encode::set(&c, "queue", &JsValue::from_str(queue));
        encode::set(&c, "queueName", &JsValue::from_str(&o.queue_name));
        encode::set(&c, "timeoutMs", &JsValue::from(o.timeout_ms));
        c.into()
    }

    /// `track(input)` as call `call`: validates synchronously (throws `TrackError`
    /// `invalid_input`), then starts it.
    pub fn track(
        &mut self,
        call: Id,
        input: &JsValue,
        now: f64,
        mono: f64,
        offline: bool,
    ) -> Result<(), JsValue> {
        let ev = prepare(self.core.options(), input, self.core.server_now(now))
            .map_err(|e| js_err(&e))?;
        self.core.handle_at(
            Input::Track {
                call,
                event: ev,
                offline,
            },
            now,
            mono,
        );
        Ok(())
    }

    /// Validates `input` as `track()` does and returns Autumn's snake_case body.
    pub fn validate(&self, input: &JsValue, now: f64) -> Result<JsValue, JsValue> {
        let ev = prepare(self.core.options(), input, self.core.server_now(now))
            .map_err(|e| js_err(&e))?;
        sys::json_parse(&crate::event::wire_body(&ev))
    }

    /// `flush()`, `pending()`, `deadLetters()` as call `call` (`what`: "flush", "pending",
    /// "dead").
    pub fn call(&mut self, what: &str, call: Id, now: f64, mono: f64) {
        let input = match what {
            "flush" => Input::Flush { call },
            "pending" => Input::Pending { call },
            _ => Input::DeadLetters { call },
        };
        self.core.handle_at(input, now, mono);
    }

    /// `discard(keys)` (`retry` false) or `retryDeadLetters(keys?)`; throws for bad keys.
    #[wasm_bindgen(js_name = deadCall)]
    pub fn dead_call(
        &mut self,
        retry: bool,
        call: Id,
        keys: &JsValue,
        now: f64,
        mono: f64,
    ) -> Result<(), JsValue> {
        let keys = if retry && (keys.is_undefined() || keys.is_null()) {
            None
        } else {
            Some(keys_of(keys)?)
        };
        let input = match (retry, keys) {
            (true, keys) => Input::RetryDead { call, keys },
            (false, keys) => Input::Discard {
                call,
                keys: keys.unwrap_or_default(),
            },
        };
        self.core.handle_at(input, now, mono);
        Ok(())
    }

    /// The store is open.
    pub fn opened(
        &mut self,
        durable: bool,
        fallback: Option<String>,
        max_seq: f64,
        now: f64,
        mono: f64,
    ) {
        self.core.handle_at(
            Input::Opened {
                durable,
                fallback,
                max_seq,
            },
            now,
            mono,
        );
    }

    /// A store operation ended: `value` is its result, or (when not `ok`) the reason.
    pub fn stored(&mut self, id: Id, ok: bool, value: &JsValue, now: f64, mono: f64) {
        let kind = self.ops.remove(&id).unwrap_or(OpKind::Done);
        if matches!(kind, OpKind::Loaded) {
            // A drain holds the tab's lock while it reads the queue.
            panic::test_point("drain");
        }
        let result = if ok {
            Ok(self.decode(kind, value))
        } else {
            Err(value
                .as_string()
                .unwrap_or_else(|| String::from("the store failed")))
        };
        self.core.handle_at(Input::Stored { id, result }, now, mono);
    }

    /// An answer arrived in full. Dates are Unix ms (`NaN` when absent or unreadable).
    #[allow(clippy::too_many_arguments)]
    pub fn answered(
        &mut self,
        id: Id,
        status: u16,
        redirected: bool,
        code: Option<String>,
        message: Option<String>,
        snippet: Option<String>,
        retry_after: Option<String>,
        retry_after_date: f64,
        date: f64,
        now: f64,
        mono: f64,
    ) {
        // A call's answer arrives while its record is stored and leased to it.
        panic::test_point("track");
        let reply = Reply::Answer(Answered {
            status,
            redirected,
            code,
            message,
            snippet,
            retry_after,
            retry_after_date: finite(retry_after_date),
            date: finite(date),
        });
        self.core.handle_at(Input::Replied { id, reply }, now, mono);
    }

    /// A request failed without an answer: `how` is `timeout`, `unsent` (it never left: refused,
    /// not resolved) or `network`.
    pub fn failed(&mut self, id: Id, how: &str, message: String, now: f64, mono: f64) {
        let reply = match how {
            "timeout" => Reply::Timeout,
            "unsent" => Reply::Unsent(message),
            _ => Reply::Network(message),
        };
        self.core.handle_at(Input::Replied { id, reply }, now, mono);
    }

    /// A hand-over to the Cloudflare Queue ended (`error` when it did not take them).
    #[wasm_bindgen(js_name = handedOver)]
    pub fn handed_over(&mut self, id: Id, error: Option<String>, now: f64, mono: f64) {
        let result = match error {
            Some(e) => Err(e),
            None => Ok(()),
        };
        self.core
            .handle_at(Input::HandedOver { id, result }, now, mono);
    }

    /// `online`, `offline`, `hidden`, `pagehide`, `remote`, `timer`, `close`, `locked`,
    /// `lockBusy`.
    pub fn signal(&mut self, what: &str, now: f64, mono: f64) {
        let input = match what {
            "online" => Input::Online,
            "offline" => Input::Offline,
            "hidden" => Input::Hidden,
            "pagehide" => Input::PageHide,
            "remote" => Input::Remote,
            "timer" => Input::Timer,
            "locked" => Input::Locked { granted: true },
            "lockBusy" => Input::Locked { granted: false },
            _ => Input::Close,
        };
        self.core.handle_at(input, now, mono);
    }

    /// Appends every pending command to `out`; returns how many.
    ///
    /// Not one command per call returned as an object: V8 before 13 (Node 20 and 22) aborts the
    /// process ("unreachable code" in `Deoptimizer::DoComputeBuiltinContinuation`) when optimized
    /// JS that inlined a call to a wasm function returning an `externref` is deoptimized during
    /// that call. A count is an `i32`, which V8 handles (`tests/soak`, run on Node 20, 22, 24).
    pub fn commands(&mut self, out: &js_sys::Array) -> u32 {
        let mut n = 0;
        while let Some(cmd) = self.core.poll() {
            if let engine::Command::Store { id, cmd: c, .. } = &cmd {
                self.ops.insert(*id, op_kind(c));
            }
            out.push(&encode::command(&self.keys, cmd));
            n += 1;
        }
        n
    }

    fn decode(&self, kind: OpKind, v: &JsValue) -> Stored {
        let list = |v: &JsValue| -> Vec<JsValue> {
            if sys::is_array(v).unwrap_or(false) {
                let a: &js_sys::Array = v.unchecked_ref();
                a.iter().collect()
            } else {
                Vec::new()
            }
        };
        let strings = |v: &JsValue| -> Vec<String> {
            list(v).iter().filter_map(JsValue::as_string).collect()
        };
        match kind {
            OpKind::Added => Stored::Added {
                evicted: strings(&get(v, "evicted")),
                existing: strings(&get(v, "existing")),
                dead_sent: list(&get(v, "deadSent"))
                    .iter()
                    .filter_map(|d| {
                        let key = get(d, "key").as_string()?;
                        Some((key, codec::sent_of(&self.keys, &get(d, "record"))?))
                    })
                    .collect(),
            },
            OpKind::Loaded => Stored::Loaded(
                list(v)
                    .iter()
                    .map(|o| codec::decode_record(&self.keys, o))
                    .collect(),
            ),
            OpKind::Counted => Stored::Counted {
                queued: get(v, "queued").as_f64().unwrap_or(0.0) as u32,
                dead: get(v, "dead").as_f64().unwrap_or(0.0) as u32,
            },
            OpKind::DeadLoaded => Stored::DeadLoaded(
                list(v)
                    .iter()
                    .map(|o| codec::decode_dead(&self.keys, o))
                    .collect(),
            ),
            OpKind::Number => Stored::Number(v.as_f64().unwrap_or(0.0)),
            OpKind::Updated => Stored::Updated {
                missing: strings(v),
            },
            OpKind::Done => Stored::Done,
        }
    }
}

fn op_kind(c: &engine::StoreCmd) -> OpKind {
    use engine::StoreCmd as S;
    match c {
        S::Add { .. } => OpKind::Added,
        S::Load => OpKind::Loaded,
        S::Count => OpKind::Counted,
        S::LoadDead => OpKind::DeadLoaded,
        S::DeleteDead { .. } => OpKind::Number,
        S::Update { .. } | S::Renew { .. } => OpKind::Updated,
        S::Delete { .. } | S::MoveToDead { .. } | S::Revive { .. } => OpKind::Done,
    }
}

#[cfg(feature = "server")]
/// What an answer means, for `js/proxy.js` (the one list of Autumn's codes): `delivered`,
/// `duplicate`, `retry`, `unanswered` (retry; the attempt may still run), `unauthorized`,
/// `redirected`, `customer_mismatch`, `refused`, `future_timestamp`, `unproven`.
#[wasm_bindgen]
pub fn classify(
    status: u16,
    code: Option<String>,
    message: Option<String>,
    redirected: bool,
) -> String {
    use crate::answer::{HoldWhy, Verdict};
    let v = crate::answer::classify(&Reply::Answer(Answered {
        status,
        code,
        message,
        redirected,
        ..Answered::default()
    }));
    String::from(match v {
        Verdict::Delivered => "delivered",
        Verdict::Duplicate => "duplicate",
        Verdict::Retry { unanswered: false } => "retry",
        Verdict::Retry { unanswered: true } => "unanswered",
        Verdict::Hold(HoldWhy::Unauthorized) => "unauthorized",
        Verdict::Hold(HoldWhy::Redirected) => "redirected",
        Verdict::Hold(HoldWhy::CustomerMismatch) => "customer_mismatch",
        Verdict::Refused => "refused",
        Verdict::FutureTimestamp => "future_timestamp",
        Verdict::Unproven => "unproven",
    })
}

/// The confirmation window's default, for the JS side (ms).
#[cfg(feature = "server")]
#[wasm_bindgen(js_name = confirmAfterMs)]
pub fn confirm_after_ms() -> f64 {
    crate::queue::Policy::default().confirm_after_ms
}
