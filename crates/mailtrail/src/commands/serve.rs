//! `mailtrail serve`: the HTTP API, the inbound SMTP server, inbound processing and the
//! delivery workers in one process, until Ctrl-C or SIGTERM; then a clean shutdown that lets
//! requests and SMTP sessions in flight finish.

use std::process::ExitCode;

use mailtrail_store::Store;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::service::Service;

pub async fn run(config: &Config, store: Store, sandbox: bool) -> anyhow::Result<ExitCode> {
    let stop = shutdown_signal();
    let service = Service::start(config, store, sandbox).await?;
    // Scripts and tests read these lines to find the ports when the addresses end in :0.
    println!("mailtrail listening on http://{}", service.http);
    println!("mailtrail smtp on {}", service.smtp);
    if sandbox {
        println!("sandbox: every email goes to the built-in test mail servers (*.sandbox.test)");
    }
    tracing::info!(address = %service.http, smtp_address = %service.smtp, sandbox, "listening");
    // A part of the service that ends by itself ends `serve` with its cause (exit status 1).
    service.run_until(stop).await?;
    tracing::info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Listens for Ctrl-C and SIGTERM from the moment it is called, and resolves on the first.
/// Called before the service announces itself: a signal sent as soon as the listening line
/// appears must stop the service cleanly, not kill it with the signal's default action.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    let interrupt = listen(SignalKind::interrupt(), "Ctrl-C");
    let terminate = listen(SignalKind::terminate(), "SIGTERM");
    async move {
        tokio::select! {
            () = received(interrupt) => {},
            () = received(terminate) => {},
        }
        tracing::info!("shutting down");
    }
}

fn listen(kind: SignalKind, name: &str) -> Option<Signal> {
    signal(kind)
        .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
        .ok()
}

async fn received(signal: Option<Signal>) {
    match signal {
        Some(mut signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}
