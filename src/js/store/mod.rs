//! Storage for the offline queue: IndexedDB where the runtime has it (pages, dedicated and
//! service workers), memory elsewhere (Node, Cloudflare Workers) or when IndexedDB will not
//! open (private modes, blocked storage, a database from a newer SDK, a timeout).
//!
//! The I/O lives in `js/store.js` (a wasm-bindgen snippet): IndexedDB driven from JavaScript is
//! a few hundred bytes where the same calls bound through web-sys cost tens of kilobytes of
//! wasm. This module keeps the typed API, encodes records, and validates everything read
//! back ([`codec`]), so a foreign or corrupt value becomes an `Err` item, never a crash.
//!
//! Both stores behave the same: writes of a batch are all-or-nothing, `load` orders records by
//! `seq` (ties by key, in IndexedDB's key order), and a memory store opened again under the same
//! name sees the same data, as a database would, for the life of the page or process.
//!
//! Layout (schema [`SCHEMA_VERSION`]): object store `"queue"` keyed by `"key"` with an index
//! `"seq"`, and `"dead"` keyed by `"key"` with an index `"seq"` on `"record.seq"`. A record is a
//! plain object `{v, key, seq, customer, body, ts?, createdAt, attempts, nextAt, lastError?}`; a
//! dead letter is `{v, key, record, code, message, status?, failedAt}`, where `v` is
//! [`RECORD_VERSION`](crate::queue::RECORD_VERSION).

mod codec;

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Array, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::queue::{DeadLetter, Record};
use codec::Keys;

/// Version of the IndexedDB schema (object stores and indexes), as `js/store.js` creates it.
pub const SCHEMA_VERSION: u32 = 1;

/// How long `Store::open` waits for IndexedDB (an open blocked by another tab never settles).
pub const OPEN_TIMEOUT_MS: i32 = 3000;

/// What `load` gives back: each stored value, decoded, or `(key or "", reason)`.
pub type Loaded = Vec<Result<Record, (String, String)>>;

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    type JsStore;

    #[wasm_bindgen(js_name = openStore)]
    fn open_store(kind: &str, name: &str) -> Promise;

    #[wasm_bindgen(js_name = deleteDatabase)]
    fn delete_db(name: &str) -> Promise;

    #[wasm_bindgen(js_name = describe)]
    fn describe_js(what: &str, err: &JsValue) -> String;

    /// `exclusive(name, run)`: resolves `true` if `run` ran, `false` if another tab drains.
    #[wasm_bindgen(js_name = exclusive)]
    pub fn exclusive(name: &str, run: &js_sys::Function) -> Promise;

    /// After a panic: a drain that held the tab lock will never finish; let the lock go.
    pub fn panicked();

    /// Tells the other tabs an event was queued.
    pub type Channel;

    /// `openChannel(name, onMessage)`: `null` where there is no BroadcastChannel.
    #[wasm_bindgen(js_name = openChannel)]
    pub fn open_channel(name: &str, on_message: &js_sys::Function) -> Option<Channel>;

    #[wasm_bindgen(method)]
    pub fn post(this: &Channel);

    #[wasm_bindgen(method, js_name = close)]
    pub fn close_channel(this: &Channel);

    /// Every operation goes through this one method: one import, one shim.
    #[wasm_bindgen(method, js_name = op)]
    fn op(this: &JsStore, name: &str, arg: &JsValue) -> Promise;

    #[wasm_bindgen(method, js_name = isDurable)]
    fn durable(this: &JsStore) -> bool;

    #[wasm_bindgen(method, js_name = isClosed)]
    fn closed(this: &JsStore) -> bool;

    #[wasm_bindgen(method, js_name = close)]
    fn close_js(this: &JsStore);
}

/// A short message for a failed storage call: `what`, then what the `DOMException` (or
/// anything with a `name`) means. A full quota yields a message containing "quota".
pub fn describe(what: &str, err: Option<&JsValue>) -> String {
    describe_js(what, err.unwrap_or(&JsValue::NULL))
}

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
pub struct Store {
    js: JsStore,
    keys: Keys,
}

async fn settle(p: Promise) -> Result<JsValue, String> {
    JsFuture::from(p).await.map_err(|e| {
        e.as_string()
            .unwrap_or_else(|| String::from("the store failed"))
    })
}

impl Store {
    /// Opens the store called `name`. [`Kind::Auto`] and [`Kind::IndexedDb`] try IndexedDB and,
    /// on any failure (missing, blocked, `SecurityError`, open error, no answer within
    /// [`OPEN_TIMEOUT_MS`]), fall back to memory and return the reason as the second value.
    /// [`Kind::Memory`] always opens memory and returns `None`.
    pub async fn open(kind: Kind, name: &str) -> (Store, Option<String>) {
        let kind = match kind {
            Kind::Memory => "memory",
            Kind::Auto | Kind::IndexedDb => "auto",
        };
        let opened = settle(open_store(kind, name))
            .await
            .unwrap_or(JsValue::NULL);
        let get =
            |k: &str| js_sys::Reflect::get(&opened, &JsValue::from_str(k)).unwrap_or(JsValue::NULL);
        (
            Store {
                js: get("store").unchecked_into(),
                keys: Keys::new(),
            },
            get("fallback").as_string(),
        )
    }

    /// True when records survive a reload (IndexedDB).
    pub fn is_durable(&self) -> bool {
        self.js.durable()
    }

    /// True after [`Store::close`], or after the browser or another tab (upgrading the schema)
    /// closed the database: every operation then fails, and the caller should open again.
    pub fn is_closed(&self) -> bool {
        self.js.closed()
    }

    async fn run(&self, name: &str, arg: &JsValue) -> Result<JsValue, String> {
        settle(self.js.op(name, arg)).await
    }

    async fn write(&self, name: &str, items: Array) -> Result<(), String> {
        self.run(name, &items).await.map(drop)
    }

    fn records(&self, recs: &[Record]) -> Result<Array, String> {
        recs.iter().try_for_each(check_record)?;
        recs.iter()
            .map(|r| codec::encode_record(&self.keys, r))
            .collect::<Result<Array, JsValue>>()
            .map_err(|_| String::from(NON_FINITE))
    }

    fn letters(&self, d: &[DeadLetter]) -> Result<Array, String> {
        d.iter().try_for_each(check_dead)?;
        d.iter()
            .map(|l| codec::encode_dead(&self.keys, l))
            .collect::<Result<Array, JsValue>>()
            .map_err(|_| String::from(NON_FINITE))
    }

    /// Inserts or replaces (by key) every record, in one transaction: resolves once it is
    /// committed, or fails without having written any of them (a message containing "quota"
    /// when storage is full).
    pub async fn put(&self, recs: &[Record]) -> Result<(), String> {
        self.write("put", self.records(recs)?).await
    }

    /// Bounds the queue for [`Store::add`]: beyond `max` records, the oldest that are not being
    /// sent (`busy(key)` false, and not leased to a `track()` call: `attempts` 0 with `nextAt`
    /// ahead) become `queue_full` dead letters.
    pub fn limit(&self, max: usize, busy: &js_sys::Function) {
        let o = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str("max"), &JsValue::from(max as f64));
        let _ = js_sys::Reflect::set(&o, &JsValue::from_str("busy"), busy);
        let _ = self.js.op("limit", &o);
    }

    /// Writes new records like [`Store::put`] and keeps the queue within its [`Store::limit`]
    /// in the same transaction: resolves with the keys set aside (as `queue_full` dead
    /// letters) to make room.
    pub async fn add(&self, recs: &[Record]) -> Result<Vec<String>, String> {
        let out = self.run("add", &self.records(recs)?.into()).await?;
        Ok(out
            .dyn_into::<Array>()
            .map(|a| a.iter().filter_map(|k| k.as_string()).collect())
            .unwrap_or_default())
    }

    /// Replaces records that are still stored (by key), ignoring those that are gone: for
    /// writing back a record after an attempt without resurrecting one that another sender
    /// delivered or set aside meanwhile. One transaction.
    pub async fn update(&self, recs: &[Record]) -> Result<(), String> {
        self.write("update", self.records(recs)?).await
    }

    /// Deletes the records with these keys (missing ones are ignored), in one transaction.
    pub async fn delete(&self, keys: &[String]) -> Result<(), String> {
        self.write("del", keys.iter().map(|k| JsValue::from_str(k)).collect())
            .await
    }

    /// Every queued record, ordered by `seq` ascending (ties by key). A stored value that does
    /// not decode comes back as `Err((key, reason))` (key empty when it is not a string), after
    /// the records, instead of failing the load.
    pub async fn load(&self) -> Result<Loaded, String> {
        let all: Array = self.run("load", &JsValue::NULL).await?.unchecked_into();
        let mut out = Vec::with_capacity(all.length() as usize);
        let mut bad = Vec::new();
        for v in all.iter() {
            match codec::decode_record(&self.keys, &v) {
                Ok(r) => out.push(Ok(r)),
                Err(e) => bad.push(Err(e)),
            }
        }
        out.append(&mut bad);
        Ok(out)
    }

    /// Number of queued records (undecodable ones included).
    pub async fn count(&self) -> Result<u32, String> {
        Ok(self
            .run("count", &JsValue::NULL)
            .await?
            .as_f64()
            .unwrap_or(0.0) as u32)
    }

    /// Inserts or replaces dead letters (by their record's key), in one transaction.
    pub async fn put_dead(&self, d: &[DeadLetter]) -> Result<(), String> {
        self.write("putDead", self.letters(d)?).await
    }

    /// Every dead letter, by key. One that does not decode comes back as a `corrupt_record`
    /// letter keeping its key and whatever fields read cleanly.
    pub async fn load_dead(&self) -> Result<Vec<DeadLetter>, String> {
        let all: Array = self.run("loadDead", &JsValue::NULL).await?.unchecked_into();
        Ok(all
            .iter()
            .map(|v| codec::decode_dead(&self.keys, &v))
            .collect())
    }

    /// The dead letters as `deadLetters()` shows them (plain objects made by the JS store).
    pub async fn dead_list(&self) -> Result<JsValue, String> {
        self.run("deadList", &JsValue::NULL).await
    }

    /// Deletes dead letters by key, in one transaction; resolves with how many existed.
    pub async fn delete_dead(&self, keys: &[String]) -> Result<u32, String> {
        let keys: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        Ok(self.run("delDead", &keys).await?.as_f64().unwrap_or(0.0) as u32)
    }

    /// `{ queued, deadLetters, storage }`, counted in one go.
    pub async fn pending(&self) -> Result<JsValue, String> {
        self.run("pending", &JsValue::NULL).await
    }

    /// Number of dead letters.
    pub async fn count_dead(&self) -> Result<u32, String> {
        Ok(self
            .run("countDead", &JsValue::NULL)
            .await?
            .as_f64()
            .unwrap_or(0.0) as u32)
    }

    /// Moves records from the queue to the dead letters, in one transaction over both.
    pub async fn move_to_dead(&self, d: &[DeadLetter]) -> Result<(), String> {
        self.write("moveToDead", self.letters(d)?).await
    }

    /// Moves dead letters back into the queue as these records, in one transaction over both.
    pub async fn revive(&self, recs: &[Record]) -> Result<(), String> {
        self.write("revive", self.records(recs)?).await
    }

    /// Moves dead letters (all, or those with these keys) back into the queue as fresh records:
    /// no attempts yet, due `now`, `created_at` at least `min_created`. Letters that are not a
    /// whole record stay dead. Resolves with how many moved. One transaction.
    pub async fn revive_dead(
        &self,
        keys: Option<&[String]>,
        now: f64,
        min_created: f64,
    ) -> Result<u32, String> {
        let arg = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| {
            let _ = js_sys::Reflect::set(&arg, &JsValue::from_str(k), v);
        };
        set(
            "keys",
            &keys.map_or(JsValue::NULL, |k| {
                k.iter()
                    .map(|k| JsValue::from_str(k))
                    .collect::<Array>()
                    .into()
            }),
        );
        set("now", &JsValue::from_f64(now));
        set("minCreated", &JsValue::from_f64(min_created));
        Ok(self.run("reviveDead", &arg).await?.as_f64().unwrap_or(0.0) as u32)
    }

    /// The highest `seq` in the queue or the dead letters (0 when both are empty), so a new
    /// tracker continues the sequence.
    pub async fn max_seq(&self) -> Result<f64, String> {
        Ok(self
            .run("maxSeq", &JsValue::NULL)
            .await?
            .as_f64()
            .unwrap_or(0.0))
    }

    /// Closes the store (IndexedDB: the connection). Data stays for the next `open`.
    pub fn close(&self) {
        self.js.close_js();
    }
}

/// Deletes the store called `name` everywhere: the memory one and the IndexedDB database.
/// Open stores should be closed first (an open IndexedDB connection of this SDK closes itself
/// when asked). For tests and a "forget everything" button.
pub async fn delete_database(name: &str) -> Result<(), String> {
    settle(delete_db(name)).await.map(drop)
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
