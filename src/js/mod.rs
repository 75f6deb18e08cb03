//! The JavaScript edge: the only place with `#[wasm_bindgen]` exports. It converts values,
//! calls `fetch`, sleeps between attempts, and leaves every decision to the pure core.

mod convert;
mod engine;
mod error;
mod http;
mod panic;
pub mod store;
mod sys;

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;

use crate::error::{Code, TrackError};
use crate::event::{parse_input, Event};
use crate::options::{parse_options, Options};
use engine::{set, Inner};

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
  /** Where events that cannot be delivered now wait. `"auto"` (default): IndexedDB where it
   *  works, memory elsewhere (Node, Workers, private mode — reported once as
   *  `storage_fallback`). `"off"`: no queue; `track()` rejects with `unavailable` instead. */
  queue?: "auto" | "indexeddb" | "memory" | "off";
  /** IndexedDB database name; tabs of one origin with the same name share one queue. Default `"autumn-track"`. */
  queueName?: string;
  /** Most events queued (default 10,000); the oldest beyond it become dead letters (`queue_full`). */
  maxQueueSize?: number;
  /** Oldest event replayed, ms (default 23 h, inside Autumn's 24 h idempotency window); older
   *  ones become dead letters (`expired`) instead of risking a double count. */
  maxEventAgeMs?: number;
  /** Events per `batch_track` request when draining a backlog (1–1000, default 1000). */
  batchSize?: number;
  /** `"batch"` (default): backlogs go through `/v1/balances.batch_track`, which Autumn accepts
   *  as a whole and records asynchronously (no per-event answer). `"single"`: one
   *  `/v1/balances.track` request per event, each with its own answer. */
  drain?: "batch" | "single";
  /** Called for every tracker event (see `TrackerEvent`). */
  onEvent?: (event: TrackerEvent) => void;
}

/** What the tracker reports through `onEvent` / `addEventListener`. Never carries the secret key. */
export interface TrackerEvent {
  type: "queued" | "delivered" | "retrying" | "dead_letter" | "evicted" | "storage_fallback";
  idempotencyKey?: string;
  /** `queued`: why it could not be delivered now; `evicted`: `"expired"` or `"queue_full"`. */
  reason?: string;
  message?: string;
  /** `dead_letter`: Autumn's (or the SDK's) error code, and the HTTP status. */
  code?: string;
  status?: number;
  /** `delivered`: the server already had this key (409). */
  duplicate?: boolean;
  /** `retrying`: how many events the failed request carried. */
  count?: number;
}

/** `flush()`'s report. */
export interface FlushResult {
  delivered: number;
  duplicates: number;
  /** Set aside as dead letters during this flush. */
  failed: number;
  /** Still queued (waiting for the network or a backoff). */
  remaining: number;
}

/** `pending()`'s counts. */
export interface PendingCounts {
  queued: number;
  inFlight: number;
  deadLetters: number;
  storage: "indexeddb" | "memory" | "off";
}

/** An event set aside for good, with the reason. */
export interface DeadLetterInfo {
  idempotencyKey: string;
  customerId: string;
  /** Autumn's error code (`feature_not_found`, …) or `expired`, `queue_full`, `corrupt_record`. */
  code: string;
  message: string;
  status?: number;
  createdAt: number;
  failedAt: number;
  attempts: number;
  /** The event's wire body (snake_case). */
  event: Record<string, JsonValue> | null;
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
    }
  | {
      /** Durably queued (IndexedDB write completed, or memory where that is all there is);
       *  it will be replayed with the same key. */
      status: "queued";
      idempotencyKey: string;
      /** `offline`, `network_error`, `timeout`, `server_error`, `rate_limited`. */
      reason: string;
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

/// Tracks usage events for Autumn: validated, keyed once, delivered with retries, and queued
/// durably when they cannot be delivered now.
#[wasm_bindgen]
pub struct AutumnTracker {
    inner: Rc<Inner>,
}

fn js_err(e: &TrackError) -> JsValue {
    error::to_js(e)
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

#[wasm_bindgen]
impl AutumnTracker {
    /// Creates a tracker. Throws `TrackError` (`invalid_options`, `secret_key_in_browser`) when
    /// the options are wrong. With a queue, opens it in the background and replays what an
    /// earlier page or process left there.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "TrackerOptions")] options: JsValue,
    ) -> Result<AutumnTracker, JsValue> {
        let value = convert::to_value(&options, 64 * 1024);
        let opts = parse_options(&value).map_err(|e| js_err(&e))?;
        if opts.secret_key.is_some() && !opts.dangerously_allow_browser && sys::is_browser() {
            return Err(js_err(&TrackError::new(
                Code::SecretKeyInBrowser,
                "a secret key in a browser is readable by anyone who opens the page. Keep it on \
                 your server and point `baseUrl` at your own route (or, for tests only, set \
                 `dangerouslyAllowBrowser: true`)",
            )
            .with_field("secretKey")));
        }
        if opts.base_url.starts_with('/') && !sys::is_browser() {
            return Err(js_err(&TrackError::options(
                "baseUrl",
                "a path needs a page's origin; outside a browser give a full http(s) URL",
            )));
        }
        let on_event = Reflect::get(&options, &JsValue::from_str("onEvent"))
            .ok()
            .and_then(|f| f.dyn_into::<Function>().ok());
        Ok(AutumnTracker {
            inner: Inner::new(opts, on_event),
        })
    }

    /// Records one usage event. Validates it (rejecting with `TrackError` `invalid_input` before
    /// anything is sent), gives it an idempotency key, writes it to the queue, and delivers
    /// it, retrying 5xx and 429 with the same key. Resolves `delivered` or `duplicate`, or
    /// `queued` once the event is durably stored when it cannot be delivered now (offline,
    /// network error, timeout, retries used up). Rejects with `TrackError` carrying Autumn's
    /// code when Autumn refuses the event for good; with `queue: "off"`, also with
    /// `unavailable` (and the `idempotencyKey` to resend safely) when retries run out.
    #[wasm_bindgen(unchecked_return_type = "Promise<TrackResult>")]
    pub fn track(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TrackInput | TrackInputRest")] input: JsValue,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        // Validate synchronously, before the promise exists: input objects may change later.
        let prepared = prepare(&inner.opts, &input);
        sys::promise(async move {
            let ev = prepared.map_err(|e| js_err(&e))?;
            Inner::track(inner, ev).await.map_err(|e| js_err(&e))
        })
    }

    /// Validates `input` exactly as `track()` does, without sending or queueing anything.
    /// Returns the event as Autumn's snake_case body (with its idempotency key, generated when
    /// absent); throws `TrackError` `invalid_input` naming the field.
    #[wasm_bindgen(unchecked_return_type = "Record<string, JsonValue>")]
    pub fn validate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "TrackInput | TrackInputRest")] input: JsValue,
    ) -> Result<JsValue, JsValue> {
        let ev = prepare(&self.inner.opts, &input).map_err(|e| js_err(&e))?;
        sys::json_parse(&crate::event::wire_body(&ev))
    }

    /// Delivers everything queued now, backoff or not (joining a drain already running), and
    /// resolves with what it did and how many events remain queued.
    #[wasm_bindgen(unchecked_return_type = "Promise<FlushResult>")]
    pub fn flush(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        sys::promise(async move {
            let (s, remaining) = Inner::flush(inner, true).await.map_err(|e| js_err(&e))?;
            let o = Object::new();
            set(&o, "delivered", &JsValue::from(s.delivered));
            set(&o, "duplicates", &JsValue::from(s.duplicates));
            set(&o, "failed", &JsValue::from(s.failed));
            set(&o, "remaining", &JsValue::from(remaining));
            Ok(o.into())
        })
    }

    /// Counts of queued, in-flight and dead-lettered events, and where they are stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<PendingCounts>")]
    pub fn pending(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        sys::promise(async move { Ok(inner.pending().await) })
    }

    /// Events Autumn refused for good, or the queue had to set aside, with the reason.
    #[wasm_bindgen(js_name = deadLetters, unchecked_return_type = "Promise<DeadLetterInfo[]>")]
    pub fn dead_letters(&self) -> Promise {
        let inner = Rc::clone(&self.inner);
        sys::promise(async move { Ok(inner.dead_letters().await) })
    }

    /// Deletes these dead letters (by idempotency key). Resolves with how many went.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn discard(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] keys: JsValue,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        let keys = keys_of(&keys);
        sys::promise(async move {
            let keys = keys?;
            Ok(JsValue::from(inner.discard(&keys).await))
        })
    }

    /// Puts dead letters (all, or these keys) back in the queue, with their original keys, and
    /// starts a drain. Resolves with how many were revived.
    #[wasm_bindgen(js_name = retryDeadLetters, unchecked_return_type = "Promise<number>")]
    pub fn retry_dead_letters(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "string[]")] keys: Option<JsValue>,
    ) -> Promise {
        let inner = Rc::clone(&self.inner);
        let keys = match keys {
            Some(k) if !k.is_undefined() && !k.is_null() => keys_of(&k).map(Some),
            _ => Ok(None),
        };
        sys::promise(async move {
            let keys = keys?;
            Ok(JsValue::from(Inner::retry_dead_letters(&inner, keys).await))
        })
    }

    /// Calls `listener` for every tracker event (`queued`, `delivered`, `retrying`,
    /// `dead_letter`, `evicted`, `storage_fallback`).
    #[wasm_bindgen(js_name = addEventListener)]
    pub fn add_event_listener(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: TrackerEvent) => void")] listener: Function,
    ) {
        self.inner.add_listener(listener);
    }

    /// Removes a listener added with `addEventListener`.
    #[wasm_bindgen(js_name = removeEventListener)]
    pub fn remove_event_listener(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: TrackerEvent) => void")] listener: Function,
    ) {
        self.inner.remove_listener(&listener);
    }

    /// Stops timers and listeners and releases the database. Queued events stay stored for the
    /// next tracker.
    pub fn close(&self) {
        self.inner.close();
    }
}

/// `String(n)`: JavaScript's shortest round-trip number formatting, for the JSON writer.
pub(crate) fn number_to_string(n: f64) -> String {
    sys::js_string_of(n)
}

/// A fresh idempotency key: `crypto.getRandomValues` and `Date.now()` into a UUID v7. What
/// `track()` uses when the caller gives none; public (hidden) for the key tests only.
pub fn new_key() -> String {
    let mut rand = [0u8; 10];
    sys::random_bytes(&mut rand);
    crate::key::uuid_v7(sys::now_ms() as u64, rand)
}

fn prepare(opts: &Options, input: &JsValue) -> Result<Event, TrackError> {
    panic::test_point("prepare");
    let value = convert::to_value(input, opts.max_properties_bytes + 16 * 1024);
    parse_input(&value, opts.max_properties_bytes, new_key)
}
