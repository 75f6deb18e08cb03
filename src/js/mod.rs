//! The JavaScript edge: the only place with `#[wasm_bindgen]` exports. It converts values in
//! both directions and leaves every decision to the pure core: `Engine` wraps
//! [`crate::engine::Engine`], whose commands the driver in `js/tracker.js` carries out; `Consumer`
//! wraps [`crate::consumer::Consumer`] for `js/cfqueue.js`; `classify` is the answer rules for
//! `js/proxy.js`.

#[doc(hidden)]
pub mod codec;
#[cfg(feature = "server")]
mod consumer;
pub mod convert;
mod error;
mod panic;
mod sys;

use alloc::string::String;
use alloc::vec::Vec;

use wasm_bindgen::prelude::*;

use crate::engine::slots::IdMap;
use crate::engine::wire::{self, OpKind};
use crate::engine::{self, Env, Input, Stored};
use crate::error::{Code, TrackError};
use crate::event::{parse_input, Event, Host};
use crate::options::{parse_options, Options};
use crate::value::Value;

fn js_err(e: &TrackError) -> JsValue {
    error::to_js(e)
}

/// The delivery engine for `js/tracker.js` (internal: the public class is `AutumnTracker`).
#[wasm_bindgen]
pub struct Engine {
    core: engine::Engine,
    ops: IdMap<OpKind>,
    /// The `busy` list the driver holds (see `wire::write_commands`).
    busy_sent: Option<alloc::rc::Rc<Vec<String>>>,
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

/// JavaScript's `String(n)`, for numbers that are not safe integers.
fn js_num(n: f64, out: &mut String) {
    out.push_str(&sys::js_string_of(n));
}

#[wasm_bindgen]
impl Engine {
    /// `options` as `new AutumnTracker()` got them, minus `onEvent` and a `queue` object;
    /// `env`: `{ browser, handover, seed, now }`. Throws `TrackError` for wrong options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue, env: JsValue) -> Result<Engine, JsValue> {
        let value = convert::to_value(&options, 64 * 1024);
        let opts = parse_options(&value).map_err(|e| js_err(&e))?;
        let env = convert::to_value(&env, 1024);
        let flag = |k| matches!(env.get(k), Some(Value::Bool(true)));
        let num = |k| match env.get(k) {
            Some(Value::Num(n)) => Some(*n),
            _ => None,
        };
        let browser = flag("browser");
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
        let handover = flag("handover");
        if handover && !cfg!(feature = "server") {
            // The browser's wasm leaves the hand-over out (see `engine::Engine::handover`); its
            // driver refuses queue objects first (js/tracker.js): this guards the engine alone.
            return Err(js_err(&TrackError::options(
                "queue",
                "queue.cloudflareQueue needs the Workers build",
            )));
        }
        let now = num("now").unwrap_or(0.0);
        let env = Env {
            browser,
            handover,
            seed: num("seed").unwrap_or(1.0) as u64,
        };
        Ok(Engine {
            core: engine::Engine::new(opts, env, now),
            ops: IdMap::default(),
            busy_sent: None,
        })
    }

    /// `{ headers, trackUrl, batchUrl, queue, queueName, timeoutMs }` as JSON: what the driver
    /// needs to carry commands out (the secret key only inside `headers.Authorization`).
    pub fn config(&self) -> String {
        let mut s = String::new();
        wire::write_config(&mut s, self.core.options());
        s
    }

    /// `track(input)` as call `call`: validates synchronously (throws `TrackError`
    /// `invalid_input`), then starts it. `defer`: store it and let the drain deliver it.
    /// Returns the commands it led to, as `commands` writes them.
    pub fn track(
        &mut self,
        call: engine::Id,
        input: &JsValue,
        now: f64,
        mono: f64,
        offline: bool,
        defer: bool,
    ) -> Result<String, JsValue> {
        let ev = prepare(self.core.options(), input, self.core.server_now(now))
            .map_err(|e| js_err(&e))?;
        self.core.handle_at(
            Input::Track {
                call,
                event: ev,
                offline,
                defer,
            },
            now,
            mono,
        );
        Ok(self.commands())
    }

    /// Validates `input` as `track()` does and returns Autumn's snake_case body.
    pub fn validate(&self, input: &JsValue, now: f64) -> Result<JsValue, JsValue> {
        let ev = prepare(self.core.options(), input, self.core.server_now(now))
            .map_err(|e| js_err(&e))?;
        sys::json_parse(&crate::event::wire_body(&ev))
    }

    /// Everything else that happens: `report` is `{ t, … }` as JSON text (see
    /// `engine::wire::input_from`) from the driver itself — a store result's status, an answer,
    /// the timer, a call — and, when `has_outside`, `outside`: what in it came from outside the
    /// driver (a store's result, a caller's keys), converted with the guarded converter and read
    /// as the report's `v`. Returns the commands it led to. Throws `TrackError` for keys that are
    /// not strings.
    pub fn feed(
        &mut self,
        report: &str,
        has_outside: bool,
        outside: &JsValue,
        now: f64,
        mono: f64,
    ) -> Result<String, JsValue> {
        let mut v = crate::decode::decode(report);
        if let (Value::Obj(fields), true) = (&mut v, has_outside) {
            fields.push((
                String::from("v"),
                convert::to_value(outside, usize::MAX >> 1),
            ));
        }
        let ops = &mut self.ops;
        let input = wire::input_from(&v, &mut |id| ops.remove(&id).unwrap_or(OpKind::Done))
            .map_err(|e| js_err(&e))?;
        match &input {
            // A drain holds the tab's lock while it reads the queue; a call's answer arrives
            // while its record is stored and leased to it.
            Some(Input::Stored {
                result: Ok(Stored::Loaded(_)),
                ..
            }) => panic::test_point("drain"),
            Some(Input::Replied { .. }) => panic::test_point("track"),
            _ => {}
        }
        if let Some(input) = input {
            self.core.handle_at(input, now, mono);
        }
        Ok(self.commands())
    }
}

impl Engine {
    /// Every pending command, as a JSON array (`""` when there is none): one string per batch,
    /// not one object per command. (Not an object returned per call either: V8 before 13 —
    /// Node 20 and 22 — aborts the process, "unreachable code" in
    /// `Deoptimizer::DoComputeBuiltinContinuation`, when optimized JS that inlined a call to a
    /// wasm export returning an `externref` is deoptimized during it; a string comes back as a
    /// pointer and a length. `tests/soak` on Node 20, 22 and 24.) What `track` and `feed`
    /// return, one crossing fewer each; after `new`, the driver feeds `{}` (no report) for them.
    fn commands(&mut self) -> String {
        let mut cmds = Vec::new();
        while let Some(cmd) = self.core.poll() {
            if let engine::Command::Store { id, cmd: c, .. } = &cmd {
                self.ops.insert(*id, wire::op_kind(c));
            }
            cmds.push(cmd);
        }
        let mut s = String::new();
        if !cmds.is_empty() {
            wire::write_commands(&mut s, cmds, &js_num, &mut self.busy_sent);
        }
        s
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
    use crate::answer::{Answered, HoldWhy, Reply, Verdict};
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

/// A static for the one thread that wasm32-unknown-unknown has: `thread_local!` without std.
pub(crate) struct Local<T>(T);
#[cfg(target_feature = "atomics")]
compile_error!("autumn-track's wasm statics assume one thread: build without the atomics feature");
// SAFETY: without the `atomics` target feature (refused above) a wasm instance has one thread.
unsafe impl<T> Sync for Local<T> {}
impl<T> Local<T> {
    pub(crate) const fn new(t: T) -> Self {
        Self(t)
    }
    pub(crate) fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.0)
    }
}
