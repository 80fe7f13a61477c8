//! Inbound mail (docs/inbound.md): Mailtrail receives mail over SMTP for its own bounce, reply
//! and feedback-loop addresses, and nothing else — it is never an open relay.
//!
//! - [`config`]: the `[inbound]` settings and which recipients are Mailtrail's;
//! - [`session`]: one SMTP conversation, generic over its stream so tests feed it bytes; the
//!   same session, with AUTH and any recipient, serves authenticated message submission;
//! - [`server`]: the listeners (inbound and submission): connection limits, TLS, shutdown;
//! - [`tls`]: the certificate STARTTLS offers;
//! - [`process`]: classifies stored messages, matches them to emails, applies their effects.
//!
//! A message is stored raw (and on disk) before the 250 that ends its DATA; processing it is
//! a separate, retried step, so a crash between the two loses nothing.

pub mod config;
pub mod process;
pub mod server;
pub mod session;
pub mod tls;

pub use config::InboundConfig;
