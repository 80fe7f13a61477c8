//! Outbound delivery (PRODUCT.md §1–§3, §7): from an accepted submission to the recipient's
//! server, with every attempt recorded.
//!
//! - [`config`]: the `[outbound]` settings;
//! - [`submit`]: turns an API or CLI request into queued emails, refusing leads whose
//!   Permission to Email is No and dropping suppressed addresses;
//! - [`message`]: the MIME message of one email, with its tokens: built from a template, or
//!   a submitted message rewritten in place by [`mime`];
//! - [`dkim`]: DKIM signing per sending domain, and making the keys of registered domains;
//! - [`domains`]: the DNS records of a sending domain, and checking them by lookup;
//! - [`tracking`]: the unsubscribe link, open pixel and click redirects added at send time
//!   (`text_links` finds the URLs of a text part for it);
//! - [`forward`]: sends people's replies on to the email's sender;
//! - [`resolve`]: where an email for a domain goes: a route, the relay, or MX hosts;
//! - [`limits`]: per-destination sessions, rate and pause, shared by every node;
//! - [`session`]: one SMTP session delivering several emails to one destination;
//! - [`outcome`]: what a reply (or a failure to get one) does to an email;
//! - [`protection`]: pauses an account's sending when its bounce or complaint rate is too high;
//! - [`worker`]: claims due emails, runs sessions, records outcomes in batches.

pub mod config;
pub mod dkim;
pub mod domains;
pub mod forward;
pub mod limits;
pub mod message;
pub mod mime;
pub mod outcome;
pub mod protection;
pub mod resolve;
pub mod rotation;
pub mod session;
pub mod submit;
mod text_links;
pub mod tracking;
pub mod worker;

pub use config::OutboundConfig;
pub use worker::Outbound;
