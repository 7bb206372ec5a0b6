//! `Container::import_from` (same and different hash types, missing keys, compression) and
//! `Container::migrate_to_zstd` (zlib objects recompressed, others kept, resumable, idempotent).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use rsdos::{
    CompressMode, CompressionAlgorithm, Container, ContainerConfig, ErrorKind, HashType,
    InitOptions, NoProgress, ObjectType, PackOptions, PackWriteOptions, Progress, ValidateOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

const PACK_SIZE_TARGET: u64 = 16 * 1024;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

fn init(path: &std::path::Path, hash_type: HashType) -> Container {
    Container::init(
        path,
        &InitOptions::default()
            .with_pack_size_target(PACK_SIZE_TARGET)
            .with_hash_type(hash_type),
    )
    .expect("init")
}

fn contents(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                let len = rng.below(3000) as usize;
                random_bytes(&mut rng, len)
            } else {
                let len = 1 + rng.below(4000) as usize;
                text_bytes(&mut rng, len)
            }
        })
        .collect()
}

/// A source with loose-only, packed-only and packed-and-loose objects.
fn source_with(
    path: &std::path::Path,
    hash_type: HashType,
    data: &[Vec<u8>],
) -> (Container, HashMap<String, Vec<u8>>) {
    let c = init(path, hash_type);
    let mut all = HashMap::new();
    let third = data.len() / 3;
    for d in &data[..2 * third] {
        all.insert(c.add_object(d).expect("add"), d.clone());
    }
    c.pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    // Half of those stay loose too; delete the loose copy of the others.
    for (i, k) in all.keys().enumerate() {
        if i % 2 == 0 {
            std::fs::remove_file(c.loose_path(k).expect("path")).expect("rm");
        }
    }
    let keys = c
        .add_many_to_pack(
            data[2 * third..].iter().map(|v| v.as_slice()),
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("pack");
    all.extend(keys.into_iter().zip(data[2 * third..].iter().cloned()));
    (c, all)
}

fn assert_packs_filled(c: &Container) {
    let ids = c.packs().list().expect("packs");
    for id in &ids[..ids.len().saturating_sub(1)] {
        let len = c.packs().len(*id).expect("len").expect("pack");
        assert!(len >= PACK_SIZE_TARGET, "pack {id} has {len} bytes");
    }
}

#[test]
fn import_with_the_same_hash_type_skips_present_objects() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = contents(1, 150);
    let (source, all) = source_with(&dir.path().join("src"), HashType::Sha256, &data);
    let dest = init(&dir.path().join("dst"), HashType::Sha256);
    // The destination already has some objects, loose and packed.
    let loose_present = dest.add_object(&data[0]).expect("add");
    let packed_present = dest
        .add_many_to_pack([data[100].as_slice()], &PackWriteOptions::default())
        .expect("pack");
    let packs_before = dest.packs().list().expect("packs").len();

    let report = dest
        .import_from(&source, None, CompressMode::No, &NoProgress)
        .expect("import");
    assert_eq!(report.skipped_present, 2, "{report:?}");
    assert_eq!(report.copied, all.len() as u64 - 2);
    assert_eq!(report.missing_in_source, 0);
    assert_eq!(report.mapping.len() as u64, report.copied);
    assert!(report.mapping.iter().all(|(s, d)| s == d));
    assert!(
        !report
            .mapping
            .iter()
            .any(|(s, _)| *s == loose_present || *s == packed_present[0])
    );
    for (k, v) in &all {
        assert_eq!(&dest.get_object(k).expect("get"), v);
    }
    // Everything imported went straight into packs, filled up to the target.
    for (k, _) in &report.mapping {
        assert_eq!(dest.meta(k).expect("meta").object_type, ObjectType::Packed);
    }
    assert!(dest.packs().list().expect("packs").len() > packs_before + 5);
    assert_packs_filled(&dest);

    // Importing again copies nothing.
    let again = dest
        .import_from(&source, None, CompressMode::No, &NoProgress)
        .expect("import");
    assert_eq!((again.copied, again.skipped_present), (0, all.len() as u64));
    let issues = dest
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(issues.is_valid(), "{issues:?}");
}

#[test]
fn import_of_given_keys_counts_missing_ones_and_compresses() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = contents(2, 60);
    let (source, all) = source_with(&dir.path().join("src"), HashType::Sha256, &data);
    let dest = init(&dir.path().join("dst"), HashType::Sha256);
    let mut keys: Vec<String> = all.keys().take(30).cloned().collect();
    keys.push(keys[0].clone()); // duplicates are imported once
    let missing = HashType::Sha256.hash_hex(b"not in the source");
    keys.push(missing.clone());

    let report = dest
        .import_from(
            &source,
            Some(keys.as_slice()),
            CompressMode::Yes,
            &NoProgress,
        )
        .expect("import");
    assert_eq!(report.copied, 30, "{report:?}");
    assert_eq!(report.missing_in_source, 1);
    assert_eq!(report.skipped_present, 0);
    assert!(!dest.has(&missing).expect("has"));
    for k in &keys[..30] {
        assert_eq!(&dest.get_object(k).expect("get"), &all[k]);
        let meta = dest.meta(k).expect("meta");
        let packed = meta.packed.expect("packed");
        assert!(packed.compressed, "{k}");
    }
    let count = dest.count().expect("count");
    assert_eq!((count.packed, count.loose), (30, 0));

    // A key of the wrong hash type is an error.
    let err = dest
        .import_from(
            &source,
            Some(&["abc".to_string()][..]),
            CompressMode::No,
            &NoProgress,
        )
        .expect_err("invalid key");
    assert_eq!(err.kind(), ErrorKind::InvalidHashkey);
}

#[test]
fn import_from_sha1_to_sha256_rehashes_and_maps_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = contents(3, 90);
    let (source, all) = source_with(&dir.path().join("src"), HashType::Sha1, &data);
    let dest = init(&dir.path().join("dst"), HashType::Sha256);
    let present = dest.add_object(&data[5]).expect("add");
    // A large object is streamed.
    let mut rng = Rng::new(9);
    let big = text_bytes(&mut rng, 3 * 1024 * 1024);
    let big_key = source.add_object(&big).expect("big");
    let mut all = all;
    all.insert(big_key.clone(), big);

    let report = dest
        .import_from(&source, None, CompressMode::Auto, &NoProgress)
        .expect("import");
    assert_eq!(report.mapping.len(), all.len(), "{report:?}");
    assert_eq!(report.missing_in_source, 0);
    assert_eq!(report.copied + report.skipped_present, all.len() as u64);
    // The one present as a loose object here is packed too (dedup is against the index).
    assert_eq!(report.copied, all.len() as u64);
    for (s, d) in &report.mapping {
        let content = &all[s];
        assert_eq!(s, &HashType::Sha1.hash_hex(content));
        assert_eq!(d, &HashType::Sha256.hash_hex(content));
        assert_eq!(&dest.get_object(d).expect("get"), content);
    }
    assert!(report.mapping.iter().any(|(_, d)| *d == present));
    assert!(report.mapping.iter().any(|(s, _)| *s == big_key));

    // Again: everything is already packed here.
    let again = dest
        .import_from(&source, None, CompressMode::No, &NoProgress)
        .expect("import");
    assert_eq!(again.copied, 0);
    assert_eq!(again.skipped_present, all.len() as u64);
    assert_eq!(again.mapping.len(), all.len());
}

// ---- migrate -------------------------------------------------------------------------------

/// A zlib container with compressed (some sealed, one large) and uncompressed packed objects
/// and loose ones.
fn zlib_container(path: &std::path::Path) -> (Container, HashMap<String, Vec<u8>>) {
    let c = init(path, HashType::Sha256);
    let mut all = HashMap::new();
    let data = contents(4, 120);
    let compressed = c
        .add_many_to_pack(
            data[..50].iter().map(|v| v.as_slice()),
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("pack");
    all.extend(compressed.into_iter().zip(data[..50].iter().cloned()));
    c.seal_pack(0).expect("seal");
    let mut rng = Rng::new(8);
    let big = text_bytes(&mut rng, 5 * 1024 * 1024);
    let big_key = c
        .add_many_to_pack(
            [big.as_slice()],
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("big")
        .remove(0);
    all.insert(big_key, big);
    let plain = c
        .add_many_to_pack(
            data[50..90].iter().map(|v| v.as_slice()),
            &PackWriteOptions::default(),
        )
        .expect("pack");
    all.extend(plain.into_iter().zip(data[50..90].iter().cloned()));
    for d in &data[90..] {
        all.insert(c.add_object(d).expect("add"), d.clone());
    }
    (c, all)
}

fn stored_head(c: &Container, key: &str) -> Option<(bool, [u8; 4])> {
    let loc = c.meta(key).expect("meta").packed?;
    let mut head = [0u8; 4];
    if loc.length >= 4 {
        c.packs()
            .read_at(loc.pack_id, loc.offset, &mut head)
            .expect("read");
    }
    Some((loc.compressed, head))
}

#[test]
fn migrate_recompresses_zlib_objects_into_zstd_and_keeps_the_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("c");
    let (c, all) = zlib_container(&path);
    let mut zlib = 0u64;
    let mut plain = 0u64;
    for k in all.keys() {
        match stored_head(&c, k) {
            Some((true, head)) => {
                assert_ne!(head, ZSTD_MAGIC);
                zlib += 1;
            }
            Some((false, _)) => plain += 1,
            None => {}
        }
    }
    assert!(zlib > 40 && plain > 30, "{zlib} {plain}");

    let packs_before = c.packs().list().expect("packs");
    let report = c.migrate_to_zstd(5, &NoProgress).expect("migrate");
    assert_eq!(report.objects_recompressed, zlib, "{report:?}");
    assert!(report.packs_rewritten >= 2);
    assert!(report.bytes_before > 0 && report.bytes_after > 0);
    assert_eq!(
        ContainerConfig::read(&path.join("config.json"))
            .expect("config")
            .compression_algorithm,
        CompressionAlgorithm::Zstd(5)
    );

    let c = Container::open(&path).expect("reopen");
    assert_eq!(
        c.config().compression_algorithm,
        CompressionAlgorithm::Zstd(5)
    );
    let mut zstd = 0u64;
    for (k, v) in &all {
        assert_eq!(&c.get_object(k).expect("get"), v, "{k}");
        match stored_head(&c, k) {
            Some((true, head)) => {
                assert_eq!(head, ZSTD_MAGIC, "{k}");
                zstd += 1;
            }
            Some((false, _)) => {}
            None => assert_eq!(c.meta(k).expect("meta").object_type, ObjectType::Loose),
        }
    }
    assert_eq!(zstd, zlib);
    // The rewritten packs are sealed; packs without zlib objects are kept as they were.
    let after = c.packs().list().expect("packs");
    let new_ids: Vec<u64> = after
        .iter()
        .copied()
        .filter(|id| !packs_before.contains(id))
        .collect();
    assert_eq!(new_ids.len() as u64, report.packs_rewritten);
    for id in &new_ids {
        assert!(c.pack_toc(*id).expect("toc").is_some(), "pack {id}");
    }
    assert!(after.len() > new_ids.len(), "uncompressed packs kept");
    let issues = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(issues.is_valid(), "{issues:?}");

    // New compressed objects of the reopened container are zstd.
    let key = c
        .add_many_to_pack(
            [b"zstd from now on ".repeat(100).as_slice()],
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("pack")
        .remove(0);
    assert_eq!(stored_head(&c, &key), Some((true, ZSTD_MAGIC)));

    // Migrating again does nothing.
    let again = c.migrate_to_zstd(5, &NoProgress).expect("again");
    assert_eq!((again.packs_rewritten, again.objects_recompressed), (0, 0));
    assert_eq!(again.bytes_before, again.bytes_after);

    let err = c.migrate_to_zstd(23, &NoProgress).expect_err("level");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// Stops the operation after `after` objects of a `Migrate pack` phase.
struct StopAfter {
    after: u64,
    done: AtomicU64,
}

impl Progress for StopAfter {
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    fn should_stop(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.after
    }
}

#[test]
fn an_interrupted_migration_leaves_every_object_readable_and_resumes() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("c");
    let (c, all) = zlib_container(&path);
    let packs = c.packs().list().expect("packs").len() as u64;
    // Stop in the middle of the second pack (after the scan of all packs).
    let stop = StopAfter {
        after: packs + 30,
        done: AtomicU64::new(0),
    };
    let err = c.migrate_to_zstd(3, &stop).expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    let c = Container::open(&path).expect("reopen");
    for (k, v) in &all {
        assert_eq!(&c.get_object(k).expect("get"), v, "{k}");
    }
    // A partial copy left behind (as if killed) is removed by the next run.
    let orphan = c
        .packs()
        .list()
        .expect("packs")
        .last()
        .copied()
        .expect("a pack")
        + 10;
    std::io::Write::write_all(
        &mut c.packs().open_append(orphan).expect("orphan"),
        b"half a pack",
    )
    .expect("write");
    let report = c.migrate_to_zstd(3, &NoProgress).expect("resume");
    assert_eq!(report.unreferenced_packs_removed, 1, "{report:?}");
    assert!(report.objects_recompressed > 0);
    assert!(c.packs().len(orphan).expect("len").is_none());
    for (k, v) in &all {
        assert_eq!(&c.get_object(k).expect("get"), v, "{k}");
        if let Some((compressed, head)) = stored_head(&c, k) {
            assert!(!compressed || head == ZSTD_MAGIC, "{k}");
        }
    }
    let issues = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(issues.is_valid(), "{issues:?}");
}
