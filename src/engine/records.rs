//! The store's records and the keys in play, for the engine's parts: which store a key lives
//! in, its writes, deletes and dead letters split per store; which keys are busy, and which
//! were sent without an answer not long ago.

use alloc::string::String;
use alloc::vec::Vec;

use super::{Command, Engine, Id, Storage, StoreCmd, StorePhase, Target, Waiter, RECENT_MAX};
use crate::queue::{DeadLetter, Record, Sent};

impl Engine {
    pub(super) fn store_op(&mut self, target: Target, cmd: StoreCmd, w: Waiter) -> Id {
        let id = self.id();
        self.waiting.insert(id, w);
        self.out.push_back(Command::Store { id, target, cmd });
        id
    }

    pub(super) fn durable(&self) -> bool {
        matches!(self.store, StorePhase::Open { durable: true })
    }

    pub(super) fn is_open(&self) -> bool {
        matches!(self.store, StorePhase::Open { .. })
    }

    /// Where a queued event is now (for results and notices).
    pub(super) fn storage_of(&self, key: &str) -> Storage {
        if self.spilled.contains(key) {
            Storage::Memory
        } else if self.durable() {
            Storage::Durable
        } else {
            Storage::Memory
        }
    }

    pub(super) fn target_of(&self, key: &str) -> Target {
        if self.spilled.contains(key) {
            Target::Spill
        } else {
            Target::Main
        }
    }

    /// Issues `cmd` per store for `keys`' records, split by where each lives.
    pub(super) fn split_by_target<T: Clone>(
        &self,
        items: &[T],
        key: impl Fn(&T) -> &str,
    ) -> (Vec<T>, Vec<T>) {
        items
            .iter()
            .cloned()
            .partition(|it| self.target_of(key(it)) == Target::Main)
    }

    /// Deletes settled records (delivered, already recorded, refused to the caller). A delete
    /// that fails leaves the key marked: it is never sent again, and deleted again later.
    pub(super) fn forget(&mut self, keys: Vec<String>, w: Waiter) -> Option<Id> {
        if keys.is_empty() || !self.is_open() {
            return None;
        }
        let (main, spill) = self.split_by_target(&keys, |k| k.as_str());
        let mut last = None;
        if !spill.is_empty() {
            for k in &spill {
                self.spilled.remove(k);
            }
            let waiter = if main.is_empty() { w } else { Waiter::Cleanup };
            last = Some(self.store_op(Target::Spill, StoreCmd::Delete { keys: spill }, waiter));
        }
        if !main.is_empty() {
            for k in &main {
                self.undeleted.insert(k.clone());
            }
            let id = self.store_op(Target::Main, StoreCmd::Delete { keys: main.clone() }, w);
            self.deleting.insert(id, main);
            last = Some(id);
        }
        last
    }

    /// Writes records back after an attempt (only where they still are), per store.
    pub(super) fn write_back(&mut self, recs: Vec<Record>, w: Waiter) -> Id {
        let (main, spill) = self.split_by_target(&recs, |r| r.key.as_str());
        if !spill.is_empty() {
            let id = self.store_op(Target::Spill, StoreCmd::Update { recs: spill }, w);
            if main.is_empty() {
                return id;
            }
            // Both: the caller waits for the main store's answer; the spill's is quick.
            self.waiting.insert(id, Waiter::Cleanup);
        }
        self.store_op(Target::Main, StoreCmd::Update { recs: main }, w)
    }

    /// Moves records to the dead letters, per store.
    pub(super) fn bury(&mut self, letters: Vec<DeadLetter>, w: Waiter) -> Id {
        let (main, spill) = self.split_by_target(&letters, |d| d.record.key.as_str());
        for d in &spill {
            self.spilled.remove(&d.record.key);
        }
        if !spill.is_empty() {
            let id = self.store_op(Target::Spill, StoreCmd::MoveToDead { letters: spill }, w);
            if main.is_empty() {
                return id;
            }
            self.waiting.insert(id, Waiter::Cleanup);
        }
        self.store_op(Target::Main, StoreCmd::MoveToDead { letters: main }, w)
    }

    /// Is `key` being sent by this engine (a `track()` call or the drain's pass), or settled
    /// but not yet deleted? Then no drain may send it, and no bound may set it aside.
    pub(super) fn busy(&self, key: &str) -> bool {
        self.undeleted.contains(key)
            || self.drain.has(key)
            || self
                .calls
                .values()
                .any(|c| c.holds_record() && c.key() == key)
    }

    /// Keys the queue's bound must not set aside: the drain's and those whose delete is pending.
    /// (A record a `track()` call is sending is leased to it, which the stores see themselves.)
    pub(super) fn busy_keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.undeleted.iter().cloned().collect();
        v.extend(self.drain.keys());
        v
    }

    /// Remembers an unanswered attempt of `key` (a `track()` call's, or one of the drain's), for
    /// as long as it may still be running: its stored copy may not show it (read before it was
    /// marked, moved to the dead letters meanwhile, or in the other store).
    pub(super) fn remember_unanswered(&mut self, key: &str, sent_at: Sent) {
        self.remember_all(&[key], sent_at);
    }

    /// [`Engine::remember_unanswered`] for several keys sent together (at most [`RECENT_MAX`]
    /// kept, the oldest going first).
    pub(super) fn remember_all(&mut self, keys: &[&str], sent_at: Sent) {
        let (now, w, clock) = (
            self.now,
            self.opts.queue_policy.confirm_after_ms,
            self.clock,
        );
        self.recent
            .retain(|(k, t)| clock.ended_by(t, now, w) > now && !keys.contains(&k.as_str()));
        self.recent
            .extend(keys.iter().map(|k| (String::from(*k), sent_at)));
        let over = self.recent.len().saturating_sub(RECENT_MAX);
        self.recent.drain(..over);
    }

    /// The latest unanswered attempt of `key` this tracker remembers, if still in the window.
    pub(super) fn recent(&self, key: &str) -> Option<Sent> {
        let (now, w) = (self.now, self.opts.queue_policy.confirm_after_ms);
        self.recent
            .iter()
            .rev()
            .find(|(k, t)| k == key && self.clock.ended_by(t, now, w) > now)
            .map(|(_, t)| *t)
    }
}
