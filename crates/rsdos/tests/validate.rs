//! `Container::validate`: every kind of damage is found, each where it is, all at once, with
//! any number of threads; progress adds up; stopping works.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rsdos::{
    Codec, CompressMode, CompressionAlgorithm, Container, ErrorKind, HashType, InitOptions,
    PackWriteOptions, PackedLocation, Progress, ProgressUnit, StopFlag, ValidateOptions,
    ValidationReport, detect_codec,
};
use rsdos_core::{ObjectIndexExt, PackedEntry};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};
use tempfile::TempDir;

/// Pack size target of the test containers: small, so that several packs are made.
const PACK_SIZE_TARGET: u64 = 64 * 1024;

/// A container with loose objects, uncompressed packed objects, zlib- and zstd-compressed
/// packed objects (both in one container), the empty object, and objects larger than the 1 MiB
/// read window, spread over several packs.
struct Fixture {
    dir: TempDir,
    c: Container,
    loose: Vec<String>,
    plain: Vec<String>,
    plain_big: String,
    zlib: Vec<String>,
    zlib_big: String,
    zstd: Vec<String>,
    zstd_big: String,
}

fn pack_many(c: &Container, contents: &[Vec<u8>], compress: CompressMode) -> Vec<String> {
    c.add_many_to_pack(
        contents.iter().map(|v| v.as_slice()),
        &PackWriteOptions::default()
            .with_compress(compress)
            .with_fsync(false),
    )
    .expect("pack")
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c");
    let c = Container::init(
        &path,
        &InitOptions::default()
            .with_pack_size_target(PACK_SIZE_TARGET)
            .with_compression_algorithm(CompressionAlgorithm::Zlib(1)),
    )
    .expect("init");
    let mut rng = Rng::new(42);

    let mut loose = vec![c.add_object(b"").expect("add empty")];
    for i in 0..30 {
        let len = 1 + rng.below(5000) as usize;
        let data = if i % 2 == 0 {
            random_bytes(&mut rng, len)
        } else {
            text_bytes(&mut rng, len)
        };
        loose.push(c.add_object(&data).expect("add loose"));
    }

    let mut contents: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..40 {
        let len = 100 + rng.below(6000) as usize;
        contents.push(random_bytes(&mut rng, len));
    }
    contents.push(random_bytes(&mut rng, 1_500_000));
    let mut plain = pack_many(&c, &contents, CompressMode::No);
    let plain_big = plain.pop().expect("big");

    let mut contents: Vec<Vec<u8>> = (0..30)
        .map(|_| {
            let len = 200 + rng.below(8000) as usize;
            text_bytes(&mut rng, len)
        })
        .collect();
    // Random data hardly compresses: stored length above the 1 MiB window.
    contents.push(random_bytes(&mut rng, 1_200_000));
    let mut zlib = pack_many(&c, &contents, CompressMode::Yes);
    let zlib_big = zlib.pop().expect("big");
    drop(c);

    // Same container, now writing zstd: both codecs end up side by side.
    let config_path = path.join("config.json");
    let config = std::fs::read_to_string(&config_path).expect("read config");
    assert!(config.contains("\"zlib+1\""), "{config}");
    std::fs::write(&config_path, config.replace("\"zlib+1\"", "\"zstd+3\"")).expect("config");
    let c = Container::open(&path).expect("reopen");
    let mut contents: Vec<Vec<u8>> = (0..30)
        .map(|_| {
            let len = 200 + rng.below(8000) as usize;
            text_bytes(&mut rng, len)
        })
        .collect();
    contents.push(random_bytes(&mut rng, 1_100_000));
    let mut zstd = pack_many(&c, &contents, CompressMode::Yes);
    let zstd_big = zstd.pop().expect("big");

    Fixture {
        dir,
        c,
        loose,
        plain,
        plain_big,
        zlib,
        zlib_big,
        zstd,
        zstd_big,
    }
}

fn validate(c: &Container, threads: usize) -> ValidationReport {
    c.validate(
        &ValidateOptions::default().with_threads(threads),
        &rsdos::NoProgress,
    )
    .expect("validate")
}

fn loc(c: &Container, key: &str) -> PackedLocation {
    c.index()
        .get(key)
        .expect("index get")
        .expect("object is packed")
}

fn pack_path(c: &Container, pack_id: u64) -> PathBuf {
    c.path().join("packs").join(pack_id.to_string())
}

fn flip_byte(path: &std::path::Path, offset: u64) {
    let mut data = std::fs::read(path).expect("read");
    data[offset as usize] ^= 0x55;
    std::fs::write(path, data).expect("write");
}

fn update_row(c: &Container, hashkey: &str, location: PackedLocation) {
    let changed = c
        .index()
        .update(&[PackedEntry {
            hashkey: hashkey.to_string(),
            location,
        }])
        .expect("update");
    assert_eq!(changed, 1);
}

/// All rows of one pack, in offset order.
fn rows_of(c: &Container, pack_id: u64) -> Vec<PackedEntry> {
    c.index()
        .iter_pack(pack_id, 1000)
        .collect::<Result<Vec<_>, _>>()
        .expect("rows")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn unreadable_keys(r: &ValidationReport) -> Vec<String> {
    r.unreadable_packed.iter().map(|(k, _)| k.clone()).collect()
}

// ---- a healthy container -----------------------------------------------------------------

#[test]
fn clean_container_validates_clean() {
    let f = fixture();
    let c = &f.c;

    // The fixture covers what it claims to.
    let count = c.count().expect("count");
    assert_eq!(count.loose, f.loose.len() as u64);
    assert!(count.pack_files >= 4, "{count:?}");
    let mut codecs = BTreeSet::new();
    for key in f.zlib.iter().chain(&f.zstd) {
        let l = loc(c, key);
        assert!(l.compressed);
        let mut head = [0u8; 4];
        c.packs()
            .read_at(l.pack_id, l.offset, &mut head)
            .expect("head");
        codecs.insert(format!("{:?}", detect_codec(&head)));
    }
    assert_eq!(
        codecs,
        BTreeSet::from([format!("{:?}", Codec::Zlib), format!("{:?}", Codec::Zstd)])
    );
    assert_eq!(loc(c, &f.plain[0]).length, 0, "the empty object is packed");
    assert!(loc(c, &f.plain_big).length > 1024 * 1024);
    assert!(loc(c, &f.zlib_big).length > 1024 * 1024);
    assert!(loc(c, &f.zstd_big).length > 1024 * 1024);

    for threads in [1, 3] {
        let r = validate(c, threads);
        assert!(r.is_valid(), "{r}");
        assert_eq!(r.issue_count(), 0);
        assert_eq!(r, ValidationReport::default());
        assert_eq!(r.to_string(), "no problems found");
    }
}

#[test]
fn trailing_pack_bytes_and_sandbox_leftovers_are_not_issues() {
    let f = fixture();
    let c = &f.c;
    let pack = loc(c, &f.plain[1]).pack_id;
    let mut data = std::fs::read(pack_path(c, pack)).expect("read");
    data.extend_from_slice(b"bytes of an interrupted packing, referenced by no row");
    std::fs::write(pack_path(c, pack), data).expect("write");
    std::fs::write(c.path().join("sandbox").join("leftover"), b"crash").expect("sandbox");
    let r = validate(c, 2);
    assert!(r.is_valid(), "{r}");
}

#[test]
fn flat_sha1_container_is_checked_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Container::init(
        dir.path(),
        &InitOptions::default()
            .with_loose_prefix_len(0)
            .with_hash_type(HashType::Sha1),
    )
    .expect("init");
    let mut rng = Rng::new(3);
    let keys: Vec<String> = (0..10)
        .map(|_| {
            let data = random_bytes(&mut rng, 1000);
            c.add_object(&data).expect("add")
        })
        .collect();
    assert_eq!(keys[0].len(), 40);
    assert!(validate(&c, 2).is_valid());

    flip_byte(&c.loose_path(&keys[3]).expect("path"), 10);
    std::fs::write(c.path().join("loose").join("notes.txt"), b"x").expect("junk");
    // A sha256-long name is not a sha1 hashkey.
    std::fs::write(c.path().join("loose").join("a".repeat(64)), b"x").expect("junk");
    let r = validate(&c, 2);
    assert_eq!(r.invalid_hashes_loose, vec![keys[3].clone()]);
    assert_eq!(
        r.invalid_loose_names,
        vec![
            format!("loose/{}", "a".repeat(64)),
            "loose/notes.txt".to_string()
        ]
    );
    assert_eq!(r.issue_count(), 3, "{r}");
}

// ---- one kind of damage at a time ----------------------------------------------------------

#[test]
fn flipped_byte_in_loose_file_is_reported_for_that_key_only() {
    let f = fixture();
    let key = &f.loose[5];
    flip_byte(&f.c.loose_path(key).expect("path"), 0);
    let r = validate(&f.c, 2);
    assert_eq!(r.invalid_hashes_loose, vec![key.clone()]);
    assert_eq!(r.issue_count(), 1, "{r}");
    assert!(!r.is_valid());
    assert!(r.to_string().contains(key.as_str()));
}

#[test]
fn flipped_byte_in_uncompressed_packed_objects_is_reported() {
    let f = fixture();
    let c = &f.c;
    let small = &f.plain[7];
    let l = loc(c, small);
    flip_byte(&pack_path(c, l.pack_id), l.offset + l.length / 2);
    // Past the first 256 KiB chunk of the large (streamed) object.
    let l = loc(c, &f.plain_big);
    flip_byte(&pack_path(c, l.pack_id), l.offset + l.length - 3);
    let r = validate(c, 2);
    assert_eq!(
        r.invalid_hashes_packed,
        sorted(vec![small.clone(), f.plain_big.clone()])
    );
    assert_eq!(r.issue_count(), 2, "{r}");
}

#[test]
fn corrupt_compressed_bytes_are_reported_for_that_key_only() {
    let f = fixture();
    let c = &f.c;
    let targets = [
        f.zlib[4].clone(),
        f.zstd[4].clone(),
        f.zlib_big.clone(),
        f.zstd_big.clone(),
    ];
    for key in &targets {
        let l = loc(c, key);
        assert!(l.compressed);
        flip_byte(&pack_path(c, l.pack_id), l.offset + l.length / 2);
    }
    let r = validate(c, 2);
    let mut found: Vec<String> = r.invalid_hashes_packed.clone();
    found.extend(unreadable_keys(&r));
    // A damaged stream may also decompress to a different length.
    found.extend(r.invalid_sizes_packed.clone());
    assert_eq!(sorted(found), sorted(targets.to_vec()), "{r}");
    assert!(r.invalid_hashes_loose.is_empty());
    assert!(r.overlapping_packed.is_empty());
    assert!(r.missing_packs.is_empty() && r.rows_pointing_nowhere.is_empty());
    // zlib's checksum catches any flipped byte.
    for key in [&f.zlib[4], &f.zlib_big] {
        assert!(unreadable_keys(&r).contains(key), "{r}");
    }
    for (_, detail) in &r.unreadable_packed {
        assert!(detail.contains("cannot decompress"), "{detail}");
    }
}

#[test]
fn edited_sizes_are_invalid_sizes() {
    let f = fixture();
    let c = &f.c;
    let plain = &f.plain[3];
    let mut l = loc(c, plain);
    l.size += 1;
    update_row(c, plain, l);
    let zlib = &f.zlib[3];
    let mut l = loc(c, zlib);
    l.size -= 1;
    update_row(c, zlib, l);
    let zstd = &f.zstd_big;
    let mut l = loc(c, zstd);
    l.size += 1000;
    update_row(c, zstd, l);
    let r = validate(c, 2);
    assert_eq!(
        r.invalid_sizes_packed,
        sorted(vec![plain.clone(), zlib.clone(), zstd.clone()])
    );
    // The content itself is intact.
    assert!(r.invalid_hashes_packed.is_empty(), "{r}");
    assert_eq!(r.issue_count(), 3, "{r}");
}

#[test]
fn overlapping_rows_are_reported() {
    let f = fixture();
    let c = &f.c;
    // Two neighbours of one pack: move the later one into the earlier one.
    let pack = loc(c, &f.plain[1]).pack_id;
    let rows = rows_of(c, pack);
    let pair = rows
        .windows(2)
        .find(|w| w[0].location.length >= 2 && w[1].location.length > 0)
        .expect("two neighbours");
    let (a, b) = (&pair[0], &pair[1]);
    let mut moved = b.location;
    moved.offset = a.location.offset + 1;
    update_row(c, &b.hashkey, moved);

    // Two rows inside one large row: both overlap it, also the one that does not overlap
    // its direct predecessor.
    let big = loc(c, &f.plain_big);
    let (x, y) = (&f.plain[10], &f.plain[20]);
    for (key, delta) in [(x, 10), (y, 600_000)] {
        let mut l = loc(c, key);
        l.pack_id = big.pack_id;
        l.offset = big.offset + delta;
        update_row(c, key, l);
    }

    let r = validate(c, 2);
    let expected = sorted(vec![b.hashkey.clone(), x.clone(), y.clone()]);
    assert_eq!(r.overlapping_packed, expected, "{r}");
    // Their rows now point at other bytes.
    assert_eq!(r.invalid_hashes_packed, expected);
    assert_eq!(r.issue_count(), 6, "{r}");
}

#[test]
fn deleted_pack_is_missing_and_its_rows_point_nowhere() {
    let f = fixture();
    let c = &f.c;
    let pack = loc(c, &f.zstd[2]).pack_id;
    let keys = sorted(rows_of(c, pack).into_iter().map(|e| e.hashkey).collect());
    assert!(!keys.is_empty());
    std::fs::remove_file(pack_path(c, pack)).expect("delete pack");
    for threads in [1, 4] {
        let r = validate(c, threads);
        assert_eq!(r.missing_packs, vec![pack]);
        assert_eq!(r.rows_pointing_nowhere, keys);
        assert_eq!(r.issue_count(), 1 + keys.len(), "{r}");
    }
}

#[test]
fn truncated_pack_makes_only_the_cut_objects_unreadable() {
    let f = fixture();
    let c = &f.c;
    let pack = loc(c, &f.plain[1]).pack_id;
    let rows = rows_of(c, pack);
    let last = rows
        .iter()
        .max_by_key(|e| e.location.offset + e.location.length)
        .expect("rows");
    let new_len = last.location.offset + last.location.length / 2;
    let expected = sorted(
        rows.iter()
            // A row of length 0 reads nothing: it cannot be cut.
            .filter(|e| e.location.length > 0 && e.location.offset + e.location.length > new_len)
            .map(|e| e.hashkey.clone())
            .collect(),
    );
    assert!(!expected.is_empty() && expected.len() < rows.len());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(pack_path(c, pack))
        .expect("open");
    file.set_len(new_len).expect("truncate");
    drop(file);
    let r = validate(c, 2);
    assert_eq!(unreadable_keys(&r), expected, "{r}");
    assert_eq!(r.issue_count(), expected.len(), "{r}");
    for (_, detail) in &r.unreadable_packed {
        assert!(detail.contains(&format!("pack {pack}")), "{detail}");
    }
}

#[test]
fn junk_in_loose_folder_is_reported_as_invalid_names() {
    let f = fixture();
    let loose = f.c.path().join("loose");
    std::fs::create_dir_all(loose.join("ab")).expect("shard");
    std::fs::write(loose.join("ab").join("cd"), b"too short").expect("junk");
    std::fs::write(loose.join("README"), b"not a shard").expect("junk");
    std::fs::create_dir_all(loose.join("ZZ")).expect("uppercase shard");
    let upper = f.loose[2][2..].to_uppercase();
    let shard = &f.loose[2][..2];
    std::fs::write(loose.join(shard).join(&upper), b"x").expect("junk");
    std::fs::create_dir_all(loose.join(shard).join("0".repeat(62))).expect("folder");
    let r = validate(&f.c, 2);
    assert_eq!(
        r.invalid_loose_names,
        sorted(vec![
            "loose/README".into(),
            "loose/ZZ".into(),
            "loose/ab/cd".into(),
            format!("loose/{shard}/{upper}"),
            format!("loose/{shard}/{}", "0".repeat(62)),
        ])
    );
    assert_eq!(r.issue_count(), 5, "{r}");
}

#[test]
fn missing_or_read_only_folders_are_config_problems() {
    let f = fixture();
    std::fs::remove_dir(f.c.path().join("duplicates")).expect("remove duplicates");
    use std::os::unix::fs::PermissionsExt;
    let sandbox = f.c.path().join("sandbox");
    std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    let r = validate(&f.c, 2);
    std::fs::set_permissions(&sandbox, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(
        r.config_problems
            .iter()
            .any(|p| p.starts_with("duplicates/")),
        "{r}"
    );
    assert!(
        r.config_problems
            .iter()
            .any(|p| p == "sandbox/ is read-only"),
        "{r}"
    );
    assert_eq!(r.issue_count(), r.config_problems.len(), "{r}");
}

// ---- everything at once ------------------------------------------------------------------

/// Damages the fixture in every way at once; returns the expected report (error texts of
/// `unreadable_packed` left empty).
fn damage_everything(f: &Fixture) -> ValidationReport {
    let c = &f.c;
    let mut want = ValidationReport::default();

    // A loose file.
    flip_byte(&c.loose_path(&f.loose[1]).expect("path"), 0);
    want.invalid_hashes_loose.push(f.loose[1].clone());
    // A junk name.
    std::fs::write(
        c.loose_path(&f.loose[1]).expect("path").with_file_name("x"),
        b"",
    )
    .expect("junk");
    want.invalid_loose_names
        .push(format!("loose/{}/x", &f.loose[1][..2]));

    // A deleted pack (one holding zstd objects).
    let deleted = loc(c, &f.zstd[0]).pack_id;
    let gone: Vec<String> = rows_of(c, deleted).into_iter().map(|e| e.hashkey).collect();
    std::fs::remove_file(pack_path(c, deleted)).expect("delete pack");
    want.missing_packs.push(deleted);
    want.rows_pointing_nowhere.extend(gone.iter().cloned());
    let alive = |k: &String| loc(c, k).pack_id != deleted;

    // A flipped uncompressed byte, an edited size, an overlap: in other packs.
    let plain: Vec<&String> = f.plain[1..].iter().filter(|k| alive(k)).collect();
    let l = loc(c, plain[0]);
    flip_byte(&pack_path(c, l.pack_id), l.offset);
    want.invalid_hashes_packed.push(plain[0].clone());
    let mut l = loc(c, plain[1]);
    l.size *= 2;
    update_row(c, plain[1], l);
    want.invalid_sizes_packed.push(plain[1].clone());
    let big = loc(c, &f.plain_big);
    let mut l = loc(c, plain[2]);
    l.pack_id = big.pack_id;
    l.offset = big.offset + 5;
    update_row(c, plain[2], l);
    want.overlapping_packed.push(plain[2].clone());
    want.invalid_hashes_packed.push(plain[2].clone());

    // A corrupt zlib stream.
    let zlib: Vec<&String> = f.zlib.iter().filter(|k| alive(k)).collect();
    let l = loc(c, zlib[0]);
    flip_byte(&pack_path(c, l.pack_id), l.offset + l.length / 2);
    want.unreadable_packed
        .push((zlib[0].clone(), String::new()));

    // A truncated pack: the large zlib object's own pack, cut in its middle.
    let l = loc(c, &f.zlib_big);
    assert!(l.pack_id != deleted);
    let rows = rows_of(c, l.pack_id);
    let cut = l.offset + l.length / 2;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(pack_path(c, l.pack_id))
        .expect("open");
    file.set_len(cut).expect("truncate");
    for e in rows {
        if e.location.length > 0 && e.location.offset + e.location.length > cut {
            want.unreadable_packed.push((e.hashkey, String::new()));
        }
    }

    for v in [
        &mut want.invalid_hashes_loose,
        &mut want.invalid_loose_names,
        &mut want.rows_pointing_nowhere,
        &mut want.invalid_hashes_packed,
        &mut want.invalid_sizes_packed,
        &mut want.overlapping_packed,
    ] {
        v.sort();
        v.dedup();
    }
    want.unreadable_packed.sort();
    want.unreadable_packed.dedup();
    want
}

#[test]
fn all_problems_are_reported_together() {
    let f = fixture();
    let want = damage_everything(&f);
    let r = validate(&f.c, 3);
    assert_eq!(r.invalid_hashes_loose, want.invalid_hashes_loose, "{r}");
    assert_eq!(r.invalid_loose_names, want.invalid_loose_names, "{r}");
    assert_eq!(r.missing_packs, want.missing_packs, "{r}");
    assert_eq!(r.rows_pointing_nowhere, want.rows_pointing_nowhere, "{r}");
    assert_eq!(r.invalid_hashes_packed, want.invalid_hashes_packed, "{r}");
    assert_eq!(r.invalid_sizes_packed, want.invalid_sizes_packed, "{r}");
    assert_eq!(r.overlapping_packed, want.overlapping_packed, "{r}");
    let want_unreadable: Vec<String> = want
        .unreadable_packed
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(unreadable_keys(&r), want_unreadable, "{r}");
    assert!(r.config_problems.is_empty() && r.unreadable_loose.is_empty());
    assert_eq!(r.issue_count(), want.issue_count());
    assert_eq!(r.to_string().lines().count(), r.issue_count());
}

#[test]
fn one_thread_and_four_threads_give_identical_reports() {
    let f = fixture();
    assert_eq!(validate(&f.c, 1), validate(&f.c, 4));
    damage_everything(&f);
    let one = validate(&f.c, 1);
    assert!(one.issue_count() > 10, "{one}");
    assert_eq!(one, validate(&f.c, 4));
    assert_eq!(one, validate(&f.c, 2));
}

// ---- progress and stopping -----------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Phase {
    description: String,
    total: u64,
    unit: ProgressUnit,
    advanced: u64,
    finished: bool,
}

/// Records phases; optionally asks to stop once `stop_in` has advanced, or runs hooks when a
/// phase starts or advances.
#[derive(Default)]
struct Recorder {
    phases: Mutex<Vec<Phase>>,
    stop_in: Option<&'static str>,
    stopping: AtomicBool,
    #[allow(clippy::type_complexity)]
    on_start: Option<Box<dyn Fn(&str) + Send + Sync>>,
    #[allow(clippy::type_complexity)]
    on_advance: Option<Box<dyn Fn(&str) + Send + Sync>>,
}

impl Progress for Recorder {
    fn start(&self, description: &str, total: u64, unit: ProgressUnit) {
        if let Some(hook) = &self.on_start {
            hook(description);
        }
        self.phases.lock().expect("lock").push(Phase {
            description: description.to_string(),
            total,
            unit,
            advanced: 0,
            finished: false,
        });
    }
    fn advance(&self, n: u64) {
        let description = {
            let mut phases = self.phases.lock().expect("lock");
            let phase = phases.last_mut().expect("advance before start");
            assert!(!phase.finished, "advance after finish");
            phase.advanced += n;
            if n > 0 && self.stop_in == Some(phase.description.as_str()) {
                self.stopping.store(true, Ordering::SeqCst);
            }
            phase.description.clone()
        };
        if let Some(hook) = &self.on_advance {
            hook(&description);
        }
    }
    fn finish(&self) {
        let mut phases = self.phases.lock().expect("lock");
        phases.last_mut().expect("finish before start").finished = true;
    }
    fn should_stop(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

fn assert_phases_add_up(recorder: &Recorder, loose: u64, packed: u64) {
    let phases = recorder.phases.lock().expect("lock").clone();
    let summary: Vec<(&str, u64, ProgressUnit, u64, bool)> = phases
        .iter()
        .map(|p| {
            (
                p.description.as_str(),
                p.total,
                p.unit,
                p.advanced,
                p.finished,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("Loose objects", loose, ProgressUnit::Objects, loose, true),
            (
                "Packed objects",
                packed,
                ProgressUnit::Objects,
                packed,
                true
            ),
        ]
    );
}

#[test]
fn progress_totals_and_advances_add_up() {
    let f = fixture();
    let count = f.c.count().expect("count");
    assert!(count.loose > 0 && count.packed > 0);
    let recorder = Recorder::default();
    let r =
        f.c.validate(&ValidateOptions::default().with_threads(3), &recorder)
            .expect("validate");
    assert!(r.is_valid(), "{r}");
    assert_phases_add_up(&recorder, count.loose, count.packed);

    // Also when a pack is missing (its rows are counted without being read) and junk sits
    // in loose/ (not an object: not counted).
    damage_everything(&f);
    let recorder = Recorder::default();
    f.c.validate(&ValidateOptions::default().with_threads(2), &recorder)
        .expect("validate");
    assert_phases_add_up(&recorder, count.loose, count.packed);
}

#[test]
fn stop_flag_set_before_the_call_interrupts() {
    let f = fixture();
    let flag = StopFlag::new();
    flag.stop();
    let e =
        f.c.validate(&ValidateOptions::default(), &flag)
            .expect_err("stopped");
    assert_eq!(e.kind(), ErrorKind::Interrupted);
}

#[test]
fn stop_requested_during_either_phase_interrupts() {
    let f = fixture();
    // Enough loose objects for several batches.
    let mut rng = Rng::new(9);
    for _ in 0..1200 {
        let data = random_bytes(&mut rng, 64);
        f.c.add_object(&data).expect("add");
    }
    for phase in ["Loose objects", "Packed objects"] {
        for threads in [1, 3] {
            let recorder = Recorder {
                stop_in: Some(phase),
                ..Recorder::default()
            };
            let e =
                f.c.validate(&ValidateOptions::default().with_threads(threads), &recorder)
                    .expect_err("stopped");
            assert_eq!(e.kind(), ErrorKind::Interrupted, "{phase}");
            let phases = recorder.phases.lock().expect("lock");
            let last = phases.last().expect("a phase");
            assert_eq!(last.description, phase);
            assert!(!last.finished);
            if phase == "Loose objects" {
                assert!(last.advanced < last.total, "stopped early: {last:?}");
            }
        }
    }
}

#[test]
fn loose_files_vanishing_during_validation_are_skipped() {
    // One flat folder of many files: the listing is read ahead in large blocks, so files
    // deleted after the first batch are still listed, then fail to open.
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Container::init(dir.path(), &InitOptions::default().with_loose_prefix_len(0))
        .expect("init");
    let mut rng = Rng::new(11);
    for _ in 0..600 {
        let data = random_bytes(&mut rng, 100);
        c.add_object(&data).expect("add");
    }
    let loose = c.path().join("loose");
    // As if everything were packed and cleaned by another process meanwhile.
    let recorder = Recorder {
        on_advance: Some(Box::new(move |phase| {
            if phase == "Loose objects" {
                for entry in std::fs::read_dir(&loose).expect("list").flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        })),
        ..Recorder::default()
    };
    let r = c
        .validate(&ValidateOptions::default().with_threads(1), &recorder)
        .expect("validate");
    assert!(r.is_valid(), "{r}");
    let phases = recorder.phases.lock().expect("lock");
    assert_eq!(phases[0].total, 600);
    assert!(
        phases[0].advanced <= 600 && phases[0].finished,
        "{:?}",
        phases[0]
    );
}

/// Validation takes no maintenance lock (`delete` takes it: it would wait, then fail), and a
/// damaged row deleted while validation runs is not reported.
#[test]
fn runs_beside_writers_and_skips_rows_deleted_meanwhile() {
    let f = fixture();
    let c = f.c.clone();
    // Damage an object, then delete it as soon as the packed phase starts: the damaged row
    // is either never seen or found deleted when the problem is confirmed.
    let key = f.plain[4].clone();
    let l = loc(&c, &key);
    flip_byte(&pack_path(&c, l.pack_id), l.offset);
    let k = key.clone();
    let recorder = Recorder {
        on_start: Some(Box::new(move |phase| {
            if phase == "Packed objects" {
                c.delete([k.as_str()]).expect("delete");
            }
        })),
        ..Recorder::default()
    };
    let r =
        f.c.validate(&ValidateOptions::default().with_threads(2), &recorder)
            .expect("validate");
    assert!(r.is_valid(), "{r}");
    assert!(!f.c.has(&key).expect("has"));
    drop(f.dir);
}
