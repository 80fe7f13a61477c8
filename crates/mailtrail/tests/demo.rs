//! `mailtrail demo --no-wait` as a new user runs it: the sandbox service on a fresh database,
//! two batches through the real delivery engine, and a report in which every stage appears.

mod common;

use std::process::Stdio;

use common::mailtrail;

#[test]
fn the_demo_shows_every_stage_and_the_batch_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let output = mailtrail(&[
        ("MAILTRAIL_HTTP_LISTEN", "127.0.0.1:0"),
        ("MAILTRAIL_SMTP_LISTEN", "127.0.0.1:0"),
    ])
    .current_dir(dir.path())
    .args(["demo", "--no-wait"])
    .stdin(Stdio::null())
    .output()
    .expect("mailtrail demo runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the demo did not settle: {text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("recipient"))
        .take_while(|l| !l.is_empty())
        .collect();
    let row = |recipient: &str, batch: &str| {
        report
            .iter()
            .find(|l| l.starts_with(recipient) && l.contains(batch))
            .unwrap_or_else(|| panic!("no row for {recipient} in {batch}:\n{text}"))
            .to_string()
    };
    // Every sample address, in every batch it was sent in, with the Last Action (and reason)
    // its sandbox domain calls for (README, "Sandbox").
    let expected: &[(&str, &str, &str, &str)] = &[
        ("ana@ok.", "spring-offer", "Delivered", ""),
        (
            "bruno@user-unknown.",
            "spring-offer",
            "Failed",
            "userunknown",
        ),
        ("chloe@mailbox-full.", "spring-offer", "Delivered", ""),
        ("dmitri@greylist.", "spring-offer", "Delivered", ""),
        ("elif@too-large.", "spring-offer", "Failed", "mesgtoobig"),
        ("farid@down.", "spring-offer", "Failed", "expired"),
        ("grace@slow.", "spring-offer", "Delivered", ""),
        ("hugo@spam-block.", "spring-offer", "Failed", "spamdetected"),
        (
            "ines@bounce-later.",
            "spring-offer",
            "Failed",
            "userunknown",
        ),
        (
            "jonas@complain.",
            "spring-offer",
            "Unsubscribed",
            "complaint",
        ),
        ("keiko@reply.", "spring-offer", "Replied", ""),
        ("liam@autoreply.", "spring-offer", "Delivered", ""),
        ("maya@opens.", "spring-offer", "Opened", ""),
        ("noah@clicks.", "spring-offer", "Clicked", ""),
        ("olga@unsubscribes.", "spring-offer", "Unsubscribed", ""),
        ("pedro@machine-open.", "spring-offer", "Delivered", ""),
        ("ana@ok.", "summer-offer", "Delivered", ""),
        (
            "bruno@user-unknown.",
            "summer-offer",
            "Failed",
            "suppressed",
        ),
        ("grace@slow.", "summer-offer", "Delivered", ""),
        ("keiko@reply.", "summer-offer", "Replied", ""),
        ("maya@opens.", "summer-offer", "Opened", ""),
        ("noah@clicks.", "summer-offer", "Clicked", ""),
        ("pedro@machine-open.", "summer-offer", "Delivered", ""),
        ("ana@ok.", "follow-up", "Sent", ""),
    ];
    for (recipient, batch, action, reason) in expected {
        let line = row(recipient, batch);
        let cells: Vec<&str> = line
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert!(
            cells.contains(action),
            "{recipient} in {batch}: {action}\n{line}"
        );
        if !reason.is_empty() {
            assert!(
                cells.contains(reason),
                "{recipient} in {batch}: {reason}\n{line}"
            );
        }
    }
    // The header, its rule and the count line around one row per email.
    assert_eq!(
        report.len() - 3,
        expected.len(),
        "one row per email:\n{text}"
    );
    let hard = row("bruno@user-unknown.", "spring-offer");
    assert!(hard.contains("550 5.1.1"), "{hard}");
    let dropped = row("bruno@user-unknown.", "summer-offer");
    assert!(dropped.contains("Dropped"), "{dropped}");
    assert!(text.contains("1 refused (the lead quinn@ok.sandbox.test has Permission to Email"));

    let comparison: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Batch comparison"))
        .collect();
    assert!(
        comparison
            .iter()
            .any(|l| l.starts_with("batch") && l.contains("summer-offer"))
    );
    let machine = comparison
        .iter()
        .find(|l| l.starts_with("machine_opened "))
        .unwrap();
    assert!(
        machine.split_whitespace().skip(1).all(|n| n == "1"),
        "{machine}"
    );
}
