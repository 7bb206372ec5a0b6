//! The container's maintenance lock.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rsdos_core::{Error, Result};

/// An advisory lock (`flock`) on `rsdos.lock` in the container folder, held by every operation
/// that appends to, rewrites or deletes from packs, so that one maintainer runs at a time.
///
/// The file holds the holder's pid, so that a second maintainer can name it. Because the lock
/// is a kernel advisory lock, a holder that dies (even by SIGKILL) releases it: nothing stale
/// is ever left behind. The file itself is never removed (removing a lock file races with
/// processes that have it open).
#[derive(Debug)]
pub struct MaintenanceLock {
    file: File,
    path: PathBuf,
}

impl MaintenanceLock {
    /// Takes the lock, waiting up to `timeout` (`None`: fail at once) for the current holder.
    pub fn acquire(path: &Path, timeout: Option<Duration>) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open maintenance lock", path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if timeout.is_none_or(|t| start.elapsed() >= t) {
                        return Err(Error::Locked {
                            what: format!("container maintenance lock {}", path.display()),
                            holder: read_holder(&mut file),
                            hint: match timeout {
                                Some(t) => format!(
                                    "another maintenance operation (pack, repack, clean, delete, \
                                     direct-to-pack write) is still running after {:.1} s; retry \
                                     when it has finished",
                                    t.as_secs_f64()
                                ),
                                None => "another maintenance operation (pack, repack, clean, delete, \
                                         direct-to-pack write) is running; retry when it has finished"
                                    .into(),
                            },
                        });
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io("lock", path, e));
                }
            }
        }
        let write_pid = |file: &mut File| -> std::io::Result<()> {
            file.set_len(0)?;
            file.rewind()?;
            file.write_all(format!("{}\n", std::process::id()).as_bytes())
        };
        write_pid(&mut file).map_err(|e| Error::io("write maintenance lock", path, e))?;
        Ok(MaintenanceLock {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn read_holder(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

impl Drop for MaintenanceLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
