//! A chunk on its way: batch spacing, the write-ahead that marks its records as sent, the
//! request.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) fn next_chunk(e: &mut Engine) {
    let now = e.now;
    if e.closed {
        end_pass(e, true);
        return;
    }
    let Some(chunk) = e.drain.current.take().or_else(|| e.drain.chunks.pop()) else {
        end_pass(e, false);
        return;
    };
    e.drain.sent_any = true;
    if e.handover() && !chunk.handover_failed {
        let items: Vec<HandOverItem> = chunk
            .recs
            .iter()
            .map(|r| HandOverItem {
                key: r.key.clone(),
                body: queue::body_for(r, &e.clock, now, true),
                created_at: r.created_at,
                reason: "retried",
                sent_at: r.sent_at.map(|s| s.server.unwrap_or(s.local)),
                delay_ms: 0,
            })
            .collect();
        e.drain.current = Some(chunk);
        e.drain.phase = Phase::HandingOver;
        let id = e.id();
        e.waiting.insert(id, Waiter::Drain);
        e.out.push_back(Command::HandOver { id, items });
        return;
    }
    if e.hold_until > now {
        let at = e.hold_until;
        e.schedule(at);
        end_pass(e, true);
        return;
    }
    e.drain.current = Some(chunk);
    write_ahead(e);
}

/// A wait for batch spacing that ended this much late (a throttled timer in a hidden page) has
/// its records stamped again before they leave: their stamp must not precede the send by more
/// than a write takes.
const LATE_MS: f64 = 1_000.0;

pub(in crate::engine) fn timer(e: &mut Engine) {
    if let Phase::Waiting(t) = e.drain.phase {
        if t <= e.now {
            if e.durable() && e.now - t > LATE_MS {
                write_ahead(e);
            } else {
                send(e);
            }
        }
    }
}

/// Sends the current chunk at `at`, now if that has come.
pub(super) fn send_at(e: &mut Engine, at: f64) {
    if at > e.now {
        e.drain.phase = Phase::Waiting(at);
    } else {
        send(e);
    }
}

/// Marks the chunk's records as sent before the request leaves (durable stores): a tracker that
/// dies now leaves them unconfirmed for others until this request must have ended. A batch
/// leaves once the batch spacing is over: its records are stamped with that time and written
/// meanwhile, so the wait and the write overlap (the send never precedes its stamp).
pub(super) fn write_ahead(e: &mut Engine) {
    if e.now - e.drain.planned_at > REPLAN_MS {
        e.drain.current = None;
        e.drain.chunks.clear();
        e.drain.pass.clear();
        begin_pass(e);
        return;
    }
    let single = e.drain.current.as_ref().map_or(true, |c| c.single);
    let at = if single {
        e.now
    } else {
        e.now.max(e.last_batch_at + BATCH_SPACING_MS)
    };
    if !e.durable() {
        send_at(e, at);
        return;
    }
    let stamp = e.clock.stamp(at);
    let Some(c) = e.drain.current.as_mut() else {
        end_pass(e, false);
        return;
    };
    for r in &mut c.recs {
        r.sent_at = Some(stamp);
    }
    c.send_at = at;
    c.written_mono = e.mono;
    let recs = c.recs.clone();
    e.drain.phase = Phase::WriteAhead;
    e.write_back(recs, Waiter::Drain);
}

pub(super) fn send(e: &mut Engine) {
    // Closed while the write-ahead was under way: nothing more leaves (a `track()` after
    // `close()` sends on its own, and could be sending one of these keys).
    if e.closed {
        end_pass(e, true);
        return;
    }
    let now = e.now;
    let clock = e.clock;
    let exiting = e.exiting;
    let Some(c) = e.drain.current.as_mut() else {
        end_pass(e, false);
        return;
    };
    c.sent_at = clock.stamp(now);
    // On page exit, replays go out as `keepalive` requests, which outlive the page — within
    // what the budget has left beside this page's own calls (browsers refuse keepalive bodies
    // over 64 KiB in flight per page; WebKit as well). A batch too big for it is cut to what
    // fits (each record's part is at most its body, a timestamp and a comma) and the rest
    // follows; its records stay marked as sent meanwhile (others only wait longer). One event
    // too big goes without keepalive: its stored copy stays until an answer, so at worst the
    // next visit resends it for a 409.
    let room = KEEPALIVE_BUDGET.saturating_sub(e.keepalive_bytes);
    if exiting && !c.single {
        let mut size = 2;
        let fit = c
            .recs
            .iter()
            .take_while(|r| {
                size += r.body.len() + 30;
                size <= room
            })
            .count();
        if fit > 0 && fit < c.recs.len() {
            e.drain.chunks.push(c.cut(fit));
        }
    }
    let (endpoint, body) = match (c.single, c.recs.first()) {
        (true, Some(r)) => (
            Endpoint::Track,
            queue::body_for(r, &clock, now, !c.without_ts),
        ),
        _ => (
            Endpoint::Batch,
            queue::batch_body(c.recs.iter(), &clock, now),
        ),
    };
    if endpoint == Endpoint::Batch {
        e.last_batch_at = now;
    }
    let keepalive = exiting && body.len() <= room;
    if keepalive {
        e.keepalive_bytes += body.len();
        e.drain.keepalive = body.len();
    }
    e.drain.phase = Phase::Sending;
    let id = e.id();
    e.waiting.insert(id, Waiter::Drain);
    e.sent_times.insert(id, e.now);
    e.out.push_back(Command::Send {
        id,
        endpoint,
        body,
        keepalive,
    });
}
