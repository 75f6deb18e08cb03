//! Out: commands, records, dead letters, outcomes and the driver's settings as JSON text.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Appends `cmds` as a JSON array. `sent`: the `busy` list of the last `add` written to this
/// driver; an `add` with the same list (the same `Rc`) says `"busy":"same"` instead of
/// repeating it, and the driver reuses the one it has.
pub fn write_commands(
    out: &mut String,
    cmds: impl IntoIterator<Item = Command>,
    num: FormatNum<'_>,
    sent: &mut Option<Rc<Vec<String>>>,
) {
    out.push('[');
    for (i, c) in cmds.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        command(out, c, num, sent);
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

fn command(out: &mut String, c: Command, num: FormatNum<'_>, sent: &mut Option<Rc<Vec<String>>>) {
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
            store(&mut o, cmd, num, sent);
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

fn store(o: &mut Obj<'_>, cmd: StoreCmd, num: FormatNum<'_>, sent: &mut Option<Rc<Vec<String>>>) {
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
                if sent.as_ref().is_some_and(|s| Rc::ptr_eq(s, &l.busy)) {
                    m.str("busy", "same");
                } else {
                    m.strs("busy", l.busy.iter());
                    *sent = Some(l.busy);
                }
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
