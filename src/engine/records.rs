//! The store's records and the keys in play, for the engine's parts: which store a key lives
//! in, its writes, deletes and dead letters split per store; which keys are busy, and which
//! were sent without an answer not long ago.

use alloc::rc::Rc;
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

    /// Events go to a Cloudflare Queue instead of Autumn (Workers). Never in the browser's wasm,
    /// which has no queue to hand them to: the code is left out of it.
    pub(super) fn handover(&self) -> bool {
        (cfg!(feature = "server") || !cfg!(target_arch = "wasm32")) && self.env.handover
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
    pub(super) fn busy(&self, key: &str, calls: &super::track::Holders) -> bool {
        self.undeleted.contains(key) || self.drain.has(key) || calls.has_key(key)
    }

    /// Keys the queue's bound must not set aside: the drain's and those whose delete is pending.
    /// (A record a `track()` call is sending is leased to it, which the stores see themselves.)
    /// The same list (one `Rc`) while neither set changed: a drain's pass can hold 100,000
    /// keys, and 10,000 `track()` calls arriving during it each copied them all — and the edge
    /// wrote them all into each `add` (quadratic: 4 GB of text for a 100,000-event backlog).
    pub(super) fn busy_keys(&mut self) -> Rc<Vec<String>> {
        let at = (self.undeleted.changes(), self.drain.pass.changes());
        if let Some((u, d, v)) = &self.busy_cache {
            if (*u, *d) == at {
                return v.clone();
            }
        }
        let mut v: Vec<String> = self.undeleted.iter().cloned().collect();
        v.extend(self.drain.keys());
        let v = Rc::new(v);
        self.busy_cache = Some((at.0, at.1, v.clone()));
        v
    }

    /// Notes the key of a call about to start; true when a live call may have it already.
    /// (`call_keys` holds every live call's key, so two live calls of one key always find it
    /// in `shared_keys`; both only grow, until they are rebuilt from the live calls.)
    pub(super) fn note_call_key(&mut self, key: &str) -> bool {
        if self.call_keys.len() > 2 * self.calls.len() + 64 {
            self.call_keys.clear();
            self.shared_keys.clear();
            let live: Vec<String> = self.calls.values().map(|c| String::from(c.key())).collect();
            for k in live {
                if self.call_keys.contains(&k) {
                    self.shared_keys.insert(k);
                } else {
                    self.call_keys.insert(k);
                }
            }
        }
        if self.call_keys.contains(key) {
            self.shared_keys.insert(String::from(key));
            true
        } else {
            self.call_keys.insert(String::from(key));
            false
        }
    }

    /// Can two live calls have `key`? (False: no need to look.)
    pub(super) fn may_share(&self, key: &str) -> bool {
        self.shared_keys.contains(key)
    }

    /// Remembers an unanswered attempt of `key` (a `track()` call's, or one of the drain's), for
    /// as long as it may still be running: its stored copy may not show it (read before it was
    /// marked, moved to the dead letters meanwhile, or in the other store).
    pub(super) fn remember_unanswered(&mut self, key: &str, sent_at: Sent) {
        self.remember_all(&[key], sent_at);
    }

    /// [`Engine::remember_unanswered`] for several keys sent together (at most [`RECENT_MAX`]
    /// kept: over that, those whose window ended go first, then the oldest).
    pub(super) fn remember_all(&mut self, keys: &[&str], sent_at: Sent) {
        let (now, w, clock) = (
            self.now,
            self.opts.queue_policy.confirm_after_ms,
            self.clock,
        );
        for k in keys {
            self.recent.put(k, sent_at);
        }
        self.recent
            .bound(RECENT_MAX, |t| clock.ended_by(t, now, w) > now);
    }

    /// The latest unanswered attempt of `key` this tracker remembers, if still in the window.
    pub(super) fn recent(&self, key: &str) -> Option<Sent> {
        let (now, w) = (self.now, self.opts.queue_policy.confirm_after_ms);
        self.recent
            .get(key)
            .filter(|t| self.clock.ended_by(t, now, w) > now)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Env;
    use super::*;
    use crate::value::Value;
    use alloc::vec;

    fn engine() -> Engine {
        let opts = crate::options::parse_options(&Value::Obj(vec![
            ("secretKey".into(), Value::Str("am_sk_test_x".into())),
            ("queue".into(), Value::Str("memory".into())),
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        let env = Env {
            browser: false,
            handover: false,
            seed: 1,
        };
        Engine::new(opts, env, 1_800_000_000_000.0)
    }

    struct Host;
    impl crate::event::Host for Host {
        fn now_ms(&self) -> f64 {
            1_800_000_000_000.0
        }
        fn format_num(&self, n: f64, out: &mut String) {
            crate::value::tests_support::rust_num(n, out)
        }
        fn new_key(&mut self) -> String {
            String::from("generated")
        }
    }

    fn event(key: &str) -> crate::event::Event {
        let v = Value::Obj(vec![
            ("customerId".into(), Value::Str("c".into())),
            ("featureId".into(), Value::Str("f".into())),
            ("idempotencyKey".into(), Value::Str(key.into())),
        ]);
        crate::event::parse_input(&v, 1 << 20, &mut Host).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn commands(e: &mut Engine) -> Vec<Command> {
        core::iter::from_fn(|| e.poll()).collect()
    }

    /// A call of a key that another call of this engine holds (stored and being sent) does not
    /// write or send it again: it is told `already_queued`. Other keys are not held up by the
    /// index of shared keys.
    #[test]
    fn a_second_call_of_a_key_another_call_is_sending_is_already_queued() {
        use super::super::{Input, Outcome, Stored};
        let (now, mono) = (1_800_000_000_000.0, 1.0);
        let mut e = engine();
        commands(&mut e);
        let opened = Input::Opened {
            durable: true,
            fallback: None,
            max_seq: 0.0,
        };
        e.handle_at(opened, now, mono);
        commands(&mut e);
        let track = |e: &mut Engine, call, key: &str| {
            let input = Input::Track {
                call,
                event: event(key),
                offline: false,
                defer: false,
            };
            e.handle_at(input, now, mono);
            commands(e)
        };
        let add_of = |cmds: &[Command]| {
            cmds.iter().find_map(|c| match c {
                Command::Store {
                    id,
                    cmd: StoreCmd::Add { .. },
                    ..
                } => Some(*id),
                _ => None,
            })
        };
        let first = track(&mut e, 1, "k-1");
        let add = add_of(&first).unwrap_or_else(|| panic!("no add: {first:?}"));
        let added = Stored::Added {
            evicted: vec![],
            existing: vec![],
            dead_sent: vec![],
        };
        e.handle_at(
            Input::Stored {
                id: add,
                result: Ok(added),
            },
            now,
            mono,
        );
        let sent = commands(&mut e);
        assert!(
            sent.iter().any(|c| matches!(c, Command::Send { .. })),
            "{sent:?}"
        );
        // Another key: written as usual.
        assert!(add_of(&track(&mut e, 2, "k-2")).is_some());
        // The same key again while the first call sends it.
        let again = track(&mut e, 3, "k-1");
        assert!(add_of(&again).is_none(), "written twice: {again:?}");
        assert!(
            again.iter().any(|c| matches!(
                c,
                Command::Resolve {
                    call: 3,
                    result: Ok(Outcome::Queued {
                        reason: "already_queued",
                        ..
                    })
                }
            )),
            "{again:?}"
        );
    }

    /// A drain pass that finds only the record a `track()` call is sending holds nothing back
    /// behind it: the call settles its own record, so its answer does not start another pass
    /// (a page tracking one event after another reloaded its whole queue after each — one
    /// IndexedDB `getAll` per event). A record of the same customer that the pass did hold back
    /// behind the call still gets its pass when the call settles.
    #[test]
    fn a_call_whose_own_record_a_drain_found_does_not_start_a_pass_when_it_settles() {
        use super::super::{Input, Stored};
        use crate::answer::{Answered, Reply};
        let (now, mono) = (1_800_000_000_000.0, 1.0);
        // 0: the queue holds only the call's own record; 1: and a later one of its customer;
        // 2: it holds another customer's event under the call's key instead (the call's copy
        // went elsewhere) — held while the key is busy, so it needs the pass too.
        for case in 0..3 {
            let queued_behind = case > 0;
            let mut e = engine();
            commands(&mut e);
            let opened = Input::Opened {
                durable: true,
                fallback: None,
                max_seq: 0.0,
            };
            e.handle_at(opened, now, mono);
            // The pass an opened queue starts: it finds the queue empty.
            for _ in 0..4 {
                for c in commands(&mut e) {
                    match c {
                        Command::Lock => e.handle_at(Input::Locked { granted: true }, now, mono),
                        Command::Store {
                            id,
                            cmd: StoreCmd::Load,
                            ..
                        } => {
                            let empty = Input::Stored {
                                id,
                                result: Ok(Stored::Loaded(vec![])),
                            };
                            e.handle_at(empty, now, mono)
                        }
                        _ => {}
                    }
                }
            }
            let input = Input::Track {
                call: 1,
                event: event("k-1"),
                offline: false,
                defer: false,
            };
            e.handle_at(input, now, mono);
            let (add, rec) = commands(&mut e)
                .into_iter()
                .find_map(|c| match c {
                    Command::Store {
                        id,
                        cmd: StoreCmd::Add { recs, .. },
                        ..
                    } => Some((id, recs)),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no add"));
            let added = Stored::Added {
                evicted: vec![],
                existing: vec![],
                dead_sent: vec![],
            };
            e.handle_at(
                Input::Stored {
                    id: add,
                    result: Ok(added),
                },
                now,
                mono,
            );
            let send = commands(&mut e)
                .into_iter()
                .find_map(|c| match c {
                    Command::Send { id, .. } => Some(id),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no send"));
            // Another tab wrote something: a pass loads the queue while the call sends.
            e.handle_at(Input::Remote, now, mono);
            let mut loaded: Vec<_> = rec.into_iter().map(Ok).collect();
            if queued_behind {
                let mut later = Record::unreadable(String::from("k-2"));
                if let Some(Ok(first)) = loaded.first() {
                    later = Record {
                        key: String::from("k-2"),
                        seq: first.seq + 1.0,
                        ..first.clone()
                    };
                }
                if case == 1 {
                    loaded.push(Ok(later));
                } else if let Some(Ok(own)) = loaded.first_mut() {
                    own.customer = String::from("someone-else");
                    own.body = own.body.replace("\"c\"", "\"someone-else\"");
                }
            }
            let mut load = None;
            for _ in 0..3 {
                for c in commands(&mut e) {
                    match c {
                        Command::Store {
                            id,
                            cmd: StoreCmd::Load,
                            ..
                        } => load = Some(id),
                        Command::Wake(Some(at)) => e.handle_at(Input::Timer, at, mono + (at - now)),
                        Command::Lock => e.handle_at(Input::Locked { granted: true }, now, mono),
                        _ => {}
                    }
                }
            }
            let load = load.unwrap_or_else(|| panic!("no load: {:?}", commands(&mut e)));
            e.handle_at(
                Input::Stored {
                    id: load,
                    result: Ok(Stored::Loaded(loaded)),
                },
                now,
                mono,
            );
            commands(&mut e);
            let reply = Reply::Answer(Answered {
                status: 200,
                ..Answered::default()
            });
            e.handle_at(Input::Replied { id: send, reply }, now, mono);
            let del = commands(&mut e)
                .into_iter()
                .find_map(|c| match c {
                    Command::Store {
                        id,
                        cmd: StoreCmd::Delete { .. },
                        ..
                    } => Some(id),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no delete"));
            e.handle_at(
                Input::Stored {
                    id: del,
                    result: Ok(Stored::Done),
                },
                now,
                mono,
            );
            let after = commands(&mut e);
            let wakes_now = after
                .iter()
                .any(|c| matches!(c, Command::Wake(Some(at)) if *at <= now));
            assert_eq!(wakes_now, queued_behind, "case {case}: {after:?}");
        }
    }

    #[test]
    fn the_index_of_shared_keys_finds_every_key_two_live_calls_may_have() {
        let mut e = engine();
        assert!(!e.note_call_key("a"));
        assert!(!e.note_call_key("b"));
        assert!(e.note_call_key("a"));
        assert!(e.may_share("a") && !e.may_share("b"));
        // With no live call, a rebuild forgets them all.
        for i in 0..100 {
            e.note_call_key(&alloc::format!("x{i}"));
        }
        assert!(!e.note_call_key("a"));
        assert!(!e.may_share("a"));
    }

    fn sorted(v: &[String]) -> Vec<String> {
        let mut v = v.to_vec();
        v.sort();
        v
    }

    /// The list an `add` carries is always the keys busy now — the drain's pass and the
    /// undeleted — and the very same list (one `Rc`, written once) while neither changed.
    #[test]
    fn busy_keys_follow_every_change_and_are_shared_while_nothing_changes() {
        let mut e = engine();
        let a = e.busy_keys();
        assert!(a.is_empty());
        assert!(Rc::ptr_eq(&a, &e.busy_keys()), "unchanged: the same list");
        e.drain.pass.insert("p1".into());
        e.drain.pass.insert("p2".into());
        let b = e.busy_keys();
        assert_eq!(sorted(&b), ["p1", "p2"]);
        e.undeleted.insert("u1".into());
        assert_eq!(sorted(&e.busy_keys()), ["p1", "p2", "u1"]);
        let c = e.busy_keys();
        assert!(Rc::ptr_eq(&c, &e.busy_keys()));
        e.drain.pass.remove("p1");
        assert_eq!(sorted(&e.busy_keys()), ["p2", "u1"]);
        e.undeleted.remove("u1");
        assert_eq!(sorted(&e.busy_keys()), ["p2"]);
        // Taking out a key that is not there, inserting one that is: nothing changed.
        let d = e.busy_keys();
        e.drain.pass.remove("nope");
        e.drain.pass.insert("p2".into());
        assert!(Rc::ptr_eq(&d, &e.busy_keys()));
        e.drain.pass.clear();
        assert!(e.busy_keys().is_empty());
        // Emptied and filled again to the same size: still a change.
        e.drain.pass.insert("p3".into());
        assert_eq!(sorted(&e.busy_keys()), ["p3"]);
    }

    /// A memory store that opened holding nothing (`max_seq` 0: no record, no dead letter) has
    /// no leftovers to replay: the engine reads nothing from it. Anything else is read at once:
    /// a memory store with records (another tracker's of the same name), one whose contents
    /// are unknown (NaN: the driver could not ask), and every durable store (an earlier page's
    /// or process's events), whose pass starts with the tab lock.
    #[test]
    fn only_a_memory_store_known_empty_skips_the_first_pass() {
        use super::super::Input;
        let (now, mono) = (1_800_000_000_000.0, 1.0);
        let first_pass = |durable: bool, max_seq: f64| {
            let mut e = engine();
            commands(&mut e);
            let opened = Input::Opened {
                durable,
                fallback: None,
                max_seq,
            };
            e.handle_at(opened, now, mono);
            commands(&mut e).into_iter().find_map(|c| match c {
                Command::Lock => Some("lock"),
                Command::Store {
                    cmd: StoreCmd::Load,
                    ..
                } => Some("load"),
                _ => None,
            })
        };
        assert_eq!(first_pass(false, 0.0), None);
        assert_eq!(first_pass(false, now - 5.0), Some("load"));
        assert_eq!(first_pass(false, f64::NAN), Some("load"));
        assert_eq!(first_pass(true, 0.0), Some("lock"));
        assert_eq!(first_pass(true, now - 5.0), Some("lock"));
    }
}
