//! [`SqliteIndex`]: the default [`ObjectIndex`](rsdos_core::ObjectIndex), disk-objectstore's `packs.idx`.
//!
//! The schema is exactly disk-objectstore's (one table `db_object`, a unique index on
//! `hashkey`), in WAL mode, so either implementation can read and write the other's index.
//! rsdos adds one secondary index, `ix_rsdos_pack_offset ON db_object(pack_id, offset, length,
//! size)`, which disk-objectstore ignores and which makes per-pack scans (validate, repack, bulk
//! reads) linear instead of a full table scan per page, and counts and totals a scan of a
//! small covering index. It is created by [`SqliteIndex::create`] and
//! by [`SqliteIndex::ensure_pack_offset_index`]; every query also works without it.
//!
//! Every call takes a connection from a small pool, runs in autocommit mode or in one explicit
//! transaction, and returns the connection: no read snapshot outlives a call, so every call
//! sees what other processes committed before it.
//!
//! ```
//! use rsdos_core::{ObjectIndex, PackedEntry, PackedLocation};
//! use rsdos_index_sqlite::SqliteIndex;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let index = SqliteIndex::create(&dir.path().join("packs.idx")).unwrap();
//! let loc = PackedLocation { pack_id: 0, offset: 0, length: 5, size: 5, compressed: false };
//! index.insert(&[PackedEntry { hashkey: "ab".repeat(32), location: loc }]).unwrap();
//! assert_eq!(index.get(&"ab".repeat(32)).unwrap(), Some(loc));
//! assert_eq!(index.totals().unwrap().count, 1);
//! ```

mod index;
mod key_set;
mod table_scan;

pub use index::SqliteIndex;
