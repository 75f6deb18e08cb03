//! The engine's commands as the plain objects `js/tracker.js` executes, and call results and
//! notices as the objects callers and listeners get.

use alloc::string::String;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::JsValue;

use super::codec::{self, Keys};
use super::error;
use crate::engine::{Command, Endpoint, Notice, Outcome, Storage, StoreCmd, Target};
use crate::queue::DeadLetter;

pub fn set(o: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), v);
}

fn s(v: &str) -> JsValue {
    JsValue::from_str(v)
}

fn strings<'a>(it: impl IntoIterator<Item = &'a String>) -> JsValue {
    it.into_iter().map(|k| s(k)).collect::<Array>().into()
}

fn storage(st: Storage) -> JsValue {
    s(match st {
        Storage::Durable => "durable",
        Storage::Memory => "memory",
        Storage::Cloudflare => "cloudflare",
        Storage::Off => "off",
    })
}

fn obj(t: &str) -> Object {
    let o = Object::new();
    set(&o, "t", &s(t));
    o
}

/// A command as `{ t, … }`.
pub fn command(k: &Keys, c: Command) -> JsValue {
    let o = match c {
        Command::Open => obj("open"),
        Command::CloseStore => obj("closeStore"),
        Command::Lock => obj("lock"),
        Command::Unlock => obj("unlock"),
        Command::Announce => obj("announce"),
        Command::Wake(at) => {
            let o = obj("wake");
            set(&o, "at", &at.map_or(JsValue::NULL, JsValue::from_f64));
            o
        }
        Command::Send {
            id,
            endpoint,
            body,
            keepalive,
        } => {
            let o = obj("send");
            set(&o, "id", &JsValue::from(id));
            set(
                &o,
                "batch",
                &JsValue::from_bool(endpoint == Endpoint::Batch),
            );
            set(&o, "body", &s(&body));
            set(&o, "keepalive", &JsValue::from_bool(keepalive));
            o
        }
        Command::HandOver { id, items } => {
            let o = obj("handover");
            set(&o, "id", &JsValue::from(id));
            let list: Array = items
                .iter()
                .map(|i| {
                    let m = Object::new();
                    set(&m, "idempotencyKey", &s(&i.key));
                    set(&m, "body", &s(&i.body));
                    set(&m, "createdAt", &JsValue::from_f64(i.created_at));
                    set(&m, "reason", &s(i.reason));
                    if let Some(t) = i.sent_at {
                        set(&m, "sentAt", &JsValue::from_f64(t));
                    }
                    set(&m, "delayMs", &JsValue::from_f64(i.delay_ms as f64));
                    JsValue::from(m)
                })
                .collect();
            set(&o, "items", &list);
            o
        }
        Command::Store { id, target, cmd } => {
            let o = obj("store");
            set(&o, "id", &JsValue::from(id));
            set(&o, "spill", &JsValue::from_bool(target == Target::Spill));
            let (op, arg) = store(k, cmd);
            set(&o, "op", &s(op));
            set(&o, "arg", &arg);
            o
        }
        Command::Emit(n) => {
            let o = obj("emit");
            set(&o, "event", &notice(n));
            o
        }
        Command::Resolve { call, result } => {
            let o = obj("resolve");
            set(&o, "call", &JsValue::from(call));
            match result {
                Ok(v) => set(&o, "value", &outcome(k, v)),
                Err(e) => set(&o, "error", &error::to_js(&e)),
            }
            o
        }
    };
    o.into()
}

fn store(k: &Keys, cmd: StoreCmd) -> (&'static str, JsValue) {
    let records = |recs: &[crate::queue::Record]| -> JsValue {
        recs.iter()
            .filter_map(|r| codec::encode_record(k, r).ok())
            .collect::<Array>()
            .into()
    };
    let letters = |d: &[DeadLetter]| -> JsValue {
        d.iter()
            .filter_map(|l| codec::encode_dead(k, l).ok())
            .collect::<Array>()
            .into()
    };
    match cmd {
        StoreCmd::Add { recs, limit } => {
            let a = Object::new();
            set(&a, "records", &records(&recs));
            if let Some(l) = limit {
                let lim = Object::new();
                set(&lim, "max", &JsValue::from_f64(l.max as f64));
                set(&lim, "busy", &strings(&l.busy));
                set(&lim, "now", &JsValue::from_f64(l.now));
                set(&a, "limit", &lim);
            }
            ("add", a.into())
        }
        StoreCmd::Update { recs } => ("update", records(&recs)),
        StoreCmd::Renew { rec, prev } => {
            let o = Object::new();
            set(
                &o,
                "record",
                &codec::encode_record(k, &rec).unwrap_or(JsValue::NULL),
            );
            set(&o, "prev", &prev.map_or(JsValue::NULL, JsValue::from_f64));
            ("renew", o.into())
        }
        StoreCmd::Delete { keys } => ("del", strings(&keys)),
        StoreCmd::Load => ("load", JsValue::NULL),
        StoreCmd::Count => ("count", JsValue::NULL),
        StoreCmd::MoveToDead { letters: l } => ("moveToDead", letters(&l)),
        StoreCmd::LoadDead => ("loadDead", JsValue::NULL),
        StoreCmd::DeleteDead { keys } => ("delDead", strings(&keys)),
        StoreCmd::Revive { recs } => ("revive", records(&recs)),
    }
}

/// A tracker event for listeners.
fn notice(n: Notice) -> JsValue {
    let o = Object::new();
    set(&o, "type", &s(n.kind));
    if let Some(v) = &n.key {
        set(&o, "idempotencyKey", &s(v));
    }
    if let Some(v) = n.reason {
        set(&o, "reason", &s(v));
    }
    if let Some(v) = &n.message {
        set(&o, "message", &s(v));
    }
    if let Some(v) = &n.code {
        set(&o, "code", &s(v));
    }
    if let Some(v) = n.status {
        set(&o, "status", &JsValue::from(v));
    }
    if let Some(v) = n.duplicate {
        set(&o, "duplicate", &JsValue::from_bool(v));
    }
    if let Some(v) = n.count {
        set(&o, "count", &JsValue::from(v));
    }
    if let Some(v) = n.storage {
        set(&o, "storage", &storage(v));
    }
    o.into()
}

fn num(o: &Object, k: &str, v: u32) {
    set(o, k, &JsValue::from(v));
}

/// A call's result.
fn outcome(k: &Keys, v: Outcome) -> JsValue {
    let _ = k;
    let o = Object::new();
    match v {
        Outcome::Delivered {
            key,
            attempts,
            response,
        } => {
            set(&o, "status", &s("delivered"));
            set(&o, "idempotencyKey", &s(&key));
            num(&o, "attempts", attempts);
            num(&o, "responseId", response);
        }
        Outcome::Duplicate { key, attempts } => {
            set(&o, "status", &s("duplicate"));
            set(&o, "idempotencyKey", &s(&key));
            num(&o, "attempts", attempts);
        }
        Outcome::Queued {
            key,
            reason,
            message,
            storage: st,
        } => {
            set(&o, "status", &s("queued"));
            set(&o, "idempotencyKey", &s(&key));
            set(&o, "reason", &s(reason));
            set(&o, "message", &s(&message));
            set(&o, "storage", &storage(st));
        }
        Outcome::Flushed {
            delivered,
            duplicates,
            failed,
            remaining,
            handed_over,
        } => {
            num(&o, "delivered", delivered);
            num(&o, "duplicates", duplicates);
            num(&o, "failed", failed);
            num(&o, "remaining", remaining);
            if handed_over > 0 {
                num(&o, "handedOver", handed_over);
            }
        }
        Outcome::Pending {
            queued,
            in_flight,
            dead,
            storage: st,
            spilled,
        } => {
            num(&o, "queued", queued);
            num(&o, "inFlight", in_flight);
            num(&o, "deadLetters", dead);
            set(&o, "storage", &storage(st));
            if spilled > 0 {
                num(&o, "inMemory", spilled);
            }
        }
        Outcome::DeadLetters(list) => {
            return list.iter().map(dead_info).collect::<Array>().into();
        }
        Outcome::Count(n) => return JsValue::from(n),
    }
    o.into()
}

/// A dead letter as `deadLetters()` shows it.
fn dead_info(d: &DeadLetter) -> JsValue {
    let o = Object::new();
    set(&o, "idempotencyKey", &s(&d.record.key));
    set(&o, "customerId", &s(&d.record.customer));
    set(&o, "code", &s(&d.code));
    set(&o, "message", &s(&d.message));
    if let Some(st) = d.status {
        set(&o, "status", &JsValue::from(st));
    }
    set(&o, "createdAt", &JsValue::from_f64(d.record.created_at));
    set(&o, "failedAt", &JsValue::from_f64(d.failed_at));
    num(&o, "attempts", d.record.attempts);
    let event = super::sys::json_parse(&d.record.body).unwrap_or(JsValue::NULL);
    set(&o, "event", &event);
    o.into()
}
