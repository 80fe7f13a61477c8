//! Documented reply strings (`documented_replies.tsv`: the IANA registry's titles, providers'
//! published SMTP error references, MTAs' message catalogues, each row naming its source),
//! read the two ways Mailtrail meets them: live, as its own session's answer
//! (`mailtrail_domain::classify`), and quoted in the `Diagnostic-Code` of a delivery status
//! notification (`mailtrail_bounce::classify`). The readings must agree, save where a row
//! names the written rule (`L2` to `L5` in `mailtrail_domain::interpret`) that makes them
//! differ and what the quoted reading is then.

use mailtrail_domain::classify::{Verdict, classify};
use mailtrail_domain::{Reason, SmtpReply};

const TABLE: &str = include_str!("documented_replies.tsv");

struct Row<'a> {
    reply: &'a str,
    reason: Reason,
    hard: bool,
    quoted: Option<(&'a str, Reason, bool)>,
    source: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 5, "five columns: {line}");
            let quoted = (cols[3] != "-").then(|| {
                let (rule, outcome) = cols[3].split_once('=').expect("rule=reason/hard");
                let (reason, hard) = outcome.split_once('/').expect("reason/hard");
                (rule, reason.parse().unwrap(), hard == "true")
            });
            Row {
                reply: cols[0],
                reason: cols[1].parse().unwrap_or_else(|e| panic!("{e}: {line}")),
                hard: cols[2] == "true",
                quoted,
                source: cols[4],
            }
        })
        .collect()
}

/// The reply as Mailtrail's own session sees it: the reason, and whether it suppresses.
fn live(reply: &SmtpReply) -> (Reason, bool) {
    let c = classify(reply);
    let reason = c.reason.unwrap_or(Reason::Delivered);
    (reason, c.verdict == Verdict::Fail { suppress: true })
}

/// The same reply in a Postfix-style DSN: its enhanced code (or the class's `X.0.0`) in
/// `Status`, the whole reply in `Diagnostic-Code`, no transcript.
fn quoted(reply: &SmtpReply, raw: &str) -> (Reason, bool) {
    let status = reply
        .enhanced()
        .map_or_else(|| format!("{}.0.0", reply.code() / 100), |s| s.to_string());
    let dsn = format!(
        "From: MAILER-DAEMON@mx.sender.example\r\n\
         To: bounces@sender.example\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
         \r\n\
         --B\r\n\
         Content-Type: text/plain\r\n\
         \r\n\
         This is the mail system at host mx.sender.example.\r\n\
         \r\n\
         --B\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; mx.sender.example\r\n\
         \r\n\
         Final-Recipient: rfc822; rcpt@dest.example\r\n\
         Action: failed\r\n\
         Status: {status}\r\n\
         Diagnostic-Code: smtp; {raw}\r\n\
         \r\n\
         --B--\r\n"
    );
    let report = mailtrail_bounce::classify(dsn.as_bytes());
    let r = &report.recipients[0];
    assert_eq!(r.recipient.as_deref(), Some("rcpt@dest.example"));
    (r.reason, r.hard_bounce)
}

#[test]
fn the_table_is_large_sourced_and_well_formed() {
    let rows = rows();
    assert!(rows.len() >= 300, "{} rows", rows.len());
    for row in &rows {
        assert!(row.source.len() >= 10, "no source: {}", row.reply);
        row.reply
            .parse::<SmtpReply>()
            .unwrap_or_else(|e| panic!("{e}: {}", row.reply));
        if let Some((rule, ..)) = row.quoted {
            assert!(
                matches!(rule, "L2" | "L3" | "L4" | "L5"),
                "unknown rule {rule}"
            );
        }
    }
}

#[test]
fn every_documented_reply_reads_as_documented_live_and_quoted() {
    let mut wrong = Vec::new();
    for row in rows() {
        let reply: SmtpReply = row.reply.parse().unwrap();
        let expected_quoted = row
            .quoted
            .map_or((row.reason, row.hard), |(_, reason, hard)| (reason, hard));
        let (got_live, got_quoted) = (live(&reply), quoted(&reply, row.reply));
        if got_live != (row.reason, row.hard) {
            wrong.push(format!(
                "live   {got_live:?}, expected {:?}: {} [{}]",
                (row.reason, row.hard),
                row.reply,
                row.source
            ));
        }
        if got_quoted != expected_quoted {
            wrong.push(format!(
                "quoted {got_quoted:?}, expected {expected_quoted:?}: {} [{}]",
                row.reply, row.source
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
