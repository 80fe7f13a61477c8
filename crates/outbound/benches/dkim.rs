//! The cost of DKIM signing per message (issue: delivery benchmark), measured next to building
//! the same message unsigned: Ed25519 and RSA-2048 keys made by `openssl genpkey`, and both
//! signatures at once (`rsa+ed25519`), a 2 KB message, signed many times. Run:
//! `cargo bench -p mailtrail-outbound --bench dkim`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use mailtrail_domain::token::TokenKey;
use mailtrail_outbound::dkim::{DkimKeyConfig, Signers};
use mailtrail_outbound::message::build;
use mailtrail_outbound::tracking::Tracking;
use mailtrail_store::{Claimed, Content};

const ROUNDS: u32 = 2000;

fn key(dir: &std::path::Path, name: &str, args: &[&str]) -> std::path::PathBuf {
    let path = dir.join(name);
    let status = Command::new("openssl")
        .args(["genpkey", "-quiet", "-out"])
        .arg(&path)
        .args(args)
        .status()
        .expect("openssl makes the test keys");
    assert!(status.success(), "openssl genpkey {args:?}");
    path
}

fn email() -> Claimed {
    Claimed {
        id: "0199a3b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b".into(),
        account_id: "a".into(),
        lead_id: None,
        to: "ana@example.com".into(),
        to_domain: "example.com".into(),
        header_to: None,
        fields: BTreeMap::new(),
        content_id: "content".into(),
        attachment_count: 0,
        content: Content {
            from: "sales@shop.test".into(),
            subject: "Offer".into(),
            text: Some("x".repeat(2000)),
            html: None,
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

/// Microseconds per built message with these signers.
fn per_message(signers: &Signers) -> f64 {
    let tokens = TokenKey::new(b"bench");
    let tracking = Tracking {
        base_url: "https://t.example".into(),
        opens: false,
        clicks: false,
    };
    let email = email();
    let started = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(
            build(
                &email,
                "mta.shop.test",
                "bounce.shop.test",
                "bounces.shop.test",
                &tokens,
                signers,
                &tracking,
            )
            .unwrap(),
        );
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let configs = [
        ("unsigned", None),
        (
            "ed25519",
            Some(key(dir.path(), "ed.pem", &["-algorithm", "ED25519"])),
        ),
        (
            "rsa-2048",
            Some(key(
                dir.path(),
                "rsa.pem",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            )),
        ),
    ];
    // Both signatures, as a domain registered with `rsa+ed25519` signs: one PEM, RSA first.
    let both = dir.path().join("both.pem");
    let pems: Vec<u8> = [&configs[2].1, &configs[1].1]
        .iter()
        .flat_map(|path| std::fs::read(path.as_ref().expect("a key")).expect("the key"))
        .collect();
    std::fs::write(&both, pems).expect("the combined key");
    let configs = configs.into_iter().chain([("rsa+ed25519", Some(both))]);
    let mut baseline = 0.0;
    println!(
        "{:<12} {:>14} {:>14} {:>16}",
        "key", "µs / message", "messages / s", "signing µs"
    );
    for (name, path) in configs {
        let config: BTreeMap<String, DkimKeyConfig> = path
            .map(|p| {
                BTreeMap::from([(
                    "shop.test".to_owned(),
                    DkimKeyConfig {
                        selector: "mt1".into(),
                        private_key: p,
                    },
                )])
            })
            .unwrap_or_default();
        let signers = Signers::load(&config).expect("the keys load");
        let us = per_message(&signers);
        if name == "unsigned" {
            baseline = us;
        }
        println!(
            "{name:<12} {us:>14.1} {:>14.0} {:>16.1}",
            1e6 / us,
            us - baseline
        );
    }
}
