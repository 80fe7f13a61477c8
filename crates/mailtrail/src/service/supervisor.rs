//! Supervision of the service's long-running parts. Each part is a task in one `JoinSet`, and
//! none may end while the service runs: the first that does (returns, fails or panics) is
//! logged with its name and cause, and the whole service stops and exits non-zero, so the
//! process manager (systemd's `Restart=on-failure`) starts a fresh one. A fresh process, not a
//! loop restarted in place: it re-reads its configuration, re-opens the database, and takes
//! back its claims from the database like after a crash, where an in-process restart would
//! keep whatever state the panic left behind.
//!
//! The HTTP side stops last after a failure: while the other parts finish what they have in
//! flight, the API still answers and `/readyz` says 503 and which part is not running.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::anyhow;
use mailtrail_api::health::Readiness;
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};

/// After a part fails, how long the others get to finish what they have in flight before the
/// process exits anyway: longer than the inbound SMTP server's own drain (30 s).
const FAILURE_DRAIN: Duration = Duration::from_secs(40);

/// Which stop signal a part follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The HTTP server, the metrics server and the open/click writer behind them: stopped last
    /// when a part fails, so the API and `/readyz` answer meanwhile.
    Http,
    /// Everything else: the SMTP listeners and the loops that work the database.
    Background,
}

/// The futures that resolve when a [`Side`] is told to stop.
#[derive(Clone)]
pub struct Stops {
    http: watch::Receiver<bool>,
    background: watch::Receiver<bool>,
}

impl Stops {
    /// Resolves when `side` is told to stop.
    pub fn of(&self, side: Side) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = match side {
            Side::Http => self.http.clone(),
            Side::Background => self.background.clone(),
        };
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }
}

/// The running parts and the signals that stop them.
pub struct Supervisor {
    tasks: JoinSet<anyhow::Result<()>>,
    /// Each task's name (as logs and `/readyz` give it) and side.
    parts: HashMap<Id, (&'static str, Side)>,
    readiness: Readiness,
    stop_http: watch::Sender<bool>,
    stop_background: watch::Sender<bool>,
}

impl Supervisor {
    pub fn new(readiness: Readiness) -> (Supervisor, Stops) {
        let (stop_http, http) = watch::channel(false);
        let (stop_background, background) = watch::channel(false);
        let supervisor = Supervisor {
            tasks: JoinSet::new(),
            parts: HashMap::new(),
            readiness,
            stop_http,
            stop_background,
        };
        (supervisor, Stops { http, background })
    }

    /// Runs `part` until its side is told to stop (it resolves only then).
    pub fn spawn<E>(
        &mut self,
        name: &'static str,
        side: Side,
        part: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: Into<anyhow::Error>,
    {
        let task = self
            .tasks
            .spawn(async move { part.await.map_err(Into::into) });
        self.parts.insert(task.id(), (name, side));
    }

    /// [`Supervisor::spawn`] for a part that cannot fail but by panicking.
    pub fn spawn_loop(
        &mut self,
        name: &'static str,
        side: Side,
        part: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn(name, side, async move {
            part.await;
            anyhow::Ok(())
        });
    }

    /// Supervises the parts until `stop` turns true, then stops them all at once and waits
    /// for each; or until one ends by itself, then stops the others (the HTTP side last) and
    /// returns why it ended.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let ended = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => None,
            ended = self.tasks.join_next_with_id() => ended,
        };
        let Some(ended) = ended else {
            return self.stop_all().await;
        };
        let (name, cause) = self.identify(ended);
        let cause = cause.unwrap_or_else(|| "it returned without being asked to stop".to_owned());
        tracing::error!(
            part = name,
            cause = %cause,
            "a part of the service stopped unexpectedly; stopping the service (exit status 1) \
             so that it is restarted"
        );
        self.readiness.ended(name);
        self.readiness.stopping();
        let deadline = tokio::time::Instant::now() + FAILURE_DRAIN;
        let _ = self.stop_background.send(true);
        self.drain(Some(Side::Background), deadline).await;
        let _ = self.stop_http.send(true);
        self.drain(None, deadline).await;
        Err(anyhow!("the {name} stopped unexpectedly: {cause}"))
    }

    /// The normal stop: every part told at once, each awaited; the first failure among them
    /// is the result.
    async fn stop_all(mut self) -> anyhow::Result<()> {
        self.readiness.stopping();
        let _ = self.stop_background.send(true);
        let _ = self.stop_http.send(true);
        let mut first = Ok(());
        while let Some(ended) = self.tasks.join_next_with_id().await {
            if let (name, Some(cause)) = self.identify(ended) {
                tracing::error!(part = name, cause = %cause, "a part of the service failed while stopping");
                if first.is_ok() {
                    first = Err(anyhow!("the {name} failed while stopping: {cause}"));
                }
            }
        }
        first
    }

    /// Waits until every part of `side` (every part, with `None`) has ended, or `deadline`;
    /// parts still running then are cut.
    async fn drain(&mut self, side: Option<Side>, deadline: tokio::time::Instant) {
        let waiting = |parts: &HashMap<Id, (&str, Side)>| {
            parts
                .values()
                .any(|(_, s)| side.is_none_or(|side| *s == side))
        };
        while waiting(&self.parts) {
            let ended = match tokio::time::timeout_at(deadline, self.tasks.join_next_with_id())
                .await
            {
                Ok(Some(ended)) => ended,
                Ok(None) => return,
                Err(_) => {
                    let names: Vec<&str> = self.parts.values().map(|(name, _)| *name).collect();
                    tracing::error!(parts = ?names, "still stopping after {FAILURE_DRAIN:?}: cut");
                    self.tasks.abort_all();
                    return;
                }
            };
            if let (name, Some(cause)) = self.identify(ended) {
                tracing::error!(part = name, cause = %cause, "a part of the service failed while stopping");
            }
        }
    }

    /// The name of the part that ended, and its failure (`None` if it returned `Ok`).
    fn identify(
        &mut self,
        ended: Result<(Id, anyhow::Result<()>), JoinError>,
    ) -> (&'static str, Option<String>) {
        let (id, cause) = match ended {
            Ok((id, Ok(()))) => (id, None),
            Ok((id, Err(e))) => (id, Some(format!("{e:#}"))),
            Err(e) => (e.id(), Some(join_error(e))),
        };
        let (name, _) = self
            .parts
            .remove(&id)
            .unwrap_or(("unnamed part", Side::Background));
        (name, cause)
    }
}

/// A task's panic (with its message) or cancellation, in words.
fn join_error(error: JoinError) -> String {
    if !error.is_panic() {
        return "it was cancelled".to_owned();
    }
    let payload = error.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned());
    match message {
        Some(message) => format!("it panicked: {message}"),
        None => "it panicked".to_owned(),
    }
}
