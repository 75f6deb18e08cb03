//! Records ↔ the plain objects the JS store keeps: encoding, and decoding that validates every
//! field (what comes back from storage may be foreign or corrupt).

use alloc::string::String;

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

use crate::queue::{DeadLetter, Record, RECORD_VERSION};

/// Property names, made once per store rather than once per field per record.
pub struct Keys {
    v: JsValue,
    key: JsValue,
    seq: JsValue,
    customer: JsValue,
    body: JsValue,
    ts: JsValue,
    created_at: JsValue,
    attempts: JsValue,
    next_at: JsValue,
    last_error: JsValue,
    server_created: JsValue,
    sent_at: JsValue,
    sent_srv: JsValue,
    record: JsValue,
    code: JsValue,
    message: JsValue,
    status: JsValue,
    failed_at: JsValue,
}

impl Default for Keys {
    fn default() -> Keys {
        Keys::new()
    }
}

impl Keys {
    pub fn new() -> Keys {
        let k = JsValue::from_str;
        Keys {
            v: k("v"),
            key: k("key"),
            seq: k("seq"),
            customer: k("customer"),
            body: k("body"),
            ts: k("ts"),
            created_at: k("createdAt"),
            attempts: k("attempts"),
            next_at: k("nextAt"),
            last_error: k("lastError"),
            server_created: k("serverCreated"),
            sent_at: k("sentAt"),
            sent_srv: k("sentSrv"),
            record: k("record"),
            code: k("code"),
            message: k("message"),
            status: k("status"),
            failed_at: k("failedAt"),
        }
    }
}

// ---- encoding ------------------------------------------------------------------------------

fn set(o: &Object, k: &JsValue, v: &JsValue) -> Result<(), JsValue> {
    Reflect::set(o, k, v).map(|_| ())
}

pub fn encode_record(k: &Keys, r: &Record) -> Result<JsValue, JsValue> {
    let o = Object::new();
    set(&o, &k.v, &JsValue::from(RECORD_VERSION))?;
    set(&o, &k.key, &JsValue::from_str(&r.key))?;
    set(&o, &k.seq, &JsValue::from_f64(r.seq))?;
    set(&o, &k.customer, &JsValue::from_str(&r.customer))?;
    set(&o, &k.body, &JsValue::from_str(&r.body))?;
    if let Some(ts) = r.ts {
        set(&o, &k.ts, &JsValue::from_f64(ts))?;
    }
    set(&o, &k.created_at, &JsValue::from_f64(r.created_at))?;
    set(&o, &k.attempts, &JsValue::from(r.attempts))?;
    set(&o, &k.next_at, &JsValue::from_f64(r.next_at))?;
    if let Some(e) = &r.last_error {
        set(&o, &k.last_error, &JsValue::from_str(e))?;
    }
    if let Some(c) = r.server_created {
        set(&o, &k.server_created, &JsValue::from_f64(c))?;
    }
    if let Some(s) = r.sent_at {
        set(&o, &k.sent_at, &JsValue::from_f64(s.local))?;
        if let Some(v) = s.server {
            set(&o, &k.sent_srv, &JsValue::from_f64(v))?;
        }
    }
    Ok(o.into())
}

pub fn encode_dead(k: &Keys, d: &DeadLetter) -> Result<JsValue, JsValue> {
    let o = Object::new();
    set(&o, &k.v, &JsValue::from(RECORD_VERSION))?;
    set(&o, &k.key, &JsValue::from_str(&d.record.key))?;
    set(&o, &k.record, &encode_record(k, &d.record)?)?;
    set(&o, &k.code, &JsValue::from_str(&d.code))?;
    set(&o, &k.message, &JsValue::from_str(&d.message))?;
    if let Some(s) = d.status {
        set(&o, &k.status, &JsValue::from(s))?;
    }
    set(&o, &k.failed_at, &JsValue::from_f64(d.failed_at))?;
    Ok(o.into())
}

// ---- decoding ------------------------------------------------------------------------------

/// `o[k]`; `undefined` when `o` is not an object or reading throws.
fn get(o: &JsValue, k: &JsValue) -> JsValue {
    if !o.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(o, k).unwrap_or(JsValue::UNDEFINED)
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

fn bad(field: &str, want: &str) -> String {
    let mut s = String::from("`");
    s.push_str(field);
    s.push_str("` is missing or not ");
    s.push_str(want);
    s
}

fn string(o: &JsValue, k: &JsValue, field: &str) -> Result<String, String> {
    get(o, k).as_string().ok_or_else(|| bad(field, "a string"))
}

fn finite(o: &JsValue, k: &JsValue, field: &str) -> Result<f64, String> {
    get(o, k)
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| bad(field, "a finite number"))
}

fn opt_finite(o: &JsValue, k: &JsValue, field: &str) -> Result<Option<f64>, String> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    v.as_f64()
        .filter(|n| n.is_finite())
        .map(Some)
        .ok_or_else(|| bad(field, "a finite number"))
}

/// An integer in `0..=max`.
fn whole(v: &JsValue, max: f64) -> Option<f64> {
    v.as_f64()
        .filter(|n| *n >= 0.0 && *n <= max && n.fract() == 0.0)
}

fn check_version(k: &Keys, o: &JsValue) -> Result<(), String> {
    if !o.is_object() {
        return Err(String::from("not an object"));
    }
    match get(o, &k.v).as_f64() {
        Some(v) if v == f64::from(RECORD_VERSION) => Ok(()),
        Some(_) => Err(String::from("unsupported record version `v`")),
        None => Err(bad("v", "a number")),
    }
}

/// Decodes a stored record, validating every field; `Err((key or "", reason))` otherwise.
pub fn decode_record(k: &Keys, o: &JsValue) -> Result<Record, (String, String)> {
    let key = get(o, &k.key).as_string();
    record_fields(k, o, true).map_err(|e| (key.unwrap_or_default(), e))
}

fn record_fields(k: &Keys, o: &JsValue, versioned: bool) -> Result<Record, String> {
    if versioned {
        check_version(k, o)?;
    } else if !o.is_object() {
        return Err(String::from("not an object"));
    }
    let last_error = get(o, &k.last_error);
    let sent_at = opt_finite(o, &k.sent_at, "sentAt")?;
    let sent_srv = opt_finite(o, &k.sent_srv, "sentSrv")?;
    Ok(Record {
        key: string(o, &k.key, "key")?,
        seq: finite(o, &k.seq, "seq")?,
        customer: string(o, &k.customer, "customer")?,
        body: string(o, &k.body, "body")?,
        ts: opt_finite(o, &k.ts, "ts")?,
        created_at: finite(o, &k.created_at, "createdAt")?,
        server_created: opt_finite(o, &k.server_created, "serverCreated")?,
        sent_at: sent_at.map(|local| crate::queue::Sent {
            local,
            server: sent_srv,
        }),
        attempts: whole(&get(o, &k.attempts), f64::from(u32::MAX))
            .map(|n| n as u32)
            .ok_or_else(|| bad("attempts", "a non-negative integer"))?,
        next_at: finite(o, &k.next_at, "nextAt")?,
        last_error: if absent(&last_error) {
            None
        } else {
            Some(
                last_error
                    .as_string()
                    .ok_or_else(|| bad("lastError", "a string"))?,
            )
        },
    })
}

/// `record.sentAt`/`sentSrv` of a stored dead letter (for [`Stored::Added`]'s `dead_sent`),
/// when readable.
///
/// [`Stored::Added`]: crate::engine::Stored::Added
pub fn sent_of(k: &Keys, o: &JsValue) -> Option<crate::queue::Sent> {
    let local = get(o, &k.sent_at).as_f64().filter(|n| n.is_finite())?;
    let server = get(o, &k.sent_srv).as_f64().filter(|n| n.is_finite());
    Some(crate::queue::Sent { local, server })
}

fn dead_fields(k: &Keys, o: &JsValue) -> Result<DeadLetter, String> {
    check_version(k, o)?;
    let key = string(o, &k.key, "key")?;
    let record = record_fields(k, &get(o, &k.record), false).map_err(|e| {
        let mut s = String::from("in `record`: ");
        s.push_str(&e);
        s
    })?;
    if record.key != key {
        return Err(String::from("`record.key` differs from `key`"));
    }
    let status = get(o, &k.status);
    Ok(DeadLetter {
        record,
        code: string(o, &k.code, "code")?,
        message: string(o, &k.message, "message")?,
        status: if absent(&status) {
            None
        } else {
            Some(
                whole(&status, f64::from(u16::MAX))
                    .map(|n| n as u16)
                    .ok_or_else(|| bad("status", "an HTTP status"))?,
            )
        },
        failed_at: finite(o, &k.failed_at, "failedAt")?,
    })
}

/// Decodes a stored dead letter; garbage becomes a `corrupt_record` letter keeping the key,
/// with the reason as its message.
pub fn decode_dead(k: &Keys, o: &JsValue) -> DeadLetter {
    dead_fields(k, o).unwrap_or_else(|reason| DeadLetter {
        record: Record::unreadable(get(o, &k.key).as_string().unwrap_or_default()),
        code: String::from("corrupt_record"),
        message: reason,
        status: None,
        failed_at: 0.0,
    })
}
