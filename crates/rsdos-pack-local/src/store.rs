//! The local-folder pack store and its cache of open handles.

use std::fs::File;
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rsdos_core::{
    Error, PackAppender, PackHandle, PackId, PackStore, Result, durable, is_valid_pack_name,
};

use crate::appender::LocalAppender;

/// Default bound on open pack handles per store.
pub const DEFAULT_MAX_OPEN_PACKS: usize = 64;

/// Pack files in one local folder (see the crate docs).
#[derive(Debug)]
pub struct LocalPackStore {
    dir: PathBuf,
    handles: Mutex<LruCache<PackId, Arc<File>>>,
}

impl LocalPackStore {
    /// A store over `dir` keeping at most `max_open` pack files open (at least 1). Does no I/O.
    pub fn new(dir: &Path, max_open: usize) -> Self {
        let cap = NonZeroUsize::new(max_open.max(1)).unwrap_or(NonZeroUsize::MIN);
        LocalPackStore {
            dir: dir.to_path_buf(),
            handles: Mutex::new(LruCache::new(cap)),
        }
    }

    /// The folder holding the packs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of pack `pack_id`.
    pub fn pack_path(&self, pack_id: PackId) -> PathBuf {
        self.dir.join(pack_id.to_string())
    }

    /// Path of the sidecar of pack `pack_id`.
    pub fn sidecar_path(&self, pack_id: PackId) -> PathBuf {
        self.dir.join(format!("{pack_id}.toc"))
    }

    /// Number of handles currently cached (for tests of the bound).
    pub fn open_handles(&self) -> usize {
        self.cache().len()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, LruCache<PackId, Arc<File>>> {
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on the current file of `pack_id`, from the cache when it is still linked.
    fn handle(&self, pack_id: PackId) -> Result<Arc<File>> {
        let cached = self.cache().get(&pack_id).cloned();
        if let Some(f) = cached {
            // A pack replaced under the same name (disk-objectstore's repack) leaves our handle
            // on the unlinked old file: its link count drops to 0.
            match f.metadata() {
                Ok(m) if m.nlink() > 0 => return Ok(f),
                _ => {
                    self.cache().pop(&pack_id);
                }
            }
        }
        let path = self.pack_path(pack_id);
        let file = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::PackNotFound { pack_id }
            } else {
                Error::io("open pack", &path, e)
            }
        })?;
        let file = Arc::new(file);
        self.cache().put(pack_id, Arc::clone(&file));
        Ok(file)
    }

    /// Forgets a cached handle (after the pack was deleted or replaced).
    pub(crate) fn forget(&self, pack_id: PackId) {
        self.cache().pop(&pack_id);
    }
}

impl PackStore for LocalPackStore {
    fn list(&self) -> Result<Vec<PackId>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_valid_pack_name(name) {
                continue;
            }
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if let (true, Ok(id)) = (is_file, name.parse::<PackId>()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    fn len(&self, pack_id: PackId) -> Result<Option<u64>> {
        let path = self.pack_path(pack_id);
        match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat pack", &path, e)),
        }
    }

    fn read_at(&self, pack_id: PackId, offset: u64, buf: &mut [u8]) -> Result<()> {
        let file = self.handle(pack_id)?;
        read_exact_at(&file, pack_id, &self.pack_path(pack_id), offset, buf)
    }

    fn open_pack(&self, pack_id: PackId) -> Result<Arc<dyn PackHandle>> {
        Ok(Arc::new(LocalPackHandle {
            file: self.handle(pack_id)?,
            pack_id,
            path: self.pack_path(pack_id),
        }))
    }

    fn open_append(&self, pack_id: PackId) -> Result<Box<dyn PackAppender>> {
        Ok(Box::new(LocalAppender::open(&self.dir, pack_id)?))
    }

    fn delete(&self, pack_id: PackId) -> Result<()> {
        self.forget(pack_id);
        for path in [self.sidecar_path(pack_id), self.pack_path(pack_id)] {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("delete", &path, e)),
            }
        }
        durable::fsync_dir(&self.dir)
    }

    fn seal(&self, pack_id: PackId, sidecar: &[u8]) -> Result<()> {
        if self.len(pack_id)?.is_none() {
            return Err(Error::PackNotFound { pack_id });
        }
        durable::write_atomic(&self.sidecar_path(pack_id), sidecar)
    }

    fn is_sealed(&self, pack_id: PackId) -> Result<bool> {
        Ok(self.sidecar_path(pack_id).is_file())
    }

    fn sidecar(&self, pack_id: PackId) -> Result<Option<Vec<u8>>> {
        let path = self.sidecar_path(pack_id);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read sidecar", &path, e)),
        }
    }

    fn describe(&self) -> String {
        format!("local folder {}", self.dir.display())
    }
}

fn read_exact_at(
    file: &File,
    pack_id: PackId,
    path: &Path,
    offset: u64,
    buf: &mut [u8],
) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::corrupt(
                "pack",
                format!("pack {pack_id}, offset {offset}, {} bytes", buf.len()),
                "the pack file ends before this range (truncated pack?)",
            )
        } else {
            Error::io("read pack", path, e)
        }
    })
}

/// An open pack file, read with `pread`; keeps reading the same inode after the pack is
/// unlinked.
#[derive(Debug)]
struct LocalPackHandle {
    file: Arc<File>,
    pack_id: PackId,
    path: PathBuf,
}

impl PackHandle for LocalPackHandle {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        read_exact_at(&self.file, self.pack_id, &self.path, offset, buf)
    }
}
