//! The HTTP server: routing, CORS, body limits, faults, the track/batch handlers and the
//! `/_mock/*` control API.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Number, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::{authenticate, env_hint, Env};
use crate::config::{Catalog, Config, DEFAULT_SEED};
use crate::faults::{Action, Faults, FaultsPatch, Mangle, Pre};
use crate::state::{
    key_set, BalanceView, Deduction, Event, EventFilter, RequestMeta, Stats, Store,
};
use crate::track::{parse_body, validate, ApiError, Target, TrackInput};

/// Bodies declared or streamed beyond this are not drained: 413 and close.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;
/// Batch size limits.
const BATCH_MAX: usize = 1000;
const TOO_MANY: &str = "Too many requests, please try again later.";
const ALLOW_HEADERS: &str = "Authorization, Content-Type, Accept, x-api-version, Idempotency-Key";
const EXPOSE_HEADERS: &str = "Retry-After, Date";

type Resp = Response<MockBody>;

/// How often a slow-loris answer sends its next byte.
const TRICKLE_EVERY: Duration = Duration::from_millis(250);

/// A response body: whole, or trickling forever (slow-loris faults) until the client leaves.
pub(crate) enum MockBody {
    /// The whole body at once (`None` once sent).
    Once(Option<Bytes>),
    /// `first`, then a space every `TRICKLE_EVERY`, never ending.
    Trickle {
        first: Option<Bytes>,
        sleep: Pin<Box<tokio::time::Sleep>>,
    },
}

impl MockBody {
    fn once(b: impl Into<Bytes>) -> MockBody {
        MockBody::Once(Some(b.into()))
    }

    fn trickle(first: Bytes) -> MockBody {
        MockBody::Trickle {
            first: Some(first).filter(|b| !b.is_empty()),
            sleep: Box::pin(tokio::time::sleep(TRICKLE_EVERY)),
        }
    }

    /// The bytes of a whole body (empty for a trickle).
    fn bytes(&self) -> Bytes {
        match self {
            MockBody::Once(b) => b.clone().unwrap_or_default(),
            MockBody::Trickle { .. } => Bytes::new(),
        }
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            MockBody::Once(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            MockBody::Trickle { first, sleep } => {
                if let Some(b) = first.take() {
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(()) => {
                        sleep
                            .as_mut()
                            .reset(tokio::time::Instant::now() + TRICKLE_EVERY);
                        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Once(b) => b.as_ref().map_or(true, Bytes::is_empty),
            MockBody::Trickle { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Once(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            MockBody::Trickle { .. } => SizeHint::default(),
        }
    }
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Shared server state.
pub(crate) struct App {
    keys: Option<HashSet<String>>,
    store: Mutex<Store>,
    faults: Mutex<Faults>,
    stats: Stats,
    max_body: usize,
    base_seed: u64,
}

impl App {
    pub(crate) fn new(cfg: &Config) -> Result<App, String> {
        cfg.validate()?;
        let cat = Arc::new(Catalog::new(&cfg.features));
        let base_seed = cfg.seed.unwrap_or(DEFAULT_SEED);
        let mut faults = Faults::new(base_seed);
        if let Some(p) = &cfg.faults {
            faults.apply(p)?;
        }
        Ok(App {
            keys: key_set(cfg),
            store: Mutex::new(Store::new(cfg, cat)),
            faults: Mutex::new(faults),
            stats: Stats::default(),
            max_body: cfg.max_body_bytes,
            base_seed,
        })
    }
}

/// Per-connection flags.
#[derive(Debug, Default)]
struct ConnFlags {
    reset: AtomicBool,
    /// The next answer's headers never finish (`slow_headers`).
    stall_headers: AtomicBool,
}

/// Where a `slow_headers` answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stall {
    Off,
    /// Passing the head through until its blank line.
    AwaitHead,
    /// The head was cut before its blank line; every later write sends one more header byte.
    Stalled,
}

/// The accepted socket; on drop, sends a TCP reset instead of FIN when asked to. For a
/// `slow_headers` answer it rewrites what hyper writes: the head goes out without its final
/// blank line, then an `x-slow-loris:` header grows by a byte per write (the answer's body
/// trickles, so hyper keeps writing) until the client gives up.
struct ConnIo {
    inner: TcpStream,
    flags: Arc<ConnFlags>,
    stall: Stall,
    pending: Vec<u8>,
}

impl ConnIo {
    fn flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.pending.drain(..n.min(self.pending.len()));
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `data` from hyper in stall mode (always all of it) and sends what the stall says.
    fn stall_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.stall == Stall::AwaitHead {
            match data.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(pos) => {
                    self.pending
                        .extend_from_slice(data.get(..pos + 2).unwrap_or_default());
                    self.pending.extend_from_slice(b"x-slow-loris: ");
                    self.stall = Stall::Stalled;
                }
                None => self.pending.extend_from_slice(data),
            }
        } else if !data.is_empty() {
            self.pending.push(b'a');
        }
        match self.flush_pending(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(data.len())),
        }
    }

    fn stalling(&mut self) -> bool {
        if self.stall == Stall::Off && self.flags.stall_headers.swap(false, Ordering::Relaxed) {
            self.stall = Stall::AwaitHead;
        }
        self.stall != Stall::Off
    }
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.flags.reset.load(Ordering::Relaxed) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stalling() {
            return this.stall_write(cx, buf);
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.stalling() {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return this.stall_write(cx, &all);
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            match this.flush_pending(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Accept loop; returns once `shutdown` resolves and open connections finished (2 s at most).
pub(crate) async fn run(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .timer(TokioTimer::new())
        // No server-side idle timeout: closing an idle keep-alive connection races with a
        // client reusing it, and a test client must never see that as a (fake) fault.
        .header_read_timeout(None);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let flags = Arc::new(ConnFlags::default());
                    let io = ConnIo {
                        inner: stream,
                        flags: Arc::clone(&flags),
                        stall: Stall::Off,
                        pending: Vec::new(),
                    };
                    let app = Arc::clone(&app);
                    let svc = service_fn(move |req| {
                        handle(Arc::clone(&app), Arc::clone(&flags), req)
                    });
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(io), svc));
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning or dying.
                    eprintln!("autumn-mock: accept error: {e}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------- responses

fn response(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(MockBody::once(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    r
}

fn json_bytes(status: u16, body: Vec<u8>) -> Resp {
    response(status, "application/json", body)
}

fn json_value<T: Serialize>(status: u16, v: &T) -> Resp {
    json_bytes(status, serde_json::to_vec(v).unwrap_or_default())
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'a str,
    env: &'a str,
}

fn error(status: u16, code: &str, message: &str, env: Env) -> Resp {
    json_value(
        status,
        &ErrorBody {
            message,
            code,
            env: env.as_str(),
        },
    )
}

fn api_error(e: &ApiError, env: Env) -> Resp {
    error(e.status, e.code, &e.message, env)
}

fn with_retry_after(mut r: Resp, value: &str) -> Resp {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(hyper::header::RETRY_AFTER, v);
    }
    r
}

fn too_many(retry_after: &str) -> Resp {
    with_retry_after(
        response(429, "text/plain; charset=utf-8", TOO_MANY),
        retry_after,
    )
}

/// A proxy's error page (nginx / CDN style), long enough that a client quoting it whole
/// would be noticed; it ends with `<!-- end of proxy page -->`.
fn html_page(status: u16) -> Resp {
    let title = match status {
        502 => "502 Bad Gateway",
        503 => "503 Service Temporarily Unavailable",
        _ => "403 Forbidden",
    };
    let mut body = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>{title}</title>\n<style>body{{font-family:sans-serif;margin:4em auto;max-width:40em;color:#333}}</style></head>\n<body>\n<center><h1>{title}</h1></center>\n<hr><center>edge-proxy (injected by autumn-mock)</center>\n"
    );
    for i in 0..20 {
        body.push_str(&format!(
            "<!-- a padding comment, line {i}: proxies pad their error pages so browsers show them -->\n"
        ));
    }
    body.push_str("</body>\n</html>\n<!-- end of proxy page -->\n");
    response(status, "text/html; charset=UTF-8", body)
}

/// Applies a `Mangle` to a processed answer (status and headers kept).
fn mangle(r: Resp, how: Mangle) -> Resp {
    let (mut parts, body) = r.into_parts();
    let bytes = body.bytes();
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    let body = match how {
        Mangle::Garbage => MockBody::once(Bytes::from_static(
            b"\xff\xfe<<garbage from autumn-mock: not JSON>> \x00\x01 {\"",
        )),
        Mangle::Truncate => MockBody::once(bytes.slice(..bytes.len() / 2)),
        Mangle::SlowBody => MockBody::trickle(bytes.slice(..bytes.len() / 2)),
    };
    Response::from_parts(parts, body)
}

fn internal(status: u16, env: Env, retry_after: Option<&str>) -> Resp {
    let r = error(
        status,
        "internal_error",
        "Internal server error (injected by autumn-mock)",
        env,
    );
    match retry_after {
        Some(s) => with_retry_after(r, s),
        None => r,
    }
}

fn duplicate(key: &str, header: bool, env: Env) -> Resp {
    let msg = if header {
        format!("A request with Idempotency-Key header {key:?} was already received")
    } else {
        format!("Another request with idempotency_key {key:?} has already been received")
    };
    error(409, "duplicate_idempotency_key", &msg, env)
}

fn not_found(method: &Method, path: &str, env: Env) -> Resp {
    error(
        404,
        "not_found",
        &format!("Route not found: {method} {path}"),
        env,
    )
}

// ---------------------------------------------------------------- CORS

fn add_cors(r: &mut Resp, origin: Option<&HeaderValue>) {
    let h = r.headers_mut();
    match origin {
        Some(o) => {
            h.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            h.insert(
                hyper::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            h.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            h.insert(
                hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    h.insert(
        hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

fn preflight(headers: &HeaderMap) -> Resp {
    let mut r = Response::new(MockBody::once(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    let h = r.headers_mut();
    h.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    let allow = match headers
        .get(hyper::header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(req) => HeaderValue::from_str(&format!("{ALLOW_HEADERS}, {req}"))
            .unwrap_or(HeaderValue::from_static(ALLOW_HEADERS)),
        None => HeaderValue::from_static(ALLOW_HEADERS),
    };
    h.insert(hyper::header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
    h.insert(
        hyper::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    if headers.contains_key("access-control-request-private-network") {
        h.insert(
            HeaderName::from_static("access-control-allow-private-network"),
            HeaderValue::from_static("true"),
        );
    }
    r
}

// ---------------------------------------------------------------- body

enum BodyError {
    TooLarge { close: bool },
    Io,
}

async fn drain(body: &mut Incoming, mut seen: u64) -> Result<(), BodyError> {
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Io)?;
        if let Some(d) = frame.data_ref() {
            seen += d.len() as u64;
            if seen > DRAIN_CAP {
                return Err(BodyError::TooLarge { close: true });
            }
        }
    }
    Ok(())
}

/// Read at most `limit` bytes. Past the limit, the rest is read and discarded (so the client,
/// which usually writes its whole body before reading, sees the 413) up to `DRAIN_CAP`.
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > limit as u64 {
            let expects = headers
                .get(hyper::header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if expects || n > DRAIN_CAP {
                // Never polling the body means hyper never sends `100 Continue`.
                return Err(BodyError::TooLarge { close: true });
            }
            drain(&mut body, 0).await?;
            return Err(BodyError::TooLarge { close: false });
        }
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Option<BytesMut> = None;
    let mut total: usize = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Io)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        if total > limit {
            drain(&mut body, total as u64).await?;
            return Err(BodyError::TooLarge { close: false });
        }
        match (&mut first, &mut buf) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(f.len() + data.len());
                b.extend_from_slice(f);
                b.extend_from_slice(&data);
                buf = Some(b);
            }
            (_, Some(b)) => b.extend_from_slice(&data),
        }
    }
    Ok(match buf {
        Some(b) => b.freeze(),
        None => first.unwrap_or_default(),
    })
}

fn too_large(limit: usize, close: bool, env: Env) -> Resp {
    let mut r = error(
        413,
        "payload_too_large",
        &format!("Request body too large: the limit is {limit} bytes"),
        env,
    );
    if close {
        r.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

// ---------------------------------------------------------------- routing

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Track,
    Batch,
}

async fn handle(
    app: Arc<App>,
    flags: Arc<ConnFlags>,
    req: Request<Incoming>,
) -> Result<Resp, DropConnection> {
    let origin = req.headers().get(hyper::header::ORIGIN).cloned();
    let mut r = route(&app, &flags, req).await?;
    add_cors(&mut r, origin.as_ref());
    Ok(r)
}

async fn route(
    app: &Arc<App>,
    flags: &ConnFlags,
    req: Request<Incoming>,
) -> Result<Resp, DropConnection> {
    if req.method() == Method::OPTIONS {
        return Ok(preflight(req.headers()));
    }
    let path = req.uri().path();
    if path == "/_mock" || path.starts_with("/_mock/") {
        return Ok(mock_api(app, req).await);
    }
    inc(&app.stats.requests);
    if path == "/login" && req.method() == Method::GET {
        // Where a `redirect_302` fault sends the client: an auth layer's sign-in page.
        return Ok(response(
            200,
            "text/html; charset=utf-8",
            &b"<!doctype html><title>Sign in</title><form method=post><input name=email></form>"[..],
        ));
    }
    let kind = match path {
        "/v1/balances.track" | "/v1/track" | "/v1/events" => Some(Kind::Track),
        "/v1/balances.batch_track" => Some(Kind::Batch),
        _ => None,
    };
    let r = match kind {
        Some(kind) if req.method() == Method::POST => api(app, flags, req, kind).await?,
        _ => {
            let env = env_hint(
                req.headers()
                    .get(hyper::header::AUTHORIZATION)
                    .map(HeaderValue::as_bytes),
            );
            not_found(req.method(), req.uri().path(), env)
        }
    };
    app.stats.status(r.status().as_u16());
    Ok(r)
}

fn header_string(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The key a fault script is looked up by: body `idempotency_key` (batch: the first item's),
/// else the `Idempotency-Key` header.
fn script_key<'a>(json: &'a Value, kind: Kind, header: Option<&'a str>) -> Option<&'a str> {
    let obj = match (kind, json) {
        (Kind::Track, v) => Some(v),
        (Kind::Batch, Value::Array(items)) => items.first(),
        _ => None,
    };
    obj.and_then(|o| o.get("idempotency_key"))
        .and_then(Value::as_str)
        .or(header)
}

async fn api(
    app: &Arc<App>,
    flags: &ConnFlags,
    req: Request<Incoming>,
    kind: Kind,
) -> Result<Resp, DropConnection> {
    match kind {
        Kind::Track => inc(&app.stats.track_requests),
        Kind::Batch => inc(&app.stats.batch_requests),
    }
    let env = env_hint(
        req.headers()
            .get(hyper::header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    );
    let (pre, retry_after) = {
        let mut f = app.faults.lock();
        (f.before_body(), f.retry_after_value())
    };
    match pre {
        Pre::Continue => {}
        Pre::Outage503 => {
            inc(&app.stats.fault_outage);
            return Ok(internal(503, env, Some(&retry_after)));
        }
        Pre::OutageReset => {
            inc(&app.stats.fault_outage);
            flags.reset.store(true, Ordering::Relaxed);
            return Err(DropConnection);
        }
        Pre::Reset => {
            inc(&app.stats.fault_reset);
            flags.reset.store(true, Ordering::Relaxed);
            return Err(DropConnection);
        }
    }
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, &parts.headers, app.max_body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge { close }) => {
            inc(&app.stats.too_large);
            return Ok(too_large(app.max_body, close, env));
        }
        Err(BodyError::Io) => return Err(DropConnection),
    };
    let json = parse_body(&bytes);
    let header_key = header_string(&parts.headers, "idempotency-key");
    let plan = {
        let mut f = app.faults.lock();
        let key = if f.has_scripts() {
            script_key(&json, kind, header_key.as_deref())
        } else {
            None
        };
        f.plan(key)
    };
    if let Some(lat) = plan.latency {
        inc(&app.stats.fault_latency);
        tokio::time::sleep(lat).await;
    }
    if plan.reset {
        inc(&app.stats.fault_reset);
        flags.reset.store(true, Ordering::Relaxed);
        return Err(DropConnection);
    }
    if let Some((stall, status)) = plan.hold {
        inc(&app.stats.fault_hold_claim);
        return Ok(hold(
            app,
            parts,
            json,
            header_key,
            kind,
            stall,
            status,
            retry_after,
        )
        .await);
    }
    if let Some(e) = plan.error {
        return Ok(match e {
            Action::Redirect => {
                inc(&app.stats.fault_redirect);
                let mut r = response(
                    302,
                    "text/html; charset=utf-8",
                    &b"<a href=\"/login\">Found</a>"[..],
                );
                r.headers_mut()
                    .insert(hyper::header::LOCATION, HeaderValue::from_static("/login"));
                r
            }
            Action::E429 => {
                inc(&app.stats.fault_429);
                too_many(&retry_after)
            }
            Action::Conflict => response(409, "text/plain; charset=utf-8", &b"Conflict"[..]),
            Action::E503 => {
                inc(&app.stats.fault_503);
                internal(503, env, Some(&retry_after))
            }
            Action::LyingRetryAfter(429, ra) => {
                inc(&app.stats.fault_429);
                too_many(ra.value())
            }
            Action::LyingRetryAfter(_, ra) => {
                inc(&app.stats.fault_503);
                internal(503, env, Some(ra.value()))
            }
            Action::Html(status) => {
                inc(match status {
                    502 => &app.stats.fault_html_502,
                    503 => &app.stats.fault_html_503,
                    _ => &app.stats.fault_html_403,
                });
                html_page(status)
            }
            Action::SlowHeaders => {
                inc(&app.stats.fault_slow_headers);
                flags.stall_headers.store(true, Ordering::Relaxed);
                let mut r = response(200, "application/json", Bytes::new());
                *r.body_mut() = MockBody::trickle(Bytes::from_static(b"{"));
                r
            }
            Action::E502 => {
                inc(&app.stats.fault_502);
                internal(502, env, None)
            }
            _ => {
                inc(&app.stats.fault_500);
                internal(500, env, None)
            }
        });
    }
    let r = match kind {
        Kind::Track => track(app, &parts, json, header_key, plan.drop_after_record, None),
        Kind::Batch => batch(app, &parts, json, header_key, plan.drop_after_record, None),
    };
    if plan.drop_after_record {
        inc(&app.stats.fault_drop);
        return Err(DropConnection);
    }
    if let Some(how) = plan.mangle {
        inc(match how {
            Mangle::Garbage => &app.stats.fault_garbage_body,
            Mangle::Truncate => &app.stats.fault_truncated_body,
            Mangle::SlowBody => &app.stats.fault_slow_body,
        });
        return Ok(mangle(r, how));
    }
    Ok(r)
}

/// Keys a stalled request claimed for itself (`hold`): its own claims, not duplicates.
#[derive(Default)]
struct Preclaimed {
    header: bool,
    body: Vec<String>,
}

/// A `hold` fault: claims the request's keys as Autumn does when a request starts, stalls, then
/// ends with `status` (200: processed normally, still under its own claims; otherwise the keys
/// are released and the error answered). The stall runs in its own task, so a client that
/// gives up (a timeout) does not stop it: the request still ends, and releases, on schedule.
#[allow(clippy::too_many_arguments)]
async fn hold(
    app: &Arc<App>,
    parts: Parts,
    json: Value,
    header_key: Option<String>,
    kind: Kind,
    stall: Duration,
    status: u16,
    retry_after: String,
) -> Resp {
    let (env, _) = match preamble(app, &parts) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let keys: Vec<String> = match (kind, &json) {
        (Kind::Track, v) => v.get("idempotency_key").into_iter().collect(),
        (Kind::Batch, Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("idempotency_key"))
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter_map(Value::as_str)
    .map(str::to_owned)
    .collect();
    let mut pre = Preclaimed::default();
    {
        let now = Instant::now();
        let mut st = app.store.lock();
        if let Some(hk) = &header_key {
            if !st.header_keys.claim(hk, now) {
                drop(st);
                inc(&app.stats.duplicates_rejected);
                return duplicate(hk, true, env);
            }
            pre.header = true;
        }
        for k in keys {
            if st.body_keys.claim(&k, now) {
                pre.body.push(k);
            } else if kind == Kind::Track {
                if let Some(hk) = header_key.as_deref().filter(|_| pre.header) {
                    st.header_keys.release(hk);
                }
                drop(st);
                inc(&app.stats.duplicates_rejected);
                return duplicate(&k, false, env);
            }
        }
    }
    let app = Arc::clone(app);
    let task = tokio::spawn(async move {
        tokio::time::sleep(stall).await;
        let r = if status == 200 {
            let r = match kind {
                Kind::Track => track(&app, &parts, json, header_key.clone(), false, Some(&pre)),
                Kind::Batch => batch(&app, &parts, json, header_key.clone(), false, Some(&pre)),
            };
            let s = r.status().as_u16();
            if s < 400 || s == 409 {
                return r;
            }
            Some(r)
        } else {
            None
        };
        // The request failed: it releases what it claimed.
        {
            let mut st = app.store.lock();
            if let Some(hk) = header_key.as_deref().filter(|_| pre.header) {
                st.header_keys.release(hk);
            }
            for k in &pre.body {
                st.body_keys.release(k);
            }
        }
        if let Some(r) = r {
            return r;
        }
        match status {
            404 => error(404, "customer_not_found", "Customer not found", env),
            503 => internal(503, env, Some(&retry_after)),
            s => internal(s, env, None),
        }
    });
    task.await.unwrap_or_else(|_| internal(500, env, None))
}

fn valid_api_version(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    (parts.len() == 2 || parts.len() == 3)
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Auth and `x-api-version`: `Ok((env, api_version))` or the error response.
fn preamble(app: &App, parts: &Parts) -> Result<(Env, Option<String>), Box<Resp>> {
    let auth = parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let env = authenticate(auth, app.keys.as_ref())
        .map_err(|(e, env)| Box::new(error(401, e.code(), e.message(), env)))?;
    let version = match parts.headers.get("x-api-version") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) if valid_api_version(s) => Some(s.to_owned()),
            _ => {
                return Err(Box::new(error(
                    400,
                    "invalid_api_version",
                    &format!(
                        "Invalid x-api-version {:?}: expected a version like 2.3.0",
                        String::from_utf8_lossy(v.as_bytes())
                    ),
                    env,
                )))
            }
        },
    };
    Ok((env, version))
}

/// Serializes a `HeaderMap` as a JSON object (repeated names joined with ", ").
struct HeadersJson<'a>(&'a HeaderMap);

impl Serialize for HeadersJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let mut values = self.0.get_all(name).iter();
            let first = values
                .next()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .unwrap_or_default();
            let mut rest = values.peekable();
            if rest.peek().is_none() {
                m.serialize_entry(name.as_str(), &first)?;
            } else {
                let mut joined = first.into_owned();
                for v in rest {
                    joined.push_str(", ");
                    joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
                }
                m.serialize_entry(name.as_str(), &joined)?;
            }
        }
        m.end()
    }
}

fn collect_headers(h: &HeaderMap) -> Box<RawValue> {
    serde_json::value::to_raw_value(&HeadersJson(h))
        .unwrap_or_else(|_| RawValue::from_string("{}".into()).unwrap_or_default())
}

fn make_event(
    input: TrackInput,
    meta: &Arc<RequestMeta>,
    via: &'static str,
    deductions: Vec<Deduction>,
    now_ms: u64,
) -> Event {
    let (feature_id, event_name) = match input.target {
        Target::Feature(f) => (Some(f), None),
        Target::Event(e) => (None, Some(e)),
    };
    Event {
        seq: 0,
        idempotency_key: input.idempotency_key,
        customer_id: input.customer_id,
        feature_id,
        event_name,
        entity_id: input.entity_id,
        value: input.value_raw,
        timestamp: input.timestamp,
        properties: input
            .properties
            .and_then(|p| serde_json::value::to_raw_value(&p).ok()),
        received_at: now_ms,
        via,
        meta: Arc::clone(meta),
        is_async: input.is_async,
        overage_behavior: input.overage,
        deductions,
    }
}

#[derive(Serialize)]
struct TrackResponse<'a> {
    customer_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_name: Option<&'a str>,
    value: &'a Number,
    balance: Option<&'a BalanceView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    balances: Option<&'a BTreeMap<String, BalanceView>>,
    deductions: &'a [Deduction],
}

#[derive(Serialize)]
struct AsyncResponse<'a> {
    customer_id: &'a str,
    value: &'a Number,
    balance: Option<()>,
}

fn track(
    app: &App,
    parts: &Parts,
    json: Value,
    header_key: Option<String>,
    dropped_after_record: bool,
    pre: Option<&Preclaimed>,
) -> Resp {
    let ours = |k: &str| pre.is_some_and(|p| p.body.iter().any(|b| b == k));
    let header_ours = pre.is_some_and(|p| p.header);
    let (env, api_version) = match preamble(app, parts) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now_ms = unix_ms();
    let validated = validate(json, now_ms);
    let meta = Arc::new(RequestMeta {
        api_version,
        idempotency_header: header_key,
        headers: collect_headers(&parts.headers),
        dropped_after_record,
    });
    let now = Instant::now();
    let mut st = app.store.lock();
    if let Some(hk) = &meta.idempotency_header {
        if !header_ours && !st.header_keys.claim(hk, now) {
            drop(st);
            inc(&app.stats.duplicates_rejected);
            return duplicate(hk, true, env);
        }
    }
    let input = match validated {
        Ok(i) => i,
        Err(e) => {
            if let Some(hk) = &meta.idempotency_header {
                st.header_keys.release(hk);
            }
            return api_error(&e, env);
        }
    };
    if let Some(k) = &input.idempotency_key {
        if !ours(k) && !st.body_keys.claim(k, now) {
            drop(st);
            inc(&app.stats.duplicates_rejected);
            return duplicate(k, false, env);
        }
    }
    let res = match st.resolve(&input) {
        Ok(r) => r,
        Err(e) => {
            if let Some(hk) = &meta.idempotency_header {
                st.header_keys.release(hk);
            }
            if let Some(k) = &input.idempotency_key {
                st.body_keys.release(k);
            }
            return api_error(&e, env);
        }
    };
    let applied = st.apply(&input, &res);
    let (status, body) = if input.is_async {
        (
            202,
            serde_json::to_vec(&AsyncResponse {
                customer_id: &input.customer_id,
                value: &input.value_raw,
                balance: None,
            }),
        )
    } else {
        let event_name = match &input.target {
            Target::Event(e) => Some(e.as_str()),
            Target::Feature(_) => None,
        };
        (
            200,
            serde_json::to_vec(&TrackResponse {
                customer_id: &input.customer_id,
                entity_id: input.entity_id.as_deref(),
                event_name,
                value: &input.value_raw,
                balance: applied.balance.as_ref(),
                balances: applied.balances.as_ref(),
                deductions: &applied.deductions,
            }),
        )
    };
    st.record(make_event(
        input,
        &meta,
        "track",
        applied.deductions,
        now_ms,
    ));
    drop(st);
    inc(&app.stats.recorded_events);
    json_bytes(status, body.unwrap_or_default())
}

fn batch(
    app: &App,
    parts: &Parts,
    json: Value,
    header_key: Option<String>,
    dropped_after_record: bool,
    pre: Option<&Preclaimed>,
) -> Resp {
    let header_ours = pre.is_some_and(|p| p.header);
    let (env, api_version) = match preamble(app, parts) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let now = Instant::now();
    if !app.store.lock().admit_batch(now) {
        inc(&app.stats.batch_rate_limited);
        return too_many("1");
    }
    let items = match json {
        Value::Array(items) if (1..=BATCH_MAX).contains(&items.len()) => items,
        Value::Array(items) => {
            return api_error(
                &ApiError::invalid(format!(
                    "Batch must contain between 1 and {BATCH_MAX} items, received {}",
                    items.len()
                )),
                env,
            )
        }
        _ => {
            return api_error(
                &ApiError::invalid("Invalid request body: expected an array of track items"),
                env,
            )
        }
    };
    let now_ms = unix_ms();
    let validated: Result<Vec<TrackInput>, ApiError> = items
        .into_iter()
        .enumerate()
        .map(|(i, v)| validate(v, now_ms).map_err(|e| e.at_index(i)))
        .collect();
    let meta = Arc::new(RequestMeta {
        api_version,
        idempotency_header: header_key,
        headers: collect_headers(&parts.headers),
        dropped_after_record,
    });
    let mut st = app.store.lock();
    if let Some(hk) = &meta.idempotency_header {
        if !header_ours && !st.header_keys.claim(hk, now) {
            drop(st);
            inc(&app.stats.duplicates_rejected);
            return duplicate(hk, true, env);
        }
    }
    let release = |st: &mut Store| {
        if let Some(hk) = &meta.idempotency_header {
            st.header_keys.release(hk);
        }
    };
    let inputs = match validated {
        Ok(v) => v,
        Err(e) => {
            release(&mut st);
            return api_error(&e, env);
        }
    };
    let mut resolutions = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        match st.resolve(input) {
            Ok(r) => resolutions.push(r),
            Err(e) => {
                release(&mut st);
                return api_error(&e.at_index(i), env);
            }
        }
    }
    let mut recorded = 0u64;
    let mut dropped = 0u64;
    // A stalled batch holds its items' claims already: each counts once as its own.
    let mut own: Vec<&str> =
        pre.map_or_else(Vec::new, |p| p.body.iter().map(String::as_str).collect());
    for (input, res) in inputs.into_iter().zip(resolutions) {
        if let Some(k) = &input.idempotency_key {
            let mine = own
                .iter()
                .position(|o| *o == k.as_str())
                .map(|i| own.swap_remove(i));
            if mine.is_none() && !st.body_keys.claim(k, now) {
                dropped += 1;
                continue;
            }
        }
        let applied = st.apply(&input, &res);
        st.record(make_event(
            input,
            &meta,
            "batch",
            applied.deductions,
            now_ms,
        ));
        recorded += 1;
    }
    drop(st);
    app.stats
        .recorded_events
        .fetch_add(recorded, Ordering::Relaxed);
    app.stats
        .duplicates_dropped
        .fetch_add(dropped, Ordering::Relaxed);
    json_bytes(200, br#"{"success":true}"#.to_vec())
}

// ---------------------------------------------------------------- /_mock

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn ok_json() -> Resp {
    json_bytes(200, br#"{"ok":true}"#.to_vec())
}

async fn mock_api(app: &App, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    match (&method, path.as_str()) {
        (&Method::GET, "/_mock/health") => ok_json(),
        (&Method::GET, "/_mock/faults") => json_value(200, &app.faults.lock().view()),
        (&Method::POST, "/_mock/faults") => {
            let (parts, body) = req.into_parts();
            let bytes = match read_body(body, &parts.headers, app.max_body).await {
                Ok(b) => b,
                Err(BodyError::TooLarge { close }) => {
                    return too_large(app.max_body, close, Env::Sandbox)
                }
                Err(BodyError::Io) => {
                    return error(400, "invalid_inputs", "body read error", Env::Sandbox)
                }
            };
            let patch: FaultsPatch = if bytes.iter().all(u8::is_ascii_whitespace) {
                FaultsPatch::default()
            } else {
                match serde_json::from_slice(&bytes) {
                    Ok(p) => p,
                    Err(e) => {
                        return error(400, "invalid_inputs", &format!("faults: {e}"), Env::Sandbox)
                    }
                }
            };
            let mut f = app.faults.lock();
            match f.apply(&patch) {
                Ok(()) => json_value(200, &f.view()),
                Err(e) => error(400, "invalid_inputs", &format!("faults: {e}"), Env::Sandbox),
            }
        }
        (&Method::GET, "/_mock/events") => {
            let mut f = EventFilter::default();
            for (k, v) in query_pairs(query.as_deref()) {
                match k.as_str() {
                    "customer_id" => f.customer_id = Some(v),
                    "idempotency_key" => f.idempotency_key = Some(v),
                    "feature_id" => f.feature_id = Some(v),
                    "event_name" => f.event_name = Some(v),
                    "entity_id" => f.entity_id = Some(v),
                    "via" => f.via = Some(v),
                    "idempotency_header" => f.idempotency_header = Some(v),
                    _ => {}
                }
            }
            let body = app.store.lock().events_json(&f);
            json_bytes(200, body)
        }
        (&Method::GET, "/_mock/stats") => {
            let (stored, evicted) = app.store.lock().event_counts();
            json_value(200, &app.stats.to_json(stored, evicted))
        }
        (&Method::GET, "/_mock/balances") => {
            let customer = query_pairs(query.as_deref())
                .into_iter()
                .find(|(k, _)| k == "customer_id")
                .map(|(_, v)| v);
            json_value(200, &app.store.lock().balances_json(customer.as_deref()))
        }
        (&Method::POST, "/_mock/reset") => {
            app.store.lock().reset();
            app.stats.reset();
            *app.faults.lock() = Faults::new(app.base_seed);
            ok_json()
        }
        _ => not_found(&method, &path, Env::Sandbox),
    }
}
