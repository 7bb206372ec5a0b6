//! `validate`: re-hash every loose and packed object and report every problem found.
//!
//! Read-only: no maintenance lock is taken, so validation may run while other threads or
//! processes add, pack, clean or repack. Every problem seen in a packed object is confirmed
//! before it is reported: the row is looked up again and the object re-read where the row
//! points *now*, so that an object moved (packed, repacked) or deleted during the run is not
//! reported. A loose file that vanishes while validation runs (packed and cleaned meanwhile)
//! is skipped.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rsdos_core::{
    Error, HashType, ObjectIndexExt, ObjectMeta, PackId, PackedEntry, PackedLocation, Result,
};

use crate::codec::{StreamDecoder, detect_codec};
use crate::container::Container;
use crate::hashing::read_up_to;
use crate::layout;
use crate::progress::{Progress, ProgressUnit, check_stop};
use crate::reader::{ObjectReader, StoredSource};

/// Neighbouring packed objects are read together in windows of up to this many bytes.
const WINDOW_MAX: u64 = 1024 * 1024;
/// A gap between two objects larger than this starts a new window (holes are not read).
const WINDOW_GAP_MAX: u64 = 64 * 1024;
/// Rows handed to a worker at once (a big pack is split into many such chunks).
const CHUNK_MAX_ROWS: usize = 4096;
/// Stored bytes handed to a worker at once.
const CHUNK_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// Window bytes one worker asks a remote store for in one `read_ranges` call: one request per
/// 1 MiB window would be one round trip each, while the store merges neighbouring windows
/// into a few larger requests; this bounds what a worker holds at once.
const READ_BATCH_MAX: u64 = 32 * 1024 * 1024;
/// Objects between two progress reports (and stop polls) of one worker.
const PROGRESS_BATCH: usize = 256;
/// Buffer each worker hashes through.
const HASH_BUF: usize = 256 * 1024;
/// Rows fetched from the index per query.
const INDEX_PAGE: usize = 10_000;
/// Times a problem is re-checked while the object keeps moving.
const CONFIRM_ATTEMPTS: usize = 3;

/// Options of [`Container::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidateOptions {
    /// Worker threads reading and hashing (default: the number of cores; 0 counts as 1).
    pub threads: usize,
}

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

impl ValidateOptions {
    /// Sets the number of worker threads (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }
}

/// Everything [`Container::validate`] found wrong. Each list is sorted; an empty report
/// ([`ValidationReport::is_valid`]) means every object re-hashed to its name.
///
/// The first four lists have the names and meaning of disk-objectstore's `ValidationIssues`
/// (lists of hashkeys); the others are rsdos additions. Leftover files in `sandbox/` (from
/// interrupted writes) and unreferenced bytes in packs (deleted objects, interrupted packing)
/// are normal and not reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidationReport {
    /// Hashkeys of loose files whose content does not hash to their name.
    pub invalid_hashes_loose: Vec<String>,
    /// Hashkeys of packed objects whose content (decompressed if needed) does not hash to
    /// their hashkey.
    pub invalid_hashes_packed: Vec<String>,
    /// Hashkeys of packed objects whose content is not as long as the `size` of their row
    /// (or, uncompressed, whose `size` differs from their stored `length`).
    pub invalid_sizes_packed: Vec<String>,
    /// Hashkeys of packed rows whose byte range starts inside the range of an earlier row of
    /// the same pack (rows of length 0 overlap nothing).
    pub overlapping_packed: Vec<String>,
    /// Packed objects whose stored bytes cannot be read or decompressed, with the error: a
    /// range past the end of the pack, a corrupt zlib stream or zstd frame, an I/O error.
    pub unreadable_packed: Vec<(String, String)>,
    /// Pack ids that rows point to but whose pack file does not exist.
    pub missing_packs: Vec<u64>,
    /// Hashkeys of rows whose pack file does not exist (their content is lost).
    pub rows_pointing_nowhere: Vec<String>,
    /// Entries of `loose/` that cannot be objects, as paths relative to the container
    /// (`loose/ab/cd`): names that are not a hashkey of the container's hash type (wrong
    /// length, uppercase, not hex), folders where files belong and vice versa.
    pub invalid_loose_names: Vec<String>,
    /// Loose files (hashkey) or loose folders (relative path) that cannot be read or listed,
    /// with the error (for example permission denied).
    pub unreadable_loose: Vec<(String, String)>,
    /// Problems of the container itself: an invalid configuration, a missing or read-only
    /// folder, a sandbox where no file can be created.
    pub config_problems: Vec<String>,
}

impl ValidationReport {
    /// True if nothing is wrong (every list is empty).
    pub fn is_valid(&self) -> bool {
        self.issue_count() == 0
    }

    /// The number of problems: the total length of all lists.
    pub fn issue_count(&self) -> usize {
        self.invalid_hashes_loose.len()
            + self.invalid_hashes_packed.len()
            + self.invalid_sizes_packed.len()
            + self.overlapping_packed.len()
            + self.unreadable_packed.len()
            + self.missing_packs.len()
            + self.rows_pointing_nowhere.len()
            + self.invalid_loose_names.len()
            + self.unreadable_loose.len()
            + self.config_problems.len()
    }

    fn merge(&mut self, other: ValidationReport) {
        let ValidationReport {
            invalid_hashes_loose,
            invalid_hashes_packed,
            invalid_sizes_packed,
            overlapping_packed,
            unreadable_packed,
            missing_packs,
            rows_pointing_nowhere,
            invalid_loose_names,
            unreadable_loose,
            config_problems,
        } = other;
        self.invalid_hashes_loose.extend(invalid_hashes_loose);
        self.invalid_hashes_packed.extend(invalid_hashes_packed);
        self.invalid_sizes_packed.extend(invalid_sizes_packed);
        self.overlapping_packed.extend(overlapping_packed);
        self.unreadable_packed.extend(unreadable_packed);
        self.missing_packs.extend(missing_packs);
        self.rows_pointing_nowhere.extend(rows_pointing_nowhere);
        self.invalid_loose_names.extend(invalid_loose_names);
        self.unreadable_loose.extend(unreadable_loose);
        self.config_problems.extend(config_problems);
    }

    /// Sorts every list and drops repeats, so that the report does not depend on the number
    /// of threads or the order in which they finished.
    fn normalize(&mut self) {
        fn tidy<T: Ord>(v: &mut Vec<T>) {
            v.sort_unstable();
            v.dedup();
        }
        tidy(&mut self.invalid_hashes_loose);
        tidy(&mut self.invalid_hashes_packed);
        tidy(&mut self.invalid_sizes_packed);
        tidy(&mut self.overlapping_packed);
        tidy(&mut self.unreadable_packed);
        tidy(&mut self.missing_packs);
        tidy(&mut self.rows_pointing_nowhere);
        tidy(&mut self.invalid_loose_names);
        tidy(&mut self.unreadable_loose);
        tidy(&mut self.config_problems);
    }
}

/// One line per problem, or `no problems found`.
impl fmt::Display for ValidationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_valid() {
            return f.write_str("no problems found");
        }
        let mut lines: Vec<String> = Vec::with_capacity(self.issue_count());
        for p in &self.config_problems {
            lines.push(format!("container: {p}"));
        }
        for k in &self.invalid_hashes_loose {
            lines.push(format!(
                "loose object {k}: content does not hash to its name"
            ));
        }
        for (k, e) in &self.unreadable_loose {
            lines.push(format!("loose {k}: cannot be read: {e}"));
        }
        for n in &self.invalid_loose_names {
            lines.push(format!("{n}: not a valid loose object name"));
        }
        for p in &self.missing_packs {
            lines.push(format!("pack {p}: referenced by the index but missing"));
        }
        for k in &self.rows_pointing_nowhere {
            lines.push(format!("packed object {k}: its pack is missing"));
        }
        for (k, e) in &self.unreadable_packed {
            lines.push(format!("packed object {k}: cannot be read: {e}"));
        }
        for k in &self.invalid_hashes_packed {
            lines.push(format!(
                "packed object {k}: content does not hash to its name"
            ));
        }
        for k in &self.invalid_sizes_packed {
            lines.push(format!(
                "packed object {k}: size differs from its index row"
            ));
        }
        for k in &self.overlapping_packed {
            lines.push(format!(
                "packed object {k}: overlaps an earlier object of its pack"
            ));
        }
        f.write_str(&lines.join("\n"))
    }
}

/// What re-reading one packed object found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Good,
    Bad { hash: bool, size: bool },
    Unreadable(String),
    PackMissing,
}

/// A run of rows of one pack, in offset order, for one worker.
struct Chunk {
    rows: Vec<PackedEntry>,
}

/// A row that starts inside the range of an earlier row, to be confirmed at the end.
struct OverlapCandidate {
    row: PackedEntry,
    earlier: PackedEntry,
}

/// State shared by the threads of one phase.
struct Shared<'a> {
    progress: &'a dyn Progress,
    /// Set when any thread hit an error or was asked to stop: the others wind down.
    abort: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

impl Container {
    /// Checks the whole container and reports every problem found, never stopping at the
    /// first: every loose file is re-hashed (and every name in `loose/` checked); every row of
    /// the index is checked against its pack (pack present, range within the pack, not
    /// overlapping an earlier row) and its stored bytes are read, decompressed if compressed,
    /// re-hashed and measured; the configuration and folders are checked.
    ///
    /// Like disk-objectstore's `validate`, with more checks: missing packs, unreadable or
    /// truncated data and bad loose names are reported instead of raising. Objects are hashed
    /// by `options.threads` workers, a large pack split between them; memory stays bounded
    /// (objects are streamed, neighbouring small ones read in 1 MiB windows).
    ///
    /// Read-only: it takes no maintenance lock and may run while others write, pack, clean or
    /// repack. A problem with a packed object is confirmed by re-reading the object where the
    /// index points at that moment, so objects moved or deleted meanwhile are not reported; a
    /// loose file that disappears while validating is skipped. The only write is a probe file
    /// created and deleted in `sandbox/` to check that the container accepts new objects.
    ///
    /// Progress: phase `Loose objects` (total: loose files), then `Packed objects` (total:
    /// index rows), both in [`ProgressUnit::Objects`]. When `progress` asks to stop, returns
    /// [`Error::Interrupted`]. Errors are returned only when the container cannot be examined
    /// at all (for example the index cannot be queried, or `loose/` cannot be listed).
    pub fn validate(
        &self,
        options: &ValidateOptions,
        progress: &dyn Progress,
    ) -> Result<ValidationReport> {
        check_stop(progress)?;
        let threads = options.threads.max(1);
        let mut report = ValidationReport::default();
        self.validate_config(&mut report);
        report.merge(self.validate_loose(threads, progress)?);
        report.merge(self.validate_packed(threads, progress)?);
        report.normalize();
        Ok(report)
    }

    // ---- configuration -------------------------------------------------------------------

    fn validate_config(&self, report: &mut ValidationReport) {
        if let Err(e) = self.config().validate() {
            report.config_problems.push(format!("config.json: {e}"));
        }
        let root = self.path();
        for name in [
            layout::LOOSE,
            layout::PACKS,
            layout::SANDBOX,
            layout::DUPLICATES,
        ] {
            let dir = root.join(name);
            match std::fs::metadata(&dir) {
                Ok(m) if !m.is_dir() => report
                    .config_problems
                    .push(format!("{name} is not a folder")),
                Ok(m) if m.permissions().readonly() => {
                    report.config_problems.push(format!("{name}/ is read-only"))
                }
                Ok(_) => {}
                Err(e) => report
                    .config_problems
                    .push(format!("{name}/ cannot be accessed: {e}")),
            }
        }
        let sandbox = root.join(layout::SANDBOX);
        if sandbox.is_dir() {
            let probe = sandbox.join(format!(".rsdos-validate-{}", uuid::Uuid::new_v4().simple()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&probe)
            {
                Ok(file) => {
                    drop(file);
                    let _ = std::fs::remove_file(&probe);
                }
                Err(e) => report.config_problems.push(format!(
                    "{}/: cannot create a file, so no object can be added: {e}",
                    layout::SANDBOX
                )),
            }
        }
    }

    // ---- loose objects -------------------------------------------------------------------

    fn validate_loose(&self, threads: usize, progress: &dyn Progress) -> Result<ValidationReport> {
        let hash_type = self.config().hash_type;
        let mut report = ValidationReport::default();
        let mut counter = LooseWalker::new(self, &mut report)?;
        let mut total = 0u64;
        let mut batch = Vec::new();
        loop {
            batch.clear();
            counter.next_batch(PROGRESS_BATCH * 16, &mut batch);
            if batch.is_empty() {
                break;
            }
            total += batch
                .iter()
                .filter(|i| matches!(i, LooseItem::Object { .. }))
                .count() as u64;
        }
        drop(counter);
        check_stop(progress)?;
        progress.start("Loose objects", total, ProgressUnit::Objects);

        // The top-level problems were recorded by the counting walker; this one only walks.
        let walker = Mutex::new(LooseWalker::new(self, &mut ValidationReport::default())?);
        let shared = Shared {
            progress,
            abort: AtomicBool::new(false),
        };
        let results: Vec<Result<ValidationReport>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(|| loose_worker(&walker, hash_type, &shared)))
                .collect();
            handles.into_iter().map(join).collect()
        });
        for r in results {
            report.merge(r?);
        }
        progress.finish();
        Ok(report)
    }

    // ---- packed objects ------------------------------------------------------------------

    fn validate_packed(&self, threads: usize, progress: &dyn Progress) -> Result<ValidationReport> {
        let total = self.index().totals()?.count;
        check_stop(progress)?;
        progress.start("Packed objects", total, ProgressUnit::Objects);
        let shared = Shared {
            progress,
            abort: AtomicBool::new(false),
        };
        let (tx, rx) = sync_channel::<Chunk>(threads * 2);
        let rx = Mutex::new(rx);
        let mut report = ValidationReport::default();
        let (produced, results) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| s.spawn(|| self.pack_worker(&rx, &shared)))
                .collect();
            let produced = self.produce_chunks(tx, &shared, &mut report);
            if produced.is_err() {
                shared.abort.store(true, Ordering::SeqCst);
            }
            let results: Vec<Result<ValidationReport>> = handles.into_iter().map(join).collect();
            (produced, results)
        });
        produced?;
        for r in results {
            report.merge(r?);
        }
        progress.finish();
        Ok(report)
    }

    /// Walks the index pack by pack in offset order (on the calling thread): detects missing
    /// packs and overlapping rows, and hands the rows to the workers in chunks. The sender is
    /// dropped on return, which lets the workers finish.
    fn produce_chunks(
        &self,
        tx: SyncSender<Chunk>,
        shared: &Shared<'_>,
        report: &mut ValidationReport,
    ) -> Result<()> {
        let mut overlaps: Vec<OverlapCandidate> = Vec::new();
        'packs: for pack_id in self.index().pack_ids()? {
            if shared.abort.load(Ordering::SeqCst) {
                return Ok(());
            }
            check_stop(shared.progress)?;
            if matches!(self.packs().len(pack_id), Ok(None))
                && self.report_absent_pack(pack_id, shared, report)?
            {
                continue;
            }
            let mut chunk: Vec<PackedEntry> = Vec::new();
            let mut chunk_bytes = 0u64;
            // The row reaching furthest so far, and where it ends.
            let mut furthest: Option<(PackedEntry, u64)> = None;
            for row in self.index().iter_pack(pack_id, INDEX_PAGE) {
                let row = row?;
                let loc = row.location;
                if loc.length > 0 {
                    let end = loc.offset.saturating_add(loc.length);
                    match &furthest {
                        Some((earlier, earlier_end)) => {
                            if loc.offset < *earlier_end {
                                overlaps.push(OverlapCandidate {
                                    row: row.clone(),
                                    earlier: earlier.clone(),
                                });
                            }
                            if end > *earlier_end {
                                furthest = Some((row.clone(), end));
                            }
                        }
                        None => furthest = Some((row.clone(), end)),
                    }
                }
                chunk_bytes = chunk_bytes.saturating_add(loc.length);
                chunk.push(row);
                if chunk.len() >= CHUNK_MAX_ROWS || chunk_bytes >= CHUNK_MAX_BYTES {
                    if shared.abort.load(Ordering::SeqCst) {
                        return Ok(());
                    }
                    check_stop(shared.progress)?;
                    let rows = std::mem::take(&mut chunk);
                    chunk_bytes = 0;
                    if tx.send(Chunk { rows }).is_err() {
                        // Every worker is gone: they are winding down after an error.
                        break 'packs;
                    }
                }
            }
            if !chunk.is_empty() && tx.send(Chunk { rows: chunk }).is_err() {
                break;
            }
        }
        drop(tx);
        self.confirm_overlaps(overlaps, report)
    }

    /// Reports the rows of a pack whose file is absent. Each row is looked up again first:
    /// rows moved to another pack meanwhile (a repack) are checked where they are now. Returns
    /// false if the pack appeared meanwhile (the caller then validates it normally).
    fn report_absent_pack(
        &self,
        pack_id: PackId,
        shared: &Shared<'_>,
        report: &mut ValidationReport,
    ) -> Result<bool> {
        let mut nowhere: Vec<String> = Vec::new();
        let mut moved: Vec<String> = Vec::new();
        let mut seen = 0u64;
        let mut page: Vec<PackedEntry> = Vec::with_capacity(INDEX_PAGE);
        let mut rows = self.index().iter_pack(pack_id, INDEX_PAGE).peekable();
        while rows.peek().is_some() {
            page.clear();
            for row in rows.by_ref().take(INDEX_PAGE) {
                page.push(row?);
            }
            if !matches!(self.packs().len(pack_id), Ok(None)) {
                return Ok(false);
            }
            seen += page.len() as u64;
            let keys: Vec<&str> = page.iter().map(|e| e.hashkey.as_str()).collect();
            for now in self.index().get_many(&keys)? {
                if now.location.pack_id == pack_id {
                    nowhere.push(now.hashkey);
                } else {
                    moved.push(now.hashkey);
                }
            }
        }
        if !nowhere.is_empty() {
            report.missing_packs.push(pack_id);
            report.rows_pointing_nowhere.extend(nowhere);
        }
        if !moved.is_empty() {
            let mut buf = vec![0u8; HASH_BUF];
            for key in moved {
                self.confirm(&key, None, report, &mut buf)?;
            }
        }
        // No worker sees the rows of this pack: count them here.
        shared.progress.advance(seen);
        Ok(true)
    }

    /// Keeps the overlap candidates whose two rows are still where they were seen.
    fn confirm_overlaps(
        &self,
        candidates: Vec<OverlapCandidate>,
        report: &mut ValidationReport,
    ) -> Result<()> {
        for batch in candidates.chunks(500) {
            let keys: Vec<&str> = batch
                .iter()
                .flat_map(|c| [c.row.hashkey.as_str(), c.earlier.hashkey.as_str()])
                .collect();
            let now: std::collections::HashMap<String, PackedLocation> = self
                .index()
                .get_many(&keys)?
                .into_iter()
                .map(|e| (e.hashkey, e.location))
                .collect();
            for c in batch {
                if now.get(&c.row.hashkey) == Some(&c.row.location)
                    && now.get(&c.earlier.hashkey) == Some(&c.earlier.location)
                {
                    report.overlapping_packed.push(c.row.hashkey.clone());
                }
            }
        }
        Ok(())
    }

    /// A worker of the packed phase: takes chunks until the producer is done. After an
    /// error (or a stop request) it keeps draining the queue without reading, so that the
    /// producer never blocks.
    fn pack_worker(
        &self,
        rx: &Mutex<Receiver<Chunk>>,
        shared: &Shared<'_>,
    ) -> Result<ValidationReport> {
        let mut report = ValidationReport::default();
        let mut buf = vec![0u8; HASH_BUF];
        let mut failure: Option<Error> = None;
        loop {
            let chunk = match lock(rx).recv() {
                Ok(c) => c,
                Err(_) => break,
            };
            if failure.is_some() || shared.abort.load(Ordering::SeqCst) {
                continue;
            }
            if let Err(e) = self.check_chunk(&chunk.rows, shared, &mut report, &mut buf) {
                shared.abort.store(true, Ordering::SeqCst);
                failure = Some(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Checks the rows of one chunk, reading neighbouring small objects in one window. Local
    /// stores read each window with one `read_at`; stores that prefer fewer, larger requests
    /// (object storage, `read_parallelism() > 1`) get the windows of up to [`READ_BATCH_MAX`]
    /// bytes in one `read_ranges` call, and the objects are checked exactly as locally.
    fn check_chunk(
        &self,
        rows: &[PackedEntry],
        shared: &Shared<'_>,
        report: &mut ValidationReport,
        buf: &mut [u8],
    ) -> Result<()> {
        let windows = plan_windows(rows);
        let batched = self.packs().read_parallelism() > 1;
        let mut unreported = 0usize;
        let mut w = 0;
        while w < windows.len() {
            let mut batch_end = w + 1;
            let mut prefetched: Vec<Option<Vec<u8>>> = Vec::new();
            if batched && windows[w].small {
                let pack_id = rows[windows[w].rows.start].location.pack_id;
                let mut bytes = windows[w].end - windows[w].start;
                while let Some(next) = windows.get(batch_end)
                    && next.small
                    && rows[next.rows.start].location.pack_id == pack_id
                    && bytes + (next.end - next.start) <= READ_BATCH_MAX
                {
                    bytes += next.end - next.start;
                    batch_end += 1;
                }
                // Each window is at most WINDOW_MAX bytes, so its length fits in usize.
                let ranges: Vec<(u64, usize)> = windows[w..batch_end]
                    .iter()
                    .map(|win| (win.start, (win.end - win.start) as usize))
                    .collect();
                // On failure (a truncated pack, say) each window is read again on its own
                // below, so that only the affected objects are reported.
                if let Ok(bufs) = self.packs().read_ranges(pack_id, &ranges)
                    && bufs.len() == ranges.len()
                    && bufs.iter().zip(&ranges).all(|(b, r)| b.len() == r.1)
                {
                    prefetched = bufs.into_iter().map(Some).collect();
                }
            }
            for (k, win) in windows[w..batch_end].iter().enumerate() {
                let bytes = prefetched.get_mut(k).and_then(Option::take);
                let window = &rows[win.rows.clone()];
                self.check_window(window, win, bytes, report, buf)?;
                unreported += window.len();
                if unreported >= PROGRESS_BATCH || !win.small {
                    shared.progress.advance(unreported as u64);
                    unreported = 0;
                    check_stop(shared.progress)?;
                }
            }
            w = batch_end;
        }
        if unreported > 0 {
            shared.progress.advance(unreported as u64);
        }
        check_stop(shared.progress)
    }

    /// Checks the rows of one window, from `bytes` (the window read already) or read now.
    fn check_window(
        &self,
        window: &[PackedEntry],
        win: &Window,
        bytes: Option<Vec<u8>>,
        report: &mut ValidationReport,
        buf: &mut [u8],
    ) -> Result<()> {
        let first = window[0].location;
        let sources: Vec<StoredSource> = if !win.small {
            vec![self.pack_source(first)]
        } else {
            let bytes = match bytes {
                Some(b) => Ok(b),
                None => {
                    // Bounded by WINDOW_MAX (a small window).
                    let mut b = vec![0u8; (win.end - win.start) as usize];
                    self.packs()
                        .read_at(first.pack_id, win.start, &mut b)
                        .map(|()| b)
                }
            };
            match bytes {
                Ok(bytes) => {
                    let bytes = Arc::new(bytes);
                    window
                        .iter()
                        .map(|e| StoredSource::Memory {
                            buf: Arc::clone(&bytes),
                            start: (e.location.offset - win.start) as usize,
                            len: e.location.length as usize,
                        })
                        .collect()
                }
                // Part of the window is unreadable (a truncated pack, say): read each
                // object on its own so that only the affected ones are reported.
                Err(_) => window
                    .iter()
                    .map(|e| self.pack_source(e.location))
                    .collect(),
            }
        };
        for (row, source) in window.iter().zip(sources) {
            let verdict = self.check_object(&row.hashkey, row.location, source, buf);
            if verdict != Verdict::Good {
                self.confirm(&row.hashkey, Some((row.location, verdict)), report, buf)?;
            }
        }
        Ok(())
    }

    fn pack_source(&self, loc: PackedLocation) -> StoredSource {
        StoredSource::pack_or_failing(self.packs(), loc.pack_id, loc.offset, loc.length)
    }

    /// Re-checks a problem where the index points now (up to a few times if the object keeps
    /// moving) and records it only if it persists. `first` is what a check of a possibly
    /// stale row found; `None` means there is no such check yet.
    fn confirm(
        &self,
        hashkey: &str,
        first: Option<(PackedLocation, Verdict)>,
        report: &mut ValidationReport,
        buf: &mut [u8],
    ) -> Result<()> {
        let mut last = first;
        for _ in 0..CONFIRM_ATTEMPTS {
            let Some(now) = self.index().get(hashkey)? else {
                // Deleted meanwhile.
                return Ok(());
            };
            let verdict = if matches!(self.packs().len(now.pack_id), Ok(None)) {
                Verdict::PackMissing
            } else {
                self.check_object(hashkey, now, self.pack_source(now), buf)
            };
            if verdict == Verdict::Good {
                return Ok(());
            }
            let confirmed = matches!(&last, Some((loc, v)) if *loc == now && *v == verdict);
            last = Some((now, verdict));
            if confirmed {
                break;
            }
        }
        if let Some((loc, verdict)) = last {
            record(report, hashkey, loc, verdict);
        }
        Ok(())
    }

    /// Reads one packed object from `source`, decompresses it if its row says so, and
    /// compares its hash and size with the row.
    fn check_object(
        &self,
        hashkey: &str,
        loc: PackedLocation,
        source: StoredSource,
        buf: &mut [u8],
    ) -> Verdict {
        let hash_type = self.config().hash_type;
        // The raw stored bytes: an uncompressed reader of `length` bytes.
        let raw_meta = ObjectMeta::packed(PackedLocation {
            size: loc.length,
            compressed: false,
            ..loc
        });
        let raw = match ObjectReader::stored(hashkey.to_string(), raw_meta, source) {
            Ok(r) => r,
            Err(e) => return verdict_of_error(loc, &e.into()),
        };
        let hashed = if loc.compressed {
            decode_and_hash(raw, hash_type, buf)
        } else {
            hash_stream(raw, hash_type, buf)
        };
        match hashed {
            Ok((actual, len)) => {
                let hash = actual != hashkey;
                let size = len != loc.size;
                if hash || size {
                    Verdict::Bad { hash, size }
                } else {
                    Verdict::Good
                }
            }
            Err(e) => verdict_of_error(loc, &e),
        }
    }
}

fn record(report: &mut ValidationReport, hashkey: &str, loc: PackedLocation, verdict: Verdict) {
    match verdict {
        Verdict::Good => {}
        Verdict::Bad { hash, size } => {
            if hash {
                report.invalid_hashes_packed.push(hashkey.to_string());
            }
            if size {
                report.invalid_sizes_packed.push(hashkey.to_string());
            }
        }
        Verdict::Unreadable(detail) => report.unreadable_packed.push((hashkey.to_string(), detail)),
        Verdict::PackMissing => {
            report.missing_packs.push(loc.pack_id);
            report.rows_pointing_nowhere.push(hashkey.to_string());
        }
    }
}

/// Classifies an error of reading or decompressing the stored bytes of `loc`.
fn verdict_of_error(loc: PackedLocation, e: &io::Error) -> Verdict {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    if let Some(Error::PackNotFound { .. }) = inner {
        return Verdict::PackMissing;
    }
    let what = if inner.is_some() || !loc.compressed {
        "cannot read"
    } else {
        "cannot decompress"
    };
    Verdict::Unreadable(format!(
        "pack {}, offset {}, length {}{}: {what}: {e}",
        loc.pack_id,
        loc.offset,
        loc.length,
        if loc.compressed { ", compressed" } else { "" },
    ))
}

/// Hashes everything `r` yields; returns the hashkey and the number of bytes.
fn hash_stream(mut r: impl Read, hash_type: HashType, buf: &mut [u8]) -> io::Result<(String, u64)> {
    let mut hasher = hash_type.hasher();
    let mut len = 0u64;
    loop {
        let n = read_up_to(&mut r, buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok((hasher.finish_hex(), len))
}

/// Decompresses stored bytes (zlib or zstd, recognised from their first bytes) to their end,
/// hashing the output; returns the hashkey and the decompressed size.
fn decode_and_hash(
    mut raw: ObjectReader,
    hash_type: HashType,
    buf: &mut [u8],
) -> io::Result<(String, u64)> {
    let mut head = [0u8; 4];
    let n = read_up_to(&mut raw, &mut head)?;
    let codec = detect_codec(&head[..n]);
    let decoder = StreamDecoder::new(codec, (&head[..n]).chain(raw))?;
    hash_stream(decoder, hash_type, buf)
}

// ---- loose walking -------------------------------------------------------------------------

/// One entry of `loose/`.
enum LooseItem {
    Object { hashkey: String, path: PathBuf },
    BadName(String),
    Unlistable(String, String),
}

/// Walks `loose/` shard by shard, handing out entries in batches (shared by the workers
/// behind a mutex, so that memory stays bounded whatever the number of files).
struct LooseWalker {
    hash_type: HashType,
    shards: std::vec::IntoIter<(String, PathBuf)>,
    /// The shard being listed: its prefix, its relative name and its listing.
    current: Option<(String, String, std::fs::ReadDir)>,
}

impl LooseWalker {
    /// Lists the top of `loose/`; entries there that cannot be shard folders are recorded in
    /// `report`.
    fn new(container: &Container, report: &mut ValidationReport) -> Result<Self> {
        let config = container.config();
        let hash_type = config.hash_type;
        let prefix_len = config.loose_prefix_len;
        let dir = container.path().join(layout::LOOSE);
        let mut shards = Vec::new();
        if prefix_len == 0 {
            shards.push((String::new(), dir));
        } else {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
                let name = entry.file_name();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                match name.to_str() {
                    Some(n)
                        if is_dir
                            && n.len() == prefix_len
                            && n.bytes()
                                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
                    {
                        shards.push((n.to_string(), entry.path()));
                    }
                    _ => report.invalid_loose_names.push(format!(
                        "{}/{}",
                        layout::LOOSE,
                        name.to_string_lossy()
                    )),
                }
            }
            shards.sort_unstable();
        }
        Ok(LooseWalker {
            hash_type,
            shards: shards.into_iter(),
            current: None,
        })
    }

    /// Appends up to `max` entries to `out`; appends none when the walk is over.
    fn next_batch(&mut self, max: usize, out: &mut Vec<LooseItem>) {
        let mut taken = 0;
        while taken < max {
            let Some((prefix, rel, listing)) = self.current.as_mut() else {
                let Some((prefix, path)) = self.shards.next() else {
                    return;
                };
                let rel = if prefix.is_empty() {
                    layout::LOOSE.to_string()
                } else {
                    format!("{}/{prefix}", layout::LOOSE)
                };
                match std::fs::read_dir(&path) {
                    Ok(listing) => self.current = Some((prefix, rel, listing)),
                    // Removed meanwhile: nothing to check.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        out.push(LooseItem::Unlistable(rel, e.to_string()));
                        taken += 1;
                    }
                }
                continue;
            };
            match listing.next() {
                None => self.current = None,
                Some(Err(e)) => {
                    out.push(LooseItem::Unlistable(rel.clone(), e.to_string()));
                    taken += 1;
                    self.current = None;
                }
                Some(Ok(entry)) => {
                    taken += 1;
                    let name = entry.file_name();
                    let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                    let hashkey = name.to_str().map(|n| format!("{prefix}{n}"));
                    match hashkey {
                        Some(k) if !is_dir && self.hash_type.validate(&k).is_ok() => {
                            out.push(LooseItem::Object {
                                hashkey: k,
                                path: entry.path(),
                            });
                        }
                        _ => out.push(LooseItem::BadName(format!(
                            "{rel}/{}",
                            name.to_string_lossy()
                        ))),
                    }
                }
            }
        }
    }
}

/// A worker of the loose phase: takes batches of entries until the walk is over.
fn loose_worker(
    walker: &Mutex<LooseWalker>,
    hash_type: HashType,
    shared: &Shared<'_>,
) -> Result<ValidationReport> {
    let mut report = ValidationReport::default();
    let mut buf = vec![0u8; HASH_BUF];
    let mut batch = Vec::with_capacity(PROGRESS_BATCH);
    loop {
        if shared.abort.load(Ordering::SeqCst) {
            return Ok(report);
        }
        if shared.progress.should_stop() {
            shared.abort.store(true, Ordering::SeqCst);
            return Err(Error::Interrupted);
        }
        batch.clear();
        lock(walker).next_batch(PROGRESS_BATCH, &mut batch);
        if batch.is_empty() {
            return Ok(report);
        }
        let mut objects = 0u64;
        for item in batch.drain(..) {
            match item {
                LooseItem::Object { hashkey, path } => {
                    objects += 1;
                    match hash_file(&path, hash_type, &mut buf) {
                        Ok(Some(actual)) if actual != hashkey => {
                            report.invalid_hashes_loose.push(hashkey);
                        }
                        // Correct, or gone meanwhile (packed and cleaned: not a problem).
                        Ok(_) => {}
                        Err(e) => report.unreadable_loose.push((hashkey, e.to_string())),
                    }
                }
                LooseItem::BadName(name) => report.invalid_loose_names.push(name),
                LooseItem::Unlistable(name, e) => report.unreadable_loose.push((name, e)),
            }
        }
        shared.progress.advance(objects);
    }
}

/// The hashkey of a file's content, `None` if the file no longer exists.
fn hash_file(
    path: &std::path::Path,
    hash_type: HashType,
    buf: &mut [u8],
) -> io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    hash_stream(file, hash_type, buf).map(|(k, _)| Some(k))
}

/// Rows of a chunk read together: `rows` of the chunk, whose bytes are `start..end` of their
/// pack. A window that is not `small` is one object larger than [`WINDOW_MAX`], streamed.
#[derive(Debug, Clone)]
struct Window {
    rows: std::ops::Range<usize>,
    start: u64,
    end: u64,
    small: bool,
}

/// Groups neighbouring rows (in offset order) into windows of up to [`WINDOW_MAX`] bytes,
/// without overlapping rows or holes larger than [`WINDOW_GAP_MAX`].
fn plan_windows(rows: &[PackedEntry]) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let first = rows[i].location;
        let start = first.offset;
        let mut end = start.saturating_add(first.length);
        let mut j = i + 1;
        let small = first.length <= WINDOW_MAX;
        if small {
            while j < rows.len() {
                let l = rows[j].location;
                let next_end = l.offset.saturating_add(l.length);
                if l.pack_id != first.pack_id
                    || l.offset < end
                    || l.offset - end > WINDOW_GAP_MAX
                    || next_end - start > WINDOW_MAX
                {
                    break;
                }
                end = next_end;
                j += 1;
            }
        }
        windows.push(Window {
            rows: i..j,
            start,
            end,
            small,
        });
        i = j;
    }
    windows
}
