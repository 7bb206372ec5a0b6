//! Automatic background packing: loose objects are moved into packs continuously, in small
//! batches, so that they never pile up and nobody has to remember to run `pack`. How it works
//! is documented on [`AutoPacker`] (the public face of this module).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rsdos_core::{CompressMode, Error, ErrorKind, HashType, ObjectIndexExt, Result, durable};

use crate::codec::{BufCompressor, auto_should_compress};
use crate::container::Container;
use crate::pack_writer::PackWriter;
use crate::progress::Progress;

/// Name of the packer's status file in the container folder.
pub const AUTO_PACK_STATUS_FILE: &str = "rsdos-packer.json";

/// Loose objects up to this size are read whole, verified and appended; larger ones are
/// streamed into the pack while being hashed.
const SMALL_OBJECT_MAX: u64 = 1024 * 1024;
/// A batch stops taking objects after this long (and commits), so that the lock is held
/// briefly even when objects are large or the disk is slow.
const BATCH_TIME_BUDGET: Duration = Duration::from_millis(500);
/// After its commit, a batch deletes loose copies until it has held the lock this long (and
/// at least [`MIN_DELETES`] of them); the rest are deleted by the next batches. Unlinking is
/// slow on a disk busy with the fsyncs of loose writers (a millisecond per file was seen).
const LOCK_HOLD_BUDGET: Duration = Duration::from_millis(900);
/// Loose copies a batch deletes whatever the time, so that deleting always progresses.
const MIN_DELETES: usize = 64;
/// Threads deleting loose copies (see `delete_copies`).
const DELETE_THREADS: usize = 4;
/// Loose copies a deleting thread takes at a time.
const DELETE_CHUNK: usize = 16;
/// Pause between two batches without the lock: longer than the 20 ms retry interval of
/// `MaintenanceLock::acquire`, so that a waiting process gets the lock.
const LOCK_GAP: Duration = Duration::from_millis(60);
/// A folder mtime this close to the time it was read is not trusted (see the module docs).
const RACY_MARGIN: Duration = Duration::from_secs(2);
/// Everything is listed again this often, whatever the folder mtimes say.
const FULL_RESCAN_EVERY: Duration = Duration::from_secs(600);
/// Sandbox leftovers are looked for at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Options of the automatic packer ([`Container::start_auto_pack`], [`AutoPackRunner`]).
///
/// A round packs when any threshold is passed by the loose objects that are not packed yet:
/// their number, their total size, or the age of the oldest one. It then packs all of them,
/// oldest first, in batches. Loose copies of objects that are already packed are deleted by
/// any round that sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoPackOptions {
    /// Pack when at least this many loose objects are waiting (default 1000).
    pub max_loose_objects: u64,
    /// Pack when the waiting loose objects hold at least this many bytes (default 64 MiB).
    pub max_loose_bytes: u64,
    /// Pack when the oldest waiting loose object is at least this old (default 60 s).
    pub max_age: Duration,
    /// Objects per batch at most (default 2000).
    pub batch_objects: usize,
    /// Bytes per batch at most, counting at least one object (default 64 MiB).
    pub batch_bytes: u64,
    /// Time between two checks of the loose folder (default 1 s).
    pub poll_interval: Duration,
    /// Compression of the packed copies (default `No`; `Keep` means `No`).
    pub compress: CompressMode,
    /// Sandbox files older than this are leftovers of killed writers and are removed
    /// (default one hour, as [`CleanOptions`](crate::CleanOptions)).
    pub sandbox_grace: Duration,
    /// fsync each pack before its rows are committed (default true).
    pub fsync: bool,
}

impl Default for AutoPackOptions {
    fn default() -> Self {
        AutoPackOptions {
            max_loose_objects: 1000,
            max_loose_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(60),
            batch_objects: 2000,
            batch_bytes: 64 * 1024 * 1024,
            poll_interval: Duration::from_secs(1),
            compress: CompressMode::No,
            sandbox_grace: Duration::from_secs(3600),
            fsync: true,
        }
    }
}

impl AutoPackOptions {
    /// Sets the threshold on the number of waiting loose objects.
    pub fn with_max_loose_objects(mut self, n: u64) -> Self {
        self.max_loose_objects = n;
        self
    }
    /// Sets the threshold on the bytes of waiting loose objects.
    pub fn with_max_loose_bytes(mut self, bytes: u64) -> Self {
        self.max_loose_bytes = bytes;
        self
    }
    /// Sets the threshold on the age of the oldest waiting loose object.
    pub fn with_max_age(mut self, age: Duration) -> Self {
        self.max_age = age;
        self
    }
    /// Sets the maximum number of objects per batch.
    pub fn with_batch_objects(mut self, n: usize) -> Self {
        self.batch_objects = n;
        self
    }
    /// Sets the maximum number of bytes per batch.
    pub fn with_batch_bytes(mut self, bytes: u64) -> Self {
        self.batch_bytes = bytes;
        self
    }
    /// Sets the poll interval.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }
    /// Sets the compression of the packed copies.
    pub fn with_compress(mut self, compress: CompressMode) -> Self {
        self.compress = compress;
        self
    }
    /// Sets the sandbox grace period.
    pub fn with_sandbox_grace(mut self, grace: Duration) -> Self {
        self.sandbox_grace = grace;
        self
    }
    /// Sets whether packs are fsynced before their rows are committed.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }

    fn validate(&self) -> Result<()> {
        if self.batch_objects == 0 {
            return Err(Error::InvalidArgument(
                "auto-pack: batch_objects must be at least 1".into(),
            ));
        }
        if self.batch_bytes == 0 {
            return Err(Error::InvalidArgument(
                "auto-pack: batch_bytes must be at least 1".into(),
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::InvalidArgument(
                "auto-pack: poll_interval must be more than zero".into(),
            ));
        }
        Ok(())
    }
}

/// Why a round packed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackTrigger {
    /// The number of waiting loose objects reached `max_loose_objects`.
    Count,
    /// Their bytes reached `max_loose_bytes`.
    Bytes,
    /// The oldest one reached `max_age`.
    Age,
    /// No threshold was passed, but loose copies of packed objects were there to delete.
    Cleanup,
}

impl std::fmt::Display for PackTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PackTrigger::Count => "count",
            PackTrigger::Bytes => "bytes",
            PackTrigger::Age => "age",
            PackTrigger::Cleanup => "cleanup",
        })
    }
}

/// What one round of the packer saw and did ([`AutoPackRunner::run_once`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundReport {
    /// Shard folders listed again because their mtime changed.
    pub shards_rescanned: u64,
    /// Loose objects not packed yet, when the round began.
    pub loose_objects: u64,
    /// Their bytes.
    pub loose_bytes: u64,
    /// Age of the oldest of them.
    pub oldest_age: Option<Duration>,
    /// Loose copies of packed objects seen when the round began.
    pub packed_copies: u64,
    /// Why the round packed (`None`: no threshold passed, nothing done).
    pub trigger: Option<PackTrigger>,
    /// Batches committed.
    pub batches: u64,
    /// Objects packed (new index rows).
    pub packed: u64,
    /// Uncompressed bytes of the objects packed.
    pub bytes_packed: u64,
    /// Loose copies of packed objects deleted.
    pub loose_deleted: u64,
    /// Sandbox leftovers removed.
    pub sandbox_removed: u64,
    /// Loose files whose content does not match their name, found in this round: left in
    /// place and not packed (`validate` reports them too); retried when the file changes.
    pub corrupt_loose: Vec<String>,
    /// The round stopped because another process held the maintenance lock.
    pub lock_busy: bool,
    /// The round stopped because it was asked to.
    pub stopped: bool,
    /// Objects the round meant to pack or clean and left for the next one (lock busy,
    /// stopped, or an error).
    pub remaining: u64,
}

impl RoundReport {
    /// True if the round changed nothing and found nothing worth reporting.
    pub fn is_idle(&self) -> bool {
        self.batches == 0
            && self.loose_deleted == 0
            && self.sandbox_removed == 0
            && self.corrupt_loose.is_empty()
            && !self.lock_busy
    }
}

/// Totals of a packer since it started ([`AutoPacker::stats`], [`AutoPackRunner::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoPackStats {
    /// Rounds run (polls).
    pub rounds: u64,
    /// Batches committed.
    pub batches: u64,
    /// Objects packed.
    pub objects_packed: u64,
    /// Uncompressed bytes packed.
    pub bytes_packed: u64,
    /// Loose copies of packed objects deleted.
    pub loose_deleted: u64,
    /// Sandbox leftovers removed.
    pub sandbox_removed: u64,
    /// Corrupt loose files found (each counted once per version of the file).
    pub corrupt_loose: u64,
    /// Rounds cut short because another process held the maintenance lock.
    pub busy_rounds: u64,
    /// Rounds that failed.
    pub errors: u64,
    /// Loose objects left waiting by the last round: those seen below the thresholds, or
    /// those a packing round could not do (lock busy, stopped).
    pub loose_objects: u64,
    /// Age of the oldest loose object waiting when the last round began, if any is left.
    pub oldest_loose_age: Option<Duration>,
    /// When the packer last packed or deleted something.
    pub last_activity: Option<SystemTime>,
    /// The last error, if any round failed (kept after later rounds succeed).
    pub last_error: Option<String>,
}

impl AutoPackStats {
    fn add(&mut self, round: &RoundReport) {
        self.rounds += 1;
        self.batches += round.batches;
        self.objects_packed += round.packed;
        self.bytes_packed += round.bytes_packed;
        self.loose_deleted += round.loose_deleted;
        self.sandbox_removed += round.sandbox_removed;
        self.corrupt_loose += round.corrupt_loose.len() as u64;
        self.busy_rounds += u64::from(round.lock_busy);
        // A round that packed leaves only what it could not do (objects written meanwhile
        // are seen by the next poll).
        if round.trigger.is_some() {
            self.loose_objects = round.remaining;
            self.oldest_loose_age = round.oldest_age.filter(|_| round.remaining > 0);
        } else {
            self.loose_objects = round.loose_objects;
            self.oldest_loose_age = round.oldest_age;
        }
        if round.batches > 0 || round.loose_deleted > 0 || round.sandbox_removed > 0 {
            self.last_activity = Some(SystemTime::now());
        }
    }
}

// ---- noticing loose objects ---------------------------------------------------------------

/// What the packer knows of one loose file.
#[derive(Debug, Clone, Copy)]
struct LooseEntry {
    mtime: SystemTime,
    size: u64,
    /// Whether the index has a row for it (`None`: not looked up yet).
    packed: Option<bool>,
}

/// One shard folder (`loose/ab/`; the `loose/` folder itself when the prefix length is 0).
#[derive(Debug, Default)]
struct Shard {
    /// The folder's mtime when it was last listed, if it was old enough to be trusted.
    trusted_mtime: Option<SystemTime>,
    entries: HashMap<String, LooseEntry>,
}

/// The in-memory view of the loose folder, refreshed by listing only changed folders.
#[derive(Debug)]
struct LooseWatch {
    dir: PathBuf,
    prefix_len: usize,
    hash_type: HashType,
    /// The trusted mtime of `loose/` when its shard folders were last listed.
    root_mtime: Option<SystemTime>,
    shards: BTreeMap<String, Shard>,
    last_full: Option<Instant>,
}

/// A folder's mtime, and the time just before it was read; `None` if the folder is gone.
fn dir_mtime(dir: &Path) -> Result<Option<(SystemTime, SystemTime)>> {
    let now = SystemTime::now();
    match std::fs::metadata(dir) {
        Ok(m) => Ok(Some((
            m.modified().map_err(|e| Error::io("stat", dir, e))?,
            now,
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("stat", dir, e)),
    }
}

/// `mtime` if it is old enough, when read at `now`, for a later change to alter it.
fn trusted(mtime: SystemTime, now: SystemTime) -> Option<SystemTime> {
    match now.duration_since(mtime) {
        Ok(age) if age >= RACY_MARGIN => Some(mtime),
        _ => None,
    }
}

impl LooseWatch {
    fn new(container: &Container) -> Self {
        let config = container.config();
        LooseWatch {
            dir: container.path().join(crate::layout::LOOSE),
            prefix_len: config.loose_prefix_len,
            hash_type: config.hash_type,
            root_mtime: None,
            shards: BTreeMap::new(),
            last_full: None,
        }
    }

    fn shard_dir(&self, prefix: &str) -> PathBuf {
        if prefix.is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(prefix)
        }
    }

    /// Brings the view up to date; returns the number of folders listed again.
    fn refresh(&mut self) -> Result<u64> {
        if self
            .last_full
            .is_none_or(|t| t.elapsed() >= FULL_RESCAN_EVERY)
        {
            self.root_mtime = None;
            for shard in self.shards.values_mut() {
                shard.trusted_mtime = None;
            }
            self.last_full = Some(Instant::now());
        }
        if self.prefix_len == 0 {
            self.shards.entry(String::new()).or_default();
        } else {
            let Some((mtime, now)) = dir_mtime(&self.dir)? else {
                return Err(Error::io(
                    "list",
                    &self.dir,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            };
            if self.root_mtime != Some(mtime) {
                let mut present = HashSet::new();
                let entries =
                    std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
                for entry in entries {
                    let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
                    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    if name.len() == self.prefix_len
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                        && entry.file_type().is_ok_and(|t| t.is_dir())
                    {
                        present.insert(name);
                    }
                }
                self.shards.retain(|p, _| present.contains(p));
                for p in present {
                    self.shards.entry(p).or_default();
                }
                self.root_mtime = trusted(mtime, now);
            }
        }
        let mut rescanned = 0;
        let mut gone = Vec::new();
        let prefixes: Vec<String> = self.shards.keys().cloned().collect();
        for prefix in prefixes {
            let dir = self.shard_dir(&prefix);
            let Some((mtime, now)) = dir_mtime(&dir)? else {
                gone.push(prefix);
                continue;
            };
            let Some(shard) = self.shards.get_mut(&prefix) else {
                continue;
            };
            if shard.trusted_mtime == Some(mtime) {
                continue;
            }
            rescanned += 1;
            let listed = match list_shard(&dir, &prefix, self.hash_type, &shard.entries) {
                Ok(listed) => listed,
                Err(e) if e.is_os_not_found() => {
                    gone.push(prefix);
                    continue;
                }
                Err(e) => return Err(e),
            };
            shard.entries = listed;
            shard.trusted_mtime = trusted(mtime, now);
        }
        for prefix in gone {
            self.shards.remove(&prefix);
        }
        Ok(rescanned)
    }

    fn entries(&self) -> impl Iterator<Item = (&String, &LooseEntry)> {
        self.shards.values().flat_map(|s| s.entries.iter())
    }

    fn entry_mut(&mut self, key: &str) -> Option<&mut LooseEntry> {
        let prefix = key.get(..self.prefix_len)?;
        self.shards.get_mut(prefix)?.entries.get_mut(key)
    }

    /// Forgets a loose file (it was packed or deleted); its folder is listed again anyway,
    /// as its mtime changed.
    fn forget(&mut self, key: &str) {
        if let Some(prefix) = key.get(..self.prefix_len)
            && let Some(shard) = self.shards.get_mut(prefix)
        {
            shard.entries.remove(key);
        }
    }
}

/// Lists one shard folder, keeping what was known of files that did not change.
fn list_shard(
    dir: &Path,
    prefix: &str,
    hash_type: HashType,
    old: &HashMap<String, LooseEntry>,
) -> Result<HashMap<String, LooseEntry>> {
    let mut out = HashMap::with_capacity(old.len());
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let key = format!("{prefix}{name}");
        if hash_type.validate(&key).is_err() {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Packed and cleaned meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("stat", entry.path(), e)),
        };
        if !meta.is_file() {
            continue;
        }
        let mtime = meta
            .modified()
            .map_err(|e| Error::io("stat", entry.path(), e))?;
        let size = meta.len();
        let packed = old
            .get(&key)
            .filter(|o| o.mtime == mtime && o.size == size)
            .and_then(|o| o.packed);
        out.insert(
            key,
            LooseEntry {
                mtime,
                size,
                packed,
            },
        );
    }
    Ok(out)
}

// ---- packing --------------------------------------------------------------------------------

/// One loose file a round means to pack (or to delete, if it is already packed).
#[derive(Debug, Clone)]
struct WorkItem {
    key: String,
    size: u64,
    mtime: SystemTime,
}

enum BatchOutcome {
    /// Another process holds the maintenance lock.
    Busy,
    /// This many items of the batch were handled.
    Done(usize),
}

enum Added {
    Packed(u64),
    Vanished,
    Corrupt,
}

/// The automatic packer without a thread: call [`AutoPackRunner::run_once`] at each poll.
///
/// [`Container::start_auto_pack`] runs one in a thread; so does `rsdos daemon` for
/// each container. It remembers what it saw of the loose folder between rounds (see the
/// [`AutoPacker`] docs on noticing new objects cheaply), its totals, and writes the status
/// file (`rsdos-packer.json`).
pub struct AutoPackRunner {
    container: Container,
    options: AutoPackOptions,
    watch: LooseWatch,
    /// Loose files found corrupt, with their mtime: skipped until they change.
    corrupt: HashMap<String, SystemTime>,
    compressor: BufCompressor,
    last_sweep: Option<Instant>,
    stats: AutoPackStats,
    started: SystemTime,
    /// The last error written to the status file.
    reported_error: Option<String>,
}

impl std::fmt::Debug for AutoPackRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoPackRunner")
            .field("container", &self.container.path())
            .field("options", &self.options)
            .field("stats", &self.stats)
            .finish()
    }
}

impl AutoPackRunner {
    /// A packer of `container` (checks the options and writes the status file, which fails
    /// early if the container folder is not writable).
    pub fn new(container: &Container, options: AutoPackOptions) -> Result<Self> {
        options.validate()?;
        let runner = AutoPackRunner {
            container: container.clone(),
            options,
            watch: LooseWatch::new(container),
            corrupt: HashMap::new(),
            compressor: BufCompressor::new(container.config().compression_algorithm),
            last_sweep: None,
            stats: AutoPackStats::default(),
            started: SystemTime::now(),
            reported_error: None,
        };
        runner.write_status(None)?;
        Ok(runner)
    }

    /// The container this packer packs.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// The options.
    pub fn options(&self) -> &AutoPackOptions {
        &self.options
    }

    /// Totals since this runner was created.
    pub fn stats(&self) -> &AutoPackStats {
        &self.stats
    }

    /// One poll: notices new loose objects, and if a threshold is passed, packs all waiting
    /// loose objects, oldest first, in batches (see [`AutoPacker`]). Returns early,
    /// with what is left in [`RoundReport::remaining`], when another process holds the
    /// maintenance lock or `stop` asks to stop (checked between objects). Every committed
    /// batch counts in [`AutoPackRunner::stats`] even when the round then fails.
    pub fn run_once(&mut self, stop: &dyn Progress) -> Result<RoundReport> {
        let mut report = RoundReport::default();
        let result = self.round(stop, &mut report);
        self.stats.add(&report);
        if let Err(e) = &result {
            self.stats.errors += 1;
            self.stats.last_error = Some(e.to_string());
        }
        if !report.is_idle() || self.stats.last_error != self.reported_error {
            self.write_status(None)?;
        }
        result.map(|()| report)
    }

    /// Writes the status file one last time, marked stopped, and returns the totals.
    pub fn finish(self) -> Result<AutoPackStats> {
        // Another packer may have written the file since: only mark our own record stopped.
        let ours = match read_status(self.container.path()) {
            Ok(Some(s)) => s.pid == std::process::id(),
            Ok(None) | Err(_) => true,
        };
        if ours {
            self.write_status(Some(SystemTime::now()))?;
        }
        Ok(self.stats)
    }

    fn round(&mut self, stop: &dyn Progress, report: &mut RoundReport) -> Result<()> {
        if self.last_sweep.is_none_or(|t| t.elapsed() >= SWEEP_EVERY) {
            self.last_sweep = Some(Instant::now());
            report.sandbox_removed = self.container.clean_sandbox(self.options.sandbox_grace)?
                + self.clean_status_temporaries()?;
        }
        report.shards_rescanned = self.watch.refresh()?;
        self.look_up_new_entries()?;

        let now = SystemTime::now();
        let mut work: Vec<WorkItem> = Vec::new();
        let mut oldest: Option<SystemTime> = None;
        for (key, e) in self.watch.entries() {
            let packed = e.packed == Some(true);
            if !packed && self.corrupt.get(key) == Some(&e.mtime) {
                continue;
            }
            if packed {
                report.packed_copies += 1;
            } else {
                report.loose_objects += 1;
                report.loose_bytes += e.size;
                oldest = Some(oldest.map_or(e.mtime, |o| o.min(e.mtime)));
            }
            work.push(WorkItem {
                key: key.clone(),
                size: if packed { 0 } else { e.size },
                mtime: e.mtime,
            });
        }
        report.oldest_age = oldest.map(|o| now.duration_since(o).unwrap_or_default());
        let o = &self.options;
        report.trigger = if report.loose_objects > 0 && report.loose_objects >= o.max_loose_objects
        {
            Some(PackTrigger::Count)
        } else if report.loose_objects > 0 && report.loose_bytes >= o.max_loose_bytes {
            Some(PackTrigger::Bytes)
        } else if report.oldest_age.is_some_and(|a| a >= o.max_age) {
            Some(PackTrigger::Age)
        } else if report.packed_copies > 0 {
            Some(PackTrigger::Cleanup)
        } else {
            None
        };
        if report.trigger.is_none() {
            return Ok(());
        }
        if report.trigger == Some(PackTrigger::Cleanup) {
            // Nothing to pack yet: only the copies to delete.
            work.retain(|w| self.watch_says_packed(&w.key));
        }
        work.sort_by(|a, b| a.mtime.cmp(&b.mtime).then_with(|| a.key.cmp(&b.key)));

        let mut next = 0;
        let result = loop {
            if next >= work.len() {
                break Ok(());
            }
            if stop.should_stop() {
                report.stopped = true;
                break Ok(());
            }
            if next > 0 && pause(LOCK_GAP, stop) {
                report.stopped = true;
                break Ok(());
            }
            let mut end = next;
            let mut bytes = 0u64;
            while end < work.len()
                && end - next < self.options.batch_objects
                && (end == next || bytes + work[end].size <= self.options.batch_bytes)
            {
                bytes += work[end].size;
                end += 1;
            }
            match self.pack_batch(&work[next..end], stop, report) {
                Ok(BatchOutcome::Busy) => {
                    report.lock_busy = true;
                    break Ok(());
                }
                Ok(BatchOutcome::Done(n)) => next += n,
                Err(e) => break Err(e),
            }
        };
        report.remaining += (work.len() - next) as u64;
        result
    }

    fn watch_says_packed(&self, key: &str) -> bool {
        let Some(prefix) = key.get(..self.watch.prefix_len) else {
            return false;
        };
        self.watch
            .shards
            .get(prefix)
            .and_then(|s| s.entries.get(key))
            .is_some_and(|e| e.packed == Some(true))
    }

    /// Looks up, in the index, the loose files seen for the first time.
    fn look_up_new_entries(&mut self) -> Result<()> {
        let unknown: Vec<String> = self
            .watch
            .entries()
            .filter(|(_, e)| e.packed.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for chunk in unknown.chunks(10_000) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let packed: HashSet<String> = self
                .container
                .index()
                .get_many(&refs)?
                .into_iter()
                .map(|e| e.hashkey)
                .collect();
            for key in chunk {
                if let Some(e) = self.watch.entry_mut(key) {
                    e.packed = Some(packed.contains(key));
                }
            }
        }
        Ok(())
    }

    /// One batch, in one transaction under the maintenance lock (taken without waiting).
    fn pack_batch(
        &mut self,
        batch: &[WorkItem],
        stop: &dyn Progress,
        report: &mut RoundReport,
    ) -> Result<BatchOutcome> {
        let lock = match self.container.lock_maintenance(None) {
            Ok(lock) => lock,
            Err(e) if e.kind() == ErrorKind::Locked => return Ok(BatchOutcome::Busy),
            Err(e) => return Err(e),
        };
        let started = Instant::now();
        let container = &self.container;
        let refs: Vec<&str> = batch.iter().map(|w| w.key.as_str()).collect();
        let packed: HashSet<String> = container.index().packed_among(&refs)?;
        let mut writer =
            PackWriter::with_lock_held(container, self.options.compress, self.options.fsync, None);
        let mut done = 0;
        let mut bytes = 0u64;
        let mut to_delete = Vec::new();
        let mut corrupt = Vec::new();
        let mut looped = Ok(());
        for item in batch {
            if done > 0 && (stop.should_stop() || started.elapsed() >= BATCH_TIME_BUDGET) {
                break;
            }
            done += 1;
            if packed.contains(&item.key) {
                to_delete.push(item.key.clone());
                continue;
            }
            match add_loose(
                container,
                &mut self.compressor,
                &mut writer,
                &item.key,
                self.options.compress,
            ) {
                Ok(Added::Packed(size)) => bytes += size,
                Ok(Added::Vanished) => {}
                Ok(Added::Corrupt) => corrupt.push(item.clone()),
                Err(e) => {
                    looped = Err(e);
                    break;
                }
            }
        }
        // Whatever happened, commit the objects completely written so far.
        let finished = writer.finish_keep()?;
        to_delete.extend(finished.last_keys);
        // Every key of `to_delete` is packed, and stays so while the lock is held (only a
        // `delete`, which takes the lock, removes rows).
        let deletion = delete_copies(container, &to_delete, started);
        drop(lock);

        report.batches += 1;
        report.packed += finished.total;
        report.bytes_packed += bytes;
        report.loose_deleted += deletion.deleted;
        for (chunk, done) in to_delete.chunks(DELETE_CHUNK).zip(&deletion.chunks_done) {
            for key in chunk {
                if *done {
                    self.watch.forget(key);
                } else {
                    // Left for the next batches, which re-check it under the lock.
                    report.remaining += 1;
                    if let Some(e) = self.watch.entry_mut(key) {
                        e.packed = Some(true);
                    }
                }
            }
        }
        if let Some(e) = deletion.error {
            return Err(e);
        }
        for item in corrupt {
            self.corrupt.insert(item.key.clone(), item.mtime);
            report.corrupt_loose.push(item.key);
        }
        looped.map(|()| BatchOutcome::Done(done))
    }

    /// Removes temporary files of the status file left by a killed packer (older than the
    /// sandbox grace period).
    fn clean_status_temporaries(&self) -> Result<u64> {
        let dir = self.container.path();
        let prefix = format!(".{AUTO_PACK_STATUS_FILE}.");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(0);
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(&prefix) && name.ends_with(".tmp")) {
                continue;
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() >= self.options.sandbox_grace)
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

    fn write_status(&self, stopped: Option<SystemTime>) -> Result<()> {
        let s = &self.stats;
        let text = format!(
            "{{\n  \"pid\": {},\n  \"started\": {},\n  \"last_activity\": {},\n  \
             \"stopped\": {},\n  \"batches\": {},\n  \"objects_packed\": {},\n  \
             \"bytes_packed\": {},\n  \"loose_deleted\": {},\n  \"loose_waiting\": {},\n  \
             \"last_error\": {}\n}}\n",
            std::process::id(),
            json_time(Some(self.started)),
            json_time(s.last_activity),
            json_time(stopped),
            s.batches,
            s.objects_packed,
            s.bytes_packed,
            s.loose_deleted,
            s.loose_objects,
            s.last_error
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string),
        );
        durable::write_atomic(
            &self.container.path().join(AUTO_PACK_STATUS_FILE),
            text.as_bytes(),
        )
    }
}

/// Appends one loose object to the batch's pack, verifying its content against its name.
fn add_loose(
    container: &Container,
    compressor: &mut BufCompressor,
    writer: &mut PackWriter<'_>,
    key: &str,
    compress: CompressMode,
) -> Result<Added> {
    let Some((mut file, size)) = container.loose_store().open(key)? else {
        return Ok(Added::Vanished);
    };
    if size > SMALL_OBJECT_MAX {
        return match writer.add_stream_verified(&mut file, key) {
            Ok(()) => Ok(Added::Packed(size)),
            Err(e) if e.kind() == ErrorKind::Corrupt => Ok(Added::Corrupt),
            Err(e) => Err(e),
        };
    }
    let data = container.loose_store().read_sized(&mut file, size, key)?;
    if container.config().hash_type.hash_hex(&data) != key {
        return Ok(Added::Corrupt);
    }
    let compressed = match compress {
        CompressMode::Yes => true,
        CompressMode::No | CompressMode::Keep => false,
        CompressMode::Auto => auto_should_compress(&data, data.len() as u64),
    };
    let size = data.len() as u64;
    if compressed {
        let mut out = Vec::new();
        compressor
            .compress(&data, &mut out)
            .map_err(|e| Error::io("compress", format!("object {key}"), e))?;
        writer.add_prepared(key.to_string(), &out, size, true)?;
    } else {
        writer.add_prepared(key.to_string(), &data, size, false)?;
    }
    Ok(Added::Packed(size))
}

/// What [`delete_copies`] did.
struct Deletion {
    /// Files that existed and were deleted.
    deleted: u64,
    /// Per chunk of [`DELETE_CHUNK`] keys, whether it was done.
    chunks_done: Vec<bool>,
    /// The first error, which stopped the deletion.
    error: Option<Error>,
}

/// Deletes the loose files of `keys` (all packed) from [`DELETE_THREADS`] threads, in
/// chunks, until the lock taken at `locked_at` has been held for [`LOCK_HOLD_BUDGET`] (and
/// [`MIN_DELETES`] files are done). Unlinking is bound by the file system, which overlaps
/// the work of several threads: on ext4 mounted with `discard`, one unlink took 3 ms alone
/// and 0.1 to 0.3 ms with four threads.
fn delete_copies(container: &Container, keys: &[String], locked_at: Instant) -> Deletion {
    let chunks: Vec<&[String]> = keys.chunks(DELETE_CHUNK).collect();
    let next = AtomicUsize::new(0);
    let handled = AtomicUsize::new(0);
    let deleted = AtomicU64::new(0);
    let done: Vec<AtomicBool> = chunks.iter().map(|_| AtomicBool::new(false)).collect();
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let stopped = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..DELETE_THREADS.min(chunks.len()) {
            scope.spawn(|| {
                loop {
                    if stopped.load(Ordering::SeqCst)
                        || (handled.load(Ordering::SeqCst) >= MIN_DELETES
                            && locked_at.elapsed() >= LOCK_HOLD_BUDGET)
                    {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(chunk) = chunks.get(i) else {
                        return;
                    };
                    for key in *chunk {
                        match container.loose_store().delete(key) {
                            Ok(true) => {
                                deleted.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(false) => {}
                            Err(e) => {
                                stopped.store(true, Ordering::SeqCst);
                                failure
                                    .lock()
                                    .unwrap_or_else(PoisonError::into_inner)
                                    .get_or_insert(e);
                                return;
                            }
                        }
                    }
                    handled.fetch_add(chunk.len(), Ordering::SeqCst);
                    done[i].store(true, Ordering::SeqCst);
                }
            });
        }
    });
    Deletion {
        deleted: deleted.into_inner(),
        chunks_done: done.into_iter().map(AtomicBool::into_inner).collect(),
        error: failure.into_inner().unwrap_or_else(PoisonError::into_inner),
    }
}

/// Sleeps up to `d`, checking `stop` every 10 ms; true if asked to stop.
fn pause(d: Duration, stop: &dyn Progress) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.should_stop() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(10)));
    }
}

// ---- the thread -----------------------------------------------------------------------------

/// What the packer thread and its handle share.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    wake: Mutex<()>,
    cv: Condvar,
    stats: Mutex<AutoPackStats>,
}

impl Progress for Shared {
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Shared {
    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        self.cv.notify_all();
    }

    /// Sleeps up to `d` or until a stop is requested.
    fn sleep(&self, d: Duration) {
        let deadline = Instant::now() + d;
        let mut guard = self.wake.lock().unwrap_or_else(PoisonError::into_inner);
        while !self.should_stop() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            guard = self
                .cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// Called by a packer thread after each round with its outcome (for logging).
pub type RoundObserver = Box<dyn FnMut(&Result<RoundReport>) + Send + 'static>;

/// A running automatic packer ([`Container::start_auto_pack`]): a thread that polls the
/// container and packs its loose objects. Stop it with [`AutoPacker::stop`]; dropping it
/// stops it too (waiting for the current batch to commit, about half a second at most).
///
/// [`Container::start_auto_pack`] starts a thread that polls the loose folder and, when the
/// loose objects that are not packed yet pass a threshold (their number, their total size, or
/// the age of the oldest; see [`AutoPackOptions`]), packs all of them, oldest first (by the
/// modification time of the loose file), in batches. [`AutoPackRunner`] is the same packer
/// without a thread, for callers with a loop of their own (`rsdos daemon --once`).
///
/// # Batches and the maintenance lock
///
/// Each batch is its own transaction: it takes the maintenance lock *without waiting* (a round
/// whose lock is held by someone else ends, and the next poll retries), appends at most
/// [`AutoPackOptions::batch_objects`] objects or [`AutoPackOptions::batch_bytes`] bytes, and
/// for about half a second at most, to the current pack; fsyncs the pack; commits the rows;
/// deletes the loose copies of the objects just committed (and of objects found already
/// packed), from four threads, until it has held the lock for about a second (the copies
/// left are deleted by the next batches); and releases the lock. Between two batches it
/// pauses briefly, longer than the 20 ms with which
/// [`MaintenanceLock::acquire`](crate::MaintenanceLock::acquire) retries, so that an explicit
/// `pack`, `repack`, `clean`, `delete` or `backup` of another process gets the lock within
/// about a second. Readers and loose writers never take the lock and are never blocked.
///
/// Loose copies are deleted while the lock is still held, after their rows are committed: a
/// `delete` of another process (which takes the lock) cannot run between the two, so an object
/// deleted and written again is never lost. A loose file written again by a writer that raced
/// with the batch is a loose copy of a packed object, deleted by the next round.
///
/// The packer keeps no state on disk: after a crash, a kill or a restart it just sees loose
/// objects again. A batch killed half-way leaves pack bytes that no row refers to, which are
/// never read (as for an interrupted `pack`).
///
/// # Noticing new loose objects cheaply
///
/// Listing every loose file at each poll would cost O(loose objects) per poll. Instead the
/// packer remembers the modification time of `loose/` and of each shard folder
/// (`loose/ab/`): creating, renaming or deleting an entry of a folder changes its mtime, so a
/// poll costs one `stat` of `loose/` and one per shard folder (256 with the default prefix
/// length), and only the shard folders whose mtime changed are listed again (their files
/// `stat`ed for size and age). An mtime that is less than two seconds older than the moment it
/// was read is not trusted (a change in the same clock tick would not alter it; coarse file
/// systems tick once a second or two), so that folder is listed again at the next poll. Every
/// ten minutes everything is listed again, in case a file system does not keep folder mtimes
/// (some network file systems cache them).
///
/// Filesystem notifications (inotify) would avoid even the `stat`s, but need a new dependency
/// (such as `notify`), one watch per shard folder, and a fallback for the file systems where
/// they do not work (NFS, and changes made by other hosts); with 256 `stat`s a second the idle
/// packer already costs about a millisecond of CPU per poll (measured: 0.1 s of CPU a minute,
/// 0.2 % of a core, for `rsdos daemon` on a container with 256 shard folders), so they are not
/// used.
///
/// # The status file
///
/// The packer records its activity in `rsdos-packer.json` in the container folder (written
/// atomically): its pid, when it started, its last activity, what it packed, its last error,
/// and when it stopped. [`auto_pack_status`] reads it back and tells whether the packer is
/// still running (its process is alive, on Linux through `/proc`, and it did not stop). It is
/// written when the packer starts, after each round that did something or failed, and when it
/// stops; never by an idle poll.
#[derive(Debug)]
pub struct AutoPacker {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<AutoPackStats>>>,
}

impl AutoPacker {
    fn spawn(runner: AutoPackRunner, mut observer: Option<RoundObserver>) -> Result<AutoPacker> {
        let shared = Arc::new(Shared::default());
        let poll = runner.options.poll_interval;
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("rsdos-auto-pack".into())
            .spawn(move || {
                let mut runner = runner;
                let shared = thread_shared;
                while !shared.should_stop() {
                    let outcome = runner.run_once(&*shared);
                    *shared.stats.lock().unwrap_or_else(PoisonError::into_inner) =
                        runner.stats().clone();
                    if let Some(observe) = observer.as_mut() {
                        observe(&outcome);
                    }
                    shared.sleep(poll);
                }
                runner.finish()
            })
            .map_err(|e| Error::io("start the auto-pack thread of", "rsdos-auto-pack", e))?;
        Ok(AutoPacker {
            shared,
            thread: Some(thread),
        })
    }

    /// Totals so far (updated after each round).
    pub fn stats(&self) -> AutoPackStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// True while the thread runs (it only ends when asked to, or if it panicked).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the thread to stop without waiting for it (see [`AutoPacker::stop`]).
    pub fn request_stop(&self) {
        self.shared.request_stop();
    }

    /// Stops the thread (after committing the batch in progress), marks the status file
    /// stopped, and returns the totals.
    pub fn stop(mut self) -> Result<AutoPackStats> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<AutoPackStats> {
        self.shared.request_stop();
        match self.thread.take() {
            Some(thread) => match thread.join() {
                Ok(result) => result,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    Err(Error::InvalidArgument(format!(
                        "BUG: the auto-pack thread panicked: {what}"
                    )))
                }
            },
            None => Ok(self.stats()),
        }
    }
}

impl Drop for AutoPacker {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

impl Container {
    /// Starts the automatic packer in a background thread (see [`AutoPacker`]): it packs
    /// loose objects in small batches, oldest first, whenever a threshold of `options` is
    /// passed, and deletes their loose copies once committed. Returns its handle; the packer
    /// stops when the handle is stopped or dropped.
    ///
    /// Fails at once if the options are invalid or the status file cannot be written.
    pub fn start_auto_pack(&self, options: AutoPackOptions) -> Result<AutoPacker> {
        AutoPacker::spawn(AutoPackRunner::new(self, options)?, None)
    }

    /// As [`Container::start_auto_pack`], calling `observer` after each round (from the
    /// packer thread) with what it did or the error it met; a failed round is retried at the
    /// next poll.
    pub fn start_auto_pack_with(
        &self,
        options: AutoPackOptions,
        observer: RoundObserver,
    ) -> Result<AutoPacker> {
        AutoPacker::spawn(AutoPackRunner::new(self, options)?, Some(observer))
    }
}

// ---- the status file ------------------------------------------------------------------------

/// What `rsdos-packer.json` says of the last automatic packer of a container
/// ([`auto_pack_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackerStatus {
    /// Process id of the packer.
    pub pid: u32,
    /// When it started.
    pub started: SystemTime,
    /// When it last packed or deleted something.
    pub last_activity: Option<SystemTime>,
    /// When it stopped, if it stopped cleanly.
    pub stopped: Option<SystemTime>,
    /// Batches committed.
    pub batches: u64,
    /// Objects packed.
    pub objects_packed: u64,
    /// Uncompressed bytes packed.
    pub bytes_packed: u64,
    /// Loose copies deleted.
    pub loose_deleted: u64,
    /// Loose objects left waiting by the packer's last round when the file was written.
    pub loose_waiting: u64,
    /// The last error it met, if any.
    pub last_error: Option<String>,
    /// Whether its process is alive (Linux: `/proc/<pid>` exists and is not a zombie;
    /// elsewhere assumed alive).
    pub process_alive: bool,
}

impl PackerStatus {
    /// True if a packer is running: it did not stop and its process is alive.
    pub fn is_active(&self) -> bool {
        self.stopped.is_none() && self.process_alive
    }
}

/// Reads the status file of the automatic packer of `container`: `None` if no packer ever
/// ran there. A packer killed without stopping leaves `stopped` unset and a dead pid, so
/// [`PackerStatus::is_active`] is false.
pub fn auto_pack_status(container: &Container) -> Result<Option<PackerStatus>> {
    read_status(container.path())
}

fn read_status(dir: &Path) -> Result<Option<PackerStatus>> {
    let path = dir.join(AUTO_PACK_STATUS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let bad =
        |detail: String| Error::corrupt("packer status file", path.display().to_string(), detail);
    let fields = parse_flat_json(&text).map_err(bad)?;
    let num = |k: &str| -> Option<f64> {
        match fields.get(k) {
            Some(JsonValue::Number(n)) => Some(*n),
            _ => None,
        }
    };
    let count = |k: &str| num(k).map_or(0, |n| n as u64);
    let time =
        |k: &str| num(k).and_then(|n| Duration::try_from_secs_f64(n).ok().map(|d| UNIX_EPOCH + d));
    let pid = num("pid")
        .map(|n| n as u32)
        .ok_or_else(|| bad("no pid".into()))?;
    Ok(Some(PackerStatus {
        pid,
        started: time("started").ok_or_else(|| bad("no start time".into()))?,
        last_activity: time("last_activity"),
        stopped: time("stopped"),
        batches: count("batches"),
        objects_packed: count("objects_packed"),
        bytes_packed: count("bytes_packed"),
        loose_deleted: count("loose_deleted"),
        loose_waiting: count("loose_waiting"),
        last_error: match fields.get("last_error") {
            Some(JsonValue::String(s)) => Some(s.clone()),
            _ => None,
        },
        process_alive: process_alive(pid),
    }))
}

/// True if process `pid` runs: on Linux, `/proc/<pid>/stat` exists and does not say zombie
/// (a killed child not yet reaped); where there is no `/proc`, assumed alive.
fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self/stat").exists() {
        return true;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may contain any
        // character: take what follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_none_or(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn json_time(t: Option<SystemTime>) -> String {
    match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
        Some(d) => format!("{:.3}", d.as_secs_f64()),
        None => "null".into(),
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value of the flat JSON object of the status file.
#[derive(Debug, Clone, PartialEq)]
enum JsonValue {
    Number(f64),
    String(String),
    Other,
}

/// Parses a JSON object whose values are numbers, strings, booleans or null (the status
/// file; the crate has no JSON dependency).
fn parse_flat_json(text: &str) -> std::result::Result<HashMap<String, JsonValue>, String> {
    let mut p = JsonParser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut out = HashMap::new();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Ok(out);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = match p.peek() {
            Some(b'"') => JsonValue::String(p.string()?),
            Some(b'n') => p.word("null")?,
            Some(b't') => p.word("true")?,
            Some(b'f') => p.word("false")?,
            _ => JsonValue::Number(p.number()?),
        };
        out.insert(key, value);
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(out),
            _ => return Err(format!("expected ',' or '}}' at byte {}", p.i)),
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }
    fn ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.next() == Some(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i - 1))
        }
    }
    fn word(&mut self, w: &str) -> std::result::Result<JsonValue, String> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            self.i += w.len();
            Ok(JsonValue::Other)
        } else {
            Err(format!("unexpected value at byte {}", self.i))
        }
    }
    fn number(&mut self) -> std::result::Result<f64, String> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[start..self.i])
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| format!("bad number at byte {start}"))
    }
    fn string(&mut self) -> std::result::Result<String, String> {
        self.expect(b'"')?;
        let mut bytes = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => {
                    let c = match self.next() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.i..self.i + 4)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| format!("bad \\u escape at byte {}", self.i))?;
                            self.i += 4;
                            char::from_u32(hex).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(format!("bad escape at byte {}", self.i)),
                    };
                    let mut buf = [0u8; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                Some(c) => bytes.push(c),
            }
        }
        String::from_utf8(bytes).map_err(|_| "a string is not UTF-8".into())
    }
}
