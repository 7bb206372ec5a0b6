//! The exclusive appender of one local pack and its lock file.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rsdos_core::{EarlyWriteback, Error, PackAppender, PackId, Result, durable};

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
            // A new lock file appears complete or not at all: it is made under a temporary
            // name, locked and given our pid, then hard-linked to its name. A process killed
            // half-way leaves only a hidden temporary file, never an empty lock.
            if let Some(lock) = Self::create_complete(dir, &path)? {
                return Ok(lock);
            }
            let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                // Removed between our link attempt and this open: try again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("open lock", &path, e)),
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
            if !same_inode(&file, &path) {
                continue;
            }
            if read_pid(&file).is_none() {
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
            // A lock left by a dead rsdos process (we hold its advisory lock now): take over.
            write_pid(&mut file).map_err(|e| Error::io("write lock", &path, e))?;
            return Ok(PackLock { file, path });
        }
        Err(Error::Locked {
            what: path.display().to_string(),
            holder: None,
            hint: "the lock file keeps changing; another packer is busy".into(),
        })
    }

    /// Creates the lock file complete under `path`; `None` if a lock file is already there.
    fn create_complete(dir: &Path, path: &Path) -> Result<Option<PackLock>> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".lock.{}.{}.{}.tmp",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create lock", &tmp, e))?;
        let prepared = file
            .try_lock()
            .map_err(|e| match e {
                std::fs::TryLockError::Error(e) => e,
                std::fs::TryLockError::WouldBlock => {
                    std::io::Error::other("fresh lock file is locked")
                }
            })
            .and_then(|()| write_pid(&mut file))
            .map_err(|e| Error::io("write lock", &tmp, e));
        let linked = prepared.and_then(|()| match std::fs::hard_link(&tmp, path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("create lock", path, e)),
        });
        let _ = std::fs::remove_file(&tmp);
        if linked? {
            Ok(Some(PackLock {
                file,
                path: path.to_path_buf(),
            }))
        } else {
            Ok(None)
        }
    }
}

fn same_inode(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Replaces the content with `rsdos <pid>`: written over the start first, then cut to length,
/// so that a process killed in between leaves a file whose first line still names an rsdos
/// process (never an empty file, which would look like disk-objectstore's lock).
fn write_pid(file: &mut File) -> std::io::Result<()> {
    let line = format!("rsdos {}\n", std::process::id());
    file.seek(SeekFrom::Start(0))?;
    file.write_all(line.as_bytes())?;
    file.set_len(line.len() as u64)
}

fn read_pid(mut file: &File) -> Option<u32> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.lines()
        .next()?
        .trim()
        .strip_prefix("rsdos ")?
        .parse()
        .ok()
}

impl Drop for PackLock {
    fn drop(&mut self) {
        // Unlink while still holding the advisory lock; `acquire` re-checks the inode.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Writes smaller than this are gathered before they reach the file: packing 100k objects
/// of a few hundred bytes otherwise costs one `write` system call each (~10 % of the time).
const WRITE_BUFFER: usize = 256 * 1024;

/// Appends to one pack; see [`PackAppender`].
///
/// Small writes are buffered (see [`WRITE_BUFFER`]); [`sync`](PackAppender::sync) writes the
/// buffer out before it fsyncs, so every byte an index row can point to (rows are committed
/// after a sync) is in the file. Bytes still buffered when the appender is dropped without a
/// sync are written out on a best-effort basis; nothing refers to them.
#[derive(Debug)]
pub(crate) struct LocalAppender {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    pack_id: PackId,
    /// Bytes in the file (the length the file had plus what reached it).
    written: u64,
    /// Bytes accepted but not yet written to the file; they follow `written`.
    buffer: Vec<u8>,
    floor: u64,
    created: bool,
    /// Large appends go to disk while the writer goes on, so that `sync` has little left; only
    /// once the writer said it syncs ([`PackAppender::write_back_early`]).
    writeback: Option<EarlyWriteback>,
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
            written: position,
            buffer: Vec::new(),
            floor: position,
            created,
            writeback: None,
            _lock: lock,
        })
    }

    /// Writes `data` at the end of the file, counting exactly what reached it, also when a
    /// write fails half-way (so `position` and `truncate` stay right after an error).
    fn write_through(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        while !data.is_empty() {
            match self.file.write(data) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n as u64;
                    if let Some(w) = self.writeback.as_mut() {
                        w.wrote(&self.file, n as u64);
                    }
                    data = &data[n..];
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes the buffer to the file; what could not be written stays buffered.
    fn drain_buffer(&mut self) -> std::io::Result<()> {
        let mut done = 0;
        let result = loop {
            if done == self.buffer.len() {
                break Ok(());
            }
            match self.file.write(&self.buffer[done..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    self.written += n as u64;
                    if let Some(w) = self.writeback.as_mut() {
                        w.wrote(&self.file, n as u64);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buffer.drain(..done);
        result
    }
}

impl Drop for LocalAppender {
    fn drop(&mut self) {
        // Unsynced bytes are never referenced by the index; writing them out keeps the file
        // as long as `position` said, which a later appender of this pack would see anyway.
        let _ = self.drain_buffer();
    }
}

impl Write for LocalAppender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.buffer.len() + buf.len() <= WRITE_BUFFER {
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(WRITE_BUFFER);
            }
            self.buffer.extend_from_slice(buf);
            return Ok(());
        }
        self.drain_buffer()?;
        if buf.len() < WRITE_BUFFER {
            self.buffer.extend_from_slice(buf);
            return Ok(());
        }
        self.write_through(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.drain_buffer()
    }
}

impl PackAppender for LocalAppender {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }

    fn position(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }

    fn sync(&mut self) -> Result<()> {
        self.drain_buffer()
            .map_err(|e| Error::io("write pack", &self.path, e))?;
        // A helper's sync error (also one about bytes truncated since) fails this sync: Linux
        // reports a write-back error once per open file, and the helper shares this one.
        if let Some(w) = self.writeback.as_mut() {
            w.finish()
                .map_err(|e| Error::io("fsync pack", &self.path, e))?;
        }
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
        let position = self.position();
        if len < self.floor || len > position {
            return Err(Error::InvalidArgument(format!(
                "cannot truncate pack {} to {len} bytes: only {}..={position} was written by this \
                 appender",
                self.pack_id, self.floor
            )));
        }
        if len >= self.written {
            // Only buffered bytes go: the file is untouched.
            self.buffer
                .truncate(usize::try_from(len - self.written).unwrap_or(usize::MAX));
            return Ok(());
        }
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate pack", &self.path, e))?;
        self.buffer.clear();
        self.written = len;
        Ok(())
    }

    fn write_back_early(&mut self, on: bool) {
        if !on {
            // Stops a helper; an error it met is dropped with it, as nothing is synced.
            self.writeback = None;
        } else if self.writeback.is_none() {
            self.writeback = Some(EarlyWriteback::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use rsdos_core::PackStore;

    use super::WRITE_BUFFER;
    use crate::LocalPackStore;

    /// Positions, truncation and the final bytes agree with a plain `Vec` model whether the
    /// bytes are still buffered, already in the file, or written through past the buffer.
    #[test]
    fn buffered_appends_match_the_model() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalPackStore::new(dir.path(), 4);
        let mut model: Vec<u8> = Vec::new();
        let mut a = store.open_append(0).expect("open");
        let mut next = 0u8;
        let mut chunk = |len: usize| -> Vec<u8> {
            (0..len)
                .map(|_| {
                    next = next.wrapping_add(7);
                    next
                })
                .collect()
        };
        for (step, len) in [
            10,
            1000,
            WRITE_BUFFER - 5,
            3,
            WRITE_BUFFER * 2 + 1,
            17,
            40_000,
        ]
        .into_iter()
        .enumerate()
        {
            let data = chunk(len);
            a.write_all(&data).expect("write");
            model.extend_from_slice(&data);
            assert_eq!(a.position(), model.len() as u64, "after write {step}");
            if step == 3 {
                // Cuts into bytes that already reached the file.
                let cut = model.len() - 4000;
                a.truncate(cut as u64).expect("truncate in file");
                model.truncate(cut);
            }
            if step == 6 {
                // Cuts bytes that are only buffered.
                let cut = model.len() - 39_000;
                a.truncate(cut as u64).expect("truncate in buffer");
                model.truncate(cut);
            }
            assert_eq!(a.position(), model.len() as u64, "after step {step}");
        }
        a.sync().expect("sync");
        assert_eq!(store.len(0).expect("len"), Some(model.len() as u64));
        let mut back = vec![0u8; model.len()];
        store.read_at(0, 0, &mut back).expect("read");
        assert!(back == model, "pack bytes differ from what was appended");

        // A dropped appender writes its buffer out: the next one starts after it.
        a.write_all(b"tail").expect("write");
        drop(a);
        let a = store.open_append(0).expect("reopen");
        assert_eq!(a.position(), model.len() as u64 + 4);
    }

    /// Appends past the early write-back step (a helper thread syncs along the way), synced
    /// twice, truncated between: the pack holds exactly what was appended.
    #[test]
    fn large_appends_synced_along_the_way_stay_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalPackStore::new(dir.path(), 4);
        let mut a = store.open_append(0).expect("open");
        a.write_back_early(true);
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let step = rsdos_core::EARLY_WRITEBACK_STEP as usize;
        let blocks = step / block.len() + 6;
        for _ in 0..blocks {
            a.write_all(&block).expect("write");
        }
        a.sync().expect("first sync");
        a.truncate((blocks * block.len() - 100) as u64)
            .expect("truncate");
        for _ in 0..blocks {
            a.write_all(&block[..1000]).expect("small write");
        }
        a.sync().expect("second sync");
        let len = blocks * block.len() - 100 + blocks * 1000;
        assert_eq!(store.len(0).expect("len"), Some(len as u64));
        let mut tail = vec![0u8; 1000];
        store
            .read_at(0, (len - 1000) as u64, &mut tail)
            .expect("read");
        assert_eq!(tail, block[..1000]);
        let mut around_cut = vec![0u8; 200];
        let cut = blocks * block.len() - 100;
        store
            .read_at(0, (cut - 100) as u64, &mut around_cut)
            .expect("read");
        let last_block_end = &block[block.len() - 200..block.len() - 100];
        assert_eq!(&around_cut[..100], last_block_end);
        assert_eq!(&around_cut[100..], &block[..100]);
    }
}
