//! The PackStore behaviour suite, the upload tests and a Container against real servers on
//! 127.0.0.1: S3 (moto), Azure Blob (Azurite) and GCS (fake-gcs-server), started by `scripts/test-servers.sh start`, which
//! writes their settings to `.test-servers/env` (or the file named by
//! `RSDOS_TEST_SERVERS_ENV`).
//!
//! Built only with the `remote-tests` feature. These tests never skip: without the servers
//! every one of them fails, saying how to start them.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rsdos_core::{ErrorKind, PackStore};
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::pack_store_suite::PackStoreHarness;

mod common;

fn env_file() -> PathBuf {
    std::env::var_os("RSDOS_TEST_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-servers/env"))
}

fn settings() -> HashMap<String, String> {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the remote pack-store tests need the test servers: cannot read {} ({e}); \
             run `scripts/test-servers.sh start` first",
            path.display()
        )
    });
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One remote service from the settings file.
#[derive(Clone)]
struct Remote {
    name: &'static str,
    url: String,
    options: Vec<(String, String)>,
}

impl Remote {
    fn get(name: &'static str) -> Remote {
        let all = settings();
        let var = |suffix: &str| {
            let key = format!("RSDOS_TEST_{name}_{suffix}");
            all.get(&key).cloned().unwrap_or_else(|| {
                panic!(
                    "{key} is missing from {}; run `scripts/test-servers.sh start`",
                    env_file().display()
                )
            })
        };
        let url = var("URL");
        let options = match name {
            "S3" => vec![
                ("access_key_id".to_string(), var("ACCESS_KEY_ID")),
                ("secret_access_key".to_string(), var("SECRET_ACCESS_KEY")),
            ],
            "AZBLOB" => vec![
                ("account_name".to_string(), var("ACCOUNT_NAME")),
                ("account_key".to_string(), var("ACCOUNT_KEY")),
            ],
            // fake-gcs-server takes anonymous requests (allow_anonymous is in the URL).
            "GCS" => Vec::new(),
            other => panic!("unknown service {other}"),
        };
        let remote = Remote { name, url, options };
        remote.assert_reachable();
        remote
    }

    /// Fails loudly when nothing listens at the endpoint.
    fn assert_reachable(&self) {
        let endpoint = self
            .url
            .split("endpoint=")
            .nth(1)
            .and_then(|e| e.split('&').next())
            .unwrap_or_else(|| panic!("no endpoint in {}", self.url));
        let hostport = endpoint
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or(endpoint);
        let addr: std::net::SocketAddr = hostport
            .parse()
            .unwrap_or_else(|e| panic!("bad endpoint {endpoint}: {e}"));
        if let Err(e) =
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
        {
            panic!(
                "the {} test server at {endpoint} is not reachable ({e}); run \
                 `scripts/test-servers.sh start`",
                self.name
            );
        }
    }

    /// The service URL with a prefix of its own and extra query options.
    fn url_for(&self, prefix: &str, extra_query: &str) -> String {
        let (base, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let mut url = format!("{}/{prefix}?{query}", base.trim_end_matches('/'));
        if !extra_query.is_empty() {
            url.push('&');
            url.push_str(extra_query);
        }
        url
    }

    fn open(&self, prefix: &str, staging: &Path, extra_query: &str) -> OpendalPackStore {
        let opts = self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        OpendalPackStore::open_with(&self.url_for(prefix, extra_query), staging, opts)
            .unwrap_or_else(|e| panic!("open {} store: {e}", self.name))
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
        "t{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

struct Harness {
    remote: Remote,
    prefix: String,
    staging: tempfile::TempDir,
    store: Arc<dyn PackStore>,
}

impl Harness {
    fn new(name: &'static str) -> Harness {
        let remote = Remote::get(name);
        let prefix = unique_prefix();
        let staging = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(remote.open(&prefix, staging.path(), ""));
        Harness {
            remote,
            prefix,
            staging,
            store,
        }
    }
}

impl PackStoreHarness for Harness {
    fn store(&self) -> Arc<dyn PackStore> {
        Arc::clone(&self.store)
    }
    fn other(&self) -> Arc<dyn PackStore> {
        Arc::new(self.remote.open(&self.prefix, self.staging.path(), ""))
    }
}

fn write_pack(store: &dyn PackStore, id: u64, data: &[u8]) {
    let mut a = store.open_append(id).expect("open_append");
    a.write_all(data).expect("write");
    a.sync().expect("sync");
}

fn seal_and_read_back(name: &'static str) {
    let h = Harness::new(name);
    let s = h.store();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write_pack(s.as_ref(), 3, &data);
    s.seal(3, b"toc of 3").expect("seal");
    let other = h.other();
    assert_eq!(other.list().expect("list"), vec![3]);
    assert_eq!(other.len(3).expect("len"), Some(300_000));
    assert!(other.is_sealed(3).expect("is_sealed"));
    assert_eq!(
        other.sidecar(3).expect("sidecar").as_deref(),
        Some(&b"toc of 3"[..])
    );
    for (off, len) in [
        (0usize, 1usize),
        (17, 1000),
        (250_000, 50_000),
        (299_999, 1),
    ] {
        let mut buf = vec![0u8; len];
        other.read_at(3, off as u64, &mut buf).expect("ranged read");
        assert_eq!(buf, data[off..off + len], "{name} range {off}+{len}");
    }
    let mut buf = [0u8; 10];
    let err = other.read_at(3, 299_995, &mut buf).expect_err("past end");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let handle = other.open_pack(3).expect("open_pack");
    handle.read_at(100, &mut buf).expect("handle read");
    assert_eq!(&buf[..], &data[100..110]);
    // Maintenance locks an uploaded pack and deletes it.
    let lock = s.open_append(3).expect("lock");
    assert_eq!(lock.position(), 300_000);
    s.delete(3).expect("delete");
    drop(lock);
    assert!(other.list().expect("list").is_empty());
    assert!(!other.is_sealed(3).expect("is_sealed"));
}

fn multipart_upload(name: &'static str) {
    let remote = Remote::get(name);
    let staging = tempfile::tempdir().expect("tempdir");
    let prefix = unique_prefix();
    let store = remote.open(
        &prefix,
        staging.path(),
        &format!("single_put_max=1000&chunk_size={}", 5 << 20),
    );
    let data: Vec<u8> = (0..(11u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    write_pack(&store, 0, &data);
    store.seal(0, b"big").expect("multipart seal");
    assert!(store.staged().expect("staged").is_empty());
    assert_eq!(store.len(0).expect("len"), Some(data.len() as u64));
    let mut buf = vec![0u8; 4096];
    let off = (5 << 20) - 2000; // across the first part boundary
    store.read_at(0, off as u64, &mut buf).expect("read");
    assert_eq!(buf, data[off..off + 4096]);
}

fn unreachable_remote_keeps_staged_pack(name: &'static str) {
    let remote = Remote::get(name);
    let staging = tempfile::tempdir().expect("tempdir");
    let prefix = unique_prefix();
    let store = remote.open(&prefix, staging.path(), "");
    write_pack(&store, 0, b"precious bytes");
    // The same store settings but a port where nothing listens.
    let dead = Remote {
        url: remote.url.replace(
            remote
                .url
                .split("127.0.0.1:")
                .nth(1)
                .and_then(|p| p.split(['/', '&']).next())
                .expect("port"),
            "9",
        ),
        ..remote.clone()
    };
    let dead_store = dead.open(&prefix, staging.path(), "retries=1&timeout_secs=5");
    let err = dead_store.seal(0, b"toc").expect_err("unreachable");
    let msg = err.to_string();
    assert!(msg.contains(&format!("rsdos-test/{prefix}/0")), "{msg}");
    let shown = format!("{err:?} {err}");
    for (key, secret) in &remote.options {
        // (moto's secret "test" is too short to look for; Azurite's key is not.)
        if (key == "secret_access_key" || key == "account_key") && secret.len() > 8 {
            assert!(!shown.contains(secret.as_str()), "{key} shown in {shown}");
        }
    }
    assert_eq!(dead_store.staged().expect("staged"), vec![0]);
    let mut buf = [0u8; 8];
    dead_store.read_at(0, 0, &mut buf).expect("read staged");
    assert_eq!(&buf, b"precious");
    // The live store uploads it later.
    store.seal(0, b"toc").expect("seal when reachable");
    assert!(store.staged().expect("staged").is_empty());
    store.read_at(0, 9, &mut buf[..5]).expect("read uploaded");
    assert_eq!(&buf[..5], b"bytes");
}

fn container_on(name: &'static str) {
    let remote = Remote::get(name);
    let prefix = unique_prefix();
    common::container_scenario(&|staging| remote.open(&prefix, staging, ""));
}

mod s3 {
    use super::*;

    #[test]
    fn a_container_keeps_its_packs_here() {
        container_on("S3");
    }

    rsdos_testkit::pack_store_suite!(|| Harness::new("S3"));

    #[test]
    fn seal_uploads_and_reads_are_ranged() {
        seal_and_read_back("S3");
    }

    #[test]
    fn large_packs_use_multipart_upload() {
        multipart_upload("S3");
    }

    #[test]
    fn an_unreachable_server_keeps_the_staged_pack() {
        unreachable_remote_keeps_staged_pack("S3");
    }
}

mod azblob {
    use super::*;

    #[test]
    fn a_container_keeps_its_packs_here() {
        container_on("AZBLOB");
    }

    rsdos_testkit::pack_store_suite!(|| Harness::new("AZBLOB"));

    #[test]
    fn seal_uploads_and_reads_are_ranged() {
        seal_and_read_back("AZBLOB");
    }

    #[test]
    fn large_packs_use_multipart_upload() {
        multipart_upload("AZBLOB");
    }

    #[test]
    fn an_unreachable_server_keeps_the_staged_pack() {
        unreachable_remote_keeps_staged_pack("AZBLOB");
    }
}

mod gcs {
    use super::*;

    #[test]
    fn a_container_keeps_its_packs_here() {
        container_on("GCS");
    }

    rsdos_testkit::pack_store_suite!(|| Harness::new("GCS"));

    #[test]
    fn seal_uploads_and_reads_are_ranged() {
        seal_and_read_back("GCS");
    }

    /// GCS packs always go up in one request (fake-gcs-server has no XML multipart API).
    #[test]
    fn large_packs_use_one_request() {
        multipart_upload("GCS");
    }

    #[test]
    fn an_unreachable_server_keeps_the_staged_pack() {
        unreachable_remote_keeps_staged_pack("GCS");
    }
}
