//! Interoperability with the real disk-objectstore 1.5.0 (Python, from PyPI).
//!
//! Containers written by disk-objectstore are read by rsdos and vice versa, through the helper
//! scripts in `tests/interop/`. Every fixture is generated at test time in a temporary folder.
//!
//! The Python interpreter is `$RSDOS_TEST_PYTHON`, else `<workspace>/.venv/bin/python`, which
//! `scripts/setup-venv.sh` creates. If it is missing or lacks disk-objectstore 1.5.0 the tests
//! fail (they never skip silently).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use rsdos::{
    CompressMode, CompressionAlgorithm, Container, ErrorKind, HashType, InitOptions, ObjectCount,
    ObjectMeta, ObjectType, PackWriteOptions, TotalSize,
};
use serde_json::{Map, Value, json};

/// The disk-objectstore release the tests run against (the one aiida-core pins).
const DOS_VERSION: &str = "1.5.0";
/// Pack size target of the test containers: small, so that several packs are made.
const PACK_SIZE_TARGET: u64 = 4096;
/// Contents up to this size are reported in full by the scripts (`_common.SMALL_CONTENT_MAX`).
const SMALL_CONTENT_MAX: usize = 256;

// ---- Python plumbing ---------------------------------------------------------------------

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join(name)
}

/// The Python with disk-objectstore 1.5.0; panics with instructions when there is none.
fn python() -> &'static Path {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match PYTHON.get_or_init(find_python) {
        Ok(p) => p,
        Err(msg) => panic!("{msg}"),
    }
}

fn find_python() -> Result<PathBuf, String> {
    let hint = format!(
        "the disk-objectstore interoperability tests need Python with disk-objectstore=={DOS_VERSION}: \
         run scripts/setup-venv.sh (creates <workspace>/.venv), or set RSDOS_TEST_PYTHON to such a python"
    );
    let (path, origin) = match std::env::var_os("RSDOS_TEST_PYTHON") {
        Some(p) => (PathBuf::from(p), "from RSDOS_TEST_PYTHON"),
        None => {
            let venv = workspace_root().join(".venv");
            let exe = if cfg!(windows) {
                venv.join("Scripts").join("python.exe")
            } else {
                venv.join("bin").join("python")
            };
            (exe, "the workspace venv")
        }
    };
    if !path.exists() {
        return Err(format!(
            "{hint}. Python {} ({origin}) does not exist.",
            path.display()
        ));
    }
    let out = Command::new(&path)
        .args([
            "-c",
            "import disk_objectstore; print(disk_objectstore.__version__)",
        ])
        .output()
        .map_err(|e| format!("{hint}. Cannot run {} ({origin}): {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{hint}. {} ({origin}) cannot import disk_objectstore: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if version != DOS_VERSION {
        return Err(format!(
            "{hint}. {} ({origin}) has disk-objectstore {version:?}, not {DOS_VERSION}.",
            path.display()
        ));
    }
    Ok(path)
}

fn path_arg(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("test path {} is not UTF-8", p.display()))
        .to_string()
}

/// Runs a helper script and returns its stdout; panics with its stderr if it fails.
fn run_script(name: &str, args: &[String]) -> String {
    let out = Command::new(python())
        // Leave no __pycache__ in the source tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(script(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{name} printed non-UTF-8: {e}"))
}

fn run_json(name: &str, args: &[String]) -> Value {
    let text = run_script(name, args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{name} printed invalid JSON ({e}):\n{text}"))
}

// ---- test data ---------------------------------------------------------------------------

/// A small deterministic generator (splitmix64), to avoid a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo) as u64) as usize
    }
    /// Incompressible bytes.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(n);
        out
    }
    /// Compressible text, different for each call.
    fn text(&mut self, n: usize, tag: &str) -> Vec<u8> {
        let unit = format!(
            "{tag}: the quick brown fox jumps over the lazy dog {}\n",
            self.next_u64()
        );
        unit.bytes().cycle().take(n).collect()
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    HashType::Sha256.hash_hex(data)
}

// ---- JSON views of rsdos values, in the scripts' format -----------------------------------

/// What the scripts report about a content (`_common.content_info`).
fn content_json(data: &[u8]) -> Value {
    let mut m = Map::new();
    m.insert("sha256_of_content".into(), json!(sha256(data)));
    m.insert("size_of_content".into(), json!(data.len()));
    if data.len() <= SMALL_CONTENT_MAX {
        m.insert("content_hex".into(), json!(hex(data)));
    }
    Value::Object(m)
}

/// The content fields of a script's object entry.
fn content_fields(entry: &Value) -> Value {
    let mut m = Map::new();
    for k in ["sha256_of_content", "size_of_content", "content_hex"] {
        if let Some(v) = entry.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    Value::Object(m)
}

/// An `ObjectMeta` as `_common.meta_dict` writes disk-objectstore's.
fn meta_json(meta: &ObjectMeta) -> Value {
    let p = meta.packed.as_ref();
    json!({
        "type": meta.object_type.as_str(),
        "size": meta.size,
        "pack_id": p.map(|l| l.pack_id),
        "pack_offset": p.map(|l| l.offset),
        "pack_length": p.map(|l| l.length),
        "pack_compressed": p.map(|l| l.compressed),
    })
}

/// The meta fields of a script's object entry.
fn meta_fields(entry: &Value) -> Value {
    let mut m = Map::new();
    for k in [
        "type",
        "size",
        "pack_id",
        "pack_offset",
        "pack_length",
        "pack_compressed",
    ] {
        m.insert(k.into(), entry.get(k).cloned().unwrap_or(Value::Null));
    }
    Value::Object(m)
}

fn count_json(c: &ObjectCount) -> Value {
    json!({"packed": c.packed, "loose": c.loose, "pack_files": c.pack_files})
}

fn total_size_json(t: &TotalSize) -> Value {
    json!({
        "total_size_packed": t.total_size_packed,
        "total_size_packed_on_disk": t.total_size_packed_on_disk,
        "total_size_packfiles_on_disk": t.total_size_packfiles_on_disk,
        "total_size_packindexes_on_disk": t.total_size_packindexes_on_disk,
        "total_size_loose": t.total_size_loose,
    })
}

fn str_list(v: &Value, what: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{what} is not a list: {v}"))
        .iter()
        .map(|k| {
            k.as_str()
                .unwrap_or_else(|| panic!("{what} holds a non-string: {k}"))
                .to_string()
        })
        .collect()
}

fn obj<'a>(v: &'a Value, what: &str) -> &'a Map<String, Value> {
    v.as_object()
        .unwrap_or_else(|| panic!("{what} is not an object: {v}"))
}

fn empty_issues() -> Value {
    json!({
        "invalid_hashes_loose": [],
        "invalid_hashes_packed": [],
        "invalid_sizes_packed": [],
        "overlapping_packed": [],
    })
}

// ---- 1. disk-objectstore writes, rsdos reads ----------------------------------------------

fn dos_written_container_reads_identically_in_rsdos(prefix_len: usize, hash_type: HashType) {
    python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("container");
    let manifest = run_json(
        "dos_write.py",
        &[
            path_arg(&dir),
            prefix_len.to_string(),
            hash_type.as_str().to_string(),
        ],
    );
    let objects = obj(&manifest["objects"], "manifest objects");
    let deleted = str_list(&manifest["deleted"], "deleted");
    let listing = str_list(&manifest["listing"], "listing");
    assert!(
        objects.len() > 30 && deleted.len() >= 5,
        "dos_write.py wrote too little"
    );
    // The manifest covers every storage path.
    let types: HashSet<(String, String)> = objects
        .values()
        .map(|e| (e["type"].to_string(), e["pack_compressed"].to_string()))
        .collect();
    for t in [("loose", "null"), ("packed", "false"), ("packed", "true")] {
        assert!(
            types.contains(&(format!("\"{}\"", t.0), t.1.to_string())),
            "the manifest has no {t:?} object"
        );
    }

    let c = Container::open(&dir).expect("rsdos opens the disk-objectstore container");
    let cfg = c.config();
    assert_eq!(cfg.loose_prefix_len, prefix_len);
    assert_eq!(cfg.hash_type, hash_type);
    assert_eq!(cfg.pack_size_target, PACK_SIZE_TARGET);
    assert_eq!(
        cfg.compression_algorithm.to_string(),
        manifest["config"]["compression_algorithm"]
            .as_str()
            .expect("compression_algorithm")
    );

    // Every object, one by one: content and metadata.
    let mut contents: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (key, entry) in objects {
        let data = c
            .get_object(key)
            .unwrap_or_else(|e| panic!("rsdos cannot read {key} ({entry}): {e}"));
        assert_eq!(
            content_json(&data),
            content_fields(entry),
            "content of {key}"
        );
        assert_eq!(hash_type.hash_hex(&data), *key, "hash of {key}");
        let meta = c.meta(key).expect("meta");
        assert_eq!(meta_json(&meta), meta_fields(entry), "meta of {key}");
        assert!(c.has(key).expect("has"), "{key}");
        contents.insert(key.clone(), data);
    }

    // The same, in bulk.
    let keys: Vec<&String> = objects.keys().collect();
    for (key, meta) in c.meta_many(&keys).expect("meta_many") {
        assert_eq!(
            meta_json(&meta),
            meta_fields(&objects[&key]),
            "meta_many of {key}"
        );
    }
    let mut seen = HashSet::new();
    for item in c.read_many(&keys, true).expect("read_many") {
        let item = item.expect("read_many item");
        assert!(seen.insert(item.hashkey.clone()), "{} twice", item.hashkey);
        let data = item
            .reader
            .expect("a reader for a present object")
            .read_all()
            .unwrap_or_else(|e| panic!("read_many cannot read {}: {e}", item.hashkey));
        assert_eq!(data, contents[&item.hashkey], "read_many {}", item.hashkey);
        assert_eq!(
            meta_json(&item.meta),
            meta_fields(&objects[&item.hashkey]),
            "read_many meta of {}",
            item.hashkey
        );
    }
    assert_eq!(seen.len(), objects.len(), "read_many yields every object");
    let many = c.get_many(&keys, true).expect("get_many");
    assert_eq!(many.len(), contents.len());
    for (k, v) in many {
        assert_eq!(v.as_deref(), Some(contents[&k].as_slice()), "get_many {k}");
    }

    // Listing: every key once, the same set as disk-objectstore's.
    let rs_listing: Vec<String> = c
        .iter_hashkeys()
        .expect("iter_hashkeys")
        .collect::<rsdos::Result<_>>()
        .expect("iter_hashkeys item");
    let rs_set: BTreeSet<&String> = rs_listing.iter().collect();
    assert_eq!(rs_set.len(), rs_listing.len(), "rsdos lists a key twice");
    assert_eq!(
        manifest["listing_len"].as_u64(),
        Some(listing.len() as u64),
        "disk-objectstore lists a key twice"
    );
    assert_eq!(
        rs_set,
        listing.iter().collect::<BTreeSet<_>>(),
        "listings differ"
    );
    assert_eq!(
        rs_set,
        objects.keys().collect::<BTreeSet<_>>(),
        "listing vs objects"
    );

    // Deleted objects are gone.
    for key in &deleted {
        assert!(!objects.contains_key(key), "{key} both deleted and present");
        assert_eq!(
            c.meta(key).expect("meta").object_type,
            ObjectType::Missing,
            "{key}"
        );
        assert!(!c.has(key).expect("has"), "{key}");
        let err = c
            .get_object(key)
            .expect_err("a deleted object must be missing");
        assert_eq!(err.kind(), ErrorKind::NotFound, "{key}: {err}");
    }
    let missing: Vec<_> = c
        .read_many(&deleted, false)
        .expect("read_many")
        .collect::<rsdos::Result<_>>()
        .expect("read_many deleted");
    assert_eq!(missing.len(), deleted.len());
    for item in missing {
        assert!(item.reader.is_none(), "{} has a reader", item.hashkey);
        assert_eq!(item.meta.object_type, ObjectType::Missing);
    }

    // Statistics.
    assert_eq!(
        count_json(&c.count().expect("count")),
        manifest["count"],
        "count"
    );
    assert_eq!(
        total_size_json(&c.total_size().expect("total_size")),
        manifest["total_size"],
        "total_size"
    );
}

#[test]
fn dos_written_container_reads_identically_in_rsdos_prefix0() {
    dos_written_container_reads_identically_in_rsdos(0, HashType::Sha256);
}

#[test]
fn dos_written_container_reads_identically_in_rsdos_prefix2() {
    dos_written_container_reads_identically_in_rsdos(2, HashType::Sha256);
}

#[test]
fn dos_written_container_reads_identically_in_rsdos_sha1() {
    dos_written_container_reads_identically_in_rsdos(2, HashType::Sha1);
}

/// rsdos appends to a container disk-objectstore wrote (loose, packed, compressed, deletions);
/// disk-objectstore then reads everything and validates it.
#[test]
fn rsdos_keeps_writing_a_dos_container() {
    python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("container");
    let manifest = run_json(
        "dos_write.py",
        &[path_arg(&dir), "2".to_string(), "sha256".to_string()],
    );
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let deleted = {
        let c = Container::open(&dir).expect("open");
        for key in obj(&manifest["objects"], "objects").keys() {
            expected.insert(key.clone(), c.get_object(key).expect("read"));
        }
        let mut rng = Rng::new(0xD05);
        let loose = vec![rng.text(777, "rs-loose"), rng.bytes(33)];
        for d in &loose {
            expected.insert(c.add_object(d).expect("add_object"), d.clone());
        }
        for mode in [CompressMode::No, CompressMode::Yes, CompressMode::Auto] {
            let batch = vec![
                rng.text(2500, "rs-pack"),
                rng.bytes(1800),
                rng.text(900, "rs-pack2"),
            ];
            let keys = c
                .add_many_to_pack(
                    batch.iter().map(Vec::as_slice),
                    &PackWriteOptions::default().with_compress(mode),
                )
                .expect("add_many_to_pack");
            expected.extend(keys.into_iter().zip(batch));
        }
        let victims: Vec<String> = expected.keys().step_by(7).cloned().collect();
        let deleted = c.delete(&victims).expect("delete");
        assert_eq!(deleted, victims);
        for k in &deleted {
            expected.remove(k);
        }
        deleted
    };

    let mut args = vec![path_arg(&dir)];
    args.extend(deleted.iter().cloned());
    let report = run_json("dos_read.py", &args);
    let objects = obj(&report["objects"], "objects");
    assert_eq!(
        objects.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>(),
        "disk-objectstore's objects after rsdos wrote"
    );
    for (key, data) in &expected {
        assert_eq!(content_fields(&objects[key]), content_json(data), "{key}");
        assert_eq!(objects[key]["stream_matches"], json!(true), "{key}");
    }
    for key in &deleted {
        assert_eq!(report["has"][key], json!(false), "{key}");
    }
    assert_eq!(report["validate"], empty_issues(), "validate()");
    assert_eq!(
        report["copy"]["validate"],
        empty_issues(),
        "validate() of the copy"
    );
    assert_eq!(report["copy"]["contents_unchanged"], json!(true));
}

// ---- 2. rsdos writes (zlib), disk-objectstore reads, validates and keeps writing ----------

/// Writes a container with every rsdos storage path; returns the expected contents and the
/// deleted keys.
fn write_rsdos_container(
    dir: &Path,
    prefix_len: usize,
    hash_type: HashType,
) -> (BTreeMap<String, Vec<u8>>, Vec<String>) {
    let options = InitOptions::default()
        .with_loose_prefix_len(prefix_len)
        .with_pack_size_target(PACK_SIZE_TARGET)
        .with_hash_type(hash_type);
    let c = Container::init(dir, &options).expect("init");
    let mut rng = Rng::new(0x5EED ^ prefix_len as u64 ^ ((hash_type.hex_len() as u64) << 8));
    let mut expected: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let record =
        |expected: &mut BTreeMap<String, Vec<u8>>, keys: Vec<String>, batch: &[Vec<u8>]| {
            assert_eq!(keys.len(), batch.len(), "one key per input");
            for (k, d) in keys.into_iter().zip(batch) {
                assert_eq!(k, hash_type.hash_hex(d), "key of a {}-byte object", d.len());
                expected.insert(k, d.clone());
            }
        };
    let to_pack = |batch: &[Vec<u8>], compress: CompressMode| -> Vec<String> {
        c.add_many_to_pack(
            batch.iter().map(Vec::as_slice),
            &PackWriteOptions::default().with_compress(compress),
        )
        .unwrap_or_else(|e| panic!("add_many_to_pack {compress}: {e}"))
    };
    let loose = |batch: &[Vec<u8>]| -> Vec<String> {
        batch
            .iter()
            .map(|d| c.add_object(d).expect("add_object"))
            .collect()
    };

    // Loose objects, with the empty one.
    let loose_a = vec![
        Vec::new(),
        b"x".to_vec(),
        rng.bytes(700),
        rng.text(2000, "la"),
        rng.bytes(3000),
        rng.text(150, "lb"),
    ];
    let keys_loose_a = loose(&loose_a);
    record(&mut expected, keys_loose_a.clone(), &loose_a);

    // Uncompressed packs: several packs, a duplicate inside the call, a copy of a loose object.
    let mut no: Vec<Vec<u8>> = (0..8)
        .map(|_| {
            let n = rng.range(300, 1500);
            rng.bytes(n)
        })
        .collect();
    no.push(rng.text(900, "no"));
    no.push(no[0].clone());
    no.push(loose_a[2].clone());
    let keys_no = to_pack(&no, CompressMode::No);
    assert_eq!(keys_no[0], keys_no[9]);
    record(&mut expected, keys_no.clone(), &no);

    // Compressed packs: text, random data, the empty object, duplicates.
    let mut yes: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            let n = rng.range(800, 3000);
            rng.text(n, &format!("yes{i}"))
        })
        .collect();
    yes.push(rng.bytes(1000));
    yes.push(Vec::new());
    yes.push(b"y".to_vec());
    yes.push(yes[1].clone());
    yes.push(no[4].clone());
    let keys_yes = to_pack(&yes, CompressMode::Yes);
    record(&mut expected, keys_yes.clone(), &yes);

    // AUTO: compressible and incompressible data, tiny objects, duplicates.
    let mut auto = vec![
        rng.text(3000, "auto1"),
        rng.bytes(2500),
        b"tiny".to_vec(),
        rng.text(40, "auto2"),
        rng.bytes(100),
        rng.text(1500, "auto3"),
    ];
    auto.push(yes[0].clone());
    auto.push(auto[1].clone());
    let keys_auto = to_pack(&auto, CompressMode::Auto);
    record(&mut expected, keys_auto, &auto);

    // Large objects, streamed into packs (uncompressed, compressed, auto), and a duplicate
    // large object (cut off again).
    let big_random = rng.bytes(1_200_000);
    let big_text = rng.text(1_500_000, "big");
    let big_auto = rng.text(1_100_000, "bigauto");
    let big = [big_random.clone()];
    record(&mut expected, to_pack(&big, CompressMode::No), &big);
    let big = [big_text, big_random];
    record(&mut expected, to_pack(&big, CompressMode::Yes), &big);
    let big = [big_auto];
    record(&mut expected, to_pack(&big, CompressMode::Auto), &big);

    // A packed object added again as loose, packed objects added again to packs.
    let again = [no[1].clone(), Vec::new()];
    record(&mut expected, loose(&again), &again);
    let again = [yes[2].clone(), no[5].clone(), rng.text(600, "new")];
    record(&mut expected, to_pack(&again, CompressMode::Yes), &again);

    // Deletions: uncompressed and compressed packed (holes), loose and packed, loose only.
    let to_delete = vec![
        keys_no[3].clone(),
        keys_yes[2].clone(),
        keys_loose_a[2].clone(),
        keys_loose_a[4].clone(),
    ];
    let deleted = c.delete(&to_delete).expect("delete");
    assert_eq!(deleted, to_delete, "delete returns the keys that existed");
    for k in &deleted {
        expected.remove(k);
    }

    // Loose objects written last, one of them large.
    let loose_b = vec![
        rng.bytes(64),
        rng.text(5000, "lc"),
        rng.text(300_000, "bigloose"),
    ];
    record(&mut expected, loose(&loose_b), &loose_b);

    let count = c.count().expect("count");
    assert!(count.pack_files >= 5, "several packs: {count:?}");
    assert!(count.loose >= 7, "{count:?}");
    (expected, deleted)
}

fn rsdos_written_zlib_container_is_read_and_validated_by_dos(
    prefix_len: usize,
    hash_type: HashType,
) {
    python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("container");
    let (expected, deleted) = write_rsdos_container(&dir, prefix_len, hash_type);
    // packs/ holds only pack files disk-objectstore recognises, plus rsdos's `.toc` sidecars
    // (which it ignores); no lock is left behind. Every pack but the last reached the target,
    // as with disk-objectstore's pack choice.
    let valid_id = |name: &str| {
        name == "0"
            || (!name.is_empty()
                && !name.starts_with('0')
                && name.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut packs: Vec<(u64, u64)> = Vec::new();
    for e in std::fs::read_dir(dir.join("packs")).expect("list packs") {
        let e = e.expect("pack entry");
        let name = e.file_name().into_string().expect("UTF-8 pack name");
        if name.strip_suffix(".toc").is_some_and(valid_id) {
            continue;
        }
        assert!(
            valid_id(&name),
            "packs/{name} is not a pack file (left behind by rsdos?)"
        );
        let id: u64 = name.parse().expect("pack id");
        packs.push((id, e.metadata().expect("pack metadata").len()));
    }
    packs.sort_unstable();
    assert!(packs.len() >= 5, "{packs:?}");
    for (id, len) in &packs[..packs.len() - 1] {
        assert!(
            *len >= PACK_SIZE_TARGET,
            "pack {id} closed below the target: {packs:?}"
        );
    }

    // rsdos's own view, from a fresh handle (dropped before disk-objectstore runs).
    let (rs_metas, rs_count, rs_total, rs_listing) = {
        let c = Container::open(&dir).expect("open");
        let metas: BTreeMap<String, Value> = c
            .meta_many(expected.keys())
            .expect("meta_many")
            .into_iter()
            .map(|(k, m)| (k, meta_json(&m)))
            .collect();
        for (k, m) in &metas {
            assert_ne!(m["type"], json!("missing"), "rsdos lost {k}");
        }
        let listing: Vec<String> = c
            .iter_hashkeys()
            .expect("iter_hashkeys")
            .collect::<rsdos::Result<_>>()
            .expect("iter_hashkeys item");
        (
            metas,
            count_json(&c.count().expect("count")),
            total_size_json(&c.total_size().expect("total_size")),
            listing,
        )
    };
    let compressed = rs_metas
        .values()
        .filter(|m| m["pack_compressed"] == json!(true))
        .count();
    assert!(compressed >= 5, "too few compressed objects: {compressed}");
    assert_eq!(
        rs_listing.iter().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );

    let mut args = vec![path_arg(&dir)];
    args.extend(deleted.iter().cloned());
    let report = run_json("dos_read.py", &args);

    // Listing: every key once, exactly the expected ones.
    let listing = str_list(&report["listing"], "listing");
    let set: BTreeSet<&String> = listing.iter().collect();
    assert_eq!(
        set.len(),
        listing.len(),
        "disk-objectstore lists a key twice"
    );
    assert_eq!(
        set,
        expected.keys().collect::<BTreeSet<_>>(),
        "disk-objectstore's listing"
    );

    // Every object: same content, same metadata.
    let objects = obj(&report["objects"], "objects");
    assert_eq!(
        objects.keys().collect::<BTreeSet<_>>(),
        expected.keys().collect::<BTreeSet<_>>()
    );
    for (key, data) in &expected {
        let entry = &objects[key];
        assert_eq!(
            content_fields(entry),
            content_json(data),
            "disk-objectstore's content of {key}"
        );
        assert_eq!(entry["hash_ok"], json!(true), "{key}: {entry}");
        assert_eq!(entry["stream_matches"], json!(true), "{key}: {entry}");
        assert_eq!(
            entry["meta"], rs_metas[key],
            "disk-objectstore's meta of {key}"
        );
        assert_eq!(
            entry["meta_single"], rs_metas[key],
            "disk-objectstore's get_object_meta of {key}"
        );
    }
    for key in &deleted {
        assert_eq!(
            report["has"][key],
            json!(false),
            "{key} deleted by rsdos but present for disk-objectstore"
        );
    }

    // Statistics and validation.
    assert_eq!(report["count"], rs_count, "count_objects");
    assert_eq!(report["total_size"], rs_total, "get_total_size");
    assert_eq!(report["validate"], empty_issues(), "validate()");
    assert_eq!(report["is_valid"], json!(true));
    let cfg = &report["config"];
    assert_eq!(cfg["loose_prefix_len"], json!(prefix_len));
    assert_eq!(cfg["pack_size_target"], json!(PACK_SIZE_TARGET));
    assert_eq!(cfg["hash_type"], json!(hash_type.as_str()));
    assert_eq!(cfg["compression_algorithm"], json!("zlib+1"));

    // disk-objectstore keeps writing (a copy of) the container.
    let copy = &report["copy"];
    assert_eq!(
        copy["validate"],
        empty_issues(),
        "after disk-objectstore wrote, packed and cleaned"
    );
    assert_eq!(copy["is_valid"], json!(true));
    assert_eq!(copy["contents_unchanged"], json!(true), "{copy}");
    assert_eq!(copy["new_objects_ok"], json!(true), "{copy}");
    assert_eq!(copy["count"]["loose"], json!(0), "{copy}");
    assert_eq!(copy["listing_len"], json!(expected.len() + 3), "{copy}");

    // config.json is byte-for-byte what disk-objectstore writes, but for the container id.
    let ours = std::fs::read_to_string(dir.join("config.json")).expect("read config.json");
    let dos_dir = tmp.path().join("dos-config");
    let theirs = run_script(
        "dos_config.py",
        &[
            path_arg(&dos_dir),
            prefix_len.to_string(),
            PACK_SIZE_TARGET.to_string(),
            hash_type.as_str().to_string(),
            "zlib+1".to_string(),
        ],
    );
    let id_of = |text: &str| -> String {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("config.json {text:?} is not JSON: {e}"));
        v["container_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no container_id in {text}"))
            .to_string()
    };
    let (our_id, their_id) = (id_of(&ours), id_of(&theirs));
    assert_eq!(our_id.len(), 32, "container_id {our_id:?}");
    assert!(
        our_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "container_id {our_id:?} is not lowercase hex (uuid4().hex)"
    );
    assert_eq!(report["config"]["container_id"], json!(our_id));
    assert_ne!(our_id, their_id);
    assert_eq!(
        ours.replacen(&our_id, "<ID>", 1),
        theirs.replacen(&their_id, "<ID>", 1),
        "config.json differs from disk-objectstore's"
    );
}

#[test]
fn rsdos_written_zlib_container_is_read_and_validated_by_dos_prefix0() {
    rsdos_written_zlib_container_is_read_and_validated_by_dos(0, HashType::Sha256);
}

#[test]
fn rsdos_written_zlib_container_is_read_and_validated_by_dos_prefix2() {
    rsdos_written_zlib_container_is_read_and_validated_by_dos(2, HashType::Sha256);
}

#[test]
fn rsdos_written_zlib_container_is_read_and_validated_by_dos_sha1() {
    rsdos_written_zlib_container_is_read_and_validated_by_dos(2, HashType::Sha1);
}

// ---- 3. zstd containers are rsdos-only ---------------------------------------------------

fn zstd_container_is_refused_by_dos(prefix_len: usize) {
    python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("container");
    let algorithm: CompressionAlgorithm = "zstd+3".parse().expect("zstd+3");
    let mut rng = Rng::new(0x25D + prefix_len as u64);
    let compressed = rng.text(5000, "zstd");
    let plain = rng.bytes(1000);
    let loose = b"a loose object of a zstd container".to_vec();
    let (key_compressed, key_plain, key_loose) = {
        let options = InitOptions::default()
            .with_loose_prefix_len(prefix_len)
            .with_pack_size_target(PACK_SIZE_TARGET)
            .with_compression_algorithm(algorithm);
        let c = Container::init(&dir, &options).expect("init zstd");
        let yes = PackWriteOptions::default().with_compress(CompressMode::Yes);
        let no = PackWriteOptions::default().with_compress(CompressMode::No);
        let kc = c
            .add_stream_to_pack(&mut compressed.as_slice(), &yes)
            .expect("compressed");
        let kp = c
            .add_stream_to_pack(&mut plain.as_slice(), &no)
            .expect("plain");
        let kl = c.add_object(&loose).expect("loose");
        let meta = c.meta(&kc).expect("meta");
        assert_eq!(meta.packed.map(|l| l.compressed), Some(true), "{meta:?}");
        assert_eq!(c.get_object(&kc).expect("rsdos reads zstd"), compressed);
        (kc, kp, kl)
    };
    let config = std::fs::read_to_string(dir.join("config.json")).expect("config.json");
    assert!(
        config.contains("\"compression_algorithm\": \"zstd+3\""),
        "{config}"
    );

    let refused = run_json(
        "dos_read_zstd.py",
        &[path_arg(&dir), key_compressed.clone()],
    );
    assert!(
        refused.get("content_hex").is_none(),
        "disk-objectstore returned content for a zstd object instead of failing: {refused}"
    );
    assert_eq!(
        refused["error_type"],
        json!("ValueError"),
        "disk-objectstore must refuse the zstd object: {refused}"
    );
    let message = refused["message"].as_str().expect("message");
    assert!(
        message.contains("zstd"),
        "the error should name the unknown algorithm: {message:?}"
    );

    for (key, data, kind) in [(key_plain, plain, "packed"), (key_loose, loose, "loose")] {
        let got = run_json("dos_read_zstd.py", &[path_arg(&dir), key.clone()]);
        assert_eq!(
            got["content_hex"],
            json!(hex(&data)),
            "disk-objectstore must read the {kind} uncompressed object {key} of a zstd container: {got}"
        );
        assert_eq!(got["meta"]["type"], json!(kind), "{got}");
    }
}

#[test]
fn zstd_container_is_refused_by_dos_prefix0() {
    zstd_container_is_refused_by_dos(0);
}

#[test]
fn zstd_container_is_refused_by_dos_prefix2() {
    zstd_container_is_refused_by_dos(2);
}

// ---- maintenance results ------------------------------------------------------------------

/// disk-objectstore reads the container, every object hashes to its key, and its validate()
/// is clean; returns its object count.
fn assert_dos_accepts(container: &Container, step: &str, want: &BTreeMap<String, Vec<u8>>) {
    let report = run_json("dos_read.py", &[path_arg(container.path())]);
    assert_eq!(
        report["is_valid"],
        json!(true),
        "after {step}: dos validate: {}",
        report["validate"]
    );
    let objects = obj(&report["objects"], "objects");
    for (key, data) in want {
        let entry = objects
            .get(key)
            .unwrap_or_else(|| panic!("after {step}: dos does not list {key}"));
        assert_eq!(entry["hash_ok"], json!(true), "after {step}: {key}");
        assert_eq!(
            content_fields(entry),
            content_json(data),
            "after {step}: {key}"
        );
    }
    assert_eq!(
        objects.len(),
        want.len(),
        "after {step}: dos lists other objects"
    );
    assert_eq!(
        report["copy"]["is_valid"],
        json!(true),
        "after {step}: dos keeps writing"
    );
}

#[test]
fn every_maintenance_result_is_valid_for_dos() {
    use rsdos::{CleanOptions, NoProgress, PackOptions, RepackOptions};
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Container::init(
        &dir.path().join("c"),
        &InitOptions::default().with_pack_size_target(PACK_SIZE_TARGET),
    )
    .expect("init");
    let mut rng = Rng::new(99);
    let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..120 {
        let len = (rng.next_u64() % 1500) as usize;
        let data: Vec<u8> = if i % 2 == 0 {
            (0..len).map(|_| (rng.next_u64() & 0xff) as u8).collect()
        } else {
            format!("line {i}\n").repeat(len / 8 + 1).into_bytes()
        };
        want.insert(c.add_object(&data).expect("add"), data);
    }
    c.pack_loose(
        &PackOptions::default().with_compress(CompressMode::Auto),
        &NoProgress,
    )
    .expect("pack");
    assert_dos_accepts(&c, "pack", &want);
    c.clean(&CleanOptions::default().with_vacuum(true), &NoProgress)
        .expect("clean");
    assert_dos_accepts(&c, "clean", &want);
    let doomed: Vec<String> = want.keys().step_by(5).cloned().collect();
    c.delete(&doomed).expect("delete");
    for k in &doomed {
        want.remove(k);
    }
    assert_dos_accepts(&c, "delete", &want);
    c.repack(&RepackOptions::default(), &NoProgress)
        .expect("repack");
    assert_dos_accepts(&c, "repack", &want);
    c.repack(
        &RepackOptions::default().with_compress(CompressMode::Yes),
        &NoProgress,
    )
    .expect("repack yes");
    assert_dos_accepts(&c, "repack with compression", &want);
    c.repack(
        &RepackOptions::default().with_compress(CompressMode::No),
        &NoProgress,
    )
    .expect("repack no");
    assert_dos_accepts(&c, "repack without compression", &want);
}

/// Large objects are compressed on all cores (pigz-style blocks for zlib): whether streamed into
/// a pack, packed from loose or recompressed by repack, disk-objectstore reads and validates
/// them, and rsdos reads and seeks them exactly; zstd ones (one frame from several threads) read
/// and seek exactly too.
#[test]
fn large_objects_compressed_on_all_cores_are_valid_for_dos() {
    use rsdos::{CleanOptions, NoProgress, PackOptions, RepackOptions};
    use std::io::{Read, Seek, SeekFrom};
    const MIB: usize = 1024 * 1024;
    let mut rng = Rng::new(0xB16);
    // Half incompressible, half text, per 256 KiB: every block mixes both.
    let mut mixed = |n: usize, tag: &str| -> Vec<u8> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.extend(rng.bytes(128 * 1024));
            out.extend(rng.text(128 * 1024, tag));
        }
        out.truncate(n);
        out
    };
    let streamed = [
        mixed(MIB + 1, "a"),
        mixed(3 * MIB, "b"),
        mixed(5 * MIB + 17, "c"),
    ];
    let loose_big = [mixed(2 * MIB + 5, "d"), mixed(6 * MIB + 1, "e")];
    for algorithm in [CompressionAlgorithm::Zlib(1), CompressionAlgorithm::Zstd(3)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = Container::init(
            &dir.path().join("c"),
            &InitOptions::default().with_compression_algorithm(algorithm),
        )
        .expect("init");
        let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let keys = c
            .add_many_to_pack(
                streamed.iter().map(Vec::as_slice),
                &PackWriteOptions::default().with_compress(CompressMode::Yes),
            )
            .expect("add_many_to_pack");
        want.extend(keys.into_iter().zip(streamed.iter().cloned()));
        for d in &loose_big {
            want.insert(c.add_object(d).expect("add_object"), d.clone());
        }
        c.pack_loose(
            &PackOptions::default().with_compress(CompressMode::Yes),
            &NoProgress,
        )
        .expect("pack");
        // Without loose copies, reads come from the packs.
        c.clean(&CleanOptions::default(), &NoProgress)
            .expect("clean");
        let check = |step: &str| {
            for (key, data) in &want {
                let meta = c.meta(key).expect("meta");
                let loc = meta.packed.expect("packed");
                assert!(loc.compressed, "after {step}: {key} compressed");
                assert!(loc.length < loc.size, "after {step}: {key} shrank");
                let mut r = c.open_object(key).expect("open");
                let mut all = Vec::new();
                r.read_to_end(&mut all).expect("read");
                assert!(all == *data, "after {step}: {key} content");
                // Seeks across block boundaries, forwards and back.
                for pos in [data.len() as u64 - 1, 1, MIB as u64 - 3, 0, MIB as u64 + 1] {
                    let pos = pos.min(data.len() as u64);
                    assert_eq!(r.seek(SeekFrom::Start(pos)).expect("seek"), pos);
                    let mut buf = vec![0u8; 10];
                    let n = r.read(&mut buf).expect("read");
                    let p = pos as usize;
                    assert_eq!(
                        buf[..n],
                        data[p..(p + 10).min(data.len())][..n],
                        "after {step}: {key} at {pos}"
                    );
                }
            }
            if algorithm == CompressionAlgorithm::Zlib(1) {
                assert_dos_accepts(&c, step, &want);
            }
        };
        check("streaming into packs and pack_loose");
        c.repack(
            &RepackOptions::default().with_compress(CompressMode::No),
            &NoProgress,
        )
        .expect("repack no");
        c.repack(
            &RepackOptions::default().with_compress(CompressMode::Yes),
            &NoProgress,
        )
        .expect("repack yes");
        check("repack with compression");
    }
}
