//! pack, clean, repack and the maintenance lock.

use std::collections::HashMap;
use std::time::Duration;

use rsdos::{
    CleanOptions, CompressMode, CompressionAlgorithm, Container, ErrorKind, InitOptions,
    NoProgress, ObjectType, PackOptions, PackWriteOptions, Progress, ProgressUnit, RepackOptions,
    StopFlag,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

fn filled(dir: &std::path::Path, n: usize, target: u64) -> (Container, HashMap<String, Vec<u8>>) {
    let c = Container::init(
        &dir.join("c"),
        &InitOptions::default().with_pack_size_target(target),
    )
    .expect("init");
    let mut rng = Rng::new(n as u64);
    let mut all = HashMap::new();
    for i in 0..n {
        let data = if i % 2 == 0 {
            random_bytes(&mut rng, i * 13 % 2000)
        } else {
            text_bytes(&mut rng, i * 29 % 3000)
        };
        all.insert(c.add_object(&data).expect("add"), data);
    }
    (c, all)
}

fn assert_all_readable(c: &Container, all: &HashMap<String, Vec<u8>>) {
    for (k, v) in all {
        assert_eq!(&c.get_object(k).expect("get"), v, "{k}");
    }
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<(String, u64, u64)>>);

impl Progress for Recorder {
    fn start(&self, description: &str, total: u64, _unit: ProgressUnit) {
        self.0
            .lock()
            .expect("lock")
            .push((description.to_string(), total, 0));
    }
    fn advance(&self, n: u64) {
        if let Some(last) = self.0.lock().expect("lock").last_mut() {
            last.2 += n;
        }
    }
}

#[test]
fn pack_moves_every_loose_object_into_packs_and_clean_removes_the_copies() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, all) = filled(dir.path(), 400, 64 * 1024);
    let progress = Recorder::default();
    let report = c
        .pack_loose(&PackOptions::default(), &progress)
        .expect("pack");
    assert_eq!(report.packed, all.len() as u64);
    assert!(report.corrupt_loose.is_empty());
    let events = progress.0.lock().expect("lock").clone();
    assert_eq!(events[0].1, all.len() as u64);
    assert_eq!(events[0].2, all.len() as u64, "progress adds up");
    let count = c.count().expect("count");
    assert_eq!(count.packed, all.len() as u64);
    assert_eq!(
        count.loose,
        all.len() as u64,
        "loose copies stay until clean"
    );
    assert!(count.pack_files > 1);
    // Packing again finds nothing to do.
    assert_eq!(
        c.pack_loose(&PackOptions::default(), &NoProgress)
            .expect("again")
            .packed,
        0
    );
    let cleaned = c
        .clean(&CleanOptions::default().with_vacuum(true), &NoProgress)
        .expect("clean");
    assert_eq!(cleaned.loose_deleted, all.len() as u64);
    assert_eq!(c.count().expect("count").loose, 0);
    assert_all_readable(&c, &all);
    let sizes = c.total_size().expect("sizes");
    assert_eq!(
        sizes.total_size_packfiles_on_disk, sizes.total_size_packed_on_disk,
        "no holes"
    );
}

#[test]
fn pack_with_incremental_clean_and_compression() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, all) = filled(dir.path(), 300, 32 * 1024);
    let mut rng = Rng::new(77);
    let big = text_bytes(&mut rng, 3 << 20);
    let big_key = c.add_object(&big).expect("big");
    let report = c
        .pack_loose(
            &PackOptions::default()
                .with_compress(CompressMode::Auto)
                .with_clean_loose_per_pack(true),
            &NoProgress,
        )
        .expect("pack");
    assert_eq!(report.packed, all.len() as u64 + 1);
    assert_eq!(report.loose_deleted, all.len() as u64 + 1);
    assert_eq!(c.count().expect("count").loose, 0);
    assert_all_readable(&c, &all);
    assert_eq!(c.get_object(&big_key).expect("big"), big);
    let meta = c.meta(&big_key).expect("meta").packed.expect("packed");
    assert!(meta.compressed, "large text is compressed under AUTO");
}

#[test]
fn pack_leaves_a_corrupt_loose_file_alone_and_reports_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, all) = filled(dir.path(), 50, 1 << 20);
    let victim = all
        .keys()
        .find(|k| all[*k].len() > 10)
        .expect("victim")
        .clone();
    std::fs::write(c.loose_path(&victim).expect("p"), b"not the content").expect("corrupt");
    let report = c
        .pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    assert_eq!(report.corrupt_loose, vec![victim.clone()]);
    assert_eq!(report.packed, all.len() as u64 - 1);
    assert_eq!(
        c.meta(&victim).expect("meta").object_type,
        ObjectType::Loose
    );
}

/// Loose files are opened relative to their shard folder (any prefix length, including
/// none) and with O_NOATIME: packing reads every object and leaves the files' access times as
/// they were (without the flag, a `relatime` mount updates an access time older than the
/// file's modification, which is set here on purpose).
#[test]
fn pack_reads_loose_files_of_every_prefix_length_and_leaves_their_access_times() {
    let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for prefix_len in [0usize, 2, 4] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = Container::init(
            &dir.path().join("c"),
            &InitOptions::default().with_loose_prefix_len(prefix_len),
        )
        .expect("init");
        let mut rng = Rng::new(prefix_len as u64 + 5);
        let mut all = HashMap::new();
        for i in 0..200 {
            let data = random_bytes(&mut rng, i * 7 % 900);
            all.insert(c.add_object(&data).expect("add"), data);
        }
        for k in all.keys() {
            let f = std::fs::File::options()
                .write(true)
                .open(c.loose_path(k).expect("path"))
                .expect("open");
            f.set_times(std::fs::FileTimes::new().set_accessed(old))
                .expect("set atime");
        }
        let report = c
            .pack_loose(&PackOptions::default(), &NoProgress)
            .expect("pack");
        assert_eq!(
            report.packed,
            all.len() as u64,
            "prefix length {prefix_len}"
        );
        assert!(report.corrupt_loose.is_empty());
        // O_NOATIME is Linux's; elsewhere the access times may move.
        for k in all.keys().filter(|_| cfg!(target_os = "linux")) {
            let accessed = std::fs::metadata(c.loose_path(k).expect("path"))
                .expect("stat")
                .accessed()
                .expect("atime");
            assert_eq!(
                accessed, old,
                "access time of {k} (prefix length {prefix_len})"
            );
        }
        c.clean(&CleanOptions::default(), &NoProgress)
            .expect("clean");
        assert_all_readable(&c, &all);
    }
}

/// A loose file cut short or grown after its rename holds other bytes than its name says:
/// packing reads what the file holds now, reports it and leaves it loose.
#[test]
fn pack_reports_loose_files_cut_short_or_grown() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, all) = filled(dir.path(), 60, 1 << 20);
    let mut victims: Vec<String> = all
        .keys()
        .filter(|k| all[*k].len() > 100)
        .take(2)
        .cloned()
        .collect();
    victims.sort();
    let short = c.loose_path(&victims[0]).expect("p");
    std::fs::write(&short, &all[&victims[0]][..50]).expect("cut short");
    let grown = c.loose_path(&victims[1]).expect("p");
    let mut longer = all[&victims[1]].clone();
    longer.extend_from_slice(b"tail");
    std::fs::write(&grown, &longer).expect("grow");
    let report = c
        .pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    assert_eq!(report.corrupt_loose, victims);
    assert_eq!(report.packed, all.len() as u64 - 2);
    for v in &victims {
        assert_eq!(c.meta(v).expect("meta").object_type, ObjectType::Loose);
    }
}

#[test]
fn interrupted_pack_commits_what_it_wrote_and_stays_consistent() {
    let dir = tempfile::tempdir().expect("tmp");
    let (c, all) = filled(dir.path(), 100, 4096);
    let stop = StopFlag::new();
    stop.stop();
    let err = c
        .pack_loose(&PackOptions::default(), &stop)
        .expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_all_readable(&c, &all);
    let report = c
        .pack_loose(&PackOptions::default(), &NoProgress)
        .expect("resume");
    assert_eq!(c.count().expect("count").packed, all.len() as u64);
    assert!(report.packed <= all.len() as u64);
}

#[test]
fn clean_resolves_duplicates_and_sweeps_old_sandbox_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(&dir.path().join("c"), &InitOptions::default()).expect("init");
    let good = c.add_object(b"good content").expect("add");
    let dups = c.path().join("duplicates");
    std::fs::write(dups.join(format!("{good}.1")), b"good content").expect("w");
    std::fs::write(dups.join(format!("{good}.2")), b"garbage").expect("w");
    // An object only present as a duplicate: restored from the first correct copy.
    let lost = rsdos::HashType::Sha256.hash_hex(b"only a duplicate");
    std::fs::write(dups.join(format!("{lost}.a")), b"wrong").expect("w");
    std::fs::write(dups.join(format!("{lost}.b")), b"only a duplicate").expect("w");
    // Duplicates that are all wrong and nothing else: kept and reported.
    let bad = rsdos::HashType::Sha256.hash_hex(b"unrecoverable");
    std::fs::write(dups.join(format!("{bad}.x")), b"wrong").expect("w");
    std::fs::write(c.path().join("sandbox").join("leftover"), b"x").expect("w");
    let report = c
        .clean(
            &CleanOptions::default().with_sandbox_grace(Duration::ZERO),
            &NoProgress,
        )
        .expect("clean");
    assert_eq!(report.duplicates_restored, 1);
    assert_eq!(report.duplicates_removed, 3);
    assert_eq!(report.inconsistent_duplicates, vec![bad.clone()]);
    assert_eq!(report.sandbox_removed, 1);
    assert_eq!(c.get_object(&lost).expect("restored"), b"only a duplicate");
    assert_eq!(c.get_object(&good).expect("good"), b"good content");
    assert!(dups.join(format!("{bad}.x")).exists());
    // A young sandbox file (a write in progress) is left alone.
    std::fs::write(c.path().join("sandbox").join("busy"), b"x").expect("w");
    let report = c
        .clean(&CleanOptions::default(), &NoProgress)
        .expect("clean");
    assert_eq!(report.sandbox_removed, 0);
}

#[test]
fn repack_reclaims_holes_keeps_content_and_changes_compression() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(
        &dir.path().join("c"),
        &InitOptions::default()
            .with_pack_size_target(50_000)
            .with_compression_algorithm(CompressionAlgorithm::Zstd(1)),
    )
    .expect("init");
    let mut rng = Rng::new(8);
    let contents: Vec<Vec<u8>> = (0..200)
        .map(|i| text_bytes(&mut rng, 200 + i * 7))
        .collect();
    let mut big = text_bytes(&mut rng, 5 << 20);
    big.extend(random_bytes(&mut rng, 100));
    let mut keys = c
        .add_many_to_pack(
            contents.iter().map(|v| &v[..]),
            &PackWriteOptions::default(),
        )
        .expect("pack");
    keys.push(
        c.add_stream_to_pack(&mut &big[..], &PackWriteOptions::default())
            .expect("big"),
    );
    let before = c.total_size().expect("size");
    let deleted = c.delete(keys.iter().step_by(3)).expect("delete");
    assert!(!deleted.is_empty());
    let untouched = c.packs().list().expect("list");
    let report = c
        .repack(&RepackOptions::default(), &NoProgress)
        .expect("repack");
    assert!(!report.rewritten.is_empty());
    let after = c.total_size().expect("size");
    assert!(after.total_size_packfiles_on_disk < before.total_size_packfiles_on_disk);
    assert_eq!(
        after.total_size_packfiles_on_disk, after.total_size_packed_on_disk,
        "no holes left"
    );
    for (i, k) in keys.iter().enumerate() {
        let want = if i == 200 { &big } else { &contents[i] };
        if deleted.contains(k) {
            assert!(!c.has(k).expect("has"));
        } else {
            assert_eq!(&c.get_object(k).expect("get"), want);
        }
    }
    // Nothing to do now (no holes) unless asked.
    let report = c
        .repack(&RepackOptions::default(), &NoProgress)
        .expect("again");
    assert!(report.rewritten.is_empty());
    assert!(!untouched.is_empty());
    // Compress everything.
    let report = c
        .repack(
            &RepackOptions::default().with_compress(CompressMode::Yes),
            &NoProgress,
        )
        .expect("yes");
    assert!(!report.rewritten.is_empty());
    let compressed = c.total_size().expect("size");
    assert!(compressed.total_size_packed_on_disk < after.total_size_packed_on_disk / 2);
    for k in keys.iter().filter(|k| !deleted.contains(k)) {
        assert!(c.meta(k).expect("meta").packed.expect("p").compressed);
    }
    // And back.
    c.repack(
        &RepackOptions::default().with_compress(CompressMode::No),
        &NoProgress,
    )
    .expect("no");
    for (i, k) in keys
        .iter()
        .enumerate()
        .filter(|(_, k)| !deleted.contains(k))
    {
        let want = if i == 200 { &big } else { &contents[i] };
        assert!(!c.meta(k).expect("meta").packed.expect("p").compressed);
        assert_eq!(&c.get_object(k).expect("get"), want);
    }
}

#[test]
fn repack_removes_packs_no_row_points_to() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(
        &dir.path().join("c"),
        &InitOptions::default().with_pack_size_target(10),
    )
    .expect("init");
    let keys = c
        .add_many_to_pack(
            [&b"first object"[..], b"second object"],
            &PackWriteOptions::default(),
        )
        .expect("pack");
    assert_eq!(c.count().expect("count").pack_files, 2);
    c.delete([&keys[0]]).expect("delete");
    let report = c
        .repack(&RepackOptions::default(), &NoProgress)
        .expect("repack");
    assert_eq!(report.removed_empty, vec![0]);
    assert_eq!(c.count().expect("count").pack_files, 1);
    assert_eq!(c.get_object(&keys[1]).expect("get"), b"second object");
}

#[test]
fn a_second_maintainer_waits_or_fails_naming_the_holder() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(&dir.path().join("c"), &InitOptions::default()).expect("init");
    let held = c.lock_maintenance(None).expect("first");
    let err = c
        .lock_maintenance(Some(Duration::from_millis(100)))
        .expect_err("second");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(
        err.to_string().contains(&std::process::id().to_string()),
        "{err}"
    );
    let c2 = c.clone();
    let waiter = std::thread::spawn(move || {
        c2.lock_maintenance(Some(Duration::from_secs(10)))
            .map(|_| ())
    });
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    waiter
        .join()
        .expect("join")
        .expect("the waiter gets the lock once it is free");
}

#[test]
fn deleted_objects_stay_deleted_after_an_index_rebuild() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(
        &dir.path().join("c"),
        &InitOptions::default().with_pack_size_target(2000),
    )
    .expect("init");
    let mut rng = Rng::new(11);
    let contents: Vec<Vec<u8>> = (0..40).map(|_| random_bytes(&mut rng, 300)).collect();
    let keys = c
        .add_many_to_pack(
            contents.iter().map(|v| &v[..]),
            &PackWriteOptions::default(),
        )
        .expect("pack");
    let sealed = c
        .packs()
        .list()
        .expect("list")
        .into_iter()
        .filter(|id| c.packs().is_sealed(*id).unwrap_or(false))
        .count();
    assert!(sealed >= 2, "full packs are sealed by the writer");
    let gone: Vec<String> = keys.iter().step_by(4).cloned().collect();
    c.delete(&gone).expect("delete");
    let last = *c.packs().list().expect("list").last().expect("pack");
    let in_open_pack: std::collections::HashSet<String> = keys
        .iter()
        .filter(|k| {
            c.meta(k)
                .ok()
                .and_then(|m| m.packed)
                .is_some_and(|l| l.pack_id == last)
        })
        .cloned()
        .collect();
    let path = c.path().to_path_buf();
    drop(c);
    for f in ["packs.idx", "packs.idx-wal", "packs.idx-shm"] {
        let _ = std::fs::remove_file(path.join(f));
    }
    let report = Container::rebuild_index_at(&path, &NoProgress).expect("rebuild");
    assert!(report.objects_indexed > 0);
    // The pack still open for appending has no sidecar yet: its objects need the index.
    assert_eq!(report.undescribed_packs, vec![last]);
    let c = Container::open(&path).expect("open");
    for (k, v) in keys.iter().zip(&contents) {
        let in_last = in_open_pack.contains(k);
        if gone.contains(k) {
            assert!(!c.has(k).expect("has"), "deleted {k} came back");
        } else if !in_last {
            // Objects of sealed packs are restored from the sidecars.
            assert_eq!(&c.get_object(k).expect("get"), v);
        }
    }
}

#[test]
fn pack_ids_removed_by_repack_are_never_reused() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(
        &dir.path().join("c"),
        &InitOptions::default().with_pack_size_target(100),
    )
    .expect("init");
    let first = c
        .add_many_to_pack(
            [&[1u8; 150][..], &[2u8; 150][..], &[3u8; 150][..]],
            &PackWriteOptions::default(),
        )
        .expect("pack");
    let stale = c.meta(&first[0]).expect("meta").packed.expect("packed");
    assert_eq!(stale.pack_id, 0);
    c.delete([&first[1]]).expect("delete");
    c.repack(&RepackOptions::default().with_all(true), &NoProgress)
        .expect("repack");
    assert!(
        c.packs().len(0).expect("len").is_none(),
        "pack 0 was rewritten under a new id"
    );
    // New writes from a fresh handle (pack hint 0) must not recreate pack 0.
    let c = Container::open(c.path()).expect("open");
    c.add_many_to_pack(
        [&[9u8; 150][..], &[8u8; 150][..]],
        &PackWriteOptions::default(),
    )
    .expect("more");
    assert!(
        c.packs().len(0).expect("len").is_none(),
        "a retired pack id was reused"
    );
    assert_eq!(c.get_object(&first[0]).expect("get"), vec![1u8; 150]);
}

#[test]
fn repack_keep_copies_large_stored_objects_as_they_are() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(&dir.path().join("c"), &InitOptions::default()).expect("init");
    let mut rng = Rng::new(21);
    let big = random_bytes(&mut rng, 6 << 20);
    let plain = text_bytes(&mut rng, 5 << 20);
    let kz = c
        .add_stream_to_pack(
            &mut &big[..],
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("compressed");
    let kp = c
        .add_stream_to_pack(&mut &plain[..], &PackWriteOptions::default())
        .expect("plain");
    let before: Vec<_> = [&kz, &kp]
        .iter()
        .map(|k| c.meta(k).expect("meta").packed.expect("p"))
        .collect();
    assert!(before[0].compressed && before[0].length > 4 << 20);
    c.repack(&RepackOptions::default().with_all(true), &NoProgress)
        .expect("repack");
    for (k, want, old) in [(&kz, &big, before[0]), (&kp, &plain, before[1])] {
        let now = c.meta(k).expect("meta").packed.expect("p");
        assert_ne!(now.pack_id, old.pack_id);
        assert_eq!(
            (now.length, now.compressed),
            (old.length, old.compressed),
            "stored bytes kept"
        );
        assert_eq!(&c.get_object(k).expect("get"), want);
    }
}
