//! Asks the one interpreter ([`mailtrail_domain::interpret`]) what a recipient's evidence
//! means. This crate only gathers that evidence — the codes, the server's words and the
//! notice's, the command the transcript blames, the facts a report states — and holds no
//! phrase or code table of its own.

use mailtrail_domain::interpret::{self, Command, Evidence, Facts, Seen, Verdict};

use crate::smtp::{self, Codes};

/// Where the evidence was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// Fields of a delivery status notification (RFC 3464), or an SES notification's.
    Dsn,
    /// A free-text notice.
    Notice,
}

/// Servers that answer "550 Unknown user" at the end of DATA when the recipient's reception
/// settings (a sender or domain filter the person chose) refuse the sender: NTT docomo's
/// mail servers (`*.docomo.ne.jp`). A fact about the server the report names, passed on as
/// [`Facts::refuses_as_unknown_user`].
pub(crate) fn refuses_as_unknown_user(remote_host: &str) -> bool {
    let host = remote_host
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    host == "docomo.ne.jp" || host.ends_with(".docomo.ne.jp")
}

/// The verdict for one recipient, from its codes, its texts (most specific first: the
/// server's reply, then the notice around it), and the transcript that tells which command
/// failed.
pub(crate) fn verdict(
    codes: Codes,
    texts: &[&str],
    transcript: &str,
    facts: Facts,
    source: Source,
) -> Verdict {
    let command = smtp::command(transcript).map(|name| match name {
        "CONN" => Command::Connect,
        "HELO" | "EHLO" => Command::Helo,
        "MAIL" => Command::Mail,
        "RCPT" => Command::Rcpt,
        _ => Command::Data,
    });
    let seen = match source {
        Source::Dsn => Seen::Quoted(command),
        Source::Notice => Seen::Notice(command),
    };
    let evidence = Evidence {
        reply_code: codes.reply_code,
        status: codes.status,
        texts,
        facts,
    };
    interpret::interpret(&evidence, seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailtrail_domain::Reason;

    #[test]
    fn only_docomo_hosts_refuse_senders_as_unknown_users() {
        for (host, expected) in [
            ("mfsmax.docomo.ne.jp", true),
            ("docomo.ne.jp.", true),
            (" MFSMAX.DOCOMO.NE.JP", true),
            ("notdocomo.ne.jp", false),
            ("docomo.ne.jp.mx.example", false),
            ("mx.example.com", false),
        ] {
            assert_eq!(refuses_as_unknown_user(host), expected, "{host}");
        }
    }

    #[test]
    fn a_docomo_unknown_user_is_a_refused_sender_after_data_and_an_unknown_user_at_rcpt() {
        let reply = "550 Unknown user kijitora@docomo.ne.jp";
        let facts = Facts {
            refuses_as_unknown_user: true,
            ..Facts::default()
        };
        let at = |command: &str, facts| {
            let transcript = format!("{reply} (in reply to {command} command)");
            verdict(smtp::find(reply), &[reply], &transcript, facts, Source::Dsn).reason
        };
        assert_eq!(at("end of DATA", facts), Reason::Rejected);
        assert_eq!(at("RCPT TO", facts), Reason::UserUnknown);
        // Elsewhere the same words after DATA are a content filter's excuse.
        assert_eq!(at("end of DATA", Facts::default()), Reason::Filtered);
    }
}
