//! The Container's behaviour on the default storage (local folder + SQLite).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rsdos::{
    CompressMode, CompressionAlgorithm, Container, ErrorKind, HashType, InitOptions, ObjectType,
    OpenOptions, PackWriteOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

fn new_container(dir: &Path, opts: InitOptions) -> Container {
    Container::init(&dir.join("c"), &opts).expect("init")
}

fn packed(compress: CompressMode) -> PackWriteOptions {
    PackWriteOptions::default().with_compress(compress)
}

#[test]
fn init_writes_the_disk_objectstore_layout() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    for sub in ["loose", "packs", "sandbox", "duplicates"] {
        assert!(c.path().join(sub).is_dir(), "{sub}");
    }
    assert!(c.path().join("packs.idx").is_file());
    let text = std::fs::read_to_string(c.path().join("config.json")).expect("config");
    let expected_prefix = "{\"container_version\": 1, \"loose_prefix_len\": 2, \"pack_size_target\": 4294967296, \"hash_type\": \"sha256\", \"container_id\": \"";
    assert!(text.starts_with(expected_prefix), "{text}");
    assert!(
        text.ends_with("\", \"compression_algorithm\": \"zlib+1\"}"),
        "{text}"
    );
    assert!(Container::is_initialised(c.path()));
}

#[test]
fn init_refuses_non_empty_folders_and_existing_containers() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("file"), b"x").expect("write");
    let err = Container::init(dir.path(), &InitOptions::default()).expect_err("non-empty");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert!(err.to_string().contains("not empty"), "{err}");
    let c = new_container(dir.path(), InitOptions::default());
    let err = Container::init(c.path(), &InitOptions::default()).expect_err("existing");
    assert!(err.to_string().contains("already a container"), "{err}");
}

#[test]
fn init_validates_options() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = [
        InitOptions::default().with_loose_prefix_len(64),
        InitOptions::default().with_pack_size_target(0),
        InitOptions::default()
            .with_hash_type(HashType::Sha1)
            .with_loose_prefix_len(40),
    ];
    for (i, opts) in bad.into_iter().enumerate() {
        let err = Container::init(&dir.path().join(i.to_string()), &opts).expect_err("invalid");
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(
            !dir.path().join(i.to_string()).exists(),
            "nothing created on invalid options"
        );
    }
    for s in [
        "zlib", "zlib+0", "zlib+10", "lz4+1", "zstd+0", "zstd+23", "zlib+1x", "",
    ] {
        assert!(s.parse::<CompressionAlgorithm>().is_err(), "{s}");
    }
}

#[test]
fn open_reports_what_is_wrong() {
    let dir = tempfile::tempdir().expect("tmp");
    let err = Container::open(&dir.path().join("none")).expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotInitialised);
    assert!(err.to_string().contains("rsdos init"), "{err}");
    let c = new_container(dir.path(), InitOptions::default());
    let cfg = c.path().join("config.json");
    let original = std::fs::read_to_string(&cfg).expect("read");
    for (bad, needle) in [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        (&original.replace("sha256", "md5"), "unknown hash type"),
        (
            &original.replace("\"loose_prefix_len\": 2", "\"loose_prefix_len\": -1"),
            "loose_prefix_len",
        ),
        (&original.replace("zlib+1", "zlib+99"), "zlib level"),
    ] {
        std::fs::write(&cfg, bad).expect("write");
        let err = Container::open(c.path()).expect_err(bad);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
        assert!(err.to_string().contains("config.json"), "{err}");
    }
    // Optional fields get their defaults (containers older than disk-objectstore 0.5).
    let minimal = original
        .replace(", \"compression_algorithm\": \"zlib+1\"", "")
        .replace("\"container_version\": 1, ", "");
    std::fs::write(&cfg, minimal).expect("write");
    let opened = Container::open(c.path()).expect("open minimal");
    assert_eq!(
        opened.config().compression_algorithm,
        CompressionAlgorithm::Zlib(1)
    );
    std::fs::write(&cfg, &original).expect("restore");
    std::fs::remove_dir(c.path().join("sandbox")).expect("rm");
    let err = Container::open(c.path()).expect_err("missing folder");
    assert_eq!(err.kind(), ErrorKind::NotInitialised);
    assert!(err.to_string().contains("sandbox"), "{err}");
}

#[test]
fn both_hash_types_name_objects_by_their_digest() {
    let dir = tempfile::tempdir().expect("tmp");
    let c256 = Container::init(&dir.path().join("a"), &InitOptions::default()).expect("init");
    let c1 = Container::init(
        &dir.path().join("b"),
        &InitOptions::default().with_hash_type(HashType::Sha1),
    )
    .expect("init");
    assert_eq!(
        c256.add_object(b"hello").expect("add"),
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(
        c1.add_object(b"hello").expect("add"),
        "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
    );
    let keys = c1
        .add_many_to_pack([&b"hello"[..], b"world"], &packed(CompressMode::Yes))
        .expect("pack");
    assert_eq!(c1.get_object(&keys[1]).expect("get"), b"world");
}

#[test]
fn loose_objects_land_in_their_shard_and_are_not_rewritten() {
    for prefix in [0usize, 2, 5] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = new_container(
            dir.path(),
            InitOptions::default().with_loose_prefix_len(prefix),
        );
        let key = c.add_object(b"content").expect("add");
        let path = c.loose_path(&key).expect("path");
        let expected = if prefix == 0 {
            c.path().join("loose").join(&key)
        } else {
            c.path()
                .join("loose")
                .join(&key[..prefix])
                .join(&key[prefix..])
        };
        assert_eq!(path, expected);
        assert_eq!(std::fs::read(&path).expect("read"), b"content");
        let before = std::fs::metadata(&path).expect("stat");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(c.add_object(b"content").expect("again"), key);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").ino(),
            before.ino(),
            "rewritten"
        );
        assert_eq!(
            std::fs::read_dir(c.path().join("sandbox"))
                .expect("ls")
                .count(),
            0
        );
    }
}

#[test]
fn loose_write_of_packed_content_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let keys = c
        .add_many_to_pack([&b"abc"[..]], &packed(CompressMode::No))
        .expect("pack");
    assert_eq!(c.add_object(b"abc").expect("add"), keys[0]);
    assert_eq!(c.count().expect("count").loose, 0);
}

#[test]
fn streamed_objects_are_not_held_in_memory_and_read_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut rng = Rng::new(1);
    let data = random_bytes(&mut rng, 5 << 20);
    let key = c.add_stream(&mut &data[..]).expect("add");
    assert_eq!(key, HashType::Sha256.hash_hex(&data));
    let mut r = c.open_object(&key).expect("open");
    assert_eq!(r.size(), data.len() as u64);
    let mut out = Vec::new();
    r.read_to_end(&mut out).expect("read");
    assert!(out == data);
}

#[test]
fn malformed_hashkeys_are_errors_never_paths() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let good = c.add_object(b"x").expect("add");
    let bad = [
        "",
        "../x",
        "..",
        "/etc/passwd",
        &good.to_uppercase(),
        &good[..63],
        &format!("{good}0"),
        &good.replace('a', "g"),
    ];
    for k in bad {
        for err in [
            c.get_object(k).expect_err("get"),
            c.open_object(k).expect_err("open"),
            c.meta(k).expect_err("meta"),
            c.has(k).expect_err("has"),
            c.delete([k]).expect_err("delete"),
            c.read_many([k], true).expect_err("read_many"),
            c.loose_path(k).expect_err("path"),
        ] {
            assert_eq!(err.kind(), ErrorKind::InvalidHashkey, "{k:?}: {err}");
        }
    }
    assert!(c.has(&good).expect("has"));
}

#[test]
fn missing_objects_are_not_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let key = HashType::Sha256.hash_hex(b"never stored");
    assert_eq!(
        c.get_object(&key).expect_err("missing").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(c.meta(&key).expect("meta").object_type, ObjectType::Missing);
    assert!(!c.has(&key).expect("has"));
}

#[test]
fn add_many_to_pack_returns_keys_in_input_order_and_stores_each_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(
        dir.path(),
        InitOptions::default().with_pack_size_target(4096),
    );
    let mut rng = Rng::new(2);
    let mut contents: Vec<Vec<u8>> = (0..300)
        .map(|i| random_bytes(&mut rng, (i * 37) % 900))
        .collect();
    contents.push(contents[5].clone());
    contents.push(Vec::new());
    contents.push(Vec::new());
    let keys = c
        .add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::No))
        .expect("pack");
    assert_eq!(keys.len(), contents.len());
    for (k, v) in keys.iter().zip(&contents) {
        assert_eq!(k, &HashType::Sha256.hash_hex(v));
        assert_eq!(&c.get_object(k).expect("get"), v);
    }
    let distinct: HashSet<&String> = keys.iter().collect();
    let count = c.count().expect("count");
    assert_eq!(count.packed, distinct.len() as u64);
    assert_eq!(count.loose, 0);
    assert!(
        count.pack_files > 5,
        "small target must give several packs: {count:?}"
    );
    // No holes: every pack is exactly the sum of its objects, and every pack but the last
    // reached the target (disk-objectstore's pack choice).
    let sizes = c.total_size().expect("size");
    assert_eq!(
        sizes.total_size_packfiles_on_disk,
        sizes.total_size_packed_on_disk
    );
    let ids = c.packs().list().expect("list");
    for id in &ids[..ids.len() - 1] {
        assert!(c.packs().len(*id).expect("len").unwrap_or(0) >= 4096);
    }
    // Writing the same objects again adds nothing.
    c.add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::No))
        .expect("again");
    assert_eq!(c.total_size().expect("size"), sizes);
}

/// Rows of a direct-to-pack write are inserted on a helper thread while the pack is written;
/// none may be visible (to another handle, as another process) before the pack commits, and
/// every one must be after, also across several packs.
#[test]
fn add_many_to_pack_rows_are_invisible_until_their_pack_commits() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(
        dir.path(),
        InitOptions::default().with_pack_size_target(64 << 20),
    );
    let other = Container::open(c.path()).expect("open");
    let mut rng = Rng::new(9);
    let contents: Vec<Vec<u8>> = (0..12_000)
        .map(|i| random_bytes(&mut rng, 40 + i % 400))
        .collect();
    let first_key = HashType::Sha256.hash_hex(&contents[0]);
    let mut checked = false;
    let keys = c
        .add_many_to_pack(
            contents.iter().enumerate().map(|(i, v)| {
                if i == 9_000 {
                    // 8,192 rows were handed to the index's helper thread by now (it runs:
                    // its name is in the process's thread list), and none is committed.
                    assert!(thread_names().iter().any(|n| n == "rsdos-index-row"));
                    assert_eq!(other.count().expect("count").packed, 0);
                    assert_eq!(
                        other.get_object(&first_key).map_err(|e| e.kind()),
                        Err(ErrorKind::NotFound)
                    );
                    checked = true;
                }
                &v[..]
            }),
            &packed(CompressMode::No),
        )
        .expect("pack");
    assert!(checked);
    assert_eq!(other.count().expect("count").packed, 12_000);
    for (k, v) in keys.iter().zip(&contents).step_by(97) {
        assert_eq!(&other.get_object(k).expect("get"), v);
    }

    // Several packs of ~4,000 rows each: each pack's rows commit when it fills up.
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(
        dir.path(),
        InitOptions::default().with_pack_size_target(1 << 20),
    );
    let keys = c
        .add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::No))
        .expect("pack");
    let count = c.count().expect("count");
    assert_eq!(count.packed, 12_000);
    assert!(count.pack_files >= 2, "{count:?}");
    let sizes = c.total_size().expect("size");
    assert_eq!(
        sizes.total_size_packfiles_on_disk,
        sizes.total_size_packed_on_disk
    );
    for (k, v) in keys.iter().zip(&contents).step_by(89) {
        assert_eq!(&c.get_object(k).expect("get"), v);
    }
}

/// The names of this process's threads (Linux truncates them to 15 bytes).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .expect("list threads")
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_string())
        .collect()
}

/// `add_many_to_pack` of `contents` followed by an input that fails: the call must fail with
/// that input's error.
fn write_then_fail(c: &Container, contents: &[Vec<u8>], compress: CompressMode) {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the source went away"))
        }
    }
    let inputs = contents
        .iter()
        .map(|v| Box::new(&v[..]) as Box<dyn Read>)
        .chain(std::iter::once(Box::new(Failing) as Box<dyn Read>));
    let err = c
        .add_many_to_pack(inputs, &packed(compress))
        .expect_err("the source fails");
    let source = std::error::Error::source(&err).map(|s| s.to_string());
    assert_eq!(source.as_deref(), Some("the source went away"), "{err}");
}

/// A direct-to-pack write that fails half-way commits what was completely written (rows
/// handed to the helper included) and leaves the index writable at once.
#[test]
fn add_many_to_pack_failing_input_keeps_what_was_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut rng = Rng::new(10);
    let contents: Vec<Vec<u8>> = (0..6_000)
        .map(|i| random_bytes(&mut rng, 10 + i % 300))
        .collect();
    write_then_fail(&c, &contents, CompressMode::No);
    assert_eq!(c.count().expect("count").packed, 6_000);
    for v in contents.iter().step_by(101) {
        let k = HashType::Sha256.hash_hex(v);
        assert_eq!(&c.get_object(&k).expect("get"), v);
    }
    // Nothing holds the index's write lock: the next write goes through.
    let k = c
        .add_many_to_pack([&b"after the failure"[..]], &packed(CompressMode::No))
        .expect("write after failure");
    assert_eq!(c.get_object(&k[0]).expect("get"), b"after the failure");
    let sizes = c.total_size().expect("size");
    assert_eq!(
        sizes.total_size_packfiles_on_disk,
        sizes.total_size_packed_on_disk
    );
}

/// Compressed writes hand each batch of small objects (2,048) to compression threads while the
/// next one is collected. Across several batches, a large object in between (which writes
/// everything before it first), duplicates across batches and packs filling up meanwhile, the
/// objects must still land once each, in input order, without holes.
#[test]
fn compressed_writes_of_many_batches_keep_input_order() {
    for algorithm in [CompressionAlgorithm::Zlib(1), CompressionAlgorithm::Zstd(1)] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = new_container(
            dir.path(),
            InitOptions::default()
                .with_compression_algorithm(algorithm)
                .with_pack_size_target(256 * 1024),
        );
        let mut rng = Rng::new(21);
        let mut contents: Vec<Vec<u8>> = (0..7_000)
            .map(|i| {
                if i % 2 == 0 {
                    text_bytes(&mut rng, 50 + i % 700)
                } else {
                    random_bytes(&mut rng, 50 + i % 700)
                }
            })
            .collect();
        // A large object (streamed) between batches, and repeats of earlier objects.
        contents.insert(3_000, text_bytes(&mut rng, 2 << 20));
        for i in (0..2_000).step_by(97) {
            contents.push(contents[i].clone());
        }
        let keys = c
            .add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::Yes))
            .expect("pack");
        assert_eq!(keys.len(), contents.len());
        let mut first_seen: Vec<&String> = Vec::new();
        let mut distinct = HashSet::new();
        for (k, v) in keys.iter().zip(&contents) {
            assert_eq!(k, &HashType::Sha256.hash_hex(v), "{algorithm}");
            if distinct.insert(k) {
                first_seen.push(k);
            }
        }
        assert_eq!(c.count().expect("count").packed, distinct.len() as u64);
        // In input order: (pack, offset) grows along the first occurrences.
        let places: Vec<(u64, u64)> = first_seen
            .iter()
            .map(|k| {
                let loc = c.meta(k).expect("meta").packed.expect("packed");
                assert!(loc.compressed, "{algorithm}: YES compresses everything");
                (loc.pack_id, loc.offset)
            })
            .collect();
        assert!(
            places.windows(2).all(|w| w[0] < w[1]),
            "{algorithm}: objects out of input order"
        );
        for (k, v) in keys.iter().zip(&contents).step_by(7) {
            assert_eq!(&c.get_object(k).expect("get"), v, "{algorithm}");
        }
        let sizes = c.total_size().expect("size");
        assert_eq!(
            sizes.total_size_packfiles_on_disk, sizes.total_size_packed_on_disk,
            "{algorithm}: no holes"
        );
    }
}

/// A compressed write whose input fails while a batch is still being compressed keeps every
/// object before the failure: the batch in flight is written too.
#[test]
fn compressed_write_failing_input_keeps_the_batch_in_flight() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut rng = Rng::new(22);
    // Two full batches (one in flight when the second is handed over) and a partial one.
    let contents: Vec<Vec<u8>> = (0..5_000)
        .map(|i| text_bytes(&mut rng, 20 + i % 400))
        .collect();
    write_then_fail(&c, &contents, CompressMode::Yes);
    let distinct: HashSet<&Vec<u8>> = contents.iter().collect();
    assert_eq!(c.count().expect("count").packed, distinct.len() as u64);
    for v in contents.iter().step_by(53) {
        let k = HashType::Sha256.hash_hex(v);
        assert_eq!(&c.get_object(&k).expect("get"), v);
        assert!(c.meta(&k).expect("meta").packed.expect("packed").compressed);
    }
}

#[test]
fn compression_modes_and_codecs() {
    for algorithm in [
        CompressionAlgorithm::Zlib(1),
        CompressionAlgorithm::Zlib(9),
        CompressionAlgorithm::Zstd(3),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = new_container(
            dir.path(),
            InitOptions::default().with_compression_algorithm(algorithm),
        );
        let mut rng = Rng::new(3);
        let text = text_bytes(&mut rng, 50_000);
        let random = random_bytes(&mut rng, 50_000);
        let tiny = b"tiny".to_vec();
        let big_text = text_bytes(&mut rng, 3 << 20);
        let objects = [&text, &random, &tiny, &big_text];
        let yes = c
            .add_many_to_pack(objects.iter().map(|v| &v[..]), &packed(CompressMode::Yes))
            .expect("yes");
        for (k, v) in yes.iter().zip(objects) {
            let m = c.meta(k).expect("meta");
            let loc = m.packed.expect("packed");
            assert!(loc.compressed, "{algorithm}: YES compresses everything");
            assert_eq!(&c.get_object(k).expect("get"), v);
        }
        let big = c.meta(&yes[3]).expect("meta").packed.expect("packed");
        assert!(
            big.length < big.size / 2,
            "streamed compression of a large object"
        );
        let dir2 = tempfile::tempdir().expect("tmp");
        let c2 = new_container(
            dir2.path(),
            InitOptions::default().with_compression_algorithm(algorithm),
        );
        let auto = c2
            .add_many_to_pack(objects.iter().map(|v| &v[..]), &packed(CompressMode::Auto))
            .expect("auto");
        let flags: Vec<bool> = auto
            .iter()
            .map(|k| c2.meta(k).expect("meta").packed.expect("packed").compressed)
            .collect();
        assert_eq!(
            flags,
            vec![true, false, false, true],
            "{algorithm}: AUTO compresses text only"
        );
        for (k, v) in auto.iter().zip(objects) {
            assert_eq!(&c2.get_object(k).expect("get"), v);
        }
    }
}

#[test]
fn both_codecs_are_read_whatever_the_container_setting() {
    let dir = tempfile::tempdir().expect("tmp");
    let zstd = new_container(
        dir.path(),
        InitOptions::default().with_compression_algorithm(CompressionAlgorithm::Zstd(1)),
    );
    let key_zstd = zstd
        .add_many_to_pack(
            [&b"zstd zstd zstd zstd zstd zstd"[..]],
            &packed(CompressMode::Yes),
        )
        .expect("w")[0]
        .clone();
    // Reopen the same folder as if it were zlib: the object still reads (codec detected).
    let cfg = zstd.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .expect("read")
        .replace("zstd+1", "zlib+1");
    std::fs::write(&cfg, text).expect("write");
    let as_zlib = Container::open(zstd.path()).expect("open");
    assert_eq!(
        as_zlib.get_object(&key_zstd).expect("get"),
        b"zstd zstd zstd zstd zstd zstd"
    );
    let key_zlib = as_zlib
        .add_many_to_pack(
            [&b"zlib zlib zlib zlib zlib"[..]],
            &packed(CompressMode::Yes),
        )
        .expect("w")[0]
        .clone();
    assert_eq!(
        as_zlib.get_object(&key_zlib).expect("get"),
        b"zlib zlib zlib zlib zlib"
    );
}

#[test]
fn readers_seek_exactly_on_every_kind_of_object() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(
        dir.path(),
        InitOptions::default().with_compression_algorithm(CompressionAlgorithm::Zstd(1)),
    );
    let mut rng = Rng::new(4);
    let data = text_bytes(&mut rng, 700_000);
    let loose = c.add_object(&data).expect("loose");
    let dir2 = tempfile::tempdir().expect("tmp");
    let plain = new_container(dir2.path(), InitOptions::default());
    let p = plain
        .add_many_to_pack([&data[..]], &packed(CompressMode::No))
        .expect("p")[0]
        .clone();
    let z = plain
        .add_many_to_pack([&data[..]], &packed(CompressMode::No))
        .expect("z")[0]
        .clone();
    let zc = c
        .add_many_to_pack([&data[..]], &packed(CompressMode::Yes))
        .expect("zc")[0]
        .clone();
    assert_eq!(p, z);
    for (container, key) in [(&c, &loose), (&plain, &p), (&c, &zc)] {
        let _ = std::fs::remove_file(container.loose_path(key).expect("path")).ok();
        let mut r = container.open_object(key).expect("open");
        let mut rng = Rng::new(9);
        for _ in 0..40 {
            let (target, pos) = match rng.below(3) {
                0 => {
                    let p = rng.below(data.len() as u64 + 10);
                    (SeekFrom::Start(p), p)
                }
                1 => {
                    let cur = r.stream_position().expect("pos");
                    let d = rng.below(2000) as i64 - 1000;
                    if (cur as i64 + d) < 0 {
                        continue;
                    }
                    (SeekFrom::Current(d), (cur as i64 + d) as u64)
                }
                _ => {
                    let d = rng.below(5000) as i64;
                    (SeekFrom::End(-d), data.len() as u64 - d as u64)
                }
            };
            assert_eq!(r.seek(target).expect("seek"), pos);
            let mut buf = vec![0u8; 777];
            let n = r.read(&mut buf).expect("read");
            let start = (pos as usize).min(data.len());
            let want = &data[start..(start + 777).min(data.len())];
            assert!(n <= want.len() && buf[..n] == want[..n], "{key} at {pos}");
            r.seek(SeekFrom::Start(pos + n as u64)).expect("reseek");
        }
        assert!(
            r.seek(SeekFrom::Current(-(10i64.pow(9)))).is_err(),
            "before start"
        );
    }
}

#[test]
fn read_many_serves_pack_order_then_loose_then_missing_each_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(
        dir.path(),
        InitOptions::default().with_pack_size_target(2000),
    );
    let mut rng = Rng::new(5);
    let contents: Vec<Vec<u8>> = (0..60).map(|i| random_bytes(&mut rng, 100 + i)).collect();
    let keys = c
        .add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::Auto))
        .expect("pack");
    let loose: Vec<String> = (0..5)
        .map(|i| {
            c.add_object(format!("loose {i}").as_bytes())
                .expect("loose")
        })
        .collect();
    let missing = HashType::Sha256.hash_hex(b"missing");
    let mut ask: Vec<String> = keys.iter().rev().cloned().collect();
    ask.extend(loose.iter().cloned());
    ask.push(missing.clone());
    ask.push(keys[0].clone()); // asked twice, served once
    let items: Vec<rsdos::ManyItem> = c
        .read_many(&ask, false)
        .expect("read")
        .collect::<Result<_, _>>()
        .expect("items");
    assert_eq!(items.len(), 60 + 5 + 1);
    let positions: Vec<(u64, u64)> = items[..60]
        .iter()
        .map(|i| {
            let l = i.meta.packed.expect("packed first");
            (l.pack_id, l.offset)
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted, "packed objects in (pack, offset) order");
    assert!(
        items[60..65]
            .iter()
            .all(|i| i.meta.object_type == ObjectType::Loose)
    );
    assert_eq!(items[65].hashkey, missing);
    assert!(items[65].reader.is_none());
    // Readers stay valid after the iterator moved on.
    let by_key: HashMap<&str, &Vec<u8>> = keys.iter().map(String::as_str).zip(&contents).collect();
    for mut item in items.into_iter().take(60) {
        let mut out = Vec::new();
        item.reader
            .as_mut()
            .expect("reader")
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(&out, by_key[item.hashkey.as_str()]);
    }
    let skipped: Vec<_> = c.read_many([&missing], true).expect("read").collect();
    assert!(skipped.is_empty());
    let contents_map = c.get_many(&ask, true).expect("get_many");
    assert_eq!(contents_map.len(), 65);
    // Owned keys read the same objects in the same order; a malformed key is refused.
    let owned: Vec<(String, rsdos::ObjectMeta)> = c
        .read_many(ask.clone(), false)
        .expect("read owned")
        .map(|i| i.map(|i| (i.hashkey, i.meta)))
        .collect::<Result<_, _>>()
        .expect("owned items");
    let borrowed: Vec<(String, rsdos::ObjectMeta)> = c
        .read_many(&ask, false)
        .expect("read")
        .map(|i| i.map(|i| (i.hashkey, i.meta)))
        .collect::<Result<_, _>>()
        .expect("items");
    assert_eq!(owned, borrowed);
    // Keys as the lines of one text: the same objects in the same order.
    let lines: Vec<(String, rsdos::ObjectMeta)> = c
        .read_many_lines(&ask.join("\n"), false)
        .expect("read lines")
        .map(|i| i.map(|i| (i.hashkey, i.meta)))
        .collect::<Result<_, _>>()
        .expect("line items");
    assert_eq!(lines, borrowed);
    let mut bad = ask.clone();
    bad.push("not a hashkey".to_string());
    let err = c.read_many(bad.clone(), true).expect_err("malformed key");
    assert_eq!(err.kind(), rsdos::ErrorKind::InvalidHashkey, "{err}");
    // A trailing newline is an empty last key, which is no hashkey.
    for text in [
        bad.join("\n"),
        format!("{}\n", ask.join("\n")),
        String::new(),
    ] {
        let err = c.read_many_lines(&text, true).expect_err("malformed line");
        assert_eq!(err.kind(), rsdos::ErrorKind::InvalidHashkey, "{err}");
    }
}

#[test]
fn packed_objects_of_a_bulk_read_lend_their_buffered_content() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = Container::init(dir.path(), &InitOptions::default()).expect("init");
    let raw: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 300 + usize::from(i)]).collect();
    let plain = c
        .add_many_to_pack(raw.iter().map(|v| &v[..]), &packed(CompressMode::No))
        .expect("pack plain");
    let squeezed = c
        .add_many_to_pack([&[7u8; 5000][..]], &packed(CompressMode::Yes))
        .expect("pack compressed");
    let loose = c.add_object(b"loose").expect("loose");
    let want: HashMap<&str, &[u8]> = plain
        .iter()
        .map(String::as_str)
        .zip(raw.iter().map(|v| &v[..]))
        .collect();
    let mut lent = 0;
    let keys = plain.iter().chain(&squeezed).chain([&loose]);
    for item in c.read_many(keys, true).expect("read") {
        let item = item.expect("item");
        let mut reader = item.reader.expect("reader");
        match want.get(item.hashkey.as_str()) {
            Some(content) => {
                assert_eq!(reader.buffered_rest(), Some(*content));
                // After a partial read, the rest; after seeking to the end, nothing.
                let mut head = [0u8; 10];
                reader.read_exact(&mut head).expect("head");
                assert_eq!(reader.buffered_rest(), Some(&content[10..]));
                reader.seek(SeekFrom::End(0)).expect("seek");
                assert_eq!(reader.buffered_rest(), Some(&[][..]));
                lent += 1;
            }
            // Compressed or loose: nothing to lend, the reader decodes or reads a file.
            None => assert_eq!(reader.buffered_rest(), None, "{}", item.hashkey),
        }
    }
    assert_eq!(lent, 20);
}

#[test]
fn meta_has_count_sizes_and_listing() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let packed_keys = c
        .add_many_to_pack([&b"p1"[..], b"p2 p2"], &packed(CompressMode::No))
        .expect("pack");
    let l = c.add_object(b"loose!").expect("loose");
    // A loose copy of a packed object (before clean): listed once, counted as loose too.
    std::fs::create_dir_all(
        c.loose_path(&packed_keys[0])
            .expect("p")
            .parent()
            .expect("parent"),
    )
    .expect("mkdir");
    std::fs::write(c.loose_path(&packed_keys[0]).expect("p"), b"p1").expect("write");
    let m = c.meta(&packed_keys[1]).expect("meta");
    assert_eq!(m.object_type, ObjectType::Packed);
    assert_eq!(m.size, Some(5));
    let loc = m.packed.expect("loc");
    assert_eq!(
        (loc.pack_id, loc.offset, loc.length, loc.compressed),
        (0, 2, 5, false)
    );
    assert_eq!(c.meta(&l).expect("meta").object_type, ObjectType::Loose);
    let missing = HashType::Sha256.hash_hex(b"nope");
    assert_eq!(
        c.has_many([&missing, &l, &packed_keys[0]]).expect("has"),
        vec![false, true, true]
    );
    let count = c.count().expect("count");
    assert_eq!((count.packed, count.loose, count.pack_files), (2, 2, 1));
    let size = c.total_size().expect("size");
    assert_eq!(size.total_size_packed, 7);
    assert_eq!(size.total_size_packed_on_disk, 7);
    assert_eq!(size.total_size_packfiles_on_disk, 7);
    assert_eq!(size.total_size_loose, 6 + 2);
    assert!(size.total_size_packindexes_on_disk > 0);
    let listed: Vec<String> = c
        .iter_hashkeys()
        .expect("iter")
        .collect::<Result<_, _>>()
        .expect("list");
    let set: HashSet<&String> = listed.iter().collect();
    assert_eq!(listed.len(), 3, "each key once: {listed:?}");
    assert!(set.contains(&l) && set.contains(&packed_keys[0]) && set.contains(&packed_keys[1]));
}

#[test]
fn loose_objects_are_counted_sized_and_listed_across_all_shards() {
    // The shard folders are listed on two threads: every loose object is counted once,
    // whichever half its folder falls in, with or without shard folders.
    for prefix_len in [2, 0] {
        let dir = tempfile::tempdir().expect("tmp");
        let c = new_container(
            dir.path(),
            InitOptions::default().with_loose_prefix_len(prefix_len),
        );
        let contents: Vec<Vec<u8>> = (0..300u32)
            .map(|i| format!("loose object {i}").into_bytes())
            .collect();
        let keys: HashSet<String> = contents
            .iter()
            .map(|o| c.add_object(o).expect("add"))
            .collect();
        // Names that are no hashkey are skipped, in the loose folder and in a shard.
        std::fs::write(c.path().join("loose").join("junk"), b"x").expect("junk");
        if prefix_len > 0 {
            let shard = c.path().join("loose").join("ab");
            std::fs::create_dir_all(&shard).expect("shard");
            std::fs::write(shard.join("not-a-key"), b"x").expect("junk in shard");
        }
        let count = c.count().expect("count");
        assert_eq!((count.loose, count.packed), (300, 0), "prefix {prefix_len}");
        let size = c.total_size().expect("size");
        let want: u64 = contents.iter().map(|o| o.len() as u64).sum();
        assert_eq!(size.total_size_loose, want, "prefix {prefix_len}");
        let listed: Vec<String> = c
            .iter_hashkeys()
            .expect("iter")
            .collect::<Result<_, _>>()
            .expect("list");
        assert_eq!(listed.len(), 300, "each once, prefix {prefix_len}");
        assert_eq!(listed.into_iter().collect::<HashSet<_>>(), keys);
    }
}

#[test]
fn delete_removes_loose_packed_and_duplicate_copies() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let p = c
        .add_many_to_pack([&b"packed"[..], b"kept"], &packed(CompressMode::No))
        .expect("pack");
    let l = c.add_object(b"loose").expect("loose");
    std::fs::write(
        c.path().join("duplicates").join(format!("{l}.abc")),
        b"loose",
    )
    .expect("dup");
    let unknown = HashType::Sha256.hash_hex(b"unknown");
    let deleted = c.delete([&p[0], &unknown, &l, &l]).expect("delete");
    assert_eq!(deleted, vec![p[0].clone(), l.clone()]);
    assert!(!c.has(&p[0]).expect("has") && !c.has(&l).expect("has"));
    assert!(c.has(&p[1]).expect("has"));
    assert_eq!(
        std::fs::read_dir(c.path().join("duplicates"))
            .expect("ls")
            .count(),
        0
    );
    assert_eq!(c.get_object(&p[1]).expect("get"), b"kept");
}

#[test]
fn corrupt_data_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut rng = Rng::new(6);
    let text = text_bytes(&mut rng, 10_000);
    let keys = c
        .add_many_to_pack([&text[..], b"second object"], &packed(CompressMode::Yes))
        .expect("pack");
    let pack = c.path().join("packs").join("0");
    let mut bytes = std::fs::read(&pack).expect("read");
    let loc = c.meta(&keys[0]).expect("meta").packed.expect("loc");
    for b in &mut bytes[(loc.offset + 10) as usize..(loc.offset + 40) as usize] {
        *b ^= 0x55;
    }
    std::fs::write(&pack, &bytes).expect("write");
    let reopened = Container::open(c.path()).expect("open");
    let err = reopened.get_object(&keys[0]).expect_err("corrupt");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains(&keys[0]), "{err}");
    // Truncated pack: the second object is cut off.
    std::fs::write(&pack, &bytes[..bytes.len() - 3]).expect("truncate");
    let reopened = Container::open(c.path()).expect("open");
    let err = reopened.get_object(&keys[1]).expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn open_packs_stay_bounded_by_the_handle_cache() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default().with_pack_size_target(1));
    let contents: Vec<Vec<u8>> = (0..150u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let keys = c
        .add_many_to_pack(contents.iter().map(|v| &v[..]), &packed(CompressMode::No))
        .expect("pack");
    assert_eq!(c.count().expect("count").pack_files, 150);
    let path = c.path().to_path_buf();
    drop(c);
    let c =
        Container::open_with(&path, &OpenOptions::default().with_max_open_packs(8)).expect("open");
    // Count only descriptors on this container's packs (other tests run in parallel).
    let packs_dir = c.path().join("packs");
    let fds = || {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(&packs_dir))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    let before = fds();
    for (k, v) in keys.iter().zip(&contents) {
        assert_eq!(&c.get_object(k).expect("get"), v);
    }
    let all: Vec<_> = c
        .read_many(&keys, true)
        .expect("many")
        .collect::<Result<_, _>>()
        .expect("items");
    assert_eq!(all.len(), 150);
    assert!(
        fds() <= 8,
        "open pack files grew from {before} to {}",
        fds()
    );
}

#[test]
fn container_is_usable_from_many_threads() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let c = c.clone();
            s.spawn(move || {
                for i in 0..50u32 {
                    let data = format!("thread {t} object {i} {}", i % 7);
                    let k = c.add_object(data.as_bytes()).expect("add");
                    assert_eq!(c.get_object(&k).expect("get"), data.as_bytes());
                }
            });
        }
    });
    assert_eq!(c.count().expect("count").loose, 200);
}

#[test]
fn a_missing_index_next_to_packs_is_an_error_not_an_empty_container() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    c.add_many_to_pack([&b"packed"[..]], &packed(CompressMode::No))
        .expect("pack");
    let path = c.path().to_path_buf();
    drop(c);
    for f in ["packs.idx", "packs.idx-wal", "packs.idx-shm"] {
        let _ = std::fs::remove_file(path.join(f));
    }
    let err = Container::open(&path).expect_err("must not open with an empty index");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("rebuild-index"), "{err}");
    assert!(
        !path.join("packs.idx").exists(),
        "no empty index was created"
    );
    // Without packs, a missing index is created (disk-objectstore does the same).
    let empty = new_container(&dir.path().join("e"), InitOptions::default());
    let epath = empty.path().to_path_buf();
    drop(empty);
    std::fs::remove_file(epath.join("packs.idx")).expect("rm");
    Container::open(&epath).expect("open creates the index");
}
