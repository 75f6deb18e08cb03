//! The Cloudflare Queues consumer's decisions, sans-IO: which messages go in which
//! `batch_track` request, and what each answer does to them — ack, retry (with a delay),
//! re-send a copy before Cloudflare's `max_retries` runs out, or set aside as a dead letter.
//! `js/cfqueue.js` (`handleTrackQueue`) carries the commands out.
//!
//! The rules, and why:
//! - Only a 2xx (or a 409 that proves a recording) acks a message: Autumn recorded it.
//! - A message whose event may still have an attempt running at Autumn (the producer's inline
//!   attempt got no answer, `sentAt`) waits out the confirmation window before it is batched:
//!   a batch drops a claimed item silently and answers 200 all the same.
//! - Temporary failures (5xx, 429, timeouts, 401/403 and setup codes, redirects) never use up
//!   Cloudflare's `max_retries`: near the limit the message is re-sent as a copy (same key, same
//!   body, same age) and the old one acked. An outage of hours loses nothing; the dead letter
//!   queue holds only what Autumn refused for good — or is older than `maxEventAgeMs`.
//! - A refused batch is halved until the refused events are alone.

use alloc::string::String;
use alloc::vec::Vec;

use crate::answer::{classify, Reply, Verdict};
use crate::retry::retry_after_ms;

/// Autumn allows 10 batch requests a second per organisation: this consumer spaces its own.
pub const BATCH_SPACING_MS: f64 = 110.0;
/// Cloudflare's longest retry delay (12 h).
pub const MAX_DELAY_S: u32 = 43_200;

/// `handleTrackQueue` options, validated by the JS side.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Events per request (1–1000).
    pub batch_size: usize,
    /// Largest request body, bytes.
    pub max_batch_bytes: usize,
    /// Older events are set aside unsent as `expired`.
    pub max_event_age_ms: f64,
    /// First retry delay, s.
    pub retry_delay_s: u32,
    /// Largest retry delay, s.
    pub max_retry_delay_s: u32,
    /// The queue's `max_retries`: a message retried that many times is re-sent as a copy
    /// instead (when `requeue` is available).
    pub max_retries: u32,
    /// A producer binding of the same queue exists for copies.
    pub requeue: bool,
    /// A dead letter destination exists (else refused events are retried into Cloudflare's).
    pub dead_letter: bool,
    /// How long an attempt can run at Autumn.
    pub confirm_after_ms: f64,
}

/// One message, as read by the JS side.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Cloudflare's delivery count (1 on the first).
    pub attempts: u32,
    /// The event, or why the message is not one of ours.
    pub event: Result<Item, (Option<String>, String)>,
}

/// A message's event.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The idempotency key.
    pub key: String,
    /// The wire body (with `timestamp`).
    pub body: String,
    /// When `track()` was called.
    pub created_at: f64,
    /// The customer.
    pub customer: String,
    /// An attempt of this event that got no answer, sent then (the producer's).
    pub sent_at: Option<f64>,
}

/// What `handleTrackQueue` must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Wait this long (batch spacing), then ask again.
    Wait(f64),
    /// `POST batch_track` with this body; answer [`Consumer::replied`].
    Send {
        /// The JSON array.
        body: String,
    },
    /// `msg.ack()` these.
    Ack(Vec<usize>),
    /// `msg.retry({ delaySeconds })` these.
    Retry(Vec<usize>, u32),
    /// Send a copy of each (the same message body, with `sentAt` as given) to the queue with
    /// `delaySeconds`, then ack the original; if the send fails, `msg.retry` instead.
    Requeue(Vec<usize>, u32),
    /// Send this letter to the dead letter destination, then ack; if that fails, retry.
    DeadLetter(Vec<usize>, Letter),
    /// Nothing left.
    Done,
}

/// A dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    /// The key, when known.
    pub key: Option<String>,
    /// The customer, when known.
    pub customer: Option<String>,
    /// Autumn's code, or `expired` / `invalid_message`.
    pub code: String,
    /// HTTP status, when Autumn answered.
    pub status: Option<u16>,
    /// Why.
    pub message: String,
}

#[derive(Clone)]
struct Group {
    msgs: Vec<usize>,
    item: Item,
    without_ts: bool,
    ts_retried: bool,
}

/// The consumer of one batch.
pub struct Consumer {
    s: Settings,
    msgs: Vec<Message>,
    steps: alloc::collections::VecDeque<Step>,
    /// Chunks still to send (a stack), and the one in flight.
    chunks: Vec<Vec<Group>>,
    current: Option<Vec<Group>>,
    sent_at: f64,
    /// A 429 or a second temporary failure: the rest waits this long.
    halted: Option<u32>,
    failures: u32,
    /// When this consumer's last request left (the JS side keeps it across batches).
    pub last_batch_at: f64,
}

impl Consumer {
    /// Plans the batch `msgs` at time `now`.
    pub fn new(s: Settings, msgs: Vec<Message>, now: f64, last_batch_at: f64) -> Consumer {
        let mut c = Consumer {
            s,
            msgs,
            steps: alloc::collections::VecDeque::new(),
            chunks: Vec::new(),
            current: None,
            sent_at: 0.0,
            halted: None,
            failures: 0,
            last_batch_at,
        };
        c.plan(now);
        c
    }

    fn backoff(&self, msgs: &[usize]) -> u32 {
        let attempts = msgs
            .iter()
            .filter_map(|&i| self.msgs.get(i))
            .map(|m| m.attempts.max(1))
            .max()
            .unwrap_or(1);
        let d = u64::from(self.s.retry_delay_s) << (attempts - 1).min(20);
        d.min(u64::from(self.s.max_retry_delay_s)) as u32
    }

    /// Retries `msgs` after `delay_s`, as copies when Cloudflare would count one retry too many.
    fn again(&mut self, msgs: Vec<usize>, delay_s: u32) {
        let delay_s = delay_s.min(MAX_DELAY_S);
        let near = msgs
            .iter()
            .filter_map(|&i| self.msgs.get(i))
            .any(|m| m.attempts >= self.s.max_retries);
        if near && self.s.requeue {
            self.steps.push_back(Step::Requeue(msgs, delay_s));
        } else {
            self.steps.push_back(Step::Retry(msgs, delay_s));
        }
    }

    /// Set aside for good: to the dead letter destination, else retried so that Cloudflare's
    /// `max_retries` and dead letter queue take it. Never acked as delivered.
    fn refuse(&mut self, msgs: Vec<usize>, letter: Letter) {
        if self.s.dead_letter {
            self.steps.push_back(Step::DeadLetter(msgs, letter));
        } else {
            let d = self.backoff(&msgs);
            self.steps.push_back(Step::Retry(msgs, d));
        }
    }

    fn plan(&mut self, now: f64) {
        let mut groups: Vec<Group> = Vec::new();
        let window = self.s.confirm_after_ms;
        for i in 0..self.msgs.len() {
            let Some(m) = self.msgs.get(i) else { continue };
            let item = match &m.event {
                Err((key, why)) => {
                    let letter = Letter {
                        key: key.clone(),
                        customer: None,
                        code: String::from("invalid_message"),
                        status: None,
                        message: why.clone(),
                    };
                    self.refuse(alloc::vec![i], letter);
                    continue;
                }
                Ok(item) => item.clone(),
            };
            if now - item.created_at > self.s.max_event_age_ms {
                // Past Autumn's idempotency window a resend could count twice: unsent.
                let letter = Letter {
                    key: Some(item.key.clone()),
                    customer: Some(item.customer.clone()),
                    code: String::from("expired"),
                    status: None,
                    message: String::from(
                        "older than maxEventAgeMs: not resent (Autumn's idempotency window may have passed)",
                    ),
                };
                self.refuse(alloc::vec![i], letter);
                continue;
            }
            if let Some(t) = item.sent_at {
                let until = t.min(now) + window;
                if until > now {
                    // An attempt may still be running at Autumn: not batched (nor taken a 409
                    // for) until it must have ended.
                    let s = crate::float::ceil((until - now) / 1000.0) as u32;
                    self.again(alloc::vec![i], s.max(1));
                    continue;
                }
            }
            // Cloudflare delivers at least once: one send per key.
            match groups.iter_mut().find(|g| g.item.key == item.key) {
                Some(g) => g.msgs.push(i),
                None => groups.push(Group {
                    msgs: alloc::vec![i],
                    item,
                    without_ts: false,
                    ts_retried: false,
                }),
            }
        }
        // Chunks of at most batch_size events and max_batch_bytes.
        let mut chunks: Vec<Vec<Group>> = Vec::new();
        let mut cur: Vec<Group> = Vec::new();
        let mut bytes = 2;
        for g in groups {
            let len = g.item.body.len() + 1;
            if !cur.is_empty()
                && (cur.len() >= self.s.batch_size || bytes + len > self.s.max_batch_bytes)
            {
                chunks.push(core::mem::take(&mut cur));
                bytes = 2;
            }
            bytes += len;
            cur.push(g);
        }
        if !cur.is_empty() {
            chunks.push(cur);
        }
        chunks.reverse();
        self.chunks = chunks;
    }

    /// The next step at time `now`.
    pub fn next(&mut self, now: f64) -> Step {
        if let Some(s) = self.steps.pop_front() {
            return s;
        }
        if self.current.is_some() {
            // Waiting for an answer: the JS side must call `replied` first.
            return Step::Done;
        }
        let Some(chunk) = self.chunks.pop() else {
            return Step::Done;
        };
        if let Some(d) = self.halted {
            let msgs: Vec<usize> = chunk.iter().flat_map(|g| g.msgs.iter().copied()).collect();
            self.again(msgs, d);
            return self.next(now);
        }
        let wait = self.last_batch_at + BATCH_SPACING_MS - now;
        if wait > 0.0 {
            self.chunks.push(chunk);
            return Step::Wait(wait);
        }
        let mut body = String::from("[");
        for (i, g) in chunk.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            if g.without_ts {
                body.push_str(&strip_timestamp(&g.item.body));
            } else {
                body.push_str(&g.item.body);
            }
        }
        body.push(']');
        self.last_batch_at = now;
        self.sent_at = now;
        self.current = Some(chunk);
        Step::Send { body }
    }

    /// The answer to the request of the last [`Step::Send`].
    pub fn replied(&mut self, reply: Reply, now: f64) {
        let Some(chunk) = self.current.take() else {
            return;
        };
        let msgs: Vec<usize> = chunk.iter().flat_map(|g| g.msgs.iter().copied()).collect();
        let verdict = classify(&reply);
        let retry_after = match &reply {
            Reply::Answer(a) => a
                .retry_after
                .as_deref()
                .and_then(|h| retry_after_ms(h, a.retry_after_date, now)),
            _ => None,
        };
        let status = match &reply {
            Reply::Answer(a) => Some(a.status),
            _ => None,
        };
        let single = chunk.len() == 1;
        match verdict {
            Verdict::Delivered => self.steps.push_back(Step::Ack(msgs)),
            // A 409 for a lone event: the earlier attempts of it were answered (or had their
            // window waited out): recorded. A batch is never answered 409 by Autumn.
            Verdict::Duplicate if single => self.steps.push_back(Step::Ack(msgs)),
            Verdict::Retry { unanswered } => {
                let mut d = retry_after
                    .map(|ms| crate::float::ceil(ms as f64 / 1000.0) as u32)
                    .unwrap_or_else(|| self.backoff(&msgs));
                if unanswered {
                    // This attempt may still be running: no resend before it must have ended.
                    d = d.max(crate::float::ceil(self.s.confirm_after_ms / 1000.0) as u32);
                }
                self.failures += 1;
                if status == Some(429) || self.failures >= 2 {
                    self.halted = Some(d);
                }
                self.again(msgs, d);
            }
            Verdict::Duplicate | Verdict::Hold(_) => {
                let d = self.backoff(&msgs);
                self.again(msgs, d);
            }
            Verdict::FutureTimestamp if !single || chunk.iter().all(|g| g.ts_retried) => {
                self.split_or_refuse(chunk, &reply)
            }
            Verdict::FutureTimestamp => {
                // The producer's clock ran ahead of Autumn's: resend once without the timestamp.
                let chunk = chunk
                    .into_iter()
                    .map(|mut g| {
                        g.ts_retried = true;
                        g.without_ts = true;
                        g
                    })
                    .collect();
                self.chunks.push(chunk);
            }
            Verdict::Refused => self.split_or_refuse(chunk, &reply),
            Verdict::Unproven if status == Some(413) && !single => {
                self.split_or_refuse(chunk, &reply)
            }
            Verdict::Unproven => {
                let d = self.backoff(&msgs);
                self.again(msgs, d);
            }
        }
    }

    fn split_or_refuse(&mut self, mut chunk: Vec<Group>, reply: &Reply) {
        if chunk.len() > 1 {
            let b = chunk.split_off(chunk.len() / 2);
            self.chunks.push(b);
            self.chunks.push(chunk);
            return;
        }
        let Some(g) = chunk.pop() else { return };
        let (code, status, message) = match reply {
            Reply::Answer(a) => (
                a.code.clone().unwrap_or_else(|| String::from("http_error")),
                Some(a.status),
                a.message
                    .clone()
                    .or_else(|| a.snippet.clone())
                    .unwrap_or_default(),
            ),
            _ => (String::from("http_error"), None, String::new()),
        };
        let letter = Letter {
            key: Some(g.item.key.clone()),
            customer: Some(g.item.customer.clone()),
            code,
            status,
            message,
        };
        self.refuse(g.msgs, letter);
    }
}

/// The body without a trailing `,"timestamp":<digits>` (the form `body_for` writes).
fn strip_timestamp(body: &str) -> String {
    let Some(open) = body.strip_suffix('}') else {
        return String::from(body);
    };
    let digits = open.trim_end_matches(|c: char| c.is_ascii_digit());
    match digits.strip_suffix(",\"timestamp\":") {
        Some(rest) if digits.len() < open.len() => {
            let mut s = String::from(rest);
            s.push('}');
            s
        }
        _ => String::from(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::Answered;
    use alloc::vec;

    const NOW: f64 = 1_800_000_000_000.0;

    fn settings() -> Settings {
        Settings {
            batch_size: 1000,
            max_batch_bytes: 1 << 20,
            max_event_age_ms: 23.0 * 3600e3,
            retry_delay_s: 5,
            max_retry_delay_s: 300,
            max_retries: 3,
            requeue: true,
            dead_letter: true,
            confirm_after_ms: 120_000.0,
        }
    }

    fn msg(key: &str, attempts: u32) -> Message {
        Message {
            attempts,
            event: Ok(Item {
                key: key.into(),
                body: alloc::format!(
                    r#"{{"customer_id":"c","feature_id":"f","value":1,"idempotency_key":"{key}","timestamp":{}}}"#,
                    NOW as u64 - 1000
                ),
                created_at: NOW - 1000.0,
                customer: "c".into(),
                sent_at: None,
            }),
        }
    }

    fn answer(status: u16, code: Option<&str>) -> Reply {
        Reply::Answer(Answered {
            status,
            code: code.map(Into::into),
            message: Some("m".into()),
            ..Answered::default()
        })
    }

    fn run(c: &mut Consumer, replies: &mut Vec<Reply>) -> Vec<Step> {
        let mut out = Vec::new();
        let mut now = NOW;
        loop {
            match c.next(now) {
                Step::Done => return out,
                Step::Wait(ms) => now += ms,
                Step::Send { body } => {
                    out.push(Step::Send { body });
                    let r = if replies.is_empty() {
                        answer(200, None)
                    } else {
                        replies.remove(0)
                    };
                    c.replied(r, now);
                }
                s => out.push(s),
            }
        }
    }

    #[test]
    fn delivered_batches_are_acked_and_keys_deduplicated() {
        let mut c = Consumer::new(
            settings(),
            vec![msg("a", 1), msg("b", 1), msg("a", 2)],
            NOW,
            0.0,
        );
        let out = run(&mut c, &mut vec![]);
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], Step::Send { body } if body.matches("idempotency_key").count() == 2)
        );
        assert_eq!(out[1], Step::Ack(vec![0, 2, 1]));
    }

    #[test]
    fn temporary_failures_near_the_limit_are_copied_never_dead_lettered() {
        for r in [
            answer(503, Some("internal_error")),
            answer(401, Some("invalid_secret_key")),
            answer(403, None),
            Reply::Timeout,
        ] {
            let mut c = Consumer::new(settings(), vec![msg("a", 3), msg("b", 1)], NOW, 0.0);
            let out = run(&mut c, &mut vec![r.clone()]);
            assert!(
                matches!(out.last(), Some(Step::Requeue(m, _)) if m == &vec![0, 1]),
                "{r:?}: {out:?}"
            );
        }
        let mut s = settings();
        s.requeue = false;
        let mut c = Consumer::new(s, vec![msg("a", 3)], NOW, 0.0);
        let out = run(&mut c, &mut vec![answer(500, Some("internal_error"))]);
        assert!(matches!(out.last(), Some(Step::Retry(..))));
    }

    #[test]
    fn an_unanswered_attempt_waits_out_the_window_first() {
        let mut m = msg("a", 1);
        if let Ok(i) = &mut m.event {
            i.sent_at = Some(NOW - 20_000.0);
        }
        let mut c = Consumer::new(settings(), vec![m], NOW, 0.0);
        let out = run(&mut c, &mut vec![]);
        assert_eq!(
            out,
            vec![Step::Retry(vec![0], 100)],
            "no batch before the window ends"
        );
        // A timeout of the consumer's own request: the retry waits out the window too.
        let mut c = Consumer::new(settings(), vec![msg("b", 1)], NOW, 0.0);
        let out = run(&mut c, &mut vec![Reply::Timeout]);
        assert!(matches!(out.last(), Some(Step::Retry(_, d)) if *d >= 120));
    }

    #[test]
    fn a_refused_event_is_isolated_and_dead_lettered() {
        let msgs = vec![msg("a", 1), msg("poison", 1), msg("c", 1), msg("d", 1)];
        let mut c = Consumer::new(settings(), msgs, NOW, 0.0);
        let refused = || answer(404, Some("feature_not_found"));
        // [a poison c d] refused → [a poison] refused → [a] ok, [poison] refused → letter; [c d] ok.
        let mut replies = vec![
            refused(),
            refused(),
            answer(200, None),
            refused(),
            answer(200, None),
        ];
        let out = run(&mut c, &mut replies);
        assert!(out.contains(&Step::Ack(vec![0])));
        assert!(out.contains(&Step::Ack(vec![2, 3])));
        assert!(out.iter().any(|s| matches!(s, Step::DeadLetter(m, l) if m == &vec![1] && l.code == "feature_not_found")));
    }

    #[test]
    fn future_timestamps_are_resent_once_without_them() {
        let mut c = Consumer::new(settings(), vec![msg("a", 1)], NOW, 0.0);
        let fut = Reply::Answer(Answered {
            status: 400,
            code: Some("invalid_inputs".into()),
            message: Some("timestamp cannot be in the future".into()),
            ..Answered::default()
        });
        let out = run(&mut c, &mut vec![fut]);
        assert!(matches!(&out[1], Step::Send { body } if !body.contains("timestamp")));
        assert_eq!(out[2], Step::Ack(vec![0]));
        assert_eq!(strip_timestamp(r#"{"a":1,"timestamp":12}"#), r#"{"a":1}"#);
        assert_eq!(strip_timestamp(r#"{"a":1}"#), r#"{"a":1}"#);
    }

    #[test]
    fn expired_and_foreign_messages_are_set_aside_unsent() {
        let mut old = msg("old", 1);
        if let Ok(i) = &mut old.event {
            i.created_at = NOW - 24.0 * 3600e3;
        }
        let junk = Message {
            attempts: 1,
            event: Err((None, "not an autumn-track message".into())),
        };
        let mut c = Consumer::new(settings(), vec![old, junk], NOW, 0.0);
        let out = run(&mut c, &mut vec![]);
        assert!(matches!(&out[0], Step::DeadLetter(m, l) if m == &vec![0] && l.code == "expired"));
        assert!(
            matches!(&out[1], Step::DeadLetter(m, l) if m == &vec![1] && l.code == "invalid_message")
        );
        assert_eq!(out.len(), 2, "nothing sent");
    }

    #[test]
    fn a_429_halts_the_rest_with_its_delay() {
        let mut s = settings();
        s.batch_size = 1;
        let mut c = Consumer::new(s, vec![msg("a", 1), msg("b", 1)], NOW, 0.0);
        let mut r = Answered {
            status: 429,
            retry_after: Some("7".into()),
            ..Answered::default()
        };
        r.snippet = Some("Too many requests".into());
        let out = run(&mut c, &mut vec![Reply::Answer(r)]);
        assert_eq!(
            out.iter()
                .filter(|s| matches!(s, Step::Send { .. }))
                .count(),
            1
        );
        assert!(out.contains(&Step::Retry(vec![0], 7)));
        assert!(out.contains(&Step::Retry(vec![1], 7)));
    }
}
