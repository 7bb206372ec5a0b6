//! The exclusive appender of one local pack and its lock file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rsdos_core::{Error, PackAppender, PackId, Result, durable};

/// `packs/<id>.lock`, created as disk-objectstore does (so its packer stays away) and held with
/// an advisory lock (so that a lock left by a killed rsdos process is recognised as stale).
#[derive(Debug)]
struct PackLock {
    file: File,
    path: PathBuf,
}

impl PackLock {
    fn acquire(dir: &Path, pack_id: PackId) -> Result<PackLock> {
        let path = dir.join(format!("{pack_id}.lock"));
        for _ in 0..16 {
            let (file, created) = match OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => (f, true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    match OpenOptions::new().read(true).write(true).open(&path) {
                        Ok(f) => (f, false),
                        // Removed between our two opens: try again.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(Error::io("open lock", &path, e)),
                    }
                }
                Err(e) => return Err(Error::io("create lock", &path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::Locked {
                        what: path.display().to_string(),
                        holder: read_pid(&file),
                        hint: format!("another process is appending to pack {pack_id}"),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
            // The holder may have removed the file between our open and our lock: then we
            // locked an orphan inode and must start over.
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            if !created && read_pid(&file).is_none() {
                // An existing lock file without an rsdos owner: disk-objectstore's packer
                // creates it empty and holds no advisory lock, so we cannot tell a live one
                // from a stale one. Refuse rather than risk two appenders.
                return Err(Error::Locked {
                    what: path.display().to_string(),
                    holder: None,
                    hint: "the lock file was not made by rsdos: a disk-objectstore process may be \
                           packing; if none is running, delete this file"
                        .into(),
                });
            }
            let mut file = file;
            file.set_len(0)
                .map_err(|e| Error::io("write lock", &path, e))?;
            file.write_all(format!("rsdos {}\n", std::process::id()).as_bytes())
                .map_err(|e| Error::io("write lock", &path, e))?;
            return Ok(PackLock { file, path });
        }
        Err(Error::Locked {
            what: path.display().to_string(),
            holder: None,
            hint: "the lock file keeps changing; another packer is busy".into(),
        })
    }
}

fn read_pid(mut file: &File) -> Option<u32> {
    let mut s = String::new();
    file.read_to_string(&mut s).ok()?;
    s.trim().strip_prefix("rsdos ")?.parse().ok()
}

impl Drop for PackLock {
    fn drop(&mut self) {
        // Unlink while still holding the advisory lock; `acquire` re-checks the inode.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Appends to one pack; see [`PackAppender`].
#[derive(Debug)]
pub(crate) struct LocalAppender {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    pack_id: PackId,
    position: u64,
    floor: u64,
    created: bool,
    _lock: PackLock,
}

impl LocalAppender {
    pub(crate) fn open(dir: &Path, pack_id: PackId) -> Result<LocalAppender> {
        let lock = PackLock::acquire(dir, pack_id)?;
        let path = dir.join(pack_id.to_string());
        let created = !path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io("open pack for appending", &path, e))?;
        let position = file
            .metadata()
            .map_err(|e| Error::io("stat pack", &path, e))?
            .len();
        Ok(LocalAppender {
            file,
            path,
            dir: dir.to_path_buf(),
            pack_id,
            position,
            floor: position,
            created,
            _lock: lock,
        })
    }
}

impl Write for LocalAppender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.position += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.file.write_all(buf)?;
        self.position += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl PackAppender for LocalAppender {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }

    fn position(&self) -> u64 {
        self.position
    }

    fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync pack", &self.path, e))?;
        if self.created {
            durable::fsync_dir(&self.dir)?;
            self.created = false;
        }
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        if len < self.floor || len > self.position {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate pack {} to {len} bytes: only {}..={} was written by this appender",
                self.pack_id, self.floor, self.position
            )));
        }
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate pack", &self.path, e))?;
        self.position = len;
        Ok(())
    }
}
