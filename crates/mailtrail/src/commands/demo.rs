//! `mailtrail demo`: Mailtrail end to end on one machine in about a minute. It starts the
//! service in sandbox mode on a fresh embedded database, imports a sample lead list (one lead
//! per sandbox domain), sends two batches through the real delivery engine, waits with a
//! progress bar until every email has reached the stage its domain calls for, and prints the
//! email report and the batch comparison. Then it leaves the service running for the web UI
//! (`--no-wait` stops instead).
//!
//! A third email, scheduled for the next day, stays `Sent`: accepted, not yet delivered.
//! The second batch goes out once the first one's hard bounce has suppressed its address,
//! after the lead's Permission to Email was set back to Yes: that email is `Dropped`, showing
//! that only an operator lifts a block.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use mailtrail_domain::{EmailAddress, EventKind, Permission, Role, Stage};
use mailtrail_outbound::submit::{self, Recipient, Request};
use mailtrail_store::{AccountId, EmailId, LeadPatch, MasterKey, NewLead, Settings, Store};
use rand::Rng;

use super::accounts::hash_password;
use super::report;
use crate::config::Config;
use crate::service::Service;

/// How long the demo waits for every email to settle before it reports anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(150);
const POLL: Duration = Duration::from_millis(500);
const LOGIN: &str = "demo@mailtrail.test";

/// One sample lead per sandbox domain: first name, domain, and the stage (and the event, where
/// the stage alone does not show it) its email ends in.
const LEADS: &[(&str, &str, Stage, Option<EventKind>)] = &[
    ("Ana", "ok", Stage::Delivered, None),
    ("Bruno", "user-unknown", Stage::Failed, None),
    ("Chloe", "mailbox-full", Stage::Delivered, None),
    ("Dmitri", "greylist", Stage::Delivered, None),
    ("Elif", "too-large", Stage::Failed, None),
    ("Farid", "down", Stage::Failed, None),
    ("Grace", "slow", Stage::Delivered, None),
    ("Hugo", "spam-block", Stage::Failed, None),
    ("Ines", "bounce-later", Stage::Failed, None),
    ("Jonas", "complain", Stage::Unsubscribed, None),
    ("Keiko", "reply", Stage::Replied, None),
    (
        "Liam",
        "autoreply",
        Stage::Delivered,
        Some(EventKind::AutoReplied),
    ),
    ("Maya", "opens", Stage::Opened, None),
    ("Noah", "clicks", Stage::Clicked, None),
    ("Olga", "unsubscribes", Stage::Unsubscribed, None),
    (
        "Pedro",
        "machine-open",
        Stage::Delivered,
        Some(EventKind::Opened),
    ),
];

/// A lead whose Permission to Email is No: the first batch refuses it.
const NO_PERMISSION: (&str, &str) = ("Quinn", "ok");

/// Who gets the second batch (first names from [`LEADS`]); Bruno's address is suppressed by
/// then, so his email is dropped.
const SECOND_BATCH: &[&str] = &["Ana", "Bruno", "Grace", "Keiko", "Maya", "Noah", "Pedro"];

const HTML: &str = "<p>Hello {{first_name}},</p>\
    <p>Our <a href=\"https://shop.example/{{batch}}\">new collection</a> is out.</p>";

pub async fn run(config: &Config, no_wait: bool) -> anyhow::Result<ExitCode> {
    let data = tempfile::Builder::new()
        .prefix("mailtrail-demo-")
        .tempdir()
        .context("cannot create the demo's data directory")?;
    let mut config = config.clone();
    config.data_dir = data.path().to_owned();
    config.database_url = None;
    // Its own key too, beside its data: never the installation's.
    let key = MasterKey::in_data_dir(data.path())?;
    let store = Store::open_sqlite(data.path(), key).await?;
    let service = match Service::start(&config, store.clone(), true).await {
        Ok(service) => service,
        Err(e) => {
            // The usual ports are taken (another Mailtrail?): any free ones will do.
            tracing::info!(error = %e, "using free ports instead");
            config.http_listen.set_port(0);
            config.smtp_listen.set_port(0);
            Service::start(&config, store.clone(), true).await?
        }
    };
    println!(
        "Mailtrail demo: sandbox mail servers on loopback, data in {}",
        data.path().display()
    );
    println!("mailtrail listening on http://{}", service.http);

    let (account, password) = set_up(&store).await?;
    let mut expected = BTreeMap::new();
    let first = send(&store, &account, "spring-offer", None, &mut expected).await?;
    println!(
        "batch spring-offer: {} emails queued, {} refused ({})",
        first.0, first.1, first.2
    );
    let pending = wait_for_suppression(&store, &account).await?;
    let second = send(
        &store,
        &account,
        "summer-offer",
        Some(SECOND_BATCH),
        &mut expected,
    )
    .await?;
    println!("{pending}");
    println!("batch summer-offer: {} emails queued", second.0);
    schedule_follow_up(&store, &account, &mut expected).await?;
    println!("batch follow-up: 1 email scheduled for tomorrow (it stays Sent)");

    let settled = wait_until_settled(&store, &account, &expected).await?;
    println!("\nEmail report (Last Action per email, newest first)\n");
    report::emails(
        &store,
        &account,
        report::EmailsArgs {
            batch: None,
            stage: None,
            limit: 100,
            csv: false,
        },
    )
    .await?;
    println!("\nBatch comparison\n");
    report::batches(&store, &account, Some("spring-offer,summer-offer"), false).await?;
    if !settled.is_empty() {
        println!("\nnot settled in time: {}", settled.join(", "));
    }

    if !no_wait {
        println!(
            "\nThe service is still running: open http://{}/login and sign in as {LOGIN} with \
             password {password}. Ctrl-C stops it (the demo data is deleted).",
            service.http
        );
        super::serve::shutdown_signal().await;
    }
    service.stop().await?;
    store.close().await;
    Ok(if settled.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The account, its web login, tracking on, and the sample leads.
async fn set_up(store: &Store) -> anyhow::Result<(AccountId, String)> {
    let (account, _) = store.create_account("Demo").await?;
    let password: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    store
        .create_user(
            LOGIN,
            Some(&account),
            Role::Admin,
            &hash_password(&password)?,
        )
        .await?;
    store
        .save_settings(
            &account,
            &Settings {
                open_tracking: true,
                click_tracking: true,
                ..Settings::default()
            },
        )
        .await?;
    let mut leads: Vec<NewLead> = LEADS
        .iter()
        .map(|(name, domain, ..)| lead(name, domain, Permission::Yes))
        .collect::<anyhow::Result<_>>()?;
    leads.push(lead(NO_PERMISSION.0, NO_PERMISSION.1, Permission::No)?);
    let imported = store.import_leads(&account, &leads, |_| {}).await?;
    println!("imported {} sample leads", imported.created);
    Ok((account, password))
}

fn lead(name: &str, domain: &str, permission: Permission) -> anyhow::Result<NewLead> {
    Ok(NewLead {
        address: address(name, domain)?,
        first_name: Some(name.to_owned()),
        last_name: None,
        fields: BTreeMap::new(),
        permission,
    })
}

fn address(name: &str, domain: &str) -> anyhow::Result<EmailAddress> {
    let text = format!("{}@{domain}.sandbox.test", name.to_lowercase());
    EmailAddress::parse(&text).with_context(|| format!("bad sample address {text}"))
}

/// Sends a batch to the sample leads (or the named ones), remembering what each email should
/// end as. Returns (queued, refused, why the first was refused).
async fn send(
    store: &Store,
    account: &str,
    batch: &str,
    only: Option<&[&str]>,
    expected: &mut BTreeMap<String, (String, Stage, Option<EventKind>)>,
) -> anyhow::Result<(usize, usize, String)> {
    let mut chosen: Vec<(&str, &str, Stage, Option<EventKind>)> = LEADS
        .iter()
        .copied()
        .filter(|(name, ..)| only.is_none_or(|names| names.contains(name)))
        .collect();
    if only.is_none() {
        chosen.push((NO_PERMISSION.0, NO_PERMISSION.1, Stage::Sent, None));
    }
    let recipients = chosen
        .iter()
        .map(|(name, domain, ..)| {
            Ok(Recipient {
                to: Some(address(name, domain)?.to_string()),
                fields: BTreeMap::from([("batch".to_owned(), batch.to_owned())]),
                ..Recipient::default()
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let request = Request {
        from: "sales@shop.example".into(),
        subject: format!("{} for {{{{first_name}}}}", title(batch)),
        text: Some("Hello {{first_name}}, our new collection is out.".into()),
        html: Some(HTML.into()),
        batch: Some(batch.to_owned()),
        send_at_ms: None,
        recipients,
        ..Request::default()
    };
    let accepted = submit::submit(store, account, request, None, |_| String::new())
        .await
        .map_err(|e| anyhow::anyhow!("cannot queue the batch {batch}: {e}"))?;
    let refused_positions: Vec<usize> = accepted.refused.iter().map(|r| r.index).collect();
    let sent: Vec<_> = chosen
        .iter()
        .enumerate()
        .filter(|(i, _)| !refused_positions.contains(i))
        .map(|(_, lead)| lead)
        .collect();
    for (queued, (name, _, stage, event)) in accepted.queued.iter().zip(sent) {
        // A dropped email has failed already, whatever its domain would have done.
        let stage = if queued.dropped.is_some() {
            Stage::Failed
        } else {
            *stage
        };
        expected.insert(queued.id.clone(), (name.to_string(), stage, *event));
    }
    let why = accepted
        .refused
        .first()
        .map(|r| r.message.clone())
        .unwrap_or_default();
    Ok((accepted.queued.len(), accepted.refused.len(), why))
}

/// One email to Ana scheduled for tomorrow: it stays `Sent` (accepted, not yet delivered).
async fn schedule_follow_up(
    store: &Store,
    account: &str,
    expected: &mut BTreeMap<String, (String, Stage, Option<EventKind>)>,
) -> anyhow::Result<()> {
    let request = Request {
        from: "sales@shop.example".into(),
        subject: "Following up, {{first_name}}".into(),
        text: Some("Hello {{first_name}}, just checking in.".into()),
        batch: Some("follow-up".into()),
        send_at_ms: Some(mailtrail_store::now_ms() + 24 * 3600 * 1000),
        recipients: vec![Recipient {
            to: Some(address("Ana", "ok")?.to_string()),
            ..Recipient::default()
        }],
        ..Request::default()
    };
    let accepted = submit::submit(store, account, request, None, |_| String::new())
        .await
        .map_err(|e| anyhow::anyhow!("cannot schedule the follow-up: {e}"))?;
    for queued in accepted.queued {
        expected.insert(queued.id, ("Ana (scheduled)".into(), Stage::Sent, None));
    }
    Ok(())
}

/// `spring-offer` → `Spring offer`.
fn title(batch: &str) -> String {
    let words = batch.replace('-', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Waits for the hard bounce that suppresses Bruno's address, then sets his Permission to
/// Email back to Yes as a salesperson might; the block stays.
async fn wait_for_suppression(store: &Store, account: &AccountId) -> anyhow::Result<String> {
    let bruno = address("Bruno", "user-unknown")?;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while store.suppression(account, &bruno).await?.is_none() {
        if Instant::now() > deadline {
            bail!("the sandbox's hard bounce for {bruno} never came back");
        }
        tokio::time::sleep(POLL).await;
    }
    let lead = store
        .lead_by_address(account, &bruno)
        .await?
        .context("the sample lead is missing")?;
    store
        .update_lead(
            account,
            &lead.id,
            &LeadPatch {
                permission: Some(Permission::Yes),
                ..LeadPatch::default()
            },
        )
        .await?;
    Ok(format!(
        "{bruno} hard-bounced and is suppressed; Permission to Email set back to Yes — the \
         block stays, so the next email to it is dropped"
    ))
}

/// Polls until every email reached its expected stage (and event), showing progress; returns
/// the names of those that did not in time.
async fn wait_until_settled(
    store: &Store,
    account: &AccountId,
    expected: &BTreeMap<String, (String, Stage, Option<EventKind>)>,
) -> anyhow::Result<Vec<String>> {
    let bar = ProgressBar::new(expected.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} emails settled {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message("(retries, bounces, opens, clicks, replies come back over SMTP and HTTP)");
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let mut waiting = Vec::new();
        for (id, (name, stage, event)) in expected {
            if !settled(store, account, &EmailId::from(id), *stage, *event).await? {
                waiting.push(format!("{name} ({})", stage.last_action()));
            }
        }
        bar.set_position((expected.len() - waiting.len()) as u64);
        if waiting.is_empty() || Instant::now() > deadline {
            bar.finish_and_clear();
            return Ok(waiting);
        }
        tokio::time::sleep(POLL).await;
        bar.tick();
    }
}

async fn settled(
    store: &Store,
    account: &AccountId,
    id: &EmailId,
    stage: Stage,
    event: Option<EventKind>,
) -> anyhow::Result<bool> {
    let email = store.email(account, id).await?;
    // A scheduled email is settled as Sent; any other has left the queue.
    if email.stage != stage || (stage != Stage::Sent && email.next_attempt_at_ms.is_some()) {
        return Ok(false);
    }
    Ok(match event {
        None => true,
        Some(kind) => store
            .events(account, id)
            .await?
            .iter()
            .any(|e| e.event.kind == kind),
    })
}
