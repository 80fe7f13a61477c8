//! The security suite: each attack an outsider can make on Mailtrail, replayed over real
//! sockets against the running binary (or its listeners on port 0), and what it must not
//! change. One module per attack surface.

#[path = "../common/mod.rs"]
mod common;
mod edges;
mod forged_reports;
mod injection;
mod login;
mod secrets;
mod smtp_edges;
mod webhooks;
