//! What comes back to Mailtrail's inbound listener after a sandbox server accepts a message:
//! a DSN, an ARF complaint, a person's reply and an auto-reply, each read by Mailtrail's own
//! bounce classifier as what it claims to be.

mod common;

use common::{Capture, Captured, MAIL_FROM, MESSAGE_ID, TOKEN, deliver, message, route, sandbox};
use mailtrail_bounce::{Kind, classify};
use mailtrail_sandbox::Sandbox;

/// Sends a message like Mailtrail's to `to` through its sandbox server; returns the sandbox
/// and the first message that came back to the (captured) inbound listener.
async fn follow_up(to: &str) -> (Sandbox, Captured) {
    let capture = Capture::start().await;
    let sandbox = sandbox(capture.address).await;
    let domain = to.split_once('@').map(|(_, d)| d).unwrap_or_default();
    deliver(
        &route(&sandbox, domain),
        to,
        &message(to, "http://127.0.0.1:9"),
    )
    .await;
    let first = capture.first().await;
    (sandbox, first)
}

#[tokio::test]
async fn bounce_later_sends_a_dsn_to_the_envelope_sender() {
    let to = "ana@bounce-later.sandbox.test";
    let (sandbox, dsn) = follow_up(to).await;
    assert_eq!(dsn.mail_from, "", "a DSN has a null envelope sender");
    assert_eq!(dsn.rcpt_to, [MAIL_FROM]);
    let text = dsn.text();
    for part in [
        "multipart/report; report-type=delivery-status",
        "Content-Type: message/delivery-status",
        "Reporting-MTA: dns; bounce-later.sandbox.test",
        "Final-Recipient: rfc822; ana@bounce-later.sandbox.test",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1",
        "Content-Type: text/rfc822-headers",
    ] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }

    let report = classify(&dsn.data);
    assert_eq!(report.kind, Kind::Bounce, "{report:?}");
    let [recipient] = report.recipients.as_slice() else {
        panic!("one recipient: {report:?}");
    };
    assert_eq!(recipient.recipient.as_deref(), Some(to));
    assert_eq!(recipient.reason.as_str(), "userunknown");
    assert!(recipient.hard_bounce);
    assert_eq!(report.origin.token.as_deref(), Some(TOKEN));
    assert_eq!(report.origin.message_id.as_deref(), Some(MESSAGE_ID));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn complain_sends_an_arf_abuse_report_to_the_feedback_loop_address() {
    let to = "ana@complain.sandbox.test";
    let (sandbox, arf) = follow_up(to).await;
    assert_eq!(arf.rcpt_to, ["fbl@bounce.test"]);
    let text = arf.text();
    for part in [
        "multipart/report; report-type=feedback-report",
        "Content-Type: message/feedback-report",
        "Feedback-Type: abuse",
        "User-Agent: Mailtrail-Sandbox/",
        "Version: 1",
        "X-Mailtrail-Token: tok123",
    ] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }

    let report = classify(&arf.data);
    assert_eq!(report.kind, Kind::Complaint, "{report:?}");
    assert_eq!(report.recipients[0].feedback_type.as_deref(), Some("abuse"));
    assert_eq!(report.origin.token.as_deref(), Some(TOKEN));
    sandbox.shutdown().await;
}

#[tokio::test]
async fn reply_answers_the_reply_to_address_as_a_person() {
    let to = "ana@reply.sandbox.test";
    let (sandbox, reply) = follow_up(to).await;
    assert_eq!(reply.mail_from, to);
    assert_eq!(reply.rcpt_to, ["reply+tok123@bounce.test"]);
    let text = reply.text();
    for part in [
        "From: <ana@reply.sandbox.test>",
        "To: <reply+tok123@bounce.test>",
        "Subject: Re: Spring offer",
        format!("In-Reply-To: <{MESSAGE_ID}>").as_str(),
        format!("References: <{MESSAGE_ID}>").as_str(),
        // The quoted first line began with a dot: it was un-stuffed on the way in.
        "> .Twenty percent off everything",
    ] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
    assert!(!text.contains("Auto-Submitted"));
    assert_eq!(classify(&reply.data).kind, Kind::Unknown);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn autoreply_sends_an_out_of_office_notice() {
    let to = "ana@autoreply.sandbox.test";
    let (sandbox, notice) = follow_up(to).await;
    assert_eq!(notice.rcpt_to, ["reply+tok123@bounce.test"]);
    let text = notice.text();
    for part in [
        "Auto-Submitted: auto-replied",
        "Subject: Out of office: Spring offer",
        format!("In-Reply-To: <{MESSAGE_ID}>").as_str(),
    ] {
        assert!(text.contains(part), "{part} missing from\n{text}");
    }
    assert_eq!(classify(&notice.data).kind, Kind::AutoReply);
    sandbox.shutdown().await;
}

#[tokio::test]
async fn a_follow_up_waits_for_a_busy_inbound_listener() {
    // Nothing listens on the inbound port at first: the DSN is retried until it does.
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let sandbox = sandbox(port).await;
    let to = "ana@bounce-later.sandbox.test";
    deliver(
        &route(&sandbox, "bounce-later.sandbox.test"),
        to,
        &message(to, "http://127.0.0.1:9"),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let capture = Capture::start_on(port).await;
    let dsn = capture.first().await;
    assert_eq!(dsn.rcpt_to, [MAIL_FROM]);
    sandbox.shutdown().await;
}
