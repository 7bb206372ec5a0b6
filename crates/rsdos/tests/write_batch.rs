//! Batched loose writes (`Container::write_batch`, `Container::add_objects`).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use rsdos::{
    Container, InitOptions, NoProgress, ObjectType, PackOptions, PackWriteOptions, ValidateOptions,
    WriteBatchOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

fn new_container(dir: &Path, opts: InitOptions) -> Container {
    Container::init(&dir.join("c"), &opts).expect("init")
}

fn contents(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let len = rng.below(1001) as usize;
            if i % 2 == 0 {
                random_bytes(&mut rng, len)
            } else {
                text_bytes(&mut rng, len)
            }
        })
        .collect()
}

fn sandbox_entries(c: &Container) -> usize {
    std::fs::read_dir(c.path().join("sandbox"))
        .expect("list sandbox")
        .count()
}

fn assert_valid(c: &Container) {
    let report = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(report.is_valid(), "{report:?}");
}

#[test]
fn contents_round_trip_after_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let data = contents(1, 300);
    let mut batch = c.write_batch();
    let mut keys = Vec::new();
    for (i, d) in data.iter().enumerate() {
        // Both entry points: bytes and streams.
        let key = if i % 3 == 0 {
            batch.add_stream(&mut d.as_slice()).expect("add_stream")
        } else {
            batch.add_object(d).expect("add_object")
        };
        assert_eq!(key, c.config().hash_type.hash_hex(d));
        keys.push(key);
    }
    let report = batch.commit().expect("commit");
    assert_eq!(report.added, 300);
    assert_eq!(report.flushes, 1);
    for (key, d) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object(key).expect("get"), d);
        assert_eq!(c.meta(key).expect("meta").object_type, ObjectType::Loose);
    }
    assert_eq!(sandbox_entries(&c), 0);
    assert_valid(&c);
}

#[test]
fn objects_are_visible_only_after_commit() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut batch = c.write_batch();
    let a = batch.add_object(b"first").expect("add");
    let b = batch.add_stream(&mut &b"second"[..]).expect("add");
    assert_eq!(batch.pending(), 2);
    for key in [&a, &b] {
        assert!(!c.has(key).expect("has"), "visible before commit");
    }
    assert_eq!(c.count().expect("count").loose, 0);
    assert_eq!(sandbox_entries(&c), 2, "written to the sandbox meanwhile");
    batch.flush().expect("flush");
    assert!(c.has(&a).expect("has") && c.has(&b).expect("has"));
    assert_eq!(batch.pending(), 0);
    // The batch goes on after a flush.
    let d = batch.add_object(b"third").expect("add");
    assert!(!c.has(&d).expect("has"));
    let report = batch.commit().expect("commit");
    assert_eq!((report.added, report.written, report.flushes), (3, 3, 2));
    assert_eq!(c.get_object(&d).expect("get"), b"third");
}

#[test]
fn dropping_without_commit_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut batch = c.write_batch();
    let keys: Vec<String> = contents(2, 50)
        .iter()
        .map(|d| batch.add_object(d).expect("add"))
        .collect();
    assert!(sandbox_entries(&c) > 0);
    drop(batch);
    assert_eq!(sandbox_entries(&c), 0, "sandbox files discarded");
    for key in &keys {
        assert!(!c.has(key).expect("has"));
    }
    assert_eq!(c.count().expect("count").loose, 0);

    let mut batch = c.write_batch();
    batch.add_object(b"discarded").expect("add");
    batch.discard();
    assert_eq!(sandbox_entries(&c), 0);
    assert_valid(&c);
}

#[test]
fn duplicates_inside_the_batch_are_written_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut batch = c.write_batch();
    let k1 = batch.add_object(b"same").expect("add");
    let k2 = batch.add_stream(&mut &b"same"[..]).expect("add");
    let k3 = batch.add_object(b"same").expect("add");
    assert_eq!((&k1, &k1), (&k2, &k3));
    assert_eq!(batch.pending(), 1);
    assert_eq!(sandbox_entries(&c), 1, "one sandbox file for three adds");
    let report = batch.commit().expect("commit");
    assert_eq!((report.added, report.written), (3, 1));
    assert_eq!(c.count().expect("count").loose, 1);
    assert_eq!(sandbox_entries(&c), 0);
}

#[test]
fn content_already_loose_or_packed_is_not_written_again() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let loose_key = c.add_object(b"already loose").expect("add");
    let packed_key = c
        .add_many_to_pack([&b"already packed"[..]], &PackWriteOptions::default())
        .expect("pack")
        .remove(0);
    let loose_path = c.loose_path(&loose_key).expect("path");
    let modified = std::fs::metadata(&loose_path)
        .and_then(|m| m.modified())
        .expect("mtime");

    let mut batch = c.write_batch();
    assert_eq!(batch.add_object(b"already loose").expect("add"), loose_key);
    assert_eq!(
        batch.add_stream(&mut &b"already packed"[..]).expect("add"),
        packed_key
    );
    let new_key = batch.add_object(b"new").expect("add");
    let report = batch.commit().expect("commit");
    assert_eq!((report.added, report.written), (3, 1));

    let count = c.count().expect("count");
    assert_eq!(
        (count.loose, count.packed),
        (2, 1),
        "no loose copy of the packed object"
    );
    assert_eq!(
        c.meta(&packed_key).expect("meta").object_type,
        ObjectType::Packed
    );
    assert_eq!(
        std::fs::metadata(&loose_path)
            .and_then(|m| m.modified())
            .expect("mtime"),
        modified,
        "the existing loose file was left alone"
    );
    assert_eq!(c.get_object(&new_key).expect("get"), b"new");
    assert_eq!(sandbox_entries(&c), 0);
    assert_valid(&c);
}

#[test]
fn a_damaged_loose_file_of_the_wrong_size_is_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let key = c.add_object(b"good content").expect("add");
    std::fs::write(c.loose_path(&key).expect("path"), b"bad").expect("damage");
    let mut batch = c.write_batch();
    batch.add_object(b"good content").expect("add");
    batch.commit().expect("commit");
    assert_eq!(c.get_object(&key).expect("get"), b"good content");
}

#[test]
fn the_batch_flushes_by_itself_at_its_bounds() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let data = contents(3, 25);

    let mut batch = c.write_batch_with(WriteBatchOptions::default().with_max_objects(10));
    let mut keys = Vec::new();
    for d in &data {
        keys.push(batch.add_object(d).expect("add"));
        assert!(batch.pending() < 10, "never more than the bound pending");
        assert!(sandbox_entries(&c) < 10, "sandbox use bounded");
    }
    // 20 objects were flushed by the bound; the last 5 wait for the commit.
    assert_eq!(batch.pending(), 5);
    assert!(keys[..20].iter().all(|k| c.has(k).expect("has")));
    assert!(!keys[20..].iter().any(|k| c.has(k).expect("has")));
    let report = batch.commit().expect("commit");
    assert_eq!((report.added, report.flushes), (25, 3));

    // A byte bound: every object of 600 bytes or more reaches 1000 with the one before it.
    let big = vec![7u8; 600];
    let mut batch = c.write_batch_with(WriteBatchOptions::default().with_max_bytes(1000));
    batch.add_object(&big).expect("add");
    assert_eq!(batch.pending(), 1);
    batch.add_object(&[8u8; 600]).expect("add");
    assert_eq!(batch.pending(), 0, "flushed at 1200 pending bytes");
    batch.commit().expect("commit");
    assert_valid(&c);
}

#[test]
fn add_objects_is_one_batch_in_input_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let mut data = contents(4, 100);
    data.push(data[10].clone());
    let keys = c
        .add_objects(data.iter().map(|d| d.as_slice()))
        .expect("add_objects");
    assert_eq!(keys.len(), data.len());
    assert_eq!(keys[100], keys[10]);
    for (key, d) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object(key).expect("get"), d);
    }
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(c.count().expect("count").loose, distinct.len() as u64);
    assert_eq!(sandbox_entries(&c), 0);
}

/// A reader that fails after some bytes.
struct Failing(usize);

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0 == 0 {
            return Err(std::io::Error::other("input broke"));
        }
        let n = self.0.min(buf.len());
        buf[..n].fill(b'x');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_input_discards_the_uncommitted_objects() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let inputs: Vec<Box<dyn Read>> = vec![
        Box::new(&b"before"[..]),
        Box::new(Failing(10)),
        Box::new(&b"after"[..]),
    ];
    let err = c.add_objects(inputs).expect_err("input fails");
    assert!(format!("{err:?}").contains("input broke"), "{err:?}");
    assert_eq!(c.count().expect("count").loose, 0);
    assert_eq!(sandbox_entries(&c), 0);

    // Within a batch, the failed add leaves the batch usable.
    let mut batch = c.write_batch();
    let key = batch.add_object(b"kept").expect("add");
    batch.add_stream(&mut Failing(5)).expect_err("fails");
    batch.commit().expect("commit");
    assert_eq!(c.get_object(&key).expect("get"), b"kept");
    assert_eq!(sandbox_entries(&c), 0);
}

#[test]
fn the_per_file_fsync_path_stores_the_same() {
    // The path of platforms without syncfs, also chosen with `with_syncfs(false)`.
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path(), InitOptions::default());
    let existing = c.add_object(b"already loose").expect("add");
    let data = contents(6, 120);
    let mut batch = c.write_batch_with(
        WriteBatchOptions::default()
            .with_syncfs(false)
            .with_max_objects(50),
    );
    let keys: Vec<String> = data
        .iter()
        .map(|d| batch.add_object(d).expect("add"))
        .collect();
    assert_eq!(batch.add_object(b"already loose").expect("add"), existing);
    let report = batch.commit().expect("commit");
    assert_eq!(report.flushes, 3);
    for (key, d) in keys.iter().zip(&data) {
        assert_eq!(&c.get_object(key).expect("get"), d);
    }
    assert_eq!(sandbox_entries(&c), 0);
    assert_valid(&c);
}

#[test]
fn pack_loose_after_a_batch_and_other_layouts() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, opts) in [
        ("default", InitOptions::default()),
        ("flat", InitOptions::default().with_loose_prefix_len(0)),
        (
            "sha1",
            InitOptions::default().with_hash_type(rsdos::HashType::Sha1),
        ),
    ] {
        let c = new_container(&dir.path().join(name), opts);
        let data = contents(5, 200);
        let keys = c
            .add_objects(data.iter().map(|d| d.as_slice()))
            .expect("add_objects");
        assert_valid(&c);
        let report = c
            .pack_loose(&PackOptions::default(), &NoProgress)
            .expect("pack");
        let distinct: HashSet<&String> = keys.iter().collect();
        assert_eq!(report.packed, distinct.len() as u64, "{name}");
        for (key, d) in keys.iter().zip(&data) {
            assert_eq!(&c.get_object(key).expect("get"), d, "{name}");
            assert_eq!(c.meta(key).expect("meta").object_type, ObjectType::Packed);
        }
        assert_valid(&c);
    }
}
