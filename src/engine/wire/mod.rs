//! What crosses between the engine and its driver, as data: commands out as JSON text (one
//! string per batch, which the driver `JSON.parse`s), and the driver's reports back in as a
//! [`Value`] (the wasm edge reads JavaScript objects with the same guarded converter as
//! `track()` input). Plain Rust, so `cargo test` checks the exact shapes `js/tracker.js` and
//! `js/store.js` read — and one string per batch instead of a JavaScript object built field by
//! field keeps the wasm small.
//!
//! Records are stored as `{ v, key, seq, customer, body, ts?, createdAt, attempts, nextAt,
//! lastError?, serverCreated?, sentAt?, sentSrv? }`; dead letters as `{ v, key, record, code,
//! message, status?, failedAt }`. What comes back from storage may be foreign or corrupt: it is
//! validated field by field.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use super::{Command, Endpoint, Id, Input, Notice, Outcome, Storage, StoreCmd, Stored, Target};
use crate::answer::{Answered, Reply};
use crate::error::TrackError;
use crate::queue::{DeadLetter, Record, Sent, RECORD_VERSION};
use crate::value::{push_u64, write_num, write_str, FormatNum, Value};

mod read;
mod write;
#[allow(clippy::wildcard_imports)]
pub use read::*;
#[allow(clippy::wildcard_imports)]
pub use write::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{HandOverItem, Limit};
    use crate::error::Code;
    use alloc::vec;

    fn fmt(n: f64, out: &mut String) {
        crate::value::tests_support::rust_num(n, out)
    }

    fn json(c: Command) -> serde_json::Value {
        let mut s = String::new();
        write_commands(&mut s, [c], &fmt, &mut None);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"));
        v[0].clone()
    }

    fn rec() -> Record {
        Record {
            key: "k\"1".into(),
            seq: 1_800_000_000_000.0 + 1.0 / 1024.0,
            customer: "cus".into(),
            body: "{\"customer_id\":\"cus\",\"value\":1}".into(),
            ts: Some(1_799_999_999_000.0),
            created_at: 1_800_000_000_000.0,
            server_created: None,
            attempts: 2,
            next_at: 1_800_000_001_000.0,
            last_error: Some("timeout\n".into()),
            sent_at: Some(Sent {
                local: 1_800_000_000_500.0,
                server: Some(1_800_000_002_500.0),
            }),
        }
    }

    /// The JSON value a stored object reads back as.
    fn value(v: &serde_json::Value) -> Value {
        crate::value::tests_support::from_serde(v)
    }

    #[test]
    fn commands_have_the_shapes_the_driver_reads() {
        let send = json(Command::Send {
            id: 7,
            endpoint: Endpoint::Batch,
            body: "[{\"a\":\"b\"}]".into(),
            keepalive: false,
        });
        assert_eq!(
            send,
            serde_json::json!({"t":"send","id":7,"batch":true,"body":"[{\"a\":\"b\"}]","keepalive":false})
        );
        assert_eq!(
            json(Command::Wake(None)),
            serde_json::json!({"t":"wake","at":null})
        );
        assert_eq!(json(Command::Wake(Some(5.0)))["at"], 5);
        let add = json(Command::Store {
            id: 3,
            target: Target::Spill,
            cmd: StoreCmd::Add {
                recs: vec![rec()],
                limit: Some(Limit {
                    max: 10,
                    busy: Rc::new(vec!["b".into()]),
                    now: 9.0,
                }),
            },
        });
        assert_eq!(add["op"], "add");
        assert_eq!(add["spill"], true);
        assert_eq!(
            add["arg"]["limit"],
            serde_json::json!({"max":10,"busy":["b"],"now":9})
        );
        // The same list again (the same Rc): written once per driver, then "same".
        let busy = Rc::new(vec![String::from("b"), String::from("c")]);
        let add_busy = |busy: &Rc<Vec<String>>| Command::Store {
            id: 4,
            target: Target::Main,
            cmd: StoreCmd::Add {
                recs: vec![],
                limit: Some(Limit {
                    max: 10,
                    busy: busy.clone(),
                    now: 9.0,
                }),
            },
        };
        let mut sent = None;
        let mut s = String::new();
        write_commands(&mut s, [add_busy(&busy), add_busy(&busy)], &fmt, &mut sent);
        let mut t = String::new();
        let other = Rc::new(vec![String::from("b"), String::from("c")]);
        write_commands(&mut t, [add_busy(&busy), add_busy(&other)], &fmt, &mut sent);
        let (s, t): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(&s).unwrap(),
            serde_json::from_str(&t).unwrap(),
        );
        assert_eq!(s[0]["arg"]["limit"]["busy"], serde_json::json!(["b", "c"]));
        assert_eq!(s[1]["arg"]["limit"]["busy"], "same");
        assert_eq!(t[0]["arg"]["limit"]["busy"], "same");
        assert_eq!(t[1]["arg"]["limit"]["busy"], serde_json::json!(["b", "c"]));
        let r = &add["arg"]["records"][0];
        assert_eq!(r["v"], 1);
        assert_eq!(r["key"], "k\"1");
        assert_eq!(r["lastError"], "timeout\n");
        assert_eq!(r["sentSrv"], 1_800_000_002_500u64);
        let h = json(Command::HandOver {
            id: 1,
            items: vec![HandOverItem {
                key: "k".into(),
                body: "{}".into(),
                created_at: 1.0,
                reason: "timeout",
                sent_at: None,
                delay_ms: 0,
            }],
        });
        assert_eq!(
            h["items"][0],
            serde_json::json!({"idempotencyKey":"k","body":"{}","createdAt":1,"reason":"timeout","delayMs":0})
        );
        let err = json(Command::Resolve {
            call: 4,
            result: Err(TrackError::new(Code::Unavailable, "no").with_key("k")),
        });
        assert_eq!(
            err["error"],
            serde_json::json!({"code":"unavailable","message":"no","idempotencyKey":"k"})
        );
        let dead = DeadLetter {
            record: rec(),
            code: "feature_not_found".into(),
            message: "m".into(),
            status: Some(404),
            failed_at: 2.0,
        };
        let letters = json(Command::Resolve {
            call: 5,
            result: Ok(Outcome::DeadLetters(vec![dead.clone()])),
        });
        assert_eq!(letters["value"][0]["event"]["value"], 1);
        assert_eq!(letters["value"][0]["status"], 404);
        let flushed = json(Command::Resolve {
            call: 6,
            result: Ok(Outcome::Flushed {
                delivered: 1,
                duplicates: 0,
                failed: 0,
                remaining: 2,
                handed_over: 0,
            }),
        });
        assert_eq!(
            flushed["value"],
            serde_json::json!({"delivered":1,"duplicates":0,"failed":0,"remaining":2})
        );
        let delivered = json(Command::Resolve {
            call: 6,
            result: Ok(Outcome::Delivered {
                key: "k".into(),
                attempts: 1,
                response: 9,
            }),
        });
        assert_eq!(
            delivered["value"],
            serde_json::json!({"status":"delivered","idempotencyKey":"k","attempts":1,"responseId":9})
        );
        // A dead letter written for the store reads back as itself.
        let d = json(Command::Store {
            id: 1,
            target: Target::Main,
            cmd: StoreCmd::MoveToDead {
                letters: vec![dead.clone()],
            },
        });
        assert_eq!(dead_from(&value(&d["arg"][0])), dead);
    }

    #[test]
    fn records_round_trip_and_garbage_is_named() {
        let mut s = String::new();
        write_record(&mut s, &rec(), true, &fmt);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(record_from(&value(&v)), Ok(rec()));
        let mut bare = rec();
        bare.ts = None;
        bare.last_error = None;
        bare.sent_at = None;
        let mut s = String::new();
        write_record(&mut s, &bare, true, &fmt);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(record_from(&value(&v)), Ok(bare));
        for (junk, why) in [
            (
                serde_json::json!({"key":"x"}),
                "`v` is missing or not a number",
            ),
            (
                serde_json::json!({"v":2,"key":"x"}),
                "unsupported record version `v`",
            ),
            (
                serde_json::json!({"v":1,"key":"x","seq":1,"customer":"c","body":"{}","createdAt":1,"attempts":-1,"nextAt":1}),
                "`attempts` is missing or not a non-negative integer",
            ),
            (serde_json::json!("text"), "not an object"),
        ] {
            let got = record_from(&value(&junk));
            assert_eq!(got.as_ref().map_err(|e| e.1.as_str()), Err(why), "{junk}");
        }
        assert_eq!(
            record_from(&value(&serde_json::json!({"key":"x"})))
                .unwrap_err()
                .0,
            "x"
        );
        let letter = dead_from(&value(&serde_json::json!({"v":1,"key":"y","record":{}})));
        assert_eq!(letter.code, "corrupt_record");
        assert_eq!(letter.record.key, "y");
    }

    #[test]
    fn reports_become_inputs() {
        let mut kinds = |_| OpKind::Loaded;
        let v = value(&serde_json::json!({"t":"stored","id":3,"ok":true,"v":[{"key":"x"}]}));
        let Some(Input::Stored {
            id: 3,
            result: Ok(Stored::Loaded(l)),
        }) = input_from(&v, &mut kinds).unwrap()
        else {
            panic!("not a load");
        };
        assert_eq!(l.len(), 1);
        assert!(l[0].is_err());
        let v =
            value(&serde_json::json!({"t":"stored","id":3,"ok":false,"v":"QuotaExceededError"}));
        assert_eq!(
            input_from(&v, &mut kinds),
            Ok(Some(Input::Stored {
                id: 3,
                result: Err("QuotaExceededError".into())
            }))
        );
        let v = value(
            &serde_json::json!({"t":"answered","id":2,"status":409,"redirected":false,"code":"duplicate_idempotency_key","retryAfterDate":null,"date":1.5e12}),
        );
        let Some(Input::Replied {
            id: 2,
            reply: Reply::Answer(a),
        }) = input_from(&v, &mut kinds).unwrap()
        else {
            panic!("not an answer");
        };
        assert_eq!(
            (a.status, a.code.as_deref(), a.date),
            (409, Some("duplicate_idempotency_key"), Some(1.5e12))
        );
        let v =
            value(&serde_json::json!({"t":"failed","id":2,"how":"unsent","error":"ECONNREFUSED"}));
        assert_eq!(
            input_from(&v, &mut kinds),
            Ok(Some(Input::Replied {
                id: 2,
                reply: Reply::Unsent("ECONNREFUSED".into())
            }))
        );
        let report = |j: serde_json::Value| input_from(&value(&j), &mut |_| OpKind::Done);
        assert_eq!(
            report(serde_json::json!({"t":"lockBusy"})),
            Ok(Some(Input::Locked { granted: false }))
        );
        assert_eq!(report(serde_json::json!({"t":"nonsense"})), Ok(None));
        assert_eq!(
            report(serde_json::json!({"t":"opened","durable":true,"v":1.5e12})),
            Ok(Some(Input::Opened {
                durable: true,
                fallback: None,
                max_seq: 1.5e12
            }))
        );
        // No `v`: the driver could not read the highest seq; unknown is NaN, never 0 (empty).
        assert!(matches!(
            report(serde_json::json!({"t":"opened","durable":false})),
            Ok(Some(Input::Opened { durable: false, max_seq, .. })) if max_seq.is_nan()
        ));
        assert_eq!(
            report(serde_json::json!({"t":"retry","call":1})),
            Ok(Some(Input::RetryDead {
                call: 1,
                keys: None
            }))
        );
        assert_eq!(
            report(serde_json::json!({"t":"discard","call":1,"v":["a"]})),
            Ok(Some(Input::Discard {
                call: 1,
                keys: vec!["a".into()]
            }))
        );
        let e = report(serde_json::json!({"t":"discard","call":1,"v":[1]})).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (Code::InvalidInput, Some("keys"))
        );
        let added = stored_from(
            OpKind::Added,
            &value(
                &serde_json::json!({"evicted":["a"],"existing":[],"deadSent":[{"key":"d","record":{"sentAt":5}}]}),
            ),
        );
        assert_eq!(
            added,
            Stored::Added {
                evicted: vec!["a".into()],
                existing: vec![],
                dead_sent: vec![(
                    "d".into(),
                    Sent {
                        local: 5.0,
                        server: None
                    }
                )],
            }
        );
    }
}
