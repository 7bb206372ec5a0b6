//! Pack sidecars (`packs/<id>.toc`) and `rebuild-index`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use rsdos::{
    CompressMode, Container, ErrorKind, HashType, InitOptions, NoProgress, ObjectMeta, ObjectType,
    PackToc, PackWriteOptions, Progress, ProgressUnit, StopFlag, TocEntry,
};
use rsdos_core::ObjectIndexExt;
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

// ---- helpers -----------------------------------------------------------------------------

const PACK_SIZE_TARGET: u64 = 64 * 1024;

fn init(dir: &Path, hash_type: HashType) -> Container {
    Container::init(
        dir,
        &InitOptions::default()
            .with_pack_size_target(PACK_SIZE_TARGET)
            .with_hash_type(hash_type),
    )
    .expect("init")
}

/// Random and compressible contents of varied sizes (a few larger than a pack target).
fn contents(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = match i % 7 {
                0 => 0,
                1 => 100_000 + rng.below(50_000) as usize,
                _ => rng.below(8_000) as usize,
            };
            if i % 2 == 0 {
                text_bytes(&mut rng, len)
            } else {
                random_bytes(&mut rng, len)
            }
        })
        .collect()
}

/// Writes `contents` into packs, half uncompressed and half compressed; returns the keys.
fn fill_packs(c: &Container, contents: &[Vec<u8>]) -> Vec<String> {
    let (a, b) = contents.split_at(contents.len() / 2);
    let mut keys = c
        .add_many_to_pack(
            a.iter().map(|v| v.as_slice()),
            &PackWriteOptions::default().with_compress(CompressMode::No),
        )
        .expect("pack uncompressed");
    keys.extend(
        c.add_many_to_pack(
            b.iter().map(|v| v.as_slice()),
            &PackWriteOptions::default().with_compress(CompressMode::Yes),
        )
        .expect("pack compressed"),
    );
    keys
}

fn seal_all(c: &Container) -> Vec<PackToc> {
    c.packs()
        .list()
        .expect("list")
        .into_iter()
        .map(|id| c.seal_pack(id).expect("seal"))
        .collect()
}

/// Metadata and content of every object, by hashkey.
fn snapshot(c: &Container) -> BTreeMap<String, (ObjectMeta, Vec<u8>)> {
    c.iter_hashkeys()
        .expect("iter")
        .map(|k| {
            let k = k.expect("key");
            let meta = c.meta(&k).expect("meta");
            let data = c.get_object(&k).expect("get");
            (k, (meta, data))
        })
        .collect()
}

fn remove_index(dir: &Path) {
    for name in ["packs.idx", "packs.idx-wal", "packs.idx-shm"] {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {name}: {e}"),
        }
    }
}

fn assert_no_rebuild_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(!name.contains(".rebuild"), "left behind: {name}");
    }
}

fn sample_toc(hash_type: HashType) -> PackToc {
    let mut rng = Rng::new(11);
    let entries = (0..20u64)
        .map(|i| TocEntry {
            hashkey: hash_type.hash_hex(&random_bytes(&mut rng, 16)),
            offset: i * 100,
            length: 100 - (i % 3) * 10,
            size: 1000 + i,
            compressed: i % 2 == 0,
            crc32c: rng.next_u64() as u32,
        })
        .collect();
    PackToc {
        hash_type,
        pack_length: 2_050,
        entries,
    }
}

/// Replaces the trailing CRC32C so that a hand-made change passes the checksum.
fn reseal_checksum(bytes: &mut [u8]) {
    let n = bytes.len() - 4;
    let crc = crc32c::crc32c(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
}

fn assert_corrupt_naming_pack(result: rsdos::Result<PackToc>, pack_id: u64, what: &str) {
    match result {
        Ok(_) => panic!("{what}: decoded"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Corrupt, "{what}: {e}");
            assert!(
                e.to_string().contains(&format!("pack {pack_id}")),
                "{what}: {e}"
            );
        }
    }
}

// ---- the sidecar format ------------------------------------------------------------------

#[test]
fn toc_round_trips_for_both_hash_types() {
    for hash_type in [HashType::Sha256, HashType::Sha1] {
        let toc = sample_toc(hash_type);
        let bytes = toc.encode();
        let hash_len = hash_type.hex_len() / 2;
        assert_eq!(bytes.len(), 29 + 20 * (hash_len + 29) + 4);
        assert_eq!(&bytes[..8], b"RSDOSTOC");
        assert_eq!(PackToc::decode(0, &bytes).expect("decode"), toc);
    }
    let empty = PackToc {
        hash_type: HashType::Sha256,
        pack_length: 0,
        entries: Vec::new(),
    };
    assert_eq!(PackToc::decode(0, &empty.encode()).expect("decode"), empty);
}

#[test]
fn decoding_truncations_and_byte_flips_never_panics() {
    let bytes = sample_toc(HashType::Sha256).encode();
    for n in 0..bytes.len() {
        assert_corrupt_naming_pack(PackToc::decode(3, &bytes[..n]), 3, "truncated");
    }
    let mut rng = Rng::new(42);
    for _ in 0..1000 {
        let mut flipped = bytes.clone();
        let i = rng.below(bytes.len() as u64) as usize;
        let mask = 1 + rng.below(255) as u8;
        flipped[i] ^= mask;
        // CRC32C detects every error burst of up to 32 bits, so every flip is caught.
        assert_corrupt_naming_pack(PackToc::decode(3, &flipped), 3, "flipped");
    }
    // Flips behind a valid checksum exercise the structural checks too.
    for _ in 0..1000 {
        let mut flipped = bytes.clone();
        let i = rng.below(bytes.len() as u64 - 4) as usize;
        flipped[i] ^= 1 + rng.below(255) as u8;
        reseal_checksum(&mut flipped);
        let _ = PackToc::decode(3, &flipped);
    }
}

#[test]
fn decode_rejects_each_kind_of_malformed_sidecar() {
    let good = sample_toc(HashType::Sha256);
    let bytes = good.encode();

    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    reseal_checksum(&mut bad_magic);
    assert_corrupt_naming_pack(PackToc::decode(5, &bad_magic), 5, "bad magic");

    let mut bad_version = bytes.clone();
    bad_version[8..12].copy_from_slice(&2u32.to_le_bytes());
    reseal_checksum(&mut bad_version);
    let err = PackToc::decode(5, &bad_version).expect_err("version 2");
    assert!(err.to_string().contains("version 2"), "{err}");

    let mut bad_hash = bytes.clone();
    bad_hash[12] = 9;
    reseal_checksum(&mut bad_hash);
    assert_corrupt_naming_pack(PackToc::decode(5, &bad_hash), 5, "hash type");

    // A huge count must be rejected from the byte length, without allocating for it.
    for count in [u64::MAX, u64::MAX / 61, 21, 19] {
        let mut bad_count = bytes.clone();
        bad_count[21..29].copy_from_slice(&count.to_le_bytes());
        reseal_checksum(&mut bad_count);
        assert_corrupt_naming_pack(PackToc::decode(5, &bad_count), 5, "count");
    }

    let mut bad_crc = bytes.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0x80;
    let err = PackToc::decode(5, &bad_crc).expect_err("checksum");
    assert!(err.to_string().contains("checksum"), "{err}");

    let mut trailing = bytes.clone();
    trailing.insert(trailing.len() - 4, 0);
    reseal_checksum(&mut trailing);
    assert_corrupt_naming_pack(PackToc::decode(5, &trailing), 5, "trailing byte");

    let mut unsorted = good.clone();
    unsorted.entries.swap(3, 4);
    let err = PackToc::decode(5, &unsorted.encode()).expect_err("unsorted");
    assert!(err.to_string().contains("out of order"), "{err}");

    let mut past_end = good.clone();
    past_end.pack_length = 1_989; // the last entry ends at 1_990
    let err = PackToc::decode(5, &past_end.encode()).expect_err("past end");
    assert!(err.to_string().contains("past the pack length"), "{err}");

    let mut overflow = good.clone();
    let e = overflow.entries.last_mut().expect("entry");
    e.length = u64::MAX;
    overflow.pack_length = u64::MAX;
    assert_corrupt_naming_pack(PackToc::decode(5, &overflow.encode()), 5, "overflow");

    // Reserved flag bits: the flags byte of the first entry.
    let mut flags = bytes.clone();
    flags[29 + 32 + 24] |= 0x02;
    reseal_checksum(&mut flags);
    assert_corrupt_naming_pack(PackToc::decode(5, &flags), 5, "flags");
}

// ---- sealing -----------------------------------------------------------------------------

#[test]
fn seal_pack_describes_the_index_rows_of_each_pack() {
    for hash_type in [HashType::Sha256, HashType::Sha1] {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = init(dir.path(), hash_type);
        let data = contents(1, 60);
        fill_packs(&c, &data);
        let ids = c.packs().list().expect("list");
        assert!(ids.len() > 2, "several packs expected, got {ids:?}");
        let mut compressed = 0;
        let last = *ids.last().expect("a pack");
        for id in ids {
            // The pack writer seals every pack it fills; only the last one is still open.
            assert_eq!(
                c.pack_toc(id).expect("toc").is_none(),
                id == last,
                "pack {id}"
            );
            let toc = c.seal_pack(id).expect("seal");
            assert!(c.packs().is_sealed(id).expect("sealed"));
            assert_eq!(c.pack_toc(id).expect("toc").as_ref(), Some(&toc));
            assert_eq!(toc.hash_type, hash_type);
            assert_eq!(
                Some(toc.pack_length),
                c.packs().len(id).expect("len"),
                "pack {id}"
            );
            let rows: Vec<_> = c
                .index()
                .iter_pack(id, 7)
                .map(|r| r.expect("row"))
                .collect();
            assert_eq!(rows.len(), toc.entries.len(), "pack {id}");
            for (row, entry) in rows.iter().zip(&toc.entries) {
                let l = row.location;
                assert_eq!(entry.hashkey, row.hashkey);
                assert_eq!(
                    (entry.offset, entry.length, entry.size, entry.compressed),
                    (l.offset, l.length, l.size, l.compressed)
                );
                let mut stored = vec![0u8; l.length as usize];
                c.packs()
                    .read_at(id, l.offset, &mut stored)
                    .expect("read stored");
                assert_eq!(entry.crc32c, crc32c::crc32c(&stored));
                compressed += usize::from(entry.compressed);
            }
        }
        assert!(compressed > 0, "some entries are compressed");
    }
}

#[test]
fn seal_pack_of_a_missing_pack_is_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    let err = c.seal_pack(3).expect_err("no pack");
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn a_sealed_pack_is_not_appended_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    c.add_many_to_pack([&b"first"[..]], &PackWriteOptions::default())
        .expect("pack");
    let toc = c.seal_pack(0).expect("seal");
    c.add_many_to_pack([&b"second"[..]], &PackWriteOptions::default())
        .expect("pack");
    assert_eq!(c.packs().len(0).expect("len"), Some(toc.pack_length));
    assert_eq!(c.packs().list().expect("list"), vec![0, 1]);
}

// ---- rebuilding the index ----------------------------------------------------------------

#[test]
fn rebuild_after_the_index_is_lost_restores_every_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    let data = contents(2, 80);
    let keys = fill_packs(&c, &data);
    let tocs = seal_all(&c);
    let loose = c.add_object(b"a loose object").expect("loose");
    let before = snapshot(&c);
    let count = c.count().expect("count");
    let size = c.total_size().expect("size");
    drop(c);

    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert_eq!(report.packs_rebuilt, tocs.len() as u64);
    let described: usize = tocs.iter().map(|t| t.entries.len()).sum();
    assert_eq!(report.objects_indexed, described as u64);
    assert!(report.undescribed_packs.is_empty(), "{report:?}");
    assert!(report.corrupt_entries.is_empty(), "{report:?}");
    assert!(report.sidecar_problems.is_empty(), "{report:?}");
    assert_eq!(report.carried_over_objects, 0);
    assert_no_rebuild_leftovers(dir.path());

    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(c.count().expect("count"), count);
    let after = c.total_size().expect("size");
    assert_eq!(after.total_size_packed, size.total_size_packed);
    assert_eq!(
        after.total_size_packed_on_disk,
        size.total_size_packed_on_disk
    );
    assert_eq!(snapshot(&c), before);
    for (key, content) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object(key).expect("get"), content);
    }
    assert_eq!(c.get_object(&loose).expect("loose"), b"a loose object");
}

#[test]
fn a_corrupt_index_fails_open_clearly_and_rebuild_fixes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(3, 40));
    seal_all(&c);
    let before = snapshot(&c);
    drop(c);

    remove_index(dir.path());
    let mut rng = Rng::new(5);
    std::fs::write(dir.path().join("packs.idx"), random_bytes(&mut rng, 8192)).expect("garbage");
    let err = Container::open(dir.path()).expect_err("open a garbage index");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    let message = err.to_string();
    assert!(message.contains("packs.idx"), "{message}");
    assert!(message.contains("rebuild-index"), "{message}");

    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert!(report.undescribed_packs.is_empty(), "{report:?}");
    assert_eq!(report.carried_over_objects, 0);
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&c), before);
}

#[test]
fn a_pack_without_sidecar_is_reported_and_not_invented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(4, 30));
    let tocs = seal_all(&c);
    let before = snapshot(&c);
    drop(c);
    // A pack as disk-objectstore writes it: raw concatenated bytes, no sidecar.
    std::fs::write(
        dir.path().join("packs").join("7"),
        b"raw bytes of some objects",
    )
    .expect("w");

    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert_eq!(report.undescribed_packs, vec![7]);
    assert_eq!(report.packs_rebuilt, tocs.len() as u64);
    let c = Container::open(dir.path()).expect("reopen");
    assert!(c.index().iter_pack(7, 100).next().is_none());
    assert_eq!(snapshot(&c), before);
}

#[test]
fn rebuild_of_an_open_container_keeps_the_rows_of_unsealed_packs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(5, 50));
    let ids = c.packs().list().expect("list");
    // Seal all packs but the last, which stays open (as the pack writer leaves it).
    let last = *ids.last().expect("a pack");
    for &id in &ids[..ids.len() - 1] {
        c.seal_pack(id).expect("seal");
    }
    let unsealed_rows = c.pack_object_count(last).expect("rows");
    assert!(unsealed_rows > 0);
    let before = snapshot(&c);

    let report = c.rebuild_index(&NoProgress).expect("rebuild");
    assert_eq!(report.undescribed_packs, vec![last]);
    assert_eq!(report.carried_over_objects, unsealed_rows);
    assert_eq!(report.packs_rebuilt, ids.len() as u64 - 1);
    assert_no_rebuild_leftovers(dir.path());
    drop(c);
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&c), before);
}

#[test]
fn a_flipped_byte_in_a_packed_object_is_a_corrupt_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(6, 40));
    let tocs = seal_all(&c);
    // The first non-empty object of the second pack.
    let pack_id = 1;
    let victim = tocs[pack_id]
        .entries
        .iter()
        .find(|e| e.length > 0)
        .expect("an object")
        .clone();
    let before = snapshot(&c);
    drop(c);

    let path = dir.path().join("packs").join(pack_id.to_string());
    let mut bytes = std::fs::read(&path).expect("read pack");
    bytes[(victim.offset + victim.length / 2) as usize] ^= 0x40;
    std::fs::write(&path, &bytes).expect("write pack");

    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert_eq!(
        report.corrupt_entries,
        vec![(pack_id as u64, victim.offset)]
    );
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(
        c.meta(&victim.hashkey).expect("meta").object_type,
        ObjectType::Missing
    );
    for (key, value) in &before {
        if key != &victim.hashkey {
            assert_eq!(&c.meta(key).expect("meta"), &value.0);
            assert_eq!(&c.get_object(key).expect("get"), &value.1);
        }
    }
}

#[test]
fn a_damaged_or_truncated_sidecar_makes_the_pack_undescribed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(7, 40));
    let tocs = seal_all(&c);
    assert!(tocs.len() >= 3);
    drop(c);
    let packs = dir.path().join("packs");
    // Pack 0: a damaged sidecar. Pack 1: the pack lost its tail.
    let toc0 = packs.join("0.toc");
    let mut bytes = std::fs::read(&toc0).expect("toc");
    bytes[40] ^= 1;
    std::fs::write(&toc0, &bytes).expect("write");
    let pack1 = std::fs::OpenOptions::new()
        .write(true)
        .open(packs.join("1"))
        .expect("open pack");
    pack1.set_len(tocs[1].pack_length - 1).expect("truncate");

    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert_eq!(report.undescribed_packs, vec![0, 1]);
    let problems: Vec<u64> = report.sidecar_problems.iter().map(|p| p.0).collect();
    assert_eq!(problems, vec![0, 1], "{report:?}");
    assert!(
        report.sidecar_problems[0].1.contains("checksum"),
        "{report:?}"
    );
    assert_eq!(report.packs_rebuilt, tocs.len() as u64 - 2);
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(String, u64)>>,
}

impl Progress for Recorder {
    fn start(&self, description: &str, total: u64, unit: ProgressUnit) {
        assert_eq!(unit, ProgressUnit::Objects);
        self.events
            .lock()
            .expect("lock")
            .push((format!("start {description}"), total));
    }
    fn advance(&self, n: u64) {
        self.events
            .lock()
            .expect("lock")
            .push(("advance".into(), n));
    }
    fn finish(&self) {
        self.events.lock().expect("lock").push(("finish".into(), 0));
    }
}

#[test]
fn rebuild_reports_progress_per_pack_and_stops_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    fill_packs(&c, &contents(8, 30));
    let tocs = seal_all(&c);
    let before = snapshot(&c);

    let stop = StopFlag::new();
    stop.stop();
    let err = c.rebuild_index(&stop).expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert_no_rebuild_leftovers(dir.path());
    assert_eq!(snapshot(&c), before, "the index is untouched");

    let recorder = Recorder::default();
    c.rebuild_index(&recorder).expect("rebuild");
    let events = recorder.events.into_inner().expect("events");
    let n = tocs.len() as u64;
    assert_eq!(events[0], ("start Rebuilding index".to_string(), n));
    let advanced: u64 = events
        .iter()
        .filter(|e| e.0 == "advance")
        .map(|e| e.1)
        .sum();
    assert_eq!(advanced, n);
    assert_eq!(events.last().map(|e| e.0.as_str()), Some("finish"));
    drop(c);
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&c), before);
}

#[test]
fn rebuild_index_at_a_folder_that_is_not_a_container_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Container::rebuild_index_at(dir.path(), &NoProgress).expect_err("no container");
    assert_eq!(err.kind(), ErrorKind::NotInitialised);
}

#[test]
fn large_objects_span_several_read_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Container::init(dir.path(), &InitOptions::default()).expect("init");
    let mut rng = Rng::new(9);
    let mut data: Vec<Vec<u8>> = (0..300)
        .map(|i| random_bytes(&mut rng, 1000 + i * 37))
        .collect();
    data.insert(150, random_bytes(&mut rng, 2_600_000));
    data.push(text_bytes(&mut rng, 1_500_000));
    fill_packs(&c, &data);
    assert_eq!(c.packs().list().expect("list"), vec![0]);
    let toc = c.seal_pack(0).expect("seal");
    assert!(toc.pack_length > 4 * 1024 * 1024);
    for entry in &toc.entries {
        let mut stored = vec![0u8; entry.length as usize];
        c.packs()
            .read_at(0, entry.offset, &mut stored)
            .expect("read");
        assert_eq!(
            entry.crc32c,
            crc32c::crc32c(&stored),
            "offset {}",
            entry.offset
        );
    }
    let before = snapshot(&c);
    drop(c);
    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert!(report.corrupt_entries.is_empty(), "{report:?}");
    assert_eq!(report.objects_indexed, toc.entries.len() as u64);
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&c), before);
}

#[test]
fn rows_past_the_sealed_length_are_carried_over_from_the_old_index() {
    use std::io::Write;

    let dir = tempfile::tempdir().expect("tempdir");
    let c = init(dir.path(), HashType::Sha256);
    c.add_many_to_pack([&b"sealed object"[..]], &PackWriteOptions::default())
        .expect("pack");
    let toc = c.seal_pack(0).expect("seal");
    // Another writer (disk-objectstore ignores sidecars) appends to the pack afterwards.
    let tail = b"appended after sealing";
    let mut appender = c.packs().open_append(0).expect("append");
    let offset = appender.position();
    appender.write_all(tail).expect("write");
    appender.sync().expect("sync");
    drop(appender);
    let key = HashType::Sha256.hash_hex(tail);
    c.index()
        .insert(&[rsdos_core::PackedEntry {
            hashkey: key.clone(),
            location: rsdos::PackedLocation {
                pack_id: 0,
                offset,
                length: tail.len() as u64,
                size: tail.len() as u64,
                compressed: false,
            },
        }])
        .expect("insert");
    assert_eq!(offset, toc.pack_length);
    let before = snapshot(&c);

    let report = c.rebuild_index(&NoProgress).expect("rebuild");
    assert_eq!(report.packs_rebuilt, 1);
    assert_eq!(report.carried_over_objects, 1);
    assert_eq!(report.objects_indexed, 2);
    assert!(report.undescribed_packs.is_empty());
    assert!(report.sidecar_problems[0].1.contains("grew"), "{report:?}");
    drop(c);
    let c = Container::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&c), before);
    assert_eq!(c.get_object(&key).expect("tail"), tail);

    // Without an old index, only what the sidecar describes comes back.
    drop(c);
    remove_index(dir.path());
    let report = Container::rebuild_index_at(dir.path(), &NoProgress).expect("rebuild");
    assert_eq!(
        (report.objects_indexed, report.carried_over_objects),
        (1, 0)
    );
}
