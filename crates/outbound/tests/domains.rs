//! Mail from an account's verified sending domain is DKIM-signed with the key Mailtrail made
//! for it, and a receiver verifies the signature against the record published in real DNS
//! (NSD). A registered domain that is not verified, or another account's, signs nothing.

use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator};
use mailtrail_domain::token::TokenKey;
use mailtrail_outbound::dkim::{self, KeyAlgorithm, Signers};
use mailtrail_outbound::message::build;
use mailtrail_outbound::tracking::Tracking;
use mailtrail_store::{Claimed, Content, NewDomain, Store};
use mailtrail_testkit::dns::Dns;

fn email(account: &str, from: &str) -> Claimed {
    Claimed {
        id: "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
        account_id: account.into(),
        lead_id: None,
        to: "ana@example.com".into(),
        to_domain: "example.com".into(),
        header_to: None,
        fields: Default::default(),
        content_id: "content".into(),
        attachment_count: 0,
        content: Content {
            from: from.into(),
            subject: "Hello".into(),
            text: Some("Hi Ana".into()),
            ..Content::default()
        },
        batch: None,
        attempts: 0,
        soft_5xx_attempts: 0,
        first_soft_5xx_at_ms: None,
        created_at_ms: 1_700_000_000_000,
        send_at_ms: None,
    }
}

/// The message as the worker builds it for this email, with the account's keys.
async fn built(store: &Store, email: &Claimed) -> String {
    let signers = Signers::default()
        .with_account_key(store, &email.account_id, &email.content.from)
        .await
        .unwrap();
    let tracking = Tracking {
        base_url: "https://t.example".into(),
        opens: false,
        clicks: false,
    };
    let built = build(
        email,
        "mta.mailtrail.test",
        "mta.mailtrail.test",
        "mta.mailtrail.test",
        &TokenKey::new(b"k"),
        &signers,
        &tracking,
    )
    .unwrap();
    String::from_utf8(built.bytes).unwrap()
}

/// Registers `domain` for the account with a new key; its DKIM record as a zone-file line.
async fn register(store: &Store, account: &str, domain: &str, algorithm: KeyAlgorithm) -> String {
    let key = dkim::generate(algorithm).unwrap();
    store
        .create_domain(
            account,
            &NewDomain {
                domain,
                selector: "mt1",
                algorithm: algorithm.as_str(),
                private_key_pem: &key.private_key_pem,
                public_key_b64: &key.public_key_b64,
            },
        )
        .await
        .unwrap();
    // TXT strings hold at most 255 characters: an RSA key is published in pieces.
    let value = format!(
        "v=DKIM1; k={}; p={}",
        algorithm.as_str(),
        key.public_key_b64
    );
    let pieces: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", std::str::from_utf8(c).unwrap()))
        .collect();
    format!("mt1._domainkey IN TXT {}", pieces.join(" "))
}

#[tokio::test]
async fn mail_from_a_verified_domain_is_signed_with_its_stored_key_and_verifies_in_dns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), mailtrail_store::MasterKey::generate())
        .await
        .unwrap();
    let (acme, _) = store.create_account("Acme").await.unwrap();
    let (globex, _) = store.create_account("Globex").await.unwrap();
    let shop = register(&store, &acme, "shop.test", KeyAlgorithm::Ed25519).await;
    let news = register(&store, &acme, "news.test", KeyAlgorithm::Rsa).await;
    let pending = register(&store, &acme, "pending.test", KeyAlgorithm::Ed25519).await;
    register(&store, &globex, "shop.test", KeyAlgorithm::Ed25519).await;
    for domain in ["shop.test", "news.test"] {
        store
            .record_domain_check(&acme, domain, true, "{}")
            .await
            .unwrap();
    }
    let dns = Dns::start(&[
        ("shop.test", &shop),
        ("news.test", &news),
        ("pending.test", &pending),
    ]);
    let mut server = hickory_resolver::config::NameServerConfig::udp_and_tcp(dns.address.ip());
    for connection in &mut server.connections {
        connection.port = dns.address.port();
    }
    let receiver = MessageAuthenticator::new(
        hickory_resolver::config::ResolverConfig::from_parts(None, vec![], vec![server]),
        hickory_resolver::config::ResolverOpts::default(),
    )
    .unwrap();

    for (from, algorithm) in [
        ("sales@Shop.Test", "ed25519-sha256"),
        ("news@news.test", "rsa-sha256"),
    ] {
        let message = built(&store, &email(&acme, from)).await;
        assert!(
            message.starts_with(&format!("DKIM-Signature: v=1; a={algorithm};")),
            "{message}"
        );
        let domain = from.rsplit_once('@').unwrap().1.to_lowercase();
        assert!(
            message.contains(&format!("d={domain}")) && message.contains("s=mt1"),
            "{message}"
        );
        let parsed = AuthenticatedMessage::parse(message.as_bytes()).unwrap();
        let results = receiver.verify_dkim(&parsed).await;
        assert!(!results.is_empty());
        assert!(
            results.iter().all(|r| r.result() == &DkimResult::Pass),
            "{from}: {:?}",
            results.iter().map(|r| r.result()).collect::<Vec<_>>()
        );
    }

    // Registered but not verified, and Acme's verified domain sent from by an account that
    // has not verified it: no signature.
    for (account, from) in [(&acme, "sales@pending.test"), (&globex, "sales@shop.test")] {
        let message = built(&store, &email(account, from)).await;
        assert!(!message.contains("DKIM-Signature"), "{from}: {message}");
    }
}
