//! Hostile input from JavaScript, beyond the wrong types and cycles, throwing getters, throwing
//! Proxies, lone surrogates and huge strings of `track.rs`: frozen, sealed and non-extensible
//! objects, `__proto__` / `constructor` / `prototype` as own keys, null-prototype objects,
//! getters on prototypes, Symbol keys, arrays with holes, typed arrays, Maps and Sets, class
//! instances, boxed primitives, benign and revoked Proxies, and the numbers at the edges
//! (-0, NaN, ±Infinity, 1e308, 5e-324, beyond 2^53).
//!
//! Each input is either accepted, and then the wire body (`validate()`) and what the mock
//! recorded carry exactly the expected members, or refused with a `TrackError`
//! `invalid_input` naming the field — never a wasm trap (`RuntimeError`, `unreachable`). After
//! every refusal the same tracker delivers a good event.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::tracker::AutumnTracker;
use js_sys::{Function, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

use crate::common::{get, json, mock, s, uid};

const KEY: &str = "am_sk_test_hostile_suite";

fn tracker() -> AutumnTracker {
    let opts = format!(
        r#"{{"secretKey":"{KEY}","baseUrl":"{}","dangerouslyAllowBrowser":true,"queue":"memory"}}"#,
        mock()
    );
    AutumnTracker::new(json(&opts)).unwrap_or_else(|e| panic!("tracker: {e:?}"))
}

async fn track(t: &AutumnTracker, input: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(t.track(input)).await
}

/// Every event the mock recorded under this idempotency key.
async fn recorded(key: &str) -> js_sys::Array {
    let url = format!("{}/_mock/events?idempotency_key={key}", mock());
    let resp = gloo_net::http::Request::get(&url)
        .send()
        .await
        .expect("mock reachable");
    let v = JSON::parse(&resp.text().await.unwrap()).unwrap();
    get(&v, "events").dyn_into().expect("events array")
}

/// Evaluates `src` with `C` (a customer id) and `K` (an idempotency key) in scope.
fn build(src: &str, customer: &str, key: &str) -> JsValue {
    let f = Function::new_with_args("C, K", &format!("return ({src});"));
    f.call2(
        &JsValue::UNDEFINED,
        &JsValue::from_str(customer),
        &JsValue::from_str(key),
    )
    .unwrap_or_else(|e| panic!("building {src}: {e:?}"))
}

/// JSON-level deep equality: numbers by `===` (so -0 equals 0), objects by their own
/// enumerable string keys (an own `__proto__` included), arrays element by element.
fn deep_equal(a: &JsValue, b: &JsValue) -> bool {
    let f = Function::new_with_args(
        "a, b",
        "const eq = (a, b) => {
           if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return a === b;
           if (Array.isArray(a) !== Array.isArray(b)) return false;
           const ka = Object.keys(a), kb = Object.keys(b);
           return ka.length === kb.length &&
             ka.every(k => Object.prototype.hasOwnProperty.call(b, k) && eq(a[k], b[k]));
         };
         return eq(a, b);",
    );
    f.call2(&JsValue::UNDEFINED, a, b).unwrap().as_bool() == Some(true)
}

/// A `TrackError` `invalid_input` on `field`, not a trap or any other exception.
fn expect_refusal(e: &JsValue, field: &str, case: &str) {
    assert!(
        e.is_instance_of::<js_sys::Error>(),
        "{case}: a real Error: {e:?}"
    );
    let name = s(e, "name");
    assert_eq!(name, "TrackError", "{case}: {:?}", get(e, "message"));
    assert_eq!(s(e, "code"), "invalid_input", "{case}");
    assert_eq!(s(e, "field"), field, "{case}: {}", s(e, "message"));
    let message = s(e, "message");
    assert!(!message.is_empty());
    assert!(
        !message.contains("unreachable") && !message.contains("RuntimeError"),
        "{case}: {message}"
    );
}

async fn good_event(t: &AutumnTracker, customer: &str, after: &str) {
    let r = track(
        t,
        json(&format!(
            r#"{{"customerId":"{customer}","featureId":"messages"}}"#
        )),
    )
    .await
    .unwrap_or_else(|e| panic!("a good event after {after}: {e:?}"));
    assert_eq!(s(&r, "status"), "delivered", "after {after}");
}

/// Inputs refused, with the field named. `C` is the customer, `K` a fresh key.
const REFUSED: &[(&str, &str, &str)] = &[
    // Own `__proto__` / `constructor` / `prototype` keys at the top: unknown fields, named.
    (
        "own __proto__ key",
        "Object.assign(JSON.parse('{\"__proto__\":{\"customerId\":\"evil\"}}'), {customerId: C, featureId: 'messages'})",
        "__proto__",
    ),
    (
        "own constructor key",
        "Object.assign(JSON.parse('{\"constructor\":{\"prototype\":{\"x\":1}}}'), {customerId: C, featureId: 'messages'})",
        "constructor",
    ),
    (
        "own prototype key",
        "({customerId: C, featureId: 'messages', prototype: {}})",
        "prototype",
    ),
    // Not plain objects: only `{}`/null-prototype objects and arrays are JSON.
    (
        "getters on the prototype",
        "Object.create({get customerId() { return C; }, get featureId() { return 'messages'; }})",
        "input",
    ),
    (
        "properties with getters on the prototype",
        "({customerId: C, featureId: 'messages', properties: Object.create({get a() { return 1; }})})",
        "properties",
    ),
    (
        "class instance as input",
        "new (class Ev { constructor() { this.customerId = C; this.featureId = 'messages'; } })()",
        "input",
    ),
    (
        "class instance in properties",
        "({customerId: C, featureId: 'messages', properties: {p: new (class P { constructor() { this.x = 1; } })()}})",
        "properties",
    ),
    ("a Map as input", "new Map([['customerId', C], ['featureId', 'messages']])", "input"),
    (
        "a Map as properties",
        "({customerId: C, featureId: 'messages', properties: new Map([['a', 1]])})",
        "properties",
    ),
    (
        "a Set in properties",
        "({customerId: C, featureId: 'messages', properties: {s: new Set([1, 2])}})",
        "properties",
    ),
    (
        "a typed array in properties",
        "({customerId: C, featureId: 'messages', properties: {t: new Uint8Array([1, 2, 3])}})",
        "properties",
    ),
    (
        "a typed array as properties",
        "({customerId: C, featureId: 'messages', properties: new Float64Array(4)})",
        "properties",
    ),
    ("a typed array as input", "new Uint8Array(16)", "input"),
    (
        "an ArrayBuffer and a DataView",
        "({customerId: C, featureId: 'messages', properties: {b: new ArrayBuffer(8), d: new DataView(new ArrayBuffer(4))}})",
        "properties",
    ),
    ("a Date as input", "new Date(0)", "input"),
    (
        "toJSON is a function, not called",
        "({customerId: C, featureId: 'messages', properties: {a: 1, toJSON() { return 'x'; }}})",
        "properties",
    ),
    // Boxed primitives are objects, not strings/numbers/booleans.
    (
        "a String object as customerId",
        "({customerId: new String(C), featureId: 'messages'})",
        "customerId",
    ),
    (
        "a Number object as value",
        "({customerId: C, featureId: 'messages', value: new Number(1)})",
        "value",
    ),
    (
        "a Boolean object as async",
        "({customerId: C, featureId: 'messages', async: new Boolean(true)})",
        "async",
    ),
    (
        "a Symbol as customerId",
        "({customerId: Symbol('c'), featureId: 'messages'})",
        "customerId",
    ),
    (
        "a Symbol as featureId",
        "({customerId: C, featureId: Symbol.iterator})",
        "featureId",
    ),
    // Arrays: a hole reads as undefined, which an array cannot carry in JSON.
    (
        "an array with holes",
        "({customerId: C, featureId: 'messages', properties: {a: [1, , 3]}})",
        "properties",
    ),
    (
        "a sparse array of length 2^32 - 1",
        "(() => { const a = []; a.length = 4294967295; return {customerId: C, featureId: 'messages', properties: {a}}; })()",
        "properties",
    ),
    (
        "getters that build deeper objects forever",
        "(() => { const mk = () => ({get x() { return mk(); }}); return {customerId: C, featureId: 'messages', properties: mk()}; })()",
        "properties",
    ),
    // Proxies beyond a throwing ownKeys (track.rs): a throwing getPrototypeOf, a revoked one.
    (
        "a Proxy whose getPrototypeOf throws",
        "({customerId: C, featureId: 'messages', properties: new Proxy({a: 1}, {getPrototypeOf() { throw new Error('trap'); }})})",
        "properties",
    ),
    (
        "a revoked Proxy",
        "(() => { const r = Proxy.revocable({}, {}); r.revoke(); return {customerId: C, featureId: 'messages', properties: r.proxy}; })()",
        "properties",
    ),
    (
        "a revoked Proxy as input",
        "(() => { const r = Proxy.revocable({}, {}); r.revoke(); return r.proxy; })()",
        "input",
    ),
    // Numbers at the edges.
    (
        "value -Infinity",
        "({customerId: C, featureId: 'messages', value: -Infinity})",
        "value",
    ),
    (
        "value 1e309 (Infinity)",
        "({customerId: C, featureId: 'messages', value: 1e309})",
        "value",
    ),
    (
        "NaN in properties",
        "({customerId: C, featureId: 'messages', properties: {n: NaN}})",
        "properties",
    ),
    (
        "-Infinity deep in properties",
        "({customerId: C, featureId: 'messages', properties: {a: [{b: -Infinity}]}})",
        "properties",
    ),
    (
        "timestamp NaN",
        "({customerId: C, featureId: 'messages', timestamp: NaN})",
        "timestamp",
    ),
    (
        "timestamp -0",
        "({customerId: C, featureId: 'messages', timestamp: -0})",
        "timestamp",
    ),
    (
        "timestamp 1e308",
        "({customerId: C, featureId: 'messages', timestamp: 1e308})",
        "timestamp",
    ),
    (
        "timestamp beyond 2^53",
        "({customerId: C, featureId: 'messages', timestamp: 2 ** 53 + 2})",
        "timestamp",
    ),
    // Frozen input does not change the verdict.
    (
        "a frozen input with a bad value",
        "Object.freeze({customerId: C, featureId: 'messages', value: '1'})",
        "value",
    ),
];

#[wasm_bindgen_test]
async fn hostile_inputs_are_refused_naming_the_field_and_the_tracker_keeps_working() {
    let t = tracker();
    let customer = uid("cus_hostile");
    for (case, src, field) in REFUSED {
        let key = uid("hk");
        let input = build(src, &customer, &key);
        // The same verdict synchronously (validate) and from track().
        let e = t.validate(input.clone()).expect_err(case);
        expect_refusal(&e, field, case);
        let e = track(&t, input).await.expect_err(case);
        expect_refusal(&e, field, case);
        good_event(&t, &customer, case).await;
    }
    // Nothing refused reached the server: only the good events.
    let url = format!("{}/_mock/events?customer_id={customer}", mock());
    let resp = gloo_net::http::Request::get(&url).send().await.unwrap();
    let v = JSON::parse(&resp.text().await.unwrap()).unwrap();
    let events: js_sys::Array = get(&v, "events").dyn_into().unwrap();
    assert_eq!(events.length() as usize, REFUSED.len());
    for ev in events.iter() {
        assert_eq!(s(&ev, "feature_id"), "messages");
        assert!(get(&ev, "properties").is_null() || get(&ev, "properties").is_undefined());
    }
}

/// Inputs accepted: `(case, input, expected wire members as JSON)`. The expected members are
/// compared with `validate()`'s body and with what the mock recorded.
const ACCEPTED: &[(&str, &str, &str)] = &[
    (
        "frozen input, properties and nested values",
        "Object.freeze({customerId: C, featureId: 'messages', idempotencyKey: K, properties: Object.freeze({a: 1, list: Object.freeze([1, 2, Object.freeze({b: true})])})})",
        r#"{"value":1,"properties":{"a":1,"list":[1,2,{"b":true}]}}"#,
    ),
    (
        "sealed input, non-extensible properties",
        "Object.seal({customerId: C, featureId: 'messages', idempotencyKey: K, value: 2, properties: Object.preventExtensions({x: 'y'})})",
        r#"{"value":2,"properties":{"x":"y"}}"#,
    ),
    (
        "non-enumerable and non-writable properties",
        "(() => { const p = {v: 1}; Object.defineProperty(p, 'hidden', {value: 2, enumerable: false}); Object.defineProperty(p, 'fixed', {value: 3, enumerable: true, writable: false}); return Object.freeze({customerId: C, featureId: 'messages', idempotencyKey: K, properties: p}); })()",
        r#"{"properties":{"v":1,"fixed":3}}"#,
    ),
    (
        "__proto__, constructor and prototype as own keys inside properties",
        "({customerId: C, featureId: 'messages', idempotencyKey: K, properties: JSON.parse('{\"__proto__\":{\"polluted\":true},\"constructor\":{\"prototype\":{\"polluted\":true}},\"prototype\":1}')})",
        r#"{"properties":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"prototype":1}}"#,
    ),
    (
        "null-prototype input and properties, with an own __proto__",
        "(() => { const p = Object.create(null); p.k = 'v'; p.__proto__ = 'x'; const i = Object.create(null); i.customerId = C; i.featureId = 'messages'; i.idempotencyKey = K; i.properties = p; return i; })()",
        r#"{"properties":{"k":"v","__proto__":"x"}}"#,
    ),
    (
        "own getters that return values",
        "({get customerId() { return C; }, featureId: 'messages', idempotencyKey: K, properties: {get lazy() { return 'computed'; }}})",
        r#"{"properties":{"lazy":"computed"}}"#,
    ),
    (
        "a getter that deletes a later member while being read",
        "({customerId: C, featureId: 'messages', idempotencyKey: K, properties: {get a() { delete this.b; return 1; }, b: 2}})",
        r#"{"properties":{"a":1}}"#,
    ),
    (
        "Symbol-keyed members are not JSON and are left out",
        "({[Symbol('s')]: 'ignored', customerId: C, featureId: 'messages', idempotencyKey: K, properties: {[Symbol.iterator]: 1, a: 2}})",
        r#"{"properties":{"a":2}}"#,
    ),
    (
        "an array with extra named members",
        "(() => { const a = [1, 2]; a.extra = 'x'; return {customerId: C, featureId: 'messages', idempotencyKey: K, properties: {a}}; })()",
        r#"{"properties":{"a":[1,2]}}"#,
    ),
    (
        "an arguments object is a plain object of indices",
        "(function () { return {customerId: C, featureId: 'messages', idempotencyKey: K, properties: {args: arguments}}; })(1, 'two')",
        r#"{"properties":{"args":{"0":1,"1":"two"}}}"#,
    ),
    (
        "a benign Proxy of a plain object",
        "({customerId: C, featureId: 'messages', idempotencyKey: K, properties: new Proxy({a: 1}, {})})",
        r#"{"properties":{"a":1}}"#,
    ),
    (
        "value -0",
        "({customerId: C, featureId: 'ai_tokens', idempotencyKey: K, value: -0})",
        r#"{"value":0}"#,
    ),
    (
        "value 1e308",
        "({customerId: C, featureId: 'ai_tokens', idempotencyKey: K, value: 1e308})",
        r#"{"value":1e308}"#,
    ),
    (
        "value -1.7976931348623157e308",
        "({customerId: C, featureId: 'ai_tokens', idempotencyKey: K, value: -Number.MAX_VALUE})",
        r#"{"value":-1.7976931348623157e308}"#,
    ),
    (
        "value 5e-324",
        "({customerId: C, featureId: 'ai_tokens', idempotencyKey: K, value: Number.MIN_VALUE})",
        r#"{"value":5e-324}"#,
    ),
    (
        "value 2^53 - 1",
        "({customerId: C, featureId: 'ai_tokens', idempotencyKey: K, value: Number.MAX_SAFE_INTEGER})",
        r#"{"value":9007199254740991}"#,
    ),
    (
        "numbers at the edges inside properties",
        "({customerId: C, featureId: 'messages', idempotencyKey: K, properties: {neg0: -0, big: 1e308, tiny: 5e-324, unsafe: 2 ** 53 + 2, frac: 0.1, neg: -1.5e-9}})",
        r#"{"properties":{"neg0":0,"big":1e308,"tiny":5e-324,"unsafe":9007199254740994,"frac":0.1,"neg":-1.5e-9}}"#,
    ),
];

#[wasm_bindgen_test]
async fn odd_but_valid_inputs_are_sent_exactly_as_json_would_carry_them() {
    let t = tracker();
    let customer = uid("cus_odd");
    for (case, src, want) in ACCEPTED {
        let key = uid("hk");
        let input = build(src, &customer, &key);
        let want = json(want);
        let wire = t
            .validate(input.clone())
            .unwrap_or_else(|e| panic!("{case}: refused: {:?}", get(&e, "message")));
        let r = track(&t, input)
            .await
            .unwrap_or_else(|e| panic!("{case}: {:?}", get(&e, "message")));
        assert_eq!(s(&r, "status"), "delivered", "{case}");
        assert_eq!(s(&r, "idempotencyKey"), key, "{case}");
        let events = recorded(&key).await;
        assert_eq!(events.length(), 1, "{case}: recorded once");
        let ev = events.get(0);
        for (name, body) in [("validate()", &wire), ("the mock", &ev)] {
            assert_eq!(s(body, "customer_id"), customer, "{case}: {name}");
            assert_eq!(s(body, "idempotency_key"), key, "{case}: {name}");
            for k in Reflect::own_keys(&want).unwrap().iter() {
                let k = k.as_string().unwrap();
                assert!(
                    deep_equal(&get(body, &k), &get(&want, &k)),
                    "{case}: `{k}` in {name}: {:?}, want {:?}",
                    JSON::stringify(&get(body, &k)),
                    JSON::stringify(&get(&want, &k))
                );
            }
        }
    }
    // No prototype was polluted along the way.
    let polluted =
        js_sys::eval("({}).polluted !== undefined || Object.prototype.polluted !== undefined")
            .unwrap();
    assert_eq!(polluted.as_bool(), Some(false));
}

#[wasm_bindgen_test]
fn inherited_getters_are_never_read() {
    // A getter on Object.prototype itself: only own keys are read, so it is neither called nor
    // sent. Defined and removed around a synchronous validate(), so no other test can see it.
    let t = tracker();
    let customer = uid("cus_inh");
    let setup = Function::new_no_args(
        "globalThis.__autumnReads = 0;
         Object.defineProperty(Object.prototype, 'entityId', {
           configurable: true, enumerable: true,
           get() { globalThis.__autumnReads++; return 'evil'; } });",
    );
    let teardown = Function::new_no_args(
        "delete Object.prototype.entityId; const n = globalThis.__autumnReads;
         delete globalThis.__autumnReads; return n;",
    );
    setup.call0(&JsValue::UNDEFINED).unwrap();
    let result = t.validate(json(&format!(
        r#"{{"customerId":"{customer}","featureId":"messages"}}"#
    )));
    let reads = teardown.call0(&JsValue::UNDEFINED).unwrap();
    let wire = result.unwrap_or_else(|e| panic!("refused: {:?}", get(&e, "message")));
    assert_eq!(reads.as_f64(), Some(0.0), "the inherited getter was read");
    assert!(
        !Reflect::has(&wire, &JsValue::from_str("entity_id")).unwrap(),
        "{:?}",
        JSON::stringify(&wire)
    );
    assert_eq!(s(&wire, "customer_id"), customer);
}
