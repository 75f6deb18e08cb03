//! Test bodies shared by the page and dedicated-worker suites. Every test uses its own
//! customer id and keys, so tests never see each other's events in the shared mock.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::tracker::AutumnTracker;
use js_sys::{Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{get, json, mock, s, uid};

const KEY: &str = "am_sk_test_wasm_suite";

async fn http(method: &str, path: &str, body: Option<&str>) -> JsValue {
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
    let resp = req.send().await.expect("mock reachable");
    let text = resp.text().await.unwrap();
    JSON::parse(&text).unwrap_or(JsValue::from_str(&text))
}

/// Every event the mock recorded under this idempotency key.
async fn recorded(key: &str) -> js_sys::Array {
    let v = http("GET", &format!("/_mock/events?idempotency_key={key}"), None).await;
    let arr = if js_sys::Array::is_array(&v) {
        v
    } else {
        get(&v, "events")
    };
    arr.dyn_into().expect("events array")
}

async fn script(key: &str, actions: &[&str]) {
    let list: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    http(
        "POST",
        "/_mock/faults",
        Some(&format!(
            r#"{{"scripts":{{"{key}":[{}]}}}}"#,
            list.join(",")
        )),
    )
    .await;
}

fn tracker(extra: &str) -> AutumnTracker {
    let opts = format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}","dangerouslyAllowBrowser":true{}{extra}}}"#,
        mock(),
        if extra.is_empty() { "" } else { "," }
    );
    AutumnTracker::new(json(&opts)).unwrap_or_else(|e| panic!("tracker: {e:?}"))
}

async fn track(t: &AutumnTracker, input: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(t.track(input)).await
}

fn expect_error(e: &JsValue, code: &str) {
    assert!(e.is_instance_of::<js_sys::Error>(), "a real Error: {e:?}");
    assert_eq!(s(e, "name"), "TrackError");
    assert_eq!(s(e, "code"), code, "message: {:?}", get(e, "message"));
    assert!(!s(e, "message").is_empty());
}

#[wasm_bindgen_test]
async fn delivers_with_body_key_headers_and_balance() {
    let t = tracker("");
    let customer = uid("cus");
    let r = track(&t, json(&format!(r#"{{"customerId":"{customer}","featureId":"messages","value":3,"properties":{{"model":"m1"}}}}"#)))
        .await
        .expect("delivered");
    assert_eq!(s(&r, "status"), "delivered");
    assert_eq!(get(&r, "attempts").as_f64(), Some(1.0));
    let key = s(&r, "idempotencyKey");
    assert!(autumn_track::key::is_uuid_v7(&key), "{key}");
    let response = get(&r, "response");
    assert_eq!(s(&response, "customer_id"), customer);
    assert_eq!(s(&get(&response, "balance"), "feature_id"), "messages");

    let events = recorded(&key).await;
    assert_eq!(events.length(), 1);
    let ev = events.get(0);
    assert_eq!(get(&ev, "value").as_f64(), Some(3.0));
    assert_eq!(s(&get(&ev, "properties"), "model"), "m1");
    let headers = get(&ev, "headers");
    assert_eq!(s(&headers, "authorization"), format!("Bearer {KEY}"));
    assert_eq!(s(&headers, "x-api-version"), "2.3.0");
    // The key rides in the body only: a header key would share its claim with every other
    // Autumn route (issue 12, item 10).
    assert!(
        get(&headers, "idempotency-key").is_undefined(),
        "no Idempotency-Key header"
    );
    assert_eq!(s(&headers, "content-type"), "application/json");
}

#[wasm_bindgen_test]
async fn same_key_twice_is_a_duplicate_not_a_second_charge() {
    let t = tracker("");
    let key = uid("dup");
    let input = format!(
        r#"{{"customer_id":"{}","feature_id":"messages","idempotency_key":"{key}"}}"#,
        uid("cus")
    );
    let first = track(&t, json(&input)).await.expect("first");
    assert_eq!(s(&first, "status"), "delivered");
    let second = track(&t, json(&input)).await.expect("second");
    assert_eq!(s(&second, "status"), "duplicate");
    assert_eq!(s(&second, "idempotencyKey"), key);
    assert_eq!(recorded(&key).await.length(), 1);
}

#[wasm_bindgen_test]
async fn every_validation_error_is_typed_and_sends_nothing() {
    let t = tracker("");
    let customer = uid("cus");
    let cases: &[(&str, &str)] = &[
        (r#"{"featureId":"messages"}"#, "customerId"),
        (r#"{"customerId":"","featureId":"messages"}"#, "customerId"),
        (r#"{"customerId":7,"featureId":"messages"}"#, "customerId"),
        (r#"{"customerId":"C"}"#, "featureId"),
        (
            r#"{"customerId":"C","featureId":"messages","eventName":"message_sent"}"#,
            "eventName",
        ),
        (r#"{"customerId":"C","featureId":""}"#, "featureId"),
        (
            r#"{"customerId":"C","featureId":"messages","value":"2"}"#,
            "value",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","properties":[1]}"#,
            "properties",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","properties":null}"#,
            "properties",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","idempotencyKey":""}"#,
            "idempotencyKey",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","timestamp":-1}"#,
            "timestamp",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","timestamp":1.5}"#,
            "timestamp",
        ),
        (
            r#"{"customerId":"C","featureId":"messages","custId":"x"}"#,
            "custId",
        ),
        (
            r#"{"customerId":"C","customer_id":"C","featureId":"messages"}"#,
            "customerId",
        ),
    ];
    for (input, field) in cases {
        let input = input.replace("\"C\"", &format!("\"{customer}\""));
        let e = track(&t, json(&input)).await.expect_err(&input);
        expect_error(&e, "invalid_input");
        assert_eq!(s(&e, "field"), *field, "{input}");
    }
    // Values JSON text cannot express.
    let js_cases: &[(&str, &str)] = &[
        ("({customerId:'C',featureId:'messages',value:NaN})", "value"),
        ("({customerId:'C',featureId:'messages',value:Infinity})", "value"),
        ("({customerId:'C',featureId:'messages',properties:{f(){}}})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{s:Symbol('x')}})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{n:10n}})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{d:new Date(0)}})", "properties"),
        ("(()=>{const p={};p.self=p;return {customerId:'C',featureId:'messages',properties:p}})()", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{get x(){throw new Error('boom')}}})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:new Proxy({}, {ownKeys(){throw new Error('trap')}})})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{s:'\\uD800'}})", "properties"),
        ("({customerId:'C',featureId:'messages',properties:{big:'x'.repeat(70000)}})", "properties"),
        ("({customerId:'x'.repeat(10000000),featureId:'messages'})", "customerId"),
        ("({customerId:'C',featureId:'messages',properties:JSON.parse('['.repeat(40)+']'.repeat(40)) && {deep: JSON.parse('{\"a\":'.repeat(40)+'1'+'}'.repeat(40))}})", "properties"),
    ];
    for (src, field) in js_cases {
        let src = src.replace("'C'", &format!("'{customer}'"));
        let input = js_sys::eval(&src).expect(&src);
        let e = track(&t, input).await.expect_err(&src);
        expect_error(&e, "invalid_input");
        assert_eq!(s(&e, "field"), *field, "{src}");
    }
    // Nothing of the above reached the server.
    let events = http(
        "GET",
        &format!("/_mock/events?customer_id={customer}"),
        None,
    )
    .await;
    let events: js_sys::Array = (if js_sys::Array::is_array(&events) {
        events
    } else {
        get(&events, "events")
    })
    .dyn_into()
    .unwrap();
    assert_eq!(events.length(), 0);
    // And the tracker still works.
    let ok = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{customer}","featureId":"messages"}}"#
        )),
    )
    .await
    .expect("good event after bad ones");
    assert_eq!(s(&ok, "status"), "delivered");
}

#[wasm_bindgen_test]
async fn retries_503s_with_the_same_key() {
    let t = tracker("");
    let key = uid("r503");
    script(&key, &["503", "503"]).await;
    let r = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages","idempotencyKey":"{key}"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect("delivered after retries");
    assert_eq!(s(&r, "status"), "delivered");
    // The script is keyed by idempotency key: three attempts consumed it, so all three carried it.
    assert_eq!(get(&r, "attempts").as_f64(), Some(3.0));
    assert_eq!(recorded(&key).await.length(), 1);
}

#[wasm_bindgen_test]
async fn honours_retry_after_on_429() {
    let t = tracker("");
    let key = uid("r429");
    script(&key, &["429"]).await;
    let start = js_sys::Date::now();
    let r = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages","idempotencyKey":"{key}"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect("delivered after 429");
    assert_eq!(get(&r, "attempts").as_f64(), Some(2.0));
    assert!(
        js_sys::Date::now() - start >= 950.0,
        "waited for Retry-After: 1"
    );
    assert_eq!(recorded(&key).await.length(), 1);
}

#[wasm_bindgen_test]
async fn recorded_then_dropped_connection_is_not_counted_twice() {
    let t = tracker(&format!(
        r#""timeoutMs":1000,"confirmAfterMs":1000,"queueName":"{}""#,
        uid("dropq")
    ));
    let key = uid("drop");
    script(&key, &["drop_after_record"]).await;
    let r = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages","idempotencyKey":"{key}"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect("settled");
    let shown = JSON::stringify(&r).ok();
    // The first attempt was recorded but its answer lost. Chromium and Firefox resend the POST
    // themselves when a reused connection drops, and the tracker sees only the resend's 409:
    // the one attempt it knows of was answered, so that is proof. WebKit reports the drop: that
    // attempt got no answer and may still be running, so a 409 now proves nothing — the event
    // stays queued until the first must have ended (`confirmAfterMs`), and a resend's 409 then
    // is proof.
    if s(&r, "status") == "queued" {
        assert_eq!(s(&r, "reason"), "network_error", "{shown:?}");
        assert!(s(&r, "message").contains("confirmed in"), "{shown:?}");
        JsFuture::from(js_sys::Promise::new(&mut |done, _| {
            let g = js_sys::global();
            let set: js_sys::Function = Reflect::get(&g, &"setTimeout".into())
                .unwrap()
                .unchecked_into();
            set.call2(&g, &done, &JsValue::from(1_200)).unwrap();
        }))
        .await
        .unwrap();
        JsFuture::from(t.flush()).await.unwrap();
        let p = JsFuture::from(t.pending()).await.unwrap();
        assert_eq!(get(&p, "queued").as_f64(), Some(0.0), "confirmed: {p:?}");
        assert_eq!(get(&p, "deadLetters").as_f64(), Some(0.0), "{p:?}");
    } else {
        assert_eq!(s(&r, "status"), "duplicate", "{shown:?}");
    }
    assert_eq!(recorded(&key).await.length(), 1);
}

#[wasm_bindgen_test]
async fn unknown_feature_is_final_with_autumns_code() {
    let t = tracker("");
    let e = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"no_such_feature"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect_err("404");
    expect_error(&e, "feature_not_found");
    assert_eq!(get(&e, "status").as_f64(), Some(404.0));
    assert!(get(&e, "idempotencyKey").is_string());
}

#[wasm_bindgen_test]
async fn a_bad_key_is_refused_and_never_echoed() {
    // A malformed key, passed as a proxy would pass its own header. Without a queue, the 401
    // is the caller's error; with one, the event is kept until the key is fixed (a 401 says
    // nothing about the event), and the message does not echo the key either.
    let t = AutumnTracker::new(json(&format!(
        r#"{{"baseUrl":"{}","queue":"off","headers":{{"Authorization":"Bearer nonsense_key_123"}}}}"#,
        mock()
    )))
    .unwrap();
    let queued = AutumnTracker::new(json(&format!(
        r#"{{"baseUrl":"{}","queue":"memory","headers":{{"Authorization":"Bearer nonsense_key_123"}}}}"#,
        mock()
    )))
    .unwrap();
    let r = track(
        &queued,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect("kept");
    assert_eq!(s(&r, "status"), "queued");
    assert_eq!(s(&r, "reason"), "unauthorized");
    assert!(!s(&r, "message").contains("nonsense_key_123"));
    queued.close();
    let e = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect_err("401");
    expect_error(&e, "invalid_secret_key");
    assert_eq!(get(&e, "status").as_f64(), Some(401.0));
    assert!(
        !s(&e, "message").contains("nonsense_key_123"),
        "the key is not echoed"
    );
}

#[wasm_bindgen_test]
async fn gives_up_as_unavailable_with_the_key() {
    let t = tracker(r#""maxRetries":1,"queue":"off""#);
    let key = uid("gone");
    script(&key, &["500", "502", "500"]).await;
    let e = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages","idempotencyKey":"{key}"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect_err("unavailable");
    expect_error(&e, "unavailable");
    assert_eq!(s(&e, "idempotencyKey"), key);
    assert_eq!(get(&e, "status").as_f64(), Some(502.0));
    assert_eq!(recorded(&key).await.length(), 0);
    assert!(!s(&e, "message").contains(KEY));
}

#[wasm_bindgen_test]
async fn timeout_holds_against_a_slow_server() {
    let t = tracker(r#""maxRetries":0,"timeoutMs":300,"queue":"off""#);
    let key = uid("slow");
    script(&key, &["latency:3000"]).await;
    let start = js_sys::Date::now();
    let e = track(
        &t,
        json(&format!(
            r#"{{"customerId":"{}","featureId":"messages","idempotencyKey":"{key}"}}"#,
            uid("cus")
        )),
    )
    .await
    .expect_err("timeout");
    expect_error(&e, "unavailable");
    assert!(
        s(&e, "message").contains("no answer within 300 ms"),
        "{}",
        s(&e, "message")
    );
    assert!(
        js_sys::Date::now() - start < 2500.0,
        "did not wait for the slow server"
    );
}

#[wasm_bindgen_test]
fn secret_key_refused_in_browser_without_opt_in() {
    let e = AutumnTracker::new(json(&format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}"}}"#,
        mock()
    )))
    .err()
    .expect("refused");
    expect_error(&e, "secret_key_in_browser");
    assert!(!s(&e, "message").contains(KEY));
    // Without a key (pointing at the app's own route) it is fine.
    assert!(AutumnTracker::new(json(r#"{"baseUrl":"/api/autumn"}"#)).is_ok());
}

#[wasm_bindgen_test]
fn option_errors_are_typed() {
    for (opts, field) in [
        (r#"{"secretkey":"x"}"#, "secretkey"),
        (r#"{"baseUrl":"ftp://x"}"#, "baseUrl"),
        (r#"{"timeoutMs":-1}"#, "timeoutMs"),
        (r#"{"secretKey":"am_pk_test_1"}"#, "secretKey"),
    ] {
        let e = AutumnTracker::new(json(opts)).err().expect(opts);
        expect_error(&e, "invalid_options");
        assert_eq!(s(&e, "field"), field);
    }
}

/// A Cloudflare Queue is a Workers thing, SQLite and PostgreSQL queues Node's: the browser
/// build (which leaves the hand-over out of its wasm, and the server stores out of its bundle)
/// refuses each queue object by name instead of quietly keeping the events in memory.
#[wasm_bindgen_test]
fn the_browser_build_refuses_a_cloudflare_queue() {
    let binding = js_sys::Object::new();
    Reflect::set(&binding, &"send".into(), &js_sys::Function::new_no_args("")).unwrap();
    let cf = js_sys::Object::new();
    Reflect::set(&cf, &"cloudflareQueue".into(), &binding).unwrap();
    for queue in [JsValue::from(cf), json(r#"{"sqlite":"./queue.db"}"#)] {
        let opts = json(r#"{"baseUrl":"/api/autumn"}"#);
        Reflect::set(&opts, &"queue".into(), &queue).unwrap();
        let e = AutumnTracker::new(opts).err().expect("refused");
        expect_error(&e, "invalid_options");
        assert_eq!(s(&e, "field"), "queue");
        assert!(
            s(&e, "message").contains("Workers build"),
            "{}",
            s(&e, "message")
        );
    }
}

/// Reads a key as UUID v7 into (high, low) 64-bit halves, `None` for any other layout:
/// lowercase hex, dashes at 8/13/18/23, version nibble 7, variant bits 10.
fn v7_halves(key: &str) -> Option<(u64, u64)> {
    let b = key.as_bytes();
    if b.len() != 36 {
        return None;
    }
    let mut halves = [0u64; 2];
    let mut n = 0;
    for (i, &c) in b.iter().enumerate() {
        let d = match (i, c) {
            (8 | 13 | 18 | 23, b'-') => continue,
            (_, b'0'..=b'9') => c - b'0',
            (_, b'a'..=b'f') => c - b'a' + 10,
            _ => return None,
        };
        halves[n / 16] = halves[n / 16] << 4 | u64::from(d);
        n += 1;
    }
    let (hi, lo) = (halves[0], halves[1]);
    (n == 32 && (hi >> 12) & 0xF == 7 && lo >> 62 == 0b10).then_some((hi, lo))
}

/// 1,000,000 idempotency keys made through the real path — the generator `track()` uses when
/// the caller gives no key: `crypto.getRandomValues` and `Date.now()` of this browser (a few
/// thousand more through `validate()`, the public door to it) — are all distinct UUID v7s:
/// version and variant bits set, a millisecond from the run, in order across milliseconds (the
/// one ordering v7 promises; within a millisecond the order is random), and random bits that
/// each come up about half the time.
#[wasm_bindgen_test]
fn a_million_generated_keys_are_unique_v7_and_time_ordered() {
    // The million in a page; the dedicated-worker run of this suite checks the worker's Web
    // Crypto with 100,000 (the test builds are unoptimised: a million takes seconds).
    let in_page = Reflect::has(&js_sys::global(), &JsValue::from_str("document")).unwrap();
    let n: usize = if in_page { 1_000_000 } else { 100_000 };
    const VIA_VALIDATE: usize = 5_000;
    const SAMPLE: usize = 100_000;
    let t = tracker(r#""queue":"off""#);
    let input = json(r#"{"customerId":"cus_keys","featureId":"messages"}"#);
    // Count the bytes drawn from Web Crypto: every key's must come from it, not a fallback
    // (drawn 512 at a time, each byte used once).
    let spy = js_sys::Function::new_no_args(
        "const c = globalThis.crypto, orig = c.getRandomValues;
         globalThis.__autumnRng = 0;
         c.getRandomValues = function (a) { globalThis.__autumnRng += a.length; return orig.call(c, a); };",
    );
    let unspy = js_sys::Function::new_no_args(
        "delete globalThis.crypto.getRandomValues; const n = globalThis.__autumnRng;
         delete globalThis.__autumnRng; return n;",
    );
    let mut keys: Vec<(u64, u64)> = Vec::with_capacity(n + VIA_VALIDATE);
    let mut ones = [0u32; 128];
    let (mut prev_ms, mut prev_key) = (0u64, String::new());
    let start = js_sys::Date::now();
    spy.call0(&JsValue::UNDEFINED).unwrap();
    for i in 0..n + VIA_VALIDATE {
        let key = if i < n {
            autumn_track::__new_key()
        } else {
            s(&t.validate(input.clone()).unwrap(), "idempotency_key")
        };
        let Some((hi, lo)) = v7_halves(&key) else {
            panic!("key {i} is not a UUID v7: {key}")
        };
        let ms = hi >> 16;
        assert!(
            ms >= prev_ms,
            "key {i} ({key}) is from an earlier millisecond than {prev_key}"
        );
        if ms > prev_ms {
            assert!(
                key > prev_key,
                "{key} sorts before {prev_key} of an earlier millisecond"
            );
            prev_ms = ms;
        }
        if i < SAMPLE {
            for (b, count) in ones.iter_mut().enumerate() {
                let bit = if b < 64 { lo >> b } else { hi >> (b - 64) };
                *count += (bit & 1) as u32;
            }
        }
        keys.push((hi, lo));
        prev_key = key;
    }
    let drawn = unspy.call0(&JsValue::UNDEFINED).unwrap().as_f64().unwrap();
    let end = js_sys::Date::now();
    // 10 random bytes a key from pools of 512 (51 keys a pool, the last 2 bytes unused); up to
    // one pool drawn before the spy, or left unused after.
    let need = ((n + VIA_VALIDATE) as f64 / 51.0).ceil() * 512.0;
    assert!(
        drawn + 512.0 >= need && drawn <= need + 512.0,
        "crypto.getRandomValues gave {drawn} bytes for {need} bytes of pools the keys need"
    );
    let first_ms = keys[0].0 >> 16;
    assert!(
        first_ms as f64 >= start.floor() && prev_ms as f64 <= end,
        "timestamps from the run: {first_ms}..{prev_ms} within {start}..{end}"
    );
    // Bits 0–61 and 64–75 are random (checked on the first 100,000 keys: 1% off half is
    // 6 standard deviations); 63–62 are the variant (10), 79–76 the version (0111).
    for (b, &count) in ones.iter().enumerate().take(80) {
        let frac = f64::from(count) / SAMPLE as f64;
        match b {
            62 | 79 => assert_eq!(count, 0, "bit {b}"),
            63 | 76..=78 => assert_eq!(count as usize, SAMPLE, "bit {b}"),
            _ => assert!(
                (0.49..=0.51).contains(&frac),
                "random bit {b} set in {frac} of keys"
            ),
        }
    }
    // Time-ordered across milliseconds, so equal keys could only sit in one millisecond's run.
    let mut dups = 0;
    let mut run_start = 0;
    for i in 1..=keys.len() {
        if i == keys.len() || keys[i].0 >> 16 != keys[run_start].0 >> 16 {
            let run = &mut keys[run_start..i];
            run.sort_unstable();
            dups += run.windows(2).filter(|w| w[0] == w[1]).count();
            run_start = i;
        }
    }
    assert_eq!(dups, 0, "duplicate keys among {}", keys.len());
    wasm_bindgen_test::console_log!(
        "{} keys in {} ms over {} milliseconds",
        keys.len(),
        end - start,
        prev_ms - first_ms + 1
    );
}
