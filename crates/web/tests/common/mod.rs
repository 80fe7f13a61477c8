//! The web UI's test harness: a store on a fresh embedded database, seeded through the store
//! API with two accounts, their users and leads (one named like an attack), two batches whose
//! emails reached different stages, a reply and a suppressed address.

// Each test binary that includes this module uses only some of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use axum::Router;
use mailtrail_api::AppState;
use mailtrail_domain::token::TokenKey;
use mailtrail_domain::{EmailAddress, Event, EventKind, Permission, Reason, Role};
use mailtrail_store::{
    AccountId, Block, Content, EmailId, NewLead, Processed, QueueEntry, Recorder, Settings, Store,
    Submission,
};

pub const PASSWORD: &str = "correct horse battery";
pub const ADMIN: &str = "ana@acme.test";
pub const USER: &str = "bo@acme.test";
pub const OPERATOR: &str = "op@mailtrail.test";
pub const SCRIPT_NAME: &str = "<script>alert(1)</script>";
pub const HTML_SUBJECT: &str = "Spring <b>offer</b> & \"more\"";
pub const REPLY_TEXT: &str = "Sounds <b>great</b>, call me.";

/// What the seed made, by name.
pub struct Seeded {
    pub acme: String,
    pub globex: String,
    pub carla: String,
    pub script_lead: String,
    pub carla_spring: String,
    /// Opened by a machine (a privacy proxy).
    pub dee_spring: String,
    pub eve_spring: String,
    pub reply: String,
    pub globex_lead: String,
    pub globex_email: String,
}

pub struct App {
    pub store: Store,
    pub state: AppState,
    pub seeded: Seeded,
    _dir: tempfile::TempDir,
}

impl App {
    /// The service as the binary serves it: the API and the web UI side by side, with the
    /// UI's fallback.
    pub fn router(&self) -> Router {
        mailtrail_api::router(self.state.clone())
            .merge(mailtrail_web::router(
                self.state.clone(),
                &Default::default(),
                "http://127.0.0.1:8025",
            ))
            .fallback(mailtrail_web::not_found)
    }
}

/// A PHC hash with small parameters: verification reads them from the hash, so tests sign in
/// quickly while the code under test runs the real argon2.
fn hash(password: &str) -> String {
    let params = Params::new(1024, 1, 1, None).unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string()
}

fn lead(email: &str, first: &str, last: Option<&str>) -> NewLead {
    NewLead {
        address: EmailAddress::parse(email).unwrap(),
        first_name: Some(first.into()),
        last_name: last.map(str::to_owned),
        fields: BTreeMap::from([("company".to_owned(), "Shop & Co".to_owned())]),
        permission: Permission::Yes,
    }
}

async fn send(
    store: &Store,
    account: &str,
    batch: &str,
    subject: &str,
    to: &[(&str, &str)],
) -> Vec<String> {
    let submission = Submission {
        content: Content {
            from: "sales@acme.test".into(),
            subject: subject.into(),
            text: Some("Hello".into()),
            html: None,
            ..Content::default()
        },
        batch: Some(batch.into()),
        send_at_ms: None,
        entries: to
            .iter()
            .map(|(address, lead_id)| QueueEntry {
                to: EmailAddress::parse(address).unwrap(),
                lead_id: Some((*lead_id).to_owned()),
                fields: BTreeMap::new(),
                dropped: None,
                header_to: None,
            })
            .collect(),
    };
    store
        .enqueue(account, &submission, None, |_| String::new())
        .await
        .unwrap()
}

/// Carla's open came from this client.
pub const PERSON_IP: &str = "198.51.100.7";
pub const PERSON_AGENT: &str = "Mozilla/5.0 (Macintosh) Firefox/133.0";

/// An open or click as the tracking endpoints record it: with its client.
fn from_client(mut hit: Event, ip: &str, agent: &str) -> Event {
    hit.detail.ip = Some(ip.into());
    hit.detail.user_agent = Some(agent.into());
    hit
}

async fn events(store: &Store, account: &str, email: &str, events: &[Event]) {
    for event in events {
        store
            .append_event(&AccountId::from(account), &EmailId::from(email), event)
            .await
            .unwrap();
    }
}

pub async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let (hits, _writer) = Recorder::spawn(store.clone());
    let state = AppState {
        store: store.clone(),
        queued: Default::default(),
        tokens: TokenKey::new(b"web tests"),
        hits,
        domains: std::sync::Arc::new(
            mailtrail_outbound::domains::Checker::new(
                &Default::default(),
                &["127.0.0.1:9".parse().unwrap()],
            )
            .unwrap(),
        ),
        webhook_targets: mailtrail_webhooks::target::Targets::new(
            &Default::default(),
            &["127.0.0.1:9".parse().unwrap()],
        )
        .unwrap(),
        readiness: Default::default(),
    };
    let seeded = seed(&store).await;
    App {
        store,
        state,
        seeded,
        _dir: dir,
    }
}

async fn seed(store: &Store) -> Seeded {
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let (globex, _) = store.create_account("Globex").await.unwrap();
    let password = hash(PASSWORD);
    store
        .create_user(ADMIN, Some(&acme), Role::Admin, &password)
        .await
        .unwrap();
    store
        .create_user(USER, Some(&acme), Role::User, &password)
        .await
        .unwrap();
    store
        .create_user(OPERATOR, None, Role::Operator, &password)
        .await
        .unwrap();

    let carla = store
        .create_lead(&acme, &lead("carla@shop.test", "Carla", Some("Mendes")))
        .await
        .unwrap()
        .id;
    let script_lead = store
        .create_lead(&acme, &lead("dee@shop.test", SCRIPT_NAME, None))
        .await
        .unwrap()
        .id;
    let eve = store
        .create_lead(&acme, &lead("eve@shop.test", "Eve", None))
        .await
        .unwrap()
        .id;
    let fay = store
        .create_lead(&acme, &lead("fay@shop.test", "Fay", None))
        .await
        .unwrap()
        .id;
    let gus = store
        .create_lead(&acme, &lead("gus@shop.test", "Gus", None))
        .await
        .unwrap()
        .id;

    // Spring goes out with tracking on, autumn with it off (its open rates are n/a).
    let tracking = Settings {
        open_tracking: true,
        click_tracking: true,
        ..Settings::default()
    };
    store.save_settings(&acme, &tracking).await.unwrap();
    let spring = send(
        store,
        &acme,
        "spring",
        HTML_SUBJECT,
        &[
            ("carla@shop.test", &carla),
            ("dee@shop.test", &script_lead),
            ("eve@shop.test", &eve),
            ("fay@shop.test", &fay),
        ],
    )
    .await;
    store
        .save_settings(&acme, &Settings::default())
        .await
        .unwrap();
    let autumn = send(
        store,
        &acme,
        "autumn",
        "Autumn news",
        &[("carla@shop.test", &carla), ("gus@shop.test", &gus)],
    )
    .await;

    let t = mailtrail_store::now_ms();
    let delivered = Event::new(EventKind::Delivered, t).with_status("250 2.0.0 Ok: queued as 4Bx");
    events(
        store,
        &acme,
        &spring[0],
        &[
            delivered.clone(),
            from_client(
                Event::new(EventKind::Opened, t + 60_000),
                PERSON_IP,
                PERSON_AGENT,
            ),
            Event::new(EventKind::Clicked, t + 61_000).with_feedback_type("none"),
        ],
    )
    .await;
    events(
        store,
        &acme,
        &spring[1],
        &[
            delivered.clone(),
            from_client(
                Event::new(EventKind::Opened, t + 1000).by_machine("Apple Mail Privacy Protection"),
                "17.58.0.1",
                "Mozilla/5.0",
            ),
        ],
    )
    .await;
    let bounce = "550 5.1.1 <eve@shop.test>: Recipient address rejected: User unknown";
    events(
        store,
        &acme,
        &spring[2],
        &[Event::new(EventKind::Failed, t)
            .with_status(bounce)
            .with_reason(Reason::UserUnknown)],
    )
    .await;
    let block = Block {
        reason: Reason::UserUnknown,
        status: Some(bounce.into()),
        email_id: Some(spring[2].clone()),
    };
    store
        .suppress(
            &acme,
            &EmailAddress::parse("eve@shop.test").unwrap(),
            &block,
            "mailtrail",
        )
        .await
        .unwrap();
    events(
        store,
        &acme,
        &spring[3],
        &[
            delivered.clone(),
            Event::new(EventKind::Unsubscribed, t + 5000),
        ],
    )
    .await;
    events(store, &acme, &autumn[0], std::slice::from_ref(&delivered)).await;

    let raw = format!(
        "From: Carla Mendes <carla@shop.test>\r\nTo: reply+token@acme.test\r\nSubject: Re: Spring offer\r\n\r\n{REPLY_TEXT}\r\n"
    );
    let reply = store
        .save_inbound(
            "carla@shop.test",
            &["reply+token@acme.test".into()],
            raw.as_bytes(),
        )
        .await
        .unwrap();
    store
        .finish_inbound(
            &reply,
            &Processed {
                state: "matched",
                kind: "reply".into(),
                account_id: Some(acme.clone()),
                email_id: Some(spring[0].clone().into()),
                note: None,
            },
        )
        .await
        .unwrap();
    events(
        store,
        &acme,
        &spring[0],
        &[Event::new(EventKind::Replied, t + 120_000)],
    )
    .await;

    let globex_lead = store
        .create_lead(&globex, &lead("hal@globex.test", "Hal", None))
        .await
        .unwrap()
        .id;
    let globex_email = send(
        store,
        &globex,
        "globex-q1",
        "Globex only",
        &[("hal@globex.test", &globex_lead)],
    )
    .await;

    Seeded {
        acme: acme.into(),
        globex: globex.into(),
        carla,
        script_lead,
        carla_spring: spring[0].clone(),
        dee_spring: spring[1].clone(),
        eve_spring: spring[2].clone(),
        reply,
        globex_lead,
        globex_email: globex_email[0].clone(),
    }
}

/// Queues one email from Acme's news address to `to` (for `lead`, if any), subject `subject`,
/// to be sent at `send_at_ms`; answers its id.
pub async fn queue_one(
    app: &App,
    to: &str,
    lead: Option<&str>,
    subject: &str,
    send_at_ms: Option<i64>,
) -> String {
    let submission = Submission {
        content: Content {
            from: "news@acme.test".into(),
            subject: subject.into(),
            text: Some(subject.into()),
            ..Content::default()
        },
        batch: None,
        send_at_ms,
        entries: vec![QueueEntry {
            to: EmailAddress::parse(to).unwrap(),
            lead_id: lead.map(str::to_owned),
            fields: BTreeMap::new(),
            dropped: None,
            header_to: None,
        }],
    };
    let ids = app
        .store
        .enqueue(&app.seeded.acme, &submission, None, |_| String::new())
        .await
        .unwrap();
    ids[0].clone()
}

/// Queues `n` emails of `batch` to `{batch}{i}@shop.test` (no lead) in Acme, optionally
/// scheduled: enough rows to page through.
pub async fn queue_bulk(app: &App, batch: &str, n: usize, send_at_ms: Option<i64>) {
    let submission = Submission {
        content: Content {
            from: "sales@acme.test".into(),
            subject: format!("{batch} news"),
            text: Some("Hello".into()),
            ..Content::default()
        },
        batch: Some(batch.into()),
        send_at_ms,
        entries: (0..n)
            .map(|i| QueueEntry {
                to: EmailAddress::parse(&format!("{batch}{i}@shop.test")).unwrap(),
                lead_id: None,
                fields: BTreeMap::new(),
                dropped: None,
                header_to: None,
            })
            .collect(),
    };
    app.store
        .enqueue(&app.seeded.acme, &submission, None, |_| String::new())
        .await
        .unwrap();
}
