//! One pass over the whole `db_object` table for the rows of many requested hashkeys, on two
//! threads.
//!
//! For a request that covers a good part of the table, a sequential scan with a set lookup per
//! row costs a fraction of one B-tree probe per key (100k keys of 100k rows: ~3x faster). The
//! scan has two parts of similar cost: SQLite stepping through the rows and decoding them, and
//! the set of requested keys, whose build and probes miss the CPU cache about once per key (a
//! set of 100,000 keys is larger than a core's cache). A scoped helper thread steps the
//! statement and hands the rows over in chunks while the calling thread builds the set and
//! probes them, so the pass takes about the longer part instead of the sum of both. Both
//! threads read one statement on one connection: one snapshot, so each key comes back at
//! most once (two scans of halves on two connections were tried before: they see different
//! commits, and could return a key deleted and added again meanwhile twice).

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use rsdos_core::{PackedEntry, PackedLocation};
use rusqlite::Connection;
use rusqlite::types::{Type, ValueRef};

use crate::index::COLUMNS;
use crate::key_set::KeySet;

/// Rows per chunk handed from the scanning thread to the probing one: large enough that the
/// hand-over is rare, small enough that the probing starts early.
const CHUNK_ROWS: usize = 4096;
/// Chunks queued between the threads at most, so memory stays at a few chunks (~0.5 MiB
/// each) whatever the size of the table.
const CHUNKS_QUEUED: usize = 4;

/// The rows of a scan not yet probed: every row's `hashkey` text, one after the other, and its
/// location (or the error that decoding its columns gave, raised only if the row is wanted,
/// as a scan on one thread does).
struct Chunk {
    keys: Vec<u8>,
    rows: Vec<(usize, rusqlite::Result<PackedLocation>)>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            keys: Vec::with_capacity(CHUNK_ROWS * 64),
            rows: Vec::with_capacity(CHUNK_ROWS),
        }
    }
}

/// The entries of the rows of `keys` (each distinct key at most once), found by one pass over
/// the table of `conn`, on two threads (on one if no thread can be started).
pub(crate) fn scan_for(conn: &mut Connection, keys: &[&str]) -> rusqlite::Result<Vec<PackedEntry>> {
    let sql = format!("SELECT {COLUMNS} FROM db_object");
    let on_two = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<rusqlite::Result<Chunk>>(CHUNKS_QUEUED);
        let reader_conn = &mut *conn;
        let sql = sql.as_str();
        let spawned = std::thread::Builder::new()
            .name("rsdos-index-scan".into())
            .spawn_scoped(scope, move || read_rows(reader_conn, sql, &tx));
        match spawned {
            // The set is built while the first rows are read.
            Ok(_) => Some(receive(&KeySet::new(keys), rx)),
            Err(_) => None,
        }
    });
    match on_two {
        Some(found) => found,
        None => scan_on_this_thread(conn, &sql, &KeySet::new(keys)),
    }
}

/// Steps `sql` through the table and sends its rows to `tx` in chunks; an error ends the
/// scan and is sent last. Stops early once the receiver is gone (it failed).
fn read_rows(conn: &Connection, sql: &str, tx: &SyncSender<rusqlite::Result<Chunk>>) {
    let scanned = (|| {
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        let mut chunk = Chunk::new();
        while let Some(row) = rows.next()? {
            // A hashkey that is not text matches no requested key.
            let ValueRef::Text(key) = row.get_ref(0)? else {
                continue;
            };
            chunk.keys.extend_from_slice(key);
            chunk.rows.push((chunk.keys.len(), location_of(row)));
            if chunk.rows.len() == CHUNK_ROWS
                && tx
                    .send(Ok(std::mem::replace(&mut chunk, Chunk::new())))
                    .is_err()
            {
                return Ok(());
            }
        }
        if !chunk.rows.is_empty() {
            let _ = tx.send(Ok(chunk));
        }
        Ok(())
    })();
    if let Err(e) = scanned {
        let _ = tx.send(Err(e));
    }
}

/// The wanted rows of the chunks received until the scanning thread ends.
fn receive(
    wanted: &KeySet<'_>,
    rx: Receiver<rusqlite::Result<Chunk>>,
) -> rusqlite::Result<Vec<PackedEntry>> {
    // At most one entry per requested key: sized once, rather than grown by copying (a
    // dense request of 100,000 keys copied 17 MB while doubling).
    let mut out = Vec::with_capacity(wanted.len());
    for chunk in rx {
        let chunk = chunk?;
        let mut start = 0;
        for (end, location) in chunk.rows {
            let key = &chunk.keys[start..end];
            start = end;
            if wanted.contains(key) {
                out.push(PackedEntry {
                    hashkey: key_text(key)?,
                    location: location?,
                });
            }
        }
    }
    Ok(out)
}

/// [`scan_for`] on the calling thread alone.
fn scan_on_this_thread(
    conn: &Connection,
    sql: &str,
    wanted: &KeySet<'_>,
) -> rusqlite::Result<Vec<PackedEntry>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        if let ValueRef::Text(key) = row.get_ref(0)?
            && wanted.contains(key)
        {
            out.push(PackedEntry {
                hashkey: key_text(key)?,
                location: location_of(row)?,
            });
        }
    }
    Ok(out)
}

/// The `hashkey` of a row as a string (a wanted key is always valid UTF-8; the error is what
/// SQLite's own conversion would give).
fn key_text(key: &[u8]) -> rusqlite::Result<String> {
    String::from_utf8(key.to_vec())
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

/// The location columns of a row selected as [`COLUMNS`].
pub(crate) fn location_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackedLocation> {
    Ok(PackedLocation {
        compressed: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        offset: r.get::<_, i64>(3)? as u64,
        length: r.get::<_, i64>(4)? as u64,
        pack_id: r.get::<_, i64>(5)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn key(n: usize) -> String {
        format!("{n:064x}")
    }

    /// A table of `rows` well-formed rows (key `n` at offset `10 n`), plus a row whose hashkey
    /// is not text and a row of key `rows + 1` whose size is not a number; the schema allows
    /// what disk-objectstore's forbids, as a damaged file can hold anything.
    fn table(rows: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE db_object (id INTEGER PRIMARY KEY, hashkey, compressed, size, \
             \"offset\", length, pack_id)",
        )
        .expect("create");
        let mut insert = conn
            .prepare(&format!(
                "INSERT INTO db_object ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
            ))
            .expect("prepare");
        for n in 0..rows {
            let n64 = n as i64;
            insert
                .execute(rusqlite::params![
                    key(n),
                    n.is_multiple_of(2),
                    n64,
                    n64 * 10,
                    n64,
                    n64 / 1000
                ])
                .expect("insert");
        }
        conn.execute(
            &format!("INSERT INTO db_object ({COLUMNS}) VALUES (42, 0, 1, 0, 1, 0)"),
            [],
        )
        .expect("insert a number as hashkey");
        conn.execute(
            &format!("INSERT INTO db_object ({COLUMNS}) VALUES (?1, 0, 'x', 0, 1, 0)"),
            [key(rows + 1)],
        )
        .expect("insert a row that cannot be decoded");
        drop(insert);
        conn
    }

    fn entry(n: usize) -> PackedEntry {
        PackedEntry {
            hashkey: key(n),
            location: PackedLocation {
                compressed: n.is_multiple_of(2),
                size: n as u64,
                offset: n as u64 * 10,
                length: n as u64,
                pack_id: n as u64 / 1000,
            },
        }
    }

    #[test]
    fn both_threads_and_one_find_exactly_the_wanted_rows() {
        // Several chunks, the last one partial.
        let rows = CHUNK_ROWS * 3 + 17;
        let mut conn = table(rows);
        // Every third key, twice, keys not in the table, and the text of the number key.
        let asked: Vec<String> = (0..rows)
            .step_by(3)
            .chain((0..rows).step_by(3))
            .map(key)
            .chain([key(rows + 5), "42".to_string()])
            .collect();
        let refs: Vec<&str> = asked.iter().map(String::as_str).collect();
        let want: HashSet<PackedEntry> = (0..rows).step_by(3).map(entry).collect();

        let two = scan_for(&mut conn, &refs).expect("two threads");
        assert_eq!(two.len(), want.len(), "each key once");
        assert_eq!(two.into_iter().collect::<HashSet<_>>(), want);
        let sql = format!("SELECT {COLUMNS} FROM db_object");
        let one = scan_on_this_thread(&conn, &sql, &KeySet::new(&refs)).expect("one thread");
        assert_eq!(one.len(), want.len(), "each key once");
        assert_eq!(one.into_iter().collect::<HashSet<_>>(), want);
    }

    #[test]
    fn a_wanted_row_that_cannot_be_decoded_is_an_error() {
        let rows = CHUNK_ROWS + 5;
        let mut conn = table(rows);
        let asked = [key(1), key(rows + 1)];
        let refs: Vec<&str> = asked.iter().map(String::as_str).collect();
        let err = scan_for(&mut conn, &refs).expect_err("two threads");
        assert!(
            matches!(err, rusqlite::Error::InvalidColumnType(2, ..)),
            "{err:?}"
        );
        let sql = format!("SELECT {COLUMNS} FROM db_object");
        let err = scan_on_this_thread(&conn, &sql, &KeySet::new(&refs)).expect_err("one thread");
        assert!(
            matches!(err, rusqlite::Error::InvalidColumnType(2, ..)),
            "{err:?}"
        );
        // The connection is still usable: the scanning thread ended.
        let count: i64 = conn
            .query_row("SELECT count(*) FROM db_object", [], |r| r.get(0))
            .expect("count");
        assert_eq!(count as usize, rows + 2);
    }
}
