//! The IndexedDB store. Every request and transaction is awaited through a `Promise` whose
//! `resolve`/`reject` are set directly as the event handlers, so an operation allocates no
//! Rust closure; writes resolve on the transaction's `complete` event (with
//! `durability: "strict"` where the browser supports it). Reads take their results after the
//! transaction completes, so nothing depends on when futures are polled.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;

use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Event, IdbCursor, IdbCursorDirection, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore,
    IdbObjectStoreParameters, IdbOpenDbRequest, IdbRequest, IdbTransaction,
};

use super::{check_dead, check_record, cmp_records, Loaded, OPEN_TIMEOUT_MS, SCHEMA_VERSION};
use crate::js::sys;
use crate::queue::{DeadLetter, Record, RECORD_VERSION};

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, for the one call web-sys binds only as unstable API.
    #[wasm_bindgen(extends = IdbDatabase)]
    type Db;

    /// `db.transaction(stores, mode, options)`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_opts(
        this: &Db,
        stores: &JsValue,
        mode: &str,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;
}

const QUEUE: &str = "queue";
const DEAD: &str = "dead";
const SEQ: &str = "seq";
const CLOSED: &str = "the database connection is closed";

/// A short message for a failed IndexedDB call: `what`, then what the `DOMException` (or
/// anything with a `name`) means. A full quota yields a message containing "quota".
pub fn describe(what: &str, err: Option<&JsValue>) -> String {
    let name = err
        .and_then(|e| Reflect::get(e, &JsValue::from_str("name")).ok())
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    let name = clip(&name, 64);
    let detail = match name {
        "QuotaExceededError" => "storage quota exceeded",
        "InvalidStateError" => CLOSED,
        "VersionError" => "the database was created by a newer version of this SDK",
        "SecurityError" => {
            "storage is not allowed here (private mode, blocked cookies, an opaque origin)"
        }
        "UnknownError" => "the browser's storage failed",
        "AbortError" => "the transaction was aborted",
        "DataError" | "DataCloneError" => "a value could not be stored",
        "ConstraintError" => "a stored value broke a constraint",
        "NotFoundError" => "the database lacks an expected object store",
        "TimeoutError" => "the operation timed out",
        _ => "",
    };
    let mut s = String::from(what);
    s.push_str(": ");
    match (detail, name) {
        ("", "") => s.push_str("no reason given"),
        ("", n) => s.push_str(n),
        (d, n) => {
            s.push_str(d);
            s.push_str(" (");
            s.push_str(n);
            s.push(')');
        }
    }
    s
}

fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => s.get(..i).unwrap_or(s),
        None => s,
    }
}

/// The global `indexedDB`, which pages, dedicated workers and service workers have.
fn factory() -> Result<IdbFactory, String> {
    match Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB")) {
        Err(e) => Err(describe("IndexedDB is not accessible", Some(&e))),
        Ok(f) if f.is_object() => Ok(f.unchecked_into()),
        Ok(_) => Err(String::from("IndexedDB is not available in this runtime")),
    }
}

/// How an open or delete request ended, when it did not succeed.
enum Settled {
    Failed(JsValue),
    TimedOut,
}

/// Waits for `req` to succeed, fail, or for `OPEN_TIMEOUT_MS` to pass.
async fn settle(req: &IdbRequest) -> Result<(), Settled> {
    let marker: JsValue = Object::new().into();
    let mut timer = JsValue::UNDEFINED;
    let p = Promise::new(&mut |resolve, reject| {
        req.set_onsuccess(Some(&resolve));
        req.set_onerror(Some(&reject));
        let fire: js_sys::Function = reject.bind1(&JsValue::UNDEFINED, &marker).unchecked_into();
        timer = sys::set_timeout(&fire, OPEN_TIMEOUT_MS);
    });
    let outcome = JsFuture::from(p).await;
    sys::clear_timeout(&timer);
    match outcome {
        Ok(_) => Ok(()),
        Err(e) if e == marker => Err(Settled::TimedOut),
        Err(_) => Err(Settled::Failed(
            req.error()
                .ok()
                .flatten()
                .map(JsValue::from)
                .unwrap_or(JsValue::NULL),
        )),
    }
}

/// Deletes the database `name`; `Ok` where there is no IndexedDB.
pub(super) async fn delete_database(name: &str) -> Result<(), String> {
    let Ok(f) = factory() else { return Ok(()) };
    let req = f
        .delete_database(name)
        .map_err(|e| describe("could not delete the database", Some(&e)))?;
    match settle(&req).await {
        Ok(()) => Ok(()),
        Err(Settled::TimedOut) => Err(String::from(
            "could not delete the database: another connection keeps it open",
        )),
        Err(Settled::Failed(e)) => Err(describe("could not delete the database", Some(&e))),
    }
}

/// Creates or completes the schema inside the `versionchange` transaction; aborts the
/// upgrade (so the open fails and nothing half-made stays) if anything throws.
fn on_upgrade(ev: Event) {
    let Some(target) = ev.target() else { return };
    let req: IdbOpenDbRequest = target.unchecked_into();
    if create_schema(&req).is_err() {
        if let Some(tx) = req.transaction() {
            let _ = tx.abort();
        }
    }
}

fn create_schema(req: &IdbOpenDbRequest) -> Result<(), JsValue> {
    let db: IdbDatabase = req.result()?.unchecked_into();
    let tx = req.transaction().ok_or(JsValue::NULL)?;
    let names = db.object_store_names();
    let store = |name: &str| -> Result<IdbObjectStore, JsValue> {
        if names.contains(name) {
            tx.object_store(name)
        } else {
            let params = IdbObjectStoreParameters::new();
            params.set_key_path(&JsValue::from_str("key"));
            db.create_object_store_with_optional_parameters(name, &params)
        }
    };
    let queue = store(QUEUE)?;
    if !queue.index_names().contains(SEQ) {
        queue.create_index_with_str(SEQ, "seq")?;
    }
    let dead = store(DEAD)?;
    if !dead.index_names().contains(SEQ) {
        dead.create_index_with_str(SEQ, "record.seq")?;
    }
    Ok(())
}

/// True when `db` has the object stores, key paths and indexes this module writes.
fn layout_ok(db: &IdbDatabase) -> bool {
    let names = db.object_store_names();
    if !names.contains(QUEUE) || !names.contains(DEAD) {
        return false;
    }
    let both = Array::of2(&JsValue::from_str(QUEUE), &JsValue::from_str(DEAD));
    let Ok(tx) = db
        .unchecked_ref::<Db>()
        .transaction_opts(&both, "readonly", &JsValue::UNDEFINED)
    else {
        return false;
    };
    [QUEUE, DEAD].iter().all(|n| {
        tx.object_store(n).is_ok_and(|s| {
            s.index_names().contains(SEQ)
                && s.key_path().ok().and_then(|k| k.as_string()).as_deref() == Some("key")
        })
    })
}

/// Property names, made once per store rather than once per field per record.
struct Keys {
    v: JsValue,
    key: JsValue,
    seq: JsValue,
    customer: JsValue,
    body: JsValue,
    ts: JsValue,
    created_at: JsValue,
    attempts: JsValue,
    next_at: JsValue,
    last_error: JsValue,
    record: JsValue,
    code: JsValue,
    message: JsValue,
    status: JsValue,
    failed_at: JsValue,
}

impl Keys {
    fn new() -> Keys {
        let k = JsValue::from_str;
        Keys {
            v: k("v"),
            key: k("key"),
            seq: k("seq"),
            customer: k("customer"),
            body: k("body"),
            ts: k("ts"),
            created_at: k("createdAt"),
            attempts: k("attempts"),
            next_at: k("nextAt"),
            last_error: k("lastError"),
            record: k("record"),
            code: k("code"),
            message: k("message"),
            status: k("status"),
            failed_at: k("failedAt"),
        }
    }
}

/// The queue in IndexedDB; see the module docs.
pub struct IdbStore {
    db: IdbDatabase,
    keys: Keys,
    /// `{ durability: "strict" }` for write transactions.
    strict: JsValue,
    closed: Rc<Cell<bool>>,
    /// `onversionchange` / `onclose`: closes the connection so another tab's upgrade proceeds.
    _on_close: Closure<dyn FnMut(Event)>,
}

impl Drop for IdbStore {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
    }
}

impl IdbStore {
    /// Opens (creating or upgrading) the database `name`; `Err` is the reason it cannot be used.
    pub async fn open(name: &str) -> Result<IdbStore, String> {
        let req = factory()?
            .open_with_u32(name, SCHEMA_VERSION)
            .map_err(|e| describe("IndexedDB refused to open the database", Some(&e)))?;
        let upgrade = Closure::<dyn FnMut(Event)>::new(on_upgrade);
        let blocked = Rc::new(Cell::new(false));
        let on_blocked = {
            let blocked = Rc::clone(&blocked);
            Closure::<dyn FnMut(Event)>::new(move |_: Event| blocked.set(true))
        };
        req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
        req.set_onblocked(Some(on_blocked.as_ref().unchecked_ref()));
        match settle(&req).await {
            Ok(()) => {
                req.set_onupgradeneeded(None);
                req.set_onblocked(None);
                let db: IdbDatabase = req
                    .result()
                    .map_err(|e| describe("IndexedDB did not open the database", Some(&e)))?
                    .unchecked_into();
                if !layout_ok(&db) {
                    db.close();
                    return Err(String::from(
                        "the IndexedDB database has an unexpected layout (a name clash?)",
                    ));
                }
                Ok(IdbStore::new(db))
            }
            Err(Settled::Failed(e)) => {
                Err(describe("IndexedDB could not open the database", Some(&e)))
            }
            Err(Settled::TimedOut) => {
                // The request may still settle (e.g. once another tab lets go): keep its
                // handlers alive until then, and close whatever it opens.
                let late = Closure::once_into_js(move |ev: Event| {
                    if let Some(t) = ev.target() {
                        let r: IdbOpenDbRequest = t.unchecked_into();
                        r.set_onupgradeneeded(None);
                        r.set_onblocked(None);
                        r.set_onsuccess(None);
                        r.set_onerror(None);
                        if let Ok(db) = r.result() {
                            db.unchecked_into::<IdbDatabase>().close();
                        }
                    }
                    drop(upgrade);
                    drop(on_blocked);
                });
                req.set_onsuccess(Some(late.unchecked_ref()));
                req.set_onerror(Some(late.unchecked_ref()));
                Err(String::from(if blocked.get() {
                    "IndexedDB is blocked: another tab keeps an older version of the database open"
                } else {
                    "IndexedDB did not open the database within 3 s"
                }))
            }
        }
    }

    fn new(db: IdbDatabase) -> IdbStore {
        let closed = Rc::new(Cell::new(false));
        let on_close = {
            let closed = Rc::clone(&closed);
            Closure::<dyn FnMut(Event)>::new(move |ev: Event| {
                closed.set(true);
                if let Some(t) = ev.target() {
                    t.unchecked_into::<IdbDatabase>().close();
                }
            })
        };
        db.set_onversionchange(Some(on_close.as_ref().unchecked_ref()));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let strict: JsValue = Object::new().into();
        let _ = Reflect::set(
            &strict,
            &JsValue::from_str("durability"),
            &JsValue::from_str("strict"),
        );
        IdbStore {
            db,
            keys: Keys::new(),
            strict,
            closed,
            _on_close: on_close,
        }
    }

    /// True after `close()` or once the browser or another tab's upgrade closed the connection.
    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.closed.set(true);
        self.db.close();
    }

    /// Runs `f` in a transaction over `stores` and waits for the transaction to finish. If `f`
    /// throws, the transaction is aborted (nothing it did is kept).
    async fn run<T>(
        &self,
        stores: &[&str],
        write: bool,
        f: impl FnOnce(&IdbTransaction) -> Result<T, JsValue>,
    ) -> Result<T, String> {
        if self.closed.get() {
            return Err(String::from(CLOSED));
        }
        let names: JsValue = stores
            .iter()
            .map(|s| JsValue::from_str(s))
            .collect::<Array>()
            .into();
        let tx = if write {
            self.db
                .unchecked_ref::<Db>()
                .transaction_opts(&names, "readwrite", &self.strict)
        } else {
            self.db
                .unchecked_ref::<Db>()
                .transaction_opts(&names, "readonly", &JsValue::UNDEFINED)
        }
        .map_err(|e| describe("could not start an IndexedDB transaction", Some(&e)))?;
        let done = JsFuture::from(Promise::new(&mut |resolve, reject| {
            tx.set_oncomplete(Some(&resolve));
            tx.set_onabort(Some(&reject));
        }));
        let out = f(&tx);
        if let Err(e) = &out {
            let _ = tx.abort();
            let _ = done.await;
            return Err(describe(
                if write {
                    "IndexedDB write failed"
                } else {
                    "IndexedDB read failed"
                },
                Some(e),
            ));
        }
        match (done.await, out) {
            (Ok(_), Ok(v)) => Ok(v),
            _ => Err(describe(
                if write {
                    "IndexedDB write failed"
                } else {
                    "IndexedDB read failed"
                },
                tx.error().map(JsValue::from).as_ref(),
            )),
        }
    }

    /// Inserts or replaces records by key, in one durable transaction.
    pub async fn put(&self, recs: &[Record]) -> Result<(), String> {
        recs.iter().try_for_each(check_record)?;
        let k = &self.keys;
        self.run(&[QUEUE], true, |tx| {
            let queue = tx.object_store(QUEUE)?;
            for r in recs {
                queue.put(&encode_record(k, r)?)?;
            }
            Ok(())
        })
        .await
    }

    /// Deletes records by key, in one transaction.
    pub async fn delete(&self, keys: &[String]) -> Result<(), String> {
        self.run(&[QUEUE], true, |tx| {
            delete_keys(&tx.object_store(QUEUE)?, keys)
        })
        .await
    }

    /// Every record, by `seq` then key; undecodable values as `Err` items after them.
    pub async fn load(&self) -> Result<Loaded, String> {
        let req = self
            .run(&[QUEUE], false, |tx| tx.object_store(QUEUE)?.get_all())
            .await?;
        let all = results(&req)?;
        let mut good = Vec::with_capacity(all.length() as usize);
        let mut bad = Vec::new();
        for v in all.iter() {
            match decode_record(&self.keys, &v) {
                Ok(r) => good.push(r),
                Err(e) => bad.push(Err(e)),
            }
        }
        good.sort_by(cmp_records);
        let mut out: Vec<_> = good.into_iter().map(Ok).collect();
        out.append(&mut bad);
        Ok(out)
    }

    /// Number of stored records.
    pub async fn count(&self) -> Result<u32, String> {
        let req = self
            .run(&[QUEUE], false, |tx| tx.object_store(QUEUE)?.count())
            .await?;
        let n = req.result().ok().and_then(|n| n.as_f64());
        n.map(|n| n as u32)
            .ok_or_else(|| String::from("IndexedDB read failed: no count"))
    }

    /// Inserts or replaces dead letters by key, in one durable transaction.
    pub async fn put_dead(&self, letters: &[DeadLetter]) -> Result<(), String> {
        letters.iter().try_for_each(check_dead)?;
        let k = &self.keys;
        self.run(&[DEAD], true, |tx| {
            let dead = tx.object_store(DEAD)?;
            for l in letters {
                dead.put(&encode_dead(k, l)?)?;
            }
            Ok(())
        })
        .await
    }

    /// Every dead letter, by key; undecodable ones as `corrupt_record` letters.
    pub async fn load_dead(&self) -> Result<Vec<DeadLetter>, String> {
        let req = self
            .run(&[DEAD], false, |tx| tx.object_store(DEAD)?.get_all())
            .await?;
        Ok(results(&req)?
            .iter()
            .map(|v| decode_dead(&self.keys, &v))
            .collect())
    }

    /// Deletes dead letters by key, in one transaction.
    pub async fn delete_dead(&self, keys: &[String]) -> Result<(), String> {
        self.run(&[DEAD], true, |tx| {
            delete_keys(&tx.object_store(DEAD)?, keys)
        })
        .await
    }

    /// Queue → dead in one transaction over both stores.
    pub async fn move_to_dead(&self, letters: &[DeadLetter]) -> Result<(), String> {
        letters.iter().try_for_each(check_dead)?;
        let k = &self.keys;
        self.run(&[QUEUE, DEAD], true, |tx| {
            let (queue, dead) = (tx.object_store(QUEUE)?, tx.object_store(DEAD)?);
            for l in letters {
                queue.delete(&JsValue::from_str(&l.record.key))?;
                dead.put(&encode_dead(k, l)?)?;
            }
            Ok(())
        })
        .await
    }

    /// Dead → queue in one transaction over both stores.
    pub async fn revive(&self, recs: &[Record]) -> Result<(), String> {
        recs.iter().try_for_each(check_record)?;
        let k = &self.keys;
        self.run(&[QUEUE, DEAD], true, |tx| {
            let (queue, dead) = (tx.object_store(QUEUE)?, tx.object_store(DEAD)?);
            for r in recs {
                dead.delete(&JsValue::from_str(&r.key))?;
                queue.put(&encode_record(k, r)?)?;
            }
            Ok(())
        })
        .await
    }

    /// Highest numeric `seq` in either store (one key cursor per `seq` index), 0 when none.
    pub async fn max_seq(&self) -> Result<f64, String> {
        let (a, b) = self
            .run(&[QUEUE, DEAD], false, |tx| {
                // Numbers sort below every other key type, and IndexedDB keys cannot be NaN.
                let range = IdbKeyRange::upper_bound(&JsValue::from_f64(f64::MAX))?;
                let last = |name: &str| -> Result<IdbRequest, JsValue> {
                    tx.object_store(name)?
                        .index(SEQ)?
                        .open_key_cursor_with_range_and_direction(&range, IdbCursorDirection::Prev)
                };
                Ok((last(QUEUE)?, last(DEAD)?))
            })
            .await?;
        let top = |req: &IdbRequest| -> Option<f64> {
            let cursor = req.result().ok()?;
            if cursor.is_null() || cursor.is_undefined() {
                return None;
            }
            cursor.unchecked_into::<IdbCursor>().key().ok()?.as_f64()
        };
        Ok(match (top(&a), top(&b)) {
            (Some(x), Some(y)) => x.max(y),
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => 0.0,
        })
    }
}

fn delete_keys(store: &IdbObjectStore, keys: &[String]) -> Result<(), JsValue> {
    for k in keys {
        store.delete(&JsValue::from_str(k))?;
    }
    Ok(())
}

/// The array a finished `getAll` request produced.
fn results(req: &IdbRequest) -> Result<Array, String> {
    match req.result() {
        Ok(v) if Array::is_array(&v) => Ok(v.unchecked_into()),
        _ => Err(String::from("IndexedDB read failed: no result")),
    }
}

// ---- encoding ------------------------------------------------------------------------------

fn set(o: &Object, k: &JsValue, v: &JsValue) -> Result<(), JsValue> {
    Reflect::set(o, k, v).map(|_| ())
}

fn encode_record(k: &Keys, r: &Record) -> Result<JsValue, JsValue> {
    let o = Object::new();
    set(&o, &k.v, &JsValue::from(RECORD_VERSION))?;
    set(&o, &k.key, &JsValue::from_str(&r.key))?;
    set(&o, &k.seq, &JsValue::from_f64(r.seq))?;
    set(&o, &k.customer, &JsValue::from_str(&r.customer))?;
    set(&o, &k.body, &JsValue::from_str(&r.body))?;
    if let Some(ts) = r.ts {
        set(&o, &k.ts, &JsValue::from_f64(ts))?;
    }
    set(&o, &k.created_at, &JsValue::from_f64(r.created_at))?;
    set(&o, &k.attempts, &JsValue::from(r.attempts))?;
    set(&o, &k.next_at, &JsValue::from_f64(r.next_at))?;
    if let Some(e) = &r.last_error {
        set(&o, &k.last_error, &JsValue::from_str(e))?;
    }
    Ok(o.into())
}

fn encode_dead(k: &Keys, d: &DeadLetter) -> Result<JsValue, JsValue> {
    let o = Object::new();
    set(&o, &k.v, &JsValue::from(RECORD_VERSION))?;
    set(&o, &k.key, &JsValue::from_str(&d.record.key))?;
    set(&o, &k.record, &encode_record(k, &d.record)?)?;
    set(&o, &k.code, &JsValue::from_str(&d.code))?;
    set(&o, &k.message, &JsValue::from_str(&d.message))?;
    if let Some(s) = d.status {
        set(&o, &k.status, &JsValue::from(s))?;
    }
    set(&o, &k.failed_at, &JsValue::from_f64(d.failed_at))?;
    Ok(o.into())
}

// ---- decoding ------------------------------------------------------------------------------

/// `o[k]`; `undefined` when `o` is not an object or reading throws.
fn get(o: &JsValue, k: &JsValue) -> JsValue {
    if !o.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(o, k).unwrap_or(JsValue::UNDEFINED)
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

fn bad(field: &str, want: &str) -> String {
    let mut s = String::from("`");
    s.push_str(field);
    s.push_str("` is missing or not ");
    s.push_str(want);
    s
}

fn string(o: &JsValue, k: &JsValue, field: &str) -> Result<String, String> {
    get(o, k).as_string().ok_or_else(|| bad(field, "a string"))
}

fn finite(o: &JsValue, k: &JsValue, field: &str) -> Result<f64, String> {
    get(o, k)
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or_else(|| bad(field, "a finite number"))
}

fn opt_finite(o: &JsValue, k: &JsValue, field: &str) -> Result<Option<f64>, String> {
    let v = get(o, k);
    if absent(&v) {
        return Ok(None);
    }
    v.as_f64()
        .filter(|n| n.is_finite())
        .map(Some)
        .ok_or_else(|| bad(field, "a finite number"))
}

/// An integer in `0..=max`.
fn whole(v: &JsValue, max: f64) -> Option<f64> {
    v.as_f64()
        .filter(|n| *n >= 0.0 && *n <= max && n.fract() == 0.0)
}

fn check_version(k: &Keys, o: &JsValue) -> Result<(), String> {
    if !o.is_object() {
        return Err(String::from("not an object"));
    }
    match get(o, &k.v).as_f64() {
        Some(v) if v == f64::from(RECORD_VERSION) => Ok(()),
        Some(_) => Err(String::from("unsupported record version `v`")),
        None => Err(bad("v", "a number")),
    }
}

/// Decodes a stored record, validating every field; `Err((key or "", reason))` otherwise.
fn decode_record(k: &Keys, o: &JsValue) -> Result<Record, (String, String)> {
    let key = get(o, &k.key).as_string();
    record_fields(k, o, true).map_err(|e| (key.unwrap_or_default(), e))
}

fn record_fields(k: &Keys, o: &JsValue, versioned: bool) -> Result<Record, String> {
    if versioned {
        check_version(k, o)?;
    } else if !o.is_object() {
        return Err(String::from("not an object"));
    }
    let last_error = get(o, &k.last_error);
    Ok(Record {
        key: string(o, &k.key, "key")?,
        seq: finite(o, &k.seq, "seq")?,
        customer: string(o, &k.customer, "customer")?,
        body: string(o, &k.body, "body")?,
        ts: opt_finite(o, &k.ts, "ts")?,
        created_at: finite(o, &k.created_at, "createdAt")?,
        attempts: whole(&get(o, &k.attempts), f64::from(u32::MAX))
            .map(|n| n as u32)
            .ok_or_else(|| bad("attempts", "a non-negative integer"))?,
        next_at: finite(o, &k.next_at, "nextAt")?,
        last_error: if absent(&last_error) {
            None
        } else {
            Some(
                last_error
                    .as_string()
                    .ok_or_else(|| bad("lastError", "a string"))?,
            )
        },
    })
}

fn dead_fields(k: &Keys, o: &JsValue) -> Result<DeadLetter, String> {
    check_version(k, o)?;
    let key = string(o, &k.key, "key")?;
    let record = record_fields(k, &get(o, &k.record), false).map_err(|e| {
        let mut s = String::from("in `record`: ");
        s.push_str(&e);
        s
    })?;
    if record.key != key {
        return Err(String::from("`record.key` differs from `key`"));
    }
    let status = get(o, &k.status);
    Ok(DeadLetter {
        record,
        code: string(o, &k.code, "code")?,
        message: string(o, &k.message, "message")?,
        status: if absent(&status) {
            None
        } else {
            Some(
                whole(&status, f64::from(u16::MAX))
                    .map(|n| n as u16)
                    .ok_or_else(|| bad("status", "an HTTP status"))?,
            )
        },
        failed_at: finite(o, &k.failed_at, "failedAt")?,
    })
}

/// Decodes a stored dead letter; garbage becomes a `corrupt_record` letter keeping the key and
/// whatever fields read cleanly, with the reason as its message.
fn decode_dead(k: &Keys, o: &JsValue) -> DeadLetter {
    match dead_fields(k, o) {
        Ok(d) => d,
        Err(reason) => {
            let inner = get(o, &k.record);
            let r = if inner.is_object() { &inner } else { o };
            let num = |key: &JsValue| get(r, key).as_f64().filter(|n| n.is_finite());
            let text = |key: &JsValue| get(r, key).as_string().unwrap_or_default();
            DeadLetter {
                record: Record {
                    key: get(o, &k.key).as_string().unwrap_or_default(),
                    seq: num(&k.seq).unwrap_or(0.0),
                    customer: text(&k.customer),
                    body: text(&k.body),
                    ts: num(&k.ts),
                    created_at: num(&k.created_at).unwrap_or(0.0),
                    attempts: whole(&get(r, &k.attempts), f64::from(u32::MAX))
                        .map_or(0, |n| n as u32),
                    next_at: num(&k.next_at).unwrap_or(0.0),
                    last_error: get(r, &k.last_error).as_string(),
                },
                code: String::from("corrupt_record"),
                message: reason,
                status: None,
                failed_at: get(o, &k.failed_at)
                    .as_f64()
                    .filter(|n| n.is_finite())
                    .unwrap_or(0.0),
            }
        }
    }
}
