//! The pack writer inserts index rows on a helper thread; when that helper's insert session
//! cannot begin or fails half-way, the writer must insert the rows itself: every object stays
//! indexed and readable, and `clean_loose_per_pack` deletes loose copies of indexed objects
//! only. An index wrapper injects the failures.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rsdos::{Container, InitOptions, NoProgress, PackOptions, PackWriteOptions};
use rsdos_core::{
    Error, IndexInsert, IndexTotals, ObjectIndex, PackedEntry, PackedLocation, Result,
};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_local::LocalPackStore;
use rsdos_testkit::data::{Rng, random_bytes};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `begin_insert` fails.
    Begin,
    /// The session's second `insert` fails.
    SecondInsert,
}

/// `SqliteIndex` with failing insert sessions; counts the sessions asked for.
#[derive(Debug)]
struct FaultyIndex {
    inner: SqliteIndex,
    fault: Fault,
    sessions: AtomicUsize,
}

struct FaultySession<'a> {
    inner: Box<dyn IndexInsert + 'a>,
    inserts: usize,
}

impl IndexInsert for FaultySession<'_> {
    fn insert(&mut self, entries: &[PackedEntry]) -> Result<()> {
        self.inserts += 1;
        if self.inserts == 2 {
            return Err(Error::InvalidArgument("injected: insert fails".into()));
        }
        self.inner.insert(entries)
    }

    fn commit(self: Box<Self>) -> Result<u64> {
        self.inner.commit()
    }
}

impl ObjectIndex for FaultyIndex {
    fn get(&self, hashkey: &str) -> Result<Option<PackedLocation>> {
        self.inner.get(hashkey)
    }
    fn get_many(&self, hashkeys: &[&str]) -> Result<Vec<PackedEntry>> {
        self.inner.get_many(hashkeys)
    }
    fn insert(&self, entries: &[PackedEntry]) -> Result<u64> {
        self.inner.insert(entries)
    }
    fn begin_insert(&self) -> Result<Box<dyn IndexInsert + '_>> {
        self.sessions.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::Begin => Err(Error::InvalidArgument("injected: begin fails".into())),
            Fault::SecondInsert => Ok(Box::new(FaultySession {
                inner: self.inner.begin_insert()?,
                inserts: 0,
            })),
        }
    }
    fn update(&self, entries: &[PackedEntry]) -> Result<u64> {
        self.inner.update(entries)
    }
    fn delete(&self, hashkeys: &[&str]) -> Result<Vec<String>> {
        self.inner.delete(hashkeys)
    }
    fn totals(&self) -> Result<IndexTotals> {
        self.inner.totals()
    }
    fn pack_ids(&self) -> Result<Vec<u64>> {
        self.inner.pack_ids()
    }
    fn pack_entries_page(
        &self,
        pack_id: u64,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<PackedEntry>> {
        self.inner.pack_entries_page(pack_id, after, limit)
    }
    fn hashkeys_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.inner.hashkeys_page(after, limit)
    }
    fn size_on_disk(&self) -> Result<u64> {
        self.inner.size_on_disk()
    }
    fn vacuum(&self) -> Result<()> {
        self.inner.vacuum()
    }
}

fn open_faulty(root: &Path, fault: Fault) -> (Container, Arc<FaultyIndex>) {
    let index = Arc::new(FaultyIndex {
        inner: SqliteIndex::open(&root.join("packs.idx")).expect("index"),
        fault,
        sessions: AtomicUsize::new(0),
    });
    let packs = Arc::new(LocalPackStore::new(&root.join("packs"), 64));
    let c = Container::open_with_storage(root, Arc::clone(&index) as Arc<dyn ObjectIndex>, packs)
        .expect("open");
    (c, index)
}

fn objects(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| random_bytes(&mut rng, 20 + i % 500))
        .collect()
}

#[test]
fn direct_pack_writes_survive_failing_insert_sessions() {
    for fault in [Fault::Begin, Fault::SecondInsert] {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("c");
        drop(Container::init(&root, &InitOptions::default()).expect("init"));
        let (c, index) = open_faulty(&root, fault);
        let data = objects(1, 7_000);
        let keys = c
            .add_many_to_pack(data.iter().map(|d| &d[..]), &PackWriteOptions::default())
            .expect("write");
        assert!(
            index.sessions.load(Ordering::SeqCst) >= 1,
            "{fault:?}: no helper"
        );
        assert_eq!(c.count().expect("count").packed, 7_000, "{fault:?}");
        for (k, d) in keys.iter().zip(&data) {
            assert_eq!(&c.get_object(k).expect("get"), d, "{fault:?}");
        }
        let sizes = c.total_size().expect("size");
        assert_eq!(
            sizes.total_size_packfiles_on_disk, sizes.total_size_packed_on_disk,
            "{fault:?}: unreferenced bytes in the pack"
        );
    }
}

#[test]
fn packing_loose_objects_survives_failing_insert_sessions() {
    for fault in [Fault::Begin, Fault::SecondInsert] {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("c");
        let plain = Container::init(&root, &InitOptions::default()).expect("init");
        let data = objects(2, 7_000);
        let keys = plain
            .add_objects(data.iter().map(|d| &d[..]))
            .expect("loose");
        drop(plain);
        let (c, index) = open_faulty(&root, fault);
        let options = PackOptions::default().with_clean_loose_per_pack(true);
        c.pack_loose(&options, &NoProgress).expect("pack");
        assert!(
            index.sessions.load(Ordering::SeqCst) >= 1,
            "{fault:?}: no helper"
        );
        let count = c.count().expect("count");
        assert_eq!((count.packed, count.loose), (7_000, 0), "{fault:?}");
        for (k, d) in keys.iter().zip(&data) {
            assert_eq!(&c.get_object(k).expect("get"), d, "{fault:?}");
        }
    }
}
