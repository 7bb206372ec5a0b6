//! `clean`: delete loose copies of packed objects, resolve `duplicates/`, sweep `sandbox/`.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use rsdos_core::{Error, ObjectIndexExt, Result, durable};

use crate::container::Container;
use crate::progress::{Progress, ProgressUnit, check_stop};

/// Options of [`Container::clean`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanOptions {
    /// Compact the index afterwards (SQLite `VACUUM`).
    pub vacuum: bool,
    /// Sandbox files older than this are leftovers of killed writers and are removed; younger
    /// ones may belong to a write in progress (default one hour).
    pub sandbox_grace: Duration,
    /// Threads unlinking files and syncing their folders (default [`CLEAN_THREADS`]).
    pub threads: usize,
}

/// Threads of `clean` by default, whatever the number of cores: an unlink waits for the disk
/// (on a file system mounted with `discard` each freed block is trimmed before the call
/// returns: 60-120 µs per small file here), not for the CPU, so more unlinks in flight finish
/// sooner. Deleting 20,000 small files from Python threads on this project's 2-core machine:
/// 1.26 s with 2 threads, 0.56-0.63 s with 8, 0.40-0.82 s with 16 to 64.
pub const CLEAN_THREADS: usize = 16;
/// Loose copies a clean thread takes from the queue at once (in hashkey order: mostly one
/// shard folder).
const UNLINK_CHUNK: usize = 256;

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            vacuum: false,
            sandbox_grace: Duration::from_secs(3600),
            threads: CLEAN_THREADS,
        }
    }
}

impl CleanOptions {
    /// Sets whether to VACUUM the index.
    pub fn with_vacuum(mut self, vacuum: bool) -> Self {
        self.vacuum = vacuum;
        self
    }
    /// Sets the sandbox grace period.
    pub fn with_sandbox_grace(mut self, grace: Duration) -> Self {
        self.sandbox_grace = grace;
        self
    }
}

/// What [`Container::clean`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanReport {
    /// Loose copies of packed objects deleted.
    pub loose_deleted: u64,
    /// Files removed from `duplicates/`.
    pub duplicates_removed: u64,
    /// Objects restored from a duplicate copy because the loose file was missing or wrong.
    pub duplicates_restored: u64,
    /// Hashkeys whose duplicates were all wrong and whose object is nowhere else: the
    /// duplicates are left in place for inspection.
    pub inconsistent_duplicates: Vec<String>,
    /// Old files removed from `sandbox/`, and temporary files of killed writers in `packs/`
    /// (hidden `*.tmp` files of unfinished sidecars and lock files).
    pub sandbox_removed: u64,
    /// Deleted packs whose bytes object storage kept for the grace period (for streams still
    /// reading them) and that are now removed for good (`PackStore::purge_deleted`).
    pub deleted_packs_purged: u64,
    /// Why that purge could not be done (the object storage unreachable, for example): the
    /// rest of the clean is done and the next clean tries again.
    pub purge_error: Option<String>,
}

impl Container {
    /// Deletes the loose copies of packed objects, resolves `duplicates/` as disk-objectstore
    /// does (keep or restore one verified copy, delete the others), removes sandbox leftovers
    /// older than the grace period, optionally VACUUMs the index, and removes the kept bytes
    /// of remote packs deleted longer ago than their grace period. Safe while other
    /// processes read and write: a loose file is deleted only after its packed copy is
    /// committed, and readers that miss a loose file look the index up again.
    ///
    /// Takes the maintenance lock.
    pub fn clean(&self, options: &CleanOptions, progress: &dyn Progress) -> Result<CleanReport> {
        let _lock = self.lock_maintenance(Some(crate::container::DEFAULT_LOCK_WAIT))?;
        let mut report = CleanReport::default();
        self.clean_duplicates(&mut report)?;

        let mut loose = Vec::new();
        self.loose_store().for_each(|k, _| {
            loose.push(k);
            Ok(())
        })?;
        let mut doomed = Vec::new();
        for chunk in loose.chunks(crate::maintenance::LOOKUP_CHUNK) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let packed: HashSet<String> = self.index().packed_among(&refs)?;
            doomed.extend(chunk.iter().filter(|k| packed.contains(*k)).cloned());
        }
        progress.start(
            "Deleting packed loose objects",
            doomed.len() as u64,
            ProgressUnit::Objects,
        );
        // Unlinking waits for the disk: several in flight finish sooner (`CLEAN_THREADS`).
        let deleted = AtomicU64::new(0);
        let chunks: Vec<&[String]> = doomed.chunks(UNLINK_CHUNK).collect();
        let unlinked = on_threads(&chunks, options.threads, |chunk| {
            if progress.should_stop() {
                return Ok(());
            }
            for key in *chunk {
                if self.loose_store().delete(key)? {
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
            }
            progress.advance(chunk.len() as u64);
            Ok(())
        });
        progress.finish();
        unlinked?;
        report.loose_deleted = deleted.into_inner();
        check_stop(progress)?;
        // The removed entries are durable once their folders are synced, each sync waiting
        // for the disk too.
        let mut shards: Vec<PathBuf> = doomed
            .iter()
            .filter_map(|k| {
                self.loose_store()
                    .path_of(k)
                    .parent()
                    .map(|p| p.to_path_buf())
            })
            .collect();
        shards.sort();
        shards.dedup();
        on_threads(&shards, options.threads, |shard| durable::fsync_dir(shard))?;

        report.sandbox_removed = self.clean_sandbox(options.sandbox_grace)?
            + self.clean_pack_temporaries(options.sandbox_grace)?;
        if options.vacuum {
            self.index().vacuum()?;
        }
        // Last, and best effort, as it may be the only step that needs the network: an
        // unreachable object storage leaves kept bytes for the next clean, and does not turn
        // the local work done above into a failure.
        match self.packs().purge_deleted() {
            Ok(n) => report.deleted_packs_purged = n as u64,
            Err(e) => report.purge_error = Some(e.to_string()),
        }
        Ok(report)
    }

    /// Resolves `duplicates/<hashkey>.<suffix>` files.
    fn clean_duplicates(&self, report: &mut CleanReport) -> Result<()> {
        let dir = self.path().join("duplicates");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some((key, _)) = name.split_once('.')
                && self.validate_key(key).is_ok()
            {
                groups
                    .entry(key.to_string())
                    .or_default()
                    .push(entry.path());
            }
        }
        let hash_type = self.config().hash_type;
        let hash_file = |p: &PathBuf| -> Result<String> {
            let mut f = std::fs::File::open(p).map_err(|e| Error::io("open", p, e))?;
            let mut h = crate::hashing::HashingReader::new(&mut f, hash_type);
            std::io::copy(&mut h, &mut std::io::sink()).map_err(|e| Error::io("read", p, e))?;
            Ok(h.finish()?.0)
        };
        for (key, mut copies) in groups {
            copies.sort();
            let loose_path = self.loose_store().path_of(&key);
            let loose_ok = loose_path.is_file() && hash_file(&loose_path)? == key;
            let present = loose_ok || self.index().get(&key)?.is_some();
            if !present {
                let mut restored = false;
                for c in &copies {
                    if hash_file(c)? == key {
                        if let Some(shard) = loose_path.parent() {
                            std::fs::create_dir_all(shard)
                                .map_err(|e| Error::io("create folder", shard, e))?;
                        }
                        std::fs::rename(c, &loose_path)
                            .map_err(|e| Error::io("restore duplicate", c, e))?;
                        if let Some(shard) = loose_path.parent() {
                            durable::fsync_dir(shard)?;
                        }
                        report.duplicates_restored += 1;
                        restored = true;
                        break;
                    }
                }
                if !restored {
                    report.inconsistent_duplicates.push(key);
                    continue;
                }
            }
            for c in copies {
                match std::fs::remove_file(&c) {
                    Ok(()) => report.duplicates_removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete duplicate", c, e)),
                }
            }
        }
        Ok(())
    }

    /// Removes hidden `*.tmp` files in `packs/` older than `grace` (left by killed writers of
    /// sidecars and lock files); returns how many.
    fn clean_pack_temporaries(&self, grace: Duration) -> Result<u64> {
        let dir = self.path().join("packs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(0);
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with('.') && name.ends_with(".tmp")) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= grace)
                .unwrap_or(false);
            if old {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete temporary file", entry.path(), e)),
                }
            }
        }
        Ok(removed)
    }

    /// Removes sandbox files older than `grace`; returns how many.
    pub(crate) fn clean_sandbox(&self, grace: Duration) -> Result<u64> {
        let dir = self.path().join("sandbox");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("list", &dir, e)),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= grace)
                .unwrap_or(false);
            if old && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("delete sandbox leftover", entry.path(), e)),
                }
            }
        }
        Ok(removed)
    }
}

/// Calls `f` on every item from up to `threads` threads at once (never more than items), each
/// thread taking the next item from a shared queue; returns the first error, after which no
/// thread takes another item.
fn on_threads<T: Sync>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let queue = Mutex::new(items.iter());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..threads.min(items.len()).max(1) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some(item) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                        return;
                    };
                    if let Err(e) = f(item) {
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        failed.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
