//! The one place where durable file-system writes are spelled out.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Makes the entries of a directory durable (new, renamed or removed names).
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open folder", dir, e))?;
    f.sync_all().map_err(|e| Error::io("fsync folder", dir, e))
}

/// Writes `data` to `path` atomically and durably: a temporary file next to it, written,
/// fsynced, renamed over `path`, then the folder fsynced. Readers see the old or the new
/// content, never a mix; after a crash one of the two is there.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(data).map_err(|e| Error::io("write", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename into place", path, e))?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Flushes the data and metadata of every file on the file system that holds `path` with one
/// call (Linux `syncfs(2)`) and returns true; returns false where the platform has no such call,
/// and the caller must then fsync what it wrote file by file.
///
/// One call replaces thousands of fsyncs for a batch of small files: the file system writes
/// them out in one go (a journaling file system commits once). It also flushes other writers' dirty data
/// on the same file system, which is why only batched writes use it. Since Linux 5.8 it reports
/// write-back errors of any file of the file system since the handle was opened, so a fresh
/// handle is opened for each call.
pub fn sync_filesystem(path: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        rustix::fs::syncfs(&f)
            .map_err(|e| Error::io("syncfs (flush the file system of)", path, e.into()))?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(false)
    }
}
