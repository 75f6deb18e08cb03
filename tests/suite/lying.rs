//! Responses that lie, against `autumn-mock`'s lying faults: a proxy's HTML error pages, 200s
//! with garbage or truncated bodies, truncated refusals, `Retry-After` of ten years, in the past
//! or unreadable, and slow-loris answers. Each test ends by tracking a good event: the tracker
//! keeps working. Every test has its own database, customer and keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::tracker::AutumnTracker;
use js_sys::{Array, Function, Promise, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{get, json, mock, num, s, uid};

const KEY: &str = "am_sk_test_lying_suite";

/// What the mock's HTML pages end with: no message may quote a page that far.
const PAGE_END: &str = "end of proxy page";

fn now() -> f64 {
    js_sys::Date::now()
}

/// Runs `body` (JavaScript returning a value or a promise) with `args` bound to `vals`.
async fn run_js(args: &str, body: &str, vals: &[JsValue]) -> JsValue {
    let f = Function::new_with_args(args, body);
    let out = f
        .apply(&JsValue::NULL, &vals.iter().collect::<Array>())
        .unwrap();
    JsFuture::from(Promise::resolve(&out)).await.unwrap()
}

async fn mock_json(method: &str, path: &str, body: Option<&str>) -> JsValue {
    run_js(
        "url, method, body",
        "return fetch(url, { method, body: body ?? undefined }).then((r) => r.json());",
        &[
            JsValue::from_str(&format!("{}{path}", mock())),
            JsValue::from_str(method),
            body.map_or(JsValue::NULL, JsValue::from_str),
        ],
    )
    .await
}

async fn script(key: &str, actions: &[&str]) {
    let list: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    mock_json(
        "POST",
        "/_mock/faults",
        Some(&format!(
            r#"{{"scripts":{{"{key}":[{}]}}}}"#,
            list.join(",")
        )),
    )
    .await;
}

/// How many times the mock recorded this key.
async fn recorded(key: &str) -> u32 {
    let v = mock_json("GET", &format!("/_mock/events?idempotency_key={key}"), None).await;
    num(&v, "count") as u32
}

async fn sleep(ms: i32) {
    run_js(
        "ms",
        "return new Promise((r) => setTimeout(r, ms));",
        &[ms.into()],
    )
    .await;
}

/// A tracker with its own IndexedDB queue, and the log of its events.
fn tracker(db: &str, extra: &str) -> (AutumnTracker, Array) {
    let opts = format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}","dangerouslyAllowBrowser":true,"queue":"indexeddb","queueName":"{db}","maxRetries":1,"timeoutMs":1500,"confirmAfterMs":2000{}{extra}}}"#,
        mock(),
        if extra.is_empty() { "" } else { "," }
    );
    let t = AutumnTracker::new(json(&opts)).unwrap_or_else(|e| panic!("tracker: {e:?}"));
    let log = Array::new();
    let push: Function = Function::new_with_args("e", "this.push(e)")
        .bind0(&log)
        .unchecked_into();
    t.add_event_listener(push);
    (t, log)
}

fn event(customer: &str, key: &str) -> JsValue {
    json(&format!(
        r#"{{"customerId":"{customer}","featureId":"messages","idempotencyKey":"{key}"}}"#
    ))
}

async fn track(t: &AutumnTracker, input: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(t.track(input)).await
}

async fn flush(t: &AutumnTracker) -> JsValue {
    JsFuture::from(t.flush()).await.unwrap()
}

async fn queued(t: &AutumnTracker) -> f64 {
    num(&JsFuture::from(t.pending()).await.unwrap(), "queued")
}

/// Flushes until nothing remains, at most `secs` seconds.
async fn drain_all(t: &AutumnTracker, secs: u32) {
    let mut last = JsValue::NULL;
    for _ in 0..(secs * 4) {
        last = flush(t).await;
        if num(&last, "remaining") == 0.0 {
            return;
        }
        sleep(250).await;
    }
    panic!("queue not drained: {:?}", JSON::stringify(&last));
}

/// The records of the queue's object store, read behind the SDK's back.
async fn raw_queue(db: &str) -> Array {
    run_js(
        "name",
        r#"return new Promise((res, rej) => {
            const r = indexedDB.open(name);
            r.onerror = () => rej(r.error);
            r.onsuccess = () => {
                const d = r.result;
                const q = d.transaction("queue").objectStore("queue").getAll();
                q.onsuccess = () => { d.close(); res(q.result); };
                q.onerror = () => { d.close(); rej(q.error); };
            };
        });"#,
        &[db.into()],
    )
    .await
    .unchecked_into()
}

async fn close_and_delete(t: AutumnTracker, db: &str) {
    t.close();
    run_js("name", "indexedDB.deleteDatabase(name);", &[db.into()]).await;
}

/// Tracks a fresh good event: the tracker still works.
async fn still_works(t: &AutumnTracker) {
    let key = uid("good");
    let r = track(t, event(&uid("cus"), &key))
        .await
        .expect("a good event after the lie");
    assert_eq!(s(&r, "status"), "delivered");
    assert_eq!(recorded(&key).await, 1);
}

/// Every message the tracker reported (events and errors) is short and quotes no whole page.
fn assert_bounded(msg: &str) {
    assert!(
        msg.chars().count() <= 400,
        "message too long ({}): {msg}",
        msg.len()
    );
    assert!(!msg.contains(PAGE_END), "quotes the whole page: {msg}");
}

fn messages(log: &Array) -> Vec<String> {
    log.iter()
        .filter_map(|e| get(&e, "message").as_string())
        .collect()
}

fn events_of(log: &Array, kind: &str, key: &str) -> usize {
    log.iter()
        .filter(|e| {
            get(e, "type").as_string().as_deref() == Some(kind)
                && get(e, "idempotencyKey").as_string().as_deref() == Some(key)
        })
        .count()
}

#[wasm_bindgen_test]
async fn html_5xx_pages_are_retried_then_queued_with_the_same_key() {
    let db = uid("lie_db");
    let (t, log) = tracker(&db, "");
    let (customer, key) = (uid("cus"), uid("html5xx"));
    script(&key, &["html_502", "html_503"]).await;
    let r = track(&t, event(&customer, &key)).await.expect("queued");
    assert_eq!(s(&r, "status"), "queued");
    // A proxy's page, not Autumn's answer: the request may have reached Autumn and still run
    // there, so the replay waits out the confirmation window before a 409 or a batch.
    assert_eq!(s(&r, "reason"), "unanswered");
    assert!(
        s(&r, "message").contains("may still be running"),
        "{}",
        s(&r, "message")
    );
    assert_eq!(s(&r, "idempotencyKey"), key);
    assert_eq!(events_of(&log, "queued", &key), 1);
    for m in messages(&log) {
        assert_bounded(&m);
    }
    // Both attempts were consumed by the script: both carried the key. The queue replays it
    // with that key once the proxy is back.
    assert_eq!(recorded(&key).await, 0);
    drain_all(&t, 20).await;
    assert_eq!(recorded(&key).await, 1);
    assert_eq!(events_of(&log, "delivered", &key), 1);
    still_works(&t).await;
    close_and_delete(t, &db).await;
}

#[wasm_bindgen_test]
async fn a_2xx_with_a_garbage_or_truncated_body_is_delivered() {
    let db = uid("lie_db");
    let (t, log) = tracker(&db, "");
    let customer = uid("cus");
    for action in ["garbage_body", "truncated_body"] {
        let key = uid(action);
        script(&key, &[action]).await;
        let r = track(&t, event(&customer, &key)).await.expect("delivered");
        // The status says the server accepted the event; the body is only informative.
        assert_eq!(s(&r, "status"), "delivered", "{action}");
        assert_eq!(num(&r, "attempts"), 1.0);
        assert!(
            get(&r, "response").is_null(),
            "{action}: {:?}",
            get(&r, "response")
        );
        assert_eq!(recorded(&key).await, 1);
        assert_eq!(events_of(&log, "delivered", &key), 1);
    }
    assert_eq!(queued(&t).await, 0.0, "nothing left behind to resend");
    still_works(&t).await;
    close_and_delete(t, &db).await;
}

#[wasm_bindgen_test]
async fn a_403_page_is_held_and_a_truncated_refusal_is_a_bounded_http_error() {
    let db = uid("lie_db");
    let (t, log) = tracker(&db, "");
    let customer = uid("cus");

    // A 403 (here a proxy's HTML page) says the caller may not send now — a session, a key —
    // not that the event is wrong: with a queue it is kept, and delivered once that passes.
    let key = uid("html403");
    script(&key, &["html_403"]).await;
    let r = track(&t, event(&customer, &key)).await.expect("held");
    assert_eq!(s(&r, "status"), "queued");
    assert_eq!(s(&r, "reason"), "unauthorized");
    let msg = s(&r, "message");
    assert!(msg.starts_with("HTTP 403"), "{msg}");
    assert_bounded(&msg);
    assert_eq!(recorded(&key).await, 0);
    drain_all(&t, 20).await;
    assert_eq!(recorded(&key).await, 1);

    // Autumn's refusal, cut in half on the way: the status survives, the code cannot.
    let key = uid("trunc404");
    script(&key, &["truncated_body"]).await;
    let e = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{customer}","featureId":"no_such_feature","idempotencyKey":"{key}"}}"#
        )),
    )
    .await
    .expect_err("refused");
    assert_eq!(s(&e, "code"), "http_error");
    assert_eq!(num(&e, "status"), 404.0);
    assert_bounded(&s(&e, "message"));

    // The caller has the error: nothing stays queued to be resent unchanged.
    assert_eq!(queued(&t).await, 0.0);
    assert!(e.is_instance_of::<js_sys::Error>());
    assert_eq!(s(&e, "name"), "TrackError");
    assert_eq!(s(&e, "idempotencyKey"), key);
    assert!(
        s(&e, "message")
            .starts_with("refused without an Autumn answer (HTTP 404); it may have been recorded"),
        "{}",
        s(&e, "message")
    );
    for m in messages(&log) {
        assert_bounded(&m);
    }
    still_works(&t).await;
    close_and_delete(t, &db).await;
}

/// A request recorded whose connection then dropped, and a proxy's 403 on the next copy (the
/// SDK's retry, or the browser's own resend of a POST on a reused connection, which the SDK
/// never sees): the error cannot claim the event was not recorded, and resending with its key
/// is what makes that safe.
#[wasm_bindgen_test]
async fn a_proxy_refusal_after_an_unanswered_recording_is_not_a_proof_of_loss() {
    let opts = format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}","dangerouslyAllowBrowser":true,"queue":"off","maxRetries":1,"timeoutMs":1500,"confirmAfterMs":2000}}"#,
        mock()
    );
    let t = AutumnTracker::new(json(&opts)).unwrap_or_else(|e| panic!("tracker: {e:?}"));
    let customer = uid("cus");
    // A connection to reuse: this is when Chromium resends a POST by itself.
    still_works(&t).await;
    let key = uid("dropped403");
    script(&key, &["drop_after_record", "html_403"]).await;
    let e = track(&t, event(&customer, &key))
        .await
        .expect_err("the 403 is what the tracker saw last");
    assert_eq!(s(&e, "code"), "http_error");
    assert_eq!(num(&e, "status"), 403.0);
    assert_eq!(s(&e, "idempotencyKey"), key);
    let msg = s(&e, "message");
    assert!(msg.contains("it may have been recorded"), "{msg}");
    assert!(msg.contains("resend only with idempotencyKey"), "{msg}");
    assert_bounded(&msg);
    // It was recorded, by the copy whose answer never came.
    let v = mock_json("GET", &format!("/_mock/events?idempotency_key={key}"), None).await;
    assert_eq!(num(&v, "count"), 1.0);
    let ev = js_sys::Reflect::get(&get(&v, "events"), &0.into()).unwrap();
    assert_eq!(get(&ev, "dropped_after_record"), JsValue::TRUE);
    // The remedy the message names: the same key again. At once, a 409 proves nothing (the
    // attempt that got no answer might still be running at Autumn): `unavailable`, with when
    // to resend; then, a duplicate, not a second count.
    let early = track(&t, event(&customer, &key))
        .await
        .expect_err("not confirmed yet");
    assert_eq!(s(&early, "code"), "unavailable");
    assert_eq!(num(&early, "status"), 409.0);
    // The window (2 s here) from the unanswered send, on the server's clock too when its `Date`
    // is known: that clock reads to the second, so up to 2 s more (queue::STAMP_SLOP_MS); and
    // a resend is timed past it by queue::CONFIRM_MARGIN_MS (1.5 s).
    let wait = num(&early, "retryAfterMs");
    assert!((0.0..=4000.0 + 1500.0 + 100.0).contains(&wait), "{wait}");
    sleep(wait as i32 + 100).await;
    let r = track(&t, event(&customer, &key))
        .await
        .expect("resent with its key");
    assert_eq!(s(&r, "status"), "duplicate");
    assert_eq!(recorded(&key).await, 1);
    t.close();
}

#[wasm_bindgen_test]
async fn a_ten_year_retry_after_is_capped() {
    let db = uid("lie_db");
    let (t, _log) = tracker(&db, "");
    let customer = uid("cus");

    // In the call: a wait longer than a minute is not slept; the queue takes over.
    let key = uid("ra10y");
    script(&key, &["503_retry_after_10y"]).await;
    let start = now();
    let r = track(&t, event(&customer, &key)).await.expect("queued");
    assert_eq!(s(&r, "status"), "queued");
    assert_eq!(s(&r, "idempotencyKey"), key);
    assert!(now() - start < 3000.0, "did not wait: {} ms", now() - start);
    drain_all(&t, 20).await;
    assert_eq!(recorded(&key).await, 1);

    // In a replay: the queue holds back for at most an hour, not ten years.
    let key = uid("ra10y_drain");
    script(&key, &["429_retry_after_10y", "429_retry_after_10y"]).await;
    let r = track(&t, event(&customer, &key)).await.expect("queued");
    assert_eq!(s(&r, "reason"), "rate_limited");
    let start = now();
    let f = flush(&t).await;
    assert!(now() - start < 3000.0, "flush() does not wait ten years");
    assert_eq!(num(&f, "remaining"), 1.0);
    let recs = raw_queue(&db).await;
    assert_eq!(recs.length(), 1);
    let wait = num(&recs.get(0), "nextAt") - now();
    assert!(
        (3_000_000.0..=3_700_000.0).contains(&wait),
        "next try in {wait} ms: capped at one hour"
    );
    // A later flush is held too (no hammering), but a new page replays it at once.
    let _ = flush(&t).await;
    t.close();
    let (t, _log) = tracker(&db, "");
    drain_all(&t, 20).await;
    assert_eq!(recorded(&key).await, 1);
    still_works(&t).await;
    close_and_delete(t, &db).await;
}

#[wasm_bindgen_test]
async fn a_past_or_garbage_retry_after_means_retry_soon() {
    let db = uid("lie_db");
    let (t, _log) = tracker(&db, "");
    let customer = uid("cus");
    for action in [
        "503_retry_after_past",
        "429_retry_after_past",
        "503_retry_after_garbage",
        "429_retry_after_garbage",
    ] {
        let key = uid("ra");
        script(&key, &[action]).await;
        let start = now();
        let r = track(&t, event(&customer, &key)).await.expect("delivered");
        let took = now() - start;
        assert_eq!(s(&r, "status"), "delivered", "{action}");
        assert_eq!(num(&r, "attempts"), 2.0, "{action}");
        // Past: now plus jitter (≤ 250 ms); garbage: the first backoff (≤ 500 ms).
        assert!(took < 2000.0, "{action}: retried after {took} ms");
        assert_eq!(recorded(&key).await, 1);
    }
    still_works(&t).await;
    close_and_delete(t, &db).await;
}

#[wasm_bindgen_test]
async fn slow_loris_answers_time_out_and_the_event_stays_queued() {
    let db = uid("lie_db");
    let (t, log) = tracker(&db, r#""timeoutMs":800"#);
    let customer = uid("cus");
    // Headers that never finish (nothing processed), then a body that never ends (processed:
    // the replay learns it with a 409).
    for (action, processed) in [("slow_headers", false), ("slow_body", true)] {
        let key = uid(action);
        script(&key, &[action]).await;
        let start = now();
        let r = track(&t, event(&customer, &key)).await.expect("queued");
        let took = now() - start;
        assert_eq!(s(&r, "status"), "queued", "{action}");
        assert_eq!(s(&r, "reason"), "timeout", "{action}");
        assert_eq!(s(&r, "idempotencyKey"), key);
        assert!(took < 800.0 + 1500.0, "{action}: resolved after {took} ms");
        assert_eq!(recorded(&key).await, u32::from(processed));
        drain_all(&t, 20).await;
        assert_eq!(recorded(&key).await, 1, "{action}: recorded exactly once");
        assert_eq!(events_of(&log, "delivered", &key), 1);
    }
    still_works(&t).await;
    close_and_delete(t, &db).await;

    // Without a queue the timeout holds too: a TrackError within timeoutMs, with the key.
    let t = AutumnTracker::new(json(&format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}","dangerouslyAllowBrowser":true,"queue":"off","maxRetries":0,"timeoutMs":500}}"#,
        mock()
    )))
    .unwrap();
    let key = uid("slow_off");
    script(&key, &["slow_headers"]).await;
    let start = now();
    let e = track(&t, event(&customer, &key))
        .await
        .expect_err("unavailable");
    assert!(now() - start < 500.0 + 1500.0);
    assert_eq!(s(&e, "code"), "unavailable");
    assert_eq!(s(&e, "idempotencyKey"), key);
    assert!(s(&e, "message").contains("no answer within 500 ms"));
    still_works(&t).await;
}
