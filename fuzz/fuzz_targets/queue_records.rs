//! The queue's pure policy over arbitrary stored records. Stored records are decoded from
//! IndexedDB/memory objects by `src/js/store/codec.rs`, which works on `JsValue`s and exists
//! only in wasm; this fuzzes everything that runs on decoded records natively: `plan` /
//! `plan_with` (what a drain sends, expires, holds, and when it wakes), `body_for` /
//! `batch_body` (the replayed bodies, from any stored `body` text and timestamps), `Clock`,
//! `overflow`, and `Record::unreadable` (the stand-in for a value that could not be read).
//! Invariants: nothing panics; every record is sent, expired or held, once; per-customer order
//! holds; a forced drain sends at least what a normal one does; `wake_at` is the earliest
//! future `next_at` held back; a replayed body is JSON with the right timestamp whenever the
//! stored body is an event body; a timestamp never leads the server's clock.
#![no_main]

use autumn_track::queue::{batch_body, body_for, overflow, plan, plan_with, Clock, Policy, Record};
use autumn_track_fuzz::{get_num, num, pairs};
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

/// One record line: `key|customer|seq|created|next|attempts|ts|body|last_error`, fields
/// optional from the right (`*` or no body: an event body built from key and customer; `-` or
/// no ts: none); `?key` alone: `Record::unreadable(key)`.
fn record(line: &str, i: usize, now: f64) -> Record {
    if let Some(key) = line.strip_prefix('?') {
        return Record::unreadable(key.to_string());
    }
    let f: Vec<&str> = line.splitn(9, '|').collect();
    let at = |i: usize| f.get(i).copied();
    let key = at(0).unwrap_or("").to_string();
    let customer = at(1).unwrap_or("c").to_string();
    let body = match at(7) {
        None | Some("*") => {
            let mut b = String::from("{\"customer_id\":");
            b.push_str(&serde_json::to_string(&customer).unwrap_or_default());
            b.push_str(",\"feature_id\":\"f\",\"value\":1,\"idempotency_key\":");
            b.push_str(&serde_json::to_string(&key).unwrap_or_default());
            b.push('}');
            b
        }
        Some(b) => b.to_string(),
    };
    Record {
        seq: at(2).and_then(num).unwrap_or(i as f64),
        created_at: time(at(3), now, now),
        next_at: time(at(4), now, now),
        attempts: at(5).and_then(num).map_or(0, |n| n as u32),
        ts: match at(6).map(str::trim) {
            None | Some("") | Some("-") => None,
            Some(t) => num(t),
        },
        last_error: at(8).map(str::to_string),
        key,
        customer,
        body,
    }
}

fuzz_target!(|data: &[u8]| {
    // Input, as text: a first line of `key=value` pairs (now, max_age, max_size, base, cap,
    // server_date and server_local for the clock, current and incoming for `overflow`), then
    // one record per line (see `record`), at most 64.
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let kv = pairs(lines.next().unwrap_or(""));
    let n = |k: &str, default: f64| get_num(&kv, k).unwrap_or(default);
    let now = n("now", NOW);
    let policy = Policy {
        max_queue_size: (n("max_size", 10_000.0) as usize).clamp(1, 1_000_000),
        max_event_age_ms: n("max_age", 23.0 * 3_600_000.0),
        batch_size: 1000,
        base_ms: n("base", 1_000.0) as u64,
        cap_ms: n("cap", 300_000.0) as u64,
    };
    let records: Vec<Record> = lines
        .take(64)
        .enumerate()
        .map(|(i, l)| record(l, i, now))
        .collect();

    // ---- plan ----
    let normal = plan(&records, now, &policy);
    assert_eq!(normal, plan_with(&records, now, &policy, false));
    let forced = plan_with(&records, now, &policy, true);
    let marks = |list: &[usize]| {
        assert!(list.windows(2).all(|w| w[0] < w[1]), "ascending: {list:?}");
        let mut m = vec![false; records.len()];
        for &i in list {
            m[i] = true; // panics (a finding) if out of range
        }
        m
    };
    let mut sent_normally = Vec::new();
    for (p, force) in [(&normal, false), (&forced, true)] {
        let sent = marks(&p.send);
        let expired = marks(&p.expired);
        let mut held_customers: Vec<&str> = Vec::new();
        let mut wake: Option<f64> = None;
        for (i, r) in records.iter().enumerate() {
            assert!(!(sent[i] && expired[i]), "record {i} sent and expired");
            assert_eq!(
                expired[i],
                now - r.created_at > policy.max_event_age_ms,
                "record {i} expiry"
            );
            if expired[i] {
                continue;
            }
            let backing_off = r.next_at > now && (!force || r.attempts == 0);
            let behind = held_customers.contains(&r.customer.as_str());
            // Sent exactly when it is due itself and no earlier event of its customer waits.
            assert_eq!(
                sent[i],
                !backing_off && !behind,
                "record {i} (force {force}): {r:?}"
            );
            if !sent[i] {
                held_customers.push(&r.customer);
                if r.next_at > now && r.next_at.is_finite() {
                    wake = Some(wake.map_or(r.next_at, |w: f64| w.min(r.next_at)));
                }
            }
            // Not attempted yet and leased into the future: a track() call owns it.
            if r.attempts == 0 && r.next_at > now {
                assert!(!sent[i], "leased record {i} sent");
            }
        }
        // The earliest finite future next_at among the held records is when to wake.
        assert_eq!(p.wake_at, wake);
        if let Some(w) = p.wake_at {
            assert!(w.is_finite() && w > now, "wake_at {w} at now {now}");
        }
        if force {
            for (i, s) in sent_normally.iter().enumerate() {
                assert!(
                    !s || sent[i],
                    "a forced drain sends what a normal one does ({i})"
                );
            }
        } else {
            sent_normally = sent;
        }
    }
    assert_eq!(normal.expired, forced.expired);

    // ---- bodies and the clock ----
    let mut clock = Clock::default();
    if let Some(d) = get_num(&kv, "server_date") {
        clock.observe(
            d,
            time(
                kv.iter()
                    .find(|(k, _)| *k == "server_local")
                    .map(|(_, v)| *v),
                now,
                now,
            ),
        );
    }
    for r in &records {
        for with_ts in [true, false] {
            let sent = body_for(r, &clock, now, with_ts);
            let expect_ts = match r.ts {
                Some(t) => Some(t as u64),
                None if with_ts => Some(clock.timestamp_for(r.created_at, now)),
                None => None,
            };
            let stored: Option<serde_json::Value> = serde_json::from_str(&r.body).ok();
            let is_event = stored
                .as_ref()
                .and_then(|v| v.as_object())
                .is_some_and(|o| !o.is_empty() && !o.contains_key("timestamp"))
                && r.body.ends_with('}');
            if is_event {
                let v: serde_json::Value = serde_json::from_str(&sent)
                    .unwrap_or_else(|e| panic!("replayed body not JSON ({e}): {sent}"));
                assert_eq!(
                    v.get("timestamp").and_then(|t| t.as_u64()),
                    expect_ts,
                    "{sent}"
                );
            } else if expect_ts.is_none() {
                assert_eq!(sent, r.body);
            }
        }
        let t = clock.timestamp_for(r.created_at, now);
        assert!(t >= 1);
        if let Some(off) = clock.offset() {
            let server_now = (now + off).floor();
            if now.is_finite()
                && r.created_at.is_finite()
                && server_now.is_finite()
                && server_now > 1.0
            {
                assert!(
                    t as f64 <= server_now,
                    "timestamp {t} leads the server's now {server_now}"
                );
            }
        }
    }
    let _ = batch_body(records.iter(), &clock, now);
    if records
        .iter()
        .all(|r| r.body.starts_with("{\"customer_id\"") && r.ts.is_none())
    {
        let b = batch_body(records.iter(), &clock, now);
        let v: serde_json::Value =
            serde_json::from_str(&b).unwrap_or_else(|e| panic!("batch not JSON ({e}): {b}"));
        assert_eq!(v.as_array().map(Vec::len), Some(records.len()));
    }

    // ---- bounds ----
    // Counts of stored records: far below usize::MAX (a queue holds at most 1,000,000).
    let current = n("current", records.len() as f64) as u32 as usize;
    let incoming = n("incoming", 1.0) as u32 as usize;
    let evict = overflow(current, incoming, &policy);
    assert_eq!(
        evict,
        (current + incoming).saturating_sub(policy.max_queue_size)
    );
    if evict > 0 {
        assert_eq!(current + incoming - evict, policy.max_queue_size);
    }
});
