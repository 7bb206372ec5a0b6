//! The ObjectIndex behaviour suite against SqliteIndex, plus SQLite-specific behaviour.

use std::sync::Arc;

use rsdos_core::{ErrorKind, ObjectIndex};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_testkit::index_suite::{IndexHarness, entry, key};

struct Harness {
    dir: tempfile::TempDir,
    index: Arc<dyn ObjectIndex>,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Arc::new(SqliteIndex::create(&dir.path().join("packs.idx")).expect("create"));
        Harness { dir, index }
    }
}

impl IndexHarness for Harness {
    fn index(&self) -> Arc<dyn ObjectIndex> {
        Arc::clone(&self.index)
    }
    fn other(&self) -> Arc<dyn ObjectIndex> {
        Arc::new(SqliteIndex::open(&self.dir.path().join("packs.idx")).expect("open"))
    }
}

rsdos_testkit::object_index_suite!(Harness::new);

#[test]
fn schema_is_disk_objectstores_in_wal_mode() {
    let h = Harness::new();
    let conn = rusqlite::Connection::open(h.dir.path().join("packs.idx")).expect("open");
    let sql: Vec<String> = conn
        .prepare("SELECT sql FROM sqlite_master WHERE name IN ('db_object', 'ix_db_object_hashkey') ORDER BY name")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(sql.len(), 2);
    assert!(sql[0].starts_with("CREATE TABLE db_object ("), "{}", sql[0]);
    for column in [
        "id INTEGER NOT NULL",
        "hashkey VARCHAR NOT NULL",
        "compressed BOOLEAN NOT NULL",
        "size INTEGER NOT NULL",
        "\"offset\" INTEGER NOT NULL",
        "length INTEGER NOT NULL",
        "pack_id INTEGER NOT NULL",
        "PRIMARY KEY (id)",
    ] {
        assert!(sql[0].contains(column), "missing {column} in {}", sql[0]);
    }
    assert_eq!(
        sql[1],
        "CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey)"
    );
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
}

#[test]
fn open_missing_file_is_not_initialised() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = SqliteIndex::open(&dir.path().join("packs.idx")).expect_err("missing");
    assert_eq!(err.kind(), ErrorKind::NotInitialised);
}

#[test]
fn open_garbage_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("packs.idx");
    std::fs::write(&path, vec![0x42u8; 8192]).expect("write");
    let err = SqliteIndex::open(&path).expect_err("garbage");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("packs.idx"), "{err}");
}

#[test]
fn truncated_index_is_an_error_not_a_panic() {
    let h = Harness::new();
    let entries: Vec<_> = (0..3000).map(|n| entry(n, 0, n * 10)).collect();
    h.index.insert(&entries).expect("insert");
    drop(h.index);
    let path = h.dir.path().join("packs.idx");
    // Checkpoint happened on close of the last connection; cut the file in half.
    let len = std::fs::metadata(&path).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let _ = std::fs::remove_file(path.with_extension("idx-wal"));
    let result = SqliteIndex::open(&path).and_then(|i| {
        let keys: Vec<String> = (0..3000).map(key).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        i.get_many(&refs).map(|v| v.len())
    });
    match result {
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Index),
            "{e}"
        ),
        Ok(n) => assert!(n < 3000, "a truncated index cannot return every row"),
    }
}

#[test]
fn pack_offset_index_can_be_added_to_a_foreign_index() {
    let h = Harness::new();
    let sqlite = SqliteIndex::open(&h.dir.path().join("packs.idx")).expect("open");
    sqlite.ensure_pack_offset_index().expect("idempotent");
    sqlite.ensure_pack_offset_index().expect("twice");
}

/// Counts and totals read rsdos's small covering index, not the table with its hashkeys.
#[test]
fn totals_scan_the_covering_pack_offset_index() {
    let h = Harness::new();
    let entries: Vec<_> = (0..50).map(|n| entry(n, n / 10, n * 100)).collect();
    h.index.insert(&entries).expect("insert");
    let totals = h.index.totals().expect("totals");
    assert_eq!(totals.count, 50);
    assert_eq!(
        totals.size,
        entries.iter().map(|e| e.location.size).sum::<u64>()
    );
    let conn = rusqlite::Connection::open(h.dir.path().join("packs.idx")).expect("open");
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT count(*), COALESCE(SUM(size), 0), \
             COALESCE(SUM(length), 0) FROM db_object",
        )
        .expect("prepare")
        .query_map([], |r| r.get(3))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(
        plan.iter()
            .any(|p| p.contains("COVERING INDEX ix_rsdos_pack_offset")),
        "{plan:?}"
    );
}
