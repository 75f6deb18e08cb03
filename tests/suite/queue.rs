//! Offline durability: events that cannot be delivered are queued in IndexedDB and replayed
//! with their original keys, exactly once. Each test uses its own database and customer.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::tracker::AutumnTracker;
use js_sys::{Array, Reflect, JSON};
use wasm_bindgen::{closure::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{get, json, mock, num, s, uid};

const KEY: &str = "am_sk_test_queue_suite";

/// A loopback port nothing listens on: every request fails like a dropped network.
const DEAD: &str = "http://127.0.0.1:9";

async fn mock_json(method: &str, path: &str, body: Option<&str>) -> JsValue {
    let url = format!("{}{}", mock(), path);
    let b = gloo_net::http::RequestBuilder::new(&url).method(if method == "POST" {
        gloo_net::http::Method::POST
    } else {
        gloo_net::http::Method::GET
    });
    let req = match body {
        Some(b2) => b
            .header("Content-Type", "application/json")
            .body(b2)
            .unwrap(),
        None => b.build().unwrap(),
    };
    let text = req
        .send()
        .await
        .expect("mock reachable")
        .text()
        .await
        .unwrap();
    JSON::parse(&text).unwrap_or(JsValue::from_str(&text))
}

async fn events_for(customer: &str) -> Array {
    get(
        &mock_json(
            "GET",
            &format!("/_mock/events?customer_id={customer}"),
            None,
        )
        .await,
        "events",
    )
    .dyn_into()
    .unwrap()
}

async fn sleep(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        let g = js_sys::global();
        let set_timeout: js_sys::Function = Reflect::get(&g, &"setTimeout".into())
            .unwrap()
            .dyn_into()
            .unwrap();
        set_timeout.call2(&g, &resolve, &JsValue::from(ms)).unwrap();
    });
    JsFuture::from(p).await.unwrap();
}

fn tracker(base: &str, db: &str, extra: &str) -> AutumnTracker {
    let opts = format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{base}","dangerouslyAllowBrowser":true,"queueName":"{db}","maxRetries":1,"timeoutMs":2000,"confirmAfterMs":2500{}{extra}}}"#,
        if extra.is_empty() { "" } else { "," }
    );
    AutumnTracker::new(json(&opts)).unwrap_or_else(|e| panic!("tracker: {e:?}"))
}

async fn track(t: &AutumnTracker, input: &str) -> JsValue {
    JsFuture::from(t.track(json(input)))
        .await
        .unwrap_or_else(|e| panic!("track rejected: {e:?}"))
}

async fn flush(t: &AutumnTracker) -> JsValue {
    JsFuture::from(t.flush()).await.unwrap()
}

async fn pending(t: &AutumnTracker) -> JsValue {
    JsFuture::from(t.pending()).await.unwrap()
}

/// Flushes until nothing remains (backoffs included), at most `secs` seconds.
async fn drain_all(t: &AutumnTracker, secs: u32) -> JsValue {
    let mut last = JsValue::NULL;
    for _ in 0..(secs * 4) {
        last = flush(t).await;
        if num(&last, "remaining") == 0.0 {
            return last;
        }
        sleep(250).await;
    }
    panic!("queue not drained: {:?}", JSON::stringify(&last));
}

async fn delete_db(name: &str) {
    if let Ok(f) = Reflect::get(&js_sys::global(), &"indexedDB".into()) {
        if let Ok(del) = Reflect::get(&f, &"deleteDatabase".into()) {
            let del: js_sys::Function = del.unchecked_into();
            let _ = del.call1(&f, &JsValue::from_str(name));
        }
    }
}

#[wasm_bindgen_test]
async fn network_down_queues_durably_then_replays_exactly_once() {
    let db = uid("db");
    let customer = uid("cus");
    let offline = tracker(DEAD, &db, "");
    let mut keys = Vec::new();
    for i in 0..5 {
        let r = track(
            &offline,
            &format!(
                r#"{{"customerId":"{customer}","featureId":"messages","properties":{{"i":{i}}}}}"#
            ),
        )
        .await;
        assert_eq!(s(&r, "status"), "queued", "{:?}", JSON::stringify(&r));
        assert_eq!(s(&r, "reason"), "network_error");
        keys.push(s(&r, "idempotencyKey"));
    }
    let p = pending(&offline).await;
    assert_eq!(num(&p, "queued"), 5.0);
    assert_eq!(s(&p, "storage"), "indexeddb");
    offline.close();
    assert_eq!(
        events_for(&customer).await.length(),
        0,
        "nothing reached the server yet"
    );

    // "Reload": a new tracker on the same database, now with a reachable server.
    let online = tracker(mock(), &db, r#""drain":"single""#);
    drain_all(&online, 20).await;
    let events = events_for(&customer).await;
    assert_eq!(events.length(), 5, "each queued event recorded once");
    let recorded: Vec<String> = events.iter().map(|e| s(&e, "idempotency_key")).collect();
    for k in &keys {
        assert_eq!(
            recorded.iter().filter(|r| *r == k).count(),
            1,
            "{k} recorded once"
        );
    }
    // Replays carry a timestamp: when track() was called, not when it was replayed.
    for e in events.iter() {
        assert!(
            get(&e, "timestamp").as_f64().is_some(),
            "replayed with a timestamp"
        );
    }
    assert_eq!(num(&pending(&online).await, "queued"), 0.0);
    online.close();
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn poison_event_in_a_1000_event_backlog_is_isolated() {
    let db = uid("db");
    let customer = uid("cus");
    let offline = tracker(DEAD, &db, r#""maxRetries":0"#);
    let mut poison_key = String::new();
    for i in 0..1000 {
        let feature = if i == 437 {
            "no_such_feature"
        } else {
            "messages"
        };
        let r = track(
            &offline,
            &format!(r#"{{"customerId":"{customer}","featureId":"{feature}"}}"#),
        )
        .await;
        assert_eq!(s(&r, "status"), "queued");
        if i == 437 {
            poison_key = s(&r, "idempotencyKey");
        }
    }
    offline.close();
    // The new tracker starts replaying leftovers by itself; flush() joins and finishes it.
    let online = tracker(mock(), &db, "");
    drain_all(&online, 60).await;
    assert_eq!(
        events_for(&customer).await.length(),
        999,
        "every good event went through"
    );
    let dead = JsFuture::from(online.dead_letters()).await.unwrap();
    let dead: Array = dead.dyn_into().unwrap();
    assert_eq!(dead.length(), 1);
    let d = dead.get(0);
    assert_eq!(s(&d, "idempotencyKey"), poison_key);
    assert_eq!(s(&d, "code"), "feature_not_found");
    assert_eq!(num(&d, "status"), 404.0);
    // Discarding it empties the dead letters.
    let gone = JsFuture::from(online.discard(Array::of1(&JsValue::from_str(&poison_key)).into()))
        .await
        .unwrap();
    assert_eq!(gone.as_f64(), Some(1.0));
    assert_eq!(num(&pending(&online).await, "deadLetters"), 0.0);
    online.close();
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn every_fault_kind_ends_recorded_once() {
    let db = uid("db");
    let customer = uid("cus");
    let t = tracker(mock(), &db, r#""drain":"single","maxRetries":0"#);
    let faults = [
        vec!["503"],
        vec!["429"],
        vec!["500", "502"],
        vec!["drop_after_record"],
        vec!["reset_before_body"],
        vec!["latency:3000"],
    ];
    let mut keys = Vec::new();
    for f in &faults {
        let key = uid("fault");
        let list: Vec<String> = f.iter().map(|a| format!("\"{a}\"")).collect();
        mock_json(
            "POST",
            "/_mock/faults",
            Some(&format!(
                r#"{{"scripts":{{"{key}":[{}]}}}}"#,
                list.join(",")
            )),
        )
        .await;
        let r = track(
            &t,
            &format!(
                r#"{{"customerId":"{customer}","featureId":"messages","idempotencyKey":"{key}"}}"#
            ),
        )
        .await;
        let status = s(&r, "status");
        assert!(
            status == "queued" || status == "duplicate" || status == "delivered",
            "{status}"
        );
        keys.push(key);
    }
    drain_all(&t, 40).await;
    let events = events_for(&customer).await;
    assert_eq!(
        events.length() as usize,
        faults.len(),
        "one record per event despite the faults"
    );
    for k in &keys {
        assert_eq!(
            events
                .iter()
                .filter(|e| s(e, "idempotency_key") == *k)
                .count(),
            1,
            "{k}"
        );
    }
    t.close();
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn full_queue_and_expired_events_are_reported_not_dropped() {
    let db = uid("db");
    let customer = uid("cus");
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let listener = Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
        let text: String = JSON::stringify(&ev).unwrap().into();
        seen2.borrow_mut().push(text);
    });
    let t = tracker(DEAD, &db, r#""maxQueueSize":3,"maxEventAgeMs":1500"#);
    t.add_event_listener(
        listener
            .as_ref()
            .unchecked_ref::<js_sys::Function>()
            .clone(),
    );
    for _ in 0..5 {
        track(
            &t,
            &format!(r#"{{"customerId":"{customer}","featureId":"messages"}}"#),
        )
        .await;
    }
    let p = pending(&t).await;
    assert_eq!(num(&p, "queued"), 3.0);
    assert_eq!(num(&p, "deadLetters"), 2.0);
    sleep(1700).await;
    let r = flush(&t).await;
    assert_eq!(num(&r, "remaining"), 0.0);
    let dead: Array = JsFuture::from(t.dead_letters())
        .await
        .unwrap()
        .dyn_into()
        .unwrap();
    let codes: Vec<String> = dead.iter().map(|d| s(&d, "code")).collect();
    assert_eq!(
        codes.iter().filter(|c| *c == "queue_full").count(),
        2,
        "{codes:?}"
    );
    assert_eq!(
        codes.iter().filter(|c| *c == "expired").count(),
        3,
        "{codes:?}"
    );
    let log = seen.borrow().join("\n");
    assert_eq!(log.matches("\"evicted\"").count(), 5, "{log}");
    assert!(log.contains("\"queued\""));
    assert!(
        !log.contains(KEY),
        "the secret key never reaches the event hook"
    );
    t.close();
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn dead_letters_can_be_retried_with_their_keys() {
    let db = uid("db");
    let customer = uid("cus");
    let offline = tracker(DEAD, &db, r#""maxQueueSize":1"#);
    let first = track(
        &offline,
        &format!(r#"{{"customerId":"{customer}","featureId":"messages"}}"#),
    )
    .await;
    track(
        &offline,
        &format!(r#"{{"customerId":"{customer}","featureId":"messages"}}"#),
    )
    .await;
    offline.close();
    let online = tracker(mock(), &db, "");
    drain_all(&online, 20).await;
    assert_eq!(
        events_for(&customer).await.length(),
        1,
        "the evicted one waits in dead letters"
    );
    let revived = JsFuture::from(online.retry_dead_letters(None))
        .await
        .unwrap();
    assert_eq!(revived.as_f64(), Some(1.0));
    drain_all(&online, 20).await;
    let events = events_for(&customer).await;
    assert_eq!(events.length(), 2);
    assert!(
        events
            .iter()
            .any(|e| s(&e, "idempotency_key") == s(&first, "idempotencyKey")),
        "revived with its original key"
    );
    online.close();
    delete_db(&db).await;
}

#[wasm_bindgen_test]
async fn memory_queue_when_asked() {
    let t = tracker(DEAD, &uid("db"), r#""queue":"memory""#);
    let r = track(&t, r#"{"customerId":"c","featureId":"messages"}"#).await;
    assert_eq!(s(&r, "status"), "queued");
    assert_eq!(s(&pending(&t).await, "storage"), "memory");
    t.close();
}

#[wasm_bindgen_test]
async fn queue_off_rejects_as_unavailable() {
    let t = tracker(DEAD, &uid("db"), r#""queue":"off""#);
    let e = JsFuture::from(t.track(json(r#"{"customerId":"c","featureId":"messages"}"#)))
        .await
        .unwrap_err();
    assert_eq!(s(&e, "code"), "unavailable");
    assert_eq!(s(&pending(&t).await, "storage"), "off");
}

#[wasm_bindgen_test]
async fn server_errors_past_retries_queue_then_deliver_once() {
    let db = uid("db");
    let customer = uid("cus");
    let t = tracker(mock(), &db, r#""maxRetries":1"#);
    let key = uid("k503");
    mock_json(
        "POST",
        "/_mock/faults",
        Some(&format!(r#"{{"scripts":{{"{key}":["503","503","503"]}}}}"#)),
    )
    .await;
    let r = track(
        &t,
        &format!(
            r#"{{"customerId":"{customer}","featureId":"messages","idempotencyKey":"{key}"}}"#
        ),
    )
    .await;
    assert_eq!(s(&r, "status"), "queued");
    assert_eq!(s(&r, "reason"), "server_error");
    drain_all(&t, 20).await;
    let events = events_for(&customer).await;
    assert_eq!(events.length(), 1);
    assert_eq!(s(&events.get(0), "idempotency_key"), key);
    t.close();
    delete_db(&db).await;
}
