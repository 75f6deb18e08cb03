//! What crosses between the engine and its driver, as data: commands out as JSON text (one
//! string per batch, which the driver `JSON.parse`s), and the driver's reports back in as a
//! [`Value`] (the wasm edge reads JavaScript objects with the same guarded converter as
//! `track()` input). Plain Rust, so `cargo test` checks the exact shapes `js/tracker.js` and
//! `js/store.js` read — and one string per batch instead of a JavaScript object built field by
//! field keeps the wasm small.
//!
//! Records are stored as `{ v, key, seq, customer, body, ts?, createdAt, attempts, nextAt,
//! lastError?, serverCreated?, sentAt?, sentSrv? }`; dead letters as `{ v, key, record, code,
//! message, status?, failedAt }`. What comes back from storage may be foreign or corrupt: it is
//! validated field by field.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Command, Endpoint, Id, Input, Notice, Outcome, Storage, StoreCmd, Stored, Target};
use crate::answer::{Answered, Reply};
use crate::error::TrackError;
use crate::queue::{DeadLetter, Record, Sent, RECORD_VERSION};
use crate::value::{push_u64, write_num, write_str, FormatNum, Value};

// ---- out: JSON text --------------------------------------------------------------------------

/// Appends `cmds` as a JSON array.
pub fn write_commands(
    out: &mut String,
    cmds: impl IntoIterator<Item = Command>,
    num: FormatNum<'_>,
) {
    out.push('[');
    for (i, c) in cmds.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        command(out, c, num);
    }
    out.push(']');
}

/// A JSON object under construction: `{` on creation, `,` between members, `}` on [`Obj::end`].
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }
    #[inline(never)]
    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }
    #[inline(never)]
    fn str(&mut self, k: &str, v: &str) {
        write_str(self.key(k), v);
    }
    #[inline(never)]
    fn u(&mut self, k: &str, v: u64) {
        push_u64(self.key(k), v);
    }
    #[inline(never)]
    fn num(&mut self, k: &str, v: f64, num: FormatNum<'_>) {
        write_num(self.key(k), v, num);
    }
    #[inline(never)]
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k).push_str(if v { "true" } else { "false" });
    }
    #[inline(never)]
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.str(k, v);
        }
    }
    fn strs<'s>(&mut self, k: &str, v: impl IntoIterator<Item = &'s String>) {
        strings(self.key(k), v);
    }
    fn end(self) {
        self.out.push('}');
    }
}

fn strings<'s>(out: &mut String, v: impl IntoIterator<Item = &'s String>) {
    out.push('[');
    for (i, s) in v.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, s);
    }
    out.push(']');
}

fn command(out: &mut String, c: Command, num: FormatNum<'_>) {
    let mut o = Obj::new(out);
    let t = |o: &mut Obj<'_>, t: &str| o.str("t", t);
    match c {
        Command::Open => t(&mut o, "open"),
        Command::CloseStore => t(&mut o, "closeStore"),
        Command::Lock => t(&mut o, "lock"),
        Command::Unlock => t(&mut o, "unlock"),
        Command::Announce => t(&mut o, "announce"),
        Command::Wake(at) => {
            t(&mut o, "wake");
            match at {
                Some(at) => o.num("at", at, num),
                None => o.key("at").push_str("null"),
            }
        }
        Command::Send {
            id,
            endpoint,
            body,
            keepalive,
        } => {
            t(&mut o, "send");
            o.u("id", u64::from(id));
            o.bool("batch", endpoint == Endpoint::Batch);
            o.str("body", &body);
            o.bool("keepalive", keepalive);
        }
        Command::HandOver { id, items } => {
            t(&mut o, "handover");
            o.u("id", u64::from(id));
            let out = o.key("items");
            out.push('[');
            for (n, i) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                let mut m = Obj::new(out);
                m.str("idempotencyKey", &i.key);
                m.str("body", &i.body);
                m.num("createdAt", i.created_at, num);
                m.str("reason", i.reason);
                if let Some(s) = i.sent_at {
                    m.num("sentAt", s, num);
                }
                m.u("delayMs", i.delay_ms);
                m.end();
            }
            out.push(']');
        }
        Command::Store { id, target, cmd } => {
            t(&mut o, "store");
            o.u("id", u64::from(id));
            o.bool("spill", target == Target::Spill);
            store(&mut o, cmd, num);
        }
        Command::Emit(n) => {
            t(&mut o, "emit");
            notice(o.key("event"), &n);
        }
        Command::Resolve { call, result } => {
            t(&mut o, "resolve");
            o.u("call", u64::from(call));
            match result {
                Ok(v) => outcome(o.key("value"), v, num),
                Err(e) => error(o.key("error"), &e),
            }
        }
    }
    o.end();
}

fn store(o: &mut Obj<'_>, cmd: StoreCmd, num: FormatNum<'_>) {
    let records = |out: &mut String, recs: &[Record]| {
        out.push('[');
        for (i, r) in recs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_record(out, r, true, num);
        }
        out.push(']');
    };
    let (op, arg): (&str, Option<StoreCmd>) = match cmd {
        StoreCmd::Load => ("load", None),
        StoreCmd::Count => ("count", None),
        StoreCmd::LoadDead => ("loadDead", None),
        StoreCmd::Add { .. } => ("add", Some(cmd)),
        StoreCmd::Update { .. } => ("update", Some(cmd)),
        StoreCmd::Renew { .. } => ("renew", Some(cmd)),
        StoreCmd::Delete { .. } => ("del", Some(cmd)),
        StoreCmd::MoveToDead { .. } => ("moveToDead", Some(cmd)),
        StoreCmd::DeleteDead { .. } => ("delDead", Some(cmd)),
        StoreCmd::Revive { .. } => ("revive", Some(cmd)),
    };
    o.str("op", op);
    let Some(cmd) = arg else {
        return;
    };
    let out = o.key("arg");
    match cmd {
        StoreCmd::Add { recs, limit } => {
            let mut a = Obj::new(out);
            records(a.key("records"), &recs);
            if let Some(l) = limit {
                let mut m = Obj::new(a.key("limit"));
                m.u("max", l.max as u64);
                m.strs("busy", &l.busy);
                m.num("now", l.now, num);
                m.end();
            }
            a.end();
        }
        StoreCmd::Update { recs } | StoreCmd::Revive { recs } => records(out, &recs),
        StoreCmd::Renew { rec, prev } => {
            let mut a = Obj::new(out);
            write_record(a.key("record"), &rec, true, num);
            match prev {
                Some(p) => a.num("prev", p, num),
                None => a.key("prev").push_str("null"),
            }
            a.end();
        }
        StoreCmd::Delete { keys } | StoreCmd::DeleteDead { keys } => strings(out, &keys),
        StoreCmd::MoveToDead { letters } => {
            out.push('[');
            for (i, d) in letters.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_dead(out, d, num);
            }
            out.push(']');
        }
        StoreCmd::Load | StoreCmd::Count | StoreCmd::LoadDead => out.push_str("null"),
    }
}

/// A record as the stores keep it (`versioned`: with `v`, as stored at the top level).
pub fn write_record(out: &mut String, r: &Record, versioned: bool, num: FormatNum<'_>) {
    let mut o = Obj::new(out);
    if versioned {
        o.u("v", u64::from(RECORD_VERSION));
    }
    o.str("key", &r.key);
    o.num("seq", r.seq, num);
    o.str("customer", &r.customer);
    o.str("body", &r.body);
    if let Some(ts) = r.ts {
        o.num("ts", ts, num);
    }
    o.num("createdAt", r.created_at, num);
    o.u("attempts", u64::from(r.attempts));
    o.num("nextAt", r.next_at, num);
    o.opt_str("lastError", r.last_error.as_deref());
    if let Some(c) = r.server_created {
        o.num("serverCreated", c, num);
    }
    if let Some(s) = r.sent_at {
        o.num("sentAt", s.local, num);
        if let Some(v) = s.server {
            o.num("sentSrv", v, num);
        }
    }
    o.end();
}

/// A dead letter as the stores keep it.
pub fn write_dead(out: &mut String, d: &DeadLetter, num: FormatNum<'_>) {
    let mut o = Obj::new(out);
    o.u("v", u64::from(RECORD_VERSION));
    o.str("key", &d.record.key);
    write_record(o.key("record"), &d.record, false, num);
    o.str("code", &d.code);
    o.str("message", &d.message);
    if let Some(s) = d.status {
        o.u("status", u64::from(s));
    }
    o.num("failedAt", d.failed_at, num);
    o.end();
}

fn storage(st: Storage) -> &'static str {
    match st {
        Storage::Durable => "durable",
        Storage::Memory => "memory",
        Storage::Cloudflare => "cloudflare",
        Storage::Off => "off",
    }
}

/// A tracker event for listeners.
fn notice(out: &mut String, n: &Notice) {
    let mut o = Obj::new(out);
    o.str("type", n.kind);
    o.opt_str("idempotencyKey", n.key.as_deref());
    o.opt_str("reason", n.reason);
    o.opt_str("message", n.message.as_deref());
    o.opt_str("code", n.code.as_deref());
    if let Some(v) = n.status {
        o.u("status", u64::from(v));
    }
    if let Some(v) = n.duplicate {
        o.bool("duplicate", v);
    }
    if let Some(v) = n.count {
        o.u("count", u64::from(v));
    }
    if let Some(v) = n.storage {
        o.str("storage", storage(v));
    }
    o.end();
}

/// A `TrackError`'s fields; the driver makes the `TrackError` object.
pub fn error(out: &mut String, e: &TrackError) {
    let mut o = Obj::new(out);
    o.str("code", e.code.as_str());
    o.str("message", &e.message);
    o.opt_str("field", e.field.as_deref());
    if let Some(s) = e.status {
        o.u("status", u64::from(s));
    }
    o.opt_str("idempotencyKey", e.idempotency_key.as_deref());
    if e.unanswered {
        o.bool("unanswered", true);
    }
    if let Some(ms) = e.retry_after_ms {
        o.u("retryAfterMs", ms);
    }
    o.end();
}

/// A call's result.
fn outcome(out: &mut String, v: Outcome, num: FormatNum<'_>) {
    if let Outcome::DeadLetters(list) = &v {
        out.push('[');
        for (i, d) in list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            dead_info(out, d, num);
        }
        out.push(']');
        return;
    }
    if let Outcome::Count(n) = v {
        return push_u64(out, u64::from(n));
    }
    let mut o = Obj::new(out);
    match v {
        Outcome::Delivered {
            key,
            attempts,
            response,
        } => {
            o.str("status", "delivered");
            o.str("idempotencyKey", &key);
            o.u("attempts", u64::from(attempts));
            o.u("responseId", u64::from(response));
        }
        Outcome::Duplicate { key, attempts } => {
            o.str("status", "duplicate");
            o.str("idempotencyKey", &key);
            o.u("attempts", u64::from(attempts));
        }
        Outcome::Queued {
            key,
            reason,
            message,
            storage: st,
        } => {
            o.str("status", "queued");
            o.str("idempotencyKey", &key);
            o.str("reason", reason);
            o.str("message", &message);
            o.str("storage", storage(st));
        }
        Outcome::Flushed {
            delivered,
            duplicates,
            failed,
            remaining,
            handed_over,
        } => {
            o.u("delivered", u64::from(delivered));
            o.u("duplicates", u64::from(duplicates));
            o.u("failed", u64::from(failed));
            o.u("remaining", u64::from(remaining));
            if handed_over > 0 {
                o.u("handedOver", u64::from(handed_over));
            }
        }
        Outcome::Pending {
            queued,
            in_flight,
            dead,
            storage: st,
            spilled,
        } => {
            o.u("queued", u64::from(queued));
            o.u("inFlight", u64::from(in_flight));
            o.u("deadLetters", u64::from(dead));
            o.str("storage", storage(st));
            if spilled > 0 {
                o.u("inMemory", u64::from(spilled));
            }
        }
        Outcome::DeadLetters(_) | Outcome::Count(_) => {}
    }
    o.end();
}

/// A dead letter as `deadLetters()` shows it: the event is its wire body, parsed.
fn dead_info(out: &mut String, d: &DeadLetter, num: FormatNum<'_>) {
    let mut o = Obj::new(out);
    o.str("idempotencyKey", &d.record.key);
    o.str("customerId", &d.record.customer);
    o.str("code", &d.code);
    o.str("message", &d.message);
    if let Some(s) = d.status {
        o.u("status", u64::from(s));
    }
    o.num("createdAt", d.record.created_at, num);
    o.num("failedAt", d.failed_at, num);
    o.u("attempts", u64::from(d.record.attempts));
    // The body is JSON the tracker wrote; a letter read back unreadable has none.
    let body = d.record.body.as_str();
    o.key("event")
        .push_str(if body.starts_with('{') { body } else { "null" });
    o.end();
}

/// `{ headers, trackUrl, batchUrl, queue, queueName, timeoutMs }`: what the driver needs to
/// carry commands out (the secret key only inside `headers.Authorization`).
pub fn write_config(out: &mut String, o: &crate::options::Options) {
    use crate::options::{HeaderValue, QueueMode};
    let mut c = Obj::new(out);
    let mut h = Obj::new(c.key("headers"));
    for (name, value) in o.request_headers() {
        let out = h.key(name);
        match value {
            HeaderValue::Plain(v) => write_str(out, v),
            HeaderValue::Bearer(k) => {
                let mut s = String::from("Bearer ");
                s.push_str(k);
                write_str(out, &s);
            }
        }
    }
    h.end();
    c.str("trackUrl", &o.track_url());
    c.str("batchUrl", &o.batch_url());
    c.str(
        "queue",
        match o.queue {
            QueueMode::Auto => "auto",
            QueueMode::IndexedDb => "indexeddb",
            QueueMode::Memory => "memory",
            QueueMode::Off => "off",
        },
    );
    c.str("queueName", &o.queue_name);
    c.u("timeoutMs", u64::from(o.timeout_ms));
    c.end();
}

// ---- in: the driver's reports ---------------------------------------------------------------

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
    number(v).filter(|n| *n >= 0.0 && *n <= max && n.fract() == 0.0)
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

/// One of the driver's reports, `{ t, … }`, as the engine's input. `kind_of(id)`: what store
/// operation `id` was. `Ok(None)` for a report that is not one (a driver bug: ignored); `Err`
/// for a caller's mistake to throw (keys that are not strings).
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
            max_seq: number(v.get("maxSeq")).unwrap_or(0.0),
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
                    keys: keys_from(v.get("keys"))?,
                },
                _ => Input::RetryDead {
                    call,
                    keys: match v.get("keys") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{HandOverItem, Limit};
    use crate::error::Code;
    use alloc::vec;

    fn fmt(n: f64, out: &mut String) {
        crate::value::tests_support::rust_num(n, out)
    }

    fn json(c: Command) -> serde_json::Value {
        let mut s = String::new();
        write_commands(&mut s, [c], &fmt);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        v[0].clone()
    }

    fn rec() -> Record {
        Record {
            key: "k\"1".into(),
            seq: 1_800_000_000_000.0 + 1.0 / 1024.0,
            customer: "cus".into(),
            body: "{\"customer_id\":\"cus\",\"value\":1}".into(),
            ts: Some(1_799_999_999_000.0),
            created_at: 1_800_000_000_000.0,
            server_created: None,
            attempts: 2,
            next_at: 1_800_000_001_000.0,
            last_error: Some("timeout\n".into()),
            sent_at: Some(Sent {
                local: 1_800_000_000_500.0,
                server: Some(1_800_000_002_500.0),
            }),
        }
    }

    /// The JSON value a stored object reads back as.
    fn value(v: &serde_json::Value) -> Value {
        crate::value::tests_support::from_serde(v)
    }

    #[test]
    fn commands_have_the_shapes_the_driver_reads() {
        let send = json(Command::Send {
            id: 7,
            endpoint: Endpoint::Batch,
            body: "[{\"a\":\"b\"}]".into(),
            keepalive: false,
        });
        assert_eq!(
            send,
            serde_json::json!({"t":"send","id":7,"batch":true,"body":"[{\"a\":\"b\"}]","keepalive":false})
        );
        assert_eq!(
            json(Command::Wake(None)),
            serde_json::json!({"t":"wake","at":null})
        );
        assert_eq!(json(Command::Wake(Some(5.0)))["at"], 5);
        let add = json(Command::Store {
            id: 3,
            target: Target::Spill,
            cmd: StoreCmd::Add {
                recs: vec![rec()],
                limit: Some(Limit {
                    max: 10,
                    busy: vec!["b".into()],
                    now: 9.0,
                }),
            },
        });
        assert_eq!(add["op"], "add");
        assert_eq!(add["spill"], true);
        assert_eq!(
            add["arg"]["limit"],
            serde_json::json!({"max":10,"busy":["b"],"now":9})
        );
        let r = &add["arg"]["records"][0];
        assert_eq!(r["v"], 1);
        assert_eq!(r["key"], "k\"1");
        assert_eq!(r["lastError"], "timeout\n");
        assert_eq!(r["sentSrv"], 1_800_000_002_500u64);
        let h = json(Command::HandOver {
            id: 1,
            items: vec![HandOverItem {
                key: "k".into(),
                body: "{}".into(),
                created_at: 1.0,
                reason: "timeout",
                sent_at: None,
                delay_ms: 0,
            }],
        });
        assert_eq!(
            h["items"][0],
            serde_json::json!({"idempotencyKey":"k","body":"{}","createdAt":1,"reason":"timeout","delayMs":0})
        );
        let err = json(Command::Resolve {
            call: 4,
            result: Err(TrackError::new(Code::Unavailable, "no").with_key("k")),
        });
        assert_eq!(
            err["error"],
            serde_json::json!({"code":"unavailable","message":"no","idempotencyKey":"k"})
        );
        let dead = DeadLetter {
            record: rec(),
            code: "feature_not_found".into(),
            message: "m".into(),
            status: Some(404),
            failed_at: 2.0,
        };
        let letters = json(Command::Resolve {
            call: 5,
            result: Ok(Outcome::DeadLetters(vec![dead.clone()])),
        });
        assert_eq!(letters["value"][0]["event"]["value"], 1);
        assert_eq!(letters["value"][0]["status"], 404);
        let flushed = json(Command::Resolve {
            call: 6,
            result: Ok(Outcome::Flushed {
                delivered: 1,
                duplicates: 0,
                failed: 0,
                remaining: 2,
                handed_over: 0,
            }),
        });
        assert_eq!(
            flushed["value"],
            serde_json::json!({"delivered":1,"duplicates":0,"failed":0,"remaining":2})
        );
        let delivered = json(Command::Resolve {
            call: 6,
            result: Ok(Outcome::Delivered {
                key: "k".into(),
                attempts: 1,
                response: 9,
            }),
        });
        assert_eq!(
            delivered["value"],
            serde_json::json!({"status":"delivered","idempotencyKey":"k","attempts":1,"responseId":9})
        );
        // A dead letter written for the store reads back as itself.
        let d = json(Command::Store {
            id: 1,
            target: Target::Main,
            cmd: StoreCmd::MoveToDead {
                letters: vec![dead.clone()],
            },
        });
        assert_eq!(dead_from(&value(&d["arg"][0])), dead);
    }

    #[test]
    fn records_round_trip_and_garbage_is_named() {
        let mut s = String::new();
        write_record(&mut s, &rec(), true, &fmt);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(record_from(&value(&v)), Ok(rec()));
        let mut bare = rec();
        bare.ts = None;
        bare.last_error = None;
        bare.sent_at = None;
        let mut s = String::new();
        write_record(&mut s, &bare, true, &fmt);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(record_from(&value(&v)), Ok(bare));
        for (junk, why) in [
            (
                serde_json::json!({"key":"x"}),
                "`v` is missing or not a number",
            ),
            (
                serde_json::json!({"v":2,"key":"x"}),
                "unsupported record version `v`",
            ),
            (
                serde_json::json!({"v":1,"key":"x","seq":1,"customer":"c","body":"{}","createdAt":1,"attempts":-1,"nextAt":1}),
                "`attempts` is missing or not a non-negative integer",
            ),
            (serde_json::json!("text"), "not an object"),
        ] {
            let got = record_from(&value(&junk));
            assert_eq!(got.as_ref().map_err(|e| e.1.as_str()), Err(why), "{junk}");
        }
        assert_eq!(
            record_from(&value(&serde_json::json!({"key":"x"})))
                .unwrap_err()
                .0,
            "x"
        );
        let letter = dead_from(&value(&serde_json::json!({"v":1,"key":"y","record":{}})));
        assert_eq!(letter.code, "corrupt_record");
        assert_eq!(letter.record.key, "y");
    }

    #[test]
    fn reports_become_inputs() {
        let mut kinds = |_| OpKind::Loaded;
        let v = value(&serde_json::json!({"t":"stored","id":3,"ok":true,"v":[{"key":"x"}]}));
        let Some(Input::Stored {
            id: 3,
            result: Ok(Stored::Loaded(l)),
        }) = input_from(&v, &mut kinds).unwrap()
        else {
            panic!("not a load");
        };
        assert_eq!(l.len(), 1);
        assert!(l[0].is_err());
        let v =
            value(&serde_json::json!({"t":"stored","id":3,"ok":false,"v":"QuotaExceededError"}));
        assert_eq!(
            input_from(&v, &mut kinds),
            Ok(Some(Input::Stored {
                id: 3,
                result: Err("QuotaExceededError".into())
            }))
        );
        let v = value(
            &serde_json::json!({"t":"answered","id":2,"status":409,"redirected":false,"code":"duplicate_idempotency_key","retryAfterDate":null,"date":1.5e12}),
        );
        let Some(Input::Replied {
            id: 2,
            reply: Reply::Answer(a),
        }) = input_from(&v, &mut kinds).unwrap()
        else {
            panic!("not an answer");
        };
        assert_eq!(
            (a.status, a.code.as_deref(), a.date),
            (409, Some("duplicate_idempotency_key"), Some(1.5e12))
        );
        let v =
            value(&serde_json::json!({"t":"failed","id":2,"how":"unsent","error":"ECONNREFUSED"}));
        assert_eq!(
            input_from(&v, &mut kinds),
            Ok(Some(Input::Replied {
                id: 2,
                reply: Reply::Unsent("ECONNREFUSED".into())
            }))
        );
        let report = |j: serde_json::Value| input_from(&value(&j), &mut |_| OpKind::Done);
        assert_eq!(
            report(serde_json::json!({"t":"lockBusy"})),
            Ok(Some(Input::Locked { granted: false }))
        );
        assert_eq!(report(serde_json::json!({"t":"nonsense"})), Ok(None));
        assert_eq!(
            report(serde_json::json!({"t":"retry","call":1})),
            Ok(Some(Input::RetryDead {
                call: 1,
                keys: None
            }))
        );
        assert_eq!(
            report(serde_json::json!({"t":"discard","call":1,"keys":["a"]})),
            Ok(Some(Input::Discard {
                call: 1,
                keys: vec!["a".into()]
            }))
        );
        let e = report(serde_json::json!({"t":"discard","call":1,"keys":[1]})).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::InvalidInput, Some("keys"))
        );
        let added = stored_from(
            OpKind::Added,
            &value(
                &serde_json::json!({"evicted":["a"],"existing":[],"deadSent":[{"key":"d","record":{"sentAt":5}}]}),
            ),
        );
        assert_eq!(
            added,
            Stored::Added {
                evicted: vec!["a".into()],
                existing: vec![],
                dead_sent: vec![(
                    "d".into(),
                    Sent {
                        local: 5.0,
                        server: None
                    }
                )],
            }
        );
    }
}
