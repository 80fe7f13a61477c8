//! `mailtrail serve`: the HTTP API, the inbound SMTP server, inbound processing and the
//! delivery workers in one process, until Ctrl-C or SIGTERM; then a clean shutdown that lets
//! requests and SMTP sessions in flight finish.

use std::process::ExitCode;

use mailtrail_store::Store;

use crate::config::Config;
use crate::service::Service;

pub async fn run(config: &Config, store: Store, sandbox: bool) -> anyhow::Result<ExitCode> {
    let service = Service::start(config, store, sandbox).await?;
    // Scripts and tests read these lines to find the ports when the addresses end in :0.
    println!("mailtrail listening on http://{}", service.http);
    println!("mailtrail smtp on {}", service.smtp);
    if sandbox {
        println!("sandbox: every email goes to the built-in test mail servers (*.sandbox.test)");
    }
    tracing::info!(address = %service.http, smtp_address = %service.smtp, sandbox, "listening");
    shutdown_signal().await;
    service.stop().await?;
    tracing::info!("shut down cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
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
