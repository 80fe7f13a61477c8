//! What the inbound side relies on, on small hand-written messages: the kind of message, the
//! per-recipient fields, and the identifiers that tie a report to the email Mailtrail sent.

use mailtrail_bounce::{Action, Kind, UnknownAction, classify};
use mailtrail_domain::Reason;

const DSN: &str = "From: MAILER-DAEMON@mx.example.net\r
To: bounces+t@mailtrail.example\r
Subject: Undelivered Mail Returned to Sender\r
Auto-Submitted: auto-replied\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/plain\r
\r
I'm sorry to have to inform you that your message could not be delivered.\r
\r
--b1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
\r
Original-Recipient: rfc822;Lead@Example.org\r
Final-Recipient: rfc822; lead@example.org\r
Action: failed\r
Status: 5.1.1\r
Diagnostic-Code: smtp; 550 5.1.1 <lead@example.org>: Recipient address rejected:\r
 User unknown in local recipient table\r
\r
Final-Recipient: rfc822; other@example.org\r
Action: delayed\r
Status: 4.2.2\r
Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r
\r
--b1\r
Content-Type: text/rfc822-headers\r
\r
From: sales@mailtrail.example\r
To: lead@example.org\r
Message-ID: <0190-abc@mailtrail.example>\r
X-Mailtrail-Token: tok_123.sig\r
Subject: Hello\r
\r
--b1--\r
";

#[test]
fn a_dsn_reports_each_recipient_and_the_email_it_returns() {
    let report = classify(DSN.as_bytes());
    assert_eq!(report.kind, Kind::Bounce);
    assert_eq!(
        report.origin.message_id.as_deref(),
        Some("0190-abc@mailtrail.example")
    );
    assert_eq!(report.origin.token.as_deref(), Some("tok_123.sig"));

    let [first, second] = report.recipients.as_slice() else {
        panic!("two recipients expected: {:?}", report.recipients);
    };
    assert_eq!(first.recipient.as_deref(), Some("lead@example.org"));
    assert_eq!(
        first.original_recipient.as_deref(),
        Some("lead@example.org")
    );
    assert_eq!(first.action, Some(Action::Failed));
    assert_eq!(first.status.as_deref(), Some("5.1.1"));
    assert_eq!(first.reply_code, Some(550));
    assert_eq!(first.reason, Reason::UserUnknown);
    assert!(first.hard_bounce);
    assert!(
        first
            .diagnostic
            .as_deref()
            .unwrap()
            .contains("User unknown in local")
    );

    assert_eq!(second.action, Some(Action::Delayed));
    assert_eq!(second.reason, Reason::MailboxFull);
    assert!(!second.hard_bounce);
}

#[test]
fn a_plain_text_bounce_quoting_the_original_still_gives_its_token() {
    let raw = "From: MAILER-DAEMON@mx.example.net\r
To: bounces@mailtrail.example\r
Subject: failure notice\r
\r
Hi. This is the qmail-send program at mx.example.net.\r
I'm afraid I wasn't able to deliver your message to the following addresses.\r
\r
<lead@example.org>:\r
Remote host said: 552 sorry, mailbox full (#5.2.2)\r
\r
--- Below this line is a copy of the message.\r
\r
Message-ID: <0190-def@mailtrail.example>\r
X-Mailtrail-Token: tok_456.sig\r
To: lead@example.org\r
\r
Hello\r
";
    let report = classify(raw.as_bytes());
    assert_eq!(report.kind, Kind::Bounce);
    assert_eq!(report.origin.token.as_deref(), Some("tok_456.sig"));
    assert_eq!(
        report.origin.message_id.as_deref(),
        Some("0190-def@mailtrail.example")
    );
    let [only] = report.recipients.as_slice() else {
        panic!("one recipient expected: {:?}", report.recipients);
    };
    assert_eq!(only.recipient.as_deref(), Some("lead@example.org"));
    assert_eq!(only.reason, Reason::MailboxFull);
    assert_eq!(only.status.as_deref(), Some("5.2.2"));
}

#[test]
fn a_complaint_keeps_its_feedback_type_even_when_mail_auth_does_not_know_it() {
    let raw = "From: fbl@isp.example\r
To: fbl@mailtrail.example\r
Subject: complaint\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=feedback-report; boundary=\"b2\"\r
\r
--b2\r
Content-Type: text/plain\r
\r
A complaint.\r
\r
--b2\r
Content-Type: message/feedback-report\r
\r
Feedback-Type: opt-out\r
User-Agent: FBL/1.0\r
Version: 1\r
\r
--b2\r
Content-Type: text/rfc822-headers\r
\r
From: sales@mailtrail.example\r
To: redacted\r
X-Mailtrail-Token: tok_789.sig\r
\r
--b2--\r
";
    let report = classify(raw.as_bytes());
    assert_eq!(report.kind, Kind::Complaint);
    assert_eq!(report.origin.token.as_deref(), Some("tok_789.sig"));
    let [only] = report.recipients.as_slice() else {
        panic!("one result expected: {:?}", report.recipients);
    };
    assert_eq!(only.reason, Reason::Feedback);
    assert_eq!(only.feedback_type.as_deref(), Some("opt-out"));
    assert_eq!(only.recipient, None);
}

#[test]
fn an_out_of_office_is_an_auto_reply_and_a_person_s_reply_is_nothing() {
    let auto = "From: Lead <lead@example.org>\r
To: sales@mailtrail.example\r
Subject: Out of Office: Hello\r
Auto-Submitted: auto-replied\r
\r
I am out of the office until Monday.\r
";
    let report = classify(auto.as_bytes());
    assert_eq!(report.kind, Kind::AutoReply);
    assert_eq!(report.recipients[0].reason, Reason::Vacation);
    assert_eq!(
        report.recipients[0].recipient.as_deref(),
        Some("lead@example.org")
    );

    let human = "From: Lead <lead@example.org>\r
To: sales@mailtrail.example\r
Subject: Re: Hello\r
In-Reply-To: <0190-abc@mailtrail.example>\r
\r
Sounds good, call me tomorrow.\r
";
    let report = classify(human.as_bytes());
    assert_eq!(report.kind, Kind::Unknown);
    assert!(report.recipients.is_empty());
}

#[test]
fn a_delivery_notice_is_delivered() {
    let raw = DSN
        .replace("Action: failed", "Action: delivered")
        .replace("Action: delayed", "Action: relayed");
    let report = classify(raw.as_bytes());
    assert_eq!(report.kind, Kind::Delivered);
    assert!(
        report
            .recipients
            .iter()
            .all(|r| r.reason == Reason::Delivered && !r.hard_bounce)
    );
}

/// A mailbox file holding two success notices reports both recipients, in order.
#[test]
fn every_report_of_a_mailbox_file_is_read() {
    let first = DSN
        .replace("Action: failed", "Action: delivered")
        .replace("Action: delayed", "Action: delivered");
    let second = first
        .replace("Lead@Example.org", "third@example.org")
        .replace("lead@example.org", "third@example.org")
        .replace("other@example.org", "fourth@example.org");
    let raw = format!(
        "{first}\nFrom MAILER-DAEMON  Thu Apr 29 23:34:45 2015\n{}",
        second.replace("\r\n", "\n")
    );
    let report = classify(raw.as_bytes());
    assert_eq!(report.kind, Kind::Delivered);
    let recipients: Vec<_> = report
        .recipients
        .iter()
        .map(|r| r.recipient.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(
        recipients,
        [
            "lead@example.org",
            "other@example.org",
            "third@example.org",
            "fourth@example.org"
        ]
    );
}

/// A relay that returns the report it received inside its own notice: the inner report's
/// fields are the ones read.
#[test]
fn a_forwarded_report_is_read_inside_its_wrapper() {
    let raw = format!(
        "From: postmaster@relay.example\r
To: sales@mailtrail.example\r
Subject: Returned mail: User unknown\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary=\"outer\"\r
\r
--outer\r
Content-Type: text/plain\r
\r
The following addresses had permanent delivery errors.\r
\r
--outer\r
Content-Type: message/rfc822\r
\r
{DSN}\r
--outer--\r
"
    );
    let report = classify(raw.as_bytes());
    assert_eq!(report.kind, Kind::Bounce);
    assert_eq!(report.recipients.len(), 2);
    assert_eq!(report.recipients[0].reason, Reason::UserUnknown);
    assert!(report.recipients[0].hard_bounce);
    assert_eq!(report.recipients[1].reason, Reason::MailboxFull);
}

/// Sendmail cuts a multi-line reply to its first line in `Diagnostic-Code`; the rest of it is in
/// the transcript, and it is what says why.
#[test]
fn a_reply_cut_in_the_diagnostic_is_completed_from_the_transcript() {
    let raw = "From: MAILER-DAEMON@mx.example.net\r
To: sales@mailtrail.example\r
Subject: Returned mail: see transcript for details\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r
\r
--b1\r
Content-Type: text/plain\r
\r
   ----- Transcript of session follows -----\r
... while talking to mx.example.org.:\r
>>> DATA\r
<<< 552-5.7.0 This message was blocked because its content presents a potential\r
<<< 552-5.7.0 security issue. Please visit\r
<<< 552 5.7.0 the guidelines.\r
\r
--b1\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.net\r
\r
Final-Recipient: RFC822; lead@example.org\r
Action: failed\r
Status: 5.7.0\r
Diagnostic-Code: SMTP; 552-5.7.0 This message was blocked because its content presents a potential\r
\r
Final-Recipient: RFC822; other@example.org\r
Action: failed\r
Status: 5.7.0\r
Diagnostic-Code: SMTP; 552-5.7.0 This message was blocked because its content presents a potential\r
\r
--b1--\r
";
    let report = classify(raw.as_bytes());
    assert_eq!(report.recipients.len(), 2);
    for recipient in &report.recipients {
        assert_eq!(recipient.reason, Reason::PolicyViolation);
        assert!(
            recipient
                .diagnostic
                .as_deref()
                .is_some_and(|d| d.contains("security issue"))
        );
    }
}

/// A qmail notice names the cause before saying it gave up: the cause is the reason.
#[test]
fn the_cause_outweighs_the_queue_giving_up() {
    let raw = "From: MAILER-DAEMON@mx.example.net\r
To: sales@mailtrail.example\r
Subject: failure notice\r
\r
Hi. This is the qmail-send program at mx.example.net.\r
I'm afraid I wasn't able to deliver your message to the following addresses.\r
This is a permanent error; I've given up. Sorry it didn't work out.\r
\r
<lead@example.org>:\r
Connected to 192.0.2.1 but my name was rejected.\r
Remote host said: 501 5.0.0 Invalid domain name\r
I'm not going to try again; this message has been in the queue too long.\r
";
    let report = classify(raw.as_bytes());
    assert_eq!(report.recipients.len(), 1);
    assert_eq!(report.recipients[0].reason, Reason::Blocked);
    assert!(!report.recipients[0].hard_bounce);
}

/// The recipient is the address Mailtrail mailed: `Original-Recipient` over the alias the
/// reporting MTA ended at, and never an X.400 or local form.
#[test]
fn the_recipient_is_the_rfc822_address_mailed() {
    let aliased = DSN.replace(
        "Final-Recipient: rfc822; lead@example.org",
        "Final-Recipient: rfc822; lead.alias@mailhost.example.org",
    );
    let report = classify(aliased.as_bytes());
    assert_eq!(
        report.recipients[0].recipient.as_deref(),
        Some("lead@example.org")
    );
    let x400 = DSN
        .replace("Original-Recipient: rfc822;Lead@Example.org\r\n", "")
        .replace(
            "Final-Recipient: rfc822; lead@example.org",
            "Final-Recipient: x400; c=US;a= ;p=Example;o=Mail;s=Lead",
        );
    let report = classify(x400.as_bytes());
    assert_eq!(report.recipients[0].recipient, None);
    assert_eq!(report.recipients[0].reason, Reason::UserUnknown);
}

const WARNING: &str = "From: MAILER-DAEMON@mx.example.net\r
To: bounces+t@mailtrail.example\r
Subject: Warning: could not send message for past 4 hours\r
\r
    **********************************************\r
    **      THIS IS A WARNING MESSAGE ONLY      **\r
    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\r
    **********************************************\r
\r
The original message was received at Mon, 7 Dec 2026 02:00:00 GMT\r
\r
   ----- Transcript of session follows -----\r
<lead@example.org>... Deferred: Connection timed out with mx.example.org.\r
Warning: message still undelivered after 4 hours\r
Will keep trying until message is 5 days old\r
\r
   ----- Original message follows -----\r
To: someone.else@example.com\r
Subject: Hello\r
\r
Hello\r
";

/// A delay warning in a non-DSN format (Sendmail's) is a delay, not a failure: the email is
/// still being retried, and its address is not condemned.
#[test]
fn a_delay_warning_without_a_dsn_is_not_a_failure() {
    let report = classify(WARNING.as_bytes());
    assert_eq!(report.kind, Kind::Bounce);
    let [only] = report.recipients.as_slice() else {
        panic!("one recipient expected: {:?}", report.recipients);
    };
    assert_eq!(only.action, Some(Action::Delayed));
    assert!(!only.hard_bounce);
    assert_eq!(only.recipient.as_deref(), Some("lead@example.org"));
    // The same notice without its warning banner is the queue giving up.
    let gave_up = WARNING
        .replace("THIS IS A WARNING MESSAGE ONLY", "")
        .replace("YOU DO NOT NEED TO RESEND YOUR MESSAGE", "")
        .replace("Warning: message still undelivered after 4 hours\r\n", "")
        .replace("Will keep trying until message is 5 days old\r\n", "");
    assert_eq!(
        classify(gave_up.as_bytes()).recipients[0].action,
        Some(Action::Failed)
    );
}

/// A notice that names no recipient reports none: the returned message's `To:` is not the
/// envelope recipient (a Cc, a list, a Bcc'd copy) and is never taken for it.
#[test]
fn a_quoted_to_is_never_the_recipient() {
    let raw = WARNING.replace("<lead@example.org>... ", "");
    let report = classify(raw.as_bytes());
    assert!(
        report
            .recipients
            .iter()
            .all(|r| r.recipient.as_deref() != Some("someone.else@example.com")),
        "{:?}",
        report.recipients
    );
}

/// RFC 3464's actions parse whatever their case and comment; any other word is refused with
/// the word.
#[test]
fn actions_are_typed() {
    assert_eq!("Failed".parse(), Ok(Action::Failed));
    assert_eq!("delayed (will retry)".parse(), Ok(Action::Delayed));
    assert_eq!("deliverable".parse(), Ok(Action::Delivered));
    assert_eq!(
        "bounced".parse::<Action>(),
        Err(UnknownAction("bounced".into()))
    );
    let json = serde_json::to_string(&Action::Expanded).unwrap();
    assert_eq!(json, "\"expanded\"");
}

/// Exchange titles its non-delivery reports in the sender's language: a notice from an
/// ordinary address is still a bounce when its subject says so in Dutch, Italian, Spanish or
/// Japanese, and the server's reply in it is read as anywhere else.
#[test]
fn localised_exchange_subjects_are_bounces() {
    for subject in [
        "Onbestelbaar: Hello",
        "Non recapitabile: Hello",
        "No se puede entregar: Hello",
        "配信不能: Hello",
    ] {
        let raw = format!(
            "From: Exchange <exchange@corp.example>\r\nTo: bounces+t@mailtrail.example\r\n\
             Subject: {subject}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
             lead@example.org\r\n\
             Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\r\n"
        );
        let report = classify(raw.as_bytes());
        assert_eq!(report.kind, Kind::Bounce, "{subject}");
        let r = &report.recipients[0];
        assert_eq!(
            r.recipient.as_deref(),
            Some("lead@example.org"),
            "{subject}"
        );
        assert_eq!(
            (r.reason, r.hard_bounce),
            (Reason::UserUnknown, true),
            "{subject}"
        );
    }
}
