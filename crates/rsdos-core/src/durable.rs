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
