//! What the engine tells people: the errors calls reject with and the one-line descriptions of
//! answers kept with queued events. No secret key ever reaches these (the engine never sees
//! request headers), and bodies are quoted only in part.

use alloc::string::String;

use crate::answer::{Answered, Reply};
use crate::error::{Code, TrackError};
use crate::value::push_u64;

/// The first `max` characters of `s`, for messages.
pub fn clip(s: &str, max: usize) -> &str {
    // Counted on the bytes (a character starts at each byte that is not a continuation byte):
    // `char_indices` brings core's UTF-8 decoder into the wasm for this alone.
    let mut n = 0;
    for (i, b) in s.bytes().enumerate() {
        if b & 0xC0 != 0x80 {
            if n == max {
                return s.get(..i).unwrap_or(s);
            }
            n += 1;
        }
    }
    s
}

/// `HTTP 503 <message>` / `timeout` / `network error: …`.
pub fn describe(reply: &Reply) -> String {
    let mut s = String::new();
    match reply {
        Reply::Network(m) | Reply::Unsent(m) => {
            s.push_str("network error: ");
            s.push_str(clip(m, 200));
        }
        Reply::Timeout => s.push_str("timeout"),
        Reply::Answer(a) => {
            s.push_str("HTTP ");
            push_u64(&mut s, u64::from(a.status));
            if a.redirected || (300..400).contains(&a.status) || a.status == 0 {
                s.push_str(" redirect: the request did not reach the track endpoint (an expired session sent to a sign-in page?)");
            } else if let Some(d) = a.message.as_deref().or(a.snippet.as_deref()) {
                if !d.is_empty() {
                    s.push(' ');
                    s.push_str(clip(d, 200));
                }
            }
        }
    }
    s
}

/// A refusal as a `TrackError` with Autumn's code, status and message; without Autumn's code
/// (a proxy's page), `http_error`, which says the event may have been recorded.
pub fn refusal(a: &Answered, key: &str) -> TrackError {
    let code = a.code.clone();
    // Autumn claims a key before processing, so its own refusal is final. An answer without
    // Autumn's code comes from something in between (a proxy, a CDN) and proves nothing: an
    // earlier copy of this request (a browser resends a POST by itself when a reused connection
    // drops) may have been recorded.
    let redirect = a.redirected || (300..400).contains(&a.status) || a.status == 0;
    let mut msg = String::from(if redirect {
        "not delivered: redirected (HTTP "
    } else if code.is_some() {
        "Autumn refused the event (HTTP "
    } else {
        "refused without an Autumn answer (HTTP "
    });
    push_u64(&mut msg, u64::from(a.status));
    if let Some(c) = &code {
        msg.push(' ');
        msg.push_str(c);
    }
    msg.push(')');
    if redirect {
        msg.push_str(": the request did not reach the track endpoint (an expired session sent to a sign-in page?); resend with idempotencyKey");
    } else if code.is_none() {
        msg.push_str("; it may have been recorded: resend only with idempotencyKey");
    }
    if !redirect {
        match (&a.message, &a.snippet) {
            (Some(m), _) => {
                msg.push_str(": ");
                msg.push_str(clip(m, 500));
            }
            (None, Some(t)) if !t.is_empty() => {
                msg.push_str(": ");
                msg.push_str(clip(t, 200));
            }
            _ => {}
        }
    }
    let c = match code {
        Some(c) if !redirect => Code::Server(c),
        _ => Code::HttpError,
    };
    let mut e = TrackError::new(c, msg).with_key(key);
    e.status = Some(a.status);
    e
}

/// Retries ran out (or no queue could take the event): `unavailable`, with the key.
/// `unanswered`: some attempt got no answer (it may still be running at Autumn).
pub fn unavailable(
    reply: &Reply,
    attempts: u32,
    timeout_ms: u32,
    key: &str,
    unanswered: bool,
) -> TrackError {
    let mut msg = String::from("could not deliver the event after ");
    push_u64(&mut msg, u64::from(attempts));
    msg.push_str(if attempts == 1 {
        " attempt"
    } else {
        " attempts"
    });
    msg.push_str(" (last: ");
    let mut status = None;
    match reply {
        Reply::Timeout => {
            msg.push_str("no answer within ");
            push_u64(&mut msg, u64::from(timeout_ms));
            msg.push_str(" ms");
        }
        Reply::Answer(a) => {
            status = Some(a.status);
            msg.push_str(&describe(reply));
        }
        other => msg.push_str(&describe(other)),
    }
    msg.push_str("). Resend with the same idempotencyKey: it cannot be counted twice");
    let mut e = TrackError::new(Code::Unavailable, msg).with_key(key);
    e.status = status;
    e.unanswered = unanswered || matches!(reply, Reply::Timeout | Reply::Network(_));
    e
}

/// A 409 answered while an earlier attempt of the key may still be running at Autumn: not
/// proof. `unavailable`, with when a resend can tell (`retry_after_ms`).
pub fn unconfirmed(key: &str, wait_ms: f64, status: u16) -> TrackError {
    let mut msg = String::from("not confirmed: Autumn answered ");
    push_u64(&mut msg, u64::from(status));
    msg.push_str(
        " while an earlier attempt of this key that got no answer may still be running there (or \
         have recorded it): neither proves it was or was not recorded. Resend with the same \
         idempotencyKey in ",
    );
    let wait = crate::float::ceil(wait_ms.max(0.0)) as u64;
    push_u64(&mut msg, wait);
    msg.push_str(" ms: Autumn's answer then is final");
    let mut e = TrackError::new(Code::Unavailable, msg).with_key(key);
    e.status = Some(status);
    e.retry_after_ms = Some(wait);
    e.unanswered = true;
    e
}

/// What a `queued` result and notice say for an event kept after `reply`.
pub fn queued_message(reply: &Reply, unconfirmed_until: Option<f64>, now: f64) -> String {
    let mut s = describe(reply);
    if let Some(t) = unconfirmed_until {
        s.push_str("; an attempt may still be running at Autumn: confirmed in ");
        push_u64(&mut s, crate::float::ceil((t - now).max(0.0)) as u64);
        s.push_str(" ms at the earliest");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_keeps_the_first_characters_whole() {
        assert_eq!(clip("", 3), "");
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc");
        assert_eq!(clip("abcd", 0), "");
        // Characters, not bytes: 2-, 3- and 4-byte ones are never cut in two.
        assert_eq!(clip("éa€b😀c", 4), "éa€b");
        assert_eq!(clip("éa€b😀c", 5), "éa€b😀");
        assert_eq!(clip("😀😀", 1), "😀");
    }
}
