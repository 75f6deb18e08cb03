//! What the drain does with an answer (or a hand-over): settle, split, hold, reschedule.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The answer to the drain's request.
pub(in crate::engine) fn replied(e: &mut Engine, _id: Id, reply: Reply) {
    e.keepalive_bytes = e
        .keepalive_bytes
        .saturating_sub(core::mem::take(&mut e.drain.keepalive));
    let Some(mut c) = e.drain.current.take() else {
        return;
    };
    let now = e.now;
    let verdict = classify(&reply);
    let retry_after = reply.retry_after_ms(now);
    if let Some(ms) = retry_after {
        if matches!(verdict, Verdict::Retry { .. }) {
            e.hold_until = e.hold_until.max(now + (ms as f64).min(MAX_WAIT_MS));
        }
    }
    let window = e.opts.queue_policy.confirm_after_ms;
    if !c.single {
        match verdict {
            Verdict::Delivered => return settle_delivered(e, c, false),
            Verdict::FutureTimestamp if !c.ts_retried => {
                // This answer's `Date` taught the clock: the same chunk again, timestamps
                // corrected.
                c.ts_retried = true;
                e.drain.current = Some(c);
                return write_ahead(e);
            }
            Verdict::Refused | Verdict::FutureTimestamp => return split(e, c),
            Verdict::Unproven if is_status(&reply, 413) => return split(e, c),
            Verdict::Hold(HoldWhy::CustomerMismatch) => return mismatch(e, c, &reply),
            Verdict::Retry { unanswered: true } => {
                return reschedule(e, c, &reply, true, retry_after, true)
            }
            // A batch is never answered 409 by Autumn (something in between did): back off.
            Verdict::Retry { .. } | Verdict::Duplicate | Verdict::Hold(_) | Verdict::Unproven => {
                return reschedule(e, c, &reply, false, retry_after, true)
            }
        }
    }
    let prior = c.prior.first().copied().flatten();
    match verdict {
        Verdict::Delivered => settle_delivered(e, c, false),
        Verdict::Duplicate if e.clock.proves(prior.as_ref(), c.sent_at.local, window) => {
            settle_delivered(e, c, true)
        }
        // Not proof yet (an earlier attempt may still be running, and may fail, or have
        // recorded a body this refusal did not see): due again once it must have ended.
        Verdict::Duplicate | Verdict::Refused | Verdict::FutureTimestamp
            if verdict == Verdict::Duplicate
                || !e.clock.proves(prior.as_ref(), c.sent_at.local, window) =>
        {
            let mut recs = c.recs;
            let clock = e.clock;
            for (r, p) in recs.iter_mut().zip(c.prior.iter()) {
                let until = p.map(|t| clock.ended_by(&t, now, window));
                queue::anchor(r, &clock, now);
                r.attempts = r.attempts.saturating_add(1);
                r.sent_at = *p;
                // Not before the window ends, forced or not (queue::plan).
                r.next_at = queue::resend_after_window(until, now);
                r.last_error = Some(report::queued_message(&reply, until, now));
            }
            if let Some(at) = recs.iter().map(|r| r.next_at).reduce(f64::min) {
                e.schedule(at);
            }
            settle(e, recs, |e, recs| e.write_back(recs, Waiter::Drain));
        }
        Verdict::FutureTimestamp if !c.ts_retried && !c.without_ts => {
            // The clock is ahead of Autumn's: resend once, the caller's own timestamp corrected
            // with what this answer taught, a generated one left out.
            let has_ts = c.recs.first().is_some_and(|r| r.ts.is_some());
            if has_ts {
                c.ts_retried = true;
            } else {
                c.without_ts = true;
            }
            e.drain.current = Some(c);
            write_ahead(e);
        }
        Verdict::Refused | Verdict::FutureTimestamp | Verdict::Duplicate => {
            let Reply::Answer(a) = &reply else {
                return reschedule(e, c, &reply, false, retry_after, true);
            };
            let err = report::refusal(a, c.recs.first().map_or("", |r| r.key.as_str()));
            let letters: Vec<DeadLetter> = c
                .recs
                .iter()
                .map(|r| {
                    dead(
                        r.clone(),
                        err.code.as_str(),
                        &err.message,
                        Some(a.status),
                        now,
                    )
                })
                .collect();
            e.totals.failed += letters.len() as u32;
            for d in &letters {
                e.emit(Notice {
                    code: Some(d.code.clone()),
                    message: Some(d.message.clone()),
                    status: d.status,
                    ..Notice::keyed("dead_letter", &d.record.key)
                });
                e.drain.pass.remove(&d.record.key);
            }
            settle(e, letters, |e, l| e.bury(l, Waiter::Drain));
        }
        Verdict::Hold(HoldWhy::CustomerMismatch) => mismatch(e, c, &reply),
        // A proxy's refusal of this one event: keep it, go on with the others.
        Verdict::Unproven => reschedule(e, c, &reply, false, retry_after, false),
        Verdict::Retry { unanswered } => reschedule(e, c, &reply, unanswered, retry_after, true),
        Verdict::Hold(_) => reschedule(e, c, &reply, false, retry_after, true),
    }
}

pub(super) fn is_status(reply: &Reply, status: u16) -> bool {
    matches!(reply, Reply::Answer(a) if a.status == status)
}

/// One bad event fails a whole batch: halve it until each refused event is alone.
pub(super) fn split(e: &mut Engine, c: Chunk) {
    let (a, b) = c.split();
    e.drain.chunks.push(b);
    e.drain.chunks.push(a);
    e.drain.phase = Phase::Idle;
    next_chunk(e);
}

/// The route would not bill these for the customer signed in now: a chunk of several customers
/// is split by customer; one customer's events are held (with a growing wait) while the drain
/// goes on with the others.
pub(super) fn mismatch(e: &mut Engine, c: Chunk, reply: &Reply) {
    let first = c
        .recs
        .first()
        .map(|r| r.customer.clone())
        .unwrap_or_default();
    if c.recs.iter().any(|r| r.customer != first) {
        let mut groups: Vec<Chunk> = Vec::new();
        for (r, p) in c.recs.into_iter().zip(c.prior) {
            match groups
                .iter_mut()
                .find(|g| g.recs.first().is_some_and(|x| x.customer == r.customer))
            {
                Some(g) => {
                    g.recs.push(r);
                    g.prior.push(p);
                }
                None => {
                    let mut g = Chunk::new(alloc::vec![r], false);
                    g.prior = alloc::vec![p];
                    groups.push(g);
                }
            }
        }
        for g in groups.iter_mut() {
            g.single = g.recs.len() == 1;
        }
        groups.reverse();
        e.drain.chunks.extend(groups);
        e.drain.phase = Phase::Idle;
        return next_chunk(e);
    }
    let now = e.now;
    let attempts = c.recs.iter().map(|r| r.attempts).max().unwrap_or(0);
    let r = e.rand01();
    let wait = crate::retry::backoff(attempts, 1_000, HOLD_CAP_MS as u64, r).max(500) as f64;
    e.held_customers.retain(|(cu, _)| *cu != first);
    e.held_customers.push((first.clone(), now + wait));
    // The rest of this pass skips that customer.
    for ch in e.drain.chunks.iter_mut() {
        ch.recs.retain(|r| r.customer != first);
    }
    e.drain.chunks.retain(|ch| !ch.recs.is_empty());
    reschedule(e, c, reply, false, None, false);
}

/// Delivered (2xx) or proven already recorded (409): delete, count, tell.
pub(super) fn settle_delivered(e: &mut Engine, c: Chunk, duplicate: bool) {
    let keys: Vec<String> = c.recs.iter().map(|r| r.key.clone()).collect();
    let n = keys.len() as u32;
    if duplicate {
        e.totals.duplicates += n;
    } else {
        e.totals.delivered += n;
    }
    for k in &keys {
        e.emit(Notice {
            duplicate: Some(duplicate),
            ..Notice::keyed("delivered", k)
        });
    }
    settle(e, keys, |e, keys| e.forget(keys, Waiter::Drain));
}

/// Records a failed attempt on each of the chunk's records and plans their next try. `stop`:
/// the server is struggling (or refuses us): end this pass.
pub(super) fn reschedule(
    e: &mut Engine,
    c: Chunk,
    reply: &Reply,
    unanswered: bool,
    retry_after: Option<u64>,
    stop: bool,
) {
    let now = e.now;
    let detail = report::describe(reply);
    let policy = e.opts.queue_policy.clone();
    let clock = e.clock;
    let mut recs = c.recs;
    let mut earliest = f64::INFINITY;
    // A batch without an answer was most likely accepted (Autumn answers a batch once it has
    // queued it): its events, resent one by one, would each draw a 409 that proves nothing. They
    // wait out the window instead, and go in a batch again.
    let wait_window = unanswered && recs.len() > 1;
    if unanswered {
        let keys: Vec<&str> = recs.iter().map(|r| r.key.as_str()).collect();
        e.remember_all(&keys, c.sent_at);
    }
    for (r, p) in recs.iter_mut().zip(c.prior.iter()) {
        queue::anchor(r, &clock, now);
        r.attempts = r.attempts.saturating_add(1);
        let draw = e.rand01();
        r.next_at = queue::retry_at(r.attempts, now, draw, retry_after, &policy);
        // An attempt without an answer may still be running: no 409 is proof, and no batch
        // carries the record, until it must have ended (meanwhile it goes alone, at `next_at`:
        // queue::plan). An answered attempt changes nothing about an earlier one.
        r.sent_at = if unanswered { Some(c.sent_at) } else { *p };
        let until = queue::confirmed_at(r, now, &clock, &policy);
        if wait_window {
            r.next_at = r.next_at.max(queue::resend_after_window(until, now));
        }
        r.last_error = Some(report::queued_message(reply, until, now));
        earliest = earliest.min(r.next_at);
    }
    if let Some(r) = recs.first() {
        e.emit(Notice {
            message: Some(detail),
            count: Some(recs.len() as u32),
            ..Notice::keyed("retrying", &r.key)
        });
    }
    if earliest.is_finite() {
        e.schedule(earliest);
    }
    if stop {
        // What this pass did not get to keeps its state; the next drain sees it.
        e.drain.chunks.clear();
    }
    settle(e, recs, |e, recs| e.write_back(recs, Waiter::Drain));
}

/// Writes a chunk's outcome with `op` (which issues the store operation(s), the drain waiting
/// for the last), then moves on.
pub(super) fn settle<T, R: Into<Option<Id>>>(
    e: &mut Engine,
    items: Vec<T>,
    op: impl FnOnce(&mut Engine, Vec<T>) -> R,
) {
    e.drain.phase = Phase::Settling;
    e.drain.pending = 1;
    if op(e, items).into().is_none() {
        // Nothing to write (the store is gone): move on.
        e.drain.pending = 0;
        e.drain.phase = Phase::Idle;
        next_chunk(e);
    }
}

/// The hand-over of the current chunk to the Cloudflare Queue ended.
pub(in crate::engine) fn handed_over(e: &mut Engine, result: Result<(), String>) {
    let Some(mut c) = e.drain.current.take() else {
        return;
    };
    match result {
        Ok(()) => {
            let keys: Vec<String> = c.recs.iter().map(|r| r.key.clone()).collect();
            e.totals.handed_over += keys.len() as u32;
            for k in &keys {
                e.emit(Notice {
                    reason: Some("retried"),
                    message: Some(String::from("handed over to the Cloudflare Queue")),
                    storage: Some(Storage::Cloudflare),
                    ..Notice::keyed("queued", k)
                });
            }
            settle(e, keys, |e, keys| e.forget(keys, Waiter::Drain));
        }
        Err(_) => {
            // The queue refuses too: deliver them ourselves if Autumn answers.
            c.handover_failed = true;
            let size = if e.opts.drain == DrainMode::Single {
                1
            } else {
                e.opts.queue_policy.batch_size.max(1)
            };
            let mut parts = Vec::new();
            let mut rest = c;
            while rest.recs.len() > size {
                let mut head = rest.clone();
                let tail_recs = head.recs.split_off(size);
                let tail_prior = head.prior.split_off(size);
                rest.recs = tail_recs;
                rest.prior = tail_prior;
                head.single = head.recs.len() == 1;
                parts.push(head);
            }
            rest.single = rest.recs.len() == 1;
            parts.push(rest);
            parts.reverse();
            e.drain.current = parts.pop();
            e.drain.chunks.extend(parts);
            e.drain.phase = Phase::Idle;
            next_chunk(e);
        }
    }
}
