//! The inbound SMTP listener: one task per connection, at most `max_connections` at once
//! (the rest are told `421` and closed), STARTTLS when a certificate is configured, stopped
//! by a shutdown future after the sessions in flight end. The submission listeners
//! ([`serve_submission`]) are the same loop with a submission session: STARTTLS (RFC 6409,
//! port 587) or TLS from the first byte (RFC 8314, port 465).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mailtrail_store::{Store, StoreError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::InboundConfig;
use crate::session::{self, Ending, Settings, Sink, Tls};

/// Stores messages in the database and wakes the processor.
pub struct StoreSink {
    pub store: Store,
    pub received: Arc<Notify>,
}

impl Sink for StoreSink {
    type Error = StoreError;

    async fn store(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        raw: &[u8],
    ) -> Result<(), StoreError> {
        self.store.save_inbound(mail_from, rcpt_to, raw).await?;
        self.received.notify_one();
        Ok(())
    }

    async fn is_return_path(&self, domain: &str) -> Result<bool, StoreError> {
        self.store.is_return_path(domain).await
    }
}

/// How long sessions in flight may take to end after shutdown, before they are cut.
const DRAIN: Duration = Duration::from_secs(30);

/// How a listener's sessions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Inbound mail for Mailtrail's own addresses.
    Inbound,
    /// Submission, in the clear until STARTTLS.
    Submission,
    /// Submission under TLS from the first byte.
    ImplicitTls,
}

/// Serves `listener` until `shutdown` resolves; offers STARTTLS with `tls`.
pub async fn serve(
    listener: TcpListener,
    config: InboundConfig,
    bounce_domain: String,
    sink: StoreSink,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    listen(
        listener,
        config,
        bounce_domain,
        Arc::new(sink),
        tls,
        Kind::Inbound,
        shutdown,
    )
    .await;
}

/// Serves message submission on `listener` until `shutdown` resolves: STARTTLS offered, or,
/// with `implicit_tls`, the TLS handshake first. `config` holds the submission's limits.
pub async fn serve_submission<K>(
    listener: TcpListener,
    config: InboundConfig,
    sink: Arc<K>,
    tls: TlsAcceptor,
    implicit_tls: bool,
    shutdown: impl Future<Output = ()>,
) where
    K: Sink + Send + Sync + 'static,
{
    let kind = if implicit_tls {
        Kind::ImplicitTls
    } else {
        Kind::Submission
    };
    listen(
        listener,
        config,
        String::new(),
        sink,
        Some(tls),
        kind,
        shutdown,
    )
    .await;
}

/// One session of `kind` on `stream`, in the TLS state `settings` says.
async fn converse<S, K>(
    stream: &mut S,
    settings: &Settings<'_>,
    kind: Kind,
    peer: SocketAddr,
    sink: &K,
) -> Ending
where
    S: AsyncRead + AsyncWrite + Unpin,
    K: Sink,
{
    match kind {
        Kind::Inbound => session::run(stream, settings, sink).await,
        Kind::Submission | Kind::ImplicitTls => {
            session::run_submission(stream, settings, Some(peer.ip()), sink).await
        }
    }
}

async fn listen<K>(
    listener: TcpListener,
    config: InboundConfig,
    bounce_domain: String,
    sink: Arc<K>,
    tls: Option<TlsAcceptor>,
    kind: Kind,
    shutdown: impl Future<Output = ()>,
) where
    K: Sink + Send + Sync + 'static,
{
    let shared = Arc::new((config, bounce_domain, sink, tls));
    let slots = Arc::new(Semaphore::new(shared.0.max_connections.max(1)));
    let mut sessions = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while sessions.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                let _ = stream
                    .write_all(b"421 4.7.0 Too many connections, try again later\r\n")
                    .await;
            });
            continue;
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            let (config, bounce_domain, sink, tls) = &*shared;
            let mut settings = Settings {
                config,
                bounce_domain,
                tls: if tls.is_some() {
                    Tls::Offered
                } else {
                    Tls::Unavailable
                },
            };
            let sink = &**sink;
            tracing::debug!(%peer, ?kind, "SMTP session");
            let handshake = kind == Kind::ImplicitTls
                || converse(&mut stream, &settings, kind, peer, sink).await == Ending::StartTls;
            if handshake && let Some(tls) = tls {
                match tokio::time::timeout(config.command_timeout, tls.accept(stream)).await {
                    Ok(Ok(mut stream)) => {
                        settings.tls = Tls::Active;
                        let greeted = kind != Kind::ImplicitTls
                            || stream
                                .write_all(session::greeting(config).as_bytes())
                                .await
                                .is_ok();
                        if greeted {
                            converse(&mut stream, &settings, kind, peer, sink).await;
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            }
            drop(slot);
        });
    }
    tracing::info!(
        sessions = sessions.len(),
        ?kind,
        "SMTP: no new connections; finishing sessions"
    );
    let _ = tokio::time::timeout(DRAIN, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
}
