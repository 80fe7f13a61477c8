//! A private Postfix as the recipient's mail server: the real SMTP server with its real
//! replies, on a free loopback port, accepting mail for one domain and a few users whose
//! mailboxes (maildirs) tests can read back. Unknown users are refused at RCPT time and
//! messages over 20 000 bytes at the end of DATA, with the codes and texts Postfix itself
//! chooses. Stopped, with all its processes, when dropped.
//!
//! In relay mode ([`Postfix::start_relay`]) it is instead a server that accepts mail with 250
//! and only then passes it on to the next hop: when that hop refuses, Postfix writes its own
//! delivery status notification and mails it to the envelope sender, which is how a real
//! asynchronous bounce comes back to Mailtrail.
//!
//! As a smarthost ([`Postfix::start_smarthost`]) it is a relay that, like an email provider's
//! submission service, relays only for a client that logged in (SASL AUTH PLAIN or LOGIN,
//! offered only after STARTTLS).
//!
//! As a relay client ([`Postfix::start_relay_client`]) it is a server's own Postfix that sends
//! everything to a `relayhost` with SASL client credentials over mandatory TLS, as an
//! application server configured to send through an email provider; mail enters through its
//! own `sendmail` ([`Postfix::sendmail`]), as a cron job or a PHP `mail()` would hand it over.
//!
//! The instance lives entirely in a temp dir (`postfix -c DIR`): the system's `/etc/postfix`
//! is never read or written, and nothing binds port 25. Postfix must be started as root.

use std::ffi::CString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Postfix refuses (at the end of DATA) a message whose queue file would exceed this.
pub const MESSAGE_SIZE_LIMIT: usize = 20_000;

const POSTFIX: &str = "/usr/sbin/postfix";
const SASLPASSWD: &str = "/usr/sbin/saslpasswd2";
const SENDMAIL: &str = "/usr/sbin/sendmail";

pub struct Postfix {
    pub port: u16,
    pub domain: String,
    /// A smarthost's second listener, TLS from the first byte (as on port 465).
    implicit_tls_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// What the instance does with the mail it accepts for its domain.
enum Mode<'a> {
    /// Delivers it into these users' maildirs; other recipients are refused at RCPT.
    Mailboxes(&'a [&'a str]),
    /// Relays it to `onward`, and sends mail for `bounce_domain` (its own DSNs) to `bounces_to`.
    Relay {
        onward: &'a str,
        bounce_domain: &'a str,
        bounces_to: &'a str,
        /// The one account (user, password) a client must log in as, if any.
        login: Option<(&'a str, &'a str)>,
    },
    /// Sends all mail to `relayhost` (`host:port`), logged in as `login` over TLS.
    Client {
        relayhost: &'a str,
        login: (&'a str, &'a str),
    },
}

/// The transport(5) next hop for `host:port` on IPv4: brackets turn off the MX lookup.
fn next_hop(address: &str) -> String {
    let parsed: std::net::SocketAddrV4 = address
        .parse()
        .unwrap_or_else(|e| panic!("{address:?} is not an IPv4 host:port: {e}"));
    format!("smtp:[{}]:{}", parsed.ip(), parsed.port())
}

/// The uid and gid of a system account.
fn account(name: &str) -> (u32, u32) {
    let c_name = CString::new(name).expect("an account name without NUL");
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); it is only read after
    // getpwnam_r has filled it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer refers to live memory of the size given; the reentrant variant
    // is used because tests start servers from several threads at once.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    assert!(
        rc == 0 && !found.is_null(),
        "no `{name}` account: install Postfix with scripts/install-test-deps"
    );
    (entry.pw_uid, entry.pw_gid)
}

fn chown(path: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Runs a setup tool (saslpasswd2) with `input` on its stdin, failing with its
/// output when it fails.
fn tool(command: &mut Command, input: &str) {
    let name = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e} (scripts/install-test-deps)"));
    let mut stdin = child.stdin.take().expect("a piped stdin");
    stdin
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("write to {name}: {e}"));
    drop(stdin);
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {name}: {e}"));
    assert!(
        output.status.success(),
        "{name} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Writes a configuration file dated a minute ago: Postfix re-reads a file modified within
/// the last second every 300 ms until it "settles down", which made each start take seconds.
fn write(path: &Path, text: &str) {
    let fail = |e: std::io::Error| panic!("write {}: {e}", path.display());
    std::fs::write(path, text).unwrap_or_else(fail);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(SystemTime::now() - Duration::from_secs(60)))
        .unwrap_or_else(fail);
}

impl Postfix {
    /// Starts Postfix as the mail server of `domain`, with a mailbox for each of `users`
    /// (local parts).
    pub fn start(domain: &str, users: &[&str]) -> Self {
        Self::launch(crate::free_port(), domain, Mode::Mailboxes(users))
    }

    /// Starts Postfix as a relay for `domain`: it accepts any recipient there with 250, then
    /// delivers to `onward` (an IPv4 `host:port`, such as an smtp-sink that refuses). The
    /// DSN it writes when that fails goes to the envelope sender; mail for `bounces_to.0`
    /// (the sender's bounce domain) is delivered to `bounces_to.1` (`host:port`, Mailtrail's
    /// inbound listener). Its queue is retried every second, so a DSN, even after a soft
    /// failure, leaves within seconds.
    pub fn start_relay(domain: &str, onward: &str, bounces_to: (&str, &str)) -> Self {
        Self::start_relay_on(crate::free_port(), domain, onward, bounces_to)
    }

    /// [`Postfix::start_relay`] on `port`, for a sender that must be told where the relay
    /// listens before the relay can be told where the sender's bounces go.
    pub fn start_relay_on(port: u16, domain: &str, onward: &str, bounces_to: (&str, &str)) -> Self {
        Self::launch_relay(port, domain, onward, bounces_to, None)
    }

    /// Starts Postfix as a smarthost: a relay as [`Postfix::start_relay`] that accepts mail
    /// only from a client logged in as `login` (user, password). It offers STARTTLS with a
    /// self-signed certificate (for `mail.DOMAIN`, so a client must not verify it), and AUTH
    /// PLAIN and LOGIN only after STARTTLS, as Postfix's `smtpd_tls_auth_only` advises. It
    /// also listens with TLS from the first byte ([`Postfix::implicit_tls_address`]).
    pub fn start_smarthost(
        domain: &str,
        onward: &str,
        bounces_to: (&str, &str),
        login: (&str, &str),
    ) -> Self {
        Self::launch_relay(crate::free_port(), domain, onward, bounces_to, Some(login))
    }

    /// Starts Postfix as a relay client: every message handed to [`Postfix::sendmail`] goes to
    /// `relayhost` (an IPv4 `host:port`, no MX lookup), which it must reach with STARTTLS
    /// (`smtp_tls_security_level = encrypt`, which encrypts without verifying the certificate)
    /// and log in to as `login` (user, password) with SASL PLAIN or LOGIN, never anonymously.
    /// Deferred mail is retried every second. Its own [`MESSAGE_SIZE_LIMIT`] applies: a
    /// larger message is bounced by this instance, never relayed.
    pub fn start_relay_client(relayhost: &str, login: (&str, &str)) -> Self {
        Self::launch(
            crate::free_port(),
            "client.test",
            Mode::Client { relayhost, login },
        )
    }

    fn launch_relay(
        port: u16,
        domain: &str,
        onward: &str,
        (bounce_domain, bounces_to): (&str, &str),
        login: Option<(&str, &str)>,
    ) -> Self {
        Self::launch(
            port,
            domain,
            Mode::Relay {
                onward,
                bounce_domain,
                bounces_to,
                login,
            },
        )
    }

    fn launch(port: u16, domain: &str, mode: Mode) -> Self {
        assert!(
            Path::new(POSTFIX).exists(),
            "{POSTFIX} not found: install it with scripts/install-test-deps (Debian package \
             `postfix`, preseeded to 'No configuration')"
        );
        assert!(
            crate::is_root(),
            "a private Postfix can only be started as root (its master runs as root and hands \
             the queue to the `postfix` account)"
        );
        let domain = domain.to_ascii_lowercase();
        let dir = tempfile::Builder::new()
            .prefix("postfix-")
            .tempdir()
            .expect("a temp dir");
        // Postfix's daemons run as `postfix` and its delivery agent as `nobody`; both must
        // be able to pass through the temp dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod the temp dir");
        let implicit_tls_port =
            matches!(mode, Mode::Relay { login: Some(_), .. }).then(crate::free_port);
        let postfix = Postfix {
            port,
            domain,
            implicit_tls_port,
            dir,
        };
        postfix.configure(&mode);
        postfix.run(&["start"]);
        postfix.wait_until_listening();
        postfix
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn configure(&self, mode: &Mode) {
        let config = self.path("config");
        let queue = self.path("queue");
        let data = self.path("data");
        let log = self.path("log");
        mkdir(&config, 0o755);
        // Postfix wants the queue directory itself owned by root; `postfix start` creates
        // the subdirectories inside it and gives them to `postfix` (`postdrop` for the
        // public ones), as `postfix check` expects.
        mkdir(&queue, 0o755);
        mkdir(&data, 0o700);
        chown(&data, account("postfix"));
        mkdir(&log, 0o755);

        let domain = &self.domain;
        let (mode_settings, mode_services) = match mode {
            Mode::Mailboxes(users) => self.mailboxes(users),
            Mode::Relay {
                onward,
                bounce_domain,
                bounces_to,
                login,
            } => self.relay(onward, bounce_domain, bounces_to, *login),
            Mode::Client { relayhost, login } => self.client(relayhost, *login),
        };
        write(
            &config.join("main.cf"),
            &format!(
                "compatibility_level = 3.6\n\
                 queue_directory = {queue}\n\
                 data_directory = {data}\n\
                 maillog_file = {log}/maillog\n\
                 maillog_file_prefixes = {log}\n\
                 myhostname = mail.{domain}\n\
                 inet_interfaces = 127.0.0.1\n\
                 inet_protocols = ipv4\n\
                 # No local domain, so no aliases or passwd lookups: they only log errors here.\n\
                 mydestination =\n\
                 alias_maps =\n\
                 alias_database =\n\
                 local_recipient_maps =\n\
                 smtpd_reject_unlisted_recipient = yes\n\
                 smtpd_peername_lookup = no\n\
                 message_size_limit = {MESSAGE_SIZE_LIMIT}\n\
                 {mode_settings}",
                queue = queue.display(),
                data = data.display(),
                log = log.display(),
            ),
        );
        // chroot is off everywhere (the fifth column): a chrooted daemon would need copies
        // of /etc files inside the queue directory.
        let port = self.port;
        let implicit_tls = self.implicit_tls_port.map_or(String::new(), |port| {
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes \
                 -o smtpd_tls_security_level=encrypt\n"
            )
        });
        write(
            &config.join("master.cf"),
            &format!(
                "127.0.0.1:{port} inet n - n - - smtpd\n\
                 cleanup unix n - n - 0 cleanup\n\
                 qmgr unix n - n 300 1 qmgr\n\
                 rewrite unix - - n - - trivial-rewrite\n\
                 bounce unix - - n - 0 bounce\n\
                 defer unix - - n - 0 bounce\n\
                 trace unix - - n - 0 bounce\n\
                 proxymap unix - - n - - proxymap\n\
                 anvil unix - - n - 1 anvil\n\
                 error unix - - n - - error\n\
                 retry unix - - n - - error\n\
                 postlog unix-dgram n - n - 1 postlogd\n\
                 {implicit_tls}\
                 {mode_services}"
            ),
        );
    }

    /// main.cf lines and master.cf services for maildirs of `users`.
    fn mailboxes(&self, users: &[&str]) -> (String, String) {
        let config = self.path("config");
        let mailboxes = self.path("mailboxes");
        mkdir(&mailboxes, 0o700);
        let owner = account("nobody");
        chown(&mailboxes, owner);

        let domain = &self.domain;
        let mut map = String::new();
        for user in users {
            assert!(
                !user.is_empty() && !user.contains(|c: char| c.is_whitespace() || c == '@'),
                "{user:?} is not a local part"
            );
            // The trailing slash asks for a maildir: one file per message.
            writeln!(map, "{user}@{domain} {domain}/{user}/").expect("a String takes text");
        }
        // texthash: the map is read as plain text, so no postmap step at start.
        write(&config.join("mailboxes"), &map);

        let (uid, gid) = owner;
        let settings = format!(
            "# A recipient's MX: mail for its own domain only, whoever connects.\n\
             smtpd_relay_restrictions = reject_unauth_destination\n\
             virtual_mailbox_domains = {domain}\n\
             virtual_mailbox_base = {mailboxes}\n\
             virtual_mailbox_maps = texthash:{c}/mailboxes\n\
             virtual_uid_maps = static:{uid}\n\
             virtual_gid_maps = static:{gid}\n",
            mailboxes = mailboxes.display(),
            c = config.display(),
        );
        (settings, "virtual unix - n n - - virtual\n".into())
    }

    /// main.cf lines and master.cf services for relaying to `onward` and sending mail for
    /// `bounce_domain` to `bounces_to`, for any client or only one logged in as `login`.
    fn relay(
        &self,
        onward: &str,
        bounce_domain: &str,
        bounces_to: &str,
        login: Option<(&str, &str)>,
    ) -> (String, String) {
        let config = self.path("config");
        let domain = &self.domain;
        let bounce_domain = bounce_domain.to_ascii_lowercase();
        assert_ne!(
            *domain, bounce_domain,
            "the relayed domain and the bounce domain need different next hops"
        );
        // Explicit next hops, so no DNS is ever asked; the bounce domain needs no relay
        // permission because only Postfix's own DSNs (written locally) are sent there.
        write(
            &config.join("transport"),
            &format!(
                "{domain} {}\n{bounce_domain} {}\n",
                next_hop(onward),
                next_hop(bounces_to)
            ),
        );
        let mut settings = format!(
            "# Any recipient at the relayed domain is accepted; the next hop decides.\n\
             relay_domains = {domain}\n\
             relay_recipient_maps =\n\
             transport_maps = texthash:{c}/transport\n\
             # Retry every second instead of minutes, so deferred mail and its DSN move on\n\
             # while a test waits; and give up soon, so nothing lingers.\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             maximal_queue_lifetime = 30s\n\
             bounce_queue_lifetime = 30s\n\
             smtp_connect_timeout = 5s\n\
             # Services a stock master.cf has and this one leaves out: the per-domain flush\n\
             # log (kept for relay domains by default) and the SMTP connection cache.\n\
             fast_flush_domains =\n\
             smtp_connection_cache_on_demand = no\n",
            c = config.display(),
        );
        let mut services = String::from("smtp unix - - n - - smtp\n");
        match login {
            None => settings.push_str("smtpd_relay_restrictions = reject_unauth_destination\n"),
            Some((user, password)) => {
                settings.push_str(&self.login_required(user, password));
                // The TLS random pool: without it smtpd finds "no entropy for TLS key
                // generation" and turns STARTTLS off.
                services.push_str("tlsmgr unix - - n 1000? 1 tlsmgr\n");
            }
        }
        (settings, services)
    }

    /// main.cf lines and master.cf services for sending everything to `relayhost` as `login`.
    fn client(&self, relayhost: &str, (user, password): (&str, &str)) -> (String, String) {
        let config = self.path("config");
        let next_hop = next_hop(relayhost);
        // `smtp:[ip]:port` as a transport; relayhost and the password map's key are `[ip]:port`.
        let relayhost = next_hop.trim_start_matches("smtp:");
        assert!(
            !user.contains(char::is_whitespace) && !password.contains(['\n', '\r']),
            "{user:?} / the password cannot be written to a Postfix map line"
        );
        // The map is read by the smtp client as root before it drops privileges, so it may
        // stay private to root, as Postfix's own documentation asks of sasl_passwd.
        let passwords = config.join("sasl_passwd");
        write(&passwords, &format!("{relayhost} {user}:{password}\n"));
        std::fs::set_permissions(&passwords, std::fs::Permissions::from_mode(0o600))
            .expect("chmod the password map");
        let settings = format!(
            "# An application server's Postfix: everything to the provider, logged in, over TLS.\n\
             relayhost = {relayhost}\n\
             smtp_sasl_auth_enable = yes\n\
             smtp_sasl_password_maps = texthash:{passwords}\n\
             smtp_sasl_security_options = noanonymous\n\
             smtp_tls_security_level = encrypt\n\
             # Logs each TLS session, so a test can tell the login was encrypted.\n\
             smtp_tls_loglevel = 1\n\
             smtpd_relay_restrictions = reject_unauth_destination\n\
             queue_run_delay = 1s\n\
             minimal_backoff_time = 1s\n\
             maximal_backoff_time = 2s\n\
             maximal_queue_lifetime = 60s\n\
             bounce_queue_lifetime = 60s\n\
             smtp_connect_timeout = 5s\n\
             smtp_connection_cache_on_demand = no\n",
            passwords = passwords.display(),
        );
        // pickup takes what sendmail's postdrop writes into the maildrop; tlsmgr seeds TLS.
        let services = "pickup unix n - n 60 1 pickup\n\
                        smtp unix - - n - - smtp\n\
                        tlsmgr unix - - n 1000? 1 tlsmgr\n";
        (settings, services.into())
    }

    /// Hands `message` (a whole RFC 5322 message) to this instance's own `sendmail`
    /// (`sendmail -C DIR -f SENDER -i -- RECIPIENTS`), which queues it through `postdrop`,
    /// as a program on the server would. Fails with sendmail's output when it refuses.
    pub fn sendmail(&self, sender: &str, recipients: &[&str], message: &[u8]) {
        let mut child = Command::new(SENDMAIL)
            .arg("-C")
            .arg(self.path("config"))
            .args(["-f", sender, "-i", "--"])
            .args(recipients)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SENDMAIL}: {e}"));
        let mut stdin = child.stdin.take().expect("a piped stdin");
        stdin
            .write_all(message)
            .unwrap_or_else(|e| panic!("write to sendmail: {e}"));
        drop(stdin);
        let output = child.wait_with_output().expect("wait for sendmail");
        assert!(
            output.status.success(),
            "sendmail failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// main.cf lines for STARTTLS and for AUTH as `user` with `password`, required to relay.
    fn login_required(&self, user: &str, password: &str) -> String {
        assert!(
            Path::new(SASLPASSWD).exists(),
            "{SASLPASSWD} not found: install it with scripts/install-test-deps (Debian packages \
             `sasl2-bin` and `libsasl2-modules`)"
        );
        let hostname = format!("mail.{}", self.domain);
        let tls = self.path("tls");
        mkdir(&tls, 0o700);
        // smtpd reads the certificate and key as root, before it drops privileges.
        let (certificate, key) = crate::self_signed_certificate(&tls, &hostname);

        // Cyrus SASL reads smtpd.conf (`smtpd_sasl_path` is `smtpd`) from `sasl` in the
        // config directory: Debian's Postfix looks only there, whatever
        // `cyrus_sasl_config_path` says. It opens the sasldb on each AUTH, as `postfix`:
        // the file is readable by that group, and owned by root like everything else in the
        // config directory (else `postfix start` warns).
        let sasl = self.path("config").join("sasl");
        mkdir(&sasl, 0o755);
        let sasldb = sasl.join("sasldb2");
        write(
            &sasl.join("smtpd.conf"),
            &format!(
                "pwcheck_method: auxprop\n\
                 auxprop_plugin: sasldb\n\
                 mech_list: PLAIN LOGIN\n\
                 sasldb_path: {}\n",
                sasldb.display()
            ),
        );
        // The account's realm is the one smtpd names as its own (`smtpd_sasl_local_domain`).
        tool(
            Command::new(SASLPASSWD)
                .args(["-c", "-p", "-u", &hostname, "-f"])
                .arg(&sasldb)
                .arg(user),
            password,
        );
        let (_, postfix_group) = account("postfix");
        chown(&sasldb, (0, postfix_group));
        std::fs::set_permissions(&sasldb, std::fs::Permissions::from_mode(0o640))
            .expect("chmod the sasldb");

        format!(
            "# Mail for the relayed domain only, and only from a client that logged in.\n\
             smtpd_relay_restrictions = reject_unauth_destination, permit_sasl_authenticated, \
             reject\n\
             smtpd_tls_security_level = may\n\
             smtpd_tls_cert_file = {certificate}\n\
             smtpd_tls_key_file = {key}\n\
             # No AUTH in EHLO before STARTTLS, so credentials never cross in the clear.\n\
             smtpd_tls_auth_only = yes\n\
             smtpd_sasl_auth_enable = yes\n\
             smtpd_sasl_type = cyrus\n\
             cyrus_sasl_config_path = {sasl}\n\
             smtpd_sasl_local_domain = {hostname}\n",
            certificate = certificate.display(),
            key = key.display(),
            sasl = sasl.display(),
        )
    }

    /// Runs `postfix -c DIR COMMAND`, failing with Postfix's log when it fails.
    fn run(&self, command: &[&str]) {
        let output = Command::new(POSTFIX)
            .arg("-c")
            .arg(self.path("config"))
            .args(command)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {POSTFIX}: {e}"));
        assert!(
            output.status.success(),
            "postfix {command:?} failed: {}{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in std::iter::once(self.port).chain(self.implicit_tls_port) {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "postfix did not listen on {port}:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where a smarthost takes TLS from the first byte (no STARTTLS), as on port 465.
    pub fn implicit_tls_address(&self) -> String {
        let port = self
            .implicit_tls_port
            .expect("only a smarthost (Postfix::start_smarthost) listens with implicit TLS");
        format!("127.0.0.1:{port}")
    }

    /// The messages delivered to `user`'s mailbox so far, oldest first.
    pub fn delivered(&self, user: &str) -> Vec<String> {
        let maildir = self.path("mailboxes").join(&self.domain).join(user);
        let mut files: Vec<(SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(maildir.join(sub)).into_iter().flatten())
            .flatten()
            .filter_map(|entry| Some((entry.metadata().ok()?.modified().ok()?, entry.path())))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|(_, file)| std::fs::read(file).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect()
    }

    /// Postfix's own log (`maillog_file`), to explain a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log/maillog")).unwrap_or_default()
    }

    fn master_pid(&self) -> Option<libc::pid_t> {
        std::fs::read_to_string(self.path("queue/pid/master.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Whether a live (not zombie) process is still in process group `group`. The master leads
/// its own group and signals its children but does not wait for them, so this, not the
/// master's exit, says when Postfix is gone.
fn group_alive(group: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // After the command name, which may itself hold spaces and parentheses:
        // "STATE PPID PGRP …".
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2].parse() == Ok(group)
    })
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let Some(master) = self.master_pid() else {
            return;
        };
        // SIGTERM to the master, as `postfix stop` does, without its one-second polling.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(master, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_alive(master) {
            if Instant::now() > deadline {
                // SAFETY: as above; the negative pid names the master's process group.
                unsafe { libc::kill(-master, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
