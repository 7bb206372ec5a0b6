//! Open files never grow with the number of packs, for packs on object storage too: a
//! container whose 10,000 small packs are in an OpenDAL `fs://` folder, every object read (one
//! by one in random order, then with `read_many`, which fetches packs in parallel) in a child
//! process limited to 256 open files (`ulimit -n 256`), while the open descriptors are counted.

use std::path::Path;
use std::sync::Arc;

use rsdos::{Container, InitOptions};
use rsdos_core::{HashType, PackStore};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::Rng;
use rsdos_testkit::many_packs::{
    nofile_limit, open_fds, rerun_under_nofile_limit, write_pack_files,
};

const PACKS: u64 = 10_000;
const PER_PACK: usize = 3;
const NOFILE: u64 = 256;
/// Set in the child run: the container to read.
const CHILD_VAR: &str = "RSDOS_TEST_MANY_REMOTE_PACKS_CONTAINER";
/// Descriptors besides pack files: index connections, the I/O runtime's poller and threads'
/// wake-up descriptors, the test harness's pipes.
const OTHER_FDS: usize = 48;

fn open(root: &Path) -> (Container, Arc<OpendalPackStore>) {
    let url = format!("fs://{}", root.join("remote").display());
    let store = Arc::new(OpendalPackStore::open(&url, &root.join("packs")).expect("store"));
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx")).expect("index"));
    let packs: Arc<dyn PackStore> = Arc::clone(&store) as Arc<dyn PackStore>;
    let c = Container::open_with_storage(root, index, packs).expect("open container");
    (c, store)
}

#[test]
fn ten_thousand_remote_packs_are_read_under_ulimit_256() {
    if let Some(root) = std::env::var_os(CHILD_VAR) {
        read_everything(Path::new(&root));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("c");
    drop(Container::init(&root, &InitOptions::default()).expect("init"));
    // The remote keys mirror the local layout (`<prefix>/<id>`): the pack files go straight
    // into the fs service's folder, as uploaded packs.
    let (rows, _) = write_pack_files(&root.join("remote"), PACKS, PER_PACK, 12).expect("packs");
    let (c, store) = open(&root);
    assert_eq!(
        c.index().insert(&rows).expect("index rows"),
        PACKS * PER_PACK as u64
    );
    assert_eq!(store.uploaded().expect("uploaded").len() as u64, PACKS);
    assert!(store.staged().expect("staged").is_empty());
    drop((c, store));
    let out = rerun_under_nofile_limit(
        "ten_thousand_remote_packs_are_read_under_ulimit_256",
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
    let (c, store) = open(root);
    assert!(store.read_parallelism() > 1, "bulk reads run in parallel");
    let bound = before + rsdos_pack_local::DEFAULT_MAX_OPEN_PACKS + OTHER_FDS;
    let mut keys: Vec<String> = c
        .iter_hashkeys()
        .expect("keys")
        .collect::<rsdos::Result<_>>()
        .expect("keys");
    assert_eq!(keys.len() as u64, PACKS * PER_PACK as u64);
    let mut rng = Rng::new(6);
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
    let mut last = (0, 0);
    for (i, item) in c.read_many(&keys, false).expect("read_many").enumerate() {
        let item = item.expect("item");
        // Still in storage order although packs are fetched in parallel.
        let p = item.meta.packed.expect("packed");
        assert!((p.pack_id, p.offset) >= last, "out of order at {i}");
        last = (p.pack_id, p.offset);
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
