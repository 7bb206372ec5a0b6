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
