//! Command-line parsing for the `autumn-mock` binary.

use std::path::PathBuf;

use crate::config::{Config, DEFAULT_PORT};
use crate::faults::{FaultsPatch, OutageMode};

/// Usage text (`--help`).
pub const USAGE: &str = "\
autumn-mock: local mock of the Autumn billing API track endpoints

USAGE: autumn-mock [OPTIONS]

Prints exactly `listening on http://127.0.0.1:PORT` as its first stdout line.
Listens on 127.0.0.1 only. Exits on SIGTERM / SIGINT.

OPTIONS:
  --port N                   TCP port (default 8787; 0 = pick a free port)
  --config FILE              JSON config (secret_keys, features, customers, ...)
  --secret-key KEY           accept only this secret key (repeatable; default: any
                             well-formed am_sk_test_... / am_sk_live_... key)
  --auto-create-customers    unknown customers are created instead of 404
  --idempotency-ttl-secs S   idempotency key lifetime (default 86400; fractions allowed)
  --batch-rate-limit N       batch requests per rolling second (default 10; 0 = off)
  --max-body-bytes N         request body limit (default 2097152); larger = 413
  --max-events N             events kept for /_mock/events (default 500000;
                             oldest evicted first, ~0.8 KB each)
  --exit-on-stdin-eof        exit when stdin closes (for test harnesses)
  --seed N                   fault RNG seed (default 1)
  --error-500 P              probability of an injected 500
  --error-502 P              probability of an injected 502
  --error-503 P              probability of an injected 503 (+ Retry-After)
  --rate-limit-429 P         probability of an injected 429 (plain text + Retry-After)
  --latency-ms MS            added latency on every API request
  --latency-jitter-ms MS     extra random latency in 0..=MS
  --drop-after-record P      probability of recording, then dropping the connection
  --reset-before-body P      probability of resetting the connection before the body
  --outage                   refuse every API request (see --outage-mode)
  --outage-mode 503|reset    outage answers 503 + Retry-After (default) or resets
  --retry-after-secs N       Retry-After on injected 429/503 (default 1)
  --retry-after VALUE        raw Retry-After on injected 429/503 instead (a lie such
                             as 315360000, a past HTTP-date, or garbage)
  --html-502 P               probability of a proxy's 502 HTML page (not processed)
  --html-503 P               probability of a proxy's 503 HTML page (not processed)
  --html-403 P               probability of a proxy's 403 HTML page (not processed)
  --slow-headers P           probability of headers that never finish (not processed)
  --garbage-body P           probability of processing, then a non-JSON body
  --truncated-body P         probability of processing, then the JSON body cut in half
  --slow-body P              probability of processing, then a body that trickles forever
  --hold-claim P             probability of claiming the keys, stalling, then failing and releasing
  --hold-claim-ms MS         how long a hold-claim stalls (default 3000)
  --hold-claim-status S      how a hold-claim ends: 500 (default), 502, 503, 404, or 200 (processed)
  --redirect-302 P           probability of a 302 to /login (an expired session), not processed
  -h, --help                 this text
  -V, --version              version
";

/// Parsed options.
#[derive(Debug, Clone)]
pub struct Options {
    /// Port to bind on 127.0.0.1.
    pub port: u16,
    /// Resolved configuration (file + flags).
    pub config: Config,
    /// Exit when stdin reaches EOF.
    pub exit_on_stdin_eof: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Parsed {
    /// Run the server.
    Run(Box<Options>),
    /// Print usage.
    Help,
    /// Print the version.
    Version,
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{flag}: invalid value {v:?}"))
}

fn prob(flag: &str, v: &str) -> Result<f64, String> {
    let p: f64 = num(flag, v)?;
    if p.is_finite() && (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!(
            "{flag}: probability must be between 0 and 1, got {v}"
        ))
    }
}

/// Parse arguments (without the program name). Accepts `--flag value` and `--flag=value`.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut port = DEFAULT_PORT;
    let mut config_path: Option<PathBuf> = None;
    let mut keys: Vec<String> = Vec::new();
    let mut auto_create = false;
    let mut ttl: Option<f64> = None;
    let mut batch_rate: Option<u32> = None;
    let mut max_body: Option<usize> = None;
    let mut max_events: Option<usize> = None;
    let mut seed: Option<u64> = None;
    let mut exit_on_eof = false;
    let mut faults = FaultsPatch::default();
    let mut any_fault = false;

    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            "--port" => port = num("--port", &value("--port")?)?,
            "--config" => config_path = Some(PathBuf::from(value("--config")?)),
            "--secret-key" => keys.push(value("--secret-key")?),
            "--auto-create-customers" => auto_create = true,
            "--exit-on-stdin-eof" => exit_on_eof = true,
            "--idempotency-ttl-secs" => {
                ttl = Some(num(
                    "--idempotency-ttl-secs",
                    &value("--idempotency-ttl-secs")?,
                )?)
            }
            "--batch-rate-limit" => {
                batch_rate = Some(num("--batch-rate-limit", &value("--batch-rate-limit")?)?)
            }
            "--max-body-bytes" => {
                max_body = Some(num("--max-body-bytes", &value("--max-body-bytes")?)?)
            }
            "--max-events" => max_events = Some(num("--max-events", &value("--max-events")?)?),
            "--seed" => seed = Some(num("--seed", &value("--seed")?)?),
            "--error-500" => faults.error_500 = Some(prob(&flag, &value(&flag)?)?),
            "--error-502" => faults.error_502 = Some(prob(&flag, &value(&flag)?)?),
            "--error-503" => faults.error_503 = Some(prob(&flag, &value(&flag)?)?),
            "--rate-limit-429" => faults.rate_limit_429 = Some(prob(&flag, &value(&flag)?)?),
            "--drop-after-record" => faults.drop_after_record = Some(prob(&flag, &value(&flag)?)?),
            "--reset-before-body" => faults.reset_before_body = Some(prob(&flag, &value(&flag)?)?),
            "--latency-ms" => faults.latency_ms = Some(num(&flag, &value(&flag)?)?),
            "--latency-jitter-ms" => faults.latency_jitter_ms = Some(num(&flag, &value(&flag)?)?),
            "--retry-after-secs" => faults.retry_after_secs = Some(num(&flag, &value(&flag)?)?),
            "--retry-after" => faults.retry_after = Some(value(&flag)?),
            "--html-502" => faults.html_502 = Some(prob(&flag, &value(&flag)?)?),
            "--html-503" => faults.html_503 = Some(prob(&flag, &value(&flag)?)?),
            "--html-403" => faults.html_403 = Some(prob(&flag, &value(&flag)?)?),
            "--slow-headers" => faults.slow_headers = Some(prob(&flag, &value(&flag)?)?),
            "--garbage-body" => faults.garbage_body = Some(prob(&flag, &value(&flag)?)?),
            "--truncated-body" => faults.truncated_body = Some(prob(&flag, &value(&flag)?)?),
            "--slow-body" => faults.slow_body = Some(prob(&flag, &value(&flag)?)?),
            "--hold-claim" => faults.hold_claim = Some(prob(&flag, &value(&flag)?)?),
            "--hold-claim-ms" => faults.hold_claim_ms = Some(num(&flag, &value(&flag)?)?),
            "--hold-claim-status" => faults.hold_claim_status = Some(num(&flag, &value(&flag)?)?),
            "--redirect-302" => faults.redirect_302 = Some(prob(&flag, &value(&flag)?)?),
            "--outage" => faults.outage = Some(true),
            "--outage-mode" => {
                faults.outage_mode = Some(match value(&flag)?.as_str() {
                    "503" => OutageMode::Status503,
                    "reset" => OutageMode::Reset,
                    other => {
                        return Err(format!(
                            "--outage-mode: expected 503 or reset, got {other:?}"
                        ))
                    }
                })
            }
            other => return Err(format!("unknown argument {other:?} (see --help)")),
        }
        if flag.starts_with("--error-")
            || flag.starts_with("--rate-limit-429")
            || flag.starts_with("--latency")
            || flag.starts_with("--drop-after")
            || flag.starts_with("--reset-before")
            || flag.starts_with("--outage")
            || flag.starts_with("--retry-after")
            || flag.starts_with("--html-")
            || flag.starts_with("--slow-")
            || flag == "--garbage-body"
            || flag == "--truncated-body"
        {
            any_fault = true;
        }
    }

    let mut config = match &config_path {
        Some(p) => Config::from_file(p)?,
        None => Config::default(),
    };
    if !keys.is_empty() {
        config.secret_keys = Some(keys);
    }
    if auto_create {
        config.auto_create_customers = true;
    }
    if let Some(t) = ttl {
        config.idempotency_ttl_secs = t;
    }
    if let Some(b) = batch_rate {
        config.batch_rate_limit_per_sec = b;
    }
    if let Some(m) = max_body {
        config.max_body_bytes = m;
    }
    if let Some(m) = max_events {
        config.max_events = m;
    }
    if let Some(s) = seed {
        config.seed = Some(s);
    }
    if any_fault {
        let mut merged = config.faults.take().unwrap_or_default();
        macro_rules! over {
            ($($f:ident),*) => { $( if faults.$f.is_some() { merged.$f = faults.$f; } )* };
        }
        over!(
            error_500,
            error_502,
            error_503,
            rate_limit_429,
            latency_ms,
            latency_jitter_ms,
            drop_after_record,
            reset_before_body,
            outage,
            outage_mode,
            retry_after_secs,
            retry_after,
            html_502,
            html_503,
            html_403,
            slow_headers,
            garbage_body,
            truncated_body,
            slow_body,
            hold_claim,
            hold_claim_ms,
            hold_claim_status,
            redirect_302
        );
        config.faults = Some(merged);
    }
    config.validate()?;
    Ok(Parsed::Run(Box::new(Options {
        port,
        config,
        exit_on_stdin_eof: exit_on_eof,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(|s| (*s).to_owned()))? {
            Parsed::Run(o) => Ok(*o),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn flags() {
        let o = run(&[
            "--port=0",
            "--error-503",
            "0.5",
            "--outage-mode",
            "reset",
            "--secret-key",
            "am_sk_test_x",
            "--idempotency-ttl-secs",
            "1.5",
        ]);
        let Ok(o) = o else {
            unreachable!("{o:?}");
        };
        assert_eq!(o.port, 0);
        assert_eq!(o.config.idempotency_ttl_secs, 1.5);
        let f = o.config.faults.unwrap_or_default();
        assert_eq!(f.error_503, Some(0.5));
        assert_eq!(f.outage_mode, Some(OutageMode::Reset));
        let o = run(&[
            "--html-502=1",
            "--slow-headers",
            "0.25",
            "--garbage-body",
            "0.5",
            "--retry-after",
            "Sun, 06 Nov 1994 08:49:37 GMT",
        ]);
        let Ok(o) = o else {
            unreachable!("{o:?}");
        };
        let f = o.config.faults.unwrap_or_default();
        assert_eq!(f.html_502, Some(1.0));
        assert_eq!(f.slow_headers, Some(0.25));
        assert_eq!(f.garbage_body, Some(0.5));
        assert_eq!(
            f.retry_after.as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert!(run(&["--slow-body", "1.5"]).is_err());
        assert!(run(&["--retry-after", "bad\nvalue"]).is_err());
        assert!(run(&["--error-500", "2"]).is_err());
        assert!(run(&["--bogus"]).is_err());
        assert!(run(&["--secret-key", "am_pk_test_x"]).is_err());
        assert_eq!(run(&[]).map(|o| o.port).ok(), Some(DEFAULT_PORT));
    }
}
