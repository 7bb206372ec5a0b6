//! Open files never grow with the number of packs: a container with 10,000 small packs whose
//! every object is read (one by one in random order, then with `read_many`) in a child process
//! limited to 256 open files (`ulimit -n 256`), while the open descriptors are counted.

use std::path::Path;

use rsdos::{Container, InitOptions};
use rsdos_core::HashType;
use rsdos_testkit::data::Rng;
use rsdos_testkit::many_packs::{
    nofile_limit, open_fds, rerun_under_nofile_limit, write_pack_files,
};

const PACKS: u64 = 10_000;
const PER_PACK: usize = 3;
const NOFILE: u64 = 256;
/// Set in the child run: the container to read.
const CHILD_VAR: &str = "RSDOS_TEST_MANY_PACKS_CONTAINER";
/// Descriptors the container may hold besides cached pack handles (index connections with
/// their WAL and shared-memory files, the loose folder, the test harness's pipes).
const OTHER_FDS: usize = 32;

#[test]
fn ten_thousand_local_packs_are_read_under_ulimit_256() {
    if let Some(root) = std::env::var_os(CHILD_VAR) {
        read_everything(Path::new(&root));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("c");
    let c = Container::init(&root, &InitOptions::default()).expect("init");
    let (rows, _) = write_pack_files(&root.join("packs"), PACKS, PER_PACK, 11).expect("packs");
    assert_eq!(
        c.index().insert(&rows).expect("index rows"),
        PACKS * PER_PACK as u64
    );
    drop(c);
    let out = rerun_under_nofile_limit(
        "ten_thousand_local_packs_are_read_under_ulimit_256",
        NOFILE,
        CHILD_VAR,
        &root.display().to_string(),
    );
    print!("{out}");
}

/// In the child: every object read, by key in random order and with `read_many`, each content
/// checked against its hashkey, the open descriptors counted along the way.
fn read_everything(root: &Path) {
    assert_eq!(nofile_limit(), Some(NOFILE), "the limit must be in force");
    let before = open_fds();
    let c = Container::open(root).expect("open");
    let bound = before + rsdos_pack_local::DEFAULT_MAX_OPEN_PACKS + OTHER_FDS;
    let mut keys: Vec<String> = c
        .iter_hashkeys()
        .expect("keys")
        .collect::<rsdos::Result<_>>()
        .expect("keys");
    assert_eq!(keys.len() as u64, PACKS * PER_PACK as u64);
    let mut rng = Rng::new(5);
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut most = 0;
    for (i, key) in keys.iter().enumerate() {
        let data = c.get_object(key).expect("get_object");
        assert_eq!(&HashType::Sha256.hash_hex(&data), key);
        if i % 500 == 0 {
            most = most.max(open_fds());
        }
    }
    let mut seen = 0;
    for (i, item) in c.read_many(&keys, false).expect("read_many").enumerate() {
        let item = item.expect("item");
        let data = item.reader.expect("present").read_all().expect("read");
        assert_eq!(HashType::Sha256.hash_hex(&data), item.hashkey);
        seen += 1;
        if i % 500 == 0 {
            most = most.max(open_fds());
        }
    }
    assert_eq!(seen, keys.len());
    assert!(
        most <= bound,
        "{most} descriptors open while reading {PACKS} packs (bound {bound})"
    );
    println!("open descriptors: {before} before, at most {most} while reading");
}
