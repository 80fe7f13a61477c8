//! Postfix's `smtp-sink` as the recipient's mail server: real SMTP on a free loopback port,
//! with its misbehaviour flags (`-r CMD` soft reject, `-f CMD` hard reject, `-Q CMD` 421 and
//! hang up, `-w SECS` slow DATA reply, …). Every accepted message is dumped to a file so
//! tests can count and read what arrived. Killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sink {
    child: Child,
    pub port: u16,
    dumps: tempfile::TempDir,
}

fn binary() -> &'static str {
    let path = "/usr/sbin/smtp-sink";
    assert!(
        Path::new(path).exists(),
        "{path} not found: install Postfix's test tools with scripts/install-test-deps \
         (Debian package `postfix`, preseeded to 'No configuration')"
    );
    path
}

impl Sink {
    /// Starts a sink on a free port with extra `smtp-sink` options.
    pub fn start(options: &[&str]) -> Self {
        Self::start_on(crate::free_port(), options)
    }

    /// Starts a sink on `port` (to replace one that was stopped).
    pub fn start_on(port: u16, options: &[&str]) -> Self {
        let dumps = tempfile::Builder::new()
            .prefix("sink-")
            .tempdir()
            .expect("a temp dir");
        // smtp-sink drops to `nobody`, which must be able to write the dumps.
        std::fs::set_permissions(
            dumps.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("chmod the dump folder");
        let template = format!("{}/%Y%m%d%H%M%S.", dumps.path().display());
        let child = Command::new(binary())
            .args(["-u", "nobody", "-d", &template])
            .args(options)
            .arg(format!("127.0.0.1:{port}"))
            .arg("256")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("smtp-sink starts");
        let sink = Sink { child, port, dumps };
        sink.wait_until_listening();
        sink
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dumps.path())
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read(f).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .collect()
    }

    /// Stops the sink now (its port is free again afterwards).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
