//! The queue's stores (`js/store.js`) from Rust, for the store suites: each operation the engine
//! commands, with records encoded and decoded by the wasm edge's codec exactly as the tracker
//! does.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use autumn_track::__codec as codec;
use autumn_track::queue::{DeadLetter, Record};
use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(module = "/js/store.js")]
extern "C" {
    type JsStore;

    #[wasm_bindgen(js_name = openStore)]
    fn open_store(kind: &str, name: &str) -> Promise;
    #[wasm_bindgen(js_name = deleteDatabase)]
    fn delete_db(name: &str) -> Promise;
    #[wasm_bindgen(js_name = describe)]
    pub fn describe_js(what: &str, err: &JsValue) -> String;

    #[wasm_bindgen(method)]
    fn op(this: &JsStore, name: &str, arg: &JsValue) -> Promise;
    #[wasm_bindgen(method, js_name = isDurable)]
    fn durable(this: &JsStore) -> bool;
    #[wasm_bindgen(method, js_name = isClosed)]
    fn closed(this: &JsStore) -> bool;
    #[wasm_bindgen(method, js_name = close)]
    fn close_js(this: &JsStore);
}

/// Which store to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Auto,
    IndexedDb,
    Memory,
}

pub struct Store {
    js: JsStore,
}

/// What `add` reports.
#[derive(Debug, Default, PartialEq)]
pub struct Added {
    pub evicted: Vec<String>,
    pub existing: Vec<String>,
    pub dead_sent: Vec<String>,
}

async fn settle(p: Promise) -> Result<JsValue, String> {
    JsFuture::from(p)
        .await
        .map_err(|e| e.as_string().unwrap_or_else(|| "the store failed".into()))
}

fn strings(v: &JsValue) -> Vec<String> {
    let a: Array = v.clone().unchecked_into();
    a.iter().filter_map(|k| k.as_string()).collect()
}

pub fn describe(what: &str, err: Option<&JsValue>) -> String {
    describe_js(what, err.unwrap_or(&JsValue::NULL))
}

pub async fn delete_database(name: &str) -> Result<(), String> {
    settle(delete_db(name)).await.map(drop)
}

impl Store {
    pub async fn open(kind: Kind, name: &str) -> (Store, Option<String>) {
        let k = if kind == Kind::Memory {
            "memory"
        } else {
            "auto"
        };
        let opened = settle(open_store(k, name)).await.unwrap();
        let get = |k: &str| Reflect::get(&opened, &k.into()).unwrap();
        (
            Store {
                js: get("store").unchecked_into(),
            },
            get("fallback").as_string(),
        )
    }

    pub fn is_durable(&self) -> bool {
        self.js.durable()
    }

    pub fn is_closed(&self) -> bool {
        self.js.closed()
    }

    pub fn close(&self) {
        self.js.close_js();
    }

    async fn run(&self, name: &str, arg: &JsValue) -> Result<JsValue, String> {
        settle(self.js.op(name, arg)).await
    }

    fn records(&self, recs: &[Record]) -> JsValue {
        recs.iter()
            .map(|r| codec::encode_record(r).unwrap())
            .collect::<Array>()
            .into()
    }

    fn letters(&self, d: &[DeadLetter]) -> JsValue {
        d.iter()
            .map(|l| codec::encode_dead(l).unwrap())
            .collect::<Array>()
            .into()
    }

    /// `add` without a bound.
    pub async fn add(&self, recs: &[Record]) -> Result<Added, String> {
        self.add_bounded(recs, None).await
    }

    /// `add` keeping at most `max` records, never setting aside `busy` ones (leases at `now`).
    pub async fn add_bounded(
        &self,
        recs: &[Record],
        limit: Option<(usize, &[&str], f64)>,
    ) -> Result<Added, String> {
        let arg = Object::new();
        Reflect::set(&arg, &"records".into(), &self.records(recs)).unwrap();
        if let Some((max, busy, now)) = limit {
            let l = Object::new();
            Reflect::set(&l, &"max".into(), &(max as f64).into()).unwrap();
            let b: Array = busy.iter().map(|k| JsValue::from_str(k)).collect();
            Reflect::set(&l, &"busy".into(), &b).unwrap();
            Reflect::set(&l, &"now".into(), &now.into()).unwrap();
            Reflect::set(&arg, &"limit".into(), &l).unwrap();
        }
        let out = self.run("add", &arg.into()).await?;
        let get = |k: &str| Reflect::get(&out, &k.into()).unwrap();
        let dead: Array = get("deadSent").unchecked_into();
        Ok(Added {
            evicted: strings(&get("evicted")),
            existing: strings(&get("existing")),
            dead_sent: dead
                .iter()
                .filter_map(|d| Reflect::get(&d, &"key".into()).unwrap().as_string())
                .collect(),
        })
    }

    pub async fn update(&self, recs: &[Record]) -> Result<(), String> {
        self.run("update", &self.records(recs)).await.map(drop)
    }

    pub async fn delete(&self, keys: &[String]) -> Result<(), String> {
        let a: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        self.run("del", &a).await.map(drop)
    }

    pub async fn load(&self) -> Result<Vec<Result<Record, (String, String)>>, String> {
        let all: Array = self.run("load", &JsValue::NULL).await?.unchecked_into();
        Ok(all.iter().map(|v| codec::decode_record(&v)).collect())
    }

    async fn counts(&self) -> Result<(u32, u32), String> {
        let c = self.run("count", &JsValue::NULL).await?;
        let n = |k: &str| Reflect::get(&c, &k.into()).unwrap().as_f64().unwrap() as u32;
        Ok((n("queued"), n("dead")))
    }

    pub async fn count(&self) -> Result<u32, String> {
        Ok(self.counts().await?.0)
    }

    pub async fn count_dead(&self) -> Result<u32, String> {
        Ok(self.counts().await?.1)
    }

    pub async fn move_to_dead(&self, d: &[DeadLetter]) -> Result<(), String> {
        self.run("moveToDead", &self.letters(d)).await.map(drop)
    }

    pub async fn load_dead(&self) -> Result<Vec<DeadLetter>, String> {
        let all: Array = self.run("loadDead", &JsValue::NULL).await?.unchecked_into();
        Ok(all.iter().map(|v| codec::decode_dead(&v)).collect())
    }

    pub async fn delete_dead(&self, keys: &[String]) -> Result<u32, String> {
        let a: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
        Ok(self.run("delDead", &a).await?.as_f64().unwrap_or(0.0) as u32)
    }

    pub async fn revive(&self, recs: &[Record]) -> Result<(), String> {
        self.run("revive", &self.records(recs)).await.map(drop)
    }

    pub async fn max_seq(&self) -> Result<f64, String> {
        Ok(self
            .run("maxSeq", &JsValue::NULL)
            .await?
            .as_f64()
            .unwrap_or(0.0))
    }
}
