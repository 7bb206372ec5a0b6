//! `pack`: move loose objects into packs.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use rsdos_core::{CompressMode, Error, ErrorKind, ObjectIndexExt, Result};

use crate::codec::{BufCompressor, auto_should_compress};
use crate::container::Container;
use crate::loose::LooseOpener;
use crate::pack_writer::PackWriter;
use crate::progress::{Progress, ProgressUnit, check_stop};

/// Loose objects up to this size are read, hashed and compressed by worker threads; larger
/// ones are streamed by the writer itself.
const WORKER_OBJECT_MAX: u64 = 1024 * 1024;
/// Objects handed from a worker to the writer at once.
const BATCH: usize = 64;

/// Options of [`Container::pack_loose`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackOptions {
    /// Compression of the packed copies (`Keep` means `No`: loose objects are uncompressed).
    pub compress: CompressMode,
    /// fsync each pack before its rows are committed (default true).
    pub fsync: bool,
    /// Delete the loose copies of each pack right after its commit, so that packing never
    /// needs twice the disk space (default false: `clean` deletes them later).
    pub clean_loose_per_pack: bool,
    /// Worker threads hashing and compressing (default: the number of cores).
    pub threads: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            compress: CompressMode::No,
            fsync: true,
            clean_loose_per_pack: false,
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl PackOptions {
    /// Sets the compression mode.
    pub fn with_compress(mut self, compress: CompressMode) -> Self {
        self.compress = compress;
        self
    }
    /// Sets incremental clean.
    pub fn with_clean_loose_per_pack(mut self, yes: bool) -> Self {
        self.clean_loose_per_pack = yes;
        self
    }
    /// Sets whether packs are fsynced before commit.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }
    /// Sets the number of worker threads.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }
}

/// What [`Container::pack_loose`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackReport {
    /// Loose objects now packed (new rows).
    pub packed: u64,
    /// Uncompressed bytes of those objects.
    pub bytes: u64,
    /// Loose copies deleted by the incremental clean.
    pub loose_deleted: u64,
    /// Loose files whose content does not match their name: left in place, not packed
    /// (`validate` reports them too).
    pub corrupt_loose: Vec<String>,
}

/// One loose object prepared by a worker.
struct Prepared {
    hashkey: String,
    stored: Vec<u8>,
    size: u64,
    compressed: bool,
}

enum Work {
    Small(Vec<Prepared>),
    /// Too large for a worker: the writer streams it.
    Large(String),
    Corrupt(String),
    Failed(Error),
}

impl Container {
    /// Moves all loose objects that are not packed yet into packs, honouring
    /// `pack_size_target`. Each object's content is re-hashed while copying (a loose file that
    /// does not match its name is reported, not packed). Workers on all cores read, hash and
    /// compress; one writer appends; each pack is fsynced before its rows are committed in one
    /// transaction. Loose copies stay (for concurrent readers) until [`Container::clean`], or
    /// are deleted right after each pack's commit with `clean_loose_per_pack`.
    ///
    /// Takes the maintenance lock. Interrupting (through `progress`) commits what is written.
    pub fn pack_loose(&self, options: &PackOptions, progress: &dyn Progress) -> Result<PackReport> {
        let lock = self.lock_maintenance(Some(crate::container::DEFAULT_LOCK_WAIT))?;
        let mut keys = Vec::new();
        self.loose_store().for_each(|k, _| {
            keys.push(k);
            Ok(())
        })?;
        keys.sort_unstable();
        let mut todo = Vec::with_capacity(keys.len());
        while !keys.is_empty() {
            let chunk: Vec<String> = keys
                .drain(..keys.len().min(crate::maintenance::LOOKUP_CHUNK))
                .collect();
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let packed: HashSet<String> = self.index().packed_among(&refs)?;
            todo.extend(chunk.into_iter().filter(|k| !packed.contains(k)));
        }
        let mut report = PackReport::default();
        progress.start(
            "Packing loose objects",
            todo.len() as u64,
            ProgressUnit::Objects,
        );
        let compress = options.compress;
        let mut writer = PackWriter::with_lock_held(self, compress, options.fsync, None);
        let queue = Mutex::new(todo.chunks(BATCH));
        let threads = options.threads.max(1);
        let result = std::thread::scope(|scope| -> Result<()> {
            let (tx, rx) = sync_channel::<Work>(threads * 4);
            for _ in 0..threads {
                let tx = tx.clone();
                let queue = &queue;
                scope.spawn(move || {
                    let mut compressor = BufCompressor::new(self.config().compression_algorithm);
                    loop {
                        let Some(chunk) = queue.lock().ok().and_then(|mut q| q.next()) else {
                            return;
                        };
                        let mut batch = Vec::with_capacity(chunk.len());
                        // One per chunk: the chunk's keys are sorted, so they share few
                        // shard folders, and the folders are held only briefly.
                        let mut opener = self.loose_store().opener();
                        for key in chunk {
                            match self.prepare_loose(&mut opener, key, compress, &mut compressor) {
                                Ok(Some(p)) => batch.push(p),
                                Ok(None) => {}
                                Err(PrepareError::Large) => {
                                    if tx.send(Work::Large(key.clone())).is_err() {
                                        return;
                                    }
                                }
                                Err(PrepareError::Corrupt) => {
                                    if tx.send(Work::Corrupt(key.clone())).is_err() {
                                        return;
                                    }
                                }
                                Err(PrepareError::Failed(e)) => {
                                    let _ = tx.send(Work::Failed(e));
                                    return;
                                }
                            }
                        }
                        if tx.send(Work::Small(batch)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            for work in rx {
                check_stop(progress)?;
                match work {
                    Work::Small(batch) => {
                        for p in batch {
                            report.bytes += p.size;
                            writer.add_prepared(p.hashkey, &p.stored, p.size, p.compressed)?;
                            progress.advance(1);
                        }
                    }
                    Work::Large(key) => {
                        if let Some((mut file, size)) = self.loose_store().open(&key)? {
                            match writer.add_stream_verified(&mut file as &mut dyn Read, &key) {
                                Ok(()) => report.bytes += size,
                                Err(e) if e.kind() == ErrorKind::Corrupt => {
                                    report.corrupt_loose.push(key)
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        progress.advance(1);
                    }
                    Work::Corrupt(key) => {
                        report.corrupt_loose.push(key);
                        progress.advance(1);
                    }
                    Work::Failed(e) => return Err(e),
                }
                if options.clean_loose_per_pack {
                    report.loose_deleted += self.delete_loose_copies(writer.take_committed())?;
                }
            }
            Ok(())
        });
        // Whatever happened, commit the objects completely written so far.
        let finished = writer.finish_keep();
        let committed = finished?;
        report.packed += committed.total;
        if options.clean_loose_per_pack {
            report.loose_deleted += self.delete_loose_copies(committed.last_keys)?;
        }
        progress.finish();
        drop(lock);
        result?;
        report.corrupt_loose.sort();
        Ok(report)
    }

    /// Reads, verifies and (maybe) compresses one loose object. `Ok(None)`: it vanished.
    fn prepare_loose(
        &self,
        opener: &mut LooseOpener<'_>,
        key: &str,
        compress: CompressMode,
        compressor: &mut BufCompressor,
    ) -> std::result::Result<Option<Prepared>, PrepareError> {
        let Some((mut file, size)) = opener.open(key).map_err(PrepareError::Failed)? else {
            return Ok(None);
        };
        if size > WORKER_OBJECT_MAX {
            return Err(PrepareError::Large);
        }
        let data = self
            .loose_store()
            .read_sized(&mut file, size, key)
            .map_err(PrepareError::Failed)?;
        if self.config().hash_type.hash_hex(&data) != key {
            return Err(PrepareError::Corrupt);
        }
        let compressed = match compress {
            CompressMode::Yes => true,
            CompressMode::No | CompressMode::Keep => false,
            CompressMode::Auto => auto_should_compress(&data, data.len() as u64),
        };
        let stored = if compressed {
            let mut out = Vec::new();
            compressor.compress(&data, &mut out).map_err(|e| {
                PrepareError::Failed(Error::io("compress", format!("object {key}"), e))
            })?;
            out
        } else {
            data
        };
        Ok(Some(Prepared {
            hashkey: key.to_string(),
            size,
            compressed,
            stored,
        }))
    }

    /// Deletes the loose copies of objects that are now packed; returns how many existed.
    pub(crate) fn delete_loose_copies(&self, keys: Vec<String>) -> Result<u64> {
        let mut n = 0;
        for key in keys {
            if self.loose_store().delete(&key)? {
                n += 1;
            }
        }
        Ok(n)
    }
}

enum PrepareError {
    Large,
    Corrupt,
    Failed(Error),
}
