//! A private Azurite (Azure Blob emulator) that a fault test owns: started on a free port with
//! its state in a folder of its own, so that the test can SIGKILL it, restart it on the same
//! port and state, or freeze it (SIGSTOP), without disturbing the shared server of the other
//! tests. It is the Azurite that `scripts/test-servers.sh start` installs into
//! `.test-servers/azurite`, started with the same options.
//!
//! Azurite keeps its metadata in LokiJS databases that it saves to `--location` every 5 s and
//! when it stops cleanly, so a SIGKILL loses what it acknowledged in the last seconds, which
//! real Azure never does. [`Azurite::persist`] (a clean stop and start) therefore makes
//! everything acknowledged so far durable before a test kills it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Azurite's public, well-known development account (not a secret).
pub const ACCOUNT: &str = "devstoreaccount1";
/// The key of [`ACCOUNT`] (public, as in Azurite's documentation and scripts/test-servers.sh).
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A private Azurite process; dropping it kills the process (also when the test panics).
pub struct Azurite {
    port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("address").port()
}

impl Azurite {
    /// Starts Azurite on a free port of 127.0.0.1 with an empty state. Panics, saying why,
    /// if it is not installed or does not come up.
    pub fn start() -> Azurite {
        let az = Azurite {
            port: free_port(),
            dir: tempfile::tempdir().expect("tempdir"),
            child: Mutex::new(None),
        };
        std::fs::create_dir_all(az.location()).expect("azurite location");
        az.spawn();
        az
    }

    fn binary() -> PathBuf {
        repo_root().join(".test-servers/azurite/node_modules/.bin/azurite-blob")
    }

    fn location(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("azurite.log")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// The address Azurite listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn spawn(&self) {
        let bin = Self::binary();
        assert!(
            bin.exists(),
            "Azurite is not installed at {}: run `scripts/test-servers.sh start`, which \
             installs it",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("azurite log");
        let log2 = log.try_clone().expect("azurite log");
        let child = Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(self.location())
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start Azurite ({}): {e}", bin.display()));
        *self.lock() = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok() {
                return;
            }
            if let Some(child) = self.lock().as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "Azurite exited at start ({status}); its log:\n{}",
                    self.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not listen on {} within 60 s; its log:\n{}",
                self.addr(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and waits until the process is gone (its port is closed then).
    pub fn kill(&self) {
        if let Some(mut child) = self.lock().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and state.
    pub fn restart(&self) {
        assert!(self.lock().is_none(), "Azurite is still running");
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = self.lock().as_ref() {
            let ok = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(child.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill -{sig} {} failed", child.id());
        }
    }

    /// Freezes the process (SIGSTOP): connections are accepted by the kernel, never answered.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Lets a frozen process run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Stops it cleanly (SIGTERM: it saves its databases) and starts it again, so that
    /// everything it acknowledged so far survives a later SIGKILL.
    pub fn persist(&self) {
        self.signal("TERM");
        let mut child = self.lock().take().expect("Azurite is running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            // Azurite may keep running after it has closed (telemetry, timers): once its log
            // says so, its databases are saved.
            if self.log_text().contains("successfully closed") {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "Azurite did not stop within 30 s of SIGTERM; its log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.spawn();
    }

    /// Creates a blob container (a signed `PUT ?restype=container`, as test-servers.sh does).
    pub fn create_container(&self, name: &str) {
        let date = http_date(SystemTime::now());
        let version = "2021-08-06";
        let string_to_sign = format!(
            "PUT\n{}x-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container",
            "\n".repeat(11)
        );
        let key = base64_decode(ACCOUNT_KEY);
        let signature = base64_encode(&hmac_sha256(&key, string_to_sign.as_bytes()));
        let request = format!(
            "PUT /{ACCOUNT}/{name}?restype=container HTTP/1.1\r\nHost: {}\r\nx-ms-date: {date}\r\n\
             x-ms-version: {version}\r\nAuthorization: SharedKey {ACCOUNT}:{signature}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr()
        );
        let mut s = TcpStream::connect(self.addr()).expect("connect to Azurite");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s.write_all(request.as_bytes()).expect("send");
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        let status = response.split_whitespace().nth(1).unwrap_or("");
        assert!(
            status == "201" || status == "409",
            "creating container {name} in Azurite failed: {}",
            response.lines().next().unwrap_or("no response")
        );
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(mut child) = self.lock().take() {
            // SIGKILL also ends a stopped (SIGSTOP) process.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let u = rsdos_core::UtcTime::from_unix(secs);
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[((secs / 86_400) % 7) as usize],
        u.day,
        MONTHS[(u.month as usize).saturating_sub(1) % 12],
        u.year,
        u.hour,
        u.minute,
        u.second
    )
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = B64.iter().position(|&x| x == c).expect("base64 character") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn base64_and_hmac_known_answers() {
    assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(
        base64_decode(&base64_encode(&[0xff, 0, 1, 2])),
        [0xff, 0, 1, 2]
    );
    // RFC 4231, test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
