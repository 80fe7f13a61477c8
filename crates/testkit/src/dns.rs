//! NSD, a real authoritative DNS server, serving test zones on a free loopback port so MX
//! lookups go through real DNS. Stopped when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct Dns {
    child: Child,
    pub address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dns {
    /// Serves `zones`: (zone name, zone file body without `$ORIGIN`/SOA/NS, which are added).
    pub fn start(zones: &[(&str, &str)]) -> Self {
        Self::start_on(crate::free_port(), zones)
    }

    /// Stops this server and serves `zones` on the same address: a resolver that keeps asking
    /// it sees the answers change (a record's TTL, `name 1 IN A …`, says when).
    pub fn restart(&mut self, zones: &[(&str, &str)]) {
        let port = self.address.port();
        let _ = self.child.kill();
        let _ = self.child.wait();
        *self = Self::start_on(port, zones);
    }

    fn start_on(port: u16, zones: &[(&str, &str)]) -> Self {
        let nsd = "/usr/sbin/nsd";
        assert!(
            Path::new(nsd).exists(),
            "{nsd} not found: install it with scripts/install-test-deps (Debian package `nsd`)"
        );
        let dir = tempfile::Builder::new()
            .prefix("nsd-")
            .tempdir()
            .expect("a temp dir");
        let d = dir.path().display();
        let mut conf = format!(
            "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  \
             zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  \
             zonelistfile: \"{d}/zone.list\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\n\
             remote-control:\n  control-enable: no\n"
        );
        for (zone, body) in zones {
            let file = format!("{zone}.zone");
            let text = format!(
                "$ORIGIN {zone}.\n$TTL 60\n@ IN SOA ns.{zone}. admin.{zone}. 1 3600 600 86400 60\n@ IN NS ns.{zone}.\nns IN A 127.0.0.1\n{body}\n"
            );
            std::fs::write(dir.path().join(&file), text).expect("write the zone");
            conf.push_str(&format!("zone:\n  name: {zone}\n  zonefile: {file}\n"));
        }
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("write nsd.conf");
        let child = Command::new(nsd)
            .args(["-d", "-c"])
            .arg(&conf_path)
            .spawn()
            .expect("nsd starts");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let dns = Dns {
            child,
            address,
            _dir: dir,
        };
        dns.wait_until_answering(zones.first().map(|(zone, _)| *zone));
        dns
    }

    fn wait_until_answering(&self, zone: Option<&str>) {
        // NSD answers TCP once its zones are loaded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "nsd did not start on {}",
                self.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // A listening socket takes TCP connections before the server serves them, and
        // resolvers ask over UDP: wait for an answer there too, to a query for the zone's SOA.
        let Some(zone) = zone else { return };
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        let query = soa_query(zone);
        let mut answer = [0u8; 512];
        loop {
            let _ = socket.send_to(&query, self.address);
            // An answer to our id with the response bit set.
            if let Ok((n, _)) = socket.recv_from(&mut answer)
                && n >= 12
                && answer[..2] == query[..2]
                && answer[2] & 0x80 != 0
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nsd on {} does not answer over UDP",
                self.address
            );
        }
    }
}

/// A DNS query (RFC 1035 §4.1) for `zone`'s SOA record.
fn soa_query(zone: &str) -> Vec<u8> {
    // id 0x4d54, recursion desired, one question.
    let mut query = vec![0x4d, 0x54, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in zone.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    // The root, then QTYPE SOA (6), QCLASS IN (1).
    query.extend_from_slice(&[0, 0, 6, 0, 1]);
    query
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
