//! The inspection and repair calls: `pending()`, `deadLetters()`, `discard()`,
//! `retryDeadLetters()`. Each reads both stores when the spill store is in use.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Engine, Id, Outcome, Storage, StoreCmd, StorePhase, Stored, Target, Waiter};
use crate::queue::{self, DeadLetter, Record};

pub(super) struct Job {
    kind: Kind,
    /// Operations still to answer.
    pending: u32,
    /// Which operation reads the spill store (dead letters come back per store).
    spill_op: Option<Id>,
    queued: u32,
    dead: u32,
    letters: Vec<(Target, DeadLetter)>,
}

enum Kind {
    Pending,
    DeadLetters,
    Discard(Vec<String>),
    RetryDead(Option<Vec<String>>),
    /// `retryDeadLetters()`, second step: the letters are being moved back; answers how many.
    Reviving(u32),
}

fn new_job(kind: Kind) -> Job {
    Job {
        kind,
        pending: 0,
        spill_op: None,
        queued: 0,
        dead: 0,
        letters: Vec::new(),
    }
}

pub(super) fn pending(e: &mut Engine, call: Id) {
    submit(e, call, new_job(Kind::Pending));
}

pub(super) fn dead_letters(e: &mut Engine, call: Id) {
    submit(e, call, new_job(Kind::DeadLetters));
}

pub(super) fn discard(e: &mut Engine, call: Id, keys: Vec<String>) {
    submit(e, call, new_job(Kind::Discard(keys)));
}

pub(super) fn retry_dead(e: &mut Engine, call: Id, keys: Option<Vec<String>>) {
    submit(e, call, new_job(Kind::RetryDead(keys)));
}

fn submit(e: &mut Engine, call: Id, job: Job) {
    match e.store {
        StorePhase::Opening => {
            e.admin.insert(call, job);
        }
        StorePhase::Open { .. } => {
            e.admin.insert(call, job);
            run(e, call);
        }
        StorePhase::Off | StorePhase::Closed => {
            let out = match job.kind {
                Kind::Pending => Outcome::Pending {
                    queued: 0,
                    in_flight: super::track::in_flight(e).len() as u32,
                    dead: 0,
                    storage: Storage::Off,
                    spilled: 0,
                },
                Kind::DeadLetters => Outcome::DeadLetters(Vec::new()),
                _ => Outcome::Count(0),
            };
            e.resolve(call, Ok(out));
        }
    }
}

/// The store opened: run the calls that waited for it.
pub(super) fn store_ready(e: &mut Engine) {
    let calls: Vec<Id> = e.admin.keys().copied().collect();
    for c in calls {
        if e.admin.get(&c).is_some_and(|j| j.pending == 0) {
            run(e, c);
        }
    }
}

fn run(e: &mut Engine, call: Id) {
    let both = e.spill_used;
    let Some(job) = e.admin.get(&call) else {
        return;
    };
    let cmd = match &job.kind {
        Kind::Pending => StoreCmd::Count,
        Kind::DeadLetters | Kind::RetryDead(_) => StoreCmd::LoadDead,
        Kind::Discard(keys) => StoreCmd::DeleteDead { keys: keys.clone() },
        Kind::Reviving(_) => return,
    };
    let mut pending = 1;
    e.store_op(Target::Main, cmd.clone(), Waiter::Admin(call));
    let mut spill_op = None;
    if both {
        pending += 1;
        spill_op = Some(e.store_op(Target::Spill, cmd, Waiter::Admin(call)));
    }
    if let Some(job) = e.admin.get_mut(&call) {
        job.pending = pending;
        job.spill_op = spill_op;
    }
}

/// A store operation of an inspection call ended. (`op` is known to `Engine::stored` only; the
/// spill store's answers are told apart by `spill_op`, which `stored_op` passes.)
pub(super) fn stored(e: &mut Engine, call: Id, result: Result<Stored, String>) {
    let op = e.last_op;
    let Some(job) = e.admin.get_mut(&call) else {
        return;
    };
    let target = if job.spill_op == Some(op) {
        Target::Spill
    } else {
        Target::Main
    };
    match result {
        Ok(Stored::Counted { queued, dead }) => {
            job.queued += queued;
            job.dead += dead;
        }
        Ok(Stored::DeadLoaded(list)) => job.letters.extend(list.into_iter().map(|d| (target, d))),
        Ok(Stored::Number(n)) => job.queued += n as u32,
        Ok(_) | Err(_) => {}
    }
    job.pending = job.pending.saturating_sub(1);
    if job.pending > 0 {
        return;
    }
    let Some(job) = e.admin.remove(&call) else {
        return;
    };
    let out = match job.kind {
        Kind::Pending => {
            let in_flight = super::track::in_flight(e).len() as u32 + e.drain.in_flight();
            let storage = if e.durable() {
                Storage::Durable
            } else {
                Storage::Memory
            };
            Outcome::Pending {
                queued: job.queued.saturating_sub(in_flight),
                in_flight,
                dead: job.dead,
                storage,
                spilled: e.spilled.len() as u32,
            }
        }
        Kind::DeadLetters => {
            // Each store lists by key; the spill's few go in among the main's.
            let (main, spill): (Vec<_>, Vec<_>) = job
                .letters
                .into_iter()
                .partition(|(t, _)| *t == Target::Main);
            let mut list: Vec<DeadLetter> = main.into_iter().map(|(_, d)| d).collect();
            for (_, d) in spill {
                let at = list
                    .iter()
                    .position(|x| x.record.key > d.record.key)
                    .unwrap_or(list.len());
                list.insert(at, d);
            }
            Outcome::DeadLetters(list)
        }
        Kind::Discard(_) => Outcome::Count(job.queued),
        Kind::Reviving(n) => {
            e.schedule(e.now);
            Outcome::Count(n)
        }
        Kind::RetryDead(keys) => return revive(e, call, keys, job.letters),
    };
    e.resolve(call, Ok(out));
}

/// Puts the chosen letters back in the queue (each in the store it came from), as
/// [`queue::revive`] decides.
fn revive(e: &mut Engine, call: Id, keys: Option<Vec<String>>, letters: Vec<(Target, DeadLetter)>) {
    let now = e.now;
    let policy = e.opts.queue_policy.clone();
    let mut main: Vec<Record> = Vec::new();
    let mut spill: Vec<Record> = Vec::new();
    for (t, d) in &letters {
        if keys.as_ref().is_some_and(|k| !k.contains(&d.record.key)) {
            continue;
        }
        if let Some(r) = queue::revive(d, now, &policy) {
            match t {
                Target::Main => main.push(r),
                Target::Spill => {
                    e.spilled.insert(r.key.clone());
                    spill.push(r);
                }
            }
        }
    }
    let n = (main.len() + spill.len()) as u32;
    if n == 0 {
        e.resolve(call, Ok(Outcome::Count(0)));
        return;
    }
    let mut job = new_job(Kind::Reviving(n));
    for (t, recs) in [(Target::Main, main), (Target::Spill, spill)] {
        if !recs.is_empty() {
            job.pending += 1;
            e.store_op(t, StoreCmd::Revive { recs }, Waiter::Admin(call));
        }
    }
    e.admin.insert(call, job);
}
