//! Mailtrail's domain model: pure types and rules, no IO and no async runtime.
//!
//! - [`address`]: email addresses, parsed and normalised (docs/emails.md).
//! - [`lead`]: Permission to Email and the roles of API keys and users.
//! - [`event`]: the append-only facts recorded about an email.
//! - [`stage`]: the stage, Status and reason derived from those facts (docs/emails.md).
//! - [`milestone`]: every stage an email ever reached, for the batch report (docs/web-ui.md).
//! - [`reason`]: the failure reasons vocabulary shared with the bounce classifier.
//! - [`failure`]: each reason in words: category, a plain sentence, what happens next.
//! - [`interpret`]: the one interpreter of SMTP evidence, live or quoted, from `rules/smtp.toml`.
//! - [`classify`]: what a live reply means for an email's queue and address (docs/emails.md).
//! - [`reply`]: SMTP replies with their enhanced status codes (RFC 3463).
//! - [`token`]: signed tokens tying bounces, replies, opens and clicks to their email.
//! - [`merge`]: merge fields in subjects and bodies.
//! - [`base_url`]: the public base URL of an account's tracking links.
//! - [`retry`]: when a soft-bounced email is tried again, or given up (docs/emails.md).
//! - [`causes`]: an error and its causes as one line of text.

pub mod address;
pub mod base_url;
pub mod causes;
pub mod classify;
pub mod event;
pub mod failure;
pub mod interpret;
pub mod lead;
pub mod merge;
pub mod milestone;
pub mod reason;
pub mod reply;
pub mod retry;
pub mod stage;
pub mod token;

pub use address::{AddressError, EmailAddress};
pub use event::{Event, EventKind};
pub use lead::{Permission, Role};
pub use milestone::{Milestone, Milestones};
pub use reason::Reason;
pub use reply::{EnhancedStatus, ReplyError, SmtpReply, StatusError};
pub use retry::{Retry, RetryPolicy};
pub use stage::{Derived, Stage};
