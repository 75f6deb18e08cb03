//! Test bodies for the queue's storage, shared by the page and dedicated-worker suites. Each
//! behavioural test runs against IndexedDB and memory (the same function, both kinds), on its
//! own randomly named database, deleted at the end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::store_api::{delete_database, describe, Kind, Store};
use autumn_track::queue::{DeadLetter, Record, Sent};
#[allow(unused_imports)]
use js_sys::Reflect as _;
use js_sys::{Array, Function, Promise, JSON};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

fn uid() -> String {
    let n = (js_sys::Math::random() * 1e15) as u64;
    format!("autumn-store-test-{n:x}")
}

fn rec(key: &str, seq: f64) -> Record {
    Record {
        key: key.to_string(),
        seq,
        customer: format!("cus_{key}"),
        body: format!(r#"{{"customer_id":"cus_{key}","feature_id":"msg","value":1}}"#),
        ts: None,
        created_at: 1_700_000_000_000.0 + seq,
        server_created: None,
        attempts: 0,
        next_at: 0.0,
        last_error: None,
        sent_at: None,
    }
}

fn letter(r: &Record, status: Option<u16>) -> DeadLetter {
    DeadLetter {
        record: r.clone(),
        code: "customer_not_found".to_string(),
        message: format!("no customer for {}", r.key),
        status,
        failed_at: 1_800_000_000_000.5,
    }
}

/// Opens a fresh store of `kind` and checks it is what was asked for.
async fn fresh(kind: Kind) -> (Store, String) {
    let name = uid();
    let (store, reason) = Store::open(kind, &name).await;
    assert_eq!(reason, None, "{kind:?} did not open");
    assert_eq!(store.is_durable(), kind != Kind::Memory);
    (store, name)
}

async fn finish(store: Store, name: &str) {
    store.close();
    drop(store);
    delete_database(name).await.unwrap();
}

async fn loaded(store: &Store) -> Vec<Record> {
    store
        .load()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.unwrap_or_else(|(k, e)| panic!("record {k:?} did not decode: {e}")))
        .collect()
}

fn keys(recs: &[Record]) -> Vec<&str> {
    recs.iter().map(|r| r.key.as_str()).collect()
}

/// Runs `body` (JavaScript returning a value or a promise) with `args` bound to `vals`.
async fn run_js(args: &str, body: &str, vals: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = Function::new_with_args(args, body);
    let out = f.apply(&JsValue::NULL, &vals.iter().collect::<Array>())?;
    JsFuture::from(Promise::resolve(&out)).await
}

/// Writes `values` (JSON array) into object store `store` of database `name`, bypassing the SDK.
async fn raw_put(name: &str, store: &str, values: &str) {
    run_js(
        "name, store, values",
        r#"return new Promise((res, rej) => {
            const r = globalThis.indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
                const db = r.result;
                const tx = db.transaction(store, "readwrite");
                for (const v of values) tx.objectStore(store).put(v);
                tx.oncomplete = () => { db.close(); res(); };
                tx.onabort = () => { db.close(); rej(tx.error); };
            };
        });"#,
        &[name.into(), store.into(), JSON::parse(values).unwrap()],
    )
    .await
    .unwrap();
}

/// Opens `name` at `version` with no schema, closes it, and resolves with the version it got
/// (rejects with "blocked" when another connection does not let go).
async fn raw_open_version(name: &str, version: u32) -> Result<JsValue, JsValue> {
    run_js(
        "name, version",
        r#"return new Promise((res, rej) => {
            const r = globalThis.indexedDB.open(name, version);
            r.onblocked = () => rej("blocked");
            r.onerror = () => rej(r.error);
            r.onsuccess = () => { const v = r.result.version; r.result.close(); res(v); };
        });"#,
        &[name.into(), version.into()],
    )
    .await
}

/// Runs a behavioural test against IndexedDB and against memory.
macro_rules! both_kinds {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[wasm_bindgen_test]
            async fn indexed_db() {
                super::$name(Kind::IndexedDb).await;
            }

            #[wasm_bindgen_test]
            async fn memory() {
                super::$name(Kind::Memory).await;
            }
        }
    )*};
}

both_kinds!(
    round_trip,
    replace_by_key,
    delete_and_count,
    ties_order_by_key,
    max_seq_spans_queue_and_dead,
    reopen_sees_the_data,
    dead_letters,
    empty_batches,
    closed_store_fails,
    large_batch,
    add_keeps_the_limit,
);

async fn round_trip(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let mut a = rec("b-key", 3.0);
    a.ts = Some(1_699_999_999_123.0);
    a.attempts = 4_000_000_000;
    a.next_at = 1_700_000_012_345.25;
    a.last_error = Some("HTTP 503 — «unavailable» 🚧".to_string());
    a.server_created = Some(1_700_000_000_999.5);
    a.sent_at = Some(Sent {
        local: 1_700_000_001_000.0,
        server: Some(1_700_000_003_000.25),
    });
    let mut b = rec("a-key", 1.0);
    b.customer = "cus_ünïcödé_𝄞".to_string();
    b.body = r#"{"properties":{"emoji":"🎉","quote":"\"","nl":"\n"}}"#.to_string();
    b.created_at = 0.0;
    b.seq = 1.0;
    let mut c = rec("c-key", 2.5);
    c.ts = Some(-5.0);
    c.sent_at = Some(Sent {
        local: 7.0,
        server: None,
    });
    store.add(&[a.clone(), b.clone(), c.clone()]).await.unwrap();
    assert_eq!(loaded(&store).await, vec![b, c, a]);
    assert_eq!(store.count().await.unwrap(), 3);
    finish(store, &name).await;
}

async fn replace_by_key(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let a = rec("k1", 1.0);
    let added = store.add(&[a.clone(), rec("k2", 2.0)]).await.unwrap();
    assert!(added.existing.is_empty() && added.evicted.is_empty());
    // `add` keeps a key already queued as it is (a resend of a queued event keeps its age).
    let mut a2 = a.clone();
    a2.attempts = 2;
    a2.next_at = 99.0;
    a2.created_at = 5.0;
    a2.last_error = Some("timeout".to_string());
    let again = store.add(std::slice::from_ref(&a2)).await.unwrap();
    assert_eq!(again.existing, ["k1"]);
    assert_eq!(loaded(&store).await[0], a);
    // `update` replaces what is there, and ignores what is gone.
    store.update(&[a2.clone(), rec("gone", 3.0)]).await.unwrap();
    let all = loaded(&store).await;
    assert_eq!(all.len(), 2);
    assert_eq!(all[0], a2);
    // Within one batch the last write of a key wins.
    let mut a3 = a2.clone();
    a3.attempts = 3;
    store.update(&[a2.clone(), a3.clone()]).await.unwrap();
    assert_eq!(loaded(&store).await[0], a3);
    assert_eq!(store.count().await.unwrap(), 2);
    finish(store, &name).await;
}

async fn delete_and_count(kind: Kind) {
    let (store, name) = fresh(kind).await;
    assert_eq!(store.count().await.unwrap(), 0);
    store
        .add(&[rec("x", 1.0), rec("y", 2.0), rec("z", 3.0)])
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 3);
    store
        .delete(&["x".to_string(), "z".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(keys(&loaded(&store).await), ["y"]);
    assert_eq!(store.count().await.unwrap(), 1);
    store.delete(&["y".to_string()]).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.load().await.unwrap().is_empty());
    finish(store, &name).await;
}

async fn ties_order_by_key(kind: Kind) {
    let (store, name) = fresh(kind).await;
    // UTF-16 order: U+FF5E sorts after U+1F600 (a surrogate pair starts with 0xD83D).
    store
        .add(&[
            rec("~", 5.0),
            rec("b", 5.0),
            rec("😀", 5.0),
            rec("a", 5.0),
            rec("z", 1.0),
        ])
        .await
        .unwrap();
    store.add(&[rec("\u{ff5e}", 5.0)]).await.unwrap();
    assert_eq!(
        keys(&loaded(&store).await),
        ["z", "a", "b", "~", "😀", "\u{ff5e}"]
    );
    finish(store, &name).await;
}

async fn max_seq_spans_queue_and_dead(kind: Kind) {
    let (store, name) = fresh(kind).await;
    assert_eq!(store.max_seq().await.unwrap(), 0.0);
    store
        .add(&[rec("a", 5.0), rec("b", 9.0), rec("c", 7.0)])
        .await
        .unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 9.0);
    store
        .move_to_dead(&[letter(&rec("d", 12.0), None)])
        .await
        .unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 12.0);
    store.delete_dead(&["d".to_string()]).await.unwrap();
    store.delete(&["b".to_string()]).await.unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 7.0);
    store
        .add(&[rec("big", 9_007_199_254_740_991.0)])
        .await
        .unwrap();
    assert_eq!(store.max_seq().await.unwrap(), 9_007_199_254_740_991.0);
    finish(store, &name).await;
}

async fn reopen_sees_the_data(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let recs = [rec("r1", 1.0), rec("r2", 2.0)];
    store.add(&recs).await.unwrap();
    store
        .move_to_dead(&[letter(&recs[0], Some(404))])
        .await
        .unwrap();
    store.close();
    drop(store);
    // A "reload": a new store under the same name.
    let (again, reason) = Store::open(kind, &name).await;
    assert_eq!(reason, None);
    assert_eq!(loaded(&again).await, vec![recs[1].clone()]);
    assert_eq!(
        again.load_dead().await.unwrap(),
        vec![letter(&recs[0], Some(404))]
    );
    assert_eq!(again.max_seq().await.unwrap(), 2.0);
    // Two open handles on one name see each other's writes.
    let (third, _) = Store::open(kind, &name).await;
    third.add(&[rec("r3", 3.0)]).await.unwrap();
    assert_eq!(again.count().await.unwrap(), 2);
    third.close();
    drop(third);
    finish(again, &name).await;
}

async fn dead_letters(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let recs = [rec("d1", 1.0), rec("d2", 2.0), rec("d3", 3.0)];
    store.add(&recs).await.unwrap();
    let mut with_details = letter(&recs[2], Some(422));
    with_details.record.last_error = Some("HTTP 422".to_string());
    with_details.record.ts = Some(5.0);
    let dead = [letter(&recs[0], None), with_details.clone()];
    store.move_to_dead(&dead).await.unwrap();
    assert_eq!(keys(&loaded(&store).await), ["d2"]);
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(store.load_dead().await.unwrap(), dead.to_vec());

    // Revive with a reset record: back in the queue (in seq order), gone from dead.
    let mut again = recs[2].clone();
    again.attempts = 0;
    again.next_at = 0.0;
    store.revive(std::slice::from_ref(&again)).await.unwrap();
    assert_eq!(keys(&loaded(&store).await), ["d2", "d3"]);
    assert_eq!(
        store.load_dead().await.unwrap(),
        vec![letter(&recs[0], None)]
    );

    // move_to_dead replaces a letter by key; delete_dead empties.
    let mut changed = letter(&recs[0], Some(400));
    changed.code = "expired".to_string();
    store
        .move_to_dead(std::slice::from_ref(&changed))
        .await
        .unwrap();
    assert_eq!(store.load_dead().await.unwrap(), vec![changed]);
    store
        .delete_dead(&["d1".to_string(), "nope".to_string()])
        .await
        .unwrap();
    assert!(store.load_dead().await.unwrap().is_empty());
    assert_eq!(store.count().await.unwrap(), 2);
    finish(store, &name).await;
}

async fn empty_batches(kind: Kind) {
    let (store, name) = fresh(kind).await;
    store.add(&[]).await.unwrap();
    store.update(&[]).await.unwrap();
    store.delete(&[]).await.unwrap();
    store.delete_dead(&[]).await.unwrap();
    store.move_to_dead(&[]).await.unwrap();
    store.revive(&[]).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.load_dead().await.unwrap().is_empty());
    finish(store, &name).await;
}

async fn add_keeps_the_limit(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let now = 1_700_000_000_000.0;
    // Without a limit, nothing is set aside.
    assert!(store
        .add(&[rec("a", 1.0)])
        .await
        .unwrap()
        .evicted
        .is_empty());
    let mut leased = rec("c", 3.0);
    leased.next_at = now + 30_000.0; // a track() call's lease
    store.add(&[rec("b", 2.0), leased]).await.unwrap();
    let lim = |max| Some((max, &["b"][..], now));
    // Over by one: the oldest goes.
    assert_eq!(
        store
            .add_bounded(&[rec("d", 4.0)], lim(3))
            .await
            .unwrap()
            .evicted,
        ["a"]
    );
    // b is busy (this tab sends it) and c leased (a track() call's): the next oldest goes.
    assert_eq!(
        store
            .add_bounded(&[rec("e", 5.0)], lim(3))
            .await
            .unwrap()
            .evicted,
        ["d"]
    );
    // Over by two in one call, oldest first (a new record included).
    assert_eq!(
        store
            .add_bounded(&[rec("f", 6.0), rec("g", 7.0)], lim(3))
            .await
            .unwrap()
            .evicted,
        ["e", "f"]
    );
    assert_eq!(keys(&loaded(&store).await), ["b", "c", "g"]);
    // The letters are queue_full dead letters that keep their record.
    let dead = store.load_dead().await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| d.record.key.as_str())
            .collect::<Vec<_>>(),
        ["a", "d", "e", "f"]
    );
    assert!(dead
        .iter()
        .all(|d| d.code == "queue_full" && d.record.seq >= 1.0));
    assert_eq!(dead[0].record, rec("a", 1.0));
    // A lease that reaches hours ahead (a clock set back) holds nothing.
    let mut stale = rec("h", 0.5);
    stale.next_at = now + 3_600_000.0;
    store.add(&[stale]).await.unwrap();
    assert_eq!(
        store
            .add_bounded(&[rec("i", 8.0)], lim(4))
            .await
            .unwrap()
            .evicted,
        ["h"]
    );
    // A key with a dead letter that was marked as sent says so (an earlier attempt may run).
    let mut sent = rec("s", 9.0);
    sent.sent_at = Some(Sent {
        local: 1.0,
        server: None,
    });
    store.add(std::slice::from_ref(&sent)).await.unwrap();
    store.move_to_dead(&[letter(&sent, None)]).await.unwrap();
    assert_eq!(store.add(&[rec("s", 10.0)]).await.unwrap().dead_sent, ["s"]);
    assert!(store
        .add(&[rec("t", 11.0)])
        .await
        .unwrap()
        .dead_sent
        .is_empty());
    finish(store, &name).await;
}

async fn closed_store_fails(kind: Kind) {
    let (store, name) = fresh(kind).await;
    store.add(&[rec("a", 1.0)]).await.unwrap();
    assert!(!store.is_closed());
    store.close();
    assert!(store.is_closed());
    let e = store.add(&[rec("b", 2.0)]).await.unwrap_err();
    assert!(e.contains("closed"), "{e}");
    assert!(store.update(&[rec("a", 1.0)]).await.is_err());
    assert!(store.load().await.is_err());
    assert!(store.count().await.is_err());
    assert!(store.max_seq().await.is_err());
    finish(store, &name).await;
}

async fn large_batch(kind: Kind) {
    let (store, name) = fresh(kind).await;
    let recs: Vec<Record> = (0..2000)
        .rev()
        .map(|i| {
            let mut r = rec(&format!("key-{i:05}"), f64::from(i) + 1.0);
            r.body = format!(
                r#"{{"customer_id":"cus_{i}","feature_id":"messages","value":1,"properties":{{"n":{i},"pad":"{}"}}}}"#,
                "x".repeat(200)
            );
            r
        })
        .collect();
    let t0 = js_sys::Date::now();
    store.add(&recs).await.unwrap();
    let put_ms = js_sys::Date::now() - t0;
    let t1 = js_sys::Date::now();
    let all = loaded(&store).await;
    let load_ms = js_sys::Date::now() - t1;
    console_log!("{kind:?}: put of 2000 records {put_ms} ms, load {load_ms} ms");
    assert_eq!(all.len(), 2000);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert_eq!(all[0].key, "key-00000");
    assert_eq!(store.count().await.unwrap(), 2000);
    assert_eq!(store.max_seq().await.unwrap(), 2000.0);
    let gone: Vec<String> = recs.iter().map(|r| r.key.clone()).collect();
    store.delete(&gone).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    finish(store, &name).await;
}

// ---- IndexedDB only -------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn auto_opens_indexed_db() {
    let name = uid();
    let (store, reason) = Store::open(Kind::Auto, &name).await;
    assert_eq!(reason, None);
    assert!(store.is_durable());
    finish(store, &name).await;
}

#[wasm_bindgen_test]
async fn garbage_records_come_back_as_errors() {
    let (store, name) = fresh(Kind::IndexedDb).await;
    store
        .add(&[rec("good2", 2.0), rec("good1", 1.0)])
        .await
        .unwrap();
    let valid = r#""seq":3,"customer":"c","body":"{}","createdAt":1,"attempts":0,"nextAt":0"#;
    raw_put(
        &name,
        "queue",
        &format!(
            r#"[
            {{"key":"x","v":99,{valid}}},
            {{"key":"y","v":1,{valid},"body":5}},
            {{"key":"z","v":1}},
            {{"key":"n","v":1,"seq":"abc","customer":"c","body":"{{}}","createdAt":1,"attempts":0,"nextAt":0}},
            {{"key":"f","v":1,{valid},"attempts":1.5}},
            {{"key":"g","v":1,{valid},"attempts":-1}},
            {{"key":"h","v":1,{valid},"lastError":7}},
            {{"key":"i","v":1,{valid},"ts":"yesterday"}},
            {{"key":"j",{valid}}},
            {{"key":4,"v":1}}
        ]"#
        ),
    )
    .await;
    let all = store.load().await.unwrap();
    let good: Vec<&Record> = all.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(
        good.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(),
        ["good1", "good2"]
    );
    let bad: Vec<(String, String)> = all.iter().filter_map(|r| r.clone().err()).collect();
    let mut bad_keys: Vec<&str> = bad.iter().map(|(k, _)| k.as_str()).collect();
    // Errors follow the records (`all` ends with them), each reported once.
    assert!(all[..2].iter().all(Result::is_ok) && all[2..].iter().all(Result::is_err));
    bad_keys.sort_unstable();
    assert_eq!(bad_keys, ["", "f", "g", "h", "i", "j", "n", "x", "y", "z"]);
    for (k, reason) in &bad {
        console_log!("undecodable {k:?}: {reason}");
        assert!(!reason.is_empty());
    }
    let reason = |k: &str| bad.iter().find(|(key, _)| key == k).unwrap().1.clone();
    assert!(reason("x").contains("version"));
    assert!(reason("y").contains("body"));
    assert!(reason("f").contains("attempts"));
    assert!(reason("n").contains("seq"));
    assert_eq!(store.count().await.unwrap(), 12);
    // max_seq counts numeric seqs, undecodable records' too (3), and ignores the string one.
    assert_eq!(store.max_seq().await.unwrap(), 3.0);
    // Garbage can be deleted by the key reported.
    store
        .delete(&["x".to_string(), "y".to_string()])
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 10);
    finish(store, &name).await;
}

#[wasm_bindgen_test]
async fn garbage_dead_letters_come_back_as_corrupt_records() {
    let (store, name) = fresh(Kind::IndexedDb).await;
    let ok = letter(&rec("ok", 1.0), Some(404));
    store.move_to_dead(std::slice::from_ref(&ok)).await.unwrap();
    raw_put(
        &name,
        "dead",
        r#"[
            {"key":"g1","v":1,"record":5,"code":"x","message":"m","failedAt":1},
            {"key":"g2","v":1,"record":{"key":"g2","seq":7,"customer":"cus_7","body":"{}","createdAt":3,"attempts":2,"nextAt":0},"code":"x","message":"m","status":"500","failedAt":9},
            {"key":"g3","v":2},
            {"key":"g4","v":1,"record":{"key":"other","seq":1,"customer":"c","body":"{}","createdAt":1,"attempts":0,"nextAt":0},"code":"x","message":"m","failedAt":1}
        ]"#,
    )
    .await;
    let dead = store.load_dead().await.unwrap();
    assert_eq!(
        dead.iter()
            .map(|d| d.record.key.as_str())
            .collect::<Vec<_>>(),
        ["g1", "g2", "g3", "g4", "ok"]
    );
    assert_eq!(dead[4], ok);
    for d in &dead[..4] {
        console_log!("corrupt {:?}: {}", d.record.key, d.message);
        assert_eq!(d.code, "corrupt_record");
        assert!(!d.message.is_empty());
    }
    // The reason names the bad field.
    assert!(dead[1].message.contains("status"), "{}", dead[1].message);
    store
        .delete_dead(&["g1".to_string(), "g2".to_string()])
        .await
        .unwrap();
    assert_eq!(store.load_dead().await.unwrap().len(), 3);
    finish(store, &name).await;
}

#[wasm_bindgen_test]
async fn another_tabs_upgrade_closes_the_connection() {
    let (store, name) = fresh(Kind::IndexedDb).await;
    store.add(&[rec("a", 1.0)]).await.unwrap();
    // A newer schema elsewhere: our connection must let go rather than block it.
    let v = raw_open_version(&name, 2).await.unwrap();
    assert_eq!(v.as_f64(), Some(2.0));
    assert!(store.is_closed());
    let e = store.add(&[rec("b", 2.0)]).await.unwrap_err();
    assert!(e.contains("closed"), "{e}");
    drop(store);
    // Reopening with the older schema falls back to memory and says why.
    let (old, reason) = Store::open(Kind::Auto, &name).await;
    assert!(!old.is_durable());
    let reason = reason.unwrap();
    console_log!("fallback reason: {reason}");
    assert!(reason.contains("newer"), "{reason}");
    finish(old, &name).await;
}

#[wasm_bindgen_test]
async fn foreign_database_falls_back_to_memory() {
    let name = uid();
    raw_open_version(&name, 1).await.unwrap();
    for kind in [Kind::Auto, Kind::IndexedDb] {
        let (store, reason) = Store::open(kind, &name).await;
        assert!(!store.is_durable());
        let reason = reason.unwrap();
        assert!(reason.contains("layout"), "{reason}");
        // The fallback works like any store.
        store.add(&[rec("m", 1.0)]).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 1);
        store.delete(&["m".to_string()]).await.unwrap();
        store.close();
    }
    delete_database(&name).await.unwrap();
}

#[wasm_bindgen_test]
fn quota_errors_say_quota() {
    let e = web_sys::DomException::new_with_message_and_name("full", "QuotaExceededError").unwrap();
    let msg = describe("IndexedDB write failed", Some(&e.into()));
    assert!(msg.contains("quota"), "{msg}");
    let none = describe("IndexedDB write failed", None);
    assert!(none.starts_with("IndexedDB write failed: "), "{none}");
}

#[wasm_bindgen_test]
async fn an_open_that_never_settles_times_out_to_memory() {
    let name = uid();
    // A connection that ignores `versionchange` blocks a delete; an open queued behind the
    // delete cannot settle until that connection goes.
    let db = run_js(
        "name",
        r#"return new Promise((res, rej) => {
            const r = globalThis.indexedDB.open(name);
            r.onsuccess = () => res(r.result);
            r.onerror = () => rej(r.error);
        });"#,
        &[name.as_str().into()],
    )
    .await
    .unwrap();
    let deleted = run_js(
        "name",
        r#"const r = globalThis.indexedDB.deleteDatabase(name);
        return { done: new Promise((res) => { r.onsuccess = res; r.onerror = res; }) };"#,
        &[name.as_str().into()],
    )
    .await
    .unwrap();
    let t0 = js_sys::Date::now();
    let (store, reason) = Store::open(Kind::IndexedDb, &name).await;
    let waited = js_sys::Date::now() - t0;
    let reason = reason.unwrap();
    console_log!("gave up after {waited} ms: {reason}");
    assert!(!store.is_durable());
    assert!(reason.contains("3 s"), "{reason}");
    assert!((2900.0..10_000.0).contains(&waited), "{waited}");
    store.close();
    // Let go: the delete, then the late open (its upgrade still runs, its connection is closed).
    run_js("db", "db.close();", &[db]).await.unwrap();
    let done = js_sys::Reflect::get(&deleted, &"done".into()).unwrap();
    JsFuture::from(Promise::from(done)).await.unwrap();
    let (store, reason) = Store::open(Kind::IndexedDb, &name).await;
    assert_eq!(reason, None);
    store.add(&[rec("after", 1.0)]).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
    finish(store, &name).await;
}
