//! Appenders of an [`OpendalPackStore`](crate::OpendalPackStore): the pack lock that every
//! appender holds, the appender of a staged pack and the lock-only appender of an uploaded one.

use std::io::Write;

use rsdos_core::{Error, PackAppender, PackId, PackStore, Result};
use rsdos_pack_local::LocalPackStore;

/// The exclusive lock of one pack id, across threads and processes sharing the staging folder.
///
/// It is the lock of a [`LocalPackStore`] over `<staging>/.locks`: its lock file
/// `<id>.lock` is held, and the empty pack file it creates beside it is removed again when the
/// lock is released.
pub(crate) struct PackLock {
    appender: Option<Box<dyn PackAppender>>,
    locks: std::sync::Arc<LocalPackStore>,
    pack_id: PackId,
}

impl PackLock {
    pub(crate) fn acquire(
        locks: &std::sync::Arc<LocalPackStore>,
        pack_id: PackId,
    ) -> Result<PackLock> {
        let appender = locks.open_append(pack_id)?;
        Ok(PackLock {
            appender: Some(appender),
            locks: std::sync::Arc::clone(locks),
            pack_id,
        })
    }
}

impl Drop for PackLock {
    fn drop(&mut self) {
        // Remove the placeholder while still holding the lock, then release it.
        let _ = self.locks.delete(self.pack_id);
        self.appender.take();
    }
}

/// Appends to a staged pack: the local appender plus the pack lock.
pub(crate) struct StagedAppender {
    // Field order: the staged appender is dropped before the pack lock is released.
    pub(crate) inner: Box<dyn PackAppender>,
    pub(crate) _lock: PackLock,
}

impl Write for StagedAppender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl PackAppender for StagedAppender {
    fn pack_id(&self) -> PackId {
        self.inner.pack_id()
    }
    fn position(&self) -> u64 {
        self.inner.position()
    }
    fn sync(&mut self) -> Result<()> {
        self.inner.sync()
    }
    fn truncate(&mut self, len: u64) -> Result<()> {
        self.inner.truncate(len)
    }
    fn write_back_early(&mut self, on: bool) {
        self.inner.write_back_early(on)
    }
}

/// The appender of a pack that is already uploaded (and so sealed): it holds the pack lock, so
/// that maintenance can lock a pack before deleting it, but refuses to write.
pub(crate) struct UploadedAppender {
    pub(crate) pack_id: PackId,
    pub(crate) len: u64,
    pub(crate) where_: String,
    pub(crate) _lock: PackLock,
}

impl UploadedAppender {
    fn refusal(&self) -> Error {
        Error::Unsupported(format!(
            "pack {} is sealed and uploaded to {}; it is never appended to again",
            self.pack_id, self.where_
        ))
    }
}

impl Write for UploadedAppender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        Err(self.refusal().into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl PackAppender for UploadedAppender {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }
    fn position(&self) -> u64 {
        self.len
    }
    fn sync(&mut self) -> Result<()> {
        Ok(())
    }
    fn truncate(&mut self, len: u64) -> Result<()> {
        if len == self.len {
            Ok(())
        } else {
            Err(self.refusal())
        }
    }
}
