//! `Authorization: Bearer <key>` handling.

use std::collections::HashSet;

/// Autumn environment of a key; reported as `env` in error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Env {
    /// `am_sk_test_…` / `am_pk_test_…` keys.
    Sandbox,
    /// `am_sk_live_…` / `am_pk_live_…` keys.
    Live,
}

impl Env {
    /// `"sandbox"` or `"live"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Env::Sandbox => "sandbox",
            Env::Live => "live",
        }
    }
}

/// Why a request was refused (all 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header, or an empty key.
    NoSecretKey,
    /// Not `Bearer <key>`, a malformed key, or a key not in `secret_keys`.
    InvalidSecretKey,
    /// A publishable key (`am_pk_…`): track is not a public endpoint.
    EndpointNotPublic,
}

impl AuthError {
    /// Autumn error code.
    pub fn code(self) -> &'static str {
        match self {
            AuthError::NoSecretKey => "no_secret_key",
            AuthError::InvalidSecretKey => "invalid_secret_key",
            AuthError::EndpointNotPublic => "endpoint_not_public",
        }
    }

    /// Human message.
    pub fn message(self) -> &'static str {
        match self {
            AuthError::NoSecretKey => {
                "Secret key not found in Authorization header (expected 'Bearer am_sk_...')"
            }
            AuthError::InvalidSecretKey => "Invalid secret key",
            AuthError::EndpointNotPublic => {
                "Endpoint cannot be accessed using a publishable key; use a secret key"
            }
        }
    }
}

fn well_formed_suffix(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `Some(env)` when `key` is a well-formed secret key.
pub fn secret_env(key: &str) -> Option<Env> {
    if let Some(rest) = key.strip_prefix("am_sk_test_") {
        well_formed_suffix(rest).then_some(Env::Sandbox)
    } else if let Some(rest) = key.strip_prefix("am_sk_live_") {
        well_formed_suffix(rest).then_some(Env::Live)
    } else {
        None
    }
}

/// Best guess of the environment from a raw `Authorization` header (for error bodies).
pub fn env_hint(header: Option<&[u8]>) -> Env {
    match header {
        Some(h) if contains(h, b"_live_") => Env::Live,
        _ => Env::Sandbox,
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Check an `Authorization` header. `allowed = None` accepts any well-formed secret key.
pub fn authenticate(
    header: Option<&[u8]>,
    allowed: Option<&HashSet<String>>,
) -> Result<Env, (AuthError, Env)> {
    let env = env_hint(header);
    let Some(raw) = header else {
        return Err((AuthError::NoSecretKey, env));
    };
    // HTTP parsers trim trailing whitespace, so "Bearer " arrives as "Bearer".
    if raw.is_empty() || raw == b"Bearer" {
        return Err((AuthError::NoSecretKey, env));
    }
    let Some(key) = raw.strip_prefix(b"Bearer ") else {
        return Err((AuthError::InvalidSecretKey, env));
    };
    if key.is_empty() {
        return Err((AuthError::NoSecretKey, env));
    }
    let Ok(key) = std::str::from_utf8(key) else {
        return Err((AuthError::InvalidSecretKey, env));
    };
    if key.starts_with("am_pk_") {
        return Err((AuthError::EndpointNotPublic, env));
    }
    let Some(key_env) = secret_env(key) else {
        return Err((AuthError::InvalidSecretKey, env));
    };
    if let Some(allowed) = allowed {
        if !allowed.contains(key) {
            return Err((AuthError::InvalidSecretKey, key_env));
        }
    }
    Ok(key_env)
}
