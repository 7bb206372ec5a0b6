//! Containers whose packs live in remote storage, through `rsdos-packs.json`, on the OpenDAL
//! `fs` service (a folder standing in for a bucket: it survives reopening, unlike `memory`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rsdos::{
    CloneOptions, Container, InitOptions, NoProgress, OpenOptions, PACKS_SETTING_FILE,
    PackWriteOptions, REMOTE_CONFIG, REMOTE_INDEX, REMOTE_SNAPSHOT_INFO, ValidateOptions,
};

const TARGET: u64 = 4096;

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    remote: PathBuf,
    url: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("container");
    let remote = tmp.path().join("bucket");
    std::fs::create_dir(&remote).expect("mkdir");
    let url = format!("fs://{}", remote.display());
    Setup {
        _tmp: tmp,
        root,
        remote,
        url,
    }
}

/// A remote whose writes can be made to fail while listing, stat and reads keep working: the
/// `fs` service writes through `atomic_write_dir`, which [`block_uploads`] turns into a file.
fn setup_blockable() -> Setup {
    let mut s = setup();
    let spool = s.remote.with_file_name("spool");
    std::fs::create_dir(&spool).expect("mkdir");
    s.url = format!("{}?atomic_write_dir={}", s.url, spool.display());
    s
}

fn block_uploads(s: &Setup) {
    let spool = s.remote.with_file_name("spool");
    std::fs::remove_dir_all(&spool).expect("rmdir");
    std::fs::write(&spool, b"not a folder").expect("block");
}

fn unblock_uploads(s: &Setup) {
    let spool = s.remote.with_file_name("spool");
    std::fs::remove_file(&spool).expect("unblock");
    std::fs::create_dir(&spool).expect("mkdir");
}

fn init(s: &Setup) -> Container {
    Container::init(
        &s.root,
        &InitOptions::default()
            .with_pack_size_target(TARGET)
            .with_packs_url(&s.url),
    )
    .expect("init")
}

/// `n` distinct objects of about 1 KiB (four per pack).
fn objects(seed: u32, n: u32) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut v = format!("object {seed} {i} ").into_bytes();
            v.resize(1000 + (i as usize % 7), (i % 251) as u8);
            v
        })
        .collect()
}

fn add(c: &Container, data: &[Vec<u8>]) -> BTreeMap<String, Vec<u8>> {
    let keys = c
        .add_many_to_pack(
            data.iter().map(|d| d.as_slice()),
            &PackWriteOptions::default(),
        )
        .expect("add to pack");
    keys.into_iter().zip(data.iter().cloned()).collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn pack_files(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = names(dir).iter().filter_map(|n| n.parse().ok()).collect();
    v.sort_unstable();
    v
}

fn assert_all_readable(c: &Container, expected: &BTreeMap<String, Vec<u8>>) {
    for (k, v) in expected {
        assert_eq!(&c.get_object(k).expect("read"), v, "object {k}");
    }
}

fn assert_valid(c: &Container) {
    let report = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(report.is_valid(), "{report:?}");
}

#[test]
fn init_with_packs_url_then_reopen_uses_the_remote() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(1, 20));
    // Sealed packs are in the remote folder with their sidecars; only the pack still being
    // appended to is staged locally.
    let remote_packs = pack_files(&s.remote);
    assert!(remote_packs.len() >= 4, "{remote_packs:?}");
    for id in &remote_packs {
        assert!(
            s.remote.join(format!("{id}.toc")).is_file(),
            "sidecar of {id}"
        );
    }
    let local = pack_files(&s.root.join("packs"));
    assert!(local.len() <= 1, "local packs: {local:?}");
    assert!(local.iter().all(|id| !remote_packs.contains(id)));
    // config.json stays disk-objectstore's; the setting is in its own file.
    let config = std::fs::read_to_string(s.root.join("config.json")).expect("config");
    assert!(!config.contains("fs://"), "{config}");
    let setting = std::fs::read_to_string(s.root.join(PACKS_SETTING_FILE)).expect("setting");
    assert!(setting.contains(&s.url), "{setting}");
    drop(c);

    let c = Container::open(&s.root).expect("reopen");
    let status = c.remote_status().expect("status").expect("remote");
    assert_eq!(status.url, s.url);
    assert!(status.pending_upload.is_empty());
    assert_all_readable(&c, &stored);
    assert_eq!(c.count().expect("count").packed, 20);
    assert_valid(&c);
}

#[test]
fn credentials_given_as_options_are_not_written_or_shown() {
    let s = setup();
    let secret = "S3CR3T-do-not-leak";
    let c = Container::init(
        &s.root,
        &InitOptions::default()
            .with_pack_size_target(TARGET)
            .with_packs_url(&format!("{}?session_token={secret}", s.url))
            .with_packs_option("secret_access_key", secret)
            .with_packs_option("region", "eu-central-1"),
    )
    .expect("init");
    add(&c, &objects(2, 10));
    let mut stack = vec![s.root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let text = String::from_utf8_lossy(&bytes);
                assert!(
                    !text.contains(secret),
                    "{} holds the secret",
                    path.display()
                );
            }
        }
    }
    let setting = std::fs::read_to_string(s.root.join(PACKS_SETTING_FILE)).expect("setting");
    assert!(setting.contains("eu-central-1"), "{setting}");
    for shown in [
        format!("{c:?}"),
        format!("{:?}", c.remote_status().expect("status")),
        format!(
            "{:?}",
            InitOptions::default()
                .with_packs_url(&s.url)
                .with_packs_option("secret_access_key", secret)
        ),
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[test]
fn a_snapshot_of_the_index_and_the_config_are_uploaded_after_each_seal() {
    let s = setup();
    let c = init(&s);
    assert_eq!(
        std::fs::read(s.remote.join(REMOTE_CONFIG)).expect("config uploaded at init"),
        std::fs::read(s.root.join("config.json")).expect("config")
    );
    assert!(!s.remote.join(REMOTE_INDEX).exists());
    add(&c, &objects(3, 12));
    assert!(s.remote.join(REMOTE_INDEX).is_file());
    let info = c.remote_snapshot().expect("snapshot").expect("present");
    assert_eq!(info.container_id, c.config().container_id);
    assert_eq!(info.packs, pack_files(&s.remote));
    assert_eq!(
        info.index_bytes,
        std::fs::metadata(s.remote.join(REMOTE_INDEX))
            .expect("stat")
            .len()
    );
    assert!(s.remote.join(REMOTE_SNAPSHOT_INFO).is_file());
}

#[test]
fn a_second_init_on_the_same_remote_is_refused() {
    let s = setup();
    let _c = init(&s);
    let other = s.root.with_file_name("other");
    let err = Container::init(&other, &InitOptions::default().with_packs_url(&s.url))
        .expect_err("remote in use");
    assert_eq!(err.kind(), rsdos::ErrorKind::AlreadyExists, "{err}");
    // Nothing is left behind: the folder can be used once the URL is corrected.
    assert!(
        !other.exists() || names(&other).is_empty(),
        "{:?}",
        names(&other)
    );
}

fn clone_to(s: &Setup, name: &str) -> (Container, rsdos::CloneReport) {
    let dir = s.root.with_file_name(name);
    Container::clone_from_remote(&s.url, &dir, &CloneOptions::default()).expect("clone")
}

/// Objects of the origin that the remote has: those in uploaded packs.
fn uploaded_objects(c: &Container, all: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    let staged = c.remote_status().expect("status").expect("remote").staged;
    all.iter()
        .filter(|(k, _)| {
            let meta = c.meta(k).expect("meta");
            meta.packed.is_some_and(|p| !staged.contains(&p.pack_id))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[test]
fn clone_from_the_snapshot_reads_every_uploaded_object() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(4, 25));
    let expected = uploaded_objects(&c, &stored);
    assert!(expected.len() >= 20);
    let (clone, report) = clone_to(&s, "clone");
    assert!(report.from_snapshot, "{report:?}");
    assert_eq!(report.packs_from_sidecars, 0, "{report:?}");
    assert_eq!(report.objects, expected.len() as u64, "{report:?}");
    // Rows of the origin's staged (active) pack cannot be in the clone.
    assert_eq!(
        report.rows_dropped,
        (stored.len() - expected.len()) as u64,
        "{report:?}"
    );
    assert_all_readable(&clone, &expected);
    assert_valid(&clone);
    assert_eq!(clone.config(), c.config());
    assert_eq!(
        std::fs::read(clone.path().join("config.json")).expect("config"),
        std::fs::read(c.path().join("config.json")).expect("config")
    );
    assert!(clone.remote_status().expect("status").is_some());
}

#[test]
fn clone_without_a_snapshot_rebuilds_from_the_sidecars() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(5, 25));
    let expected = uploaded_objects(&c, &stored);
    std::fs::remove_dir_all(s.remote.join("index")).expect("remove snapshot");
    let (clone, report) = clone_to(&s, "clone");
    assert!(!report.from_snapshot, "{report:?}");
    assert!(report.snapshot_problem.is_some());
    assert_eq!(report.packs_from_sidecars, report.packs, "{report:?}");
    assert_eq!(report.objects, expected.len() as u64, "{report:?}");
    assert_all_readable(&clone, &expected);
    assert_valid(&clone);
}

#[test]
fn clone_adds_packs_sealed_after_the_last_snapshot() {
    let s = setup();
    let c = init(&s);
    let mut stored = add(&c, &objects(6, 12));
    let old_index = std::fs::read(s.remote.join(REMOTE_INDEX)).expect("index");
    let old_info = std::fs::read(s.remote.join(REMOTE_SNAPSHOT_INFO)).expect("info");
    stored.extend(add(&c, &objects(7, 16)));
    // As if the snapshots after those seals had failed.
    std::fs::write(s.remote.join(REMOTE_INDEX), old_index).expect("restore");
    std::fs::write(s.remote.join(REMOTE_SNAPSHOT_INFO), old_info).expect("restore");
    let expected = uploaded_objects(&c, &stored);
    let (clone, report) = clone_to(&s, "clone");
    assert!(report.from_snapshot, "{report:?}");
    assert!(report.packs_from_sidecars >= 3, "{report:?}");
    assert_eq!(report.objects, expected.len() as u64, "{report:?}");
    assert_all_readable(&clone, &expected);
    assert_valid(&clone);
}

#[test]
fn a_damaged_snapshot_is_not_trusted() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(8, 12));
    let expected = uploaded_objects(&c, &stored);
    let mut index = std::fs::read(s.remote.join(REMOTE_INDEX)).expect("index");
    index.truncate(index.len() / 2);
    std::fs::write(s.remote.join(REMOTE_INDEX), index).expect("truncate");
    let (clone, report) = clone_to(&s, "clone");
    assert!(!report.from_snapshot, "{report:?}");
    assert_all_readable(&clone, &expected);
    assert_valid(&clone);
}

#[test]
fn clone_of_a_remote_without_a_container_fails_and_leaves_nothing() {
    let s = setup();
    let dir = s.root.with_file_name("clone");
    let err = Container::clone_from_remote(&s.url, &dir, &CloneOptions::default())
        .expect_err("empty remote");
    assert_eq!(err.kind(), rsdos::ErrorKind::NotInitialised, "{err}");
    assert!(!dir.exists() || names(&dir).is_empty());
}

#[test]
fn a_failed_upload_keeps_objects_readable_and_is_retried() {
    let s = setup_blockable();
    let c = init(&s);
    let mut stored = add(&c, &objects(9, 8));
    let before = pack_files(&s.remote);
    // Every upload fails from now on (whoever runs the test: no permission trick).
    block_uploads(&s);

    // The write succeeds although its full packs cannot be uploaded.
    let more = add(&c, &objects(10, 12));
    stored.extend(more.clone());
    let status = c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.len() >= 2, "{status:?}");
    assert!(status.last_error.is_some(), "{status:?}");
    assert!(!format!("{status:?}").is_empty());
    for (k, v) in &more {
        assert_eq!(&c.get_object(k).expect("read from the staged pack"), v);
    }
    // A retry while the remote is still down fails again, and loses nothing.
    let report = c.upload_pending().expect("retry");
    assert!(
        report.uploaded.is_empty() && !report.failed.is_empty(),
        "{report:?}"
    );
    // New writes never append to a pack waiting for upload.
    let pending = c
        .remote_status()
        .expect("status")
        .expect("remote")
        .pending_upload;
    let sizes: Vec<u64> = pending
        .iter()
        .map(|id| c.packs().len(*id).expect("len").expect("present"))
        .collect();
    stored.extend(add(&c, &objects(11, 2)));
    for (id, size) in pending.iter().zip(&sizes) {
        assert_eq!(
            c.packs().len(*id).expect("len"),
            Some(*size),
            "pack {id} grew"
        );
    }

    unblock_uploads(&s);
    // Reopened (as a new process would): the marks on disk tell what waits.
    drop(c);
    let c = Container::open_with(&s.root, &OpenOptions::default()).expect("reopen");
    let report = c.upload_pending().expect("retry");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.uploaded, pending, "{report:?}");
    assert!(report.snapshot_taken, "{report:?}");
    let after = pack_files(&s.remote);
    for id in before.iter().chain(&pending) {
        assert!(after.contains(id), "pack {id} not uploaded: {after:?}");
    }
    let status = c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    assert!(status.staged.len() <= 1, "{status:?}");
    assert_all_readable(&c, &stored);
    assert_valid(&c);

    let expected = uploaded_objects(&c, &stored);
    let (clone, report) = clone_to(&s, "clone");
    assert!(report.from_snapshot, "{report:?}");
    assert_all_readable(&clone, &expected);
    assert_valid(&clone);
}

#[test]
fn the_next_pack_cycle_retries_failed_uploads() {
    let s = setup_blockable();
    let c = init(&s);
    block_uploads(&s);
    let stored = add(&c, &objects(12, 10));
    let pending = c
        .remote_status()
        .expect("status")
        .expect("remote")
        .pending_upload;
    assert!(!pending.is_empty());
    unblock_uploads(&s);
    drop(c);
    // A fresh container has no back-off pending: its first writing cycle retries.
    let c = Container::open(&s.root).expect("reopen");
    c.add_object(b"one more loose object").expect("loose");
    c.pack_loose(&rsdos::PackOptions::default(), &NoProgress)
        .expect("pack");
    let status = c.remote_status().expect("status").expect("remote");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    let remote = pack_files(&s.remote);
    assert!(pending.iter().all(|id| remote.contains(id)), "{remote:?}");
    assert_all_readable(&c, &stored);
}

#[test]
fn upload_all_seals_the_open_pack_so_a_clone_has_every_object() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(9, 12)); // five per pack: the third stays open
    let staged = c.remote_status().expect("status").expect("remote").staged;
    assert!(!staged.is_empty(), "the pack being filled stays local");
    let report = c.upload_all().expect("upload all");
    assert!(report.failed.is_empty(), "{report:?}");
    for id in &staged {
        assert!(report.uploaded.contains(id), "{report:?}");
    }
    let status = c.remote_status().expect("status").expect("remote");
    assert!(status.staged.is_empty(), "{status:?}");
    assert!(status.pending_upload.is_empty(), "{status:?}");
    let (clone, clone_report) = clone_to(&s, "clone");
    assert!(clone_report.from_snapshot, "{clone_report:?}");
    assert_eq!(
        clone_report.objects,
        stored.len() as u64,
        "{clone_report:?}"
    );
    assert_all_readable(&clone, &stored);
    assert_valid(&clone);
    // The origin keeps writing, into a new pack: the sealed one is never appended to.
    let more = add(&c, &objects(10, 3));
    assert_all_readable(&c, &more);
    assert_all_readable(&c, &stored);
    assert_valid(&c);
}

/// `rebuild_index_at` of a container with remote packs reads the sidecars in the bucket (the
/// container cannot be opened while its index is damaged, and its packs are not local files).
#[test]
fn rebuild_index_at_reads_the_remote_sidecars() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(41, 14));
    c.upload_all().expect("seal and upload the open pack too");
    drop(c);
    let index = s.root.join("packs.idx");
    for extra in ["packs.idx-wal", "packs.idx-shm"] {
        let _ = std::fs::remove_file(s.root.join(extra));
    }
    std::fs::write(&index, b"this is not an SQLite database, it is damaged").expect("damage");
    assert!(
        Container::open(&s.root).is_err(),
        "a damaged index does not open"
    );

    let report = Container::rebuild_index_at(&s.root, &NoProgress).expect("rebuild");
    assert!(report.undescribed_packs.is_empty(), "{report:?}");
    let c = Container::open(&s.root).expect("open after the rebuild");
    assert_all_readable(&c, &stored);
    assert_eq!(c.count().expect("count").packed, stored.len() as u64);
    assert_valid(&c);
}

/// A repack deletes the old remote packs with a tombstone and keeps their bytes for the grace
/// period: `clean` within it leaves them (default grace, one hour), `clean` after it (a grace
/// of one second, then a pause) removes them for good.
#[test]
fn clean_purges_remote_packs_deleted_longer_ago_than_the_grace_period() {
    for grace_over in [false, true] {
        let mut s = setup();
        if grace_over {
            s.url = format!("{}?delete_grace_secs=1", s.url);
        }
        let c = init(&s);
        let stored = add(&c, &objects(31, 14));
        let before = pack_files(&s.remote);
        assert!(before.len() >= 2, "{before:?}");
        c.repack(&rsdos::RepackOptions::default().with_all(true), &NoProgress)
            .expect("repack");
        if grace_over {
            std::thread::sleep(std::time::Duration::from_millis(1500));
        }
        let before_clean = pack_files(&s.remote);
        let report = c
            .clean(&rsdos::CleanOptions::default(), &NoProgress)
            .expect("clean");
        let live: std::collections::BTreeSet<u64> =
            c.packs().list().expect("list").into_iter().collect();
        let in_bucket = pack_files(&s.remote);
        let gone: Vec<u64> = before
            .iter()
            .copied()
            .filter(|id| !live.contains(id))
            .collect();
        assert!(
            !gone.is_empty(),
            "the repack replaced packs: {before:?} -> {live:?}"
        );
        if grace_over {
            // Deletes purge expired packs too (at most every few minutes): count what was
            // still there.
            let waiting = gone.iter().filter(|id| before_clean.contains(id)).count();
            assert!(waiting >= 1, "{before_clean:?}");
            assert_eq!(report.deleted_packs_purged, waiting as u64, "{report:?}");
            for id in &in_bucket {
                assert!(
                    live.contains(id),
                    "pack {id} was deleted but is still in the bucket"
                );
            }
            assert!(
                !names(&s.remote).iter().any(|n| n.ends_with(".deleted")),
                "tombstones left: {:?}",
                names(&s.remote)
            );
        } else {
            assert_eq!(report.deleted_packs_purged, 0, "{report:?}");
            for id in &gone {
                assert!(
                    in_bucket.contains(id),
                    "pack {id} purged within its grace period"
                );
            }
        }
        assert_all_readable(&c, &stored);
        assert_valid(&c);
    }
}

/// A purge the object storage refuses fails only the purge: `clean` does its local work,
/// reports why nothing was purged, and succeeds; the next clean purges.
#[test]
fn clean_whose_purge_fails_does_the_local_work() {
    let mut s = setup();
    // No retries: the refused removal fails at once.
    s.url = format!("{}?delete_grace_secs=1&retries=0", s.url);
    let c = init(&s);
    let stored = add(&c, &objects(51, 14));
    let before = pack_files(&s.remote);
    c.repack(&rsdos::RepackOptions::default().with_all(true), &NoProgress)
        .expect("repack");
    let live: Vec<u64> = c.packs().list().expect("list");
    let deleted: Vec<u64> = pack_files(&s.remote)
        .into_iter()
        .filter(|id| before.contains(id) && !live.contains(id))
        .collect();
    let victim = *deleted.first().expect("a deleted pack still in the bucket");
    // The bucket refuses to remove this pack: a non-empty folder stands in its place.
    let path = s.remote.join(victim.to_string());
    let bytes = std::fs::read(&path).expect("deleted pack's bytes");
    std::fs::remove_file(&path).expect("rm");
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::write(path.join("x"), b"x").expect("fill");
    let loose = c.add_object(b"a loose object packed below").expect("loose");
    c.pack_loose(&rsdos::PackOptions::default(), &NoProgress)
        .expect("pack");
    std::thread::sleep(std::time::Duration::from_millis(1500));

    let report = c
        .clean(&rsdos::CleanOptions::default(), &NoProgress)
        .expect("clean succeeds although the purge fails");
    assert_eq!(report.loose_deleted, 1, "{report:?}");
    let why = report.purge_error.clone().expect("the purge's error");
    assert!(why.contains(&victim.to_string()), "{why}");

    std::fs::remove_dir_all(&path).expect("rm folder");
    std::fs::write(&path, &bytes).expect("restore");
    let report = c
        .clean(&rsdos::CleanOptions::default(), &NoProgress)
        .expect("clean");
    assert!(report.purge_error.is_none(), "{report:?}");
    assert!(report.deleted_packs_purged >= 1, "{report:?}");
    assert!(!s.remote.join(victim.to_string()).exists());
    assert_all_readable(&c, &stored);
    assert!(c.has(&loose).expect("has"));
}

/// A remote pack whose bytes no longer match its sidecar (a flipped bit in the bucket, or on
/// the way) stops the backup with a `Corrupt` error naming the pack and offset; no copy of it
/// is kept, and the backup taken before stays whole.
#[test]
fn backup_checks_remote_packs_against_their_sidecars() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(21, 14));
    let uploaded = pack_files(&s.remote);
    let id = *uploaded.first().expect("an uploaded pack");
    let dest = s.root.with_file_name("backups");
    let good = c
        .backup(&dest, &rsdos::BackupOptions::default(), &NoProgress)
        .expect("backup before the damage");

    let toc = c.pack_toc(id).expect("read sidecar").expect("sidecar");
    let victim = toc
        .entries
        .iter()
        .find(|e| e.length > 0)
        .expect("an object with bytes");
    let path = s.remote.join(id.to_string());
    let mut bytes = std::fs::read(&path).expect("remote pack");
    let at = (victim.offset + victim.length / 2) as usize;
    bytes[at] ^= 0x40;
    std::fs::write(&path, &bytes).expect("damage the remote pack");

    // A new backup folder (not linked to the good one: nothing to link against).
    let other = s.root.with_file_name("other-backups");
    let err = c
        .backup(&other, &rsdos::BackupOptions::default(), &NoProgress)
        .expect_err("a damaged pack must not be backed up");
    assert_eq!(err.kind(), rsdos::ErrorKind::Corrupt, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("pack {id}")), "{msg}");
    assert!(msg.contains(&victim.hashkey), "{msg}");
    let leftovers: Vec<_> = walk_files(&other)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == id.to_string().as_str()))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no copy of the damaged pack: {leftovers:?}"
    );

    let b = Container::open(&good.container_path()).expect("open the earlier backup");
    assert_all_readable(&b, &stored);
    assert_valid(&b);
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(walk_files(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn backup_of_a_remote_container_is_a_local_container_and_links_unchanged_packs() {
    use std::os::unix::fs::MetadataExt;
    let s = setup();
    let c = init(&s);
    let mut stored = add(&c, &objects(13, 14)); // the last pack stays open, staged
    for i in 0..3 {
        let data = format!("loose object {i}").into_bytes();
        stored.insert(c.add_object(&data).expect("loose"), data);
    }
    let status = c.remote_status().expect("status").expect("remote");
    assert!(!status.staged.is_empty(), "{status:?}");
    let uploaded = pack_files(&s.remote);
    assert!(uploaded.len() >= 2, "{uploaded:?}");
    assert!(uploaded.iter().all(|id| !status.staged.contains(id)));

    let dest = s.root.with_file_name("backups");
    let first = c
        .backup(&dest, &rsdos::BackupOptions::default(), &NoProgress)
        .expect("backup");
    let second = c
        .backup(&dest, &rsdos::BackupOptions::default(), &NoProgress)
        .expect("second backup");
    // Each uploaded pack and its sidecar, and each loose object, are linked, not downloaded.
    assert!(
        second.files_linked >= 2 * uploaded.len() as u64 + 3,
        "{second:?}"
    );
    for report in [&first, &second] {
        let packs = report.container_path().join("packs");
        for id in &uploaded {
            let local = packs.join(id.to_string());
            assert_eq!(
                std::fs::read(&local).expect("pack copied"),
                std::fs::read(s.remote.join(id.to_string())).expect("remote pack"),
                "pack {id}"
            );
            assert!(packs.join(format!("{id}.toc")).is_file(), "sidecar of {id}");
        }
        assert!(
            !report.container_path().join(PACKS_SETTING_FILE).exists(),
            "a backup is a plain local container"
        );
    }
    let ino = |r: &rsdos::BackupReport, id: u64| {
        std::fs::metadata(r.container_path().join("packs").join(id.to_string()))
            .expect("stat")
            .ino()
    };
    for id in &uploaded {
        assert_eq!(ino(&first, *id), ino(&second, *id), "pack {id} not linked");
    }

    // The backup stands on its own: reading it never touches the bucket.
    std::fs::remove_dir_all(&s.remote).expect("remove the bucket");
    let b = Container::open(&second.container_path()).expect("open backup");
    assert!(b.remote_status().expect("status").is_none());
    assert_all_readable(&b, &stored);
    let count = b.count().expect("count");
    assert_eq!(count.packed + count.loose, stored.len() as u64, "{count:?}");
    assert_valid(&b);
}

/// Keys validate reports as damaged in packs, sorted.
fn damaged_packed(r: &rsdos::ValidationReport) -> Vec<String> {
    let mut v: Vec<String> = r
        .invalid_hashes_packed
        .iter()
        .chain(&r.invalid_sizes_packed)
        .cloned()
        .chain(r.unreadable_packed.iter().map(|(k, _)| k.clone()))
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn validate_reads_uploaded_packs_in_batches_and_finds_damage_there() {
    let s = setup();
    let c = init(&s);
    let stored = add(&c, &objects(14, 18));
    assert!(
        c.packs().read_parallelism() > 1,
        "the batched path is tested"
    );
    assert_valid(&c);
    let uploaded = pack_files(&s.remote);
    assert!(uploaded.len() >= 3, "{uploaded:?}");
    let in_pack = |id: u64| -> Vec<(String, rsdos::PackedLocation)> {
        let mut v: Vec<(String, rsdos::PackedLocation)> = stored
            .keys()
            .filter_map(|k| {
                let p = c.meta(k).expect("meta").packed?;
                (p.pack_id == id).then(|| (k.clone(), p))
            })
            .collect();
        v.sort_by_key(|(_, p)| p.offset);
        v
    };

    // A flipped byte in the middle object of an uploaded pack: only that object is reported.
    let rows = in_pack(uploaded[0]);
    assert!(rows.len() >= 3, "{rows:?}");
    let (key, loc) = &rows[1];
    let path = s.remote.join(uploaded[0].to_string());
    let mut bytes = std::fs::read(&path).expect("read pack");
    bytes[(loc.offset + loc.length / 2) as usize] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write pack");
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert_eq!(damaged_packed(&r), vec![key.clone()], "{r:?}");
    assert_eq!(r.issue_count(), 1, "{r:?}");

    // A pack cut inside its last object (the batched read fails): only that object.
    let rows = in_pack(uploaded[1]);
    let (cut_key, cut_loc) = rows.last().expect("rows");
    let path = s.remote.join(uploaded[1].to_string());
    let bytes = std::fs::read(&path).expect("read pack");
    std::fs::write(&path, &bytes[..(cut_loc.offset + 1) as usize]).expect("truncate pack");
    let r = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    let mut want = vec![key.clone(), cut_key.clone()];
    want.sort();
    assert_eq!(damaged_packed(&r), want, "{r:?}");
}

/// A pack store that counts the single reads and the batched reads it passes on.
#[derive(Debug)]
struct CountingStore {
    inner: std::sync::Arc<dyn rsdos_core::PackStore>,
    read_at: std::sync::atomic::AtomicU64,
    read_ranges: std::sync::atomic::AtomicU64,
}

impl rsdos_core::PackStore for CountingStore {
    fn list(&self) -> rsdos::Result<Vec<u64>> {
        self.inner.list()
    }
    fn len(&self, id: u64) -> rsdos::Result<Option<u64>> {
        self.inner.len(id)
    }
    fn read_at(&self, id: u64, offset: u64, buf: &mut [u8]) -> rsdos::Result<()> {
        self.read_at
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_at(id, offset, buf)
    }
    fn read_ranges(&self, id: u64, ranges: &[(u64, usize)]) -> rsdos::Result<Vec<Vec<u8>>> {
        self.read_ranges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_ranges(id, ranges)
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn open_pack(&self, id: u64) -> rsdos::Result<std::sync::Arc<dyn rsdos_core::PackHandle>> {
        self.inner.open_pack(id)
    }
    fn open_range(
        &self,
        id: u64,
        offset: u64,
        length: u64,
    ) -> rsdos::Result<std::sync::Arc<dyn rsdos_core::PackHandle>> {
        self.inner.open_range(id, offset, length)
    }
    fn open_append(&self, id: u64) -> rsdos::Result<Box<dyn rsdos_core::PackAppender>> {
        self.inner.open_append(id)
    }
    fn delete(&self, id: u64) -> rsdos::Result<()> {
        self.inner.delete(id)
    }
    fn seal(&self, id: u64, sidecar: &[u8]) -> rsdos::Result<()> {
        self.inner.seal(id, sidecar)
    }
    fn is_sealed(&self, id: u64) -> rsdos::Result<bool> {
        self.inner.is_sealed(id)
    }
    fn sidecar(&self, id: u64) -> rsdos::Result<Option<Vec<u8>>> {
        self.inner.sidecar(id)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn validate_reads_each_remote_pack_with_batched_range_reads() {
    use std::sync::atomic::Ordering::Relaxed;
    let s = setup();
    let c = init(&s);
    add(&c, &objects(15, 18));
    let packs = c.packs().list().expect("list");
    drop(c);
    let counting = std::sync::Arc::new(CountingStore {
        inner: std::sync::Arc::new(
            rsdos_pack_opendal::OpendalPackStore::open(&s.url, &s.root.join("packs"))
                .expect("store"),
        ),
        read_at: Default::default(),
        read_ranges: Default::default(),
    });
    let index = rsdos_index_sqlite::SqliteIndex::open(&s.root.join("packs.idx")).expect("index");
    let c = Container::open_with_storage(
        &s.root,
        std::sync::Arc::new(index),
        std::sync::Arc::clone(&counting) as std::sync::Arc<dyn rsdos_core::PackStore>,
    )
    .expect("open");
    assert_valid(&c);
    // Each pack (4 KiB) is one batch: no request per window.
    assert_eq!(counting.read_at.load(Relaxed), 0);
    let batches = counting.read_ranges.load(Relaxed);
    assert!(
        batches >= 1 && batches <= packs.len() as u64,
        "{batches} batches for {} packs",
        packs.len()
    );
}
