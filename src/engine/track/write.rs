//! A call's record written before its first send, and what the store said to it.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Writes the record: durable before the first send, so whatever happens to this page or
/// process, the next tracker replays it with the same key. Offline, it is written once, due
/// now; online, it is leased to this call, and marked as sent (an attempt is about to go out).
pub(super) fn add(e: &mut Engine, id: Id) {
    if already_here(e, id) {
        return;
    }
    let now = e.now;
    // Time-based, so the events of several tabs (each with its own counter) still sort in the
    // order they were tracked; a small step keeps it strictly increasing within this tab.
    e.seq = (e.seq + 1.0 / 1024.0).max(now);
    let seq = e.seq;
    let max = e.opts.queue_policy.max_queue_size;
    let busy = e.busy_keys();
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    c.rec.seq = seq;
    c.rec.created_at = now;
    c.rec.server_created = e.clock.known_server_now(now);
    if c.offline || c.defer {
        c.rec.next_at = now;
        c.rec.last_error = Some(String::from(if c.defer { ACCEPTED } else { OFFLINE }));
        c.rec.sent_at = None;
    } else {
        c.rec.next_at = now + LEASE_MS;
        c.rec.sent_at = Some(e.clock.stamp(now));
    }
    c.written_mono = e.mono;
    c.stored_sent = c.rec.sent_at.map(|s| s.local);
    c.phase = Phase::Adding;
    c.stored = Some(Target::Main);
    let rec = c.rec.clone();
    e.store_op(
        Target::Main,
        StoreCmd::Add {
            recs: alloc::vec![rec],
            limit: Some(Limit { max, busy, now }),
        },
        Waiter::Call(id),
    );
}

/// A store operation of call `id` ended.
pub(in crate::engine) fn stored(e: &mut Engine, id: Id, result: Result<Stored, String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    // The call's record was gone when it was to be rewritten: another tab took the event over
    // (this one was suspended past its lease) and has delivered it or set it aside.
    let gone = matches!(&result, Ok(Stored::Updated { missing }) if missing.contains(&c.rec.key));
    match core::mem::replace(&mut c.phase, Phase::Sending) {
        Phase::Adding => added(e, id, result),
        Phase::Leasing if gone => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored = None;
            }
            let s = taken_over(e, id);
            settle_now(e, id, s);
        }
        Phase::Leasing if result.is_err() => {
            // The record could not be marked as being sent again: leave the retry to the queue.
            let reply = Reply::Network(String::from(
                "the queue could not be updated before a retry",
            ));
            keep(e, id, &reply, Verdict::Retry { unanswered: false }, None);
        }
        Phase::Leasing => {
            // The renewal took long (the machine slept mid-transaction): its lease looks over to
            // other tabs, and the earlier attempt may be past Autumn's dedupe window: the queue
            // replays it (one at a time, under the tab lock).
            let (now, mono) = (e.now, e.mono);
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored_sent = c.rec.sent_at.map(|s| s.local);
            }
            let late = e.calls.get(&id).is_some_and(|c| {
                mono - c.written_mono > STALE_WRITE_MS
                    || c.rec
                        .sent_at
                        .is_some_and(|s| now - s.local > STALE_WRITE_MS)
            });
            if late {
                let reply = Reply::Network(String::from(
                    "the queue write took too long (did the machine sleep?): the replay delivers it",
                ));
                keep(e, id, &reply, Verdict::Retry { unanswered: false }, None);
            } else {
                send(e, id);
            }
        }
        Phase::Settling(s) => {
            let s = if gone && matches!(s.result, Ok(Outcome::Queued { .. })) {
                taken_over(e, id)
            } else {
                *s
            };
            if let Some(c) = e.calls.remove(&id) {
                e.keepalive_bytes = e.keepalive_bytes.saturating_sub(c.keepalive);
            }
            if let Some(n) = s.notice {
                e.emit(n);
            }
            if s.announce {
                e.out.push_back(Command::Announce);
            }
            if let Some(at) = s.wake_at {
                e.schedule(at);
            }
            e.resolve(id, s.result);
            // A drain may have held this customer's later events behind this send.
            if e.drain.held_behind_calls {
                e.drain.held_behind_calls = false;
                e.schedule(e.now);
            }
        }
        other => {
            if let Some(c) = e.calls.get_mut(&id) {
                c.phase = other;
            }
        }
    }
}

pub(super) fn added(e: &mut Engine, id: Id, result: Result<Stored, String>) {
    let Some(c) = e.calls.get_mut(&id) else {
        return;
    };
    let key = c.rec.key.clone();
    let target = c.stored.unwrap_or(Target::Main);
    match result {
        Ok(Stored::Added {
            evicted,
            existing,
            dead_sent,
        }) => {
            // The same key was set aside earlier, after an attempt that got no answer: that
            // attempt may still be running, so a 409 is no proof for this call.
            // A record stored without a send stamp took that attempt's (the stores copy it), so
            // a drain sends it alone and waits the window for a 409 as well.
            if let Some((_, s)) = dead_sent.iter().find(|(k, _)| *k == key) {
                if let Some(c) = e.calls.get_mut(&id) {
                    c.earlier_unanswered = Some(*s);
                    if c.rec.sent_at.is_none() {
                        c.rec.sent_at = Some(*s);
                        c.stored_sent = Some(s.local);
                    }
                }
            }
            for k in &evicted {
                e.emit(Notice {
                    reason: Some("queue_full"),
                    ..Notice::keyed("evicted", k)
                });
            }
            if existing.contains(&key) {
                // The caller resent a key that is queued already: the stored copy (its age, its
                // attempts) stands, and is delivered by the drain.
                let storage = e.storage_of(&key);
                if let Some(c) = e.calls.remove(&id) {
                    drop(c);
                }
                e.resolve(
                    id,
                    Ok(Outcome::Queued {
                        key,
                        reason: "already_queued",
                        message: String::from(
                            "an event with this idempotency key is queued already; that copy is delivered",
                        ),
                        storage,
                    }),
                );
                e.schedule(e.now);
                return;
            }
            if target == Target::Spill {
                e.spilled.insert(key.clone());
            }
            let held = e
                .calls
                .get(&id)
                .and_then(|c| (c.offline || c.defer).then_some(c.defer));
            if let Some(defer) = held {
                let (reason, message) = if defer {
                    ("accepted", ACCEPTED)
                } else {
                    ("offline", OFFLINE)
                };
                let storage = e.storage_of(&key);
                settle(
                    e,
                    id,
                    None,
                    Settled {
                        result: Ok(Outcome::Queued {
                            key: key.clone(),
                            reason,
                            message: String::from(message),
                            storage,
                        }),
                        notice: Some(Notice {
                            reason: Some(reason),
                            message: Some(String::from(message)),
                            storage: Some(storage),
                            ..Notice::keyed("queued", &key)
                        }),
                        announce: true,
                        wake_at: Some(e.now),
                    },
                );
                return;
            }
            let budget = if e.handover() {
                HANDOVER_BUDGET_MS
            } else {
                INLINE_BUDGET_MS
            };
            let now = e.now;
            let mono = e.mono;
            if let Some(c) = e.calls.get_mut(&id) {
                c.deadline = Some(c.start + budget);
                let late = mono - c.written_mono > STALE_WRITE_MS
                    || c.rec
                        .sent_at
                        .is_some_and(|s| now - s.local > STALE_WRITE_MS);
                if late {
                    // The write took long (the machine slept mid-transaction): its lease looks
                    // over to other tabs, which may already be sending it. Leave it to the drain
                    // (one at a time, under the tab lock).
                    let storage = e.storage_of(&key);
                    let msg = String::from(
                        "the queue write took too long (did the machine sleep?): the replay delivers it",
                    );
                    return settle_now(
                        e,
                        id,
                        Settled {
                            result: Ok(Outcome::Queued {
                                key: key.clone(),
                                reason: "deferred",
                                message: msg.clone(),
                                storage,
                            }),
                            notice: Some(Notice {
                                reason: Some("deferred"),
                                message: Some(msg),
                                storage: Some(storage),
                                ..Notice::keyed("queued", &key)
                            }),
                            announce: true,
                            wake_at: Some(now),
                        },
                    );
                }
            }
            send(e, id);
        }
        Ok(_) => send(e, id),
        Err(why) if target == Target::Main => {
            // The main store refused the write (a full quota, say): this event waits in memory,
            // and says so; the main store keeps serving everything it holds.
            let mut m = String::from("a write to the queue failed: ");
            m.push_str(clip(&why, 200));
            e.report_fallback(&m);
            e.spill_used = true;
            let Some(c) = e.calls.get_mut(&id) else {
                return;
            };
            c.stored = Some(Target::Spill);
            c.phase = Phase::Adding;
            let rec = c.rec.clone();
            e.store_op(
                Target::Spill,
                StoreCmd::Add {
                    recs: alloc::vec![rec],
                    limit: None,
                },
                Waiter::Call(id),
            );
        }
        Err(_) => {
            // Not even memory took it: deliver without a stored copy (a failure rejects with
            // the key).
            if let Some(c) = e.calls.get_mut(&id) {
                c.stored = None;
                c.offline = false;
            }
            send(e, id);
        }
    }
}
