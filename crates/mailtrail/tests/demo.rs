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
    let spring = "spring-offer";
    for (recipient, action) in [
        ("ana@ok.", "Delivered"),
        ("farid@down.", "Failed"),
        ("maya@opens.", "Opened"),
        ("noah@clicks.", "Clicked"),
        ("keiko@reply.", "Replied"),
        ("olga@unsubscribes.", "Unsubscribed"),
        ("jonas@complain.", "Unsubscribed"),
        ("ines@bounce-later.", "Failed"),
    ] {
        assert!(
            row(recipient, spring).contains(action),
            "{recipient}: {action}\n{text}"
        );
    }
    let hard = row("bruno@user-unknown.", spring);
    assert!(
        hard.contains("userunknown") && hard.contains("550 5.1.1"),
        "{hard}"
    );
    assert!(row("farid@down.", spring).contains("expired"));
    let dropped = row("bruno@user-unknown.", "summer-offer");
    assert!(
        dropped.contains("Dropped") && dropped.contains("suppressed"),
        "{dropped}"
    );
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
