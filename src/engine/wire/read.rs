//! In: the driver's reports, records and dead letters read back from storage — foreign or
//! corrupt ones included, field by field.

#[allow(clippy::wildcard_imports)]
use super::*;

/// What a store operation in flight was, to read its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// [`StoreCmd::Add`].
    Added,
    /// [`StoreCmd::Load`].
    Loaded,
    /// [`StoreCmd::Count`].
    Counted,
    /// [`StoreCmd::LoadDead`].
    DeadLoaded,
    /// [`StoreCmd::DeleteDead`].
    Number,
    /// [`StoreCmd::Update`], [`StoreCmd::Renew`].
    Updated,
    /// The rest: nothing to read.
    Done,
}

/// The kind of `c`'s result.
pub fn op_kind(c: &StoreCmd) -> OpKind {
    match c {
        StoreCmd::Add { .. } => OpKind::Added,
        StoreCmd::Load => OpKind::Loaded,
        StoreCmd::Count => OpKind::Counted,
        StoreCmd::LoadDead => OpKind::DeadLoaded,
        StoreCmd::DeleteDead { .. } => OpKind::Number,
        StoreCmd::Update { .. } | StoreCmd::Renew { .. } => OpKind::Updated,
        StoreCmd::Delete { .. } | StoreCmd::MoveToDead { .. } | StoreCmd::Revive { .. } => {
            OpKind::Done
        }
    }
}

fn items(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Arr(a)) => a,
        _ => &[],
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::Str(s)) => Some(s.clone()),
        _ => None,
    }
}

fn number(v: Option<&Value>) -> Option<f64> {
    match v {
        Some(Value::Num(n)) if n.is_finite() => Some(*n),
        _ => None,
    }
}

fn texts(v: Option<&Value>) -> Vec<String> {
    items(v).iter().filter_map(|s| text(Some(s))).collect()
}

/// A store operation's result `v` (of an operation of `kind`).
pub fn stored_from(kind: OpKind, v: &Value) -> Stored {
    let count = |k: &str| number(v.get(k)).unwrap_or(0.0) as u32;
    match kind {
        OpKind::Added => Stored::Added {
            evicted: texts(v.get("evicted")),
            existing: texts(v.get("existing")),
            dead_sent: items(v.get("deadSent"))
                .iter()
                .filter_map(|d| Some((text(d.get("key"))?, sent_of(d.get("record")?)?)))
                .collect(),
        },
        OpKind::Loaded => Stored::Loaded(items(Some(v)).iter().map(record_from).collect()),
        OpKind::Counted => Stored::Counted {
            queued: count("queued"),
            dead: count("dead"),
        },
        OpKind::DeadLoaded => Stored::DeadLoaded(items(Some(v)).iter().map(dead_from).collect()),
        OpKind::Number => Stored::Number(number(Some(v)).unwrap_or(0.0)),
        OpKind::Updated => Stored::Updated {
            missing: texts(Some(v)),
        },
        OpKind::Done => Stored::Done,
    }
}

fn bad(field: &str, want: &str) -> String {
    let mut s = String::from("`");
    s.push_str(field);
    s.push_str("` is missing or not ");
    s.push_str(want);
    s
}

fn need_str(o: &Value, k: &str) -> Result<String, String> {
    text(o.get(k)).ok_or_else(|| bad(k, "a string"))
}

fn need_num(o: &Value, k: &str) -> Result<f64, String> {
    number(o.get(k)).ok_or_else(|| bad(k, "a finite number"))
}

/// Absent (or `null`): `None`; else a finite number or an error.
fn opt_num(o: &Value, k: &str) -> Result<Option<f64>, String> {
    match o.get(k) {
        None | Some(Value::Null) => Ok(None),
        v => number(v).map(Some).ok_or_else(|| bad(k, "a finite number")),
    }
}

/// An integer in `0..=max`.
fn whole(v: Option<&Value>, max: f64) -> Option<f64> {
    number(v).filter(|n| *n >= 0.0 && *n <= max && crate::float::fract(*n) == 0.0)
}

fn version(o: &Value) -> Result<(), String> {
    if !matches!(o, Value::Obj(_)) {
        return Err(String::from("not an object"));
    }
    match number(o.get("v")) {
        Some(v) if v == f64::from(RECORD_VERSION) => Ok(()),
        Some(_) => Err(String::from("unsupported record version `v`")),
        None => Err(bad("v", "a number")),
    }
}

/// A stored record, every field checked; `Err((key or "", reason))` otherwise.
pub fn record_from(o: &Value) -> Result<Record, (String, String)> {
    version(o)
        .and_then(|()| record_fields(o))
        .map_err(|e| (text(o.get("key")).unwrap_or_default(), e))
}

fn record_fields(o: &Value) -> Result<Record, String> {
    if !matches!(o, Value::Obj(_)) {
        return Err(String::from("not an object"));
    }
    let sent_at = opt_num(o, "sentAt")?;
    let sent_srv = opt_num(o, "sentSrv")?;
    Ok(Record {
        key: need_str(o, "key")?,
        seq: need_num(o, "seq")?,
        customer: need_str(o, "customer")?,
        body: need_str(o, "body")?,
        ts: opt_num(o, "ts")?,
        created_at: need_num(o, "createdAt")?,
        server_created: opt_num(o, "serverCreated")?,
        sent_at: sent_at.map(|local| Sent {
            local,
            server: sent_srv,
        }),
        attempts: whole(o.get("attempts"), f64::from(u32::MAX))
            .map(|n| n as u32)
            .ok_or_else(|| bad("attempts", "a non-negative integer"))?,
        next_at: need_num(o, "nextAt")?,
        last_error: match o.get("lastError") {
            None | Some(Value::Null) => None,
            v => Some(text(v).ok_or_else(|| bad("lastError", "a string"))?),
        },
    })
}

/// `record.sentAt`/`sentSrv` of a stored dead letter, when readable.
fn sent_of(r: &Value) -> Option<Sent> {
    Some(Sent {
        local: number(r.get("sentAt"))?,
        server: number(r.get("sentSrv")),
    })
}

fn dead_fields(o: &Value) -> Result<DeadLetter, String> {
    version(o)?;
    let key = need_str(o, "key")?;
    let record = record_fields(o.get("record").unwrap_or(&Value::Undefined)).map_err(|e| {
        let mut s = String::from("in `record`: ");
        s.push_str(&e);
        s
    })?;
    if record.key != key {
        return Err(String::from("`record.key` differs from `key`"));
    }
    Ok(DeadLetter {
        record,
        code: need_str(o, "code")?,
        message: need_str(o, "message")?,
        status: match o.get("status") {
            None | Some(Value::Null) => None,
            v => Some(
                whole(v, f64::from(u16::MAX))
                    .map(|n| n as u16)
                    .ok_or_else(|| bad("status", "an HTTP status"))?,
            ),
        },
        failed_at: need_num(o, "failedAt")?,
    })
}

/// A stored dead letter; garbage becomes a `corrupt_record` letter keeping the key, with the
/// reason as its message.
pub fn dead_from(o: &Value) -> DeadLetter {
    dead_fields(o).unwrap_or_else(|reason| DeadLetter {
        record: Record::unreadable(text(o.get("key")).unwrap_or_default()),
        code: String::from("corrupt_record"),
        message: reason,
        status: None,
        failed_at: 0.0,
    })
}

/// The keys given to `discard(keys)` / `retryDeadLetters(keys)`: an array of strings.
fn keys_from(v: Option<&Value>) -> Result<Vec<String>, TrackError> {
    match v {
        Some(Value::Arr(a)) if a.iter().all(|k| matches!(k, Value::Str(_))) => Ok(texts(v)),
        _ => Err(TrackError::input(
            "keys",
            "expected an array of idempotency keys (strings)",
        )),
    }
}

/// One of the driver's reports, `{ t, … }`, as the engine's input. What came from outside the
/// driver is in `v`: a store's result, the keys a caller gave, the queue's highest `seq`.
/// `kind_of(id)`: what store operation `id` was. `Ok(None)` for a report that is not one (a
/// driver bug: ignored); `Err` for a caller's mistake to throw (keys that are not strings).
pub fn input_from(
    v: &Value,
    kind_of: &mut dyn FnMut(Id) -> OpKind,
) -> Result<Option<Input>, TrackError> {
    let id = || number(v.get("id")).map(|n| n as Id);
    let call = || number(v.get("call")).map(|n| n as Id);
    let flag = |k: &str| matches!(v.get(k), Some(Value::Bool(true)));
    let Some(t) = text(v.get("t")) else {
        return Ok(None);
    };
    Ok(Some(match t.as_str() {
        "opened" => Input::Opened {
            durable: flag("durable"),
            fallback: text(v.get("fallback")),
            max_seq: number(v.get("v")).unwrap_or(f64::NAN),
        },
        "stored" => {
            let Some(id) = id() else { return Ok(None) };
            let kind = kind_of(id);
            let value = v.get("v").unwrap_or(&Value::Undefined);
            Input::Stored {
                id,
                result: if flag("ok") {
                    Ok(stored_from(kind, value))
                } else {
                    Err(text(Some(value)).unwrap_or_else(|| String::from("the store failed")))
                },
            }
        }
        "answered" => Input::Replied {
            id: match id() {
                Some(i) => i,
                None => return Ok(None),
            },
            reply: Reply::Answer(Answered {
                status: number(v.get("status")).map_or(0, |s| s as u16),
                redirected: flag("redirected"),
                code: text(v.get("code")),
                message: text(v.get("message")),
                snippet: text(v.get("snippet")),
                retry_after: text(v.get("retryAfter")),
                retry_after_date: number(v.get("retryAfterDate")),
                date: number(v.get("date")),
            }),
        },
        "failed" => {
            let error = text(v.get("error")).unwrap_or_default();
            let Some(id) = id() else { return Ok(None) };
            Input::Replied {
                id,
                reply: match text(v.get("how")).as_deref() {
                    Some("timeout") => Reply::Timeout,
                    Some("unsent") => Reply::Unsent(error),
                    _ => Reply::Network(error),
                },
            }
        }
        "handedOver" => Input::HandedOver {
            id: match id() {
                Some(i) => i,
                None => return Ok(None),
            },
            result: match text(v.get("error")) {
                Some(e) => Err(e),
                None => Ok(()),
            },
        },
        "flush" | "pending" | "dead" | "discard" | "retry" => {
            let Some(call) = call() else { return Ok(None) };
            match t.as_str() {
                "flush" => Input::Flush { call },
                "pending" => Input::Pending { call },
                "dead" => Input::DeadLetters { call },
                "discard" => Input::Discard {
                    call,
                    keys: keys_from(v.get("v"))?,
                },
                _ => Input::RetryDead {
                    call,
                    keys: match v.get("v") {
                        None | Some(Value::Null) => None,
                        k => Some(keys_from(k)?),
                    },
                },
            }
        }
        "online" => Input::Online,
        "offline" => Input::Offline,
        "hidden" => Input::Hidden,
        "pagehide" => Input::PageHide,
        "remote" => Input::Remote,
        "timer" => Input::Timer,
        "locked" => Input::Locked { granted: true },
        "lockBusy" => Input::Locked { granted: false },
        "close" => Input::Close,
        _ => return Ok(None),
    }))
}
