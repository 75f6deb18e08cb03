//! The JavaScript edge: the only place with `#[wasm_bindgen]` exports. It converts values,
//! calls `fetch`, sleeps between attempts, and leaves every decision to the pure core.

mod convert;
mod error;
mod http;
mod sys;

use alloc::rc::Rc;
use alloc::string::String;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::{Code, TrackError};
use crate::event::parse_input;
use crate::options::{parse_options, Options};
use crate::retry::{decide, Next, Outcome};
use crate::value::push_u64;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** Any JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue | undefined };

/** Options of `new AutumnTracker(options)`. Unknown options are an error. */
export interface TrackerOptions {
  /** Autumn secret key (`am_sk_test_…` / `am_sk_live_…`). Server runtimes only: in a browser,
   *  leave it out and point `baseUrl` at your own route that holds the key. */
  secretKey?: string;
  /** Default `"https://api.useautumn.com"`. An http(s) URL, or a path on this origin
   *  (`"/api/autumn"`) for a browser talking to your backend. */
  baseUrl?: string;
  /** Sent as `x-api-version`. Default `"2.3.0"`. */
  apiVersion?: string;
  /** Extra headers on every request (e.g. your proxy's session token). */
  headers?: Record<string, string>;
  /** Per-attempt timeout in milliseconds, including reading the answer. Default 5000. */
  timeoutMs?: number;
  /** Retries after the first attempt for network errors, timeouts, 408, 429 and 5xx. Default 5. */
  maxRetries?: number;
  /** Largest `properties` accepted, as JSON bytes. Default 65536. */
  maxPropertiesBytes?: number;
  /** Allow a secret key in a browser. Anyone who opens the page can read it: don't. */
  dangerouslyAllowBrowser?: boolean;
}

interface TrackInputCommon {
  /** Units used; negative credits back. Default 1. */
  value?: number;
  /** Any JSON object, at most `maxPropertiesBytes` serialized. */
  properties?: { [key: string]: JsonValue | undefined };
  /** Unix milliseconds when the usage happened. */
  timestamp?: number;
  /** What the server does when the balance runs out. */
  overageBehavior?: "cap" | "overflow";
  /** Ask Autumn to record asynchronously (answers 202 with `balance: null`). */
  async?: boolean;
}

/** One usage event. Give exactly one of `featureId` / `eventName`. */
export interface TrackInput extends TrackInputCommon {
  customerId: string;
  featureId?: string;
  eventName?: string;
  entityId?: string;
  /** Leave it out and a UUID v7 is generated; give one to dedupe across your own retries. */
  idempotencyKey?: string;
}

/** The same event with Autumn's REST (snake_case) field names. */
export interface TrackInputRest extends TrackInputCommon {
  customer_id: string;
  feature_id?: string;
  event_name?: string;
  entity_id?: string;
  idempotency_key?: string;
  overage_behavior?: "cap" | "overflow";
}

/** A feature balance as Autumn reports it. Unknown fields are kept. */
export interface AutumnBalance {
  feature_id?: string;
  granted?: number;
  remaining?: number;
  usage?: number;
  unlimited?: boolean;
  overage_allowed?: boolean;
  [key: string]: unknown;
}

/** Autumn's answer to a track request (200, or 202 with `balance: null`). */
export interface AutumnTrackResponse {
  customer_id: string;
  value: number;
  balance: AutumnBalance | null;
  balances?: Record<string, AutumnBalance>;
  deductions?: Array<{ feature_id: string; deducted?: number; [key: string]: unknown }>;
  entity_id?: string;
  event_name?: string;
  [key: string]: unknown;
}

/** How `track()` ended. */
export type TrackResult =
  | {
      /** Recorded (200) or accepted for recording (202). */
      status: "delivered";
      idempotencyKey: string;
      /** Requests made, retries included. */
      attempts: number;
      /** Autumn's body; `null` if it was not JSON. */
      response: AutumnTrackResponse | null;
    }
  | {
      /** 409 `duplicate_idempotency_key`: this key was already recorded. A success. */
      status: "duplicate";
      idempotencyKey: string;
      attempts: number;
    };

/** `TrackError.code`: the SDK's own codes, or Autumn's error code (e.g. `feature_not_found`). */
export type TrackErrorCode =
  | "invalid_input"
  | "invalid_options"
  | "secret_key_in_browser"
  | "unavailable"
  | "http_error"
  | (string & {});
"#;

struct Inner {
    opts: Options,
    url: String,
}

/// Tracks usage events for Autumn: validated, keyed once, delivered with retries.
#[wasm_bindgen]
pub struct AutumnTracker {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl AutumnTracker {
    /// Creates a tracker. Throws `TrackError` (`invalid_options`, `secret_key_in_browser`) when
    /// the options are wrong.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TrackerOptions")] options: JsValue,
    ) -> Result<AutumnTracker, JsValue> {
        let value = convert::to_value(&options, 64 * 1024);
        let opts = parse_options(&value).map_err(|e| error::to_js(&e))?;
        if opts.secret_key.is_some() && !opts.dangerously_allow_browser && sys::is_browser() {
            return Err(error::to_js(&TrackError::new(
                Code::SecretKeyInBrowser,
                "a secret key in a browser is readable by anyone who opens the page. Keep it on \
                 your server and point `baseUrl` at your own route (or, for tests only, set \
                 `dangerouslyAllowBrowser: true`)",
            )
            .with_field("secretKey")));
        }
        let url = opts.track_url();
        Ok(AutumnTracker {
            inner: Rc::new(Inner { opts, url }),
        })
    }

    /// Records one usage event. Validates it (throwing `TrackError` `invalid_input` before
    /// anything is sent), gives it an idempotency key, and delivers it, retrying network
    /// errors, timeouts, 408, 429 and 5xx with the same key. Resolves `delivered` or
    /// `duplicate`; rejects with `TrackError` carrying Autumn's code for a permanent refusal,
    /// or `unavailable` (with the `idempotencyKey` to resend safely) when retries run out.
    #[wasm_bindgen(unchecked_return_type = "Promise<TrackResult>")]
    pub fn track(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TrackInput | TrackInputRest")] input: JsValue,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        // Validate synchronously, before the promise exists: input objects may change later.
        let prepared = prepare(&inner.opts, &input);
        wasm_bindgen_futures::future_to_promise(async move {
            let (key, body) = prepared.map_err(|e| error::to_js(&e))?;
            deliver(&inner, &key, &body)
                .await
                .map_err(|e| error::to_js(&e))
        })
    }
}

/// `String(n)`: JavaScript's shortest round-trip number formatting, for the JSON writer.
pub(crate) fn number_to_string(n: f64) -> String {
    sys::js_string_of(n)
}

fn new_key() -> String {
    let mut rand = [0u8; 10];
    sys::random_bytes(&mut rand);
    crate::key::uuid_v7(sys::now_ms() as u64, rand)
}

fn prepare(opts: &Options, input: &JsValue) -> Result<(String, String), TrackError> {
    let value = convert::to_value(input, opts.max_properties_bytes + 16 * 1024);
    let ev = parse_input(&value, opts.max_properties_bytes, new_key)?;
    let body = crate::event::wire_body(&ev);
    Ok((ev.idempotency_key, body))
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn result(status: &str, key: &str, attempts: u32, response: Option<JsValue>) -> JsValue {
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
fn server_error(text: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = sys::json_parse(text) else {
        return (None, None);
    };
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
fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

async fn deliver(inner: &Inner, key: &str, body: &str) -> Result<JsValue, TrackError> {
    let opts = &inner.opts;
    let mut attempt: u32 = 0;
    loop {
        let reply = http::attempt(opts, &inner.url, body, key).await;
        let outcome = match &reply {
            http::Reply::Network(_) => Outcome::Network,
            http::Reply::Timeout => Outcome::Timeout,
            http::Reply::Unsendable(m) => {
                let mut msg = String::from("the request could not be built: ");
                msg.push_str(clip(m, 300));
                return Err(TrackError::options("baseUrl", msg).with_key(key));
            }
            http::Reply::Answer {
                status,
                retry_after,
                ..
            } => Outcome::Status {
                status: *status,
                retry_after: retry_after.as_deref(),
            },
        };
        let next = decide(
            outcome,
            attempt,
            &opts.retry,
            sys::now_ms(),
            sys::random01(),
        );
        attempt += 1;
        match (next, &reply) {
            (Next::Delivered, http::Reply::Answer { text, .. }) => {
                let response = sys::json_parse(text).unwrap_or(JsValue::NULL);
                return Ok(result("delivered", key, attempt, Some(response)));
            }
            (Next::Duplicate, _) => return Ok(result("duplicate", key, attempt, None)),
            (Next::RetryIn(ms), _) => sys::sleep(ms).await,
            (Next::Permanent, http::Reply::Answer { status, text, .. }) => {
                let (code, message) = server_error(text);
                let mut msg = String::from("Autumn refused the event (HTTP ");
                push_u64(&mut msg, u64::from(*status));
                if let Some(c) = &code {
                    msg.push(' ');
                    msg.push_str(c);
                }
                msg.push(')');
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
                let mut e =
                    TrackError::new(code.map_or(Code::HttpError, Code::Server), msg).with_key(key);
                e.status = Some(*status);
                return Err(e);
            }
            (_, reply) => {
                let mut msg = String::from("could not deliver the event after ");
                push_u64(&mut msg, u64::from(attempt));
                msg.push_str(if attempt == 1 {
                    " attempt"
                } else {
                    " attempts"
                });
                msg.push_str(" (last: ");
                let mut status = None;
                match reply {
                    http::Reply::Network(m) => {
                        msg.push_str("network error: ");
                        msg.push_str(clip(m, 200));
                    }
                    http::Reply::Timeout => {
                        msg.push_str("no answer within ");
                        push_u64(&mut msg, u64::from(opts.timeout_ms));
                        msg.push_str(" ms");
                    }
                    http::Reply::Answer {
                        status: s, text, ..
                    } => {
                        status = Some(*s);
                        msg.push_str("HTTP ");
                        push_u64(&mut msg, u64::from(*s));
                        let (_, m) = server_error(text);
                        let detail = m.as_deref().unwrap_or(text.as_str());
                        if !detail.is_empty() {
                            msg.push(' ');
                            msg.push_str(clip(detail, 200));
                        }
                    }
                    http::Reply::Unsendable(_) => {}
                }
                msg.push_str("). Resend with the same idempotencyKey: it cannot be counted twice");
                let mut e = TrackError::new(Code::Unavailable, msg).with_key(key);
                e.status = status;
                return Err(e);
            }
        }
    }
}
