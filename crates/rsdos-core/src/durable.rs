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
    write_atomic_mode(path, data, None)
}

/// As [`write_atomic`], creating the file with the Unix permission bits `mode` (such as
/// `0o600` for a file holding secrets: it is never readable by others, not even before it is
/// renamed into place).
pub fn write_atomic_private(path: &Path, data: &[u8]) -> Result<()> {
    write_atomic_mode(path, data, Some(0o600))
}

fn write_atomic_mode(path: &Path, data: &[u8], mode: Option<u32>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut f = options
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

/// A handle for [`sync_filesystem`] on the file system that holds `path`, or `None` where
/// `syncfs(2)` cannot be trusted to report a failed write-back: other platforms, and Linux
/// before 5.8, whose `syncfs` returns success even when writing out failed. The caller must
/// then fsync what it wrote file by file.
///
/// Open it before the files it is to make durable are written: since Linux 5.8, `syncfs`
/// reports the write-back errors of the file system that happened after the handle was
/// opened, so a handle opened late could miss the failure of a file written before.
pub fn sync_filesystem_handle(path: &Path) -> Result<Option<File>> {
    #[cfg(target_os = "linux")]
    {
        if !syncfs_reports_errors() {
            return Ok(None);
        }
        let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
        Ok(Some(f))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Flushes the data and metadata of every file on the file system of `handle` (from
/// [`sync_filesystem_handle`]) with one call, `syncfs(2)`, and reports a write-back error of
/// any of them since the handle was opened (or since the last call on it).
///
/// One call replaces thousands of fsyncs for a batch of small files: the file system writes
/// them out in one go (a journaling file system commits once). It also flushes other writers'
/// dirty data on the same file system, which is why only batched writes use it.
pub fn sync_filesystem(handle: &File, path: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(handle)
            .map_err(|e| Error::io("syncfs (flush the file system of)", path, e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (handle, path);
        Err(Error::Unsupported(
            "syncfs is only used on Linux (sync_filesystem_handle returns None elsewhere)".into(),
        ))
    }
}

/// True on Linux 5.8 and later, where `syncfs` returns write-back errors (checked once).
#[cfg(target_os = "linux")]
fn syncfs_reports_errors() -> bool {
    static CHECKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHECKED.get_or_init(|| {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy();
        kernel_at_least(&release, 5, 8)
    })
}

/// Whether a kernel release string (`"6.1.0-18-amd64"`) is at least `major.minor`; an
/// unparsable one is not.
#[cfg(any(target_os = "linux", test))]
fn kernel_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::kernel_at_least;

    #[test]
    fn kernel_release_comparison() {
        assert!(kernel_at_least("5.8.0", 5, 8));
        assert!(kernel_at_least("6.1.0-18-amd64", 5, 8));
        assert!(kernel_at_least("5.10.102.1-microsoft-standard-WSL2", 5, 8));
        assert!(!kernel_at_least("4.18.0-513.el8.x86_64", 5, 8));
        assert!(!kernel_at_least("5.4.0-150-generic", 5, 8));
        assert!(!kernel_at_least("", 5, 8));
        assert!(!kernel_at_least("garbage", 5, 8));
    }
}
