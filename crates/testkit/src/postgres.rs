//! A throwaway PostgreSQL server: `initdb` into a temporary folder and `pg_ctl` on a free
//! loopback port, from Debian's `postgresql` package. Started once per test binary on first
//! use and stopped when the process exits; each test gets its own database.
//!
//! Missing binaries are a test failure that says what to install, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

struct Server {
    bin: PathBuf,
    /// Kept so the folder lives as long as the server; removed at exit.
    dir: PathBuf,
    port: u16,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);
/// `createdb` calls are serialised: PostgreSQL copies `template1` and refuses two copies at
/// once ("source database is being accessed by other users").
static CREATEDB: Mutex<()> = Mutex::new(());

fn find_bin() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: \
             install them with `apt-get install postgresql` (the tests start their own server)"
        )
    })
}

/// Runs a PostgreSQL tool, as `nobody` when we are root (PostgreSQL refuses to run as root).
fn run(bin: &Path, tool: &str, args: &[&str]) -> Output {
    let program = bin.join(tool);
    let mut command = if crate::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(&program);
        c
    } else {
        Command::new(&program)
    };
    let output = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

extern "C" fn stop_at_exit() {
    if let Some(server) = SERVER.get() {
        let data = server.dir.join("data");
        let _ = Command::new(if crate::is_root() { "runuser" } else { "true" })
            .args(if crate::is_root() {
                vec!["-u", "nobody", "--"]
            } else {
                vec![]
            })
            .arg(server.bin.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "stop",
                "-m",
                "immediate",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&server.dir);
    }
}

fn start() -> Server {
    let server = init();
    // SAFETY: registering a plain extern "C" function with no captured state.
    unsafe { libc::atexit(stop_at_exit) };
    server
}

/// A new cluster in a temporary folder, running on a free loopback port.
fn init() -> Server {
    let bin = find_bin();
    let dir = tempfile::Builder::new()
        .prefix("mailtrail-pg-")
        .tempdir()
        .expect("a temporary folder")
        .keep();
    if crate::is_root() {
        // nobody must own the cluster and be able to reach it.
        let status = Command::new("chown")
            .args(["nobody", dir.to_str().expect("utf-8 temp path")])
            .status()
            .expect("chown");
        assert!(status.success(), "chown nobody {}", dir.display());
    }
    let data = dir.join("data");
    let data_s = data.to_str().expect("utf-8 temp path");
    run(
        &bin,
        "initdb",
        &[
            "-D",
            data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
    );
    let server = Server {
        bin,
        dir,
        port: crate::free_port(),
    };
    pg_start(&server);
    server
}

/// `pg_ctl start` on the server's folder and port, waiting until it accepts connections.
fn pg_start(server: &Server) {
    let data = server.dir.join("data");
    let options = format!(
        "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        server.port,
        server.dir.display()
    );
    let log = server.dir.join("postgres.log");
    run(
        &server.bin,
        "pg_ctl",
        &[
            "-D",
            data.to_str().expect("utf-8 temp path"),
            "-o",
            &options,
            "-l",
            log.to_str().unwrap_or_default(),
            "-w",
            "start",
        ],
    );
}

/// A new database on `server`; returns its URL.
fn create_database(server: &Server) -> String {
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::SeqCst)
    );
    let port = server.port.to_string();
    {
        let _one_at_a_time = CREATEDB.lock().unwrap_or_else(|e| e.into_inner());
        run(
            &server.bin,
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", &name],
        );
    }
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

/// A throwaway PostgreSQL server of one test's own, which the test may stop and start again
/// (on the same port, with the same data) to see what its clients do meanwhile. Stopped and
/// removed when dropped.
pub struct Restartable {
    server: Server,
}

impl Restartable {
    /// `initdb` and `pg_ctl start` on a free loopback port.
    pub fn start() -> Self {
        Restartable { server: init() }
    }

    /// A URL to a new, empty database on this server.
    pub fn fresh_database(&self) -> String {
        create_database(&self.server)
    }

    /// `pg_ctl stop -m fast`: open connections are cut (`57P01`), new ones refused, until
    /// [`Restartable::restart`].
    pub fn stop(&self) {
        let data = self.server.dir.join("data");
        run(
            &self.server.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 temp path"),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub fn restart(&self) {
        pg_start(&self.server);
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        let data = self.server.dir.join("data");
        let mut command = if crate::is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"])
                .arg(self.server.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.server.bin.join("pg_ctl"))
        };
        let _ = command
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "stop",
                "-m",
                "immediate",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.server.dir);
    }
}

/// A URL to a new, empty database on the shared throwaway server.
pub fn fresh_database() -> String {
    create_database(SERVER.get_or_init(start))
}
