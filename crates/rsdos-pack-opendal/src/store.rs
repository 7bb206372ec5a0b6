//! [`OpendalPackStore`]: packs being written stay in a local staging folder; sealed packs live
//! in object storage.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opendal::blocking;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::options::ReadOptions;
use rsdos_core::{Error, PackAppender, PackHandle, PackId, PackStore, Result, is_valid_pack_name};
use rsdos_pack_local::LocalPackStore;

use crate::appender::{PackLock, StagedAppender, UploadedAppender};
use crate::checksum::{self, Md5Sum};
use crate::location::{RemoteLocation, StoreOptions, parse_url};

/// Name of the folder, inside the staging folder, holding the pack locks.
const LOCKS_DIR: &str = ".locks";

/// Suffix of the tombstone key `<id>.deleted` that hides a deleted pack whose bytes are kept for
/// the grace period. Not a valid pack name, so listings never take it for a pack.
const TOMBSTONE_SUFFIX: &str = ".deleted";

/// Bulk reads fetch neighbouring ranges of one pack in one request when the hole between them is
/// at most this: a request costs a round trip (milliseconds), far more than transferring 64 KiB.
const MERGE_GAP_MAX: u64 = 64 * 1024;

/// A merged request of a bulk read asks for at most this many bytes (unless one range alone is
/// larger), so the buffer it fills, held until its ranges are cut out, stays small and the bulk
/// reader's parallel requests bound memory at a few times this.
const MERGE_REQUEST_MAX: u64 = 8 << 20;

/// Requests a bulk read runs at once on different packs: enough to overlap round trips of a few
/// milliseconds, few enough not to look like a flood to a server or a rate limiter.
const READ_PARALLELISM: usize = 8;

/// `delete` purges expired deleted packs at most this often: a purge lists the whole prefix, too
/// much for each of the many deletes of a repack.
const PURGE_INTERVAL: Duration = Duration::from_secs(600);
/// A stream over a large remote object grows its ranged GETs up to this size (a 1 GiB object:
/// about 130 requests instead of 4,096 of 256 KiB); it holds one buffer of at most this size.
const SEQUENTIAL_READ_MAX: usize = 8 * 1024 * 1024;

/// Bytes `open_range` fetches at once: the first read of a stream (rsdos reads packed objects in
/// chunks of 256 KiB, so a small object is read whole), which also proves the pack exists.
const OPEN_RANGE_PREFETCH: u64 = 256 * 1024;

/// Installs the process-wide rustls crypto provider (ring) and OpenDAL's reqwest transport,
/// once. Without the transport every remote operation fails with "default HTTP transport is
/// not installed".
fn install_transport() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already: keep it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
    });
}

/// A [`PackStore`] over object storage (S3, GCS, Azure Blob) or any other OpenDAL service,
/// with a local staging folder for the packs being written.
///
/// - A pack being appended to lives in the staging folder (a [`LocalPackStore`]), so appends,
///   locks, `sync` and `truncate` behave exactly as for local packs.
/// - [`seal`](PackStore::seal) uploads a staged pack once (in one request up to
///   [`StoreOptions::single_put_max`], in parts otherwise; GCS always in one request), checks
///   the uploaded size and, when the service reports one, its MD5, uploads the sidecar and only
///   then removes the staged copy. If any step fails the staged pack stays, reads keep working
///   and sealing again retries the upload. Sealing a pack that is already uploaded rewrites its
///   sidecar only.
/// - Reads go to the staged file when there is one, else are ranged GETs of exactly the
///   requested bytes.
/// - Remote keys mirror the local layout: `<prefix>/<id>` and `<prefix>/<id>.toc`.
///
/// Every appender holds a lock under `<staging>/.locks`, so instances sharing a staging folder
/// (threads, processes) never append to, seal and lock the same pack at once. Instances with
/// different staging folders must not write to the same remote packs.
///
/// Errors from the remote are [`Error::Io`] whose path is the full object URL (service,
/// bucket, prefix and key, never credentials) and whose source is OpenDAL's error; a missing
/// pack is [`Error::PackNotFound`].
pub struct OpendalPackStore {
    op: blocking::Operator,
    aop: opendal::Operator,
    location: RemoteLocation,
    options: StoreOptions,
    staging: Arc<LocalPackStore>,
    locks: Arc<LocalPackStore>,
    single_request: bool,
    /// Packs this instance deleted while keeping their bytes (tombstoned): its own reads see
    /// them absent without asking the remote.
    deleted: Mutex<HashSet<PackId>>,
    /// When `delete` last purged.
    last_purge: Mutex<Option<Instant>>,
    // Dropped last: the operator's handle points into it.
    runtime: Arc<tokio::runtime::Runtime>,
}

impl fmt::Debug for OpendalPackStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpendalPackStore")
            .field("location", &self.location.to_string())
            .field("staging", &self.staging.dir())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl OpendalPackStore {
    /// A store over the pack-storage URL `url` (see the crate docs for the schemes and
    /// options), staging packs being written in the local folder `staging` (created if
    /// absent). Credentials come from the service's usual environment variables and provider
    /// chains unless given in the URL.
    ///
    /// Does no remote request: an unreachable or misconfigured remote shows on first use.
    pub fn open(url: &str, staging: &Path) -> Result<Self> {
        Self::open_with(url, staging, [])
    }

    /// As [`open`](Self::open), with extra service options (such as credentials read from a
    /// secret store) that win over the URL's query.
    pub fn open_with<'a>(
        url: &str,
        staging: &Path,
        extra: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self> {
        install_transport();
        let parsed = parse_url(url, extra)?;
        let op = opendal::Operator::via_iter(parsed.opendal_scheme, parsed.config.clone())
            .map_err(|e| Error::Config {
                path: None,
                detail: format!(
                    "pack storage {}: {}",
                    parsed.location,
                    describe_config_error(&e)
                ),
            })?;
        Self::from_operator(op, parsed.location, parsed.options, staging)
    }

    /// A store over an OpenDAL operator built by the caller (for services or settings the URL
    /// form does not cover). `location` names it in messages; retry and timeout layers are
    /// added from `options`. Operators cloned from one another share their storage, so two
    /// stores over clones of one `memory` operator see the same packs.
    pub fn from_operator(
        op: opendal::Operator,
        location: RemoteLocation,
        options: StoreOptions,
        staging: &Path,
    ) -> Result<Self> {
        install_transport();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("rsdos-opendal")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::io(
                    "start the I/O runtime for",
                    PathBuf::from(location.to_string()),
                    e,
                )
            })?;
        let single_request = op.info().scheme() == "gcs";
        let op = op
            .layer(
                TimeoutLayer::new()
                    .with_timeout(options.timeout)
                    .with_io_timeout(options.io_timeout),
            )
            .layer(
                RetryLayer::new()
                    .with_jitter()
                    .with_max_times(options.retries),
            );
        let aop = op.clone();
        let op = {
            let _guard = runtime.enter();
            blocking::Operator::new(op).map_err(|e| Error::Config {
                path: None,
                detail: format!("pack storage {location}: {e}"),
            })?
        };
        let locks_dir = staging.join(LOCKS_DIR);
        std::fs::create_dir_all(&locks_dir)
            .map_err(|e| Error::io("create staging folder", &locks_dir, e))?;
        Ok(OpendalPackStore {
            op,
            aop,
            staging: Arc::new(LocalPackStore::new(staging, options.max_open_staged)),
            locks: Arc::new(LocalPackStore::new(&locks_dir, 1)),
            location,
            options,
            single_request,
            deleted: Mutex::new(HashSet::new()),
            last_purge: Mutex::new(None),
            runtime: Arc::new(runtime),
        })
    }

    /// Where the sealed packs are.
    pub fn location(&self) -> &RemoteLocation {
        &self.location
    }

    /// The options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// The local staging folder.
    pub fn staging_dir(&self) -> &Path {
        self.staging.dir()
    }

    /// The blocking operator, for the metadata files of `mirror.rs`.
    pub(crate) fn blocking_operator(&self) -> &blocking::Operator {
        &self.op
    }

    /// Packs that are in the staging folder: being written, or sealed but not yet uploaded
    /// (an upload failed), ascending.
    pub fn staged(&self) -> Result<Vec<PackId>> {
        self.staging.list()
    }

    /// Packs in the remote storage, ascending (deleted ones, whose bytes are kept for the grace
    /// period, are left out).
    pub fn uploaded(&self) -> Result<Vec<PackId>> {
        let (mut ids, tombstones) = self.remote_listing()?;
        ids.retain(|id| !tombstones.contains(id));
        Ok(ids)
    }

    /// Packs deleted whose bytes are still in the remote storage (until
    /// [`purge_deleted`](PackStore::purge_deleted) removes them after the grace period),
    /// ascending.
    pub fn deleted_kept(&self) -> Result<Vec<PackId>> {
        let (ids, tombstones) = self.remote_listing()?;
        Ok(ids
            .into_iter()
            .filter(|id| tombstones.contains(id))
            .collect())
    }

    /// One listing of the remote prefix: the pack ids (ascending) and the tombstoned ids.
    fn remote_listing(&self) -> Result<(Vec<PackId>, HashSet<PackId>)> {
        let entries = self
            .op
            .list("/")
            .map_err(|e| self.remote_error("list", "", e))?;
        let mut ids = Vec::new();
        let mut tombstones = HashSet::new();
        for e in &entries {
            // A folder entry (a name ending in `/` that is not a file) is not ours.
            if !e.metadata().is_file() && e.name().ends_with('/') {
                continue;
            }
            let name = e.name();
            if is_valid_pack_name(name) {
                ids.extend(name.parse::<PackId>().ok());
            } else if let Some(id) = name.strip_suffix(TOMBSTONE_SUFFIX)
                && is_valid_pack_name(id)
            {
                tombstones.extend(id.parse::<PackId>().ok());
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok((ids, tombstones))
    }

    fn deleted_here(&self, pack_id: PackId) -> bool {
        self.deleted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&pack_id)
    }

    fn set_deleted_here(&self, pack_id: PackId, deleted: bool) {
        let mut set = self.deleted.lock().unwrap_or_else(|p| p.into_inner());
        if deleted {
            set.insert(pack_id);
        } else {
            set.remove(&pack_id);
        }
    }

    /// Whether the remote holds a tombstone for `pack_id` (deleted, bytes kept for now).
    fn tombstoned(&self, pack_id: PackId) -> Result<bool> {
        let key = tombstone_key(pack_id);
        match self.op.stat(&key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.remote_error("stat tombstone", &key, e)),
        }
    }

    /// Removes a key; absent is fine.
    fn remove_key(&self, key: &str) -> Result<()> {
        match self.op.delete(key) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.remote_error("delete", key, e)),
        }
    }

    /// Removes the bytes of a deleted pack for good: sidecar (a leftover of an interrupted
    /// delete), pack, then the tombstone last, so a crash in between leaves the pack hidden.
    fn purge_one(&self, pack_id: PackId) -> Result<()> {
        self.remove_key(&format!("{pack_id}.toc"))?;
        self.remove_key(&pack_id.to_string())?;
        self.remove_key(&tombstone_key(pack_id))?;
        self.set_deleted_here(pack_id, false);
        Ok(())
    }

    /// Purges expired deleted packs unless that was done less than [`PURGE_INTERVAL`] ago.
    fn maybe_purge(&self) {
        {
            let mut last = self.last_purge.lock().unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < PURGE_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        // Best effort: the delete itself is done, and the next delete, or `Container::clean`
        // through `purge_deleted`, tries again.
        let _ = self.purge_deleted();
    }

    /// When the tombstone of `pack_id` was written, `None` if unreadable.
    fn tombstone_time(&self, pack_id: PackId) -> Result<Option<SystemTime>> {
        let key = tombstone_key(pack_id);
        let body = match self.op.read(&key) {
            Ok(b) => b.to_vec(),
            // Purged by another instance meanwhile.
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.remote_error("read tombstone", &key, e)),
        };
        Ok(std::str::from_utf8(&body)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs)))
    }

    /// Bulk read of an uploaded pack: ranges sorted, neighbours merged into requests of up to
    /// [`MERGE_REQUEST_MAX`] bytes across holes of up to [`MERGE_GAP_MAX`], one ranged GET per
    /// merged request, each range cut out of its request's buffer.
    fn remote_read_ranges(&self, pack_id: PackId, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>> {
        let mut out: Vec<Vec<u8>> = vec![Vec::new(); ranges.len()];
        let mut order: Vec<usize> = (0..ranges.len()).filter(|&i| ranges[i].1 > 0).collect();
        order.sort_unstable_by_key(|&i| ranges[i].0);
        // The largest end a request reached: an empty range at or before it is within the pack.
        let mut covered = 0u64;
        let mut i = 0;
        while i < order.len() {
            let (start, len) = ranges[order[i]];
            let mut end = range_end(pack_id, start, len)?;
            let mut j = i + 1;
            while j < order.len() {
                let (o, l) = ranges[order[j]];
                let e = range_end(pack_id, o, l)?;
                let new_end = end.max(e);
                if o > end.saturating_add(MERGE_GAP_MAX) || new_end - start > MERGE_REQUEST_MAX {
                    break;
                }
                end = new_end;
                j += 1;
            }
            let size = usize::try_from(end - start).map_err(|_| {
                Error::InvalidArgument(format!("a read of {} bytes is too large", end - start))
            })?;
            let mut buf = vec![0u8; size];
            self.remote_read(pack_id, start, &mut buf)?;
            for &k in &order[i..j] {
                let (o, l) = ranges[k];
                let at = (o - start) as usize;
                out[k] = buf[at..at + l].to_vec();
            }
            covered = covered.max(end);
            i = j;
        }
        // Empty ranges: within the pack when a request reached them, else ask (as read_at does).
        for &(offset, len) in ranges {
            if len == 0 && (offset > covered || order.is_empty()) {
                self.remote_read(pack_id, offset, &mut [])?;
            }
        }
        Ok(out)
    }

    /// An error of the service for `key`, named by its full URL (never credentials).
    pub(crate) fn remote_error(&self, op: &'static str, key: &str, e: opendal::Error) -> Error {
        let kind = match e.kind() {
            opendal::ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            opendal::ErrorKind::PermissionDenied => std::io::ErrorKind::PermissionDenied,
            _ => std::io::ErrorKind::Other,
        };
        Error::io(
            op,
            PathBuf::from(self.location.key_url(key)),
            std::io::Error::new(kind, e),
        )
    }

    /// Length of the uploaded pack, `None` if absent.
    fn remote_len(&self, pack_id: PackId) -> Result<Option<u64>> {
        let key = pack_id.to_string();
        match self.op.stat(&key) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.remote_error("stat pack", &key, e)),
        }
    }

    fn remote_read(&self, pack_id: PackId, offset: u64, buf: &mut [u8]) -> Result<()> {
        remote_read(&self.op, &self.location, pack_id, offset, buf, None)
    }

    /// Uploads staged pack `pack_id` (the caller holds its locks) and checks what arrived.
    fn upload(&self, pack_id: PackId, staged_len: u64) -> Result<()> {
        let key = pack_id.to_string();
        let path = self.staging.pack_path(pack_id);
        let mut file =
            std::fs::File::open(&path).map_err(|e| Error::io("open staged pack", &path, e))?;
        let mut md5 = Md5Sum::default();
        let read_err = |e| Error::io("read staged pack", &path, e);
        if self.single_request || staged_len <= self.options.single_put_max {
            let mut all = Vec::with_capacity(usize::try_from(staged_len).unwrap_or(0));
            file.read_to_end(&mut all).map_err(read_err)?;
            if all.len() as u64 != staged_len {
                return Err(Error::corrupt(
                    "pack",
                    path.display().to_string(),
                    "the staged pack changed size while being uploaded",
                ));
            }
            md5.update(&all);
            self.op
                .write(&key, all)
                .map_err(|e| self.remote_error("upload pack", &key, e))?;
        } else {
            let chunk = self.options.chunk_size;
            let opts = opendal::options::WriteOptions {
                chunk: Some(chunk),
                concurrent: 1,
                ..Default::default()
            };
            let aop = self.aop.clone();
            let mut sent = 0u64;
            let result: Result<()> = self.runtime.block_on(async {
                let mut writer = aop
                    .writer_options(&key, opts)
                    .await
                    .map_err(|e| self.remote_error("start upload of pack", &key, e))?;
                let written: Result<()> = async {
                    loop {
                        // Reading the local file blocks this (caller's) thread only.
                        let mut part = Vec::with_capacity(chunk);
                        (&mut file)
                            .take(chunk as u64)
                            .read_to_end(&mut part)
                            .map_err(read_err)?;
                        if part.is_empty() {
                            break;
                        }
                        sent += part.len() as u64;
                        md5.update(&part);
                        writer
                            .write(part)
                            .await
                            .map_err(|e| self.remote_error("upload pack", &key, e))?;
                    }
                    writer
                        .close()
                        .await
                        .map_err(|e| self.remote_error("complete upload of pack", &key, e))?;
                    Ok(())
                }
                .await;
                if written.is_err() {
                    // Best effort: an open multipart upload costs storage until it expires.
                    let _ = writer.abort().await;
                }
                written
            });
            result?;
            if sent != staged_len {
                return Err(Error::corrupt(
                    "pack",
                    path.display().to_string(),
                    "the staged pack changed size while being uploaded",
                ));
            }
        }
        let meta = self
            .op
            .stat(&key)
            .map_err(|e| self.remote_error("check uploaded pack", &key, e))?;
        if meta.content_length() != staged_len {
            return Err(Error::corrupt(
                "uploaded pack",
                self.location.key_url(&key),
                format!(
                    "{} bytes arrived, {staged_len} were sent; the local copy is kept",
                    meta.content_length()
                ),
            ));
        }
        if self.options.verify_checksum {
            let digest = md5.finish();
            if checksum::compare(&digest, meta.content_md5(), meta.etag()) == Some(false) {
                return Err(Error::corrupt(
                    "uploaded pack",
                    self.location.key_url(&key),
                    format!(
                        "the service reports a checksum (ETag {:?}, Content-MD5 {:?}) that is \
                         not the MD5 of the pack ({}); the local copy is kept (for S3 with \
                         SSE-KMS, set verify_checksum=false)",
                        meta.etag().unwrap_or(""),
                        meta.content_md5().unwrap_or(""),
                        checksum::to_hex(&digest)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn write_sidecar(&self, pack_id: PackId, sidecar: &[u8]) -> Result<()> {
        let key = format!("{pack_id}.toc");
        self.op
            .write(&key, sidecar.to_vec())
            .map_err(|e| self.remote_error("upload sidecar", &key, e))?;
        Ok(())
    }
}

fn tombstone_key(pack_id: PackId) -> String {
    format!("{pack_id}{TOMBSTONE_SUFFIX}")
}

/// End of a range, an overflow being a range past the end of any pack.
fn range_end(pack_id: PackId, offset: u64, len: usize) -> Result<u64> {
    offset.checked_add(len as u64).ok_or_else(|| {
        Error::corrupt(
            "pack",
            format!("pack {pack_id}, offset {offset}, {len} bytes"),
            "the range ends past the largest possible pack",
        )
    })
}

fn describe_config_error(e: &opendal::Error) -> String {
    // OpenDAL's message names the option that is wrong; it does not echo credentials.
    format!("{}: {}", e.kind(), e.message())
}

/// A ranged read of exactly `buf.len()` bytes of an uploaded pack. `known_len`, when given,
/// lets a range past the end be reported without a request.
fn remote_read(
    op: &blocking::Operator,
    location: &RemoteLocation,
    pack_id: PackId,
    offset: u64,
    buf: &mut [u8],
    known_len: Option<u64>,
) -> Result<()> {
    let key = pack_id.to_string();
    let past_end = || {
        Error::corrupt(
            "pack",
            format!(
                "pack {pack_id} at {}, offset {offset}, {} bytes",
                location,
                buf.len()
            ),
            "the pack ends before this range (truncated pack?)",
        )
    };
    let Some(end) = offset.checked_add(buf.len() as u64) else {
        return Err(past_end());
    };
    let to_error = |e: opendal::Error, what: &'static str| match e.kind() {
        opendal::ErrorKind::NotFound => Error::PackNotFound { pack_id },
        opendal::ErrorKind::RangeNotSatisfied => past_end(),
        _ => Error::io(
            what,
            PathBuf::from(location.key_url(&key)),
            std::io::Error::other(e),
        ),
    };
    if known_len.is_some_and(|len| end > len) {
        return Err(past_end());
    }
    if buf.is_empty() {
        if known_len.is_none() {
            let len = op
                .stat(&key)
                .map_err(|e| to_error(e, "stat pack"))?
                .content_length();
            if offset > len {
                return Err(past_end());
            }
        }
        return Ok(());
    }
    let opts = ReadOptions {
        range: (offset..end).into(),
        ..Default::default()
    };
    let data = match op.read_options(&key, opts) {
        Ok(data) => data,
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => {
            return Err(Error::PackNotFound { pack_id });
        }
        Err(e) => {
            // Services answer a range past the end in different ways (416, a short body, an
            // error of their own): ask for the length to tell "past the end" from a failure.
            if known_len.is_none()
                && let Ok(meta) = op.stat(&key)
                && end > meta.content_length()
            {
                return Err(past_end());
            }
            return Err(to_error(e, "read pack"));
        }
    };
    if data.len() != buf.len() {
        return Err(past_end());
    }
    let mut reader = data;
    reader
        .read_exact(buf)
        .map_err(|e| Error::io("read pack", PathBuf::from(location.key_url(&key)), e))
}

impl PackStore for OpendalPackStore {
    fn list(&self) -> Result<Vec<PackId>> {
        let (uploaded, tombstones) = self.remote_listing()?;
        let mut ids = self.staging.list()?;
        ids.extend(uploaded);
        ids.retain(|id| !tombstones.contains(id));
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn len(&self, pack_id: PackId) -> Result<Option<u64>> {
        if let Some(len) = self.staging.len(pack_id)? {
            return Ok(Some(len));
        }
        match self.remote_len(pack_id)? {
            Some(len) if !self.tombstoned(pack_id)? => Ok(Some(len)),
            _ => Ok(None),
        }
    }

    fn read_at(&self, pack_id: PackId, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.deleted_here(pack_id) {
            return Err(Error::PackNotFound { pack_id });
        }
        // Staged first: a seal uploads before it removes the staged copy, so a reader that
        // misses the staged file finds the uploaded one. No tombstone check: that would double
        // the requests of every read (see `delete`).
        match self.staging.read_at(pack_id, offset, buf) {
            Err(Error::PackNotFound { .. }) => self.remote_read(pack_id, offset, buf),
            other => other,
        }
    }

    fn read_ranges(&self, pack_id: PackId, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>> {
        if self.deleted_here(pack_id) {
            return Err(Error::PackNotFound { pack_id });
        }
        match self.staging.open_pack(pack_id) {
            Ok(handle) => ranges
                .iter()
                .map(|&(offset, len)| {
                    let mut buf = vec![0u8; len];
                    handle.read_at(offset, &mut buf)?;
                    Ok(buf)
                })
                .collect(),
            Err(Error::PackNotFound { .. }) => self.remote_read_ranges(pack_id, ranges),
            Err(e) => Err(e),
        }
    }

    fn read_parallelism(&self) -> usize {
        READ_PARALLELISM
    }

    fn open_pack(&self, pack_id: PackId) -> Result<Arc<dyn PackHandle>> {
        match self.staging.open_pack(pack_id) {
            Err(Error::PackNotFound { .. }) => {}
            other => return other,
        }
        let len = self
            .remote_len(pack_id)?
            .ok_or(Error::PackNotFound { pack_id })?;
        if self.tombstoned(pack_id)? {
            return Err(Error::PackNotFound { pack_id });
        }
        Ok(Arc::new(RemotePackHandle {
            op: self.op.clone(),
            location: self.location.clone(),
            pack_id,
            len: Some(len),
            prefetched: None,
            _runtime: Arc::clone(&self.runtime),
        }))
    }

    fn open_range(&self, pack_id: PackId, offset: u64, length: u64) -> Result<Arc<dyn PackHandle>> {
        if self.deleted_here(pack_id) {
            return Err(Error::PackNotFound { pack_id });
        }
        match self.staging.open_pack(pack_id) {
            Err(Error::PackNotFound { .. }) => {}
            other => return other,
        }
        if length == 0 {
            // Nothing to fetch that would prove the pack exists.
            return self.open_pack(pack_id);
        }
        // The first chunk, fetched now: it tells whether the pack exists (no HEAD first) and is
        // what the stream reads first.
        let mut first = vec![0u8; length.min(OPEN_RANGE_PREFETCH) as usize];
        self.remote_read(pack_id, offset, &mut first)?;
        Ok(Arc::new(RemotePackHandle {
            op: self.op.clone(),
            location: self.location.clone(),
            pack_id,
            len: None,
            prefetched: Some((offset, first)),
            _runtime: Arc::clone(&self.runtime),
        }))
    }

    fn purge_deleted(&self) -> Result<usize> {
        let (_, tombstones) = self.remote_listing()?;
        let mut ids: Vec<PackId> = tombstones.into_iter().collect();
        ids.sort_unstable();
        let now = SystemTime::now();
        let mut purged = 0;
        for id in ids {
            let expired = match self.tombstone_time(id)? {
                Some(t) => now.duration_since(t).unwrap_or_default() >= self.options.delete_grace,
                // Only this store writes tombstones, in one request with the time as body: a
                // body that is not a time was not written by it; the pack is hidden anyway.
                None => true,
            };
            if expired {
                self.purge_one(id)?;
                purged += 1;
            }
        }
        Ok(purged)
    }

    fn open_append(&self, pack_id: PackId) -> Result<Box<dyn PackAppender>> {
        let lock = PackLock::acquire(&self.locks, pack_id)?;
        if self.staging.len(pack_id)?.is_none() {
            // A deleted pack's bytes are still read by handles opened before: a new pack under
            // its id would change them, so the id stays taken until the tombstone is purged.
            if self.tombstoned(pack_id)? {
                return Err(Error::AlreadyExists {
                    path: PathBuf::from(self.location.key_url(&pack_id.to_string())),
                    detail: format!(
                        "pack {pack_id} was deleted and its bytes are kept for streams still \
                         reading them (until purged after the grace period); its id is not \
                         reused meanwhile"
                    ),
                });
            }
            if let Some(len) = self.remote_len(pack_id)? {
                return Ok(Box::new(UploadedAppender {
                    pack_id,
                    len,
                    where_: self.location.to_string(),
                    _lock: lock,
                }));
            }
            // Purged by another instance: the id names a new pack now.
            self.set_deleted_here(pack_id, false);
        }
        let inner = self.staging.open_append(pack_id)?;
        Ok(Box::new(StagedAppender { inner, _lock: lock }))
    }

    /// Hides the pack at once and, with a grace period, keeps its bytes until
    /// [`purge_deleted`](PackStore::purge_deleted) (called here too, at most every few
    /// minutes) removes them: a tombstone `<id>.deleted` holding the deletion time is written
    /// first, then the sidecar and any staged copy are removed. `list` (one listing), `len`,
    /// `is_sealed`, `sidecar` and `open_pack` check the tombstone; ranged reads of other
    /// instances do not (see the trait's contract), those of this instance know.
    fn delete(&self, pack_id: PackId) -> Result<()> {
        if self.options.delete_grace.is_zero() {
            self.set_deleted_here(pack_id, false);
            self.remove_key(&format!("{pack_id}.toc"))?;
            self.remove_key(&pack_id.to_string())?;
            self.remove_key(&tombstone_key(pack_id))?;
            return self.staging.delete(pack_id);
        }
        if self.remote_len(pack_id)?.is_some() {
            let key = tombstone_key(pack_id);
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            self.op
                .write(&key, secs.to_string().into_bytes())
                .map_err(|e| self.remote_error("write tombstone", &key, e))?;
            self.set_deleted_here(pack_id, true);
        }
        self.remove_key(&format!("{pack_id}.toc"))?;
        self.staging.delete(pack_id)?;
        self.maybe_purge();
        Ok(())
    }

    fn seal(&self, pack_id: PackId, sidecar: &[u8]) -> Result<()> {
        if self.staging.len(pack_id)?.is_some() {
            let lock = PackLock::acquire(&self.locks, pack_id)?;
            // Also the staging folder's own lock (held by an appender of this store, or by
            // another program appending to the staged file).
            let staged = self.staging.open_append(pack_id)?;
            let staged_len = staged.position();
            self.upload(pack_id, staged_len)?;
            self.write_sidecar(pack_id, sidecar)?;
            self.staging.delete(pack_id)?;
            drop(staged);
            drop(lock);
            return Ok(());
        }
        if self.len(pack_id)?.is_none() {
            return Err(Error::PackNotFound { pack_id });
        }
        self.write_sidecar(pack_id, sidecar)
    }

    fn is_sealed(&self, pack_id: PackId) -> Result<bool> {
        let key = format!("{pack_id}.toc");
        match self.op.stat(&key) {
            // A sidecar left by a delete interrupted after its tombstone does not count.
            Ok(_) => Ok(!self.tombstoned(pack_id)?),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.remote_error("stat sidecar", &key, e)),
        }
    }

    fn sidecar(&self, pack_id: PackId) -> Result<Option<Vec<u8>>> {
        let key = format!("{pack_id}.toc");
        match self.op.read(&key) {
            Ok(_) if self.tombstoned(pack_id)? => Ok(None),
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.remote_error("read sidecar", &key, e)),
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} (staging {})",
            self.location,
            self.staging.dir().display()
        )
    }
}

/// A handle on an uploaded pack: ranged GETs. Its pack's bytes stay readable for the store's
/// grace period after a delete (see [`PackStore::delete`] on [`OpendalPackStore`]); after the
/// purge, reads fail with [`Error::PackNotFound`].
struct RemotePackHandle {
    op: blocking::Operator,
    location: RemoteLocation,
    pack_id: PackId,
    /// The pack's length when known (from `open_pack`; `open_range` does not ask for it).
    len: Option<u64>,
    /// Bytes fetched when the handle was opened, and their offset.
    prefetched: Option<(u64, Vec<u8>)>,
    // The operator's runtime lives as long as any handle on it.
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl fmt::Debug for RemotePackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemotePackHandle")
            .field("location", &self.location.to_string())
            .field("pack_id", &self.pack_id)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PackHandle for RemotePackHandle {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if let Some((start, bytes)) = &self.prefetched
            && let Some(at) = offset.checked_sub(*start)
            && let Ok(at) = usize::try_from(at)
            && at
                .checked_add(buf.len())
                .is_some_and(|end| end <= bytes.len())
        {
            buf.copy_from_slice(&bytes[at..at + buf.len()]);
            return Ok(());
        }
        remote_read(
            &self.op,
            &self.location,
            self.pack_id,
            offset,
            buf,
            self.len,
        )
    }

    fn sequential_read_max(&self) -> usize {
        SEQUENTIAL_READ_MAX
    }
}
