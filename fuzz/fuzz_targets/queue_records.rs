//! The queue's pure policy over arbitrary stored records (what the store codec decodes; the
//! codec itself works on `JsValue`s and exists only in wasm): `plan` (what a drain sends,
//! expires, holds, and when it wakes), `body_for` / `batch_body` (the replayed bodies, from any
//! stored body and times), `Clock` (its bounds, `age`, `stamp` / `ended_by` / `proves`,
//! `timestamp_for` / `clamp`), `anchor`, `confirmed_at`, `is_leased` and `revive`.
//!
//! Invariants, each of them by design:
//! - `plan`: indices ascending, in range, no record both sent and expired; a record being sent
//!   by the tracker (`busy`) is neither sent nor expired; a record expires exactly when its age
//!   is unknown or over `maxEventAgeMs`; a record is sent exactly when nothing holds it back —
//!   a lease, a backoff (unless forced), an unanswered attempt's confirmation window, a held
//!   customer, or an earlier event of its customer that is busy or held back (order per
//!   customer); a forced drain sends a superset of a normal one and expires the same; fewer
//!   held customers or busy records never send less; `wake_at` is the earliest time one of the
//!   records held back may become due (finite, ahead, at most an hour away), and no record
//!   becomes due sooner: a plan at any time before `wake_at` sends nothing a plan now does not.
//! - Bodies: a replay of an event body is JSON carrying the stored event plus a timestamp that
//!   is the caller's or when `track()` was called, never ahead of the server's clock as the
//!   tracker knows it; without a timestamp to add, the stored body is sent as it is; a batch is
//!   the array of those bodies.
//! - The clock, fed honest observations (a server whose clock runs at a fixed offset from the
//!   device's, `Date` truncated to the second, any round trip): its offset bounds the true one
//!   from below; ages are never under-estimated, also after `anchor`; timestamps never lead the
//!   server's true clock; a 409 is taken as proof only once the earlier attempt's window is over
//!   on the server's true clock, even when the device clock jumped in between (see below for
//!   the round-trip bound this needs).
//! - `revive`: only a whole record comes back; only an `expired` letter gets a fresh age window
//!   (and is then not expired at once); every other keeps its age, and the confirmation window
//!   of an attempt that got no answer survives.
#![no_main]

use autumn_track::queue::{
    anchor, batch_body, body_for, confirmed_at, is_leased, lease_end, plan, revive, Clock, DeadLetter,
    Plan, Policy, Record, Sent, CLOCK_SLACK_MS, MAX_CLOCK_RTT_MS, MAX_WAIT_MS,
};
use autumn_track_fuzz::{get, get_num, num, pairs};
use libfuzzer_sys::fuzz_target;

const NOW: f64 = 1_800_000_000_000.0;

/// A time field: an offset from `now` (`-10`, `5000`, `inf`, `NaN`), or `abs:X` for X itself.
fn time(field: Option<&str>, now: f64, default: f64) -> f64 {
    match field.map(str::trim) {
        None | Some("") => default,
        Some(f) => match f.strip_prefix("abs:") {
            Some(x) => num(x).unwrap_or(default),
            None => num(f).map_or(default, |d| now + d),
        },
    }
}

/// An optional time field: empty or `-` for none.
fn opt_time(field: Option<&str>, now: f64) -> Option<f64> {
    match field.map(str::trim) {
        None | Some("") | Some("-") => None,
        f => Some(time(f, now, now)),
    }
}

/// An event body as the tracker writes it.
fn event_body(customer: &str, key: &str) -> String {
    let mut b = String::from("{\"customer_id\":");
    b.push_str(&serde_json::to_string(customer).unwrap_or_default());
    b.push_str(",\"feature_id\":\"f\",\"value\":1,\"idempotency_key\":");
    b.push_str(&serde_json::to_string(key).unwrap_or_default());
    b.push('}');
    b
}

/// One record line:
/// `key|customer|seq|created|next|attempts|ts|sent_local|sent_server|server_created|flags|body`,
/// fields optional from the right. Times are offsets from now (or `abs:X`); `ts` is absolute
/// (`-` or empty: none); no `sent_local`: every attempt was answered; flags: `b` = being sent by
/// this tracker (busy); body `*` or none: an event body built from key and customer. `?key`
/// alone: `Record::unreadable(key)`. Returns the record and whether it is busy.
fn record(line: &str, i: usize, now: f64) -> (Record, bool) {
    if let Some(key) = line.strip_prefix('?') {
        return (Record::unreadable(key.to_string()), false);
    }
    let f: Vec<&str> = line.splitn(12, '|').collect();
    let at = |i: usize| f.get(i).copied();
    let key = at(0).unwrap_or("").to_string();
    let customer = at(1).unwrap_or("c").to_string();
    let body = match at(11) {
        None | Some("*") => event_body(&customer, &key),
        Some(b) => b.to_string(),
    };
    let rec = Record {
        seq: at(2).and_then(num).unwrap_or(i as f64),
        created_at: time(at(3), now, now),
        next_at: time(at(4), now, now),
        attempts: at(5).and_then(num).map_or(0, |n| n as u32),
        ts: match at(6).map(str::trim) {
            None | Some("") | Some("-") => None,
            Some(t) => num(t),
        },
        sent_at: opt_time(at(7), now).map(|local| Sent {
            local,
            server: opt_time(at(8), now),
        }),
        server_created: opt_time(at(9), now),
        last_error: None,
        key,
        customer,
        body,
    };
    (rec, at(10).is_some_and(|f| f.contains('b')))
}

/// An honest observation of a server whose clock is the device's plus `skew`: a request sent
/// at local `sent`, answered after `rtt` ms, the server's `Date` made `frac` of the way through
/// and truncated to the second. All in whole milliseconds, as `Date.now()` is.
fn honest(clock: &mut Clock, skew: f64, sent: f64, rtt: f64, frac: f64) {
    let made = sent + skew + (frac.clamp(0.0, 1.0) * rtt).round();
    let date = (made / 1000.0).floor() * 1000.0;
    clock.observe_round_trip(date, sent, sent + rtt);
}

/// Whether an honest observation of these is taken (else the clock learns nothing).
fn accepted(skew: f64, sent: f64, rtt: f64, frac: f64) -> bool {
    let made = sent + skew + (frac.clamp(0.0, 1.0) * rtt).round();
    (made / 1000.0).floor() * 1000.0 > 0.0 && rtt <= MAX_CLOCK_RTT_MS
}

/// A whole-millisecond header number in a sane range (for the honest clock model).
fn whole(x: Option<f64>, default: f64, bound: f64) -> f64 {
    x.filter(|v| v.is_finite())
        .unwrap_or(default)
        .clamp(-bound, bound)
        .round()
}

fn marks(list: &[usize], len: usize) -> Vec<bool> {
    assert!(list.windows(2).all(|w| w[0] < w[1]), "ascending: {list:?}");
    let mut m = vec![false; len];
    for &i in list {
        assert!(i < len, "index {i} of {len} records");
        m[i] = true;
    }
    m
}

fn subset(a: &[usize], b: &[usize]) -> bool {
    a.iter().all(|i| b.contains(i))
}

fuzz_target!(|data: &[u8]| {
    // Input, as text: a first line of `key=value` pairs, then one record per line (see
    // `record`), at most 64, sorted by seq then key as the stores return them.
    //   now, max_age, confirm (ms): the time and the policy;
    //   held=c1:5000,c2:abs:inf: customers held until (offset from now, or abs:);
    //   the clock: `date`, `sent`, `recv` (an arbitrary observation, offsets from now but date
    //   absolute), or an honest one: `skew` (server - device), `ago` (sent that long before
    //   now), `rtt`, `frac`; later, after the device clock `jump`ed forward by that much, a
    //   second honest observation `ago2`, `rtt2`, `frac2`, and a resend `after` ms after an
    //   unanswered attempt sent at now + `send`;
    //   t: where between now and `wake_at` to plan again (0 to 1);
    //   code: the dead-letter code for `revive` (default: cycles through a few).
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let kv = pairs(lines.next().unwrap_or(""));
    let n = |k: &str, default: f64| get_num(&kv, k).unwrap_or(default);
    let now = n("now", NOW);
    let policy = Policy {
        max_event_age_ms: n("max_age", 23.0 * 3_600_000.0),
        confirm_after_ms: n("confirm", 120_000.0),
        ..Policy::default()
    };
    let mut parsed: Vec<(Record, bool)> = lines
        .take(64)
        .enumerate()
        .map(|(i, l)| record(l, i, now))
        .collect();
    parsed.sort_by(|a, b| a.0.seq.total_cmp(&b.0.seq).then_with(|| a.0.key.cmp(&b.0.key)));
    let busy_keys: Vec<String> = parsed
        .iter()
        .filter(|(_, b)| *b)
        .map(|(r, _)| r.key.clone())
        .collect();
    let records: Vec<Record> = parsed.into_iter().map(|(r, _)| r).collect();
    let busy = |k: &str| busy_keys.iter().any(|b| b == k);
    let never = |_: &str| false;
    // One entry per customer, as the engine keeps them.
    let mut held: Vec<(String, f64)> = Vec::new();
    for item in get(&kv, "held").unwrap_or("").split(',') {
        if let Some((c, until)) = item.split_once(':') {
            if !held.iter().any(|(h, _)| h == c) {
                held.push((c.to_string(), time(Some(until), now, now)));
            }
        }
    }

    if !now.is_finite() || now.abs() > 8.64e15 {
        // Not a time Date.now() gives (a JavaScript Date ends at ±8.64e15 ms; far past it, a
        // wait of an hour is below the clock's float precision and no wake-up can be later
        // than now): only nothing may panic.
        let _ = plan(&records, now, &Clock::default(), &policy, true, &busy, &held);
        for r in &records {
            let _ = body_for(r, &Clock::default(), now, true);
            let _ = Clock::default().age(r, now);
        }
        return;
    }
    // Date.now() is whole milliseconds.
    let now = now.floor();

    // ---- the clock ----
    let mut clock = Clock::default();
    let mut truth: Option<f64> = None; // the server's true offset, when observed honestly
    let mut rtt_a = 0.0;
    if let Some(date) = get_num(&kv, "date") {
        let sent = time(get(&kv, "sent"), now, now);
        clock.observe_round_trip(date, sent, time(get(&kv, "recv"), now, now));
    } else if get_num(&kv, "skew").is_some() && now.abs() <= 1e13 {
        let skew = whole(get_num(&kv, "skew"), 0.0, 1e12);
        let rtt = whole(get_num(&kv, "rtt"), 100.0, 1e6).abs();
        let sent = now - whole(get_num(&kv, "ago"), 0.0, 1e9).abs() - rtt;
        let frac = n("frac", 0.5);
        honest(&mut clock, skew, sent, rtt, frac);
        assert_eq!(clock.offset().is_some(), accepted(skew, sent, rtt, frac));
        if clock.offset().is_some() {
            truth = Some(skew);
            rtt_a = rtt;
        }
    }
    if let Some(o) = clock.offset() {
        assert!(o.is_finite(), "offset {o}");
        assert_eq!(clock.known_server_now(now), Some(now + o));
        assert_eq!(clock.server_now(now), now + o);
    } else {
        assert_eq!(clock.known_server_now(now), None);
        assert_eq!(clock.server_now(now), now);
    }
    if let (Some(k), Some(o)) = (truth, clock.offset()) {
        assert!(o <= k, "offset {o} over the true {k}");
    }

    check_plans(&records, now, &clock, &policy, &busy, &never, &held, &kv);
    check_bodies(&records, now, &clock, truth);
    for r in &records {
        check_age_and_anchor(r, now, &clock, truth, &policy);
        check_revive(r, now, &clock, &policy, get(&kv, "code"));
    }
    if let Some(k) = truth {
        check_window(&kv, now, &clock, k, rtt_a, &policy);
    }
});

/// The plan, its definition record by record, and how it relates to other plans.
#[allow(clippy::too_many_arguments)]
fn check_plans(
    records: &[Record],
    now: f64,
    clock: &Clock,
    policy: &Policy,
    busy: &dyn Fn(&str) -> bool,
    never: &dyn Fn(&str) -> bool,
    held: &[(String, f64)],
    kv: &[(&str, &str)],
) {
    let len = records.len();
    let normal = plan(records, now, clock, policy, false, busy, held);
    let forced = plan(records, now, clock, policy, true, busy, held);
    for (p, force) in [(&normal, false), (&forced, true)] {
        let sent = marks(&p.send, len);
        let expired = marks(&p.expired, len);
        let mut blocked_customers: Vec<&str> = Vec::new();
        let mut wake: Option<f64> = None;
        for (i, r) in records.iter().enumerate() {
            let b = busy(&r.key);
            assert!(!(sent[i] && expired[i]), "record {i} sent and expired");
            if b {
                assert!(!sent[i] && !expired[i], "busy record {i} sent or set aside");
                blocked_customers.push(&r.customer);
                continue;
            }
            let too_old = clock
                .age(r, now)
                .map_or(true, |a| a > policy.max_event_age_ms);
            assert_eq!(expired[i], too_old, "record {i} expiry: {r:?}");
            if expired[i] {
                continue;
            }
            // What holds it back, and until when.
            // Leased on either clock (the local one alone is what the stores judge by).
            let lease = lease_end(r, now, clock);
            assert!(!is_leased(r, now) || lease.is_some(), "local lease of {i} ignored");
            let leased = lease.is_some();
            let window = confirmed_at(r, now, clock, policy).filter(|c| *c > now);
            // Told to wait out the window (an unproven 409 scheduled it at its end): even a
            // forced drain waits. Otherwise a record inside its window may go, alone.
            let waits_window = window.is_some_and(|c| r.next_at >= c);
            let backing_off = r.attempts > 0 && r.next_at > now && (!force || waits_window);
            let customer = held
                .iter()
                .find(|(c, _)| *c == r.customer)
                .map(|(_, u)| *u)
                .filter(|u| *u > now);
            let own = leased || backing_off || customer.is_some();
            let behind = blocked_customers.contains(&r.customer.as_str());
            if sent[i] {
                assert!(!leased, "leased record {i} sent: {r:?}");
                assert!(!backing_off, "record {i} sent during its backoff: {r:?}");
                assert!(customer.is_none(), "record {i} of a held customer sent");
                assert!(!behind, "record {i} sent before an earlier event of its customer");
                assert_eq!(
                    p.early.contains(&i),
                    window.is_some(),
                    "record {i}: sent alone exactly while inside its confirmation window"
                );
            } else {
                assert!(!p.early.contains(&i), "record {i} early but not sent");
                assert!(own || behind, "record {i} due but not sent: {r:?}");
                blocked_customers.push(&r.customer);
            }
            if own {
                let mut until = customer.unwrap_or(now);
                if backing_off {
                    until = until.max(r.next_at.min(now + MAX_WAIT_MS));
                }
                if let Some(end) = lease {
                    until = until.max(end.min(now + MAX_WAIT_MS));
                }
                if until.is_finite() {
                    let until = until.min(now + MAX_WAIT_MS);
                    wake = Some(wake.map_or(until, |w: f64| w.min(until)));
                }
            }
        }
        assert_eq!(p.wake_at, wake, "wake-up (force {force})");
        if let Some(w) = p.wake_at {
            assert!(w.is_finite() && w > now && w <= now + MAX_WAIT_MS, "wake_at {w} at {now}");
        }
    }
    assert!(subset(&normal.send, &forced.send), "a forced drain sends less");
    assert_eq!(normal.expired, forced.expired, "forcing changes expiry");

    // Holding customers only holds back; so does being busy (and it protects from expiry).
    let unheld = plan(records, now, clock, policy, false, busy, &[]);
    assert!(subset(&normal.send, &unheld.send));
    assert_eq!(normal.expired, unheld.expired);
    let idle = plan(records, now, clock, policy, false, never, held);
    assert!(subset(&normal.send, &idle.send));
    assert!(subset(&normal.expired, &idle.expired));
    assert!(idle
        .expired
        .iter()
        .all(|&i| normal.expired.contains(&i) || busy(&records[i].key)));

    // Nothing becomes due before `wake_at`. Expired records are set aside at once (they are
    // never planned again), and ageing is not a reason to wake: plan the rest with no age limit.
    let rest: Vec<Record> = records
        .iter()
        .enumerate()
        .filter(|(i, _)| !normal.expired.contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    let ageless = Policy {
        max_event_age_ms: f64::INFINITY,
        ..policy.clone()
    };
    let here = plan(&rest, now, clock, &ageless, false, busy, held);
    let as_rest = |p: &Plan| -> Vec<String> {
        p.send.iter().map(|&i| records[i].key.clone()).collect()
    };
    let keys = |p: &Plan| -> Vec<String> { p.send.iter().map(|&i| rest[i].key.clone()).collect() };
    assert_eq!(keys(&here), as_rest(&normal), "the same plan without the expired");
    assert!(here.expired.is_empty(), "only unknown ages expire without a limit");
    let until = normal.wake_at.unwrap_or(now + 2.0 * MAX_WAIT_MS);
    let frac = get_num(kv, "t").unwrap_or(0.5).clamp(0.0, 1.0);
    let t = now + (until - now) * frac;
    if t > now && t < until {
        let later = plan(&rest, t, clock, &ageless, false, busy, held);
        assert!(
            subset(&later.send, &here.send),
            "at {t}, before the wake-up at {until}, {:?} became due (now {now}: {:?})",
            keys(&later),
            keys(&here)
        );
    }
}

/// The timestamp a replayed body carries, if it parses as the stored event plus one.
fn replay_ts(r: &Record, sent: &str) -> Option<u64> {
    let stored: serde_json::Value = serde_json::from_str(&r.body).ok()?;
    let o = stored.as_object()?;
    if o.is_empty() || o.contains_key("timestamp") || !r.body.ends_with('}') {
        return None;
    }
    let mut v: serde_json::Value = serde_json::from_str(sent)
        .unwrap_or_else(|e| panic!("replayed body not JSON ({e}): {sent}"));
    let ts = v
        .as_object_mut()
        .and_then(|m| m.remove("timestamp"))
        .unwrap_or_else(|| panic!("no timestamp in {sent}"));
    assert_eq!(v, stored, "a replay carries the stored event");
    Some(ts.as_u64().unwrap_or_else(|| panic!("timestamp {ts} in {sent}")))
}

fn check_bodies(records: &[Record], now: f64, clock: &Clock, truth: Option<f64>) {
    let server_now = clock.offset().map(|o| (now + o).floor());
    for r in records {
        // Real-time sends of an event without its own timestamp leave it to the server.
        if r.ts.is_none() {
            assert_eq!(body_for(r, clock, now, false), r.body);
        }
        let sent = body_for(r, clock, now, true);
        if !r.body.ends_with('}') {
            assert_eq!(sent, r.body, "no object to add a timestamp to");
            continue;
        }
        if r.ts.is_some() {
            assert_eq!(body_for(r, clock, now, false), sent, "the caller's timestamp is sent");
        }
        let Some(t) = replay_ts(r, &sent) else {
            continue;
        };
        // At least 1 ms once generated or moved behind the server's clock (a stored one of no
        // known clock is sent as it is: the codec only checks that it is finite).
        if server_now.is_some() || (r.ts.is_none() && r.server_created.is_none()) {
            assert!(t >= 1, "timestamp {t}");
        }
        // Never ahead of the server's clock as far as the tracker knows it…
        if let Some(s) = server_now {
            assert!(t as f64 <= s.max(1.0), "timestamp {t} leads the server's {s}: {r:?}");
        }
        // … nor of its true clock.
        if let Some(k) = truth {
            assert!(t as f64 <= (now + k).max(1.0), "timestamp {t} past the true {}", now + k);
        }
        let plausible = |x: f64| x.fract() == 0.0 && (1.0..=9_007_199_254_740_991.0).contains(&x);
        match (r.ts, r.server_created, server_now) {
            // The caller's own: kept, unless it leads the server.
            (Some(x), _, None) if plausible(x) => assert_eq!(t as f64, x),
            (Some(x), _, Some(s)) if plausible(x) => {
                assert!(t as f64 <= x);
                if x <= s {
                    assert_eq!(t as f64, x, "a caller's timestamp changed");
                }
            }
            // When track() was called, on the server's clock when it is known there.
            (None, Some(c), _) if plausible(c.floor()) => assert!(t as f64 <= c.floor()),
            (None, None, None) => {
                let when = r.created_at.min(now).floor();
                assert!(t as f64 <= now.max(1.0), "timestamp {t} after now {now}");
                if when > 1.0 && when <= 9e15 {
                    assert_eq!(t as f64, when, "when track() was called");
                }
            }
            (None, None, Some(s)) => {
                let o = clock.offset().unwrap_or(0.0);
                let when = (r.created_at.min(now) + o).floor();
                if when > 1.0 && when <= s && when <= 9e15 {
                    assert_eq!(t as f64, when, "when track() was called, on the server");
                }
            }
            _ => {}
        }
    }
    let batch = batch_body(records.iter(), clock, now);
    assert!(batch.starts_with('[') && batch.ends_with(']'));
    if records.iter().all(|r| replay_ts(r, &body_for(r, clock, now, true)).is_some()) {
        let v: serde_json::Value =
            serde_json::from_str(&batch).unwrap_or_else(|e| panic!("batch not JSON ({e}): {batch}"));
        let items = v.as_array().expect("an array");
        assert_eq!(items.len(), records.len());
        for (item, r) in items.iter().zip(records) {
            let one: serde_json::Value =
                serde_json::from_str(&body_for(r, clock, now, true)).expect("JSON");
            assert_eq!(*item, one, "a batch item is the record's body");
        }
    }
}

fn check_age_and_anchor(r: &Record, now: f64, clock: &Clock, truth: Option<f64>, p: &Policy) {
    if let Some(a) = clock.age(r, now) {
        assert!(a >= 0.0, "age {a}");
    }
    // Without the server's clock, the local rule: an age of a record created "in the future"
    // (beyond the slack) is unknown, and such a record is never sent.
    if r.server_created.is_none() || clock.offset().is_none() {
        if r.created_at > now + CLOCK_SLACK_MS || r.created_at.is_nan() {
            assert_eq!(clock.age(r, now), None);
        } else {
            assert_eq!(clock.age(r, now), Some((now - r.created_at).max(0.0)));
        }
    }
    if let Some(c) = confirmed_at(r, now, clock, p) {
        let sent = r.sent_at.expect("a window needs an attempt");
        // Never before the window is over on the local clock.
        let local = sent.local.min(now) + p.confirm_after_ms;
        assert!(!local.is_finite() || c >= local, "{c} for {sent:?}");
    } else {
        assert!(r.sent_at.is_none());
    }

    let mut a = r.clone();
    anchor(&mut a, clock, now);
    // (Compared as printed: NaN is itself there.)
    let mut same = a.clone();
    same.server_created = r.server_created;
    assert_eq!(format!("{same:?}"), format!("{r:?}"), "anchor changes only server_created");
    let mut again = a.clone();
    anchor(&mut again, clock, now);
    assert_eq!(format!("{again:?}"), format!("{a:?}"), "anchor is idempotent");
    match (r.server_created, clock.offset()) {
        (Some(_), _) => assert_eq!(format!("{a:?}"), format!("{r:?}")),
        (None, None) => assert_eq!(a.server_created, None),
        (None, Some(o)) => {
            let recent = (0.0..=CLOCK_SLACK_MS).contains(&(now - r.created_at));
            assert_eq!(a.server_created, recent.then_some(r.created_at + o));
        }
    }
    // Honest clock: the creation on the server's clock is never later than the truth, and the
    // age then never under-estimated (the device clock stood still here).
    if let (Some(k), Some(c)) = (truth, a.server_created.filter(|_| r.server_created.is_none())) {
        assert!(c <= r.created_at + k, "created {c} on the server, truly {}", r.created_at + k);
        if let Some(age) = clock.age(&a, now) {
            let true_age = now - r.created_at;
            assert!(age >= true_age - 0.01, "age {age}, truly {true_age}");
        }
    }
}

fn check_revive(r: &Record, now: f64, clock: &Clock, p: &Policy, code: Option<&str>) {
    let codes = ["expired", "feature_not_found", "queue_full", "corrupt_record"];
    let pick = |i: usize| code.unwrap_or(codes[i % codes.len()]);
    for i in 0..codes.len() {
        let code = pick(i);
        let d = DeadLetter {
            record: r.clone(),
            code: code.to_string(),
            message: String::new(),
            status: None,
            failed_at: now,
        };
        let Some(x) = revive(&d, now, p) else {
            assert!(r.body.is_empty() || r.key.is_empty(), "a whole record not revived");
            continue;
        };
        assert!(!r.body.is_empty() && !r.key.is_empty());
        assert_eq!(
            (&x.key, x.seq.to_bits(), &x.customer, &x.body, x.ts.map(f64::to_bits)),
            (&r.key, r.seq.to_bits(), &r.customer, &r.body, r.ts.map(f64::to_bits))
        );
        assert_eq!(
            format!("{:?}", x.sent_at),
            format!("{:?}", r.sent_at),
            "an unanswered attempt's window survives"
        );
        // attempts 1, not 0: a revived letter that keeps its send stamp is not read as leased.
        assert_eq!((x.attempts, x.next_at, &x.last_error), (1, now, &None));
        assert!(!is_leased(&x, now));
        if code == "expired" {
            assert!(x.created_at >= r.created_at || r.created_at.is_nan());
            assert_eq!(x.server_created, None);
            let fresh = p.max_event_age_ms.is_finite() && p.max_event_age_ms > 0.0;
            if fresh && r.created_at <= now + CLOCK_SLACK_MS {
                let pl = plan(std::slice::from_ref(&x), now, clock, p, false, &|_| false, &[]);
                assert!(pl.expired.is_empty(), "a revived expired letter expired again: {x:?}");
            }
        } else {
            assert_eq!(x.created_at.to_bits(), r.created_at.to_bits());
            assert_eq!(format!("{:?}", x.server_created), format!("{:?}", r.server_created));
            let age = |r: &Record| format!("{:?}", clock.age(r, now));
            assert_eq!(age(&x), age(r), "{code}: the age is kept");
        }
    }
}

/// An unanswered attempt sent at `now + send`, stamped with the honest `clock`; then the device
/// clock jumps forward by `jump` (the server's offset shrinks by as much), a second honest
/// observation, and a resend `after` ms (local) later that gets a 409. The 409 may be taken as
/// proof only if the first attempt's window is over on the server's true clock.
fn check_window(kv: &[(&str, &str)], now: f64, clock: &Clock, k: f64, rtt_a: f64, p: &Policy) {
    let w = p.confirm_after_ms;
    if !(1.0..=1e12).contains(&w) {
        return;
    }
    let s0 = now + whole(get_num(kv, "send"), 0.0, 1e9);
    let stamp = clock.stamp(s0);
    assert_eq!(stamp.local, s0);
    let o = clock.offset().expect("an honest clock that took its observation");
    assert!(stamp.server.is_some_and(|s| s >= s0 + o), "{stamp:?} below the server's clock");
    let jump = whole(get_num(kv, "jump"), 0.0, 1e10);
    let k1 = k - jump;
    let resend = s0 + whole(get_num(kv, "after"), w + 1.0, 1e10);
    let rtt2 = whole(get_num(kv, "rtt2"), 100.0, 1e6).abs();
    let sent2 = resend - whole(get_num(kv, "ago2"), 0.0, 1e9).abs() - rtt2;
    let frac2 = get_num(kv, "frac2").unwrap_or(0.5);
    let mut later = Clock::default();
    honest(&mut later, k1, sent2, rtt2, frac2);

    // The local window always holds, whatever the clocks know.
    for c in [clock, &later, &Clock::default()] {
        if resend >= s0 && c.proves(Some(&stamp), resend, w) {
            assert!(resend >= s0 + w, "proved at {resend}, window over at {}", s0 + w);
        }
        assert!(!c.proves(Some(&stamp), s0 + w - 1.0, w), "proved a millisecond early");
        assert!(c.ended_by(&stamp, resend, w) >= s0.min(resend) + w);
    }
    assert!(later.proves(None, resend, w), "no earlier attempt: a 409 is proof");

    // Both clocks known: the window ends on the server's true clock. The stamp's estimate of
    // the server's time is the offset's lower bound plus STAMP_SLOP_MS (2 s), which covers the
    // `Date`'s second and a round trip of up to 1 s; see the report for slower ones.
    if later.offset().is_some() && rtt_a <= 1_000.0 && later.proves(Some(&stamp), resend, w) {
        let true_end = s0 + k + w;
        assert!(
            resend + k1 >= true_end,
            "a 409 taken as proof at server time {} while the attempt may run until {true_end} \
             (jump {jump}, stamp {stamp:?}, clock {later:?})",
            resend + k1
        );
    }
}
