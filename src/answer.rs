//! What one answer means: the single list of Autumn's statuses and codes, and what each proves.
//! Every sender of the SDK — the tracker's engine, the route browsers talk to, the Cloudflare
//! Queues consumer — classifies through [`classify`], so a rule changes in one place.
//!
//! Autumn claims an idempotency key when a request *starts* and releases it when that request
//! ends with any status ≥ 400 other than 409 (shared/autumn-contract.md). Two consequences are
//! encoded here: a 409 proves a recording only when no earlier attempt of the key can still be
//! running (the caller checks that with [`Clock::proves`](crate::queue::Clock::proves)); and an attempt that got no answer
//! from Autumn itself — a timeout, a dropped connection, a proxy's 502/504 page — may still be
//! running at Autumn, holding the claim, and may yet fail.

use alloc::string::String;

/// One attempt's result, as the sender saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An answer arrived in full.
    Answer(Answered),
    /// No complete answer within the timeout.
    Timeout,
    /// The request failed without an answer (reset, offline, CORS, a `fetch` that threw): it may
    /// have reached Autumn.
    Network(String),
    /// The request never left: the connection was refused, the name did not resolve (Node
    /// reports these). Nothing can be running at Autumn.
    Unsent(String),
}

impl Reply {
    /// The wait an answer's `Retry-After` asks for, in ms, if it has one.
    pub fn retry_after_ms(&self, now: f64) -> Option<u64> {
        match self {
            Reply::Answer(a) => a
                .retry_after
                .as_deref()
                .and_then(|h| crate::retry::retry_after_ms(h, a.retry_after_date, now)),
            _ => None,
        }
    }
}

/// An answer's parts that matter to a decision. The edge reads them off the response: the
/// status, whether `fetch` followed a redirect (or was stopped at one), Autumn's `{ code,
/// message }` when the body is such an object, `Retry-After` (raw, plus the edge's reading of it
/// as an HTTP date), and `Date`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answered {
    /// HTTP status (0 for an opaque redirect a browser stopped at).
    pub status: u16,
    /// The answer is (or came after) a redirect.
    pub redirected: bool,
    /// Autumn's (or the route's) error `code`, when the body had one.
    pub code: Option<String>,
    /// The error `message`, when the body had one.
    pub message: Option<String>,
    /// The body's first characters, for messages when it was not Autumn's JSON.
    pub snippet: Option<String>,
    /// `Retry-After` as sent.
    pub retry_after: Option<String>,
    /// `Retry-After` read as an HTTP date by the edge (Unix ms), when it is one.
    pub retry_after_date: Option<f64>,
    /// `Date`, read by the edge (Unix ms).
    pub date: Option<f64>,
}

/// Why an event is kept instead of being sent on or refused: the fault is not the event's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldWhy {
    /// 401/403, or a code that says the credentials or settings are wrong (the secret key, an
    /// expired session at the app's own route, an API version the server refuses).
    Unauthorized,
    /// A redirect: an auth layer sending an expired session to its sign-in page, or a moved URL.
    /// Never a delivery: the request did not reach the track endpoint.
    Redirected,
    /// The app's own route refused an event tracked for another customer than the one signed
    /// in now (`customer_mismatch`): kept until that customer can be billed.
    CustomerMismatch,
}

/// What an answer means for the event (or batch) it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx from the endpoint itself: recorded, or accepted for recording.
    Delivered,
    /// 409: the key is claimed. A recording only if no earlier attempt can still be running.
    Duplicate,
    /// Try again later with the same key. `unanswered`: Autumn itself did not answer this
    /// attempt, which may still be running there (and hold the key's claim).
    Retry {
        /// This attempt may still be running at Autumn.
        unanswered: bool,
    },
    /// Keep the event and try again later: see [`HoldWhy`].
    Hold(HoldWhy),
    /// Autumn refused the event for good with its own code: nothing was recorded (Autumn claims
    /// before processing and released the key).
    Refused,
    /// Autumn says the timestamp is in the future: the sender's clock is ahead.
    FutureTimestamp,
    /// Refused without Autumn's answer (a proxy's 4xx page): not proof that nothing was
    /// recorded — an earlier, unseen copy of the request may have been.
    Unproven,
}

/// Codes the app's own route answers (it speaks Autumn's language to browser trackers).
pub mod route {
    /// 503: an upstream attempt got no answer and may still be running at Autumn.
    pub const UNCONFIRMED: &str = "unconfirmed";
    /// 403: the event is for another customer than the one signed in.
    pub const CUSTOMER_MISMATCH: &str = "customer_mismatch";
    /// 401: nobody is signed in.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 502: Autumn refused the route's own key or settings.
    pub const MISCONFIGURED: &str = "proxy_misconfigured";
    /// 503: every upstream attempt was answered, none delivered (Autumn 5xx/429).
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
}

/// Autumn's codes that say the deployment (key, scopes, API version) is wrong, not the event.
pub const SETUP_CODES: [&str; 7] = [
    "no_secret_key",
    "invalid_secret_key",
    "endpoint_not_public",
    "insufficient_scopes",
    "invalid_api_version",
    "request_temporarily_disabled",
    route::MISCONFIGURED,
];

/// True for statuses worth retrying with the same key: 408, 429 and 5xx but 501/505.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (500..600).contains(&status) && !matches!(status, 501 | 505)
}

/// True when `code` says the sender's setup is wrong rather than the event.
pub fn is_setup_code(code: &str) -> bool {
    SETUP_CODES.contains(&code)
}

/// What `reply` means.
pub fn classify(reply: &Reply) -> Verdict {
    let a = match reply {
        Reply::Timeout | Reply::Network(_) => return Verdict::Retry { unanswered: true },
        Reply::Unsent(_) => return Verdict::Retry { unanswered: false },
        Reply::Answer(a) => a,
    };
    let status = a.status;
    let code = a.code.as_deref();
    if a.redirected || (300..400).contains(&status) || status == 0 {
        return Verdict::Hold(HoldWhy::Redirected);
    }
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    if status == 409 {
        return Verdict::Duplicate;
    }
    if is_retryable_status(status) {
        // Autumn's own 5xx is `internal_error` and released the key (the app's route says
        // `upstream_unavailable` when Autumn answered it so); any other 5xx is something in
        // between (a proxy's 502/504 page or its own JSON, a CDN timeout) whose upstream request
        // may still be running at Autumn.
        let unanswered =
            status >= 500 && !matches!(code, Some("internal_error" | route::UPSTREAM_UNAVAILABLE));
        return Verdict::Retry { unanswered };
    }
    if code == Some(route::CUSTOMER_MISMATCH) {
        return Verdict::Hold(HoldWhy::CustomerMismatch);
    }
    if matches!(status, 401 | 403) || code.is_some_and(is_setup_code) {
        return Verdict::Hold(HoldWhy::Unauthorized);
    }
    match code {
        None => Verdict::Unproven,
        Some(_) if status == 400 && says_future_timestamp(a.message.as_deref()) => {
            Verdict::FutureTimestamp
        }
        Some(_) => Verdict::Refused,
    }
}

/// True when a 400's message says the timestamp is in the future (the client clock is ahead).
pub fn says_future_timestamp(message: Option<&str>) -> bool {
    message.is_some_and(|m| contains_ci(m, b"timestamp") && contains_ci(m, b"future"))
}

/// ASCII case-insensitive substring test (small: no two-way searcher in the wasm).
fn contains_ci(hay: &str, needle: &[u8]) -> bool {
    hay.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The reason a `queued` result and event give for an attempt that did not deliver.
pub fn queued_reason(v: Verdict, reply: &Reply) -> &'static str {
    match (v, reply) {
        (_, Reply::Timeout) => "timeout",
        (_, Reply::Network(_) | Reply::Unsent(_)) => "network_error",
        (Verdict::Hold(HoldWhy::Redirected), _) => "redirected",
        (Verdict::Hold(HoldWhy::CustomerMismatch), _) => "customer_mismatch",
        (Verdict::Hold(HoldWhy::Unauthorized), _) => "unauthorized",
        (Verdict::Duplicate, _) => "unconfirmed",
        (_, Reply::Answer(a)) if a.status == 429 => "rate_limited",
        (Verdict::Retry { unanswered: true }, _) => "unanswered",
        _ => "server_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn ans(status: u16, code: Option<&str>) -> Reply {
        Reply::Answer(Answered {
            status,
            code: code.map(ToString::to_string),
            ..Answered::default()
        })
    }

    #[test]
    fn verdict_table() {
        use HoldWhy::*;
        use Verdict::*;
        let rows: &[(Reply, Verdict)] = &[
            (ans(200, None), Delivered),
            (ans(202, None), Delivered),
            (ans(204, None), Delivered),
            (ans(409, Some("duplicate_idempotency_key")), Duplicate),
            (ans(409, None), Duplicate),
            (
                ans(500, Some("internal_error")),
                Retry { unanswered: false },
            ),
            (
                ans(503, Some("internal_error")),
                Retry { unanswered: false },
            ),
            (ans(502, None), Retry { unanswered: true }),
            (ans(504, None), Retry { unanswered: true }),
            (ans(524, None), Retry { unanswered: true }),
            (ans(503, Some("unconfirmed")), Retry { unanswered: true }),
            (
                ans(503, Some("upstream_unavailable")),
                Retry { unanswered: false },
            ),
            // A proxy's own JSON (here the demo server's): not Autumn's answer.
            (
                ans(502, Some("upstream_unreachable")),
                Retry { unanswered: true },
            ),
            (ans(429, None), Retry { unanswered: false }),
            (ans(408, None), Retry { unanswered: false }),
            (Reply::Timeout, Retry { unanswered: true }),
            (Reply::Network("reset".into()), Retry { unanswered: true }),
            (ans(401, Some("invalid_secret_key")), Hold(Unauthorized)),
            (ans(401, Some("unauthorized")), Hold(Unauthorized)),
            (ans(401, None), Hold(Unauthorized)),
            (ans(403, None), Hold(Unauthorized)),
            (ans(403, Some("insufficient_scopes")), Hold(Unauthorized)),
            (ans(400, Some("invalid_api_version")), Hold(Unauthorized)),
            (ans(403, Some("customer_mismatch")), Hold(CustomerMismatch)),
            (ans(302, None), Hold(Redirected)),
            (ans(0, None), Hold(Redirected)),
            (ans(404, Some("feature_not_found")), Refused),
            (ans(404, Some("customer_not_found")), Refused),
            (ans(400, Some("invalid_inputs")), Refused),
            (ans(413, Some("payload_too_large")), Refused),
            (ans(501, Some("internal_error")), Refused),
            (ans(404, None), Unproven),
            (ans(413, None), Unproven),
            (ans(501, None), Unproven),
        ];
        for (i, (r, want)) in rows.iter().enumerate() {
            assert_eq!(classify(r), *want, "row {i}: {r:?}");
        }
    }

    #[test]
    fn redirected_2xx_is_never_a_delivery() {
        let r = Reply::Answer(Answered {
            status: 200,
            redirected: true,
            ..Answered::default()
        });
        assert_eq!(classify(&r), Verdict::Hold(HoldWhy::Redirected));
    }

    #[test]
    fn future_timestamps_are_recognised() {
        let r = |m: &str| {
            Reply::Answer(Answered {
                status: 400,
                code: Some("invalid_inputs".into()),
                message: Some(m.into()),
                ..Answered::default()
            })
        };
        assert_eq!(
            classify(&r("timestamp cannot be in the future")),
            Verdict::FutureTimestamp
        );
        assert_eq!(
            classify(&r("Timestamp is in the Future")),
            Verdict::FutureTimestamp
        );
        assert_eq!(classify(&r("customer_id is required")), Verdict::Refused);
    }

    #[test]
    fn reasons() {
        let v = classify(&Reply::Timeout);
        assert_eq!(queued_reason(v, &Reply::Timeout), "timeout");
        let r = ans(429, None);
        assert_eq!(queued_reason(classify(&r), &r), "rate_limited");
        let r = ans(302, None);
        assert_eq!(queued_reason(classify(&r), &r), "redirected");
        let r = ans(503, Some("internal_error"));
        assert_eq!(queued_reason(classify(&r), &r), "server_error");
    }
}
