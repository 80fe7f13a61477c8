//! The whole service in one process — HTTP (API, tracking), inbound SMTP, SMTP submission, inbound processing,
//! the delivery workers and the webhook dispatcher — started together and stopped together, for `serve` and `demo`.
//!
//! With the sandbox on, the built-in test mail servers start first and every outbound email
//! is routed to them (a catch-all route keeps any other domain on the machine too); retry
//! timing is compressed so an email's whole life fits in a minute.
//!
//! Every long-running part runs under [`supervisor`]: the first that ends by itself stops the
//! service with its cause, so the process exits non-zero and is restarted.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use mailtrail_api::health::Readiness;
use mailtrail_api::{AppState, router};
use mailtrail_inbound::process::Processor;
use mailtrail_inbound::server::{self, StoreSink};
use mailtrail_outbound::Outbound;
use mailtrail_outbound::config::{OutboundConfig, RetryConfig};
use mailtrail_outbound::resolve::CATCH_ALL;
use mailtrail_outbound::submit::Senders;
use mailtrail_sandbox::{Sandbox, SandboxConfig};
use mailtrail_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use supervisor::{Side, Stops, Supervisor};

mod supervisor;
#[cfg(feature = "test-hooks")]
mod test_hooks;

/// How long a sandbox "person" waits before opening or clicking: longer than the default
/// machine-hit threshold (2 s), so these count as a person's.
const SANDBOX_PERSON_DELAY: Duration = Duration::from_secs(3);

/// The running service.
pub struct Service {
    pub http: SocketAddr,
    pub smtp: SocketAddr,
    stop: watch::Sender<bool>,
    running: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    /// Binds the listeners and starts every part; returns once they accept connections.
    pub async fn start(config: &Config, store: Store, sandbox: bool) -> anyhow::Result<Service> {
        let data_lock = lock_data_dir(config)?;
        let listener = TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen on http_listen {}", config.http_listen))?;
        let http = listener.local_addr()?;
        let smtp_listener = TcpListener::bind(config.smtp_listen)
            .await
            .with_context(|| format!("cannot listen on smtp_listen {}", config.smtp_listen))?;
        let smtp = smtp_listener.local_addr()?;

        let mut outbound_config = config.outbound.clone();
        let sandbox = if sandbox {
            let servers = Sandbox::start(SandboxConfig {
                inbound_smtp: smtp,
                http_base: format!("http://{http}"),
                person_delay: SANDBOX_PERSON_DELAY,
            })
            .await
            .context("cannot start the sandbox mail servers")?;
            sandbox_outbound(&mut outbound_config, &servers, http);
            Some(servers)
        } else {
            None
        };
        let outbound = Outbound::new(store.clone(), outbound_config.clone(), &config.dns_servers)
            .await
            .context("cannot start the delivery worker")?;

        let (stop, stop_requested) = watch::channel(false);
        let readiness = Readiness::default();
        let (mut parts, stops) = Supervisor::new(readiness.clone());
        let (hits, hits_writer) = mailtrail_store::Recorder::spawn_for_hits(store.clone());
        let domains =
            mailtrail_outbound::domains::Checker::new(&outbound_config, &config.dns_servers)
                .context("cannot start the sending-domain checker")?;
        // Hook URLs are checked at creation and at each delivery's connect with the same rules
        // and the same DNS servers as MX lookups.
        let webhook_targets =
            mailtrail_webhooks::target::Targets::new(&config.webhooks, &config.dns_servers)
                .context("cannot start the webhook target checker")?;
        let state = AppState {
            hits,
            store: store.clone(),
            queued: outbound.waker(),
            tokens: outbound.tokens(),
            domains: std::sync::Arc::new(domains),
            webhook_targets: webhook_targets.clone(),
            readiness,
        };
        let web = mailtrail_web::router(
            state.clone(),
            &config.web,
            &outbound_config.tracking_base_url,
        );
        let mut app = router(state).merge(web).fallback(mailtrail_web::not_found);
        // With `metrics_listen`, /metrics is served there and not on the public address.
        let requests = crate::access_log::Requests::default();
        let metrics = crate::metrics::router(
            store.clone(),
            requests.clone(),
            config.metrics_token.as_deref(),
        );
        match config.metrics_listen {
            Some(address) => {
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on metrics_listen {address}"))?;
                let serving = axum::serve(listener, metrics)
                    .with_graceful_shutdown(stops.of(Side::Http))
                    .into_future();
                parts.spawn("metrics server", Side::Http, serving);
            }
            None => app = app.merge(metrics),
        }
        let http_server =
            // The peer's address goes with each open, click and unsubscribe.
            axum::serve(
                listener.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                }),
                app.layer(axum::middleware::from_fn_with_state(requests, crate::access_log::log))
                    .into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stops.of(Side::Http))
            .into_future();
        let received = std::sync::Arc::new(tokio::sync::Notify::new());
        let processor = Processor::new(store.clone(), outbound.tokens(), received.clone());
        let inbound_tls =
            mailtrail_inbound::tls::acceptor(&config.inbound).context("[inbound] TLS")?;
        parts.spawn_loop(
            "inbound smtp server",
            Side::Background,
            server::serve(
                smtp_listener,
                config.inbound.clone(),
                outbound_config.bounce_domain().to_owned(),
                StoreSink {
                    store: store.clone(),
                    received,
                },
                inbound_tls,
                stops.of(Side::Background),
            ),
        );
        start_submission(
            config,
            &outbound_config,
            &store,
            outbound.waker(),
            &mut parts,
            &stops,
        )
        .await?;
        parts.spawn_loop(
            "inbound processing",
            Side::Background,
            processor.run(stops.of(Side::Background)),
        );
        let dispatcher = mailtrail_webhooks::Dispatcher::new(
            store.clone(),
            config.webhooks.clone(),
            webhook_targets,
        )
        .context("cannot start the webhook dispatcher")?
        .with_message_ids(mailtrail_webhooks::MessageIds {
            tokens: outbound.tokens(),
            helo_name: outbound_config.helo_name.clone(),
        });
        parts.spawn_loop(
            "webhook dispatcher",
            Side::Background,
            dispatcher.run(stops.of(Side::Background)),
        );
        let forwarder = mailtrail_outbound::forward::Forwarder::new(
            store.clone(),
            outbound_config.clone(),
            &config.dns_servers,
        )
        .context("cannot start reply forwarding")?;
        parts.spawn_loop(
            "reply forwarding",
            Side::Background,
            forwarder.run(stops.of(Side::Background)),
        );
        parts.spawn_loop(
            "retention sweep",
            Side::Background,
            mailtrail_store::retention::run(
                store.clone(),
                config.retention.clone(),
                stops.of(Side::Background),
            ),
        );
        // Switched off, the check has nothing to run and would end at once.
        if config.protection.enabled {
            parts.spawn_loop(
                "sending protection check",
                Side::Background,
                mailtrail_outbound::protection::run(
                    store.clone(),
                    config.protection.clone(),
                    stops.of(Side::Background),
                ),
            );
        }
        let delivery = outbound.run(stops.of(Side::Background));
        #[cfg(feature = "test-hooks")]
        let delivery = test_hooks::panic_delivery(delivery);
        parts.spawn_loop("delivery worker", Side::Background, delivery);
        // The router holds the open/click recorder: the writer ends once the HTTP server has
        // and buffered opens and clicks are written, so a clean stop loses none.
        parts.spawn("open/click writer", Side::Http, hits_writer);
        parts.spawn("http server", Side::Http, http_server);
        let running = tokio::spawn(async move {
            let stopped = parts.run(stop_requested).await;
            if let Some(sandbox) = sandbox {
                sandbox.shutdown().await;
            }
            drop(data_lock);
            stopped
        });
        Ok(Service {
            http,
            smtp,
            stop,
            running,
        })
    }

    /// Stops taking work, lets requests and SMTP sessions in flight finish, writes their
    /// outcomes, and returns when every part has stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.running.await.context("the service panicked")?
    }

    /// Runs until `shutdown` resolves, then [`Service::stop`]s; or until a part of the service
    /// ends by itself, then returns why, once the others have stopped.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::select! {
            () = shutdown => self.stop().await,
            stopped = &mut self.running => stopped.context("the service panicked")?,
        }
    }
}

/// Binds the `[submission]` listeners that are on and starts them among `parts`.
async fn start_submission(
    config: &Config,
    outbound: &OutboundConfig,
    store: &Store,
    queued: std::sync::Arc<tokio::sync::Notify>,
    parts: &mut Supervisor,
    stops: &Stops,
) -> anyhow::Result<()> {
    let Some(tls) = config.submission.acceptor(&config.inbound)? else {
        return Ok(());
    };
    let sink = std::sync::Arc::new(crate::submission::Submissions {
        store: store.clone(),
        // The API's rule (and the sandbox's: any sender).
        senders: if outbound.require_verified_domains {
            Senders::VerifiedDomains
        } else {
            Senders::Any
        },
        queued,
    });
    let session = config.submission.session(&config.inbound);
    for (address, implicit_tls, key, name) in [
        (
            config.submission.listen,
            false,
            "listen",
            "smtp submission listener",
        ),
        (
            config.submission.implicit_tls_listen,
            true,
            "implicit_tls_listen",
            "smtp submission listener (implicit tls)",
        ),
    ] {
        let Some(address) = address else { continue };
        let listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on [submission] {key} {address}"))?;
        tracing::info!(%address, implicit_tls, "SMTP submission listening");
        parts.spawn_loop(
            name,
            Side::Background,
            server::serve_submission(
                listener,
                session.clone(),
                sink.clone(),
                tls.clone(),
                implicit_tls,
                stops.of(Side::Background),
            ),
        );
    }
    Ok(())
}

/// On the embedded database, one service per data directory: a second `serve` on the same
/// files would release the first one's claims at start and send their emails twice. Held
/// until the service stops (the OS lets it go if the process dies). Other commands (`report`,
/// `account create`, …) do not take it and work while the service runs.
pub(crate) fn lock_data_dir(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    if config.database_url.is_some() {
        return Ok(None);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let path = config.data_dir.join("mailtrail.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another mailtrail serve is using {} (it holds {}); run one service per data \
             directory, or several nodes on PostgreSQL",
            config.data_dir.display(),
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot lock {}", path.display())))
        }
    }
}

/// Routes every domain to the sandbox servers, compresses retry timing, and lets mail come
/// from any domain.
fn sandbox_outbound(config: &mut OutboundConfig, sandbox: &Sandbox, http: SocketAddr) {
    config.require_verified_domains = false;
    for (domain, address) in sandbox.routes() {
        config.routes.insert(domain, address);
    }
    if let Some((_, ok)) = sandbox
        .routes()
        .into_iter()
        .find(|(domain, _)| domain.starts_with("ok."))
    {
        config.routes.insert(CATCH_ALL.to_owned(), ok);
    }
    config.relay = None;
    config.tracking_base_url = format!("http://{http}");
    config.retry = RetryConfig {
        first_delay: Duration::from_secs(2),
        max_delay: Duration::from_secs(8),
        give_up_after: Duration::from_secs(40),
        soft_5xx_window: Duration::from_secs(40),
        ..RetryConfig::default()
    };
    config.poll_interval = config.poll_interval.min(Duration::from_millis(500));
    config.throttle = config.throttle.min(Duration::from_secs(2));
}
