//! `autumn-mock` binary: see `--help` and README.md.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use autumn_mock::cli::{self, Parsed, USAGE};

async fn shutdown_signal(exit_on_stdin_eof: bool) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    if exit_on_stdin_eof {
        // A plain thread: Tokio's stdin would hold up runtime shutdown.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = std::io::stdin().lock();
            loop {
                match std::io::Read::read(&mut stdin, &mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(());
        });
    } else {
        std::mem::forget(tx);
    }
    let stdin_eof = async {
        if rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => eprintln!("autumn-mock: SIGINT, shutting down"),
        () = term => eprintln!("autumn-mock: SIGTERM, shutting down"),
        () = stdin_eof => eprintln!("autumn-mock: stdin closed, shutting down"),
    }
}

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("autumn-mock {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("autumn-mock: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("autumn-mock: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let listener = autumn_mock::bind_localhost(opts.port)?;
        let port = listener.local_addr()?.port();
        {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://127.0.0.1:{port}");
            let _ = out.flush();
        }
        autumn_mock::serve(
            opts.config,
            listener,
            shutdown_signal(opts.exit_on_stdin_eof),
        )
        .await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("autumn-mock: {e}");
            ExitCode::FAILURE
        }
    }
}
