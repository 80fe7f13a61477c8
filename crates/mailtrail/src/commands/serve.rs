//! `mailtrail serve`: the HTTP API until Ctrl-C or SIGTERM, then a clean shutdown that lets
//! requests in flight finish.

use std::process::ExitCode;

use anyhow::Context;
use mailtrail_api::{AppState, router};
use mailtrail_store::Store;
use tokio::net::TcpListener;

use crate::config::Config;

pub async fn run(config: &Config, store: Store) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on http_listen {}", config.http_listen))?;
    let address = listener.local_addr()?;
    // Scripts and tests read this line to find the port when http_listen ends in :0.
    println!("mailtrail listening on http://{address}");
    tracing::info!(%address, "HTTP API listening");
    axum::serve(listener, router(AppState { store }))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    tracing::info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
