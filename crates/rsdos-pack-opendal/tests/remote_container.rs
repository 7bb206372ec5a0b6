//! The container suite on S3 (moto), Azure Blob (Azurite) and GCS (fake-gcs-server) through the
//! configuration path users take: `InitOptions::with_packs_url` (the setting in
//! `rsdos-packs.json`), reopening with `Container::open_with`, and
//! `Container::clone_from_remote`, from the index snapshot and from the sidecars alone.
//! tests/remote.rs builds the store by hand instead.
//!
//! Credentials are given as options at each open (never through `rsdos-packs.json`, which must
//! not hold them). The servers are started by `scripts/test-servers.sh start`, which writes
//! their settings to `.test-servers/env` (or the file named by `RSDOS_TEST_SERVERS_ENV`).
//! Built only with the `remote-tests` feature; without the servers these tests fail, never
//! skip.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rsdos::{
    CloneOptions, CompressMode, Container, ErrorKind, InitOptions, NoProgress, OpenOptions,
    PACKS_SETTING_FILE, PackOptions, PackWriteOptions, REMOTE_CONFIG, REMOTE_INDEX,
    REMOTE_SNAPSHOT_INFO, RepackOptions, ValidateOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

fn env_file() -> PathBuf {
    std::env::var_os("RSDOS_TEST_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-servers/env"))
}

/// One service from the settings file: its URL (bucket, endpoint, region; no prefix) and the
/// credentials, which go to the container as options.
struct Remote {
    name: &'static str,
    url: String,
    credentials: Vec<(&'static str, String)>,
}

impl Remote {
    fn get(name: &'static str) -> Remote {
        let path = env_file();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the remote container tests need the test servers: cannot read {} ({e}); run \
                 `scripts/test-servers.sh start` first",
                path.display()
            )
        });
        let all: HashMap<&str, &str> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let var = |suffix: &str| {
            let key = format!("RSDOS_TEST_{name}_{suffix}");
            all.get(key.as_str())
                .map(|v| v.to_string())
                .unwrap_or_else(|| panic!("{key} is missing from {}", path.display()))
        };
        let credentials = match name {
            "S3" => vec![
                ("access_key_id", var("ACCESS_KEY_ID")),
                ("secret_access_key", var("SECRET_ACCESS_KEY")),
            ],
            "AZBLOB" => vec![
                ("account_name", var("ACCOUNT_NAME")),
                ("account_key", var("ACCOUNT_KEY")),
            ],
            // fake-gcs-server takes anonymous requests (allow_anonymous is in the URL).
            "GCS" => Vec::new(),
            other => panic!("unknown service {other}"),
        };
        Remote {
            name,
            url: var("URL"),
            credentials,
        }
    }

    /// The service URL with a prefix no other test (or earlier run) uses.
    fn fresh_url(&self) -> String {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let prefix = format!(
            "container-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let (base, query) = self.url.split_once('?').unwrap_or((&self.url, ""));
        format!("{}/{prefix}?{query}", base.trim_end_matches('/'))
    }

    fn init_options(&self, url: &str) -> InitOptions {
        let mut o = InitOptions::default()
            // Small packs, so that several fill up, get sealed and are uploaded.
            .with_pack_size_target(64 * 1024)
            .with_packs_url(url);
        for (k, v) in &self.credentials {
            o = o.with_packs_option(k, v);
        }
        o
    }

    fn open_options(&self) -> OpenOptions {
        let mut o = OpenOptions::default();
        for (k, v) in &self.credentials {
            o = o.with_packs_option(k, v);
        }
        o
    }

    fn clone_options(&self) -> CloneOptions {
        let mut o = CloneOptions::default();
        for (k, v) in &self.credentials {
            o = o.with_packs_option(k, v);
        }
        o
    }

    /// `rsdos-packs.json` of the container in `root` names `url`'s place and holds no secret.
    fn assert_setting_has_no_secrets(&self, root: &Path) {
        let text = std::fs::read_to_string(root.join(PACKS_SETTING_FILE)).expect("setting");
        let json: serde_json::Value = serde_json::from_str(&text).expect("setting is JSON");
        let url = json["url"].as_str().expect("url");
        assert!(url.starts_with(self.url.split('?').next().expect("base")));
        for (key, value) in &self.credentials {
            if rsdos_pack_opendal::is_secret_option(key) {
                assert!(
                    !text.contains(key),
                    "{} setting holds {key}: {text}",
                    self.name
                );
                // (moto's "test" is too short to look for as a value; Azurite's key is not.)
                if value.len() > 8 {
                    assert!(!text.contains(value.as_str()), "{key} value in {text}");
                }
            }
        }
    }
}

/// Every object in `expected` reads back identically from `c`, one by one and in bulk.
fn assert_reads(c: &Container, expected: &HashMap<String, Vec<u8>>, what: &str) {
    for (k, d) in expected {
        let got = c
            .get_object(k)
            .unwrap_or_else(|e| panic!("{what}: read {k}: {e}"));
        assert!(&got == d, "{what}: {k} differs");
    }
    let got = c.get_many(expected.keys(), false).expect("get_many");
    assert_eq!(got.len(), expected.len(), "{what}");
    for (k, d) in expected {
        assert_eq!(got.get(k).and_then(|v| v.as_ref()), Some(d), "{what}: {k}");
    }
}

fn assert_valid(c: &Container, what: &str) {
    let report = c
        .validate(&ValidateOptions::default().with_threads(2), &NoProgress)
        .expect("validate");
    assert!(report.is_valid(), "{what}: {report:?}");
}

fn sorted(v: impl IntoIterator<Item = u64>) -> Vec<u64> {
    v.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

/// Init with the packs at a fresh prefix, insert (loose and direct to packs), pack, read,
/// validate, reopen, clone (with a pack still staged), delete and repack, clone from the
/// snapshot and again from the sidecars alone.
fn container_suite(name: &'static str) {
    let remote = Remote::get(name);
    let url = remote.fresh_url();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("origin");
    let c = Container::init(&root, &remote.init_options(&url)).expect("init");
    remote.assert_setting_has_no_secrets(&root);
    let mirror = c.remote().expect("a remote container");
    assert_eq!(
        mirror.get_meta(REMOTE_CONFIG).expect("get config.json"),
        Some(std::fs::read(root.join("config.json")).expect("config.json")),
        "init uploads config.json byte for byte"
    );
    // Two containers must never write one prefix.
    let err = Container::init(&dir.path().join("second"), &remote.init_options(&url))
        .expect_err("init on a prefix that holds a container");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");

    let mut rng = Rng::new(7);
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..150 {
        let len = 100 + (i * 37) % 3000;
        let data = if i % 2 == 0 {
            random_bytes(&mut rng, len)
        } else {
            text_bytes(&mut rng, len)
        };
        expected.insert(c.add_object(&data).expect("add loose"), data);
    }
    // One object bigger than a pack: it fills a pack of its own.
    let big = random_bytes(&mut rng, 150 * 1024);
    expected.insert(c.add_object(&big).expect("add big"), big);
    c.pack_loose(
        &PackOptions::default()
            .with_compress(CompressMode::Auto)
            .with_clean_loose_per_pack(true)
            .with_threads(2),
        &NoProgress,
    )
    .expect("pack");
    let direct: Vec<Vec<u8>> = (0..100)
        .map(|i| random_bytes(&mut rng, 50 + (i * 53) % 2000))
        .collect();
    let keys = c
        .add_many_to_pack(
            direct.iter().map(Vec::as_slice),
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("direct to pack");
    expected.extend(keys.into_iter().zip(direct));
    // Reads below must come from the packs, not from loose copies.
    assert_eq!(c.count().expect("count").loose, 0);

    let report = c.upload_pending().expect("upload_pending");
    assert!(report.failed.is_empty(), "{report:?}");
    let status = c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    assert!(status.last_error.is_none(), "{status:?}");
    assert!(status.staged.len() <= 1, "only the active pack: {status:?}");
    assert!(!status.url.contains('?'), "{}", status.url);
    let uploaded = sorted(mirror.uploaded().expect("uploaded"));
    assert!(uploaded.len() >= 3, "full packs are uploaded: {uploaded:?}");
    let indexed = c.index().pack_ids().expect("pack ids");
    assert_eq!(
        sorted(indexed.iter().copied()),
        sorted(uploaded.iter().chain(&status.staged).copied()),
        "every pack is uploaded or staged, and only those"
    );
    assert_reads(&c, &expected, "origin");
    assert_valid(&c, "origin");
    let snapshot = c.remote_snapshot().expect("snapshot").expect("a snapshot");
    assert_eq!(snapshot.container_id, c.config().container_id);
    assert_eq!(sorted(snapshot.packs.iter().copied()), uploaded);

    // Another process: opened from rsdos-packs.json, credentials given at open.
    drop(c);
    let c = Container::open_with(&root, &remote.open_options()).expect("reopen");
    assert_reads(&c, &expected, "reopened");
    let mirror = c.remote().expect("a remote container");

    // A clone now has the objects of the uploaded packs, not those still staged here.
    let staged_rows: usize = status
        .staged
        .iter()
        .map(|&id| c.pack_object_count(id).expect("count") as usize)
        .sum();
    let (early, report) =
        Container::clone_from_remote(&url, &dir.path().join("early"), &remote.clone_options())
            .expect("clone with a pack staged at the origin");
    assert!(report.from_snapshot, "{report:?}");
    // (Rows of the staged pack committed before the last snapshot are in it and dropped;
    // those committed after it never reached the remote.)
    assert!(report.rows_dropped as usize <= staged_rows, "{report:?}");
    assert_eq!(
        report.objects as usize,
        expected.len() - staged_rows,
        "{report:?}"
    );
    assert_valid(&early, "early clone");
    drop(early);

    // Delete a third, then repack everything: each pack, the staged one too, is rewritten,
    // uploaded, and the old one removed from the remote.
    let gone: Vec<String> = expected.keys().take(expected.len() / 3).cloned().collect();
    assert_eq!(c.delete(gone.iter()).expect("delete").len(), gone.len());
    for k in &gone {
        expected.remove(k);
    }
    let before = sorted(indexed.iter().copied());
    let report = c
        .repack(&RepackOptions::default().with_all(true), &NoProgress)
        .expect("repack");
    assert_eq!(
        sorted(report.rewritten.iter().map(|&(old, _)| old)),
        before,
        "every pack is rewritten"
    );
    let after = sorted(mirror.uploaded().expect("uploaded"));
    for old in &before {
        assert!(
            !after.contains(old),
            "old pack {old} is still in the remote"
        );
    }
    assert_eq!(after, sorted(c.index().pack_ids().expect("pack ids")));
    let status = c.remote_status().expect("status").expect("remote");
    assert!(
        status.staged.is_empty() && status.pending_upload.is_empty(),
        "{status:?}"
    );
    for k in &gone {
        assert!(!c.has(k).expect("has"), "{k} was deleted");
        let err = c.get_object(k).expect_err("deleted");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    }
    assert_reads(&c, &expected, "after repack");
    assert_valid(&c, "after repack");
    let snapshot = c.remote_snapshot().expect("snapshot").expect("a snapshot");
    assert_eq!(sorted(snapshot.packs.iter().copied()), after);

    // A clone from the snapshot: the same objects, nothing else.
    let clone_root = dir.path().join("clone");
    let (clone, report) =
        Container::clone_from_remote(&url, &clone_root, &remote.clone_options()).expect("clone");
    assert!(report.from_snapshot, "{report:?}");
    assert_eq!(report.packs as usize, after.len(), "{report:?}");
    assert_eq!(report.rows_dropped, 0, "{report:?}");
    assert_eq!(report.objects as usize, expected.len(), "{report:?}");
    assert!(
        report.undescribed_packs.is_empty()
            && report.corrupt_entries.is_empty()
            && report.sidecar_problems.is_empty(),
        "{report:?}"
    );
    remote.assert_setting_has_no_secrets(&clone_root);
    assert_eq!(
        std::fs::read(clone_root.join("config.json")).expect("clone config"),
        std::fs::read(root.join("config.json")).expect("origin config"),
    );
    assert_reads(&clone, &expected, "clone from the snapshot");
    for k in &gone {
        assert!(!clone.has(k).expect("has"), "{k} was deleted");
    }
    assert_valid(&clone, "clone from the snapshot");
    drop(clone);

    // Without the snapshot, the clone is rebuilt from the sidecars with the same result.
    mirror
        .delete_meta(REMOTE_SNAPSHOT_INFO)
        .expect("delete snapshot.json");
    mirror.delete_meta(REMOTE_INDEX).expect("delete packs.idx");
    assert!(c.remote_snapshot().expect("snapshot").is_none());
    let (clone, report) = Container::clone_from_remote(
        &url,
        &dir.path().join("from-sidecars"),
        &remote.clone_options(),
    )
    .expect("clone from sidecars");
    assert!(!report.from_snapshot, "{report:?}");
    assert!(report.snapshot_problem.is_some(), "{report:?}");
    assert_eq!(report.packs_from_sidecars, report.packs, "{report:?}");
    assert_eq!(report.objects as usize, expected.len(), "{report:?}");
    assert!(report.corrupt_entries.is_empty(), "{report:?}");
    assert_reads(&clone, &expected, "clone from the sidecars");
    for k in &gone {
        assert!(!clone.has(k).expect("has"), "{k} was deleted");
    }
    assert_valid(&clone, "clone from the sidecars");
}

#[test]
fn s3_container_from_init_to_clone() {
    container_suite("S3");
}

#[test]
fn azblob_container_from_init_to_clone() {
    container_suite("AZBLOB");
}

#[test]
fn gcs_container_from_init_to_clone() {
    container_suite("GCS");
}
