//! `mailtrail serve`: the HTTP API, the inbound SMTP server, inbound processing and the
//! delivery workers in one process, until Ctrl-C or SIGTERM; then a clean shutdown that lets
//! requests and SMTP sessions in flight finish.

use std::process::ExitCode;

use anyhow::Context;
use mailtrail_api::{AppState, router};
use mailtrail_inbound::process::Processor;
use mailtrail_inbound::server::{self, StoreSink};
use mailtrail_outbound::Outbound;
use mailtrail_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;

pub async fn run(config: &Config, store: Store) -> anyhow::Result<ExitCode> {
    let outbound = Outbound::new(store.clone(), config.outbound.clone(), &config.dns_servers)
        .await
        .map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen on http_listen {}", config.http_listen))?;
    let address = listener.local_addr()?;
    let smtp = TcpListener::bind(config.smtp_listen)
        .await
        .with_context(|| format!("cannot listen on smtp_listen {}", config.smtp_listen))?;
    let smtp_address = smtp.local_addr()?;
    // Scripts and tests read these lines to find the ports when the addresses end in :0.
    println!("mailtrail listening on http://{address}");
    println!("mailtrail smtp on {smtp_address}");
    tracing::info!(%address, %smtp_address, "listening");

    let (stop, stopped) = watch::channel(false);
    let wait_for = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let store_for_inbound = store.clone();
    let (hits, hits_writer) = mailtrail_store::Recorder::spawn(store.clone());
    let state = AppState {
        hits,
        store,
        queued: outbound.waker(),
        tokens: outbound.tokens(),
    };
    let http =
        axum::serve(listener, router(state)).with_graceful_shutdown(wait_for(stopped.clone()));
    let received = std::sync::Arc::new(tokio::sync::Notify::new());
    let processor = Processor::new(
        store_for_inbound.clone(),
        outbound.tokens(),
        received.clone(),
    );
    let inbound = tokio::spawn(server::serve(
        smtp,
        config.inbound.clone(),
        config.outbound.bounce_domain().to_owned(),
        StoreSink {
            store: store_for_inbound,
            received,
        },
        wait_for(stopped.clone()),
    ));
    let processing = tokio::spawn(processor.run(wait_for(stopped.clone())));
    let delivery = tokio::spawn(outbound.run(wait_for(stopped)));
    let signal = async {
        shutdown_signal().await;
        let _ = stop.send(true);
    };
    let (served, ()) = tokio::join!(http, signal);
    served.context("the HTTP server failed")?;
    // The router and its recorder are gone: the writer ends once buffered opens and clicks
    // are written, so a clean shutdown loses none.
    hits_writer.await.context("the open/click writer failed")?;
    delivery.await.context("the delivery worker failed")?;
    inbound.await.context("the inbound SMTP server failed")?;
    processing.await.context("inbound processing failed")?;
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
