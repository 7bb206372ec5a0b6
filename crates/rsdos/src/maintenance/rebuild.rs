//! `rebuild-index`: recreates a lost or corrupt `packs.idx` from the sidecars of the packs.
//!
//! The new index is written to `packs.idx.rebuild` next to the old one, then renamed over it;
//! until the rename the old index is untouched, and an interrupted rebuild leaves only a
//! stale `packs.idx.rebuild` that the next rebuild removes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rsdos_core::{
    ContainerConfig, Error, ErrorKind, HashType, ObjectIndex, ObjectIndexExt, PackId, PackStore,
    PackedEntry, PackedLocation, Result, durable,
};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_local::LocalPackStore;

use crate::container::Container;
use crate::layout::Layout;
use crate::lock::MaintenanceLock;
use crate::options::OpenOptions;
use crate::progress::{Progress, ProgressUnit, check_stop};
use crate::remote::PacksLocation;
use crate::sidecar::{PackScanner, PackToc, RebuildReport, read_toc};

/// How long a rebuild waits for the maintenance lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);
/// Rows of the old index read per query when carrying them over.
const PAGE: usize = 10_000;

impl Container {
    /// Recreates `packs.idx` from the sidecars of the packs (see [`RebuildReport`] for what
    /// ends up in it), and replaces the current index with it.
    ///
    /// Takes the maintenance lock (waiting up to 60 s). Every pack listed by the pack store
    /// is visited in ascending order: a pack with a usable sidecar (one that decodes, has the
    /// container's hash type and a pack length no larger than the pack) contributes its
    /// entries, each verified against its CRC32C (mismatches are reported in
    /// [`RebuildReport::corrupt_entries`] and not indexed); the rows of each pack are
    /// inserted in one transaction. Packs without a usable sidecar (written by
    /// disk-objectstore, not sealed yet, or with a damaged sidecar) are reported in
    /// [`RebuildReport::undescribed_packs`]; no rows are invented for them, but their rows in
    /// the current index, which this container can still read, are carried over. Loose
    /// objects need no index.
    ///
    /// The rebuilt index is always the SQLite `packs.idx` of the container folder, whatever
    /// index this container was opened with. A sidecar records the rows of its pack when it
    /// was sealed: objects deleted from a sealed pack afterwards are indexed again.
    ///
    /// Progress: one phase, "Rebuilding index", one unit per pack. When asked to stop, the
    /// rebuild returns [`Error::Interrupted`] and leaves the current index untouched.
    ///
    /// **Reopen the container afterwards.** The current index stays open in this container
    /// (and in every clone of it) on the replaced file: until reopened, it reads the old rows
    /// and its writes are lost. No other process should use the container while the index is
    /// replaced, for the same reason.
    pub fn rebuild_index(&self, progress: &dyn Progress) -> Result<RebuildReport> {
        let _lock = self.lock_maintenance(Some(LOCK_WAIT))?;
        let layout = Layout::new(self.path());
        let (report, tmp) = build(
            &layout,
            self.config().hash_type,
            self.packs(),
            Some(self.index()),
            progress,
        )?;
        install(&layout, &tmp)?;
        Ok(report)
    }

    /// Recreates `packs.idx` of the container in `path` without opening it as a [`Container`]
    /// (which fails when `packs.idx` is corrupt): reads `config.json`, uses the container's
    /// packs (the local pack folder, or for a container with remote packs the object storage
    /// of `rsdos-packs.json`, with the stored options and the service's environment
    /// credentials), and otherwise does what [`Container::rebuild_index`] does. The rows of packs
    /// without a usable sidecar are carried over from the old `packs.idx` only if it can
    /// still be opened and read.
    ///
    /// Open the container after this returns; no other process should use it meanwhile.
    pub fn rebuild_index_at(path: &Path, progress: &dyn Progress) -> Result<RebuildReport> {
        Self::rebuild_index_at_with(path, &OpenOptions::default(), progress)
    }

    /// [`rebuild_index_at`](Self::rebuild_index_at) with the options of an open: the remote
    /// pack storage's options given at open time (credentials not stored at init) and the
    /// bound on open pack files.
    pub fn rebuild_index_at_with(
        path: &Path,
        options: &OpenOptions,
        progress: &dyn Progress,
    ) -> Result<RebuildReport> {
        let layout = Layout::new(path);
        if !layout.config().is_file() {
            return Err(Error::NotInitialised {
                path: path.to_path_buf(),
                detail: "there is no config.json".into(),
            });
        }
        let config = ContainerConfig::read(&layout.config())?;
        if !layout.packs().is_dir() {
            return Err(Error::NotInitialised {
                path: path.to_path_buf(),
                detail: "missing folder(s): packs".into(),
            });
        }
        let _lock = MaintenanceLock::acquire(&layout.maintenance_lock(), Some(LOCK_WAIT))?;
        let packs: Arc<dyn PackStore> = match PacksLocation::read(path)? {
            Some(location) => {
                location
                    .open_store(&layout.packs(), &options.packs_options)?
                    .packs
            }
            None => Arc::new(LocalPackStore::new(&layout.packs(), options.max_open_packs)),
        };
        // The old index, if it still opens, only serves to carry over rows no sidecar has.
        let old = SqliteIndex::open(&layout.index()).ok();
        let built = build(
            &layout,
            config.hash_type,
            packs.as_ref(),
            old.as_ref().map(|i| i as &dyn ObjectIndex),
            progress,
        );
        // Close the old index (checkpointing its log into the old file) before replacing it.
        drop(old);
        let (report, tmp) = built?;
        install(&layout, &tmp)?;
        Ok(report)
    }
}

/// Writes the new index to `packs.idx.rebuild`, closed and with no write-ahead log left, and
/// returns it with the report. On error nothing is left behind.
pub(crate) fn build(
    layout: &Layout,
    hash_type: HashType,
    packs: &dyn PackStore,
    old: Option<&dyn ObjectIndex>,
    progress: &dyn Progress,
) -> Result<(RebuildReport, PathBuf)> {
    let tmp = rebuild_path(layout);
    // A rebuild interrupted by a crash leaves its file; we hold the lock, so it is stale.
    remove_db_files(&tmp)?;
    let result = (|| {
        let index = SqliteIndex::create(&tmp)?;
        let report = fill(&index, hash_type, packs, old, progress)?;
        // Closing the last connection checkpoints the log into the file and removes it.
        drop(index);
        settle(&tmp)?;
        Ok(report)
    })();
    match result {
        Ok(report) => Ok((report, tmp)),
        Err(e) => {
            let _ = remove_db_files(&tmp);
            Err(e)
        }
    }
}

/// Inserts the rows of every pack into `index`, one transaction per pack.
fn fill(
    index: &SqliteIndex,
    hash_type: HashType,
    packs: &dyn PackStore,
    old: Option<&dyn ObjectIndex>,
    progress: &dyn Progress,
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let ids = packs.list()?;
    progress.start("Rebuilding index", ids.len() as u64, ProgressUnit::Objects);
    for pack_id in ids {
        check_stop(progress)?;
        let Some(pack_len) = packs.len(pack_id)? else {
            // Deleted since it was listed: nothing to index.
            progress.advance(1);
            continue;
        };
        let toc = usable_toc(packs, pack_id, pack_len, hash_type, &mut report)?;
        let mut rows = Vec::new();
        // Bytes of the pack that the sidecar describes; rows past them come from the old index.
        let described = match toc {
            Some(toc) => {
                let described = toc.pack_length;
                verified_rows(packs, pack_id, toc, &mut rows, &mut report)?;
                report.packs_rebuilt += 1;
                described
            }
            None => {
                report.undescribed_packs.push(pack_id);
                0
            }
        };
        if described < pack_len
            && let Some(old) = old
        {
            match old_rows(old, pack_id, described, pack_len) {
                Ok(carried) => {
                    report.carried_over_objects += carried.len() as u64;
                    rows.extend(carried);
                }
                Err(e) => report.sidecar_problems.push((
                    pack_id,
                    format!("could not carry over the rows of the old index: {e}"),
                )),
            }
        }
        report.objects_indexed += index.insert(&rows)?;
        progress.advance(1);
    }
    progress.finish();
    Ok(report)
}

/// The sidecar of a pack if it can be used; a problem with it is noted in the report.
pub(crate) fn usable_toc(
    packs: &dyn PackStore,
    pack_id: PackId,
    pack_len: u64,
    hash_type: HashType,
    report: &mut RebuildReport,
) -> Result<Option<PackToc>> {
    match read_toc(packs, pack_id, hash_type) {
        Ok(Some(toc)) if toc.pack_length <= pack_len => {
            if toc.pack_length < pack_len {
                report.sidecar_problems.push((
                    pack_id,
                    format!(
                        "the pack grew after it was sealed: bytes {}..{pack_len} are not \
                         described by its sidecar",
                        toc.pack_length
                    ),
                ));
            }
            Ok(Some(toc))
        }
        Ok(Some(toc)) => {
            report.sidecar_problems.push((
                pack_id,
                format!(
                    "the sidecar describes {} bytes but the pack has only {pack_len} \
                     (truncated pack?); sidecar ignored",
                    toc.pack_length
                ),
            ));
            Ok(None)
        }
        Ok(None) => Ok(None),
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            report
                .sidecar_problems
                .push((pack_id, format!("sidecar ignored: {e}")));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Appends to `rows` the entries of `toc` whose stored bytes match their CRC32C, reading the
/// pack once in offset order; the others go to `report.corrupt_entries`.
pub(crate) fn verified_rows(
    packs: &dyn PackStore,
    pack_id: PackId,
    toc: PackToc,
    rows: &mut Vec<PackedEntry>,
    report: &mut RebuildReport,
) -> Result<()> {
    let mut scanner = PackScanner::new(packs, pack_id, toc.pack_length);
    rows.reserve(toc.entries.len());
    for entry in toc.entries {
        let intact = match scanner.crc_of(entry.offset, entry.length) {
            Ok(crc) => crc == entry.crc32c,
            // The pack shrank while we read it.
            Err(e) if e.kind() == ErrorKind::Corrupt => false,
            Err(e) => return Err(e),
        };
        if !intact {
            report.corrupt_entries.push((pack_id, entry.offset));
            continue;
        }
        rows.push(PackedEntry {
            hashkey: entry.hashkey,
            location: PackedLocation {
                pack_id,
                offset: entry.offset,
                length: entry.length,
                size: entry.size,
                compressed: entry.compressed,
            },
        });
    }
    Ok(())
}

/// The rows of the old index for pack `pack_id` that start at or after `from` and end within
/// the pack.
fn old_rows(
    old: &dyn ObjectIndex,
    pack_id: PackId,
    from: u64,
    pack_len: u64,
) -> Result<Vec<PackedEntry>> {
    let mut rows = Vec::new();
    for row in old.iter_pack(pack_id, PAGE) {
        let row = row?;
        let l = row.location;
        let inside = l
            .offset
            .checked_add(l.length)
            .is_some_and(|end| end <= pack_len);
        if l.offset >= from && inside {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// `packs.idx.rebuild`.
fn rebuild_path(layout: &Layout) -> PathBuf {
    with_suffix(&layout.index(), ".rebuild")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database file and its `-wal` and `-shm` (absent files are fine).
fn remove_db_files(db: &Path) -> Result<()> {
    for path in [with_suffix(db, "-wal"), with_suffix(db, "-shm"), db.into()] {
        remove_if_present(&path)?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete", path, e)),
    }
}

/// Checks that the closed new index has no write-ahead log left (its content would be lost
/// by the rename), removes its shared-memory file, and fsyncs it.
pub(crate) fn settle(db: &Path) -> Result<()> {
    let wal = with_suffix(db, "-wal");
    match std::fs::metadata(&wal) {
        Ok(m) if m.len() > 0 => {
            return Err(Error::Index {
                path: db.to_path_buf(),
                detail: format!(
                    "the rebuilt index still has a write-ahead log ({} bytes) after it was \
                     closed; the current packs.idx was left untouched",
                    m.len()
                ),
                source: "write-ahead log not checkpointed".into(),
            });
        }
        Ok(_) => remove_if_present(&wal)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("stat", &wal, e)),
    }
    remove_if_present(&with_suffix(db, "-shm"))?;
    let file = std::fs::File::open(db).map_err(|e| Error::io("open", db, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", db, e))
}

/// Replaces `packs.idx` with the rebuilt file: the old `-wal` and `-shm` go first (a log of
/// the old file must never be applied to the new one), then the rename, then the folder is
/// fsynced.
pub(crate) fn install(layout: &Layout, rebuilt: &Path) -> Result<()> {
    let index = layout.index();
    remove_if_present(&with_suffix(&index, "-wal"))?;
    remove_if_present(&with_suffix(&index, "-shm"))?;
    std::fs::rename(rebuilt, &index).map_err(|e| Error::io("rename into place", &index, e))?;
    durable::fsync_dir(&layout.root)
}
