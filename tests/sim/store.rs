//! The store as `js/store.js` executes the engine's commands: one transaction per command,
//! all-or-nothing, `add` keeps an existing key and the queue's bound, `update` only replaces what
//! is still there, `load` orders by seq then key.

use std::collections::BTreeMap;

use autumn_track::engine::{Limit, StoreCmd, Stored};
use autumn_track::queue::{is_leased, DeadLetter, Record};

#[derive(Default, Clone)]
pub struct SimStore {
    pub queue: BTreeMap<String, Record>,
    pub dead: BTreeMap<String, DeadLetter>,
}

fn by_order(a: &Record, b: &Record) -> std::cmp::Ordering {
    a.seq
        .partial_cmp(&b.seq)
        .unwrap_or(std::cmp::Ordering::Equal)
        .then_with(|| a.key.cmp(&b.key))
}

impl SimStore {
    pub fn apply(&mut self, cmd: StoreCmd) -> Stored {
        match cmd {
            StoreCmd::Add { recs, limit } => {
                let mut existing = Vec::new();
                let dead_sent = recs
                    .iter()
                    .filter_map(|r| {
                        let s = self.dead.get(&r.key)?.record.sent_at?;
                        Some((r.key.clone(), s))
                    })
                    .collect();
                for mut r in recs {
                    // What js/store.js does: a record without a send stamp takes its dead
                    // letter's (that attempt may still be running).
                    if r.sent_at.is_none() {
                        r.sent_at = self.dead.get(&r.key).and_then(|d| d.record.sent_at);
                    }
                    if self.queue.contains_key(&r.key) {
                        existing.push(r.key);
                    } else {
                        self.queue.insert(r.key.clone(), r);
                    }
                }
                let evicted = match limit {
                    Some(l) => self.keep_within(&l),
                    None => Vec::new(),
                };
                Stored::Added {
                    evicted,
                    existing,
                    dead_sent,
                }
            }
            StoreCmd::Update { recs } => {
                let mut missing = Vec::new();
                for r in recs {
                    match self.queue.get_mut(&r.key) {
                        Some(slot) => *slot = r,
                        None => missing.push(r.key),
                    }
                }
                Stored::Updated { missing }
            }
            StoreCmd::Renew { rec, prev } => {
                let mut missing = Vec::new();
                match self.queue.get_mut(&rec.key) {
                    Some(slot) if slot.sent_at.map(|s| s.local) == prev => *slot = rec,
                    _ => missing.push(rec.key),
                }
                Stored::Updated { missing }
            }
            StoreCmd::Delete { keys } => {
                for k in keys {
                    self.queue.remove(&k);
                }
                Stored::Done
            }
            StoreCmd::Load => {
                let mut v: Vec<Record> = self.queue.values().cloned().collect();
                v.sort_by(by_order);
                Stored::Loaded(v.into_iter().map(Ok).collect())
            }
            StoreCmd::Count => Stored::Counted {
                queued: self.queue.len() as u32,
                dead: self.dead.len() as u32,
            },
            StoreCmd::MoveToDead { letters } => {
                for l in letters {
                    self.queue.remove(&l.record.key);
                    self.dead.insert(l.record.key.clone(), l);
                }
                Stored::Done
            }
            StoreCmd::LoadDead => Stored::DeadLoaded(self.dead.values().cloned().collect()),
            StoreCmd::DeleteDead { keys } => {
                let n = keys
                    .iter()
                    .filter(|k| self.dead.remove(*k).is_some())
                    .count();
                Stored::Number(n as f64)
            }
            StoreCmd::Revive { recs } => {
                for r in recs {
                    self.dead.remove(&r.key);
                    self.queue.insert(r.key.clone(), r);
                }
                Stored::Done
            }
        }
    }

    /// The bound: the oldest that are neither leased nor busy become `queue_full` letters.
    fn keep_within(&mut self, l: &Limit) -> Vec<String> {
        let mut over = self.queue.len().saturating_sub(l.max);
        if over == 0 {
            return Vec::new();
        }
        let mut order: Vec<Record> = self.queue.values().cloned().collect();
        order.sort_by(by_order);
        let mut out = Vec::new();
        for r in order {
            if over == 0 {
                break;
            }
            if is_leased(&r, l.now) || l.busy.contains(&r.key) {
                continue;
            }
            self.queue.remove(&r.key);
            out.push(r.key.clone());
            self.dead.insert(
                r.key.clone(),
                DeadLetter {
                    record: r,
                    code: "queue_full".into(),
                    message: "the queue reached maxQueueSize".into(),
                    status: None,
                    failed_at: l.now,
                },
            );
            over -= 1;
        }
        out
    }
}
