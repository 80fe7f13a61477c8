//! The delivery test harness: the real worker on a fresh embedded database, with retry
//! timing compressed so a soft bounce's whole life fits in seconds.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mailtrail_domain::EventKind;
use mailtrail_outbound::config::RetryConfig;
use mailtrail_outbound::submit::{self, Recipient, Request};
use mailtrail_outbound::{Outbound, OutboundConfig};
use mailtrail_store::{AccountId, EmailId};
use mailtrail_store::{EmailRecord, Store};
use tokio::sync::watch;

pub struct Harness {
    pub store: Store,
    pub account: String,
    stop: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

pub fn config(routes: &[(&str, &str)]) -> OutboundConfig {
    OutboundConfig {
        helo_name: "mta.mailtrail.test".into(),
        routes: routes
            .iter()
            .map(|(d, t)| (d.to_string(), t.to_string()))
            .collect(),
        retry: RetryConfig {
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_millis(400),
            give_up_after: Duration::from_secs(3),
            soft_5xx_attempts: 3,
            soft_5xx_window: Duration::from_secs(2),
        },
        poll_interval: Duration::from_millis(50),
        throttle: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(5),
        data_timeout: Duration::from_secs(5),
        ..OutboundConfig::default()
    }
}

impl Harness {
    pub async fn start(config: OutboundConfig, dns: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
            .await
            .unwrap();
        let (account, _) = store.create_account("Acme").await.unwrap();
        let outbound = Outbound::new(store.clone(), config, dns).await.unwrap();
        let (stop, stopped) = watch::channel(false);
        let worker = tokio::spawn(outbound.run(async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|s| *s).await;
        }));
        Harness {
            store,
            account: account.into(),
            stop,
            worker,
            _dir: dir,
        }
    }

    pub async fn send(&self, to: &[&str]) -> Vec<String> {
        self.send_text(to, "Hi there").await
    }

    /// Queues one email per recipient with this text body.
    pub async fn send_text(&self, to: &[&str], text: &str) -> Vec<String> {
        let request = Request {
            from: "sales@shop.test".into(),
            subject: "Hello {{first_name}}".into(),
            text: Some(text.into()),
            html: None,
            batch: Some("b1".into()),
            send_at_ms: None,
            recipients: to
                .iter()
                .map(|to| Recipient {
                    to: Some(to.to_string()),
                    ..Default::default()
                })
                .collect(),
            ..Request::default()
        };
        let accepted = submit::submit(&self.store, &self.account, request, None, |_| String::new())
            .await
            .unwrap();
        assert!(accepted.refused.is_empty(), "{:?}", accepted.refused);
        accepted.queued.into_iter().map(|q| q.id).collect()
    }

    /// Waits until the email has left the queue (or `until` holds), at most 15 s.
    pub async fn settled(&self, id: &str) -> EmailRecord {
        self.wait(id, |e| e.next_attempt_at_ms.is_none()).await
    }

    pub async fn wait(&self, id: &str, until: impl Fn(&EmailRecord) -> bool) -> EmailRecord {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let email = self
                .store
                .email(&AccountId::from(&self.account), &EmailId::from(id))
                .await
                .unwrap();
            if until(&email) || Instant::now() > deadline {
                return email;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn kinds(&self, id: &str) -> Vec<EventKind> {
        self.store
            .events(&AccountId::from(&self.account), &EmailId::from(id))
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.event.kind)
            .collect()
    }

    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.worker.await.unwrap();
    }
}
