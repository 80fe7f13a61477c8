//! Real peers for Mailtrail's tests, started on loopback and torn down when the test binary
//! exits.
//!
//! - [`postgres`]: a throwaway PostgreSQL server, one per test binary, a fresh database per
//!   test;
//! - [`smtp_sink`]: Postfix's `smtp-sink` as a recipient's server;
//! - [`postfix`]: a private Postfix as a recipient's server, with mailboxes and its real replies,
//!   as a relay or smarthost, or as a relay client fed by its own `sendmail`;
//! - [`dns`]: NSD serving MX records;
//! - [`self_signed_certificate`]: a certificate for a server under test that offers TLS.

pub mod dns;
pub mod postfix;
pub mod postgres;
pub mod smtp_sink;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A self-signed EC P-256 certificate for `name` and its key, written by `openssl` as
/// `cert.pem` and `key.pem` in `dir`. Clients of a server using it must not verify it.
pub fn self_signed_certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let output = Command::new("openssl")
        .args(["req", "-x509", "-nodes", "-days", "2"])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&certificate)
        .output()
        .expect("openssl is installed (scripts/install-test-deps)");
    assert!(
        output.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (certificate, key)
}
