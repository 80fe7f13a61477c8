//! Real peers for Mailtrail's tests, started on loopback and torn down when the test binary
//! exits.
//!
//! - [`postgres`]: a throwaway PostgreSQL server, one per test binary, a fresh database per
//!   test;
//! - [`smtp_sink`]: Postfix's `smtp-sink` as a recipient's server;
//! - [`postfix`]: a private Postfix as a recipient's server, with mailboxes and its real replies;
//! - [`dns`]: NSD serving MX records.

pub mod dns;
pub mod postfix;
pub mod postgres;
pub mod smtp_sink;

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback has a free port")
}

/// Whether this process runs as root, where servers that refuse root (PostgreSQL) must be
/// started as `nobody` through `runuser`.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
