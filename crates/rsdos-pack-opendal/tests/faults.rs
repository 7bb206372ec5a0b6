//! Fault tests of a Container whose packs are in object storage: the server stops in the
//! middle of an upload, of reads and of a repack; afterwards every object reads back
//! byte-identical and validate is clean. And a server that is unreachable from the start gives
//! a clear error naming the service and bucket.
//!
//! How the server is stopped:
//! - **S3 (moto)**: moto keeps its state in memory, so killing it would lose every bucket and
//!   with them the packs uploaded before the fault, which says nothing about our store. The
//!   store therefore talks to the shared moto (from `.test-servers/env`) through a TCP proxy
//!   (tests/common/proxy.rs), and "the server stops" means the proxy cuts every open connection
//!   and closes its port (connects are refused); "restarts" means it listens again.
//! - **Azure Blob (Azurite)**: really stopped. Each test starts a private Azurite
//!   (tests/common/azurite.rs) on a free port with its state in a folder of its own, SIGKILLs
//!   it in the middle of the operation and restarts it on the same port and state. Azurite
//!   saves its metadata every 5 s and on a clean stop, so a SIGKILL would also lose writes it
//!   acknowledged in the last seconds (real Azure does not); each test stops and starts it
//!   cleanly once after setting up, and the faulty operation acknowledges no write before the
//!   kill. The store reaches Azurite through the same proxy, which only counts bytes: it
//!   triggers the kill after exactly N bytes, so that the kill lands mid-transfer whatever the
//!   speed of the machine, and then closes its port too.
//!
//! Stores use small retries and timeouts (`retries=1`), so every failure returns within
//! seconds; operations that could hang run under a generous guard that fails the test instead
//! of hanging it.
//!
//! Built only with the `remote-tests` feature; needs `scripts/test-servers.sh start` (moto's
//! address and the installed Azurite). These tests never skip: without the servers they fail,
//! saying why.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rsdos::{
    CompressMode, Container, InitOptions, NoProgress, PackOptions, RepackOptions, ValidateOptions,
};
use rsdos_core::{PackStore, RemoteMirror};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::{Rng, random_bytes};

#[path = "common/azurite.rs"]
mod azurite;
#[path = "common/proxy.rs"]
mod proxy;

use azurite::Azurite;
use proxy::{Direction, FaultProxy, Hook};

/// The bucket (S3) and container (Azure) the packs go to.
const BUCKET: &str = "rsdos-test";
/// Store options of every test: one retry, timeouts of a few seconds.
const OPTIONS: &str = "retries=1&timeout_secs=10&io_timeout_secs=10";
/// Packs of the tests: 32 objects of [`OBJECT`] bytes fill one.
const PACK_TARGET: u64 = 1 << 20;
const OBJECT: usize = 32 * 1024;
/// Longest an operation on a stopped or hanging server may take before the test calls it a
/// hang: many times what the options above allow (a timeout, one backoff, a timeout).
const HANG_LIMIT: Duration = Duration::from_secs(90);

fn env_file() -> PathBuf {
    std::env::var_os("RSDOS_TEST_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-servers/env"))
}

fn settings() -> HashMap<String, String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the fault tests need the test servers: cannot read {} ({e}); run \
             `scripts/test-servers.sh start` first",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The error and its sources, for assertion messages.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Runs `f` on another thread and returns its result, failing the test if it takes longer
/// than [`HANG_LIMIT`] (a hang) or panics.
fn without_hang<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(HANG_LIMIT) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not return within {HANG_LIMIT:?} despite the store's timeouts")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// A prefix no other test (or earlier run against the same server) uses.
fn unique_prefix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "fault{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Service {
    S3,
    Azure,
}

/// The server of one test, behind a [`FaultProxy`].
struct Server {
    service: Service,
    proxy: FaultProxy,
    azurite: Option<Arc<Azurite>>,
    /// Stops armed so far.
    armed: AtomicUsize,
    /// Credentials, passed as extra options (never in messages).
    creds: Vec<(String, String)>,
}

impl Server {
    fn new(service: Service) -> Server {
        match service {
            Service::S3 => Server::s3(),
            Service::Azure => Server::azure(),
        }
    }

    /// The shared moto of `.test-servers/env`, behind a proxy of this test.
    fn s3() -> Server {
        let all = settings();
        let var = |key: &str| {
            all.get(key).cloned().unwrap_or_else(|| {
                panic!(
                    "{key} is missing from {}; run `scripts/test-servers.sh start`",
                    env_file().display()
                )
            })
        };
        let url = var("RSDOS_TEST_S3_URL");
        let endpoint = url
            .split("endpoint=http://")
            .nth(1)
            .and_then(|e| e.split(['&', '/']).next())
            .unwrap_or_else(|| panic!("no endpoint in {url}"));
        let addr: SocketAddr = endpoint
            .parse()
            .unwrap_or_else(|e| panic!("bad S3 endpoint {endpoint}: {e}"));
        if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            panic!(
                "the S3 test server (moto) at {addr} is not reachable ({e}); run \
                 `scripts/test-servers.sh start`"
            );
        }
        Server {
            service: Service::S3,
            proxy: FaultProxy::start(addr),
            azurite: None,
            armed: AtomicUsize::new(0),
            creds: vec![
                ("access_key_id".into(), var("RSDOS_TEST_S3_ACCESS_KEY_ID")),
                (
                    "secret_access_key".into(),
                    var("RSDOS_TEST_S3_SECRET_ACCESS_KEY"),
                ),
            ],
        }
    }

    /// A private Azurite with the container [`BUCKET`], behind a proxy of this test.
    fn azure() -> Server {
        let az = Arc::new(Azurite::start());
        az.create_container(BUCKET);
        Server {
            service: Service::Azure,
            proxy: FaultProxy::start(az.addr()),
            azurite: Some(az),
            armed: AtomicUsize::new(0),
            creds: vec![
                ("account_name".into(), azurite::ACCOUNT.into()),
                ("account_key".into(), azurite::ACCOUNT_KEY.into()),
            ],
        }
    }

    fn scheme(&self) -> &'static str {
        match self.service {
            Service::S3 => "s3",
            Service::Azure => "azblob",
        }
    }

    /// The store URL for `prefix` through the proxy (or at `port` when given).
    fn url(&self, prefix: &str, options: &str, port: Option<u16>) -> String {
        let port = port.unwrap_or(self.proxy.port());
        let endpoint = match self.service {
            Service::S3 => format!("endpoint=http://127.0.0.1:{port}&region=us-east-1"),
            Service::Azure => format!("endpoint=http://127.0.0.1:{port}/{}", azurite::ACCOUNT),
        };
        format!("{}://{BUCKET}/{prefix}?{endpoint}&{options}", self.scheme())
    }

    fn open_store(
        &self,
        prefix: &str,
        staging: &Path,
        options: &str,
        port: Option<u16>,
    ) -> OpendalPackStore {
        let creds = self.creds.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        OpendalPackStore::open_with(&self.url(prefix, options, port), staging, creds)
            .unwrap_or_else(|e| panic!("open the {:?} store: {e}", self.service))
    }

    /// The full name of one key of the store, as errors name it.
    fn key_url(&self, prefix: &str, key: &str) -> String {
        format!("{}://{BUCKET}/{prefix}/{key}", self.scheme())
    }

    /// Makes everything acknowledged so far survive a SIGKILL (Azurite: a clean restart).
    fn persist(&self) {
        if let Some(az) = &self.azurite {
            az.persist();
        }
    }

    /// Stops the server once `bytes` more bytes have gone in `direction`.
    fn stop_after(&self, direction: Direction, bytes: u64) {
        let hook: Option<Hook> = self.azurite.as_ref().map(|az| {
            let az = Arc::clone(az);
            Box::new(move || az.kill()) as Hook
        });
        self.armed.fetch_add(1, Ordering::SeqCst);
        self.proxy.stop_after(direction, bytes, hook);
    }

    /// Stops the server now.
    fn stop(&self) {
        if let Some(az) = &self.azurite {
            az.kill();
        }
        self.proxy.stop();
    }

    /// Starts it again (same port, same state).
    fn restart(&self) {
        if let Some(az) = &self.azurite {
            az.restart();
        }
        self.proxy.restart();
    }

    /// Makes the server hang: it accepts connections and never answers.
    fn hang(&self) {
        match &self.azurite {
            Some(az) => az.freeze(),
            None => self.proxy.hang(),
        }
    }

    fn unhang(&self) {
        match &self.azurite {
            Some(az) => az.thaw(),
            None => self.proxy.restart(),
        }
    }

    /// Asserts that an armed stop has fired: the fault happened where the test meant it to.
    fn assert_fired(&self, what: &str) {
        assert_eq!(
            self.proxy.fired(),
            self.armed.load(Ordering::SeqCst),
            "the server was to stop during {what}, but the operation ended before"
        );
    }

    /// Asserts that `msg` (an error) names the service, the bucket and this test's prefix,
    /// and shows no secret.
    fn assert_names_remote(&self, prefix: &str, msg: &str) {
        let base = format!("{}://{BUCKET}/{prefix}", self.scheme());
        assert!(msg.contains(&base), "the error does not name {base}: {msg}");
        for (key, secret) in &self.creds {
            // (moto's secret "test" is too short to look for; Azurite's key is not.)
            if key.contains("key") && secret.len() > 8 {
                assert!(!msg.contains(secret.as_str()), "{key} shown in {msg}");
            }
        }
    }
}

/// A container whose packs are in the server's store, and the objects it should hold.
struct Fixture {
    server: Server,
    _dir: tempfile::TempDir,
    root: PathBuf,
    prefix: String,
    c: Container,
    store: Arc<OpendalPackStore>,
    expected: BTreeMap<String, Vec<u8>>,
    rng: Rng,
}

impl Fixture {
    fn new(service: Service) -> Fixture {
        let server = Server::new(service);
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("c");
        drop(
            Container::init(
                &root,
                &InitOptions::default().with_pack_size_target(PACK_TARGET),
            )
            .expect("init"),
        );
        let prefix = unique_prefix();
        let (c, store) = open_container(&server, &root, &prefix, OPTIONS);
        Fixture {
            server,
            _dir: dir,
            root,
            prefix,
            c,
            store,
            expected: BTreeMap::new(),
            rng: Rng::new(6),
        }
    }

    /// Another instance of the container (another process would open it so) with other store
    /// options.
    fn reopen(&self, options: &str) -> (Container, Arc<OpendalPackStore>) {
        open_container(&self.server, &self.root, &self.prefix, options)
    }

    /// Adds `n` incompressible loose objects of `size` bytes.
    fn add_loose(&mut self, n: usize, size: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                let data = random_bytes(&mut self.rng, size);
                let key = self.c.add_object(&data).expect("add loose");
                self.expected.insert(key.clone(), data);
                key
            })
            .collect()
    }

    fn pack(&self) -> rsdos_core::Result<()> {
        pack(&self.c)
    }

    fn key_url(&self, key: &str) -> String {
        self.server.key_url(&self.prefix, key)
    }

    fn pack_of(&self, key: &str) -> Option<u64> {
        self.c
            .index()
            .get(key)
            .expect("index lookup")
            .map(|l| l.pack_id)
    }

    /// Uploads a pack whose upload failed, as the user (or the next pack or repack) does.
    fn retry_upload(&self, pack_id: u64) {
        let report = self
            .c
            .upload_pending()
            .unwrap_or_else(|e| panic!("upload_pending: {}", chain(&e)));
        assert!(
            report.uploaded.contains(&pack_id) && report.failed.is_empty(),
            "upload_pending did not upload pack {pack_id}: {report:?}"
        );
        assert!(
            !self.store.staged().expect("staged").contains(&pack_id),
            "pack {pack_id} is still staged after its upload"
        );
    }

    /// Every object reads back byte-identical, one by one and in bulk, here and from another
    /// instance.
    fn assert_all_readable(&self) {
        for (k, d) in &self.expected {
            let got = self
                .c
                .get_object(k)
                .unwrap_or_else(|e| panic!("read {k}: {}", chain(&e)));
            assert!(&got == d, "{k} reads back different bytes");
            // A packed object also from its pack itself, so that a loose copy (which reads
            // fall back to) cannot hide a lost pack. Objects are stored uncompressed.
            if let Some(loc) = self.c.index().get(k).expect("index lookup") {
                let mut raw = vec![0u8; usize::try_from(loc.length).expect("length")];
                self.c
                    .packs()
                    .read_at(loc.pack_id, loc.offset, &mut raw)
                    .unwrap_or_else(|e| {
                        panic!("read {k} from pack {}: {}", loc.pack_id, chain(&e))
                    });
                assert!(&raw == d, "{k} differs in pack {}", loc.pack_id);
            }
        }
        let (other, _) = self.reopen(OPTIONS);
        let got = other
            .get_many(self.expected.keys(), false)
            .unwrap_or_else(|e| panic!("get_many: {}", chain(&e)));
        assert_eq!(got.len(), self.expected.len());
        for (k, d) in &self.expected {
            assert!(
                got.get(k).and_then(|v| v.as_ref()) == Some(d),
                "{k} reads back different bytes through get_many"
            );
        }
    }

    fn assert_valid(&self) {
        let report = self
            .c
            .validate(&ValidateOptions::default().with_threads(2), &NoProgress)
            .unwrap_or_else(|e| panic!("validate: {}", chain(&e)));
        assert!(report.is_valid(), "{report:?}");
    }

    /// Every pack in the remote has rows in the index (none is orphaned).
    fn assert_no_orphans(&self) {
        let referenced = self.c.index().pack_ids().expect("pack ids");
        let uploaded = self.store.uploaded().expect("list the remote");
        for id in &uploaded {
            assert!(
                referenced.contains(id),
                "pack {id} is in the remote ({}) but no row points to it (index: {referenced:?})",
                self.key_url(&id.to_string())
            );
        }
    }
}

/// Packs the loose objects, uncompressed (so sizes are known in advance), deleting the loose
/// copies of each pack after its commit: a packed object then exists only in its pack, so a
/// pack lost by the server could not hide behind a loose copy that `open_object` falls back to.
fn pack(c: &Container) -> rsdos_core::Result<()> {
    c.pack_loose(
        &PackOptions::default()
            .with_compress(CompressMode::No)
            .with_clean_loose_per_pack(true)
            .with_threads(1),
        &NoProgress,
    )
    .map(|_| ())
}

fn open_container(
    server: &Server,
    root: &Path,
    prefix: &str,
    options: &str,
) -> (Container, Arc<OpendalPackStore>) {
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx")).expect("index"));
    let store = Arc::new(server.open_store(prefix, &root.join("packs"), options, None));
    let packs: Arc<dyn PackStore> = Arc::clone(&store) as Arc<dyn PackStore>;
    let mirror: Arc<dyn RemoteMirror> = Arc::clone(&store) as Arc<dyn RemoteMirror>;
    // As `Container::open` opens a container initialised with `--packs URL`: failed uploads
    // wait in the staging folder and are retried.
    let c =
        Container::open_with_remote_storage(root, index, packs, mirror).expect("open container");
    (c, store)
}

/// (a) The server stops in the middle of the upload of a sealed pack.
fn stop_during_upload(service: Service) {
    let mut f = Fixture::new(service);
    // Pack 0 (32 objects) is uploaded, pack 1 is staged with 8.
    f.add_loose(40, OBJECT);
    f.pack().expect("pack");
    assert_eq!(f.store.uploaded().expect("uploaded"), vec![0]);
    assert_eq!(f.store.staged().expect("staged"), vec![1]);
    f.server.persist();

    // 30 more: pack 1 fills up (24 of them), is sealed and uploaded (1 MiB in one request);
    // the server stops when a quarter of it has gone.
    f.add_loose(30, OBJECT);
    f.server.stop_after(Direction::Upstream, 256 * 1024);
    let result = without_hang("pack_loose on a server that stops", {
        let c = f.c.clone();
        move || pack(&c)
    });
    f.server.assert_fired("the upload of pack 1");
    // A failed upload does not fail the write (the pack waits for upload); the writer's next
    // remote request (listing the packs for the next one) may, naming the remote.
    if let Err(e) = &result {
        f.server.assert_names_remote(&f.prefix, &chain(e));
    }
    let status =
        f.c.remote_status()
            .expect("remote status")
            .expect("a remote container");
    let msg = status.last_error.clone().unwrap_or_else(|| {
        panic!("the failed upload is not recorded ({status:?}; pack_loose: {result:?})")
    });
    assert!(
        msg.contains(&f.key_url("1")),
        "the recorded error does not name the pack being uploaded ({}): {msg}",
        f.key_url("1")
    );
    f.server.assert_names_remote(&f.prefix, &msg);
    assert!(
        status.staged.contains(&1) && status.pending_upload.contains(&1),
        "the staged pack must stay, waiting for upload: {status:?}"
    );

    // Meanwhile every object that is local (staged pack 1, loose) reads back; those of the
    // uploaded pack 0 give a clear error.
    let mut local = 0;
    let mut remote = None;
    for (k, d) in &f.expected {
        if f.pack_of(k) == Some(0) {
            remote = Some(k.clone());
            continue;
        }
        let got =
            f.c.get_object(k)
                .unwrap_or_else(|e| panic!("{k} is local but unreadable: {}", chain(&e)));
        assert!(&got == d, "{k} reads back different bytes");
        local += 1;
    }
    assert!(local >= 30, "only {local} local objects");
    let remote = remote.expect("an object of pack 0");
    let err = without_hang("a read from the stopped server", {
        let c = f.c.clone();
        move || c.get_object(&remote).map(|_| ())
    })
    .expect_err("a read of an uploaded pack must fail while the server is stopped");
    let msg = chain(&err);
    assert!(msg.contains(&f.key_url("0")), "{msg}");

    // After the restart the upload is retried; the last loose objects are packed.
    f.server.restart();
    f.retry_upload(1);
    f.pack().expect("pack after the restart");
    let status = f.c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    let uploaded = f.store.uploaded().expect("uploaded");
    assert!(
        uploaded.contains(&0) && uploaded.contains(&1),
        "{uploaded:?}"
    );
    assert_eq!(
        f.store.len(1).expect("len"),
        Some(32 * OBJECT as u64),
        "pack 1 is in the remote whole"
    );
    f.assert_all_readable();
    f.assert_valid();
    f.assert_no_orphans();
}

/// (b) The server stops in the middle of reads: one object, the stream of a large object,
/// and a bulk read; and it hangs during a read.
fn stop_during_reads(service: Service) {
    let mut f = Fixture::new(service);
    f.add_loose(40, OBJECT);
    let big = f.add_loose(1, 3 << 20).remove(0);
    f.pack().expect("pack");
    let uploaded = f.store.uploaded().expect("uploaded");
    let big_pack = f.pack_of(&big).expect("big object packed");
    assert!(
        uploaded.contains(&big_pack),
        "a pack past its target is sealed"
    );
    let small = f
        .expected
        .iter()
        .find(|(k, d)| d.len() == OBJECT && uploaded.contains(&f.pack_of(k).unwrap_or(u64::MAX)))
        .map(|(k, _)| k.clone())
        .expect("a small object in an uploaded pack");
    let small_pack = f.pack_of(&small).expect("packed");
    f.server.persist();

    // One object: the server stops after a quarter of its bytes have come.
    f.server
        .stop_after(Direction::Downstream, OBJECT as u64 / 4);
    let err = without_hang("get_object", {
        let (c, k) = (f.c.clone(), small.clone());
        move || c.get_object(&k).map(|_| ())
    })
    .expect_err("a read cut short must fail");
    f.server.assert_fired("the read of one object");
    let msg = chain(&err);
    assert!(msg.contains(&f.key_url(&small_pack.to_string())), "{msg}");
    f.server.assert_names_remote(&f.prefix, &msg);
    f.server.restart();

    // The stream of a large object: stopped after its first MiB.
    let mut reader = f.c.open_object(&big).expect("open the big object");
    let mut head = vec![0u8; 1 << 20];
    reader.read_exact(&mut head).expect("first MiB");
    assert!(head == f.expected[&big][..1 << 20]);
    f.server.stop();
    let err = without_hang("the rest of a stream", move || {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map(|_| rest.len())
    })
    .expect_err("a stream must fail when the server stops");
    let msg = chain(&err);
    assert!(msg.contains(&f.key_url(&big_pack.to_string())), "{msg}");
    f.server.restart();

    // A bulk read of everything, stopped after 200 KiB.
    f.server.stop_after(Direction::Downstream, 200 * 1024);
    let keys: Vec<String> = f.expected.keys().cloned().collect();
    let (failed, read_ok) = without_hang("read_many", {
        let c = f.c.clone();
        move || {
            let mut ok = 0;
            let items = match c.read_many(&keys, false) {
                Ok(items) => items,
                Err(e) => return (Some(chain(&e)), ok),
            };
            for item in items {
                let item = match item {
                    Ok(item) => item,
                    Err(e) => return (Some(chain(&e)), ok),
                };
                let Some(mut r) = item.reader else {
                    return (Some(format!("{} reported missing", item.hashkey)), ok);
                };
                if let Err(e) = r.read_all() {
                    return (Some(chain(&e)), ok);
                }
                ok += 1;
            }
            (None, ok)
        }
    });
    f.server.assert_fired("a bulk read");
    let msg = failed.unwrap_or_else(|| {
        panic!("read_many read all {read_ok} objects although the server stopped")
    });
    assert!(!msg.contains("reported missing"), "{msg}");
    f.server.assert_names_remote(&f.prefix, &msg);
    f.server.restart();

    // A server that hangs: the store's timeouts end the read (no retry here: each try of a
    // hanging server costs a whole timeout).
    let (hurried, _) = f.reopen("retries=0&timeout_secs=2&io_timeout_secs=2");
    f.server.hang();
    let result = without_hang("a read from a hanging server", {
        let k = small.clone();
        move || hurried.get_object(&k).map(|_| ())
    });
    f.server.unhang();
    let err = result.expect_err("a read from a hanging server must fail");
    let msg = chain(&err);
    f.server.assert_names_remote(&f.prefix, &msg);
    assert!(
        msg.to_lowercase().contains("timeout") || msg.contains("timed out"),
        "the error does not say that the server did not answer in time: {msg}"
    );

    // Back up: everything reads back, the large object also as a stream.
    let mut reader = f.c.open_object(&big).expect("open the big object");
    let mut all = Vec::new();
    reader.read_to_end(&mut all).expect("stream the big object");
    assert!(
        all == f.expected[&big],
        "the big object streams back different bytes"
    );
    f.assert_all_readable();
    f.assert_valid();
}

/// (c) The server stops in the middle of a repack: during the upload of the first new pack,
/// after the rows have switched to it and before the old pack is deleted.
fn stop_during_repack(service: Service) {
    let mut f = Fixture::new(service);
    // Packs 0, 1, 2 uploaded (32 objects each), pack 3 staged (4).
    f.add_loose(100, OBJECT);
    f.pack().expect("pack");
    assert_eq!(f.store.uploaded().expect("uploaded"), vec![0, 1, 2]);
    // Holes in packs 0 and 1: every other object deleted.
    let gone: Vec<String> = f
        .expected
        .keys()
        .filter(|k| matches!(f.pack_of(k), Some(0 | 1)))
        .step_by(2)
        .cloned()
        .collect();
    assert_eq!(
        f.c.delete(gone.iter()).expect("delete").len(),
        gone.len(),
        "every deleted object existed"
    );
    for k in &gone {
        f.expected.remove(k);
    }
    f.server.persist();

    // Pack 0 is copied to pack 4 (half of 1 MiB), whose upload the server stops a quarter
    // of a MiB in.
    f.server.stop_after(Direction::Upstream, 256 * 1024);
    let err = without_hang("repack on a server that stops", {
        let c = f.c.clone();
        move || c.repack(&RepackOptions::default(), &NoProgress).map(|_| ())
    })
    .expect_err("repack must fail when the server stops");
    f.server.assert_fired("the upload of the repacked pack");
    let msg = chain(&err);
    f.server.assert_names_remote(&f.prefix, &msg);
    // The failed upload itself is recorded (the repack went on and failed deleting pack 0).
    let status = f.c.remote_status().expect("status").expect("remote");
    let recorded = status.last_error.clone().unwrap_or_default();
    assert!(
        msg.contains(&f.key_url("4")) || recorded.contains(&f.key_url("4")),
        "neither the error ({msg}) nor the recorded one ({recorded}) names {}",
        f.key_url("4")
    );
    assert!(status.pending_upload.contains(&4), "{status:?}");

    // Meanwhile the objects of pack 0 read from the new, staged pack.
    for k in f.expected.keys() {
        if f.pack_of(k) == Some(4) {
            let got =
                f.c.get_object(k)
                    .unwrap_or_else(|e| panic!("{k} in the staged new pack: {}", chain(&e)));
            assert!(got == f.expected[k]);
        }
    }

    f.server.restart();
    f.assert_all_readable();
    f.assert_valid();
    for k in &gone {
        assert!(!f.c.has(k).expect("has"), "{k} was deleted");
    }

    // A second repack finishes the job: it uploads pack 4 first, and leaves no pack in the
    // remote without rows (the old pack 0, which the first one could not delete, goes).
    let report =
        f.c.repack(&RepackOptions::default(), &NoProgress)
            .unwrap_or_else(|e| panic!("repack after the restart: {}", chain(&e)));
    assert!(
        report.rewritten.iter().any(|(old, _)| *old == 1),
        "pack 1 (with holes) is rewritten: {report:?}"
    );
    f.assert_no_orphans();
    let uploaded = f.store.uploaded().expect("uploaded");
    assert!(
        !uploaded.contains(&0) && !uploaded.contains(&1),
        "{uploaded:?}"
    );
    assert!(uploaded.contains(&4), "{uploaded:?}");
    let status = f.c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    f.assert_all_readable();
    f.assert_valid();
    f.assert_no_orphans();
}

/// A server that is unreachable from the start: a clear error naming the service and bucket,
/// promptly, and nothing lost.
fn unreachable_from_the_start(service: Service) {
    let (scheme, creds): (&str, Vec<(&str, &str)>) = match service {
        Service::S3 => (
            "s3",
            vec![("access_key_id", "test"), ("secret_access_key", "test")],
        ),
        Service::Azure => (
            "azblob",
            vec![
                ("account_name", azurite::ACCOUNT),
                ("account_key", azurite::ACCOUNT_KEY),
            ],
        ),
    };
    // A port where nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let endpoint = match service {
        Service::S3 => format!("endpoint=http://127.0.0.1:{port}&region=us-east-1"),
        Service::Azure => format!("endpoint=http://127.0.0.1:{port}/{}", azurite::ACCOUNT),
    };
    let prefix = unique_prefix();
    let url = format!("{scheme}://{BUCKET}/{prefix}?{endpoint}&{OPTIONS}");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("c");
    drop(
        Container::init(
            &root,
            &InitOptions::default().with_pack_size_target(PACK_TARGET),
        )
        .expect("init"),
    );
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx")).expect("index"));
    let store = Arc::new(
        OpendalPackStore::open_with(&url, &root.join("packs"), creds.iter().copied())
            .expect("opening makes no request"),
    );
    let c = Container::open_with_remote_storage(
        &root,
        index,
        Arc::clone(&store) as Arc<dyn PackStore>,
        store as Arc<dyn RemoteMirror>,
    )
    .expect("open");
    let mut rng = Rng::new(7);
    let data: Vec<Vec<u8>> = (0..40).map(|_| random_bytes(&mut rng, OBJECT)).collect();
    let keys: Vec<String> = data
        .iter()
        .map(|d| c.add_object(d).expect("loose writes are local"))
        .collect();
    let err = without_hang("pack_loose on an unreachable server", {
        let c = c.clone();
        move || pack(&c)
    })
    .expect_err("packing to an unreachable server must fail");
    let msg = chain(&err);
    let base = format!("{scheme}://{BUCKET}/{prefix}");
    assert!(msg.contains(&base), "the error does not name {base}: {msg}");
    if service == Service::Azure {
        assert!(!msg.contains(azurite::ACCOUNT_KEY), "{msg}");
    }
    // Nothing lost: every object still reads (loose, or from the staged pack).
    for (k, d) in keys.iter().zip(&data) {
        assert!(&c.get_object(k).expect("read") == d);
    }
}

mod s3 {
    use super::*;

    #[test]
    fn server_stops_during_an_upload() {
        stop_during_upload(Service::S3);
    }

    #[test]
    fn server_stops_during_reads() {
        stop_during_reads(Service::S3);
    }

    #[test]
    fn server_stops_during_a_repack() {
        stop_during_repack(Service::S3);
    }

    #[test]
    fn unreachable_server_gives_a_clear_error() {
        unreachable_from_the_start(Service::S3);
    }
}

mod azblob {
    use super::*;

    #[test]
    fn server_is_killed_during_an_upload() {
        stop_during_upload(Service::Azure);
    }

    #[test]
    fn server_is_killed_during_reads() {
        stop_during_reads(Service::Azure);
    }

    #[test]
    fn server_is_killed_during_a_repack() {
        stop_during_repack(Service::Azure);
    }

    #[test]
    fn unreachable_server_gives_a_clear_error() {
        unreachable_from_the_start(Service::Azure);
    }
}
