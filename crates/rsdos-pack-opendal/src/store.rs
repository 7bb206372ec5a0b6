//! [`OpendalPackStore`]: packs being written stay in a local staging folder; sealed packs live
//! in object storage.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

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

    /// Packs that are in the staging folder: being written, or sealed but not yet uploaded
    /// (an upload failed), ascending.
    pub fn staged(&self) -> Result<Vec<PackId>> {
        self.staging.list()
    }

    /// Packs in the remote storage, ascending.
    pub fn uploaded(&self) -> Result<Vec<PackId>> {
        let entries = self
            .op
            .list("/")
            .map_err(|e| self.remote_error("list", "", e))?;
        let mut ids: Vec<PackId> = entries
            .iter()
            .filter(|e| e.metadata().is_file() || !e.name().ends_with('/'))
            .map(|e| e.name())
            .filter(|n| is_valid_pack_name(n))
            .filter_map(|n| n.parse().ok())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn remote_error(&self, op: &'static str, key: &str, e: opendal::Error) -> Error {
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
        let mut ids = self.staging.list()?;
        ids.extend(self.uploaded()?);
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    fn len(&self, pack_id: PackId) -> Result<Option<u64>> {
        match self.staging.len(pack_id)? {
            Some(len) => Ok(Some(len)),
            None => self.remote_len(pack_id),
        }
    }

    fn read_at(&self, pack_id: PackId, offset: u64, buf: &mut [u8]) -> Result<()> {
        // Staged first: a seal uploads before it removes the staged copy, so a reader that
        // misses the staged file finds the uploaded one.
        match self.staging.read_at(pack_id, offset, buf) {
            Err(Error::PackNotFound { .. }) => self.remote_read(pack_id, offset, buf),
            other => other,
        }
    }

    fn open_pack(&self, pack_id: PackId) -> Result<Arc<dyn PackHandle>> {
        match self.staging.open_pack(pack_id) {
            Err(Error::PackNotFound { .. }) => {}
            other => return other,
        }
        let len = self
            .remote_len(pack_id)?
            .ok_or(Error::PackNotFound { pack_id })?;
        Ok(Arc::new(RemotePackHandle {
            op: self.op.clone(),
            location: self.location.clone(),
            pack_id,
            len,
            _runtime: Arc::clone(&self.runtime),
        }))
    }

    fn open_append(&self, pack_id: PackId) -> Result<Box<dyn PackAppender>> {
        let lock = PackLock::acquire(&self.locks, pack_id)?;
        if self.staging.len(pack_id)?.is_none()
            && let Some(len) = self.remote_len(pack_id)?
        {
            return Ok(Box::new(UploadedAppender {
                pack_id,
                len,
                where_: self.location.to_string(),
                _lock: lock,
            }));
        }
        let inner = self.staging.open_append(pack_id)?;
        Ok(Box::new(StagedAppender { inner, _lock: lock }))
    }

    fn delete(&self, pack_id: PackId) -> Result<()> {
        for key in [format!("{pack_id}.toc"), pack_id.to_string()] {
            match self.op.delete(&key) {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(self.remote_error("delete", &key, e)),
            }
        }
        self.staging.delete(pack_id)
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
        if self.remote_len(pack_id)?.is_none() {
            return Err(Error::PackNotFound { pack_id });
        }
        self.write_sidecar(pack_id, sidecar)
    }

    fn is_sealed(&self, pack_id: PackId) -> Result<bool> {
        let key = format!("{pack_id}.toc");
        match self.op.stat(&key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.remote_error("stat sidecar", &key, e)),
        }
    }

    fn sidecar(&self, pack_id: PackId) -> Result<Option<Vec<u8>>> {
        let key = format!("{pack_id}.toc");
        match self.op.read(&key) {
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

/// A handle on an uploaded pack: ranged GETs, its length fixed when it was opened.
///
/// Unlike a local handle it cannot pin the bytes: once the remote pack is deleted, reads fail
/// with [`Error::PackNotFound`].
struct RemotePackHandle {
    op: blocking::Operator,
    location: RemoteLocation,
    pack_id: PackId,
    len: u64,
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
        remote_read(
            &self.op,
            &self.location,
            self.pack_id,
            offset,
            buf,
            Some(self.len),
        )
    }
}
