//! A pass's plan: what the store holds, merged with the spill store's few, sorted out —
//! too old or unreadable set aside, due or not — and cut into chunks.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn planned(e: &mut Engine) {
    let now = e.now;
    let mut loaded = core::mem::take(&mut e.drain.loaded);
    // A key in both stores (the main store refused a write whose key it already held): the
    // main store's record is the event; the spill's copy goes — but an attempt of it that got no
    // answer may still be running at Autumn, and that holds for the key, whichever copy it was.
    let mut twins = Vec::new();
    for item in core::mem::take(&mut e.drain.loaded_spill) {
        let main = match &item {
            Ok(r) => loaded
                .iter_mut()
                .find_map(|m| m.as_mut().ok().filter(|x| x.key == r.key)),
            Err(_) => None,
        };
        match (item, main) {
            (Ok(r), Some(m)) => {
                if let Some(s) = r.sent_at {
                    if m.sent_at.map_or(true, |t| t.local < s.local) {
                        m.sent_at = Some(s);
                    }
                }
                twins.push(r.key)
            }
            (other, _) => e.drain.loaded_spill_merged.push(other),
        }
    }
    if !twins.is_empty() {
        for k in &twins {
            e.spilled.remove(k);
        }
        e.store_op(
            Target::Spill,
            StoreCmd::Delete { keys: twins },
            Waiter::Cleanup,
        );
    }
    // The spill store's records (few) go in queue order among the main store's (already in
    // order, as stores return them): an insertion, no sort (its panic paths cost kilobytes).
    let mut spill: Vec<Result<Record, (String, String)>> = Vec::new();
    core::mem::swap(&mut spill, &mut e.drain.loaded_spill_merged);
    for item in spill {
        let at = match &item {
            Ok(r) => loaded
                .iter()
                .position(|x| matches!(x, Ok(y) if (y.seq, &y.key) > (r.seq, &r.key)) || x.is_err())
                .unwrap_or(loaded.len()),
            Err(_) => loaded.len(),
        };
        loaded.insert(at, item);
    }
    let mut records = Vec::with_capacity(loaded.len());
    let mut letters: Vec<DeadLetter> = Vec::new();
    let mut notices: Vec<Notice> = Vec::new();
    for item in loaded {
        match item {
            Ok(mut r) => {
                // This tracker's own unanswered attempts of the key, which the stored copy may
                // not show yet (read before the call wrote it, or from the other store).
                if let Some(s) = e.recent(&r.key) {
                    if r.sent_at.map_or(true, |t| t.local < s.local) {
                        r.sent_at = Some(s);
                    }
                }
                records.push(r)
            }
            Err((key, why)) => {
                notices.push(Notice {
                    code: Some(String::from("corrupt_record")),
                    message: Some(why.clone()),
                    ..Notice::keyed("dead_letter", &key)
                });
                letters.push(dead(
                    Record::unreadable(key),
                    "corrupt_record",
                    &why,
                    None,
                    now,
                ));
            }
        }
    }
    e.held_customers.retain(|(_, until)| *until > now);
    e.drain.pass.clear();
    e.drain.planned_at = now;
    let force = core::mem::take(&mut e.drain.force);
    let calls = crate::engine::track::holders(e);
    let plan = {
        let busy = |k: &str| e.busy(k, &calls);
        queue::plan(
            &records,
            now,
            &e.clock,
            &e.opts.queue_policy,
            force,
            &busy,
            &e.held_customers,
        )
    };
    // Records the plan holds back behind a `track()` call (its key is busy, or an earlier event
    // of its customer is) get a pass when the call settles. The call's own record is not one of
    // them — the call settles it — or each delivered event would start a pass that reloads the
    // queue.
    let behind = records.iter().any(|r| calls.wait_behind(r));
    drop(calls);
    if behind {
        e.drain.held_behind_calls = true;
    }
    for &i in &plan.expired {
        if let Some(r) = records.get(i) {
            if let Some(s) = r.sent_at {
                // A resend of this key by the caller must not take a 409 as proof yet.
                e.remember_unanswered(&r.key, s);
            }
            notices.push(Notice {
                reason: Some("expired"),
                ..Notice::keyed("evicted", &r.key)
            });
            letters.push(dead(
                r.clone(),
                "expired",
                "older than maxEventAgeMs (or created ahead of this device's clock, whose age nobody can know): past Autumn's idempotency window a replay could be counted twice",
                None,
                now,
            ));
        }
    }
    if let Some(at) = plan.wake_at {
        e.schedule(at);
    }
    // Chunks in queue order, first one last (a stack): batches of due records, and each record
    // still inside its confirmation window alone (a batch's 200 says nothing of an item whose
    // key an earlier attempt still claims).
    let handover = e.handover();
    let size = if handover {
        HANDOVER_BATCH
    } else if e.opts.drain == DrainMode::Single {
        1
    } else {
        e.opts.queue_policy.batch_size.max(1)
    };
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut open: Vec<Record> = Vec::new();
    let close = |open: &mut Vec<Record>, chunks: &mut Vec<Chunk>| {
        if !open.is_empty() {
            let single = open.len() == 1 && !handover;
            chunks.push(Chunk::new(core::mem::take(open), single));
        }
    };
    for &i in &plan.send {
        let Some(r) = records.get(i).cloned() else {
            continue;
        };
        e.drain.pass.insert(r.key.clone());
        if plan.early.contains(&i) && !handover {
            close(&mut open, &mut chunks);
            chunks.push(Chunk::new(alloc::vec![r], true));
        } else {
            open.push(r);
            if open.len() >= size {
                close(&mut open, &mut chunks);
            }
        }
    }
    close(&mut open, &mut chunks);
    chunks.reverse();
    e.drain.chunks = chunks;
    if !letters.is_empty() {
        e.totals.failed += letters.len() as u32;
        for n in notices {
            e.emit(n);
        }
        e.drain.phase = Phase::Burying;
        e.drain.pending = 1;
        e.bury(letters, Waiter::Drain);
        // `bury` may issue two operations (main and spill); the drain waits for the last.
        return;
    }
    next_chunk(e);
}

pub(super) fn dead(
    record: Record,
    code: &str,
    message: &str,
    status: Option<u16>,
    now: f64,
) -> DeadLetter {
    DeadLetter {
        record,
        code: String::from(code),
        message: String::from(message),
        status,
        failed_at: now,
    }
}
