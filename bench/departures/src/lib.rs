//! One export per feature, doing the job the package does another way. See Cargo.toml.
//!
//! Every build has the baseline export, which uses what the package's wasm has anyway (an
//! allocator, `core::fmt` through panics, strings in and out): a feature's bytes over it are
//! what that crate would add.
#![allow(dead_code)]
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub fn base(x: JsValue) -> String {
    let mut s = x.as_string().unwrap_or_default();
    let n = s.len();
    s.push_str(&format!("{n}"));
    s
}

#[cfg(feature = "serde")]
mod serde_way {
    use serde::{Deserialize, Serialize};
    use wasm_bindgen::prelude::*;

    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Sent {
        local: f64,
        server: Option<f64>,
    }

    /// The queue's record, as the stores keep it.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "camelCase")]
    pub struct Record {
        v: u32,
        key: String,
        seq: f64,
        customer: String,
        body: String,
        ts: Option<f64>,
        created_at: f64,
        attempts: u32,
        next_at: f64,
        last_error: Option<String>,
        server_created: Option<f64>,
        sent_at: Option<f64>,
        sent_srv: Option<f64>,
    }

    /// A store command, as the engine sends one.
    #[derive(Serialize)]
    #[serde(tag = "t", rename_all = "camelCase")]
    pub enum Command {
        Store { id: u32, spill: bool, op: String, arg: Vec<Record> },
        Send { id: u32, batch: bool, body: String, keepalive: bool },
        Wake { at: Option<f64> },
    }

    /// Reads records from the store and writes a command with them.
    #[wasm_bindgen]
    pub fn run(loaded: JsValue) -> Result<JsValue, JsValue> {
        let recs: Vec<Record> = serde_wasm_bindgen::from_value(loaded)?;
        let cmd = Command::Store { id: 1, spill: false, op: "update".into(), arg: recs };
        let ser = serde_wasm_bindgen::Serializer::json_compatible();
        Ok(cmd.serialize(&ser)?)
    }
}

#[cfg(feature = "gloo")]
mod gloo_way {
    use wasm_bindgen::prelude::*;

    /// A track request with the tracker's headers, its status and body read.
    #[wasm_bindgen]
    pub async fn run(url: String, body: String, key: String) -> Result<JsValue, JsValue> {
        let r = gloo_net::http::Request::post(&url)
            .header("Content-Type", "application/json")
            .header("Authorization", &key)
            .body(body)
            .map_err(|e| JsValue::from_str(&e.to_string()))?
            .send()
            .await
            .map_err(|e| JsValue::from_str(&e.to_string()))?;
        let status = r.status();
        let text = r.text().await.map_err(|e| JsValue::from_str(&e.to_string()))?;
        Ok(JsValue::from_str(&alloc_fmt(status, &text)))
    }

    fn alloc_fmt(status: u16, text: &str) -> String {
        let mut s = String::new();
        s.push_str(if status < 300 { "ok:" } else { "err:" });
        s.push_str(text);
        s
    }
}

#[cfg(feature = "websys")]
mod websys_way {
    use wasm_bindgen::prelude::*;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    fn request(r: &web_sys::IdbRequest) -> js_sys::Promise {
        let r = r.clone();
        js_sys::Promise::new(&mut |resolve, reject| {
            let ok = Closure::once_into_js(move |e: web_sys::Event| {
                let _ = resolve.call1(&JsValue::NULL, &e);
            });
            let bad = Closure::once_into_js(move |e: web_sys::Event| {
                let _ = reject.call1(&JsValue::NULL, &e);
            });
            r.set_onsuccess(Some(ok.unchecked_ref()));
            r.set_onerror(Some(bad.unchecked_ref()));
        })
    }

    /// Opens a database, puts a record and reads it back: what js/store.js does in JavaScript.
    #[wasm_bindgen]
    pub async fn run(name: String, record: JsValue) -> Result<JsValue, JsValue> {
        let g = js_sys::global();
        let factory: web_sys::IdbFactory = js_sys::Reflect::get(&g, &"indexedDB".into())?.dyn_into()?;
        let open = factory.open_with_u32(&name, 1)?;
        let up = open.clone();
        let upgrade = Closure::once_into_js(move |_: web_sys::Event| {
            if let Ok(db) = up.result() {
                let db: web_sys::IdbDatabase = db.unchecked_into();
                let p = web_sys::IdbObjectStoreParameters::new();
                p.set_key_path(&"key".into());
                let _ = db.create_object_store_with_optional_parameters("queue", &p);
            }
        });
        open.set_onupgradeneeded(Some(upgrade.unchecked_ref()));
        JsFuture::from(request(&open)).await?;
        let db: web_sys::IdbDatabase = open.result()?.dyn_into()?;
        let tx = db.transaction_with_str_and_mode("queue", web_sys::IdbTransactionMode::Readwrite)?;
        let q = tx.object_store("queue")?;
        JsFuture::from(request(&q.put(&record)?)).await?;
        let got = q.get(&js_sys::Reflect::get(&record, &"key".into())?)?;
        JsFuture::from(request(&got)).await?;
        got.result()
    }
}
