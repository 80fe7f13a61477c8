//! The one interpreter of SMTP evidence (PRODUCT.md §2–§3): what a reply code, an enhanced
//! status code and the words around them mean — the reason, whether the address is dead,
//! whether and how to try again, whether the destination asks to slow down. Live replies
//! (`classify`), DSNs and text notices (the `bounce` crate) all ask here, so the same words
//! mean the same thing wherever they were seen.
//!
//! The knowledge is data: `rules/smtp.toml`, compiled into the binary and loaded into automata
//! once, with one ordered table of status codes, one of reply codes and the phrase families
//! per reason, each entry citing where its wording comes from. This module holds only the
//! order in which that evidence is weighed, and the few deliberate differences between
//! readings, each a rule keyed on [`Seen`]:
//!
//! - **L1** — only a live reply can be a delivery: a 2xx quoted in a report is an earlier step
//!   of a transcript, and the report's failure is what counts.
//! - **L2** — a live reply whose command the caller does not say is still our own session's
//!   answer for this recipient, so an "unknown user" is believed as at `RCPT`. Quoted without
//!   its command, the same words may be a relay's content filter after `DATA`, and are
//!   believed only on an addressing code or words no filter uses.
//! - **L3** — a live transient reply (4xx) is never hard: the email is retried and the address
//!   kept. A report is final, so the transient code of its last attempt does not save an
//!   address that does not exist (save `notaccept`, which a 4xx may lift).
//! - **L4** — live, "Recipient address rejected: Access denied" under `X.7.*` is an access
//!   policy (Postfix's access map, or a smarthost's `permit_sasl_authenticated, reject`) that
//!   would otherwise suppress every address sent through it: `policyviolation`. Quoted in a
//!   report, a remote system refused this one recipient so, which the labelled corpus reads as
//!   an unknown user.
//! - **L5** — a report that says something of a recipient that no rule reads is `onhold`
//!   (held for a person to read, in the corpus's vocabulary, [`Facts::said`]); a live reply no
//!   rule reads is `undefined`, its words kept in the email's Status field.

use std::cell::OnceCell;
use std::sync::LazyLock;
use std::time::Duration;

use aho_corasick::AhoCorasick;
use serde::Deserialize;

use crate::{EnhancedStatus, Reason};

/// The rules, as written: parsed once by [`rules`].
const RULES_TOML: &str = include_str!("../rules/smtp.toml");

/// The SMTP command a reply answered; `Connect` is the greeting, before any command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
}

/// Where the words were seen, with the command they answered when that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A reply in Mailtrail's own SMTP session.
    Live(Option<Command>),
    /// A remote server's reply quoted in a delivery status notification (RFC 3464).
    Quoted(Option<Command>),
    /// A free-text notice (a non-standard bounce), its transcript if any.
    Notice(Option<Command>),
}

impl Seen {
    fn command(self) -> Option<Command> {
        match self {
            Seen::Live(c) | Seen::Quoted(c) | Seen::Notice(c) => c,
        }
    }

    fn is_live(self) -> bool {
        matches!(self, Seen::Live(_))
    }
}

/// What a report says of a recipient besides the server's words, found by the parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// RFC 3464 `Action: delayed`: the message still waits in a queue.
    pub delayed: bool,
    /// The reporting MTA classed the address as not existing (PowerMTA's
    /// `X-PowerMTA-BounceCategory: bad-mailbox`), from the whole session.
    pub no_such_mailbox: bool,
    /// The remote server answers "unknown user" after the message when the recipient's own
    /// reception settings refuse the sender (NTT docomo).
    pub refuses_as_unknown_user: bool,
    /// The diagnostic comes from a local delivery program (`X-Unix;`), not a server.
    pub local_program: bool,
    /// The report says something about this recipient (a diagnostic, lines naming it).
    pub said: bool,
}

/// The evidence about one recipient: the codes, and the words, most specific first (the
/// server's reply, then the notice around it).
#[derive(Debug, Clone, Copy, Default)]
pub struct Evidence<'a> {
    pub reply_code: Option<u16>,
    pub status: Option<EnhancedStatus>,
    pub texts: &'a [&'a str],
    pub facts: Facts,
}

/// Whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Again {
    /// A temporary failure: on the backoff schedule.
    Yes,
    /// A permanent reply about a temporary condition (a full mailbox, a rate limit): RFC 5321
    /// says not to repeat a 5xx blindly, so only a few more tries.
    FewTimes,
    /// Delivered, or failed for good.
    No,
}

/// What the evidence means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// `delivered` for a live 2xx.
    pub reason: Reason,
    /// The address itself is bad: suppress it (PRODUCT.md §3).
    pub hard: bool,
    pub retry: Again,
    /// The destination as a whole asks to slow down (421, rate limits, congestion).
    pub throttle: bool,
    /// The server's own "try again in N minutes".
    pub hint: Option<Duration>,
}

/// Interprets one recipient's evidence.
pub fn interpret(evidence: &Evidence, seen: Seen) -> Verdict {
    let positive = evidence.reply_code.is_some_and(|c| (200..300).contains(&c));
    if seen.is_live() && positive {
        return Verdict {
            reason: Reason::Delivered,
            hard: false,
            retry: Again::No,
            throttle: false,
            hint: None,
        };
    }
    let reason = reason(evidence, seen);
    let permanent = match (evidence.reply_code, evidence.status) {
        (Some(code), _) if code >= 400 => code >= 500,
        (_, Some(status)) => status.class() == 5,
        _ => true,
    };
    let retry = if evidence.facts.delayed || !permanent {
        Again::Yes
    } else if is_temporary(reason) {
        Again::FewTimes
    } else {
        Again::No
    };
    let transient = evidence.status.map_or_else(
        || evidence.reply_code.is_some_and(|c| c < 500),
        |s| s.class() == 4,
    );
    // A message still waiting in a queue condemns no address, whatever the words say; a null
    // MX refused transiently may yet be lifted; rule L3 for a live 4xx.
    let lifted = reason == Reason::NotAccept && transient;
    let retried_live = seen.is_live() && retry == Again::Yes;
    let hard = reason.is_hard() && !evidence.facts.delayed && !lifted && !retried_live;
    let throttle = evidence.reply_code == Some(421)
        || evidence
            .status
            .is_some_and(|s| (s.subject(), s.detail()) == (4, 5))
        || matches!(
            reason,
            Reason::RateLimited | Reason::TooManyConn | Reason::Speeding
        );
    Verdict {
        reason,
        hard,
        retry,
        throttle,
        hint: evidence.texts.iter().find_map(|t| retry_hint(t)),
    }
}

/// Whether a notice's words say it is a delay warning — the message is still queued and
/// will be retried — for notices in formats where no `Action: delayed` says so.
pub fn says_delayed(text: &str) -> bool {
    rules().delay.is_match(&plain_text(text))
}

/// Reasons that describe a temporary condition even when a server answers 5xx.
fn is_temporary(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::MailboxFull
            | Reason::MesgTooBig
            | Reason::ExceedLimit
            | Reason::SystemFull
            | Reason::RateLimited
            | Reason::Speeding
            | Reason::TooManyConn
    )
}

/// Reasons a text can show that outweigh a `X.1.1`: servers answer "user unknown" codes for
/// relaying, blocks, full mailboxes and moved or refused addresses too.
const OVER_USER_UNKNOWN: &[Reason] = &[
    Reason::NoRelaying,
    Reason::Blocked,
    Reason::MailboxFull,
    Reason::HasMoved,
    Reason::Rejected,
    Reason::NotAccept,
    Reason::Speeding,
];

/// Reasons that say no more than "refused", which the stage of the refusal can sharpen.
const VAGUE_REFUSALS: &[Reason] = &[
    Reason::Undefined,
    Reason::Rejected,
    Reason::UserUnknown,
    Reason::Filtered,
    Reason::SystemError,
    Reason::SecurityError,
];

/// The reason, weighing the evidence in this order: a status code specific enough to trust,
/// the words (the server's first), a vague status, the reply code. Then the stage of the
/// refusal: before `MAIL` the client itself was refused; an "unknown user" not placed in the
/// envelope is believed only on words no content filter uses (or rule L2).
fn reason(evidence: &Evidence, seen: Seen) -> Reason {
    let rules = rules();
    let status = evidence.status;
    let texts = evidence.texts;
    // Codes are read apart; dropping them joins phrases that multi-line replies split
    // (`552-5.7.0 … a potential 552-5.7.0 security issue`). Each made only when read.
    let plain: Vec<OnceCell<String>> = texts.iter().map(|_| OnceCell::new()).collect();
    let plain = |i: usize| plain[i].get_or_init(|| plain_text(texts[i])).as_str();
    let policy_denial = seen.is_live()
        && status.is_some_and(|s| s.subject() == 7)
        && (0..texts.len()).any(|i| rules.access_denied.is_match(plain(i)));
    let from_text = if policy_denial {
        Some(Reason::PolicyViolation)
    } else {
        (0..texts.len()).find_map(|i| rules.phrase_reason(plain(i)))
    };
    // A "recipient rejected" about the message's content (`X.6.*`) is not about the address.
    let from_text = match (from_text, status) {
        (Some(Reason::UserUnknown), Some(s)) if s.subject() == 6 => rules.alone(s).or(from_text),
        _ => from_text,
    };
    let trusted = status.and_then(|s| rules.over_text(s));
    let reason = match (trusted, from_text) {
        (Some(Reason::UserUnknown), Some(text)) if OVER_USER_UNKNOWN.contains(&text) => text,
        // A queue that gave up (`4.4.1`, `4.4.7`) says nothing of why it kept failing.
        (Some(Reason::Expired), Some(text)) => text,
        // `X.4.4` ("unable to route") is given for a domain that does not exist and for a
        // name server that did not answer alike: the text tells which.
        (Some(Reason::HostUnknown), Some(text))
            if status.is_some_and(|s| (s.subject(), s.detail()) == (4, 4)) =>
        {
            text
        }
        // A refusal of the content under a security or policy code (`X.7.*`): the site's
        // policy on what it accepts, not a malformed message (`X.6.*`).
        (None, Some(Reason::ContentError)) if status.is_some_and(|s| s.subject() == 7) => {
            Reason::PolicyViolation
        }
        (Some(code), _) => code,
        (None, Some(text)) => text,
        // A message that still waits: when no words say why, the wait itself is the reason.
        (None, None) if evidence.facts.delayed => Reason::Expired,
        (None, None) => status
            .and_then(|s| rules.alone(s))
            .or_else(|| evidence.reply_code.and_then(|c| rules.reply(c)))
            .unwrap_or(Reason::Undefined),
    };
    let command = seen.command();
    // Refused before the sender was even named: the server refuses this client. A queue
    // that gave up on such a server was refused all along.
    let before_mail = matches!(command, Some(Command::Connect | Command::Helo));
    if before_mail && (VAGUE_REFUSALS.contains(&reason) || reason == Reason::Expired) {
        return Reason::Blocked;
    }
    let reason = if reason == Reason::UserUnknown && command != Some(Command::Rcpt) {
        // An addressing status (`X.1.*`) or a protocol one (`X.5.*`: about the commands
        // exchanged) places the refusal in the envelope, where no content filter has run.
        let envelope = status.is_some_and(|s| {
            (s.subject() == 1 && matches!(s.detail(), 0 | 1 | 3 | 10)) || s.subject() == 5
        });
        let definite = || {
            (0..texts.len()).any(|i| {
                rules.definite(plain(i), status)
                    || (evidence.reply_code.is_none() && rules.heading.is_match(plain(i)))
            })
        };
        let live_unsaid = seen.is_live() && command.is_none();
        if envelope || live_unsaid || evidence.facts.no_such_mailbox || definite() {
            reason
        } else if evidence.facts.refuses_as_unknown_user {
            Reason::Rejected
        } else {
            Reason::Filtered
        }
    } else {
        reason
    };
    // What no code or words decide: on hold when the report said something no rule reads.
    let reason = if reason == Reason::Undefined && evidence.facts.said {
        Reason::OnHold
    } else {
        reason
    };
    let about_storage = matches!(
        reason,
        Reason::MailboxFull | Reason::SystemFull | Reason::MesgTooBig | Reason::ExceedLimit
    );
    if evidence.facts.local_program && !about_storage {
        Reason::MailerError
    } else {
        reason
    }
}

/// The text without its codes, its white space collapsed; lower-cased when it is not ASCII,
/// since the automata fold ASCII case only (non-ASCII phrases are written in lower case).
fn plain_text(text: &str) -> String {
    let joined = text
        .split_whitespace()
        .filter(|word| !is_code(word))
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_ascii() {
        joined
    } else {
        joined.to_lowercase()
    }
}

/// A reply code or enhanced status code, alone or joined (`550`, `5.1.1`, `550-5.1.1`).
fn is_code(word: &str) -> bool {
    word.bytes().any(|b| b.is_ascii_digit())
        && word.split('-').all(|part| {
            let part = part.trim_matches(|c: char| matches!(c, '#' | '(' | ')' | ':' | ';' | ','));
            part.len() == 3 && part.bytes().all(|b| b.is_ascii_digit())
                || part.parse::<EnhancedStatus>().is_ok()
        })
}

/// "try again in 30 seconds", "retry in 5 minutes": a server's own retry hint.
pub fn retry_hint(text: &str) -> Option<Duration> {
    let text = text.to_lowercase();
    let words: Vec<&str> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.windows(4).find_map(|w| {
        let leads = matches!(w[0], "again" | "retry" | "resend") && w[1] == "in";
        let n: u64 = w[2].parse().ok().filter(|_| leads)?;
        let unit = match w[3] {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            _ => return None,
        };
        Some(Duration::from_secs(n.saturating_mul(unit)))
    })
}

/// The rules file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    status: Vec<StatusRule>,
    reply: Vec<ReplyRule>,
    definite: Vec<Definite>,
    delay: Vec<PhraseList>,
    heading: Vec<PhraseList>,
    phrases: Vec<Family>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusRule {
    code: String,
    reason: String,
    weight: Weight,
    #[allow(dead_code)] // Read by the tests: every entry must cite its source.
    source: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum Weight {
    OverText,
    Alone,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyRule {
    code: String,
    reason: String,
    #[allow(dead_code)] // Read by the tests.
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Definite {
    status: Option<String>,
    #[allow(dead_code)] // Read by the tests.
    source: String,
    words: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PhraseList {
    #[allow(dead_code)] // Read by the tests.
    source: String,
    words: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Family {
    reason: String,
    tier: Tier,
    #[allow(dead_code)] // Read by the tests.
    source: String,
    words: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
enum Tier {
    /// Words that tell why.
    Cause,
    /// Words that tell only the state of a delivery, read when no cause is found.
    State,
}

/// `class.subject.detail` with `*` for any class or detail.
#[derive(Debug, Clone, Copy)]
struct StatusPattern {
    class: Option<u8>,
    subject: u16,
    detail: Option<u16>,
}

/// Why `rules/smtp.toml` (or a test's rules) cannot be loaded.
#[derive(Debug, thiserror::Error)]
enum RulesError {
    #[error(transparent)]
    Toml(#[from] toml::de::Error),
    #[error("bad status pattern '{0}'")]
    StatusPattern(String),
    #[error("bad reply code '{0}'")]
    ReplyCode(String),
    #[error(transparent)]
    Reason(#[from] crate::reason::UnknownReason),
    #[error(transparent)]
    Phrases(#[from] aho_corasick::BuildError),
}

impl StatusPattern {
    fn parse(code: &str) -> Result<Self, RulesError> {
        let bad = || RulesError::StatusPattern(code.to_owned());
        let mut parts = code.split('.');
        let mut next = || parts.next().ok_or_else(bad);
        let class = match next()? {
            "*" => None,
            c => Some(
                c.parse()
                    .ok()
                    .filter(|c| matches!(c, 4 | 5))
                    .ok_or_else(bad)?,
            ),
        };
        let subject = next()?.parse().map_err(|_| bad())?;
        let detail = match next()? {
            "*" => None,
            d => Some(d.parse().map_err(|_| bad())?),
        };
        Ok(Self {
            class,
            subject,
            detail,
        })
    }

    fn matches(self, s: EnhancedStatus) -> bool {
        self.class.is_none_or(|c| c == s.class())
            && self.subject == s.subject()
            && self.detail.is_none_or(|d| d == s.detail())
    }
}

/// The rules, loaded into lookup tables and automata.
struct Rules {
    status: Vec<(StatusPattern, Reason, Weight)>,
    reply: Vec<(u16, u16, Reason)>,
    /// One automaton of every family's phrases; `family_of[pattern]` is its family's rank.
    phrases: AhoCorasick,
    family_of: Vec<usize>,
    family_reason: Vec<Reason>,
    definite: Vec<(Option<StatusPattern>, AhoCorasick)>,
    delay: AhoCorasick,
    heading: AhoCorasick,
    /// "Recipient address rejected: Access denied": Postfix's access-map refusal (see [`reason`]).
    access_denied: AhoCorasick,
}

fn automaton<I, P>(phrases: I) -> Result<AhoCorasick, RulesError>
where
    I: IntoIterator<Item = P>,
    P: AsRef<[u8]>,
{
    Ok(AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(phrases)?)
}

impl Rules {
    fn load(toml_text: &str) -> Result<Self, RulesError> {
        let file: RulesFile = toml::from_str(toml_text)?;
        let reason = |name: &str| name.parse::<Reason>().map_err(RulesError::from);
        let status = file
            .status
            .iter()
            .map(|r| Ok((StatusPattern::parse(&r.code)?, reason(&r.reason)?, r.weight)))
            .collect::<Result<_, RulesError>>()?;
        let reply = file
            .reply
            .iter()
            .map(|r| {
                let bad = || RulesError::ReplyCode(r.code.clone());
                let (low, high) = r.code.split_once('-').unwrap_or((&r.code, &r.code));
                let low: u16 = low.parse().map_err(|_| bad())?;
                let high: u16 = high.parse().map_err(|_| bad())?;
                Ok((low, high, reason(&r.reason)?))
            })
            .collect::<Result<_, RulesError>>()?;
        let mut families: Vec<&Family> = file.phrases.iter().collect();
        // Stable: state families go last, each tier in the file's order.
        families.sort_by_key(|f| f.tier);
        let mut family_of = Vec::new();
        let mut words = Vec::new();
        let mut family_reason = Vec::new();
        for (rank, family) in families.iter().enumerate() {
            family_reason.push(reason(&family.reason)?);
            for word in &family.words {
                family_of.push(rank);
                words.push(word.as_str());
            }
        }
        let definite = file
            .definite
            .iter()
            .map(|d| {
                let status = d.status.as_deref().map(StatusPattern::parse).transpose()?;
                Ok((status, automaton(&d.words)?))
            })
            .collect::<Result<_, RulesError>>()?;
        Ok(Rules {
            status,
            reply,
            phrases: automaton(words)?,
            family_of,
            family_reason,
            definite,
            delay: automaton(file.delay.iter().flat_map(|h| &h.words))?,
            heading: automaton(file.heading.iter().flat_map(|h| &h.words))?,
            access_denied: automaton(["recipient address rejected: access denied"])?,
        })
    }

    fn over_text(&self, status: EnhancedStatus) -> Option<Reason> {
        self.status_with(status, Weight::OverText)
    }

    fn alone(&self, status: EnhancedStatus) -> Option<Reason> {
        self.status_with(status, Weight::Alone)
    }

    fn status_with(&self, status: EnhancedStatus, weight: Weight) -> Option<Reason> {
        self.status
            .iter()
            .find(|(pattern, _, w)| *w == weight && pattern.matches(status))
            .map(|(_, reason, _)| *reason)
    }

    fn reply(&self, code: u16) -> Option<Reason> {
        self.reply
            .iter()
            .find(|(low, high, _)| (*low..=*high).contains(&code))
            .map(|(_, _, reason)| *reason)
    }

    /// The reason of the first family, in rank order, with a phrase in `plain`; a notice
    /// that counts its tries ("failed after 5 attempts") tells only that the queue gave up.
    fn phrase_reason(&self, plain: &str) -> Option<Reason> {
        self.phrases
            .find_overlapping_iter(plain)
            .map(|m| self.family_of[m.pattern().as_usize()])
            .min()
            .map(|rank| self.family_reason[rank])
            .or_else(|| counts_attempts(plain).then_some(Reason::Expired))
    }

    fn definite(&self, plain: &str, status: Option<EnhancedStatus>) -> bool {
        self.definite.iter().any(|(only, words)| {
            only.is_none_or(|p| status.is_some_and(|s| p.matches(s))) && words.is_match(plain)
        })
    }
}

fn counts_attempts(plain: &str) -> bool {
    plain
        .match_indices(" attempts")
        .any(|(start, _)| plain[..start].ends_with(|c: char| c.is_ascii_digit()))
}

fn rules() -> &'static Rules {
    static RULES: LazyLock<Rules> = LazyLock::new(|| {
        Rules::load(RULES_TOML).unwrap_or_else(|e| panic!("rules/smtp.toml is invalid: {e}"))
    });
    &RULES
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> RulesFile {
        toml::from_str(RULES_TOML).unwrap()
    }

    #[test]
    fn the_rules_load_and_every_entry_cites_its_source() {
        let file = file();
        Rules::load(RULES_TOML).unwrap();
        let sources = file
            .status
            .iter()
            .map(|r| &r.source)
            .chain(file.reply.iter().map(|r| &r.source))
            .chain(file.definite.iter().map(|r| &r.source))
            .chain(file.delay.iter().map(|r| &r.source))
            .chain(file.heading.iter().map(|r| &r.source))
            .chain(file.phrases.iter().map(|r| &r.source));
        for source in sources {
            assert!(
                source.trim().len() >= 8,
                "an entry without a source: {source:?}"
            );
        }
    }

    /// Every phrase in the order the automaton ranks it, with its reason.
    fn ranked() -> Vec<(String, String)> {
        let mut families = file().phrases;
        families.sort_by_key(|f| f.tier);
        families
            .iter()
            .flat_map(|f| f.words.iter().map(|w| (w.clone(), f.reason.clone())))
            .collect()
    }

    #[test]
    fn no_phrase_is_shadowed_by_an_earlier_shorter_one() {
        let phrases = ranked();
        let mut shadowed = Vec::new();
        for (i, (later, reason)) in phrases.iter().enumerate() {
            for (earlier, earlier_reason) in &phrases[..i] {
                if later.to_lowercase().contains(&earlier.to_lowercase()) {
                    shadowed.push(format!(
                        "{later:?} ({reason}) never wins: {earlier:?} ({earlier_reason}) comes first"
                    ));
                }
            }
        }
        assert!(shadowed.is_empty(), "{}", shadowed.join("\n"));
    }

    #[test]
    fn no_phrase_is_listed_twice() {
        let mut seen = std::collections::HashMap::new();
        let mut twice = Vec::new();
        for (phrase, reason) in ranked() {
            if let Some(first) = seen.insert(phrase.to_lowercase(), reason.clone()) {
                twice.push(format!("{phrase:?} under {first} and {reason}"));
            }
        }
        assert!(twice.is_empty(), "{}", twice.join("\n"));
    }

    #[test]
    fn non_ascii_phrases_are_written_in_lower_case() {
        for (phrase, _) in ranked() {
            assert!(
                phrase.is_ascii() || phrase == phrase.to_lowercase(),
                "{phrase:?}"
            );
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let bad = [
            (
                "[[status]]\ncode = \"9.1.1\"\nreason = \"userunknown\"\nweight = \"alone\"\nsource = \"x\"\n",
                "bad status pattern",
            ),
            (
                "[[status]]\ncode = \"*.1.1\"\nreason = \"nosuch\"\nweight = \"alone\"\nsource = \"x\"\n",
                "unknown reason",
            ),
        ];
        for (toml_text, expected) in bad {
            let full = format!(
                "{toml_text}[[reply]]\ncode = \"550\"\nreason = \"undefined\"\nsource = \"x\"\n\
                 [[definite]]\nsource = \"x\"\nwords = []\n[[delay]]\nsource = \"x\"\nwords = []\n[[heading]]\nsource = \"x\"\nwords = []\n\
                 [[phrases]]\nreason = \"spamdetected\"\ntier = \"cause\"\nsource = \"x\"\nwords = []\n"
            );
            let error = Rules::load(&full).err().expect("refused");
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    fn live(reply: &str) -> Verdict {
        let reply: crate::SmtpReply = reply.parse().unwrap();
        let texts = [reply.text()];
        let evidence = Evidence {
            reply_code: Some(reply.code()),
            status: reply.enhanced(),
            texts: &texts,
            facts: Facts::default(),
        };
        interpret(&evidence, Seen::Live(None))
    }

    fn quoted(reply: &str, command: Option<Command>) -> Verdict {
        let reply: crate::SmtpReply = reply.parse().unwrap();
        let whole = reply.to_string();
        let texts = [whole.as_str()];
        let evidence = Evidence {
            reply_code: Some(reply.code()),
            status: reply.enhanced(),
            texts: &texts,
            facts: Facts::default(),
        };
        interpret(&evidence, Seen::Quoted(command))
    }

    #[test]
    fn rule_l1_only_a_live_reply_is_a_delivery() {
        assert_eq!(
            live("250 2.0.0 Ok: queued as 4Xk").reason,
            Reason::Delivered
        );
        assert_ne!(quoted("250 2.0.0 Ok", None).reason, Reason::Delivered);
    }

    #[test]
    fn rule_l2_an_unknown_user_is_believed_live_and_doubted_quoted_after_data() {
        let reply = "550 Unknown user";
        assert_eq!(live(reply).reason, Reason::UserUnknown);
        assert!(live(reply).hard);
        assert_eq!(
            quoted(reply, Some(Command::Rcpt)).reason,
            Reason::UserUnknown
        );
        assert_eq!(quoted(reply, None).reason, Reason::Filtered);
        assert_eq!(quoted(reply, Some(Command::Data)).reason, Reason::Filtered);
        assert_eq!(
            interpret(
                &Evidence {
                    reply_code: Some(550),
                    texts: &["Unknown user"],
                    ..Evidence::default()
                },
                Seen::Live(Some(Command::Data))
            )
            .reason,
            Reason::Filtered
        );
    }

    #[test]
    fn rule_l3_a_live_transient_reply_is_never_hard_but_a_final_report_is() {
        let reply = "450 4.1.1 <a@b.example>: Recipient address rejected: User unknown";
        assert_eq!(live(reply).reason, Reason::UserUnknown);
        assert!(!live(reply).hard);
        assert_eq!(live(reply).retry, Again::Yes);
        assert!(quoted(reply, Some(Command::Rcpt)).hard);
    }

    #[test]
    fn the_issues_examples_read_the_same_live_and_quoted() {
        for (reply, reason, hard) in [
            (
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
                Reason::UserUnknown,
                true,
            ),
            (
                "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
                Reason::Blocked,
                false,
            ),
        ] {
            let (l, q) = (live(reply), quoted(reply, None));
            assert_eq!((l.reason, l.hard), (reason, hard), "live {reply}");
            assert_eq!((q.reason, q.hard), (reason, hard), "quoted {reply}");
        }
    }

    #[test]
    fn rule_l4_an_access_denied_under_a_policy_code_is_a_policy_live_and_the_address_quoted() {
        let reply = "554 5.7.1 <a@b.example>: Recipient address rejected: Access denied";
        assert_eq!(live(reply).reason, Reason::PolicyViolation);
        assert!(!live(reply).hard);
        let at_rcpt = quoted(reply, Some(Command::Rcpt));
        assert_eq!((at_rcpt.reason, at_rcpt.hard), (Reason::UserUnknown, true));
    }

    #[test]
    fn rule_l5_words_no_rule_reads_are_on_hold_in_a_report_and_undefined_live() {
        let texts = ["550 5.1.4 Destination mailbox address ambiguous"];
        let evidence = |said| Evidence {
            reply_code: Some(550),
            status: "5.1.4".parse().ok(),
            texts: &texts,
            facts: Facts {
                said,
                ..Facts::default()
            },
        };
        assert_eq!(
            interpret(&evidence(true), Seen::Quoted(None)).reason,
            Reason::OnHold
        );
        assert_eq!(
            interpret(&evidence(false), Seen::Live(None)).reason,
            Reason::Undefined
        );
    }

    #[test]
    fn a_delay_warning_is_told_by_its_words_and_condemns_no_address() {
        assert!(says_delayed(
            "**  THIS IS A WARNING MESSAGE ONLY  **\n**  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **"
        ));
        assert!(says_delayed("Delivery Status Notification (Delay)"));
        assert!(!says_delayed("Delivery Status Notification (Failure)"));
        let evidence = Evidence {
            reply_code: Some(550),
            status: "5.1.1".parse().ok(),
            texts: &["User unknown"],
            facts: Facts {
                delayed: true,
                ..Facts::default()
            },
        };
        let verdict = interpret(&evidence, Seen::Notice(None));
        assert_eq!((verdict.hard, verdict.retry), (false, Again::Yes));
    }

    #[test]
    fn retry_hints_are_read_from_the_words() {
        assert_eq!(
            live("450 4.7.1 Please try again in 30 seconds").hint,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_hint("retry in 5 minutes"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(retry_hint("try again later"), None);
    }
}
