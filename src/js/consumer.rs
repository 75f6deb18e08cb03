//! `Consumer` for `js/cfqueue.js`: the Cloudflare Queues consumer's decisions
//! ([`crate::consumer`]) behind plain objects.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Array, Object};
use wasm_bindgen::prelude::*;

fn get(o: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = js_sys::Reflect::set(o, &JsValue::from_str(k), v);
}
use crate::answer::{Answered, Reply};
use crate::consumer::{self, Item, Message, Settings, Step};

/// The consumer of one batch (internal: `handleTrackQueue` is the public function).
#[wasm_bindgen]
pub struct Consumer {
    inner: consumer::Consumer,
}

fn num(o: &JsValue, k: &str, default: f64) -> f64 {
    get(o, k)
        .as_f64()
        .filter(|n| n.is_finite())
        .unwrap_or(default)
}

fn indices(v: &[usize]) -> JsValue {
    v.iter()
        .map(|i| JsValue::from(*i as u32))
        .collect::<Array>()
        .into()
}

#[wasm_bindgen]
impl Consumer {
    /// `settings`: validated `handleTrackQueue` options; `messages`: each
    /// `{ attempts, key, body, createdAt, customer, sentAt? }` or `{ attempts, key?, error }`.
    #[wasm_bindgen(constructor)]
    pub fn new(settings: &JsValue, messages: &Array, now: f64, last_batch_at: f64) -> Consumer {
        let b = |k: &str| get(settings, k).as_bool() == Some(true);
        let s = Settings {
            batch_size: num(settings, "batchSize", 1000.0) as usize,
            max_batch_bytes: num(settings, "maxBatchBytes", 1_048_576.0) as usize,
            max_event_age_ms: num(settings, "maxEventAgeMs", 23.0 * 3_600_000.0),
            retry_delay_s: num(settings, "retryDelaySeconds", 5.0) as u32,
            max_retry_delay_s: num(settings, "maxRetryDelaySeconds", 300.0) as u32,
            max_retries: num(settings, "maxRetries", 3.0) as u32,
            requeue: b("requeue"),
            dead_letter: b("deadLetter"),
            confirm_after_ms: num(
                settings,
                "confirmAfterMs",
                crate::queue::Policy::default().confirm_after_ms,
            ),
        };
        let msgs: Vec<Message> = messages
            .iter()
            .map(|m| {
                let attempts = num(&m, "attempts", 1.0) as u32;
                let key = get(&m, "key").as_string();
                let event = match get(&m, "error").as_string() {
                    Some(e) => Err((key, e)),
                    None => Ok(Item {
                        key: key.unwrap_or_default(),
                        body: get(&m, "body").as_string().unwrap_or_default(),
                        created_at: num(&m, "createdAt", now),
                        customer: get(&m, "customer").as_string().unwrap_or_default(),
                        sent_at: get(&m, "sentAt").as_f64().filter(|n| n.is_finite()),
                    }),
                };
                Message { attempts, event }
            })
            .collect();
        Consumer {
            inner: consumer::Consumer::new(s, msgs, now, last_batch_at),
        }
    }

    /// Appends the next step, as `{ t, … }`, to `out` (not returned: see `Engine::commands`).
    pub fn next(&mut self, now: f64, out: &Array) {
        let o = Object::new();
        let t = |o: &Object, v: &str| set(o, "t", &JsValue::from_str(v));
        match self.inner.next(now) {
            Step::Wait(ms) => {
                t(&o, "wait");
                set(&o, "ms", &JsValue::from_f64(ms));
            }
            Step::Send { body } => {
                t(&o, "send");
                set(&o, "body", &JsValue::from_str(&body));
            }
            Step::Ack(m) => {
                t(&o, "ack");
                set(&o, "msgs", &indices(&m));
            }
            Step::Retry(m, d) => {
                t(&o, "retry");
                set(&o, "msgs", &indices(&m));
                set(&o, "delay", &JsValue::from(d));
            }
            Step::Requeue(m, d) => {
                t(&o, "requeue");
                set(&o, "msgs", &indices(&m));
                set(&o, "delay", &JsValue::from(d));
            }
            Step::DeadLetter(m, l) => {
                t(&o, "deadLetter");
                set(&o, "msgs", &indices(&m));
                let letter = Object::new();
                if let Some(k) = &l.key {
                    set(&letter, "idempotencyKey", &JsValue::from_str(k));
                }
                if let Some(c) = &l.customer {
                    set(&letter, "customerId", &JsValue::from_str(c));
                }
                set(&letter, "code", &JsValue::from_str(&l.code));
                if let Some(s) = l.status {
                    set(&letter, "status", &JsValue::from(s));
                }
                set(&letter, "message", &JsValue::from_str(&l.message));
                set(&o, "letter", &letter);
            }
            Step::Done => {
                t(&o, "done");
                set(
                    &o,
                    "lastBatchAt",
                    &JsValue::from_f64(self.inner.last_batch_at),
                );
            }
        }
        out.push(&o);
    }

    /// The answer to the last `send`.
    #[allow(clippy::too_many_arguments)]
    pub fn answered(
        &mut self,
        status: u16,
        redirected: bool,
        code: Option<String>,
        message: Option<String>,
        snippet: Option<String>,
        retry_after: Option<String>,
        retry_after_date: f64,
        now: f64,
    ) {
        let r = Reply::Answer(Answered {
            status,
            redirected,
            code,
            message,
            snippet,
            retry_after,
            retry_after_date: retry_after_date.is_finite().then_some(retry_after_date),
            date: None,
        });
        self.inner.replied(r, now);
    }

    /// The last `send` failed without an answer.
    pub fn failed(&mut self, how: &str, message: String, now: f64) {
        let r = match how {
            "timeout" => Reply::Timeout,
            "unsent" => Reply::Unsent(message),
            _ => Reply::Network(message),
        };
        self.inner.replied(r, now);
    }
}
