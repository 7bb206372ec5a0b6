//! Maintenance operations: they keep a store healthy for years. Each one is an `impl
//! Container` block in its own file, takes the maintenance lock, reports progress through
//! [`Progress`](crate::Progress), and follows the crash rules of `docs/design.md` (add before
//! remove; fsync before commit; delete last).

pub(crate) mod backup;
pub(crate) mod clean;
pub(crate) mod import;
pub(crate) mod migrate;
pub(crate) mod pack;
mod rebuild;
pub(crate) mod remote_clone;
pub(crate) mod remote_sync;
pub(crate) mod repack;
pub(crate) mod validate;

/// Loose hashkeys that `pack` and `clean` look up in the index per call. Large, so that the
/// index answers a container whose loose objects are most of its rows with one table scan
/// (`ObjectIndex::get_many` of SQLite scans when the keys are an eighth of the rows or more):
/// in chunks of 10,000, cleaning 100,000 packed loose copies made 100,000 point lookups.
/// The answers of a chunk (about 150 bytes each) are what this bounds.
pub(crate) const LOOKUP_CHUNK: usize = 100_000;
