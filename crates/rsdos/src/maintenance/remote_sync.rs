//! Keeping a remote container's remote copy complete: sealing packs that wait for upload
//! (after a failed upload) and snapshotting the index next to the packs after each seal.
//!
//! Remote layout, under the pack URL's prefix (next to `<id>` and `<id>.toc`):
//!
//! - `config.json`: the container's `config.json`, byte for byte (uploaded at init and with
//!   every snapshot);
//! - `index/packs.idx`: an online copy of the index (SQLite `VACUUM INTO`), overwritten by each
//!   snapshot;
//! - `index/snapshot.json`: written after it, `{"format": 1, "container_id", "unix_time",
//!   "index_bytes", "index_sha256", "packs": [...]}`, where `packs` are the packs that were
//!   uploaded when the copy was taken (their rows in the copy are complete). A clone checks the
//!   index against its size and SHA-256, so a copy overwritten half-way (or a pointer from
//!   another snapshot) is detected and the clone falls back to the sidecars.
//!
//! A pack whose upload fails stays staged with its sidecar kept locally
//! (`<staging>/<id>.toc`): that marks it "sealed, waiting for upload", so writers never append
//! to it again, and [`Container::upload_pending`] (run at the start of every pack, repack and
//! automatic-pack cycle) uploads it later. Its rows are committed and point to the staged
//! file, which reads use meanwhile.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};
use std::{io::Read, path::Path, sync::Arc};

use rsdos_core::{Error, PackId, RemoteMirror, Result, durable};
use rsdos_index_sqlite::SqliteIndex;

use crate::container::Container;
use crate::layout::Layout;

/// Remote name of the container's `config.json`.
pub const REMOTE_CONFIG: &str = "config.json";
/// Remote name of the index snapshot.
pub const REMOTE_INDEX: &str = "index/packs.idx";
/// Remote name of the snapshot's description, written after the index.
pub const REMOTE_SNAPSHOT_INFO: &str = "index/snapshot.json";

/// After an automatic retry of uploads failed, the next automatic one waits this long
/// (explicit [`Container::upload_pending`] calls always try).
const AUTO_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// What a remote container keeps in memory about its remote copy.
pub(crate) struct RemoteState {
    pub(crate) mirror: Arc<dyn RemoteMirror>,
    /// The last upload or snapshot failure, cleared by the next success.
    last_error: Mutex<Option<String>>,
    /// A pack was uploaded or rows changed since the last good snapshot.
    snapshot_due: AtomicBool,
    /// No automatic retry before this instant.
    retry_not_before: Mutex<Option<Instant>>,
}

impl RemoteState {
    pub(crate) fn new(mirror: Arc<dyn RemoteMirror>) -> Self {
        RemoteState {
            mirror,
            last_error: Mutex::new(None),
            snapshot_due: AtomicBool::new(false),
            retry_not_before: Mutex::new(None),
        }
    }

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

/// Where the packs of a remote container are and what waits for upload
/// ([`Container::remote_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStatus {
    /// `scheme://bucket/prefix`, without query or credentials.
    pub url: String,
    /// Packs in the local staging folder (the one being appended to and those waiting).
    pub staged: Vec<PackId>,
    /// Staged packs that are complete and wait for upload (an upload failed).
    pub pending_upload: Vec<PackId>,
    /// The last upload or snapshot failure in this process, if the last attempt failed.
    pub last_error: Option<String>,
}

/// What [`Container::upload_pending`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadReport {
    /// Packs uploaded (and removed from the staging folder).
    pub uploaded: Vec<PackId>,
    /// Packs whose upload failed again, with the error (they stay staged).
    pub failed: Vec<(PackId, String)>,
    /// True if an index snapshot was uploaded.
    pub snapshot_taken: bool,
    /// Why the snapshot failed, if it did.
    pub snapshot_error: Option<String>,
}

/// The description of the index snapshot in the remote ([`Container::remote_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotInfo {
    /// The container the snapshot was taken of.
    pub container_id: String,
    /// When it was taken (seconds since the Unix epoch).
    pub unix_time: u64,
    /// Size of `index/packs.idx`.
    pub index_bytes: u64,
    /// SHA-256 (hex) of `index/packs.idx`.
    pub index_sha256: String,
    /// Packs uploaded when it was taken: their rows in the snapshot are complete.
    pub packs: Vec<PackId>,
}

impl SnapshotInfo {
    pub(crate) fn to_json(&self) -> String {
        serde_json::json!({
            "format": 1,
            "container_id": self.container_id,
            "unix_time": self.unix_time,
            "index_bytes": self.index_bytes,
            "index_sha256": self.index_sha256,
            "packs": self.packs,
        })
        .to_string()
    }

    /// Parses `index/snapshot.json`; `None` if it is not a usable description.
    pub(crate) fn from_json(bytes: &[u8]) -> Option<SnapshotInfo> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        if v.get("format")?.as_u64()? != 1 {
            return None;
        }
        let packs = v
            .get("packs")?
            .as_array()?
            .iter()
            .map(|p| p.as_u64())
            .collect::<Option<Vec<_>>>()?;
        Some(SnapshotInfo {
            container_id: v.get("container_id")?.as_str()?.to_string(),
            unix_time: v.get("unix_time")?.as_u64()?,
            index_bytes: v.get("index_bytes")?.as_u64()?,
            index_sha256: v.get("index_sha256")?.as_str()?.to_string(),
            packs,
        })
    }
}

/// Size and SHA-256 of a local file, streamed.
pub(crate) fn file_digest(path: &Path) -> Result<(u64, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut hasher = rsdos_core::HashType::Sha256.hasher();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, hasher.finish_hex()))
}

impl Container {
    /// The remote capability of this container's pack store, `None` if its packs are local.
    pub fn remote(&self) -> Option<&dyn RemoteMirror> {
        self.remote_state().map(|r| r.mirror.as_ref())
    }

    /// Where the packs are and what waits for upload; `None` for a container with local
    /// packs. Does no remote request.
    pub fn remote_status(&self) -> Result<Option<RemoteStatus>> {
        let Some(remote) = self.remote_state() else {
            return Ok(None);
        };
        let staged = remote.mirror.staged()?;
        let pending_upload = self.pending_uploads(remote, &staged)?;
        Ok(Some(RemoteStatus {
            url: remote.mirror.url(),
            staged,
            pending_upload,
            last_error: remote.last_error.lock().ok().and_then(|g| g.clone()),
        }))
    }

    /// The description of the last index snapshot in the remote, `None` if there is none (or
    /// the packs are local). One remote request.
    pub fn remote_snapshot(&self) -> Result<Option<SnapshotInfo>> {
        let Some(remote) = self.remote_state() else {
            return Ok(None);
        };
        Ok(remote
            .mirror
            .get_meta(REMOTE_SNAPSHOT_INFO)?
            .and_then(|b| SnapshotInfo::from_json(&b)))
    }

    /// Staged packs that are complete: marked as sealed (a local sidecar, left by a failed
    /// upload) or filled to the pack size target. The pack being appended to is neither.
    fn pending_uploads(&self, remote: &RemoteState, staged: &[PackId]) -> Result<Vec<PackId>> {
        let target = self.config().pack_size_target;
        let mut out = Vec::new();
        for &id in staged {
            let full = self.packs().len(id)?.is_some_and(|len| len >= target);
            if full || deferred_marker(remote, id).is_file() {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// True if pack `id` is staged, sealed and waiting for upload: writers must not append to
    /// it.
    pub(crate) fn seal_deferred(&self, id: PackId) -> bool {
        self.remote_state()
            .is_some_and(|r| deferred_marker(r, id).is_file())
    }

    /// Seals a pack a writer has finished (pack writer, repack, migrate; the caller holds the
    /// maintenance lock), then snapshots the index to the remote.
    ///
    /// For a remote container a failed upload does not fail the caller: the pack stays staged
    /// and readable, its sidecar is kept locally as the "waiting for upload" mark, the error is
    /// recorded ([`RemoteStatus::last_error`]) and [`Container::upload_pending`] retries. A
    /// failed snapshot is likewise only recorded; the next seal retries it.
    pub(crate) fn seal_finished_pack(&self, id: PackId) -> Result<()> {
        let Some(remote) = self.remote_state() else {
            self.seal_pack(id)?;
            return Ok(());
        };
        if self.seal_remote(remote, id)? {
            let _ = self.snapshot_now(remote);
        }
        Ok(())
    }

    /// Seals (uploads) one staged pack; `Ok(false)` if the upload failed and the pack stays
    /// staged, marked.
    fn seal_remote(&self, remote: &RemoteState, id: PackId) -> Result<bool> {
        let toc = self.toc_from_index(id)?;
        match self.packs().seal(id, &toc.encode()) {
            Ok(()) => {
                remote.snapshot_due.store(true, Ordering::Relaxed);
                remote.set_error(None);
                Ok(true)
            }
            Err(e) => {
                if !remote.mirror.staged()?.contains(&id) {
                    // Not a failed upload of a staged pack: nothing to retry later.
                    return Err(e);
                }
                durable::write_atomic(&deferred_marker(remote, id), &toc.encode())?;
                remote.set_error(Some(format!("upload of pack {id} failed: {e}")));
                Ok(false)
            }
        }
    }

    /// Uploads the packs that wait for upload (complete but still staged because an upload
    /// failed), then snapshots the index if anything was uploaded or a snapshot is due.
    /// Takes the maintenance lock (waiting up to 60 s). The pack being appended to is never
    /// uploaded. A container with local packs has nothing to do.
    ///
    /// Errors only for what prevents trying (the lock, listing the staging folder, reading the
    /// index); failed uploads and snapshots are in the report.
    pub fn upload_pending(&self) -> Result<UploadReport> {
        let Some(remote) = self.remote_state() else {
            return Ok(UploadReport::default());
        };
        let _lock = self.maintenance_lock()?;
        self.upload_pending_locked(remote, false)
    }

    /// As [`upload_pending`](Container::upload_pending), and also seals and uploads the packs
    /// still being filled (every staged pack that holds bytes), so that the remote alone holds
    /// every packed object: before a machine is retired, or before a [`clone`] elsewhere.
    /// Later writes start new packs. Loose objects stay loose: pack them first.
    ///
    /// [`clone`]: Container::clone_from_remote
    pub fn upload_all(&self) -> Result<UploadReport> {
        let Some(remote) = self.remote_state() else {
            return Ok(UploadReport::default());
        };
        let _lock = self.maintenance_lock()?;
        self.upload_pending_locked(remote, true)
    }

    fn upload_pending_locked(&self, remote: &RemoteState, seal_open: bool) -> Result<UploadReport> {
        let mut report = UploadReport::default();
        let staged = remote.mirror.staged()?;
        let ids = if seal_open {
            // Every staged pack with bytes; the maintenance lock keeps writers out meanwhile.
            let mut ids = Vec::new();
            for &id in &staged {
                if self.packs().len(id)?.is_some_and(|len| len > 0) {
                    ids.push(id);
                }
            }
            ids
        } else {
            self.pending_uploads(remote, &staged)?
        };
        if seal_open && !ids.is_empty() {
            remote.snapshot_due.store(true, Ordering::Relaxed);
        }
        for id in ids {
            match self.seal_remote(remote, id) {
                Ok(true) => report.uploaded.push(id),
                Ok(false) => report.failed.push((
                    id,
                    remote
                        .last_error
                        .lock()
                        .ok()
                        .and_then(|g| g.clone())
                        .unwrap_or_default(),
                )),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        if report.failed.is_empty() && remote.snapshot_due.load(Ordering::Relaxed) {
            match self.snapshot_now(remote) {
                Ok(()) => report.snapshot_taken = true,
                Err(e) => report.snapshot_error = Some(e.to_string()),
            }
        }
        if let Ok(mut g) = remote.retry_not_before.lock() {
            *g = if report.failed.is_empty() && report.snapshot_error.is_none() {
                None
            } else {
                Some(Instant::now() + AUTO_RETRY_BACKOFF)
            };
        }
        Ok(report)
    }

    /// The automatic retry at the start of a pack, repack or automatic-pack cycle (the caller
    /// holds the maintenance lock): quiet, and at most every 30 s after a failure.
    pub(crate) fn retry_uploads_in_cycle(&self) {
        let Some(remote) = self.remote_state() else {
            return;
        };
        let waiting = remote
            .retry_not_before
            .lock()
            .ok()
            .and_then(|g| *g)
            .is_some_and(|t| Instant::now() < t);
        if !waiting {
            let _ = self.upload_pending_locked(remote, false);
        }
    }

    /// Uploads a snapshot of the index (and `config.json`) to the remote now. Takes the
    /// maintenance lock, so that the index and the list of uploaded packs agree.
    pub fn snapshot_to_remote(&self) -> Result<()> {
        let Some(remote) = self.remote_state() else {
            return Err(Error::InvalidArgument(
                "the packs of this container are local: there is no remote to snapshot to".into(),
            ));
        };
        let _lock = self.maintenance_lock()?;
        self.snapshot_now(remote)
    }

    /// Marks that rows changed (a delete), so the next cycle snapshots, and snapshots now.
    pub(crate) fn index_changed(&self) {
        if let Some(remote) = self.remote_state() {
            remote.snapshot_due.store(true, Ordering::Relaxed);
            let _ = self.snapshot_now(remote);
        }
    }

    /// Takes the snapshot (the caller holds the maintenance lock). Failures are recorded.
    fn snapshot_now(&self, remote: &RemoteState) -> Result<()> {
        let result = self.upload_snapshot(remote);
        match &result {
            Ok(()) => {
                remote.snapshot_due.store(false, Ordering::Relaxed);
                remote.set_error(None);
            }
            Err(e) => {
                remote.snapshot_due.store(true, Ordering::Relaxed);
                remote.set_error(Some(format!("index snapshot failed: {e}")));
            }
        }
        result
    }

    fn upload_snapshot(&self, remote: &RemoteState) -> Result<()> {
        let layout = Layout::new(self.path());
        // Listed before the copy: under the lock nothing is uploaded in between, and a pack
        // in the list has all its rows committed (rows are committed before a seal).
        let packs = remote.mirror.uploaded()?;
        let tmp = layout.sandbox().join(format!(
            "rsdos-snapshot-{}.idx",
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            SqliteIndex::open(&layout.index())?.backup_to(&tmp)?;
            let (index_bytes, index_sha256) = file_digest(&tmp)?;
            let config = std::fs::read(layout.config())
                .map_err(|e| Error::io("read", layout.config(), e))?;
            remote.mirror.put_meta(REMOTE_CONFIG, &config)?;
            remote.mirror.put_meta_file(REMOTE_INDEX, &tmp)?;
            let info = SnapshotInfo {
                container_id: self.config().container_id.clone(),
                unix_time: SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                index_bytes,
                index_sha256,
                packs,
            };
            remote
                .mirror
                .put_meta(REMOTE_SNAPSHOT_INFO, info.to_json().as_bytes())
        })();
        let _ = std::fs::remove_file(&tmp);
        result
    }
}

/// `<staging>/<id>.toc`: the local sidecar of a staged pack whose upload failed.
fn deferred_marker(remote: &RemoteState, id: PackId) -> std::path::PathBuf {
    remote.mirror.staging_dir().join(format!("{id}.toc"))
}
