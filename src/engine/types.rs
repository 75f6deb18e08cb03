//! The engine's inputs and commands: what crosses between the engine and its driver.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use crate::answer::Reply;
use crate::error::TrackError;
use crate::event::Event;
use crate::queue::{DeadLetter, Record};

/// Identifies a caller's call (chosen by the driver) or an operation in flight (chosen by the
/// engine).
pub type Id = u32;

/// What the engine knows of where it runs, given by the driver once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Env {
    /// A browser page or worker: requests may use `keepalive`.
    pub browser: bool,
    /// Events that cannot be delivered now go to a Cloudflare Queue (the driver's binding)
    /// instead of waiting in this isolate's memory.
    pub handover: bool,
    /// Seeds the engine's jitter.
    pub seed: u64,
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// `track()` with a validated event. `offline`: the runtime says it is offline.
    Track {
        /// The call.
        call: Id,
        /// The event.
        event: Event,
        /// `navigator.onLine === false`.
        offline: bool,
        /// Store it and let the drain deliver it: the call resolves `queued` (reason `accepted`)
        /// once the record is committed (a route that holds events durably answers its caller
        /// then). Without a queue it is sent as usual.
        defer: bool,
    },
    /// `flush()`.
    Flush {
        /// The call.
        call: Id,
    },
    /// `pending()`.
    Pending {
        /// The call.
        call: Id,
    },
    /// `deadLetters()`.
    DeadLetters {
        /// The call.
        call: Id,
    },
    /// `discard(keys)`.
    Discard {
        /// The call.
        call: Id,
        /// Dead letters to delete.
        keys: Vec<String>,
    },
    /// `retryDeadLetters(keys?)`.
    RetryDead {
        /// The call.
        call: Id,
        /// These, or all.
        keys: Option<Vec<String>>,
    },
    /// The store asked for with [`Command::Open`] is open. `durable`: it survives the page or
    /// process (IndexedDB, SQLite, Postgres); `fallback`: why it is memory instead of the one
    /// asked for.
    Opened {
        /// Survives a reload.
        durable: bool,
        /// Why not the store asked for.
        fallback: Option<String>,
        /// The highest `seq` stored (queue or dead letters), so this tracker continues after it
        /// even if the clock went back; 0 when the store holds nothing, NaN when unknown.
        max_seq: f64,
    },
    /// A store operation ended.
    Stored {
        /// The operation.
        id: Id,
        /// Its result, or why it failed (a message containing "quota" for a full quota).
        result: Result<Stored, String>,
    },
    /// A request ended.
    Replied {
        /// The request.
        id: Id,
        /// What came back.
        reply: Reply,
    },
    /// A hand-over to the Cloudflare Queue ended.
    HandedOver {
        /// The hand-over.
        id: Id,
        /// `Err` with the reason when the queue did not take the messages.
        result: Result<(), String>,
    },
    /// The drain lock: granted, or held by another tab.
    Locked {
        /// Granted.
        granted: bool,
    },
    /// The wake-up asked for with [`Command::Wake`].
    Timer,
    /// The network came back.
    Online,
    /// The network went away.
    Offline,
    /// The page is being hidden.
    Hidden,
    /// The page is going away: replays may use `keepalive` requests.
    PageHide,
    /// Another tab queued something.
    Remote,
    /// `close()`.
    Close,
}

/// Which store an operation is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The store the options asked for (IndexedDB, SQLite, Postgres, or memory).
    Main,
    /// Memory, for events the main store refused to write (a full quota): the main store keeps
    /// serving what it holds.
    Spill,
}

/// Bounds an [`StoreCmd::Add`]: past `max` records, the oldest become `queue_full` dead letters
/// in the same transaction — never one in `busy`, nor one leased to a `track()` call
/// ([`crate::queue::is_leased`] at `now`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    /// Most records kept.
    pub max: usize,
    /// Keys this tracker is sending. Shared: while the keys do not change, every `add` carries
    /// the same list, and the edge writes it once (`"busy":"same"` after that).
    pub busy: Rc<Vec<String>>,
    /// Local time, for leases.
    pub now: f64,
}

/// A store operation. Each is one transaction, all-or-nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreCmd {
    /// Inserts records whose key is not stored yet (an existing one is kept as it is and
    /// reported), then keeps the [`Limit`]. Reports, too, the `sent_at` of a dead letter with
    /// the same key (an earlier attempt of it may still be running at Autumn).
    Add {
        /// New records.
        recs: Vec<Record>,
        /// The queue's bound.
        limit: Option<Limit>,
    },
    /// Replaces records that are still stored (by key), ignoring those that are gone.
    Update {
        /// Records to write back.
        recs: Vec<Record>,
    },
    /// A `track()` call rewrites its own record: only if it is still stored *as the call last
    /// wrote it* (its send stamp `sent_at.local` is `prev`; `None`: no stamp) — a compare and
    /// set, so a call whose record another tab took over (it judged the lease over) never
    /// overwrites that tab's state, nor sends again. [`Stored::Updated`] names it if not written.
    Renew {
        /// The record.
        rec: Record,
        /// Its stored `sent_at.local`, as this call wrote it.
        prev: Option<f64>,
    },
    /// Deletes records by key (missing ones ignored).
    Delete {
        /// Keys.
        keys: Vec<String>,
    },
    /// Every queued record, by `seq` then key.
    Load,
    /// Counts queued records and dead letters.
    Count,
    /// Moves records from the queue to the dead letters.
    MoveToDead {
        /// The letters (with their records).
        letters: Vec<DeadLetter>,
    },
    /// Every dead letter.
    LoadDead,
    /// Deletes dead letters by key; answers how many existed.
    DeleteDead {
        /// Keys.
        keys: Vec<String>,
    },
    /// Moves dead letters back into the queue as these records.
    Revive {
        /// The revived records (see [`crate::queue::revive`]).
        recs: Vec<Record>,
    },
}

/// A store operation's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Stored {
    /// Done, nothing to report.
    Done,
    /// [`StoreCmd::Add`]: keys set aside to keep the bound, and keys that were already stored.
    Added {
        /// Set aside as `queue_full`.
        evicted: Vec<String>,
        /// Already queued: kept as they were.
        existing: Vec<String>,
        /// Keys with a dead letter whose record was marked as sent, and when.
        dead_sent: Vec<(String, crate::queue::Sent)>,
    },
    /// [`StoreCmd::Load`]: each record, or `(key, why)` for a stored value that does not decode.
    Loaded(Vec<Result<Record, (String, String)>>),
    /// [`StoreCmd::Count`].
    Counted {
        /// Queued records.
        queued: u32,
        /// Dead letters.
        dead: u32,
    },
    /// [`StoreCmd::LoadDead`].
    DeadLoaded(Vec<DeadLetter>),
    /// [`StoreCmd::DeleteDead`]: how many existed.
    Number(f64),
    /// [`StoreCmd::Update`]: the keys that were no longer stored (another tab settled them).
    Updated {
        /// Not written: gone meanwhile.
        missing: Vec<String>,
    },
}

/// Which endpoint a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST {baseUrl}/v1/balances.track`.
    Track,
    /// `POST {baseUrl}/v1/balances.batch_track`.
    Batch,
}

/// One event for the Cloudflare Queue: its key and exact wire body (with `timestamp`).
#[derive(Debug, Clone, PartialEq)]
pub struct HandOverItem {
    /// The idempotency key.
    pub key: String,
    /// The wire body, `timestamp` = when `track()` was called.
    pub body: String,
    /// When `track()` was called (local ms).
    pub created_at: f64,
    /// Why it could not be delivered now.
    pub reason: &'static str,
    /// The latest attempt without an answer (the consumer waits out its window).
    pub sent_at: Option<f64>,
    /// Deliver no earlier than this many ms from now.
    pub delay_ms: u64,
}

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Open the main store (the kind and name are in the options). Answer [`Input::Opened`].
    Open,
    /// Run a store operation. Answer [`Input::Stored`].
    Store {
        /// Operation id.
        id: Id,
        /// Which store.
        target: Target,
        /// What to do.
        cmd: StoreCmd,
    },
    /// Send a request (`timeoutMs` covers the whole answer). Answer [`Input::Replied`].
    Send {
        /// Request id.
        id: Id,
        /// Where.
        endpoint: Endpoint,
        /// JSON body.
        body: String,
        /// Let it outlive the page (within the browser's budget).
        keepalive: bool,
    },
    /// Send these to the Cloudflare Queue. Answer [`Input::HandedOver`].
    HandOver {
        /// Hand-over id.
        id: Id,
        /// The messages.
        items: Vec<HandOverItem>,
    },
    /// Wake the engine ([`Input::Timer`]) at this local time, replacing any earlier wake-up;
    /// `None`: no wake-up needed.
    Wake(Option<f64>),
    /// Take the drain lock if no other tab holds it. Answer [`Input::Locked`].
    Lock,
    /// Let the drain lock go.
    Unlock,
    /// Tell the other tabs something was queued.
    Announce,
    /// Tell the listeners.
    Emit(Notice),
    /// End a call.
    Resolve {
        /// The call.
        call: Id,
        /// How it ended.
        result: Result<Outcome, TrackError>,
    },
    /// Close the main store (data stays).
    CloseStore,
}

/// Where a queued event waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The main store, which survives a reload (IndexedDB, SQLite, Postgres).
    Durable,
    /// Memory: this page or process only.
    Memory,
    /// The Cloudflare Queue.
    Cloudflare,
    /// No queue.
    Off,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Recorded (2xx); `response` is the request whose body the driver hands back.
    Delivered {
        /// The key.
        key: String,
        /// Requests made.
        attempts: u32,
        /// The request that was answered.
        response: Id,
    },
    /// Already recorded (409, proven).
    Duplicate {
        /// The key.
        key: String,
        /// Requests made.
        attempts: u32,
    },
    /// Kept, to be replayed with the same key.
    Queued {
        /// The key.
        key: String,
        /// Why it was not delivered now.
        reason: &'static str,
        /// What happened, for people.
        message: String,
        /// Where it waits.
        storage: Storage,
    },
    /// `flush()`.
    Flushed {
        /// Delivered during the flush.
        delivered: u32,
        /// Already recorded.
        duplicates: u32,
        /// Set aside as dead letters.
        failed: u32,
        /// Still queued.
        remaining: u32,
        /// Handed to the Cloudflare Queue.
        handed_over: u32,
    },
    /// `pending()`.
    Pending {
        /// Queued, not being sent.
        queued: u32,
        /// Being sent.
        in_flight: u32,
        /// Dead letters.
        dead: u32,
        /// The main store's kind.
        storage: Storage,
        /// Of the queued, how many wait in memory because the main store refused them.
        spilled: u32,
    },
    /// `deadLetters()`.
    DeadLetters(Vec<DeadLetter>),
    /// `discard()`, `retryDeadLetters()`: how many.
    Count(u32),
}

/// A tracker event for listeners. Never carries the secret key.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// `queued`, `delivered`, `retrying`, `dead_letter`, `evicted`, `storage_fallback`.
    pub kind: &'static str,
    /// The event's key.
    pub key: Option<String>,
    /// `queued`: why; `evicted`: `expired` or `queue_full`.
    pub reason: Option<&'static str>,
    /// What happened.
    pub message: Option<String>,
    /// `dead_letter`: the code.
    pub code: Option<String>,
    /// `dead_letter`: the status.
    pub status: Option<u16>,
    /// `delivered`: already recorded.
    pub duplicate: Option<bool>,
    /// `retrying`: how many events the failed request carried.
    pub count: Option<u32>,
    /// `queued`: where it waits.
    pub storage: Option<Storage>,
}

impl Notice {
    /// A notice of this kind with nothing else.
    pub fn new(kind: &'static str) -> Notice {
        Notice {
            kind,
            key: None,
            reason: None,
            message: None,
            code: None,
            status: None,
            duplicate: None,
            count: None,
            storage: None,
        }
    }

    pub(crate) fn keyed(kind: &'static str, key: &str) -> Notice {
        Notice {
            key: Some(String::from(key)),
            ..Notice::new(kind)
        }
    }
}
