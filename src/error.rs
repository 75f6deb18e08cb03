//! The one error type of the SDK. It becomes a JavaScript `TrackError` (a real `Error` with a
//! stable `name` and `code`) at the JS edge.

use alloc::string::String;
use core::fmt;

/// What went wrong, as a stable machine-readable code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Code {
    /// `track()` input failed validation; nothing was sent. `field` names the culprit.
    InvalidInput,
    /// The tracker's options are invalid (bad URL, key shape, numbers out of range, unknown
    /// option). `field` names the option.
    InvalidOptions,
    /// A secret key was given to a tracker running in a browser without
    /// `dangerouslyAllowBrowser`.
    SecretKeyInBrowser,
    /// The event could not be delivered: network errors, timeouts or retryable statuses until
    /// retries ran out. Carries the idempotency key: retrying with it is safe.
    Unavailable,
    /// The server refused the event for good, with a status but no recognisable error code
    /// (for example an HTML error page from a proxy).
    HttpError,
    /// The server refused the event for good with this Autumn error code, e.g.
    /// `feature_not_found`, `customer_not_found`, `invalid_secret_key`.
    Server(String),
}

impl Code {
    /// The string JavaScript sees as `error.code`.
    pub fn as_str(&self) -> &str {
        match self {
            Code::InvalidInput => "invalid_input",
            Code::InvalidOptions => "invalid_options",
            Code::SecretKeyInBrowser => "secret_key_in_browser",
            Code::Unavailable => "unavailable",
            Code::HttpError => "http_error",
            Code::Server(s) => s,
        }
    }
}

/// An error for JavaScript: code, a message a person understands, and context.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackError {
    /// Stable code.
    pub code: Code,
    /// Human-readable explanation. Never contains a secret key.
    pub message: String,
    /// The input field or option at fault, for validation errors.
    pub field: Option<String>,
    /// The HTTP status, for errors the server answered.
    pub status: Option<u16>,
    /// The event's idempotency key, once one exists: resending with it cannot double-count.
    pub idempotency_key: Option<String>,
    /// For `unavailable`: resend no sooner than this many ms from now (a 409 that could not
    /// prove a recording yet).
    pub retry_after_ms: Option<u64>,
    /// For `unavailable`: an attempt got no answer and may still be running at Autumn (a route
    /// in front passes that on, so its caller waits before taking a 409 as proof).
    pub unanswered: bool,
}

impl TrackError {
    /// A validation error on `field`.
    pub fn input(field: &str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidInput, message).with_field(field)
    }

    /// An options error on `field`.
    pub fn options(field: &str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidOptions, message).with_field(field)
    }

    /// A bare error.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        TrackError {
            code,
            message: message.into(),
            field: None,
            status: None,
            idempotency_key: None,
            retry_after_ms: None,
            unanswered: false,
        }
    }

    /// Sets `field`.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Sets `idempotency_key`.
    pub fn with_key(mut self, key: &str) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

impl fmt::Display for TrackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())?;
        f.write_str(": ")?;
        f.write_str(&self.message)
    }
}

impl core::error::Error for TrackError {}
