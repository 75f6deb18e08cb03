//! What a call does with an answer: settle (delete, or keep for the drain) and only then tell
//! the caller; a hand-over to a Cloudflare Queue.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The answer to call `id`'s attempt `req`.
pub(in crate::engine) fn replied(e: &mut Engine, id: Id, req: Id, reply: Reply) {
    let now = e.now;
    let window = e.opts.queue_policy.confirm_after_ms;
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let verdict = classify(&reply);
    let key = c.rec.key.clone();
    let attempts = c.attempts;
    let queued = c.stored.is_some();
    match verdict {
        Verdict::Delivered => {
            let o = Outcome::Delivered {
                key: key.clone(),
                attempts,
                response: req,
            };
            finish(e, id, Ok(o), Some(delivered_notice(&key, false)));
        }
        Verdict::Duplicate
            if e.clock
                .proves(c.earlier_unanswered.as_ref(), c.sent_at.local, window) =>
        {
            let o = Outcome::Duplicate {
                key: key.clone(),
                attempts,
            };
            finish(e, id, Ok(o), Some(delivered_notice(&key, true)));
        }
        // The claim may belong to the earlier attempt that got no answer, which may still fail
        // and release it: not a recording until that attempt must have ended. Nor is a refusal
        // final then: that attempt's body (its timestamp) was not this one's, and it may have
        // been recorded.
        Verdict::Duplicate | Verdict::Refused | Verdict::FutureTimestamp
            if verdict == Verdict::Duplicate
                || !e
                    .clock
                    .proves(c.earlier_unanswered.as_ref(), c.sent_at.local, window) =>
        {
            let until = queue::resend_after_window(
                c.earlier_unanswered
                    .map(|s| e.clock.ended_by(&s, now, window)),
                now,
            );
            if queued {
                keep(e, id, &reply, Verdict::Duplicate, None);
            } else {
                let status = match &reply {
                    Reply::Answer(a) => a.status,
                    _ => 409,
                };
                let err = report::unconfirmed(&key, until - now, status);
                finish(e, id, Err(err), None);
            }
        }
        Verdict::Retry { unanswered } => {
            if unanswered {
                c.earlier_unanswered = Some(c.sent_at);
                // Also with a queue: a drain that read the record before this call marks it
                // must still know (drain::planned).
                let sent = c.sent_at;
                e.remember_unanswered(&key, sent);
            }
            let Some(c) = e.calls.get_mut(&id) else {
                return;
            };
            let retry_after = reply.retry_after_ms(now);
            // With a queue, an attempt that got no answer at all (a timeout, the network) ends
            // the call at once: the caller hears `queued` within `timeoutMs`, and the queue
            // resends (a prompt resend would mostly meet that attempt's claim, a 409 that proves
            // nothing). Answered 5xx/429 are retried while the call's budget allows.
            let no_answer = matches!(reply, Reply::Timeout | Reply::Network(_) | Reply::Unsent(_));
            let attempt = c.attempts.saturating_sub(1);
            let deadline = c.deadline;
            let r = e.rand01();
            let timeout = f64::from(e.opts.timeout_ms);
            let delay = crate::retry::in_call_delay(attempt, retry_after, &e.opts.retry, r)
                .filter(|d| deadline.map_or(true, |dl| now + *d as f64 + timeout <= dl))
                .filter(|_| !(queued && no_answer));
            match delay {
                Some(d) => {
                    if let Some(c) = e.calls.get_mut(&id) {
                        c.phase = Phase::Sleeping(now + d as f64);
                        e.sleepers.push((now + d as f64, id));
                    }
                }
                None if queued => keep(e, id, &reply, verdict, retry_after),
                None => {
                    let unanswered = e
                        .calls
                        .get(&id)
                        .is_some_and(|c| c.earlier_unanswered.is_some());
                    let err =
                        report::unavailable(&reply, attempts, e.opts.timeout_ms, &key, unanswered);
                    finish(e, id, Err(err), None);
                }
            }
        }
        Verdict::Hold(_) if queued => keep(e, id, &reply, verdict, None),
        Verdict::FutureTimestamp if c.rec.ts.is_some() && !c.ts_retried => {
            // The caller's timestamp is ahead of Autumn's clock (a device clock running fast):
            // this answer's `Date` taught the clock; resend once with it clamped — and keep that
            // value, so every later attempt carries the same body.
            c.ts_retried = true;
            if let Some(ts) = c.rec.ts {
                c.rec.ts = Some(e.clock.clamp(ts, now) as f64);
            }
            send(e, id);
        }
        Verdict::Hold(_)
        | Verdict::Refused
        | Verdict::Unproven
        | Verdict::FutureTimestamp
        | Verdict::Duplicate => {
            let err = match &reply {
                Reply::Answer(a) => {
                    if a.code.is_none() && !queued {
                        // "It may have been recorded": an answer from something in between
                        // proves nothing about a copy of this request it did not see (a
                        // browser's own resend), so a prompt resend's 409 waits the window.
                        let sent = c.sent_at;
                        e.remember_unanswered(&key, sent);
                    }
                    report::refusal(a, &key)
                }
                other => report::unavailable(other, attempts, e.opts.timeout_ms, &key, true),
            };
            finish(e, id, Err(err), None);
        }
    }
}

/// The outcome of a call whose record another tab took over: the shared queue has the event.
pub(super) fn taken_over(e: &Engine, id: Id) -> Settled {
    let key = e
        .calls
        .get(&id)
        .map(|c| c.rec.key.clone())
        .unwrap_or_default();
    let storage = e.storage_of(&key);
    let message = String::from(
        "another tab took this event over while this one was suspended: the shared queue delivers it (or sets it aside), and says so there",
    );
    Settled {
        result: Ok(Outcome::Queued {
            key: key.clone(),
            reason: "taken_over",
            message: message.clone(),
            storage,
        }),
        notice: Some(Notice {
            reason: Some("taken_over"),
            message: Some(message),
            storage: Some(storage),
            ..Notice::keyed("queued", &key)
        }),
        announce: false,
        wake_at: None,
    }
}

pub(super) fn delivered_notice(key: &str, duplicate: bool) -> Notice {
    Notice {
        duplicate: Some(duplicate),
        ..Notice::keyed("delivered", key)
    }
}

/// The call is over with `result`: the record is deleted first (if there is one), then the
/// caller is told.
pub(super) fn finish(
    e: &mut Engine,
    id: Id,
    result: Result<Outcome, TrackError>,
    notice: Option<Notice>,
) {
    let has_record = e.calls.get(&id).and_then(|c| c.stored);
    let key = e.calls.get(&id).map(|c| c.rec.key.clone());
    let s = Settled {
        result,
        notice,
        announce: false,
        wake_at: None,
    };
    if let (Some(_), Some(k)) = (has_record, key) {
        // Settling first, so the delete's answer finds the call waiting for it.
        if let Some(c) = e.calls.get_mut(&id) {
            c.phase = Phase::Settling(Box::new(s));
        }
        if e.forget(alloc::vec![k], Waiter::Call(id)).is_none() {
            stored(e, id, Ok(Stored::Done));
        }
        return;
    }
    settle_now(e, id, s);
}

pub(super) fn settle_now(e: &mut Engine, id: Id, s: Settled) {
    if let Some(c) = e.calls.get_mut(&id) {
        c.phase = Phase::Settling(Box::new(s));
    }
    stored(e, id, Ok(Stored::Done));
}

/// Writes `s`'s record change with `cmd` (when given), then settles.
pub(super) fn settle(e: &mut Engine, id: Id, cmd: Option<(Target, StoreCmd)>, s: Settled) {
    match cmd {
        Some((t, cmd)) if e.is_open() => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.phase = Phase::Settling(Box::new(s));
            }
            e.store_op(t, cmd, Waiter::Call(id));
        }
        _ => settle_now(e, id, s),
    }
}

/// The event cannot be delivered now: keep it for the drain (or hand it to the Cloudflare
/// Queue) with what happened, and tell the caller it is queued.
pub(super) fn keep(
    e: &mut Engine,
    id: Id,
    reply: &Reply,
    verdict: Verdict,
    retry_after: Option<u64>,
) {
    let now = e.now;
    let r = e.rand01();
    let policy = e.opts.queue_policy.clone();
    let handover = e.handover();
    let clock = e.clock;
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let reason = answer::queued_reason(verdict, reply);
    c.reason = reason;
    queue::anchor(&mut c.rec, &clock, now);
    c.rec.attempts = c.rec.attempts.saturating_add(1);
    c.rec.sent_at = c.earlier_unanswered;
    let until = queue::confirmed_at(&c.rec, now, &clock, &policy);
    c.rec.next_at = match verdict {
        // A 409 an earlier attempt may own: due once that attempt must have ended, and not
        // before, forced or not (queue::plan).
        Verdict::Duplicate => queue::resend_after_window(until, now),
        // Otherwise alone while inside the window, batched after (queue::plan).
        _ => queue::retry_at(c.rec.attempts, now, r, retry_after, &policy),
    };
    let message = report::queued_message(reply, until, now);
    c.rec.last_error = Some(message.clone());
    let key = c.rec.key.clone();
    let target = c.stored.unwrap_or(Target::Main);
    let wake_at = Some(c.rec.next_at);
    if handover {
        let item = HandOverItem {
            key: key.clone(),
            body: queue::body_for(&c.rec, &e.clock, now, true),
            created_at: c.rec.created_at,
            reason,
            sent_at: c.rec.sent_at.map(|s| s.server.unwrap_or(s.local)),
            delay_ms: until.map_or(0, |u| crate::float::ceil((u - now).max(0.0)) as u64),
        };
        c.phase = Phase::HandingOver;
        let hid = e.id();
        e.waiting.insert(hid, Waiter::Call(id));
        e.out.push_back(Command::HandOver {
            id: hid,
            items: alloc::vec![item],
        });
        return;
    }
    let prev = c.stored_sent;
    c.stored_sent = c.rec.sent_at.map(|s| s.local);
    let rec = c.rec.clone();
    let storage = e.storage_of(&key);
    let s = Settled {
        result: Ok(Outcome::Queued {
            key: key.clone(),
            reason,
            message: message.clone(),
            storage,
        }),
        notice: Some(Notice {
            reason: Some(reason),
            message: Some(message),
            storage: Some(storage),
            ..Notice::keyed("queued", &key)
        }),
        announce: true,
        wake_at,
    };
    settle(e, id, Some((target, StoreCmd::Renew { rec, prev })), s);
}

/// The hand-over of call `id`'s event ended.
pub(in crate::engine) fn handed_over(e: &mut Engine, id: Id, result: Result<(), String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let key = c.rec.key.clone();
    let reason = c.reason;
    match result {
        Ok(()) => {
            let msg = String::from("handed over to the Cloudflare Queue");
            let s = Settled {
                result: Ok(Outcome::Queued {
                    key: key.clone(),
                    reason,
                    message: msg.clone(),
                    storage: Storage::Cloudflare,
                }),
                notice: Some(Notice {
                    reason: Some(reason),
                    message: Some(msg),
                    storage: Some(Storage::Cloudflare),
                    ..Notice::keyed("queued", &key)
                }),
                announce: false,
                wake_at: None,
            };
            let t = c.stored.unwrap_or(Target::Main);
            settle(
                e,
                id,
                Some((
                    t,
                    StoreCmd::Delete {
                        keys: alloc::vec![key],
                    },
                )),
                s,
            );
        }
        Err(why) => {
            let mut msg = String::from("the Cloudflare Queue did not take the event (");
            msg.push_str(clip(&why, 300));
            msg.push_str("); it is kept in this isolate's memory until flush()");
            c.rec.last_error = Some(msg.clone());
            let rec = c.rec.clone();
            let t = c.stored.unwrap_or(Target::Main);
            let s = Settled {
                result: Ok(Outcome::Queued {
                    key: key.clone(),
                    reason,
                    message: msg.clone(),
                    storage: Storage::Memory,
                }),
                notice: Some(Notice {
                    reason: Some(reason),
                    message: Some(msg),
                    storage: Some(Storage::Memory),
                    ..Notice::keyed("queued", &key)
                }),
                announce: false,
                wake_at: None,
            };
            settle(
                e,
                id,
                Some((
                    t,
                    StoreCmd::Update {
                        recs: alloc::vec![rec],
                    },
                )),
                s,
            );
        }
    }
}
