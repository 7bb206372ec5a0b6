//! The capability of a remote pack store that the container uses for recovery from the
//! remote alone: small metadata files next to the packs, and the list of packs still staged.

use std::fmt::Debug;
use std::path::Path;

use crate::{PackId, Result};

/// What a container needs from a pack store whose sealed packs live in remote storage, besides
/// [`PackStore`](crate::PackStore) itself: a place for metadata files next to the packs (the
/// container's `config.json` and snapshots of its index), and the packs that are still in the
/// local staging folder.
///
/// Kept apart from `PackStore` so that the container depends on no concrete remote store: a
/// remote container holds its pack store as `Arc<dyn PackStore>` and, separately, this
/// capability as `Arc<dyn RemoteMirror>` (usually the same object).
///
/// Contract:
///
/// - Metadata names are relative `/`-separated keys (`config.json`, `index/packs.idx`); they
///   never collide with pack names (decimal ids) or sidecars (`<id>.toc`), and listing packs
///   never returns them.
/// - [`put_meta`](RemoteMirror::put_meta) and [`put_meta_file`](RemoteMirror::put_meta_file)
///   replace the whole object; a reader sees the old or the new content of one object (as S3,
///   GCS and Azure guarantee), possibly a partial one on services without atomic writes
///   (`fs`): callers that need more check what they read (the index snapshot carries its size
///   and SHA-256).
/// - [`get_meta`](RemoteMirror::get_meta) / [`get_meta_to_file`](RemoteMirror::get_meta_to_file)
///   return `None` / `false` for an absent name, an error for anything else that fails.
/// - Errors name the remote object (service, bucket, prefix, key), never credentials.
pub trait RemoteMirror: Send + Sync + Debug {
    /// Where the packs are, as `scheme://bucket/prefix`: no query, no credentials.
    fn url(&self) -> String;

    /// The local folder holding the packs being written or waiting for upload.
    fn staging_dir(&self) -> &Path;

    /// Ids of the packs in the staging folder (being written, or sealed but not uploaded
    /// because an upload failed), ascending.
    fn staged(&self) -> Result<Vec<PackId>>;

    /// Ids of the packs in the remote storage, ascending.
    fn uploaded(&self) -> Result<Vec<PackId>>;

    /// Stores `data` under `name`, replacing what was there.
    fn put_meta(&self, name: &str, data: &[u8]) -> Result<()>;

    /// Stores the content of the local file `path` under `name`, streamed.
    fn put_meta_file(&self, name: &str, path: &Path) -> Result<()>;

    /// The content stored under `name`, `None` if absent.
    fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>>;

    /// Writes the content stored under `name` into the local file `dest` (created or
    /// truncated), streamed; `false` if absent (then `dest` is not created).
    fn get_meta_to_file(&self, name: &str, dest: &Path) -> Result<bool>;

    /// Removes `name` (absent is fine).
    fn delete_meta(&self, name: &str) -> Result<()>;
}
