//! `backup`: an incremental copy of a container into a local folder, safe while the container
//! is in use, in the layout of disk-objectstore's `dostore backup` (without rsync).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rsdos_core::{Error, ObjectIndex, PackId, Result, durable, is_valid_pack_name};
use rsdos_index_sqlite::SqliteIndex;

use crate::container::{Container, DEFAULT_LOCK_WAIT};
use crate::layout::{CONFIG, DUPLICATES, INDEX, LOOSE, PACKS, SANDBOX};
use crate::progress::{Progress, ProgressUnit, check_stop};
use crate::sidecar::PackToc;

/// The folder a backup is written to before it is complete.
const LIVE_FOLDER: &str = "live-backup";
/// The symlink to the newest backup.
const LAST_LINK: &str = "last-backup";
/// The container's folder inside a backup folder.
const CONTAINER_FOLDER: &str = "container";
/// Prefix of the names of complete backups: `backup_<UTC %Y%m%d%H%M%S>_<4 random [a-z0-9]>`.
const BACKUP_PREFIX: &str = "backup_";
/// Lock file in the destination, so that two backups never write there at once.
const DEST_LOCK: &str = ".rsdos-backup.lock";
/// Attempts at copying the index and packs without the maintenance lock before one with it.
const OPTIMISTIC_ATTEMPTS: usize = 3;
/// Bytes of a pack that is not a local file (object storage) read per request when it is
/// copied: large enough that a request's round trip is small next to its transfer, small
/// enough to keep the copy's memory bounded.
const REMOTE_COPY_CHUNK: usize = 4 << 20;

/// Options of [`Container::backup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Number of *previous* backups to keep besides the new one (default 1), as `dostore
    /// backup --keep`: after a successful backup the oldest are deleted so that `keep + 1`
    /// backups remain (`keep = 1` keeps two, `keep = 0` keeps only the new one).
    pub keep: usize,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions { keep: 1 }
    }
}

impl BackupOptions {
    /// Sets how many previous backups are kept besides the new one.
    pub fn with_keep(mut self, keep: usize) -> Self {
        self.keep = keep;
        self
    }
}

/// What [`Container::backup`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupReport {
    /// The new backup folder, `<dest>/backup_<timestamp>_<random>`; the container is in its
    /// subfolder `container` (see [`BackupReport::container_path`]).
    pub path: PathBuf,
    /// Files hard-linked to the previous backup (unchanged loose objects, sealed packs and
    /// their sidecars).
    pub files_linked: u64,
    /// Files copied (loose objects, packs, sidecars, the index, `config.json`, duplicates).
    pub files_copied: u64,
    /// Bytes copied (hard links copy nothing).
    pub bytes_copied: u64,
    /// Old backup folders deleted to honour [`BackupOptions::keep`].
    pub backups_removed: Vec<PathBuf>,
    /// Problems that did not make the backup fail: the `last-backup` symlink could not be
    /// updated, an old backup could not be deleted.
    pub warnings: Vec<String>,
}

impl BackupReport {
    /// The backed-up container: `path/container`, a container that rsdos and
    /// disk-objectstore open.
    pub fn container_path(&self) -> PathBuf {
        self.path.join(CONTAINER_FOLDER)
    }
}

/// Files and bytes of one step (counted into the report only when the step is kept).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    linked: u64,
    copied: u64,
    bytes: u64,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Linked => self.linked += 1,
            Outcome::Copied(n) => {
                self.copied += 1;
                self.bytes += n;
            }
            Outcome::Vanished => {}
        }
    }

    fn add_to(self, report: &mut BackupReport) {
        report.files_linked += self.linked;
        report.files_copied += self.copied;
        report.bytes_copied += self.bytes;
    }
}

/// What happened to one file.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Linked,
    Copied(u64),
    /// The source disappeared before it could be copied (a loose object packed and cleaned).
    Vanished,
}

/// Which file a path named when it was looked at: a pack that is deleted and re-created with
/// the same id (a repack, then a new pack) gets a different identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    born: SystemTime,
}

/// The identity of a file, `None` where the platform or file system cannot tell (no inode
/// numbers or no birth time): then a replaced pack could go unnoticed.
fn identity(meta: &fs::Metadata) -> Option<FileIdentity> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let born = meta.created().ok()?;
        Some(FileIdentity {
            dev: meta.dev(),
            ino: meta.ino(),
            born,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

/// Which pack an id named when it was looked at. A local pack (in the container's `packs/`,
/// including the packs a remote container is writing or has not uploaded yet) is known by its
/// file's identity. A pack in another store (object storage) has no inode: it is known by its
/// length and sidecar, which is enough because such stores never reuse a pack id while the
/// deleted pack may still be read (see `PackStore::delete`) and a sealed pack never changes,
/// so a pack replaced by a repack shows up as deleted (absent) rather than as another pack.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PackIdentity {
    File(Option<FileIdentity>),
    Stored { len: u64, sidecar: Option<Vec<u8>> },
}

/// Whether the copied index and packs belong together.
enum Verdict {
    /// Every pack the copied index points to was copied from the file it pointed to.
    Consistent,
    /// A pack changed identity or disappeared while it was copied (a repack ran).
    Changed(String),
    /// The file system cannot tell whether a pack was replaced.
    Unverifiable,
}

impl Container {
    /// Backs the container up into the local folder `dest`, incrementally, while the container
    /// may be in use, and returns what was done.
    ///
    /// # Layout
    ///
    /// As disk-objectstore's `dostore backup`: each backup is a folder
    /// `dest/backup_<UTC %Y%m%d%H%M%S>_<4 random [a-z0-9]>`, holding the container in its
    /// subfolder `container/` (the layout of aiida-core's `verdi storage backup`); a symlink
    /// `dest/last-backup` points to the newest. A backup is written into `dest/live-backup`
    /// and renamed when complete, so a killed backup leaves only `live-backup`, which the next
    /// run deletes. After the rename the oldest backups are deleted so that
    /// [`BackupOptions::keep`]` + 1` remain (dostore's rule: the default `keep = 1` keeps two).
    /// Only folders named `backup_*_*` count as backups; nothing else in `dest` is touched.
    ///
    /// # Incremental
    ///
    /// The newest previous backup (by name) is the reference. A loose object whose file exists
    /// there with the same size is hard-linked (names are content hashes, so the content is the
    /// same); a sealed pack (see [`Container::seal_pack`]) whose copy there has the same
    /// length and an identical sidecar is hard-linked with its sidecar. Everything else is
    /// copied and fsynced. Backups therefore share unchanged files: never modify the files of
    /// a backup in place (open a copy, not the backup, to write to it).
    ///
    /// # Consistency
    ///
    /// In disk-objectstore's order: (1) loose objects, (2) an online copy of `packs.idx`
    /// (SQLite `VACUUM INTO`, a consistent snapshot), (3) the packs, (4) `config.json`,
    /// `duplicates/` and an empty `sandbox/`. An object packed and cleaned during (1) is in a
    /// pack copied after its row; a pack only grows, so every row of the snapshot (2) points to
    /// bytes the packs copied in (3) contain. Loose objects written after (1) are not in the
    /// backup. A repack deletes packs the snapshot may point to: each pack's identity (device,
    /// inode, birth time) is compared before (2) and when copied, and if a pack the snapshot
    /// points to was replaced or deleted, (2) and (3) are redone, the last time holding the
    /// container's maintenance lock (waiting up to 60 s), which rsdos's repack also takes. A
    /// repack by disk-objectstore, which does not know that lock, is detected the same way and
    /// makes the backup fail with [`Error::Corrupt`] rather than write an inconsistent backup.
    ///
    /// Takes a lock file `dest/.rsdos-backup.lock` (an advisory lock released when the
    /// process dies): a second backup into the same `dest` fails with
    /// [`ErrorKind::Locked`](rsdos_core::ErrorKind::Locked).
    ///
    /// The container must keep its index in `packs.idx`; otherwise [`Error::Unsupported`].
    /// Packs that are not files of `packs/` (a remote container's uploaded packs, see
    /// `rsdos-packs.json`) are streamed from the pack store into files of the backup's
    /// `packs/`, in chunks of 4 MiB, with their sidecars: the backup is a plain local container
    /// (no `rsdos-packs.json`) that does not depend on the bucket. Such a pack is hard-linked
    /// from the previous backup under the same rule (length and sidecar). Having no inode, it
    /// is checked for replacement by its length and sidecar instead of its identity; pack
    /// stores never reuse the id of a deleted pack while it may be read, so a repack shows up
    /// as a pack that disappeared.
    ///
    /// Progress: `Backup loose objects`, then `Backup packs` (in [`ProgressUnit::Objects`],
    /// files). When `progress` asks to stop, returns [`Error::Interrupted`] and leaves
    /// `live-backup` for the next run to delete.
    pub fn backup(
        &self,
        dest: &Path,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupReport> {
        self.check_backup_supported()?;
        fs::create_dir_all(dest).map_err(|e| Error::io("create backup folder", dest, e))?;
        let _dest_lock = lock_destination(dest)?;
        let live = dest.join(LIVE_FOLDER);
        remove_leftover(&live)?;
        let previous = previous_backup(dest)?;
        let live_container = live.join(CONTAINER_FOLDER);
        for dir in [
            live.clone(),
            live_container.clone(),
            live_container.join(LOOSE),
            live_container.join(PACKS),
            live_container.join(SANDBOX),
            live_container.join(DUPLICATES),
        ] {
            fs::create_dir(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        }

        let mut report = BackupReport::default();
        self.backup_loose(&live_container, previous.as_deref(), progress)?
            .add_to(&mut report);
        self.backup_index_and_packs(&live_container, previous.as_deref(), progress)?
            .add_to(&mut report);
        self.backup_rest(&live_container)?.add_to(&mut report);
        for dir in [
            live_container.join(PACKS),
            live_container.join(SANDBOX),
            live_container.join(DUPLICATES),
            live_container.clone(),
            live.clone(),
        ] {
            durable::fsync_dir(&dir)?;
        }

        // Complete: give it its final name.
        let name = loop {
            let name = backup_name(SystemTime::now());
            if fs::symlink_metadata(dest.join(&name)).is_err() {
                break name;
            }
        };
        let final_path = dest.join(&name);
        fs::rename(&live, &final_path)
            .map_err(|e| Error::io("rename the finished backup to", &final_path, e))?;
        durable::fsync_dir(dest)?;
        report.path = final_path;
        if let Err(e) = update_last_link(dest, &name) {
            report.warnings.push(format!(
                "cannot point {} to {name}: {e}",
                dest.join(LAST_LINK).display()
            ));
        }
        remove_old_backups(dest, &name, options.keep, &mut report)?;
        Ok(report)
    }

    /// Refuses containers whose index is not the SQLite file of the container folder (packs
    /// may be anywhere: those that are not local files are read through the pack store).
    fn check_backup_supported(&self) -> Result<()> {
        let index = self.path().join(INDEX);
        if !index.is_file() {
            return Err(Error::Unsupported(format!(
                "backup needs the SQLite index {} in the container folder",
                index.display()
            )));
        }
        Ok(())
    }

    /// Step 1: every loose object, hard-linked to the previous backup when it is there with
    /// the same size, else copied.
    fn backup_loose(
        &self,
        live: &Path,
        previous: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<Counts> {
        let loose_root = self.path().join(LOOSE);
        let mut files: Vec<PathBuf> = Vec::new();
        self.loose_store().for_each(|_, entry| {
            if let Ok(rel) = entry.path().strip_prefix(&loose_root) {
                files.push(rel.to_path_buf());
            }
            Ok(())
        })?;
        let dst_root = live.join(LOOSE);
        let prev_root = previous.map(|p| p.join(LOOSE));
        let mut counts = Counts::default();
        let mut shards: HashSet<PathBuf> = HashSet::new();
        progress.start(
            "Backup loose objects",
            files.len() as u64,
            ProgressUnit::Objects,
        );
        for rel in &files {
            check_stop(progress)?;
            let dst = dst_root.join(rel);
            if let Some(parent) = dst.parent()
                && parent != dst_root
                && !shards.contains(parent)
            {
                fs::create_dir_all(parent).map_err(|e| Error::io("create folder", parent, e))?;
                shards.insert(parent.to_path_buf());
            }
            let src = loose_root.join(rel);
            let prev = prev_root.as_ref().map(|p| p.join(rel));
            counts.add(link_or_copy_loose(&src, &dst, prev.as_deref())?);
            progress.advance(1);
        }
        for shard in &shards {
            durable::fsync_dir(shard)?;
        }
        durable::fsync_dir(&dst_root)?;
        progress.finish();
        Ok(counts)
    }

    /// Steps 2 and 3, redone until the copied index and packs belong together (see
    /// [`Container::backup`]).
    fn backup_index_and_packs(
        &self,
        live: &Path,
        previous: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<Counts> {
        let mut last_change = String::new();
        let mut attempt = 0;
        loop {
            let locked = attempt >= OPTIMISTIC_ATTEMPTS;
            let _lock = if locked {
                Some(self.lock_maintenance(Some(DEFAULT_LOCK_WAIT))?)
            } else {
                None
            };
            if attempt > 0 {
                clear_index_and_packs(live)?;
            }
            let (counts, verdict) = self.copy_index_and_packs(live, previous, progress)?;
            match verdict {
                Verdict::Consistent => return Ok(counts),
                // Under the lock no rsdos repack can run: trust the copy.
                Verdict::Unverifiable if locked => return Ok(counts),
                Verdict::Unverifiable => attempt = OPTIMISTIC_ATTEMPTS,
                Verdict::Changed(what) if locked => {
                    return Err(Error::corrupt(
                        "backup",
                        live.display().to_string(),
                        format!(
                            "the packs kept changing while they were copied, even while holding \
                             the maintenance lock ({what}; earlier: {last_change}); is \
                             disk-objectstore repacking the container? Run the backup again \
                             when it has finished"
                        ),
                    ));
                }
                Verdict::Changed(what) => {
                    last_change = what;
                    attempt += 1;
                }
            }
        }
    }

    /// One attempt at steps 2 and 3, and the check of their consistency.
    fn copy_index_and_packs(
        &self,
        live: &Path,
        previous: Option<&Path>,
        progress: &dyn Progress,
    ) -> Result<(Counts, Verdict)> {
        let packs_dir = self.path().join(PACKS);
        let mut counts = Counts::default();

        // (2) The index, after noting which file each pack is.
        let before = self.all_pack_identities(&packs_dir)?;
        let index_dst = live.join(INDEX);
        SqliteIndex::open(&self.path().join(INDEX))?.backup_to(&index_dst)?;
        let referenced = {
            let copy = SqliteIndex::open(&index_dst)?;
            copy.pack_ids()?
        };
        counts.add(Outcome::Copied(fsync_file(&index_dst)?));

        // (3) The packs: the local files, and those the store keeps elsewhere (a remote
        // container's uploaded packs), which become files of the backup so that it is a plain
        // local container that does not depend on the bucket.
        let mut ids: Vec<PackId> = list_pack_ids(&packs_dir)?;
        ids.extend(self.packs().list()?);
        ids.sort_unstable();
        ids.dedup();
        let dst_dir = live.join(PACKS);
        let prev_dir = previous.map(|p| p.join(PACKS));
        let mut copied: HashMap<PackId, PackIdentity> = HashMap::new();
        progress.start("Backup packs", ids.len() as u64, ProgressUnit::Objects);
        for id in ids {
            check_stop(progress)?;
            let name = id.to_string();
            let toc_name = format!("{id}.toc");
            let src = packs_dir.join(&name);
            let src_toc = packs_dir.join(&toc_name);
            let dst = dst_dir.join(&name);
            let dst_toc = dst_dir.join(&toc_name);
            let mut done = false;
            let sealed = self.packs().is_sealed(id)?;
            if let Some(prev_dir) = &prev_dir
                && sealed
                && let Some(ident) = link_local_sealed_pack(
                    &src,
                    &src_toc,
                    &prev_dir.join(&name),
                    &prev_dir.join(&toc_name),
                    &dst,
                )?
            {
                counts.add(Outcome::Linked);
                counts.add(link_or_copy_exact(&prev_dir.join(&toc_name), &dst_toc)?);
                copied.insert(id, PackIdentity::File(ident));
                done = true;
            }
            if !done && let Some((n, ident)) = copy_file(&src, &dst)? {
                counts.add(Outcome::Copied(n));
                copied.insert(id, PackIdentity::File(ident));
                if let Some((n, _)) = copy_file(&src_toc, &dst_toc)? {
                    counts.add(Outcome::Copied(n));
                }
                done = true;
            }
            // Not a local file (or no longer: a staged pack uploaded meanwhile): read it from
            // the store. An absent pack is left out, and the check below notices if the copied
            // index points to it.
            if !done && let Some(len) = self.packs().len(id)? {
                let sidecar = if sealed || self.packs().is_sealed(id)? {
                    self.packs().sidecar(id)?
                } else {
                    None
                };
                let linked = match &prev_dir {
                    Some(prev_dir) if sidecar.is_some() => link_sealed_pack(
                        len,
                        sidecar.as_deref(),
                        &prev_dir.join(&name),
                        &prev_dir.join(&toc_name),
                        &dst,
                    )?,
                    _ => false,
                };
                let copied_pack = if linked {
                    counts.add(Outcome::Linked);
                    if let Some(prev_dir) = &prev_dir {
                        counts.add(link_or_copy_exact(&prev_dir.join(&toc_name), &dst_toc)?);
                    }
                    true
                } else if self.copy_stored_pack(id, len, sidecar.as_deref(), &dst)? {
                    counts.add(Outcome::Copied(len));
                    if let Some(toc) = &sidecar {
                        write_new_file(&dst_toc, toc)?;
                        counts.add(Outcome::Copied(toc.len() as u64));
                    }
                    true
                } else {
                    false
                };
                if copied_pack {
                    copied.insert(id, PackIdentity::Stored { len, sidecar });
                }
            }
            progress.advance(1);
        }
        progress.finish();

        let mut unverifiable = false;
        for id in referenced {
            let Some(now) = copied.get(&id) else {
                return Ok((
                    counts,
                    Verdict::Changed(format!("pack {id} disappeared before it was copied")),
                ));
            };
            let replaced = match (before.get(&id), now) {
                (None, _) => {
                    return Ok((
                        counts,
                        Verdict::Changed(format!("pack {id} appeared while the index was copied")),
                    ));
                }
                (Some(PackIdentity::File(Some(a))), PackIdentity::File(Some(b))) => a != b,
                (Some(PackIdentity::File(_)), PackIdentity::File(_)) => {
                    unverifiable = true;
                    false
                }
                (Some(a @ PackIdentity::Stored { .. }), b @ PackIdentity::Stored { .. }) => a != b,
                // A staged pack was uploaded (and its local copy removed) in between: the
                // upload is of the sealed file, whose content only grew since the index was
                // copied, and the id is not reused, so the copy holds every row's bytes.
                (Some(PackIdentity::File(_)), PackIdentity::Stored { .. }) => false,
                (Some(PackIdentity::Stored { .. }), PackIdentity::File(_)) => true,
            };
            if replaced {
                return Ok((
                    counts,
                    Verdict::Changed(format!("pack {id} was replaced while it was copied")),
                ));
            }
        }
        let verdict = if unverifiable {
            Verdict::Unverifiable
        } else {
            Verdict::Consistent
        };
        Ok((counts, verdict))
    }

    /// The identity of every pack: the files in `packs_dir`, then the packs the store keeps
    /// elsewhere (absent packs are left out).
    fn all_pack_identities(&self, packs_dir: &Path) -> Result<BTreeMap<PackId, PackIdentity>> {
        let mut out: BTreeMap<PackId, PackIdentity> = pack_identities(packs_dir)?
            .into_iter()
            .map(|(id, ident)| (id, PackIdentity::File(ident)))
            .collect();
        for id in self.packs().list()? {
            if out.contains_key(&id) {
                continue;
            }
            let Some(len) = self.packs().len(id)? else {
                continue;
            };
            let sidecar = self.packs().sidecar(id)?;
            out.insert(id, PackIdentity::Stored { len, sidecar });
        }
        Ok(out)
    }

    /// Copies the first `len` bytes of a pack of the store (not a local file) to the new file
    /// `dst`, in chunks of [`REMOTE_COPY_CHUNK`] through one handle (which keeps reading the
    /// same pack if it is deleted meanwhile), via a temporary name so that `dst` only ever
    /// holds a complete, fsynced copy. Returns false if the pack no longer exists.
    ///
    /// With the pack's `sidecar`, every object it lists is checked against the copy (CRC32C,
    /// read back from the page cache) before the copy is kept: bytes that went wrong on the
    /// way from the store stop the backup with a `Corrupt` error instead of landing in it.
    fn copy_stored_pack(
        &self,
        id: PackId,
        len: u64,
        sidecar: Option<&[u8]>,
        dst: &Path,
    ) -> Result<bool> {
        // A sidecar that cannot be decoded cannot vouch for the bytes: the copy is then kept
        // unchecked, as that of a pack without a sidecar (validate of the backup checks it).
        let toc = sidecar.and_then(|bytes| PackToc::decode(id, bytes).ok());
        match self.copy_stored_pack_once(id, len, toc.as_ref(), dst) {
            // Fetched once more before giving up: the bytes may have been damaged on the way.
            Err(e) if e.kind() == rsdos_core::ErrorKind::Corrupt && toc.is_some() => {
                self.copy_stored_pack_once(id, len, toc.as_ref(), dst)
            }
            other => other,
        }
    }

    fn copy_stored_pack_once(
        &self,
        id: PackId,
        len: u64,
        toc: Option<&PackToc>,
        dst: &Path,
    ) -> Result<bool> {
        use std::io::Write;
        let handle = match self.packs().open_pack(id) {
            Ok(h) => h,
            Err(e) if e.kind() == rsdos_core::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let file_name = dst
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dst.with_file_name(format!(".{file_name}.part"));
        // A leftover of a failed attempt (or of a killed backup) is replaced.
        let _ = fs::remove_file(&tmp);
        let mut output = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        let chunk = usize::try_from(len).map_or(REMOTE_COPY_CHUNK, |l| l.min(REMOTE_COPY_CHUNK));
        let mut buf = vec![0u8; chunk];
        let mut offset = 0u64;
        while offset < len {
            let n = usize::try_from(len - offset).map_or(chunk, |left| left.min(chunk));
            handle.read_at(offset, &mut buf[..n])?;
            output
                .write_all(&buf[..n])
                .map_err(|e| Error::io("write", &tmp, e))?;
            offset += n as u64;
        }
        if let Some(toc) = toc {
            use std::os::unix::fs::FileExt;
            let copy = fs::File::open(&tmp).map_err(|e| Error::io("open", &tmp, e))?;
            let checked = crate::sidecar::verify_copy(id, toc, len, |pos, buf| {
                copy.read_exact_at(buf, pos)
                    .map_err(|e| Error::io("read", &tmp, e))
            });
            if let Err(e) = checked {
                drop(output);
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
        output.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
        drop(output);
        fs::rename(&tmp, dst).map_err(|e| Error::io("rename to", dst, e))?;
        Ok(true)
    }

    /// Step 4: `config.json` and the contents of `duplicates/` (`sandbox/` stays empty).
    fn backup_rest(&self, live: &Path) -> Result<Counts> {
        let mut counts = Counts::default();
        let config = self.path().join(CONFIG);
        match copy_file(&config, &live.join(CONFIG))? {
            Some((n, _)) => counts.add(Outcome::Copied(n)),
            None => {
                return Err(Error::NotInitialised {
                    path: self.path().to_path_buf(),
                    detail: "config.json disappeared during the backup".into(),
                });
            }
        }
        let dup_dir = self.path().join(DUPLICATES);
        let entries = match fs::read_dir(&dup_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(counts),
            Err(e) => return Err(Error::io("list", &dup_dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &dup_dir, e))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let dst = live.join(DUPLICATES).join(entry.file_name());
                if let Some((n, _)) = copy_file(&entry.path(), &dst)? {
                    counts.add(Outcome::Copied(n));
                }
            }
        }
        Ok(counts)
    }
}

/// Takes the advisory lock of the destination folder (failing at once if held).
fn lock_destination(dest: &Path) -> Result<File> {
    let path = dest.join(DEST_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::io("open backup lock", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            what: format!("backup destination {}", dest.display()),
            holder: None,
            hint: "another backup into this folder is running; retry when it has finished".into(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("lock", &path, e)),
    }
}

/// Deletes what a killed backup left behind.
fn remove_leftover(live: &Path) -> Result<()> {
    match fs::symlink_metadata(live) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("examine", live, e)),
        Ok(m) if m.is_dir() => {
            fs::remove_dir_all(live).map_err(|e| Error::io("delete the unfinished backup", live, e))
        }
        Ok(_) => fs::remove_file(live).map_err(|e| Error::io("delete", live, e)),
    }
}

/// True for the name of a complete backup folder (dostore's `find -name 'backup_*_*'`).
fn is_backup_name(name: &str) -> bool {
    name.strip_prefix(BACKUP_PREFIX)
        .is_some_and(|rest| rest.contains('_'))
}

/// Names of the complete backup folders in `dest` (real folders, not symlinks), ascending,
/// which is oldest first.
fn backup_folders(dest: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dest).map_err(|e| Error::io("list", dest, e))? {
        let entry = entry.map_err(|e| Error::io("list", dest, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if is_backup_name(&name) && entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// The container folder of the newest backup, to hard-link unchanged files from: its
/// `container/` subfolder, or the backup folder itself for a backup made by `dostore
/// backup` (which puts the container there).
fn previous_backup(dest: &Path) -> Result<Option<PathBuf>> {
    let Some(last) = backup_folders(dest)?.pop() else {
        return Ok(None);
    };
    let folder = dest.join(last);
    let inner = folder.join(CONTAINER_FOLDER);
    if inner.join(LOOSE).is_dir() || inner.join(PACKS).is_dir() {
        Ok(Some(inner))
    } else if folder.join(LOOSE).is_dir() || folder.join(PACKS).is_dir() {
        Ok(Some(folder))
    } else {
        Ok(None)
    }
}

/// Removes the index and packs of a failed attempt.
fn clear_index_and_packs(live: &Path) -> Result<()> {
    for name in [
        INDEX.to_string(),
        format!("{INDEX}-wal"),
        format!("{INDEX}-shm"),
    ] {
        let path = live.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("delete", &path, e)),
        }
    }
    let packs = live.join(PACKS);
    fs::remove_dir_all(&packs).map_err(|e| Error::io("delete", &packs, e))?;
    fs::create_dir(&packs).map_err(|e| Error::io("create folder", &packs, e))
}

/// Ids of the pack files in `dir`, ascending.
fn list_pack_ids(dir: &Path) -> Result<Vec<PackId>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if let Some(name) = entry.file_name().to_str()
            && is_valid_pack_name(name)
            && let Ok(id) = name.parse::<PackId>()
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The identity of every pack file in `dir` (packs deleted meanwhile are left out).
fn pack_identities(dir: &Path) -> Result<BTreeMap<PackId, Option<FileIdentity>>> {
    let mut out = BTreeMap::new();
    for id in list_pack_ids(dir)? {
        let path = dir.join(id.to_string());
        match fs::metadata(&path) {
            Ok(m) => {
                out.insert(id, identity(&m));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("examine", &path, e)),
        }
    }
    Ok(out)
}

/// Hard-links a loose object from the previous backup when it is there with the same size,
/// else copies it.
fn link_or_copy_loose(src: &Path, dst: &Path, prev: Option<&Path>) -> Result<Outcome> {
    let size = match fs::metadata(src) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::Vanished),
        Err(e) => return Err(Error::io("examine", src, e)),
    };
    if let Some(prev) = prev
        && fs::symlink_metadata(prev).is_ok_and(|m| m.is_file() && m.len() == size)
        && fs::hard_link(prev, dst).is_ok()
    {
        return Ok(Outcome::Linked);
    }
    Ok(match copy_file(src, dst)? {
        Some((n, _)) => Outcome::Copied(n),
        None => Outcome::Vanished,
    })
}

/// Hard-links a file of the previous backup known to be identical (a sidecar), or copies it
/// if the link fails (another file system, too many links).
fn link_or_copy_exact(src: &Path, dst: &Path) -> Result<Outcome> {
    if fs::hard_link(src, dst).is_ok() {
        return Ok(Outcome::Linked);
    }
    Ok(match copy_file(src, dst)? {
        Some((n, _)) => Outcome::Copied(n),
        None => Outcome::Vanished,
    })
}

/// Hard-links a sealed local pack from the previous backup when it may (see
/// [`link_sealed_pack`]). Returns the identity of the live pack, or `None` when it could not be
/// linked.
fn link_local_sealed_pack(
    src: &Path,
    src_toc: &Path,
    prev: &Path,
    prev_toc: &Path,
    dst: &Path,
) -> Result<Option<Option<FileIdentity>>> {
    let live_meta = match fs::metadata(src) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("examine", src, e)),
    };
    let live_toc = read_optional(src_toc)?;
    if !link_sealed_pack(live_meta.len(), live_toc.as_deref(), prev, prev_toc, dst)? {
        return Ok(None);
    }
    // The live pack's identity lets the caller check that it was not replaced (by a repack)
    // since the index was copied: then the rows of the copied index describe this content.
    Ok(Some(identity(&live_meta)))
}

/// Hard-links the previous backup's copy of a sealed pack to `dst` when it has the live pack's
/// length `live_len` and a sidecar identical to `live_toc` (which holds a CRC32C of every
/// object, so the same content); the live pack may be a local file or in object storage.
/// Returns whether it linked.
fn link_sealed_pack(
    live_len: u64,
    live_toc: Option<&[u8]>,
    prev: &Path,
    prev_toc: &Path,
    dst: &Path,
) -> Result<bool> {
    if !fs::symlink_metadata(prev).is_ok_and(|m| m.is_file() && m.len() == live_len) {
        return Ok(false);
    }
    let (Some(live_toc), Some(old_toc)) = (live_toc, read_optional(prev_toc)?) else {
        return Ok(false);
    };
    if live_toc != old_toc.as_slice() {
        return Ok(false);
    }
    Ok(fs::hard_link(prev, dst).is_ok())
}

/// Writes `data` to the new file `dst` and fsyncs it.
fn write_new_file(dst: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    output
        .write_all(data)
        .map_err(|e| Error::io("write", dst, e))?;
    output.sync_all().map_err(|e| Error::io("fsync", dst, e))
}

/// The contents of a small file, `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Copies `src` to the new file `dst` and fsyncs it; returns the bytes copied and the identity
/// of the file read, or `None` if `src` does not exist.
fn copy_file(src: &Path, dst: &Path) -> Result<Option<(u64, Option<FileIdentity>)>> {
    let mut input = match File::open(src) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", src, e)),
    };
    let ident = input.metadata().map_err(|e| Error::io("examine", src, e))?;
    let ident = identity(&ident);
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dst)
        .map_err(|e| Error::io("create", dst, e))?;
    let n = std::io::copy(&mut input, &mut output).map_err(|e| {
        Error::io(
            "copy",
            PathBuf::from(format!("{} to {}", src.display(), dst.display())),
            e,
        )
    })?;
    output.sync_all().map_err(|e| Error::io("fsync", dst, e))?;
    Ok(Some((n, ident)))
}

/// fsyncs a file written by someone else (SQLite's `VACUUM INTO` does not); returns its length.
fn fsync_file(path: &Path) -> Result<u64> {
    let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
    f.sync_all().map_err(|e| Error::io("fsync", path, e))?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("examine", path, e))?
        .len();
    Ok(len)
}

/// Points `dest/last-backup` to `name`, atomically (a new symlink renamed over the old one).
fn update_last_link(dest: &Path, name: &str) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let tmp = dest.join(format!(".{LAST_LINK}.{}", random_suffix(8)));
        std::os::unix::fs::symlink(name, &tmp)?;
        if let Err(e) = fs::rename(&tmp, dest.join(LAST_LINK)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (dest, name);
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "symlinks are only made on Unix",
        ))
    }
}

/// Deletes the oldest backups so that `keep` remain besides the new one, `new`.
fn remove_old_backups(
    dest: &Path,
    new: &str,
    keep: usize,
    report: &mut BackupReport,
) -> Result<()> {
    let others: Vec<String> = backup_folders(dest)?
        .into_iter()
        .filter(|n| n != new)
        .collect();
    let excess = others.len().saturating_sub(keep);
    for name in &others[..excess] {
        let path = dest.join(name);
        match fs::remove_dir_all(&path) {
            Ok(()) => report.backups_removed.push(path),
            Err(e) => report.warnings.push(format!(
                "cannot delete the old backup {}: {e}",
                path.display()
            )),
        }
    }
    Ok(())
}

/// `backup_<UTC %Y%m%d%H%M%S>_<4 random [a-z0-9]>`.
fn backup_name(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!(
        "{BACKUP_PREFIX}{}_{}",
        utc_timestamp(secs),
        random_suffix(4)
    )
}

/// `n` random characters of `[a-z0-9]`.
fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().as_bytes() {
            // 252 = 7 * 36: no bias.
            if *b < 252 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
            }
        }
    }
    out
}

/// Seconds since the Unix epoch as UTC `%Y%m%d%H%M%S`.
fn utc_timestamp(secs: u64) -> String {
    let t = rsdos_core::UtcTime::from_unix(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps() {
        assert_eq!(utc_timestamp(0), "19700101000000");
        assert_eq!(utc_timestamp(951_782_400), "20000229000000");
        assert_eq!(utc_timestamp(951_868_799), "20000229235959");
        assert_eq!(utc_timestamp(1_700_000_000), "20231114221320");
        assert_eq!(utc_timestamp(4_107_542_400), "21000301000000");
        assert_eq!(utc_timestamp(1_709_251_199), "20240229235959");
    }

    #[test]
    fn names() {
        let name = backup_name(SystemTime::now());
        assert!(is_backup_name(&name), "{name}");
        assert_eq!(name.len(), "backup_20240101000000_abcd".len());
        let suffix = &name[name.len() - 4..];
        assert!(
            suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        );
        assert!(!is_backup_name("backup_x"));
        assert!(!is_backup_name("live-backup"));
        assert!(is_backup_name("backup_1_2"));
    }
}
