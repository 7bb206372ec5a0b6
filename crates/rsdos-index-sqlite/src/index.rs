//! The SQLite implementation of [`ObjectIndex`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rsdos_core::{
    Error, IndexInsert, IndexTotals, ObjectIndex, PackedEntry, PackedLocation, Result,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::table_scan::{self, location_of};

/// disk-objectstore's schema, verbatim (as SQLAlchemy emits it).
const SCHEMA: &str = "CREATE TABLE db_object (
\tid INTEGER NOT NULL, 
\thashkey VARCHAR NOT NULL, 
\tcompressed BOOLEAN NOT NULL, 
\tsize INTEGER NOT NULL, 
\t\"offset\" INTEGER NOT NULL, 
\tlength INTEGER NOT NULL, 
\tpack_id INTEGER NOT NULL, 
\tPRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_db_object_hashkey ON db_object (hashkey);";

/// rsdos's secondary index: per-pack scans in offset order, and, because it also carries
/// `length` and `size`, a covering index for counts and totals (a scan of it reads a quarter
/// of the bytes of the table, whose rows hold the 64-character hashkeys). An index made with
/// the first two columns only (containers created before) serves the scans just as well.
const PACK_OFFSET_INDEX: &str = "CREATE INDEX IF NOT EXISTS ix_rsdos_pack_offset \
     ON db_object (pack_id, \"offset\", length, size)";

/// Keys per `IN (...)` query. SQLite 3.32+ allows 32766 variables; this keeps statements small.
const IN_CHUNK: usize = 900;

/// Connections kept for reuse; more may exist while many threads are busy.
const POOL_MAX: usize = 8;
/// `get_many` of at least this many keys may scan the table instead of probing per key...
const SCAN_MIN_KEYS: usize = 4096;
/// ...when the keys are at least 1/SCAN_DENSITY of the rows: a scan step costs about an
/// eighth of a probe.
const SCAN_DENSITY: i64 = 8;

/// How long a write waits for another process's transaction before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The columns every lookup selects, in the order [`location_of`] reads them.
pub(crate) const COLUMNS: &str = "hashkey, compressed, size, \"offset\", length, pack_id";

/// disk-objectstore's `packs.idx`, shared by all threads of a process (see the crate docs).
#[derive(Debug)]
pub struct SqliteIndex {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
    /// See [`TotalsCache`].
    totals: Mutex<Option<TotalsCache>>,
}

/// The last [`IndexTotals`], kept with the connection that computed them. That connection
/// never writes, so its `PRAGMA data_version` changes whenever any other connection, of this
/// process or another, commits (and sometimes when nothing was committed, such as after a
/// checkpoint): then the sums are computed again; while it stays the same, the kept ones are
/// exact. Counting and summing 100,000 rows takes ~6 ms; asking the version ~2 µs (a
/// `count` followed by a `total_size`, as `verdi storage info` does, pays the sums once).
#[derive(Debug)]
struct TotalsCache {
    conn: Connection,
    kept: Option<(i64, IndexTotals)>,
}

impl SqliteIndex {
    /// Creates a new index file with disk-objectstore's schema (and rsdos's pack index).
    /// Fails if the file exists.
    pub fn create(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::AlreadyExists {
                path: path.to_path_buf(),
                detail: "the index already exists".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err(path, "create", e))?;
        let index = SqliteIndex {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            totals: Mutex::new(None),
        };
        configure(&conn, path)?;
        conn.execute_batch(&format!("BEGIN; {SCHEMA}; {PACK_OFFSET_INDEX}; COMMIT;"))
            .map_err(|e| db_err(path, "create schema", e))?;
        index.release(conn);
        Ok(index)
    }

    /// Opens an existing index; a missing file is [`Error::NotInitialised`], a file that is not
    /// an index is [`ErrorKind::Corrupt`](rsdos_core::ErrorKind::Corrupt).
    pub fn open(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::NotInitialised {
                path: path.parent().unwrap_or(path).to_path_buf(),
                detail: format!("the pack index {} does not exist", path.display()),
            });
        }
        let index = SqliteIndex {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
            totals: Mutex::new(None),
        };
        // Open one connection now so that a corrupt or foreign file is reported at open time.
        let conn = index.acquire()?;
        let has_table: Option<String> = conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type='table' AND name='db_object'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err(path, "read schema", e))?;
        if has_table.is_none() {
            return Err(Error::corrupt(
                "index",
                path.display().to_string(),
                "no db_object table: not a disk-objectstore pack index",
            ));
        }
        index.release(conn);
        Ok(index)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds rsdos's `(pack_id, offset)` index to an index created by disk-objectstore (a no-op
    /// if present). Maintenance operations call this; reads work without it.
    pub fn ensure_pack_offset_index(&self) -> Result<()> {
        self.with_conn(|c| c.execute_batch(PACK_OFFSET_INDEX), "create pack index")
    }

    /// Writes a consistent copy of the database to `dest` with SQLite's online backup, safe
    /// while other processes write.
    pub fn backup_to(&self, dest: &Path) -> Result<()> {
        self.with_conn(
            |c| {
                c.execute("VACUUM INTO ?1", params![dest.to_string_lossy()])
                    .map(|_| ())
            },
            "back up",
        )
    }

    /// Runs `sql` once per entry, with the entry bound as `?1` hashkey, `?2` compressed,
    /// `?3` size, `?4` offset, `?5` length, `?6` pack id, all in one immediate transaction;
    /// returns the number of rows changed.
    fn write_rows(&self, entries: &[PackedEntry], sql: &str, what: &str) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        self.with_conn(
            |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let changed = execute_sorted(&tx, entries, sql)?;
                tx.commit()?;
                Ok(changed)
            },
            what,
        )
    }

    fn acquire(&self) -> Result<Connection> {
        if let Some(conn) = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err(&self.path, "open", e))?;
        configure(&conn, &self.path)?;
        Ok(conn)
    }

    fn release(&self, conn: Connection) {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(conn);
        }
    }

    /// The rows of `keys`, found by one scan of the table in one transaction (so each key
    /// comes back at most once: two scans of halves on two connections were tried, but they
    /// see different commits and could return a key deleted and re-added meanwhile twice).
    fn scan_for(&self, keys: &[&str]) -> Result<Vec<PackedEntry>> {
        self.with_conn(|c| table_scan::scan_for(c, keys), "look up")
    }

    /// Runs `f` on a pooled connection; the connection goes back to the pool unless it failed.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
        what: &str,
    ) -> Result<T> {
        let mut conn = self.acquire()?;
        match f(&mut conn) {
            Ok(v) => {
                self.release(conn);
                Ok(v)
            }
            Err(e) => Err(db_err(&self.path, what, e)),
        }
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| db_err(path, "configure", e))?;
    // disk-objectstore sets WAL on every connect; it is persistent in the file header.
    let mode: String = conn
        .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
        .map_err(|e| db_err(path, "set WAL mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Index {
            path: path.to_path_buf(),
            detail: format!("cannot switch to WAL mode (journal mode is {mode})"),
            source: "journal_mode".into(),
        });
    }
    // SQLite's default page cache (2 MB) is smaller than the hashkey index of a few hundred
    // thousand objects: a large insert then spills pages to the WAL mid-transaction and reads
    // them back. 32 MB per connection is allocated only as pages are used.
    conn.execute_batch("PRAGMA cache_size = -32768")
        .map_err(|e| db_err(path, "set the page cache size", e))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(())
}

fn db_err(path: &Path, what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(f.code, ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
    {
        return Error::corrupt(
            "index",
            path.display().to_string(),
            format!("{what}: {e} (rebuild it with `rsdos rebuild-index`)"),
        );
    }
    Error::Index {
        path: path.to_path_buf(),
        detail: format!("{what} failed: {e}"),
        source: Box::new(e),
    }
}

fn row_to_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackedEntry> {
    Ok(PackedEntry {
        hashkey: r.get(0)?,
        location: location_of(r)?,
    })
}

/// `entries` in hashkey order. Rows in hashkey order walk the hashkey index's B-tree from left
/// to right, so each page is loaded once instead of once per random key (2-3x fewer page reads
/// on 100k inserts). The sort is stable: of duplicate hashkeys the first still wins
/// `INSERT OR IGNORE`.
fn by_hashkey(entries: &[PackedEntry]) -> Vec<&PackedEntry> {
    let mut order: Vec<&PackedEntry> = entries.iter().collect();
    order.sort_by(|a, b| a.hashkey.cmp(&b.hashkey));
    order
}

/// Executes `sql` for each entry, in hashkey order; returns the rows changed.
fn execute_sorted(conn: &Connection, entries: &[PackedEntry], sql: &str) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut changed = 0u64;
    for e in by_hashkey(entries) {
        changed += stmt.execute(entry_params(e)?)? as u64;
    }
    Ok(changed)
}

/// Rows per statement of [`insert_sorted`].
const ROWS_PER_INSERT: usize = 64;

/// `INSERT OR IGNORE` of `rows` rows, their parameters in [`COLUMNS`] order.
fn insert_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?, ?)"; rows].join(", ");
    format!("INSERT OR IGNORE INTO db_object ({COLUMNS}) VALUES {values}")
}

/// Inserts entries (skipping indexed hashkeys) in hashkey order, [`ROWS_PER_INSERT`] rows per
/// statement: SQLite's per-statement work (reset, dispatch, the change count) was a third of a
/// 100,000-row insert done one row per statement. Rows of one statement are inserted in order,
/// so of duplicate hashkeys the first still wins.
fn insert_sorted(conn: &Connection, entries: &[PackedEntry]) -> rusqlite::Result<u64> {
    let order = by_hashkey(entries);
    let mut chunks = order.chunks_exact(ROWS_PER_INSERT);
    let mut changed = 0u64;
    if chunks.len() > 0 {
        let mut stmt = conn.prepare_cached(&insert_sql(ROWS_PER_INSERT))?;
        for chunk in chunks.by_ref() {
            let mut n = 1;
            for e in chunk {
                let (key, compressed, size, offset, length, pack_id) = entry_params(e)?;
                stmt.raw_bind_parameter(n, key)?;
                stmt.raw_bind_parameter(n + 1, compressed)?;
                stmt.raw_bind_parameter(n + 2, size)?;
                stmt.raw_bind_parameter(n + 3, offset)?;
                stmt.raw_bind_parameter(n + 4, length)?;
                stmt.raw_bind_parameter(n + 5, pack_id)?;
                n += 6;
            }
            changed += stmt.raw_execute()? as u64;
        }
    }
    let mut stmt = conn.prepare_cached(&insert_sql(1))?;
    for e in chunks.remainder() {
        changed += stmt.execute(entry_params(e)?)? as u64;
    }
    Ok(changed)
}

/// The parameters of one row, in [`COLUMNS`] order.
fn entry_params(e: &PackedEntry) -> rusqlite::Result<(&str, bool, i64, i64, i64, i64)> {
    let l = &e.location;
    Ok((
        e.hashkey.as_str(),
        l.compressed,
        to_i64(l.size)?,
        to_i64(l.offset)?,
        to_i64(l.length)?,
        to_i64(l.pack_id)?,
    ))
}

/// The open transaction of [`SqliteIndex::begin_insert`]: a pooled connection inside
/// `BEGIN IMMEDIATE` (the database's write lock is held until commit or drop; readers in WAL
/// mode are not blocked).
struct SqliteInsert<'a> {
    index: &'a SqliteIndex,
    /// `None` once committed, or once an insert failed.
    conn: Option<Connection>,
    changed: u64,
    /// Why an earlier insert failed: the session is over, and `commit` says so.
    failed: Option<String>,
}

impl SqliteInsert<'_> {
    /// Ends the session after a failure: rolled back at once (the rows of earlier calls
    /// included), so that nothing of it can be committed or stay locked.
    fn fail(&mut self, error: Error) -> Error {
        self.failed = Some(error.to_string());
        if let Some(conn) = self.conn.take()
            && conn.execute_batch("ROLLBACK").is_ok()
        {
            self.index.release(conn);
        }
        error
    }
}

impl IndexInsert for SqliteInsert<'_> {
    fn insert(&mut self, entries: &[PackedEntry]) -> Result<()> {
        if let Some(why) = &self.failed {
            return Err(Error::InvalidArgument(format!(
                "the insert session failed earlier: {why}"
            )));
        }
        let index = self.index;
        let path = &index.path;
        let conn = self
            .conn
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("BUG: insert after commit".into()))?;
        // SQLite rolls a transaction back by itself on some errors (a full disk, I/O, out of
        // memory); rows inserted after that would be committed at once, one by one.
        if conn.is_autocommit() {
            let e = Error::Index {
                path: path.clone(),
                detail: "the insert transaction was rolled back by SQLite".into(),
                source: "autocommit".into(),
            };
            return Err(self.fail(e));
        }
        match insert_sorted(conn, entries) {
            Ok(changed) => {
                self.changed += changed;
                Ok(())
            }
            Err(e) => {
                let e = db_err(path, "insert", e);
                Err(self.fail(e))
            }
        }
    }

    fn commit(mut self: Box<Self>) -> Result<u64> {
        if let Some(why) = &self.failed {
            return Err(Error::InvalidArgument(format!(
                "the insert session failed earlier and was rolled back: {why}"
            )));
        }
        let conn = self
            .conn
            .take()
            .ok_or_else(|| Error::InvalidArgument("BUG: committed twice".into()))?;
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.index.release(conn);
                Ok(self.changed)
            }
            Err(e) => {
                // A failed COMMIT may leave the transaction open: roll back before the
                // connection goes, so that the write lock is not held a moment longer.
                let _ = conn.execute_batch("ROLLBACK");
                Err(db_err(&self.index.path, "commit insert", e))
            }
        }
    }
}

impl Drop for SqliteInsert<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && conn.execute_batch("ROLLBACK").is_ok()
        {
            self.index.release(conn);
        }
    }
}

fn to_i64(v: u64) -> rusqlite::Result<i64> {
    i64::try_from(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl ObjectIndex for SqliteIndex {
    fn get(&self, hashkey: &str) -> Result<Option<PackedLocation>> {
        self.with_conn(
            |c| {
                c.prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM db_object WHERE hashkey = ?1"
                ))?
                .query_row([hashkey], row_to_entry)
                .optional()
                .map(|o| o.map(|e| e.location))
            },
            "look up",
        )
    }

    fn get_many(&self, hashkeys: &[&str]) -> Result<Vec<PackedEntry>> {
        if hashkeys.len() >= SCAN_MIN_KEYS {
            let max_rowid: Option<i64> = self.with_conn(
                |c| {
                    c.prepare_cached("SELECT MAX(rowid) FROM db_object")?
                        .query_row([], |r| r.get(0))
                },
                "look up",
            )?;
            // An empty table answers nothing: packing into a new container asks for every
            // loose key, and building the set of keys for a scan of no rows cost more than
            // listing them.
            let Some(max_rowid) = max_rowid else {
                return Ok(Vec::new());
            };
            if (hashkeys.len() as i64).saturating_mul(SCAN_DENSITY) >= max_rowid {
                return self.scan_for(hashkeys);
            }
        }
        self.with_conn(
            |c| {
                // Sorted keys probe the hashkey B-tree from left to right.
                let mut keys: Vec<&str> = hashkeys.to_vec();
                keys.sort_unstable();
                keys.dedup();
                let mut out = Vec::new();
                for chunk in keys.chunks(IN_CHUNK) {
                    let placeholders = vec!["?"; chunk.len()].join(",");
                    let sql = format!(
                        "SELECT {COLUMNS} FROM db_object WHERE hashkey IN ({placeholders})"
                    );
                    let mut stmt = c.prepare_cached(&sql)?;
                    let rows =
                        stmt.query_map(rusqlite::params_from_iter(chunk.iter()), row_to_entry)?;
                    for row in rows {
                        out.push(row?);
                    }
                }
                Ok(out)
            },
            "look up",
        )
    }

    fn insert(&self, entries: &[PackedEntry]) -> Result<u64> {
        if entries.is_empty() {
            return Ok(0);
        }
        // A session of one call: the one transaction mechanism for every insert.
        let mut session = self.begin_insert()?;
        session.insert(entries)?;
        session.commit()
    }

    fn begin_insert(&self) -> Result<Box<dyn IndexInsert + '_>> {
        let conn = self.acquire()?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| db_err(&self.path, "begin insert", e))?;
        Ok(Box::new(SqliteInsert {
            index: self,
            conn: Some(conn),
            changed: 0,
            failed: None,
        }))
    }

    fn update(&self, entries: &[PackedEntry]) -> Result<u64> {
        self.write_rows(
            entries,
            "UPDATE db_object SET compressed = ?2, size = ?3, \"offset\" = ?4, length = ?5, pack_id = ?6 WHERE hashkey = ?1",
            "update",
        )
    }

    fn delete(&self, hashkeys: &[&str]) -> Result<Vec<String>> {
        if hashkeys.is_empty() {
            return Ok(Vec::new());
        }
        self.with_conn(
            |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut deleted = Vec::new();
                {
                    let mut stmt = tx.prepare_cached("DELETE FROM db_object WHERE hashkey = ?1")?;
                    for k in hashkeys {
                        if stmt.execute([k])? > 0 {
                            deleted.push((*k).to_string());
                        }
                    }
                }
                tx.commit()?;
                Ok(deleted)
            },
            "delete",
        )
    }

    fn totals(&self) -> Result<IndexTotals> {
        let mut guard = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let cache = match guard.as_mut() {
            Some(cache) => cache,
            // A pooled connection (configured, its schema read) leaves the pool for good.
            None => guard.insert(TotalsCache {
                conn: self.acquire()?,
                kept: None,
            }),
        };
        let computed = (|| -> rusqlite::Result<IndexTotals> {
            let version: i64 = cache
                .conn
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |r| r.get(0))?;
            if let Some((kept_version, totals)) = cache.kept
                && kept_version == version
            {
                return Ok(totals);
            }
            cache.kept = None;
            let totals = cache.conn.prepare_cached(
                "SELECT count(*), COALESCE(SUM(size), 0), COALESCE(SUM(length), 0) FROM db_object",
            )?
            .query_row([], |r| {
                Ok(IndexTotals {
                    count: r.get::<_, i64>(0)? as u64,
                    size: r.get::<_, i64>(1)? as u64,
                    length: r.get::<_, i64>(2)? as u64,
                })
            })?;
            cache.kept = Some((version, totals));
            Ok(totals)
        })();
        computed.map_err(|e| {
            // A connection that failed is not kept: the next call opens a new one.
            *guard = None;
            db_err(&self.path, "count", e)
        })
    }

    fn pack_ids(&self) -> Result<Vec<u64>> {
        self.with_conn(
            |c| {
                let mut stmt =
                    c.prepare_cached("SELECT DISTINCT pack_id FROM db_object ORDER BY pack_id")?;
                let ids = stmt.query_map([], |r| r.get::<_, i64>(0))?;
                ids.map(|r| r.map(|v| v as u64)).collect()
            },
            "list pack ids",
        )
    }

    fn pack_entries_page(
        &self,
        pack_id: u64,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<PackedEntry>> {
        self.with_conn(
            |c| {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let rows: rusqlite::Result<Vec<PackedEntry>> = match after {
                    None => c
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM db_object WHERE pack_id = ?1 ORDER BY \"offset\", hashkey LIMIT ?2"
                        ))?
                        .query_map(params![to_i64(pack_id)?, limit], row_to_entry)?
                        .collect(),
                    Some((offset, key)) => c
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM db_object WHERE pack_id = ?1 AND (\"offset\" > ?2 OR (\"offset\" = ?2 AND hashkey > ?3)) ORDER BY \"offset\", hashkey LIMIT ?4"
                        ))?
                        .query_map(params![to_i64(pack_id)?, to_i64(offset)?, key, limit], row_to_entry)?
                        .collect(),
                };
                rows
            },
            "list pack",
        )
    }

    fn hashkeys_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        self.with_conn(
            |c| {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let mut stmt = c.prepare_cached(
                    "SELECT hashkey FROM db_object WHERE hashkey > ?1 ORDER BY hashkey LIMIT ?2",
                )?;
                let keys = stmt.query_map(params![after.unwrap_or(""), limit], |r| r.get(0))?;
                keys.collect()
            },
            "list hashkeys",
        )
    }

    fn size_on_disk(&self) -> Result<u64> {
        std::fs::metadata(&self.path)
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    fn vacuum(&self) -> Result<()> {
        self.with_conn(|c| c.execute_batch("VACUUM"), "vacuum")
    }
}
