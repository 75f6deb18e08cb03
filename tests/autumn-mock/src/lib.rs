//! `autumn-mock`: a contract-faithful local mock of the Autumn billing API's track endpoints
//! (`POST /v1/balances.track`, its aliases `/v1/track` and `/v1/events`, and
//! `POST /v1/balances.batch_track`), with bookkeeping, idempotency, fault injection and an
//! inspection API under `/_mock/*`. See `README.md` for the HTTP surface.
//!
//! Use it in-process:
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = autumn_mock::start(autumn_mock::Config::default()).await?;
//! println!("{}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod cli;
pub mod config;
pub mod faults;
mod server;
mod state;
pub mod track;

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{Config, CustomerConfig, FeatureConfig};
pub use faults::FaultsPatch;

/// Bind `127.0.0.1:port` (0 = a free port) with a deep accept backlog. Needs a Tokio runtime.
pub fn bind_localhost(port: u16) -> io::Result<TcpListener> {
    let sock = TcpSocket::new_v4()?;
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)))?;
    sock.listen(4096)
}

/// Serve on `listener` until `shutdown` resolves. Fails at once on an invalid config.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let app =
        server::App::new(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    server::run(Arc::new(app), listener, shutdown).await
}

/// A server running in a Tokio task (see [`start`]). Dropping it stops the server.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

impl MockServer {
    /// The bound address (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop and wait for the server task.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Validate `config`, bind 127.0.0.1 on a free port and serve in a background task.
pub async fn start(config: Config) -> io::Result<MockServer> {
    let app =
        server::App::new(&config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = bind_localhost(0)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::run(Arc::new(app), listener, async move {
        let _ = rx.await;
    }));
    Ok(MockServer {
        addr,
        stop: Some(tx),
        task: Some(task),
    })
}
