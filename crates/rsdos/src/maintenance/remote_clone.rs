//! `rsdos clone URL DIR`: a working local container made from a remote one alone.
//!
//! The remote holds, next to the packs and their sidecars, the container's `config.json` and
//! a snapshot of its index (see `remote_sync.rs`). A clone takes the config, then the index
//! from the snapshot when it is intact (size and SHA-256 as described), drops the rows of
//! packs that are not in the remote (packs still staged at the origin, or removed by a repack
//! since), and adds the packs uploaded after the snapshot from their sidecars. Without a
//! usable snapshot the whole index is rebuilt from the sidecars. The clone's packs stay
//! remote: its `rsdos-packs.json` names the same URL.

use std::collections::BTreeSet;
use std::path::Path;

use rsdos_core::{ContainerConfig, Error, ObjectIndex, ObjectIndexExt, PackId, Result, durable};
use rsdos_index_sqlite::SqliteIndex;

use crate::container::Container;
use crate::layout::Layout;
use crate::maintenance::rebuild::{build, install, settle, usable_toc, verified_rows};
use crate::maintenance::remote_sync::{
    REMOTE_CONFIG, REMOTE_INDEX, REMOTE_SNAPSHOT_INFO, SnapshotInfo, file_digest,
};
use crate::options::OpenOptions;
use crate::progress::NoProgress;
use crate::remote::{PACKS_SETTING_FILE, PacksLocation, RemoteOptions, RemoteStore};
use crate::sidecar::RebuildReport;

/// How to clone ([`Container::clone_from_remote`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloneOptions {
    /// Service options of the remote (endpoint, region, credentials, ...), over the URL's.
    pub packs_options: RemoteOptions,
    /// Also write secret options into the clone's `rsdos-packs.json` (default false).
    pub store_credentials: bool,
}

impl CloneOptions {
    /// Sets a service option of the remote.
    pub fn with_packs_option(mut self, key: &str, value: &str) -> Self {
        self.packs_options.set(key, value);
        self
    }
    /// Writes secret options into the clone's `rsdos-packs.json` too.
    pub fn with_store_credentials(mut self, yes: bool) -> Self {
        self.store_credentials = yes;
        self
    }
}

/// What [`Container::clone_from_remote`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloneReport {
    /// True if the index started from the remote snapshot; false if it was rebuilt from the
    /// sidecars alone.
    pub from_snapshot: bool,
    /// Why the snapshot was not used (absent, incomplete, unreadable).
    pub snapshot_problem: Option<String>,
    /// Packs in the remote.
    pub packs: u64,
    /// Packs whose rows came from their sidecar (all of them without a snapshot; those
    /// uploaded after it otherwise).
    pub packs_from_sidecars: u64,
    /// Rows in the clone's index.
    pub objects: u64,
    /// Rows of the snapshot that pointed to packs not in the remote (not uploaded at the
    /// origin, or repacked since), dropped.
    pub rows_dropped: u64,
    /// Packs in the remote without a usable sidecar (their objects are not indexed).
    pub undescribed_packs: Vec<PackId>,
    /// `(pack, offset)` of sidecar entries whose bytes did not match their CRC32C.
    pub corrupt_entries: Vec<(PackId, u64)>,
    /// Sidecars that could not be used, with why.
    pub sidecar_problems: Vec<(PackId, String)>,
}

/// Name of the downloaded snapshot while the clone is made.
const CLONE_INDEX_TMP: &str = "packs.idx.clone";

impl Container {
    /// Makes a local container in `dir` (absent or empty) from the remote pack storage at
    /// `url` alone, and opens it: `config.json` from the remote, the index from the remote
    /// snapshot (`index/packs.idx`) plus the sidecars of packs uploaded after it, or from the
    /// sidecars alone when there is no usable snapshot (see [`CloneReport`]). Every sidecar
    /// used is verified against the bytes of its pack (CRC32C), which reads those packs once.
    ///
    /// The clone's packs stay in the remote (`rsdos-packs.json` names `url`); secret options
    /// are not written unless [`CloneOptions::store_credentials`]. Only one container should
    /// write to a remote: clone to recover or move a container, not to run two writers.
    ///
    /// Errors: [`Error::AlreadyExists`] if `dir` is not empty; [`Error::NotInitialised`] if
    /// the remote has no `config.json`; remote errors name the service, bucket and key. On
    /// error nothing is left in `dir`.
    pub fn clone_from_remote(
        url: &str,
        dir: &Path,
        options: &CloneOptions,
    ) -> Result<(Container, CloneReport)> {
        let layout = Layout::new(dir);
        prepare_empty_folder(dir)?;
        let result = clone_into(&layout, url, options);
        if result.is_err() {
            remove_partial(&layout);
        }
        result
    }
}

fn clone_into(
    layout: &Layout,
    url: &str,
    options: &CloneOptions,
) -> Result<(Container, CloneReport)> {
    for d in [
        layout.loose(),
        layout.packs(),
        layout.sandbox(),
        layout.duplicates(),
    ] {
        std::fs::create_dir(&d).map_err(|e| Error::io("create folder", &d, e))?;
    }
    let mut location = PacksLocation::new(url);
    for (k, v) in options.packs_options.iter() {
        location = location.with_option(k, v);
    }
    let store = location.open_store(&layout.packs(), &RemoteOptions::new())?;
    let config_bytes =
        store
            .mirror
            .get_meta(REMOTE_CONFIG)?
            .ok_or_else(|| Error::NotInitialised {
                path: location.display_url().into(),
                detail: format!(
                    "there is no {REMOTE_CONFIG} in the remote: not the packs of an rsdos \
                     container"
                ),
            })?;
    let config_text = String::from_utf8(config_bytes.clone()).map_err(|_| Error::Config {
        path: Some(store.mirror.url().into()),
        detail: "the remote config.json is not UTF-8".into(),
    })?;
    let config = ContainerConfig::from_json(&config_text)?;
    config.validate()?;

    let mut report = CloneReport::default();
    let uploaded: BTreeSet<PackId> = store.mirror.uploaded()?.into_iter().collect();
    report.packs = uploaded.len() as u64;
    match load_snapshot(layout, &store) {
        Ok((index, info)) => {
            report.from_snapshot = true;
            complete_snapshot(&index, &info, &uploaded, &store, &config, &mut report)?;
            drop(index);
            let tmp = layout.root.join(CLONE_INDEX_TMP);
            settle(&tmp)?;
            install(layout, &tmp)?;
        }
        Err(problem) => {
            remove_db(&layout.root.join(CLONE_INDEX_TMP));
            report.snapshot_problem = Some(problem);
            let (rebuilt, tmp) = build(
                layout,
                config.hash_type,
                store.packs.as_ref(),
                None,
                &NoProgress,
            )?;
            install(layout, &tmp)?;
            merge(&mut report, rebuilt);
            report.packs_from_sidecars = report.packs - report.undescribed_packs.len() as u64;
        }
    }
    location.write(&layout.root, options.store_credentials)?;
    // Last, as init does: until config.json exists the folder is not a container.
    durable::write_atomic(&layout.config(), &config_bytes)?;
    let mut open = OpenOptions::default();
    for (k, v) in options.packs_options.iter() {
        open = open.with_packs_option(k, v);
    }
    let container = Container::open_with(&layout.root, &open)?;
    report.objects = container.index().totals()?.count;
    Ok((container, report))
}

/// Downloads and checks the snapshot; `Err` says why it cannot be used.
fn load_snapshot(
    layout: &Layout,
    store: &RemoteStore,
) -> std::result::Result<(SqliteIndex, SnapshotInfo), String> {
    let info = match store.mirror.get_meta(REMOTE_SNAPSHOT_INFO) {
        Ok(Some(b)) => SnapshotInfo::from_json(&b)
            .ok_or_else(|| format!("{REMOTE_SNAPSHOT_INFO} is not a snapshot description"))?,
        Ok(None) => return Err("there is no index snapshot in the remote".into()),
        Err(e) => return Err(format!("could not read the snapshot description: {e}")),
    };
    let tmp = layout.root.join(CLONE_INDEX_TMP);
    match store.mirror.get_meta_to_file(REMOTE_INDEX, &tmp) {
        Ok(true) => {}
        Ok(false) => return Err(format!("{REMOTE_INDEX} is missing")),
        Err(e) => return Err(format!("could not download the snapshot: {e}")),
    }
    let (bytes, sha) = file_digest(&tmp).map_err(|e| e.to_string())?;
    if bytes != info.index_bytes || sha != info.index_sha256 {
        return Err(format!(
            "the snapshot ({bytes} bytes) is not the one described ({} bytes): it was \
             overwritten while being written or read",
            info.index_bytes
        ));
    }
    let index = SqliteIndex::open(&tmp).map_err(|e| format!("the snapshot does not open: {e}"))?;
    index
        .totals()
        .map_err(|e| format!("the snapshot cannot be read: {e}"))?;
    index
        .ensure_pack_offset_index()
        .map_err(|e| format!("the snapshot cannot be written: {e}"))?;
    Ok((index, info))
}

/// Drops rows of packs absent from the remote and adds the packs uploaded after the snapshot
/// from their sidecars.
fn complete_snapshot(
    index: &SqliteIndex,
    info: &SnapshotInfo,
    uploaded: &BTreeSet<PackId>,
    store: &RemoteStore,
    config: &ContainerConfig,
    report: &mut CloneReport,
) -> Result<()> {
    for pack_id in index.pack_ids()? {
        if uploaded.contains(&pack_id) {
            continue;
        }
        let keys: Vec<String> = index
            .iter_pack(pack_id, 10_000)
            .map(|r| r.map(|e| e.hashkey))
            .collect::<Result<_>>()?;
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        report.rows_dropped += index.delete(&refs)?.len() as u64;
    }
    let covered: BTreeSet<PackId> = info.packs.iter().copied().collect();
    let mut rebuilt = RebuildReport::default();
    for &pack_id in uploaded.difference(&covered) {
        let Some(len) = store.packs.len(pack_id)? else {
            continue;
        };
        match usable_toc(
            store.packs.as_ref(),
            pack_id,
            len,
            config.hash_type,
            &mut rebuilt,
        )? {
            Some(toc) => {
                let mut rows = Vec::new();
                verified_rows(store.packs.as_ref(), pack_id, toc, &mut rows, &mut rebuilt)?;
                index.insert(&rows)?;
                report.packs_from_sidecars += 1;
            }
            None => rebuilt.undescribed_packs.push(pack_id),
        }
    }
    merge(report, rebuilt);
    Ok(())
}

fn merge(report: &mut CloneReport, rebuilt: RebuildReport) {
    report.undescribed_packs.extend(rebuilt.undescribed_packs);
    report.corrupt_entries.extend(rebuilt.corrupt_entries);
    report.sidecar_problems.extend(rebuilt.sidecar_problems);
}

/// Checks that `dir` is absent or an empty folder, creating it if absent.
fn prepare_empty_folder(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::AlreadyExists {
                    path: dir.to_path_buf(),
                    detail: "the folder is not empty; a clone must be made in an empty or new \
                             folder"
                        .into(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create folder", dir, e))
        }
        Err(e) => Err(Error::io("list", dir, e)),
    }
}

/// Removes what a failed clone made in its (formerly empty) folder.
fn remove_partial(layout: &Layout) {
    for d in [
        layout.loose(),
        layout.packs(),
        layout.sandbox(),
        layout.duplicates(),
    ] {
        let _ = std::fs::remove_dir_all(d);
    }
    for f in [
        layout.config(),
        layout.root.join(PACKS_SETTING_FILE),
        layout.root.join(CLONE_INDEX_TMP),
    ] {
        let _ = std::fs::remove_file(f);
    }
    remove_db(&layout.index());
    remove_db(&layout.root.join(CLONE_INDEX_TMP));
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", ".rebuild"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}
