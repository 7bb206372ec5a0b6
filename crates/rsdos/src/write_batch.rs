//! [`WriteBatch`]: many loose writes made durable together, at one durability point per batch.
//!
//! A single [`Container::add_object`] pays two fsyncs (the file, then the shard folder that
//! received it), about 2 ms on a disk that honours them. A batch writes its objects into
//! `sandbox/` without any fsync, and makes them durable together when it is flushed:
//!
//! 1. objects already present are dropped (one index lookup for the whole batch for packed
//!    ones; a loose file of the right size, whose shard folder is then synced, for loose ones),
//!    exactly as the single write decides;
//! 2. the contents of the remaining sandbox files are flushed with one `syncfs(2)` of the
//!    container's file system on Linux, or an fsync per file elsewhere;
//! 3. each file is renamed into `loose/<shard>/`;
//! 4. every shard folder that received a name (and `loose/` if a shard folder was created) is
//!    fsynced once.
//!
//! Contents are durable before any name points to them, so a crash at any instant leaves each
//! object of the batch either absent (its sandbox file a leftover that `clean` sweeps) or
//! complete; never a visible loose file with wrong content. After a flush returns, every object
//! of the batch is as durable as after [`Container::add_object`].

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rsdos_core::{Error, ObjectIndexExt, Result, durable};

use crate::container::Container;

/// Objects a batch holds before it flushes by itself (see [`WriteBatchOptions`]).
///
/// Why 20,000: a flush costs a fixed part (one `syncfs`, up to 256 shard-folder fsyncs), which
/// at this size is a few percent of writing the files; larger batches gain little and keep more
/// unsynced files and bookkeeping (about 200 bytes per object) around.
pub const DEFAULT_BATCH_MAX_OBJECTS: usize = 20_000;

/// Bytes a batch holds in `sandbox/` before it flushes by itself (see [`WriteBatchOptions`]).
///
/// Why 256 MiB: it bounds the space a batch occupies twice (sandbox files not yet moved) and the
/// dirty data one `syncfs` has to write out; past a few hundred MiB the write-out time dominates
/// and nothing is gained by waiting longer.
pub const DEFAULT_BATCH_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// Bounds of a [`WriteBatch`]: when either is reached, the batch flushes by itself, so the
/// sandbox space and the memory of a batch stay bounded however many objects go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBatchOptions {
    /// Pending objects after which the batch flushes (default
    /// [`DEFAULT_BATCH_MAX_OBJECTS`]; at least 1).
    pub max_objects: usize,
    /// Pending bytes after which the batch flushes (default [`DEFAULT_BATCH_MAX_BYTES`]).
    pub max_bytes: u64,
    /// Make a flush durable with `syncfs(2)` where available (default true). false: an fsync
    /// per file and per shard folder, as on platforms without `syncfs`; slower for many small
    /// objects, but it does not write out other processes' dirty data on the same file system.
    pub use_syncfs: bool,
}

impl Default for WriteBatchOptions {
    fn default() -> Self {
        WriteBatchOptions {
            max_objects: DEFAULT_BATCH_MAX_OBJECTS,
            max_bytes: DEFAULT_BATCH_MAX_BYTES,
            use_syncfs: true,
        }
    }
}

impl WriteBatchOptions {
    /// Sets the number of pending objects after which the batch flushes.
    pub fn with_max_objects(mut self, n: usize) -> Self {
        self.max_objects = n;
        self
    }
    /// Sets the number of pending bytes after which the batch flushes.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
    }
    /// Sets whether a flush uses `syncfs(2)` where available.
    pub fn with_syncfs(mut self, use_syncfs: bool) -> Self {
        self.use_syncfs = use_syncfs;
        self
    }
}

/// What a committed [`WriteBatch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteBatchReport {
    /// Objects added (every `add_*` call, duplicates included).
    pub added: u64,
    /// New loose files moved into place (content not already present loose or packed).
    pub written: u64,
    /// Durability points (flushes that had something to make durable).
    pub flushes: u64,
}

/// Objects wait in `sandbox/` at most this long before the batch flushes by itself (checked
/// when an object is added): `clean` and the automatic packer delete sandbox files older than
/// an hour, taking them for leftovers of killed writers.
const PENDING_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// One object written to `sandbox/`, not yet durable nor visible.
#[derive(Debug)]
struct Pending {
    key: String,
    tmp: PathBuf,
    len: u64,
}

/// Loose writes made durable together: objects are visible (and durable) only once the batch
/// is flushed, by [`WriteBatch::flush`], [`WriteBatch::commit`] or automatically when a bound of
/// [`WriteBatchOptions`] is reached. Made by [`Container::write_batch`].
///
/// After `commit` returns, every object of the batch has the guarantee one
/// [`Container::add_object`] gives when it returns. Dropping a batch without committing
/// discards the objects added since the last flush (their sandbox files are removed).
///
/// If a flush fails, the objects that were pending may or may not have been stored: add them
/// again. The batch stays usable.
#[derive(Debug)]
pub struct WriteBatch {
    container: Container,
    options: WriteBatchOptions,
    pending: Vec<Pending>,
    /// Keys of `pending`, so that content repeated in the batch is written once.
    pending_keys: HashSet<String>,
    pending_bytes: u64,
    /// When the first pending object was written.
    pending_since: Option<Instant>,
    /// The `syncfs` handle of this flush cycle, opened before its first sandbox file was
    /// written (so that it sees every write-back error of the cycle); `None` when the files
    /// are synced one by one instead.
    sync_handle: Option<File>,
    report: WriteBatchReport,
}

impl Container {
    /// Starts a batch of loose writes with one durability point per batch (see
    /// [`WriteBatch`]), with the default bounds.
    pub fn write_batch(&self) -> WriteBatch {
        self.write_batch_with(WriteBatchOptions::default())
    }

    /// Starts a batch of loose writes with the given bounds.
    pub fn write_batch_with(&self, options: WriteBatchOptions) -> WriteBatch {
        WriteBatch {
            container: self.clone(),
            options,
            pending: Vec::new(),
            pending_keys: HashSet::new(),
            pending_bytes: 0,
            pending_since: None,
            sync_handle: None,
            report: WriteBatchReport::default(),
        }
    }

    /// Stores every input as a loose object through one [`WriteBatch`] and returns one hashkey
    /// per input, in input order (duplicates included); all durable on return. Inputs are
    /// streamed. If an input fails to read, the objects flushed before it stay and the others
    /// are discarded.
    pub fn add_objects<I, R>(&self, objects: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = R>,
        R: Read,
    {
        let mut batch = self.write_batch();
        let mut keys = Vec::new();
        for mut object in objects {
            keys.push(batch.add_stream(&mut object)?);
        }
        batch.commit()?;
        Ok(keys)
    }
}

impl WriteBatch {
    /// Adds `data` and returns its hashkey. Neither durable nor visible before the batch is
    /// flushed; content already added to this batch is not written again.
    pub fn add_object(&mut self, data: &[u8]) -> Result<String> {
        let key = self.container.loose_store().hash_type().hash_hex(data);
        self.report.added += 1;
        if self.pending_keys.contains(&key) {
            return Ok(key);
        }
        self.start_cycle()?;
        let (mut file, tmp) = self.container.loose_store().create_sandbox_file()?;
        if let Err(e) = file.write_all(data) {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("write sandbox file", tmp, e));
        }
        drop(file);
        self.push(key.clone(), tmp, data.len() as u64)?;
        Ok(key)
    }

    /// Adds everything `reader` yields (streamed in bounded memory) and returns its hashkey.
    /// Neither durable nor visible before the batch is flushed.
    pub fn add_stream(&mut self, reader: &mut dyn Read) -> Result<String> {
        self.start_cycle()?;
        let (tmp, key, len) = self.container.loose_store().write_sandbox(reader)?;
        self.report.added += 1;
        if self.pending_keys.contains(&key) {
            let _ = std::fs::remove_file(&tmp);
            return Ok(key);
        }
        self.push(key.clone(), tmp, len)?;
        Ok(key)
    }

    fn push(&mut self, key: String, tmp: PathBuf, len: u64) -> Result<()> {
        self.pending_keys.insert(key.clone());
        self.pending.push(Pending { key, tmp, len });
        self.pending_bytes += len;
        if self.pending.len() >= self.options.max_objects.max(1)
            || self.pending_bytes >= self.options.max_bytes
            || self
                .pending_since
                .is_some_and(|t| t.elapsed() >= PENDING_MAX_AGE)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Before the first sandbox file of a flush cycle: notes the time and opens the `syncfs`
    /// handle of the cycle.
    fn start_cycle(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
            self.sync_handle = if self.options.use_syncfs {
                durable::sync_filesystem_handle(self.container.loose_store().sandbox_dir())?
            } else {
                None
            };
        }
        Ok(())
    }

    /// Objects added since the last flush and not written yet (repeats counted once).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Makes every object added so far durable and visible (one durability point).
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_keys.clear();
        self.pending_bytes = 0;
        self.pending_since = None;
        let result = self.flush_pending(&pending);
        self.sync_handle = None;
        // Whatever happened, no sandbox file of this flush may stay behind: those moved into
        // place are gone already (NotFound), the others are discarded.
        if result.is_err() {
            for p in &pending {
                let _ = std::fs::remove_file(&p.tmp);
            }
        }
        result
    }

    fn flush_pending(&mut self, pending: &[Pending]) -> Result<()> {
        let container = &self.container;
        let loose = container.loose_store();
        let keys: Vec<&str> = pending.iter().map(|p| p.key.as_str()).collect();
        let packed: HashSet<String> = container.index().packed_among(&keys)?;
        // Shard folders to fsync at the end, and whether each received a new name.
        let mut shards: HashMap<PathBuf, bool> = HashMap::new();
        let mut moves: Vec<(&Pending, PathBuf)> = Vec::with_capacity(pending.len());
        for p in pending {
            if packed.contains(&p.key) {
                // Packed: the index commit made it durable.
                remove_sandbox_file(&p.tmp);
                continue;
            }
            let dest = loose.path_of(&p.key);
            if loose.size(&p.key)? == Some(p.len) {
                // Another writer may have renamed it into place without having synced the
                // folder yet: sync it with ours, so that the batch's promise holds on its own.
                remove_sandbox_file(&p.tmp);
                shards.entry(shard_of(&dest, loose.dir())).or_insert(false);
                continue;
            }
            moves.push((p, dest));
        }
        let mut new_shard = false;
        if !moves.is_empty() {
            // The contents first, so that no name ever points to unsynced data.
            if !self.sync_filesystem()? {
                for (p, _) in &moves {
                    sync_file(&p.tmp)?;
                }
            }
            for (p, dest) in &moves {
                let shard = shard_of(dest, loose.dir());
                if !shards.get(&shard).copied().unwrap_or(false) {
                    if shard != loose.dir() && !shard.is_dir() {
                        match std::fs::create_dir(&shard) {
                            Ok(()) => new_shard = true,
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(Error::io("create loose folder", &shard, e)),
                        }
                    }
                    shards.insert(shard, true);
                }
                // rename() replaces atomically, as in the single write: a concurrent writer
                // of the same content converges on one file, a damaged file is replaced.
                std::fs::rename(&p.tmp, dest).map_err(|e| Error::io("move into place", dest, e))?;
            }
            self.report.written += moves.len() as u64;
        }
        // Then the names. With syncfs, one more call writes them all out at once, where an
        // fsync per shard folder (up to 256) is a separate write-out (a journal commit) each
        // (measured: 0.5-0.8 s against 0.01-0.3 s per 20,000 objects).
        if !shards.is_empty() && !self.sync_filesystem()? {
            if new_shard {
                durable::fsync_dir(loose.dir())?;
            }
            for shard in shards.keys() {
                durable::fsync_dir(shard)?;
            }
        }
        self.report.flushes += 1;
        Ok(())
    }

    /// `syncfs` of the file system of `sandbox/` (which holds `loose/` too: the renames would
    /// fail otherwise) through the cycle's handle; false when there is none (not wanted, not
    /// Linux, or a kernel whose `syncfs` does not report write-back errors).
    fn sync_filesystem(&self) -> Result<bool> {
        match &self.sync_handle {
            Some(handle) => {
                durable::sync_filesystem(handle, self.container.loose_store().sandbox_dir())?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Flushes what is pending and ends the batch: every object added is durable and visible.
    pub fn commit(mut self) -> Result<WriteBatchReport> {
        self.flush()?;
        Ok(self.report)
    }

    /// Ends the batch without storing what is pending (the same as dropping it).
    pub fn discard(self) {}
}

impl Drop for WriteBatch {
    fn drop(&mut self) {
        for p in &self.pending {
            let _ = std::fs::remove_file(&p.tmp);
        }
    }
}

/// The folder that receives `dest`'s name.
fn shard_of(dest: &Path, loose_dir: &Path) -> PathBuf {
    dest.parent().unwrap_or(loose_dir).to_path_buf()
}

/// Drops the sandbox file of an object that is already stored. Best effort: a file that cannot
/// be removed is a leftover that `clean` sweeps, and the object itself is fine.
fn remove_sandbox_file(tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
}

/// Fallback where there is no `syncfs`: the file's data, by path.
fn sync_file(tmp: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(tmp)
        .map_err(|e| Error::io("open sandbox file", tmp, e))?;
    f.sync_data().map_err(|e| Error::io("fsync", tmp, e))
}
