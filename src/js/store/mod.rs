//! Storage for the offline queue: IndexedDB where the runtime has it (pages, dedicated and
//! service workers), memory elsewhere (Node, Cloudflare Workers) or when IndexedDB will not
//! open (private modes, blocked storage, a database from a newer SDK, a timeout).
//!
//! Both stores behave the same: writes of a batch are all-or-nothing, `load` orders records by
//! `seq` (ties by key, in IndexedDB's key order), and a memory store opened again under the same
//! name sees the same data, as a database would, for the life of the wasm instance.
//!
//! Layout (schema [`SCHEMA_VERSION`]): object store `"queue"` keyed by `"key"` with an index
//! `"seq"`, and `"dead"` keyed by `"key"` with an index `"seq"` on `"record.seq"`. A record is a
//! plain object `{v, key, seq, customer, body, ts?, createdAt, attempts, nextAt, lastError?}`; a
//! dead letter is `{v, key, record, code, message, status?, failedAt}`, where `v` is
//! [`RECORD_VERSION`](crate::queue::RECORD_VERSION).

mod idb;
mod memory;

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

pub use idb::{describe, IdbStore};
pub use memory::MemoryStore;

use crate::queue::{DeadLetter, Record};

/// Version of the IndexedDB schema (object stores and indexes). Bump it, and extend the upgrade
/// in `idb.rs`, whenever the layout changes.
pub const SCHEMA_VERSION: u32 = 1;

/// How long `Store::open` waits for IndexedDB (an open blocked by another tab never settles).
pub const OPEN_TIMEOUT_MS: i32 = 3000;

/// What `load` gives back: each stored value, decoded, or `(key or "", reason)`.
pub type Loaded = Vec<Result<Record, (String, String)>>;

/// Which store to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// IndexedDB when the runtime has it and it opens; memory otherwise.
    Auto,
    /// IndexedDB; if it cannot be opened, memory, with the reason.
    IndexedDb,
    /// Memory only: nothing survives the page or worker.
    Memory,
}

/// The queue's store, chosen once at start-up.
pub enum Store {
    /// Records live in this wasm instance only.
    Memory(MemoryStore),
    /// Records live in IndexedDB and survive reloads and crashes.
    IndexedDb(IdbStore),
}

impl Store {
    /// Opens the store called `name`. [`Kind::Auto`] and [`Kind::IndexedDb`] try IndexedDB and,
    /// on any failure (missing, blocked, `SecurityError`, open error, no answer within
    /// [`OPEN_TIMEOUT_MS`]), fall back to memory and return the reason as the second value.
    /// [`Kind::Memory`] always opens memory and returns `None`.
    pub async fn open(kind: Kind, name: &str) -> (Store, Option<String>) {
        match kind {
            Kind::Memory => (Store::Memory(MemoryStore::open(name)), None),
            Kind::Auto | Kind::IndexedDb => match IdbStore::open(name).await {
                Ok(s) => (Store::IndexedDb(s), None),
                Err(reason) => (Store::Memory(MemoryStore::open(name)), Some(reason)),
            },
        }
    }

    /// True when records survive a reload (IndexedDB).
    pub fn is_durable(&self) -> bool {
        matches!(self, Store::IndexedDb(_))
    }

    /// True after [`Store::close`], or after the browser or another tab (upgrading the schema)
    /// closed the database: every operation then fails, and the caller should open again.
    pub fn is_closed(&self) -> bool {
        match self {
            Store::Memory(s) => s.is_closed(),
            Store::IndexedDb(s) => s.is_closed(),
        }
    }

    /// Inserts or replaces (by key) every record, in one transaction: resolves once it is
    /// committed, or fails without having written any of them (a message containing "quota"
    /// when storage is full).
    pub async fn put(&self, recs: &[Record]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.put(recs),
            Store::IndexedDb(s) => s.put(recs).await,
        }
    }

    /// Deletes the records with these keys (missing ones are ignored), in one transaction.
    pub async fn delete(&self, keys: &[String]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.delete(keys),
            Store::IndexedDb(s) => s.delete(keys).await,
        }
    }

    /// Every queued record, ordered by `seq` ascending (ties by key). A stored value that does
    /// not decode comes back as `Err((key, reason))` (key empty when it is not a string), after
    /// the records, instead of failing the load.
    pub async fn load(&self) -> Result<Loaded, String> {
        match self {
            Store::Memory(s) => s.load(),
            Store::IndexedDb(s) => s.load().await,
        }
    }

    /// Number of queued records (undecodable ones included).
    pub async fn count(&self) -> Result<u32, String> {
        match self {
            Store::Memory(s) => s.count(),
            Store::IndexedDb(s) => s.count().await,
        }
    }

    /// Inserts or replaces (by the record's key) dead letters, in one transaction.
    pub async fn put_dead(&self, d: &[DeadLetter]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.put_dead(d),
            Store::IndexedDb(s) => s.put_dead(d).await,
        }
    }

    /// Every dead letter, in key order. One that does not decode comes back as a dead letter
    /// with code `corrupt_record`, the reason as its message, its key (when it is a string) and
    /// whatever fields could be read.
    pub async fn load_dead(&self) -> Result<Vec<DeadLetter>, String> {
        match self {
            Store::Memory(s) => s.load_dead(),
            Store::IndexedDb(s) => s.load_dead().await,
        }
    }

    /// Deletes the dead letters with these keys, in one transaction.
    pub async fn delete_dead(&self, keys: &[String]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.delete_dead(keys),
            Store::IndexedDb(s) => s.delete_dead(keys).await,
        }
    }

    /// Removes each letter's record from the queue and stores the letter, atomically (one
    /// transaction over both stores).
    pub async fn move_to_dead(&self, d: &[DeadLetter]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.move_to_dead(d),
            Store::IndexedDb(s) => s.move_to_dead(d).await,
        }
    }

    /// Stores these records in the queue and removes the dead letters with their keys,
    /// atomically.
    pub async fn revive(&self, recs: &[Record]) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.revive(recs),
            Store::IndexedDb(s) => s.revive(recs).await,
        }
    }

    /// The highest `seq` in the queue or among the dead letters (0 when both are empty), so a
    /// new tracker continues the sequence.
    pub async fn max_seq(&self) -> Result<f64, String> {
        match self {
            Store::Memory(s) => s.max_seq(),
            Store::IndexedDb(s) => s.max_seq().await,
        }
    }

    /// Releases the store (`IDBDatabase.close()`); later operations fail. The data stays.
    pub fn close(&self) {
        match self {
            Store::Memory(s) => s.close(),
            Store::IndexedDb(s) => s.close(),
        }
    }
}

/// Deletes the store called `name` everywhere: the memory one and the IndexedDB database.
/// Open stores should be closed first (an open IndexedDB connection of this SDK closes itself
/// when asked). For tests and a "forget everything" button.
pub async fn delete_database(name: &str) -> Result<(), String> {
    memory::forget(name);
    idb::delete_database(name).await
}

const NON_FINITE: &str = "refusing to store a record with a number that is not finite";

/// Refuses what a load could not give back, so both stores accept exactly the same records.
fn check_record(r: &Record) -> Result<(), String> {
    let ts_ok = r.ts.map_or(true, f64::is_finite);
    if r.seq.is_finite() && r.created_at.is_finite() && r.next_at.is_finite() && ts_ok {
        Ok(())
    } else {
        Err(String::from(NON_FINITE))
    }
}

fn check_dead(d: &DeadLetter) -> Result<(), String> {
    check_record(&d.record)?;
    if d.failed_at.is_finite() {
        Ok(())
    } else {
        Err(String::from(NON_FINITE))
    }
}

/// IndexedDB's order of string keys: by UTF-16 code units.
fn cmp_keys(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Queue order: `seq`, then key.
fn cmp_records(a: &Record, b: &Record) -> Ordering {
    a.seq
        .partial_cmp(&b.seq)
        .unwrap_or(Ordering::Equal)
        .then_with(|| cmp_keys(&a.key, &b.key))
}
