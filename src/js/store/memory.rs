//! The in-memory store: the same behaviour as IndexedDB, for runtimes without it. Stores are
//! shared by name within the wasm instance (a second `open` of a name sees the same data, as
//! with a database) until `delete_database` forgets them. No borrow outlives a call.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};

use super::{check_dead, check_record, cmp_keys, cmp_records, Loaded};
use crate::queue::{DeadLetter, Record};

/// Plain vectors kept in order (queue by seq then key, dead letters by key) with binary-search
/// inserts: a `BTreeMap` here cost ~20 KB of wasm for no gain at these sizes.
#[derive(Default)]
struct Data {
    queue: Vec<Record>,
    dead: Vec<DeadLetter>,
}

impl Data {
    fn put(&mut self, r: &Record) {
        self.queue.retain(|q| q.key != r.key);
        let at = self.queue.partition_point(|q| cmp_records(q, r).is_lt());
        self.queue.insert(at, r.clone());
    }

    fn put_dead(&mut self, l: &DeadLetter) {
        self.dead.retain(|d| d.record.key != l.record.key);
        let at = self
            .dead
            .partition_point(|d| cmp_keys(&d.record.key, &l.record.key).is_lt());
        self.dead.insert(at, l.clone());
    }
}

type Shared = Rc<RefCell<Data>>;

thread_local! {
    static STORES: RefCell<Vec<(String, Shared)>> = const { RefCell::new(Vec::new()) };
}

const CLOSED: &str = "the store is closed";
const BUSY: &str = "the memory store is busy";

/// The queue in memory; see the module docs.
pub struct MemoryStore {
    data: Shared,
    closed: Cell<bool>,
}

/// Drops the memory store called `name` (handles still open keep their data alive).
pub(super) fn forget(name: &str) {
    STORES.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.retain(|(n, _)| n != name);
        }
    });
}

impl MemoryStore {
    /// The memory store called `name`, created empty on first use.
    pub fn open(name: &str) -> MemoryStore {
        let data = STORES.with(|s| match s.try_borrow_mut() {
            Ok(mut s) => match s.iter().find(|(n, _)| n == name) {
                Some((_, d)) => Rc::clone(d),
                None => {
                    let d = Shared::default();
                    s.push((String::from(name), Rc::clone(&d)));
                    d
                }
            },
            Err(_) => Shared::default(),
        });
        MemoryStore {
            data,
            closed: Cell::new(false),
        }
    }

    /// True after [`MemoryStore::close`].
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Ends this handle; the data stays for the next `open`.
    pub fn close(&self) {
        self.closed.set(true);
    }

    fn with<R>(&self, f: impl FnOnce(&mut Data) -> R) -> Result<R, String> {
        if self.closed.get() {
            return Err(String::from(CLOSED));
        }
        match self.data.try_borrow_mut() {
            Ok(mut d) => Ok(f(&mut d)),
            Err(_) => Err(String::from(BUSY)),
        }
    }

    /// Inserts or replaces by key; all or nothing.
    pub fn put(&self, recs: &[Record]) -> Result<(), String> {
        recs.iter().try_for_each(check_record)?;
        self.with(|d| {
            for r in recs {
                d.put(r);
            }
        })
    }

    /// Deletes by key.
    pub fn delete(&self, keys: &[String]) -> Result<(), String> {
        self.with(|d| {
            d.queue.retain(|r| !keys.contains(&r.key));
        })
    }

    /// Every record, by `seq` then key.
    pub fn load(&self) -> Result<Loaded, String> {
        self.with(|d| d.queue.iter().cloned().map(Ok).collect())
    }

    /// Number of records.
    pub fn count(&self) -> Result<u32, String> {
        self.with(|d| u32::try_from(d.queue.len()).unwrap_or(u32::MAX))
    }

    /// Inserts or replaces dead letters by their record's key.
    pub fn put_dead(&self, letters: &[DeadLetter]) -> Result<(), String> {
        letters.iter().try_for_each(check_dead)?;
        self.with(|d| {
            for l in letters {
                d.put_dead(l);
            }
        })
    }

    /// Every dead letter, by key.
    pub fn load_dead(&self) -> Result<Vec<DeadLetter>, String> {
        self.with(|d| d.dead.clone())
    }

    /// Deletes dead letters by key.
    pub fn delete_dead(&self, keys: &[String]) -> Result<(), String> {
        self.with(|d| {
            d.dead.retain(|l| !keys.contains(&l.record.key));
        })
    }

    /// Queue → dead, atomically.
    pub fn move_to_dead(&self, letters: &[DeadLetter]) -> Result<(), String> {
        letters.iter().try_for_each(check_dead)?;
        self.with(|d| {
            d.queue
                .retain(|r| !letters.iter().any(|l| l.record.key == r.key));
            for l in letters {
                d.put_dead(l);
            }
        })
    }

    /// Dead → queue, atomically.
    pub fn revive(&self, recs: &[Record]) -> Result<(), String> {
        recs.iter().try_for_each(check_record)?;
        self.with(|d| {
            d.dead
                .retain(|l| !recs.iter().any(|r| r.key == l.record.key));
            for r in recs {
                d.put(r);
            }
        })
    }

    /// Highest `seq` in the queue or the dead letters, 0 when both are empty.
    pub fn max_seq(&self) -> Result<f64, String> {
        self.with(|d| {
            let queued = d.queue.iter().map(|r| r.seq);
            let dead = d.dead.iter().map(|l| l.record.seq);
            queued.chain(dead).reduce(f64::max).unwrap_or(0.0)
        })
    }
}
