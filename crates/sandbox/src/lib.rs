//! The sandbox behind `mailtrail serve --sandbox` (PRODUCT.md §7): built-in test mail servers
//! on loopback, one per domain under `sandbox.test`, that behave like the real world. Outbound
//! mail reaches them through the real delivery engine over real SMTP; the recipient's domain
//! picks what happens — a bounce at RCPT, a deferral, a DSN a second later, a complaint, a
//! reply, an open or a click — and what comes back reaches Mailtrail the way it would in
//! production: by SMTP to its inbound listener and by HTTP to its tracking URLs.
//!
//! - `behaviour`: the table of domains and what each does ([`DOMAINS`]).
//! - `smtp`: the SMTP server loop every domain runs.
//! - `follow_up`: what happens after a message is accepted: DSNs, ARF reports, replies.
//! - `web`: what a person or a proxy does over HTTP: the pixel, a click, one-click unsubscribe.

mod behaviour;
mod follow_up;
mod smtp;
mod web;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use behaviour::DOMAINS;

use behaviour::Behaviour;

/// How long [`Sandbox::shutdown`] waits for follow-ups in flight before abandoning them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// Where the sandbox sends what comes back.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Where Mailtrail's inbound SMTP listener is (DSNs, ARF reports, replies are sent here).
    pub inbound_smtp: SocketAddr,
    /// Mailtrail's HTTP base URL, e.g. "http://127.0.0.1:8025" (informational; the tracking
    /// URLs are taken from the messages themselves).
    pub http_base: String,
    /// How long "person" behaviours wait after receiving before fetching the pixel /
    /// clicking, so they are outside Mailtrail's machine-hit threshold (e.g. 3s).
    pub person_delay: Duration,
}

/// What every server and follow-up shares.
pub(crate) struct Shared {
    pub(crate) config: SandboxConfig,
    /// Recipients already deferred once by `mailbox-full` or `greylist`, so their next attempt
    /// is accepted. It only grows, which is fine for a sandbox's lifetime.
    pub(crate) deferred: Mutex<HashSet<String>>,
    /// Follow-ups scheduled or running, so shutdown can wait for them.
    follow_ups: Mutex<JoinSet<()>>,
    /// One HTTP client for every fetch: it never follows redirects, as a click is one request
    /// from the sandbox's point of view and the target is not Mailtrail's to reach.
    pub(crate) http: reqwest::Client,
}

impl Shared {
    /// Runs `task` in the background, tracked for shutdown.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut set = self
            .follow_ups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Finished follow-ups are dropped here, so the set only holds the ones in flight.
        while set.try_join_next().is_some() {}
        set.spawn(task);
    }
}

/// The running sandbox servers.
pub struct Sandbox {
    /// The route of every domain, in the order of [`DOMAINS`].
    routes: Vec<(String, String)>,
    /// One accept loop per listening domain; each owns its connections.
    servers: JoinSet<()>,
    shared: Arc<Shared>,
}

impl Sandbox {
    /// Binds one SMTP server per behaviour on 127.0.0.1:0 and returns at once.
    ///
    /// `down.sandbox.test` gets a port that was bound and closed again, so connections to it
    /// are refused; another process could in theory take that port in the meantime.
    pub async fn start(config: SandboxConfig) -> std::io::Result<Sandbox> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            config,
            deferred: Mutex::default(),
            follow_ups: Mutex::default(),
            http,
        });
        let mut routes = Vec::with_capacity(Behaviour::ALL.len());
        let mut servers = JoinSet::new();
        for &behaviour in Behaviour::ALL {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let address = listener.local_addr()?;
            routes.push((behaviour.domain().to_owned(), address.to_string()));
            if behaviour == Behaviour::Down {
                // Closing the listener leaves a port where connections are refused.
                drop(listener);
                continue;
            }
            servers.spawn(smtp::serve(listener, behaviour, Arc::clone(&shared)));
        }
        tracing::info!(
            http_base = %shared.config.http_base,
            inbound_smtp = %shared.config.inbound_smtp,
            domains = routes.len(),
            "sandbox mail servers listening"
        );
        Ok(Sandbox {
            routes,
            servers,
            shared,
        })
    }

    /// The route table to give to the outbound engine: ("ok.sandbox.test",
    /// "127.0.0.1:PORT"), one per domain.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.routes.clone()
    }

    /// Stops the servers (closing their connections) and waits up to 10 s for follow-up
    /// actions (DSNs, HTTP fetches) in flight; the ones still running then are abandoned.
    pub async fn shutdown(mut self) {
        self.servers.shutdown().await;
        let mut follow_ups = std::mem::take(
            &mut *self
                .shared
                .follow_ups
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let drained = async { while follow_ups.join_next().await.is_some() {} };
        if tokio::time::timeout(SHUTDOWN_WAIT, drained).await.is_err() {
            tracing::warn!(
                left = follow_ups.len(),
                "sandbox follow-ups still running at shutdown are abandoned"
            );
            follow_ups.shutdown().await;
        }
    }
}
