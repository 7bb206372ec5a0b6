//! `RsContainer`: the Rust engine behind `rsdos.Container`.
//!
//! The Python class `rsdos.Container` gives disk-objectstore's exact signatures, defaults,
//! dataclasses and context managers, and calls this class for the work. Every method releases
//! the GIL while it does I/O, hashing or compression, so one container can be used from many
//! threads at once.

use std::collections::HashSet;
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::sync::{MutexExt, RwLockExt};
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use rsdos::{
    BackupOptions, CleanOptions, CompressMode, CompressionAlgorithm, Container, HashType,
    InitOptions, PackOptions, PackWriteOptions, RepackOptions, ValidateOptions,
};
use rsdos_core::PackAppender;

use crate::errors::{PyErrSlot, closed_file, to_pyerr, to_pyerr_with};
use crate::iters::{HashkeyIter, ManyIter};
use crate::pyio::{PyProgress, PyRead};
use crate::stream::{ObjectStream, read_error};
use crate::types::{object_meta, to_bytes};

/// Contents returned by `get_many` are converted to Python in batches of about this size, so
/// that memory peaks at the result plus one batch.
const GET_MANY_BATCH_BYTES: usize = 16 * 1024 * 1024;

fn poisoned<T>(_: T) -> PyErr {
    PyRuntimeError::new_err("a previous operation on this container panicked")
}

fn parse_compress(mode: &str) -> PyResult<CompressMode> {
    mode.parse()
        .map_err(|e: rsdos::Error| PyValueError::new_err(e.to_string()))
}

/// Runs `f` without the GIL, reporting progress to `callback` (if any) and watching for
/// signals; an exception raised by the callback or a signal handler is re-raised.
fn run<T, F>(py: Python<'_>, callback: Option<Py<PyAny>>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&Arc<PyProgress>) -> rsdos::Result<T> + Send,
{
    let slot = PyErrSlot::new();
    let progress = Arc::new(PyProgress::new(callback, slot.clone()));
    let result = py.detach(|| {
        let r = f(&progress);
        if r.is_err() {
            progress.close_open_phase();
        }
        r
    });
    match result {
        Ok(v) => match slot.take() {
            Some(e) => Err(e),
            None => Ok(v),
        },
        Err(e) => Err(to_pyerr_with(py, e, Some(&slot))),
    }
}

/// Splits hashkeys into those valid for the container's hash type and the others (which
/// cannot name an object: disk-objectstore treats them as missing).
fn split_keys<K: AsRef<str>>(container: &Container, keys: Vec<K>) -> (Vec<K>, Vec<String>) {
    let mut valid = Vec::with_capacity(keys.len());
    let mut invalid = Vec::new();
    for k in keys {
        if container.validate_key(k.as_ref()).is_ok() {
            valid.push(k);
        } else {
            invalid.push(k.as_ref().to_string());
        }
    }
    (valid, invalid)
}

/// Lists of at least this many hashkeys reach Rust joined into one text (one `str.join` in C,
/// then one copy: ~9 ms for 100,000 keys) rather than one `str` at a time (a bytes object
/// each), which took about 1.7 times as long in `perf` profiles of a cold bulk read.
const JOINED_MIN_KEYS: usize = 1024;

/// Starts a bulk read of `hashkeys` (a list of `str`): the reader of the valid keys, the keys
/// that are not valid for the container's hash type (missing by definition), and the number
/// of valid keys. A `TypeError` if an item is not a `str`.
fn start_read_many(
    py: Python<'_>,
    c: &Container,
    hashkeys: &Bound<'_, PyList>,
    skip_if_missing: bool,
) -> PyResult<(rsdos::ManyReader, Vec<String>, usize)> {
    let n = hashkeys.len();
    if n >= JOINED_MIN_KEYS
        && let Some(text) = joined_lines(hashkeys)?
    {
        match py.detach(|| c.read_many_lines(text.as_ref(), skip_if_missing)) {
            Ok(reader) => return Ok((reader, Vec::new(), n)),
            // A key that is not valid for the container (missing by definition): sorted out
            // key by key below.
            Err(e) if e.kind() == rsdos::ErrorKind::InvalidHashkey => {}
            Err(e) => return Err(to_pyerr(py, e)),
        }
    }
    let (valid, invalid) = split_keys(c, hashkeys.extract::<Vec<PyBackedStr>>()?);
    let reader = py
        .detach(|| c.read_many(&valid, skip_if_missing))
        .map_err(|e| to_pyerr(py, e))?;
    Ok((reader, invalid, valid.len()))
}

/// `"\n".join(keys)` if that has one line per key: `None` if an item is not a `str` (the
/// key-by-key extraction then raises its `TypeError`) or a key holds a newline.
fn joined_lines(keys: &Bound<'_, PyList>) -> PyResult<Option<PyBackedStr>> {
    let py = keys.py();
    let Ok(joined) = PyString::new(py, "\n").call_method1(pyo3::intern!(py, "join"), (keys,))
    else {
        return Ok(None);
    };
    // Borrowed from Python (no copy into a `String`), readable without the GIL.
    let text: PyBackedStr = joined.extract()?;
    let lines = text.bytes().filter(|b| *b == b'\n').count() + 1;
    Ok((lines == keys.len()).then_some(text))
}

/// Removes repeated keys, keeping the first occurrence.
fn dedup(keys: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.into_iter()
        .filter(|k| seen.insert(k.clone()))
        .collect()
}

fn not_existent_for(py: Python<'_>, key: &str) -> PyErr {
    crate::errors::not_existent(py, format!("No object with hash key {key}"))
}

/// The Rust engine of `rsdos.Container` (internal: use `rsdos.Container`).
#[pyclass(module = "rsdos._rsdos", name = "RsContainer", frozen)]
pub(crate) struct PyContainer {
    folder: PathBuf,
    /// Opened on first use, dropped by `close()`; with the id of the process that opened it.
    inner: RwLock<Option<Opened>>,
}

/// An open container and the process that opened it.
struct Opened {
    container: Container,
    pid: u32,
}

impl Opened {
    fn new(container: Container) -> Self {
        Opened {
            container,
            pid: std::process::id(),
        }
    }
}

impl PyContainer {
    /// The open container, opening it on first use.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Container> {
        let pid = std::process::id();
        {
            let guard = self.inner.read_py_attached(py).map_err(poisoned)?;
            if let Some(o) = guard.as_ref()
                && o.pid == pid
            {
                return Ok(o.container.clone());
            }
        }
        let folder = self.folder.clone();
        let opened = py
            .detach(|| Container::open(&folder))
            .map_err(|e| to_pyerr(py, e))?;
        let mut guard = self.inner.write_py_attached(py).map_err(poisoned)?;
        if let Some(o) = guard.take() {
            if o.pid == pid {
                // Another thread opened it meanwhile: use that one.
                let c = o.container.clone();
                *guard = Some(o);
                return Ok(c);
            }
            // Inherited through fork() from the parent process: its SQLite connections must
            // not be used, nor closed (closing could delete the WAL the parent still uses).
            std::mem::forget(o);
        }
        *guard = Some(Opened::new(opened.clone()));
        Ok(opened)
    }

    /// The open container, or `ValueError` when the folder is not a container
    /// (disk-objectstore's behaviour for direct-to-pack writes).
    fn handle_for_pack_write(&self, py: Python<'_>) -> PyResult<Container> {
        if !Container::is_initialised(&self.folder) {
            return Err(PyValueError::new_err(format!(
                "Invalid container folder: {}: the container is not initialised",
                self.folder.display()
            )));
        }
        self.handle(py)
    }

    fn write_options(compress: &str, fsync: bool) -> PyResult<PackWriteOptions> {
        Ok(PackWriteOptions::default()
            .with_compress(parse_compress(compress)?)
            .with_fsync(fsync))
    }
}

#[pymethods]
impl PyContainer {
    #[new]
    fn new(folder: PathBuf) -> Self {
        PyContainer {
            folder,
            inner: RwLock::new(None),
        }
    }

    /// The container folder, as given.
    #[getter]
    fn folder(&self) -> PathBuf {
        self.folder.clone()
    }

    /// Drops the open handle (index connection, pack files); the next call opens again.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let old = self.inner.write_py_attached(py).map_err(poisoned)?.take();
        match old {
            Some(o) if o.pid != std::process::id() => std::mem::forget(o),
            old => py.detach(|| drop(old)),
        }
        Ok(())
    }

    /// True if the folder holds a container.
    fn is_initialised(&self, py: Python<'_>) -> bool {
        let folder = self.folder.clone();
        py.detach(|| Container::is_initialised(&folder))
    }

    /// True if the container is open (rsdos addition, for tests).
    fn is_open(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self
            .inner
            .read_py_attached(py)
            .map_err(poisoned)?
            .as_ref()
            .is_some_and(|o| o.pid == std::process::id()))
    }

    /// Creates the container in the (empty or missing) folder and opens it; with `packs_url`
    /// its sealed packs go to remote storage (see `crate::remote`).
    #[pyo3(signature = (pack_size_target, loose_prefix_len, hash_type, compression_algorithm, packs_url=None, packs_options=None, store_credentials=false))]
    #[allow(clippy::too_many_arguments)]
    fn init(
        &self,
        py: Python<'_>,
        pack_size_target: u64,
        loose_prefix_len: usize,
        hash_type: &str,
        compression_algorithm: &str,
        packs_url: Option<String>,
        packs_options: Option<std::collections::BTreeMap<String, String>>,
        store_credentials: bool,
    ) -> PyResult<()> {
        let hash_type: HashType = hash_type
            .parse()
            .map_err(|e: rsdos::Error| PyValueError::new_err(e.to_string()))?;
        let algorithm: CompressionAlgorithm = compression_algorithm
            .parse()
            .map_err(|e: rsdos::Error| PyValueError::new_err(e.to_string()))?;
        let options = InitOptions::default()
            .with_pack_size_target(pack_size_target)
            .with_loose_prefix_len(loose_prefix_len)
            .with_hash_type(hash_type)
            .with_compression_algorithm(algorithm);
        let options = crate::remote::with_packs(
            options,
            packs_url.as_deref(),
            packs_options,
            store_credentials,
        )?;
        self.close(py)?;
        let folder = self.folder.clone();
        let container = py
            .detach(|| Container::init(&folder, &options))
            .map_err(|e| to_pyerr(py, e))?;
        *self.inner.write_py_attached(py).map_err(poisoned)? = Some(Opened::new(container));
        Ok(())
    }

    /// The configuration: a dict with `container_version`, `loose_prefix_len`,
    /// `pack_size_target`, `hash_type`, `container_id`, `compression_algorithm`.
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle(py)?;
        let config = c.config();
        let d = PyDict::new(py);
        d.set_item("container_version", config.container_version)?;
        d.set_item("loose_prefix_len", config.loose_prefix_len)?;
        d.set_item("pack_size_target", config.pack_size_target)?;
        d.set_item("hash_type", config.hash_type.as_str())?;
        d.set_item("container_id", &config.container_id)?;
        d.set_item(
            "compression_algorithm",
            config.compression_algorithm.to_string(),
        )?;
        Ok(d)
    }

    // ---- writing --------------------------------------------------------------------------

    /// Stores bytes (or any bytes-like object) as a loose object; returns the hashkey.
    fn add_object(&self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<String> {
        let c = self.handle(py)?;
        let bytes = to_bytes(content)?;
        let data: &[u8] = bytes.as_bytes();
        py.detach(|| c.add_object(data))
            .map_err(|e| to_pyerr(py, e))
    }

    /// Stores what `stream.read()` returns until the end, as a loose object.
    fn add_stream(&self, py: Python<'_>, stream: Py<PyAny>) -> PyResult<String> {
        let c = self.handle(py)?;
        let slot = PyErrSlot::new();
        let mut reader = PyRead::new(stream, false, slot.clone());
        py.detach(|| c.add_stream(&mut reader))
            .map_err(|e| to_pyerr_with(py, e, Some(&slot)))
    }

    /// Starts a batch of loose writes made durable together (`crate::write_batch`).
    #[pyo3(signature = (max_objects = None, max_bytes = None, use_syncfs = true))]
    fn write_batch(
        &self,
        py: Python<'_>,
        max_objects: Option<usize>,
        max_bytes: Option<u64>,
        use_syncfs: bool,
    ) -> PyResult<crate::write_batch::PyWriteBatch> {
        crate::write_batch::PyWriteBatch::new(&self.handle(py)?, max_objects, max_bytes, use_syncfs)
    }

    /// Stores bytes objects as loose objects through one write batch; one hashkey per input.
    fn add_objects_loose(
        &self,
        py: Python<'_>,
        contents: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<String>> {
        crate::write_batch::add_objects_loose(py, self.handle(py)?, contents)
    }

    /// Writes bytes objects straight into packs; one hashkey per input, in order.
    #[pyo3(signature = (contents, compress, fsync, callback = None))]
    fn add_objects_to_pack(
        &self,
        py: Python<'_>,
        contents: &Bound<'_, PyAny>,
        compress: &str,
        fsync: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let c = self.handle_for_pack_write(py)?;
        let options = Self::write_options(compress, fsync)?;
        let mut held = Vec::new();
        for item in contents.try_iter()? {
            held.push(to_bytes(&item?)?);
        }
        let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
        let total = slices.len() as u64;
        run(py, callback, move |progress| {
            progress.start_phase("Bulk storing", total);
            let p = Arc::clone(progress);
            let keys = c.add_many_to_pack(
                slices.into_iter().map(move |s| {
                    rsdos::Progress::advance(p.as_ref(), 1);
                    Cursor::new(s)
                }),
                &options,
            )?;
            rsdos::Progress::finish(progress.as_ref());
            Ok(keys)
        })
    }

    /// Writes Python streams straight into packs; one hashkey per input, in order. With
    /// `open_streams`, each item is a context manager (such as `LazyOpener`) entered only
    /// while it is copied. With `size_hint`, progress is reported in bytes (one stream).
    #[pyo3(signature = (streams, compress, fsync, open_streams, callback = None, size_hint = None))]
    #[allow(clippy::too_many_arguments)]
    fn add_streams_to_pack(
        &self,
        py: Python<'_>,
        streams: &Bound<'_, PyAny>,
        compress: &str,
        fsync: bool,
        open_streams: bool,
        callback: Option<Py<PyAny>>,
        size_hint: Option<u64>,
    ) -> PyResult<Vec<String>> {
        let c = self.handle_for_pack_write(py)?;
        let options = Self::write_options(compress, fsync)?;
        let mut objects: Vec<Py<PyAny>> = Vec::new();
        for item in streams.try_iter()? {
            objects.push(item?.unbind());
        }
        let total = objects.len() as u64;
        let slot = PyErrSlot::new();
        let progress_slot = PyErrSlot::new();
        let progress = Arc::new(PyProgress::new(callback, progress_slot.clone()));
        let p = Arc::clone(&progress);
        let reader_slot = slot.clone();
        let result = py.detach(move || {
            match size_hint {
                Some(hint) => p.start_phase("Streamed object", hint),
                None => p.start_phase("Bulk storing", total),
            }
            let per_object = Arc::clone(&p);
            let keys = c.add_many_to_pack(
                objects.into_iter().map(move |obj| {
                    let reader = PyRead::new(obj, open_streams, reader_slot.clone());
                    if size_hint.is_some() {
                        let progress: Arc<dyn rsdos::Progress> = per_object.clone();
                        reader.with_progress(progress)
                    } else {
                        rsdos::Progress::advance(per_object.as_ref(), 1);
                        reader
                    }
                }),
                &options,
            );
            rsdos::Progress::finish(p.as_ref());
            keys
        });
        match result {
            Ok(keys) => match progress_slot.take() {
                Some(e) => Err(e),
                None => Ok(keys),
            },
            Err(e) => {
                let e = to_pyerr_with(py, e, Some(&slot));
                Err(progress_slot.take().unwrap_or(e))
            }
        }
    }

    // ---- reading --------------------------------------------------------------------------

    /// The whole content of an object; `NotExistent` if it does not exist.
    fn get_content<'py>(&self, py: Python<'py>, hashkey: &str) -> PyResult<Bound<'py, PyBytes>> {
        let c = self.handle(py)?;
        if c.validate_key(hashkey).is_err() {
            return Err(not_existent_for(py, hashkey));
        }
        let mut reader = py
            .detach(|| c.open_object(hashkey))
            .map_err(|e| to_pyerr(py, e))?;
        let size = usize::try_from(reader.size())
            .map_err(|_| PyValueError::new_err("object too large for this platform"))?;
        let mut failure = None;
        let bytes = PyBytes::new_with(py, size, |buf| {
            if let Err(e) = py.detach(|| reader.read_exact(buf)) {
                failure = Some(e);
            }
            Ok(())
        })?;
        match failure {
            Some(e) => Err(read_error(py, e)),
            None => Ok(bytes),
        }
    }

    /// `(stream, ObjectMeta)` of one object; `NotExistent` if it does not exist.
    fn open<'py>(&self, py: Python<'py>, hashkey: &str) -> PyResult<Bound<'py, PyTuple>> {
        let c = self.handle(py)?;
        if c.validate_key(hashkey).is_err() {
            return Err(not_existent_for(py, hashkey));
        }
        let reader = py
            .detach(|| c.open_object(hashkey))
            .map_err(|e| to_pyerr(py, e))?;
        let meta = object_meta(py, reader.meta())?;
        let key = PyString::new(py, reader.hashkey()).unbind();
        let stream = Bound::new(py, ObjectStream::new(reader, key))?.into_any();
        PyTuple::new(py, [stream, meta])
    }

    /// Iterator of `(hashkey, stream or None, ObjectMeta)` over many objects.
    fn open_many(
        &self,
        py: Python<'_>,
        hashkeys: &Bound<'_, PyList>,
        skip_if_missing: bool,
    ) -> PyResult<ManyIter> {
        let c = self.handle(py)?;
        let (reader, invalid, keys) = start_read_many(py, &c, hashkeys, skip_if_missing)?;
        Ok(ManyIter::new(reader, dedup(invalid), skip_if_missing, keys))
    }

    /// `{hashkey: bytes}` of many objects (`None` for missing ones unless skipped).
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        hashkeys: &Bound<'py, PyList>,
        skip_if_missing: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle(py)?;
        let (mut many, invalid, _) = start_read_many(py, &c, hashkeys, skip_if_missing)?;
        let out = PyDict::new(py);
        loop {
            let batch = py.detach(|| {
                let mut batch: Vec<(String, Option<Vec<u8>>)> = Vec::new();
                let mut bytes = 0usize;
                for item in many.by_ref() {
                    let item = item?;
                    let content = match item.reader {
                        Some(mut r) => {
                            let data = r.read_all().map_err(|e| {
                                rsdos::Error::corrupt("object", item.hashkey.clone(), e.to_string())
                            })?;
                            bytes += data.len();
                            Some(data)
                        }
                        None => None,
                    };
                    batch.push((item.hashkey, content));
                    if bytes >= GET_MANY_BATCH_BYTES {
                        break;
                    }
                }
                Ok::<_, rsdos::Error>(batch)
            });
            let batch = batch.map_err(|e| to_pyerr(py, e))?;
            if batch.is_empty() {
                break;
            }
            for (key, content) in batch {
                match content {
                    Some(data) => out.set_item(key, PyBytes::new(py, &data))?,
                    None => out.set_item(key, py.None())?,
                }
            }
        }
        if !skip_if_missing {
            for key in invalid {
                out.set_item(key, py.None())?;
            }
        }
        Ok(out)
    }

    /// `ObjectMeta` of one object (type `MISSING` if it does not exist).
    fn meta<'py>(&self, py: Python<'py>, hashkey: &str) -> PyResult<Bound<'py, PyAny>> {
        let c = self.handle(py)?;
        let meta = if c.validate_key(hashkey).is_err() {
            rsdos::ObjectMeta::missing()
        } else {
            py.detach(|| c.meta(hashkey)).map_err(|e| to_pyerr(py, e))?
        };
        object_meta(py, &meta)
    }

    /// `[(hashkey, ObjectMeta)]` for each distinct key, in input order; missing ones are left
    /// out when `skip_if_missing`.
    fn meta_many<'py>(
        &self,
        py: Python<'py>,
        hashkeys: Vec<String>,
        skip_if_missing: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let c = self.handle(py)?;
        let keys = dedup(hashkeys);
        let (valid, _) = split_keys(&c, keys.clone());
        let metas = py
            .detach(|| c.meta_many(valid))
            .map_err(|e| to_pyerr(py, e))?;
        let mut by_key: std::collections::HashMap<String, rsdos::ObjectMeta> =
            metas.into_iter().collect();
        let out = PyList::empty(py);
        for key in keys {
            let meta = by_key
                .remove(&key)
                .unwrap_or_else(rsdos::ObjectMeta::missing);
            if skip_if_missing && meta.object_type == rsdos::ObjectType::Missing {
                continue;
            }
            let m = object_meta(py, &meta)?;
            out.append((key, m))?;
        }
        Ok(out)
    }

    /// True if the object exists (False for strings that are not hashkeys).
    fn has(&self, py: Python<'_>, hashkey: &str) -> PyResult<bool> {
        let c = self.handle(py)?;
        if c.validate_key(hashkey).is_err() {
            return Ok(false);
        }
        py.detach(|| c.has(hashkey)).map_err(|e| to_pyerr(py, e))
    }

    /// One boolean per input, in order.
    fn has_many(&self, py: Python<'_>, hashkeys: Vec<String>) -> PyResult<Vec<bool>> {
        let c = self.handle(py)?;
        let valid: Vec<bool> = hashkeys.iter().map(|k| c.validate_key(k).is_ok()).collect();
        let to_check: Vec<&str> = hashkeys
            .iter()
            .zip(&valid)
            .filter(|(_, v)| **v)
            .map(|(k, _)| k.as_str())
            .collect();
        let found = py
            .detach(|| c.has_many(to_check))
            .map_err(|e| to_pyerr(py, e))?;
        let mut found = found.into_iter();
        Ok(valid
            .into_iter()
            .map(|v| v && found.next().unwrap_or(false))
            .collect())
    }

    /// Iterator over every hashkey, each once.
    fn list_all(&self, py: Python<'_>) -> PyResult<HashkeyIter> {
        let c = self.handle(py)?;
        let iter = py
            .detach(|| c.iter_hashkeys())
            .map_err(|e| to_pyerr(py, e))?;
        Ok(HashkeyIter::new(Box::new(iter)))
    }

    /// `(packed, loose, pack_files)`.
    fn count(&self, py: Python<'_>) -> PyResult<(u64, u64, u64)> {
        let c = self.handle(py)?;
        let n = py.detach(|| c.count()).map_err(|e| to_pyerr(py, e))?;
        Ok((n.packed, n.loose, n.pack_files))
    }

    /// The five sizes of `TotalSize`, in its field order.
    fn total_size(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64)> {
        let c = self.handle(py)?;
        let t = py.detach(|| c.total_size()).map_err(|e| to_pyerr(py, e))?;
        Ok((
            t.total_size_packed,
            t.total_size_packed_on_disk,
            t.total_size_packfiles_on_disk,
            t.total_size_packindexes_on_disk,
            t.total_size_loose,
        ))
    }

    /// Path of the loose file an object has or would have.
    fn loose_path(&self, py: Python<'_>, hashkey: &str) -> PyResult<PathBuf> {
        let c = self.handle(py)?;
        c.loose_path(hashkey).map_err(|e| to_pyerr(py, e))
    }

    /// Makes the object available as a loose file (decompressing a packed one) and returns
    /// the path; `NotExistent` if it does not exist.
    fn loosen(&self, py: Python<'_>, hashkey: &str) -> PyResult<PathBuf> {
        let c = self.handle(py)?;
        if c.validate_key(hashkey).is_err() {
            return Err(not_existent_for(py, hashkey));
        }
        py.detach(|| loosen(&c, hashkey))
            .map_err(|e| to_pyerr(py, e))
    }

    // ---- maintenance ----------------------------------------------------------------------

    /// Packs all loose objects; returns the hashkeys of loose files whose content does not
    /// match their name (left unpacked).
    #[pyo3(signature = (compress, fsync, clean_loose_per_pack, callback = None))]
    fn pack_loose(
        &self,
        py: Python<'_>,
        compress: &str,
        fsync: bool,
        clean_loose_per_pack: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let c = self.handle(py)?;
        let options = PackOptions::default()
            .with_compress(parse_compress(compress)?)
            .with_fsync(fsync)
            .with_clean_loose_per_pack(clean_loose_per_pack);
        run(py, callback, |progress| {
            c.pack_loose(&options, progress.as_ref())
                .map(|r| r.corrupt_loose)
        })
    }

    /// Rewrites packs (those with holes, or all with `all` or a compression change).
    #[pyo3(signature = (compress, all, vacuum, callback = None))]
    fn repack(
        &self,
        py: Python<'_>,
        compress: &str,
        all: bool,
        vacuum: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(u64, u64)>> {
        let c = self.handle(py)?;
        let options = RepackOptions::default()
            .with_compress(parse_compress(compress)?)
            .with_all(all)
            .with_vacuum(vacuum);
        run(py, callback, |progress| {
            c.repack(&options, progress.as_ref()).map(|r| r.rewritten)
        })
    }

    /// Deletes loose copies of packed objects, resolves duplicates, sweeps the sandbox;
    /// returns the hashkeys whose duplicates were all inconsistent.
    #[pyo3(signature = (vacuum, callback = None))]
    fn clean(
        &self,
        py: Python<'_>,
        vacuum: bool,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<String>> {
        let c = self.handle(py)?;
        let options = CleanOptions::default().with_vacuum(vacuum);
        run(py, callback, |progress| {
            c.clean(&options, progress.as_ref())
                .map(|r| r.inconsistent_duplicates)
        })
    }

    /// Validates every object; returns a dict with every list of the report.
    #[pyo3(signature = (callback = None))]
    fn validate<'py>(
        &self,
        py: Python<'py>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle(py)?;
        let report = run(py, callback, |progress| {
            c.validate(&ValidateOptions::default(), progress.as_ref())
        })?;
        let d = PyDict::new(py);
        d.set_item("invalid_hashes_loose", &report.invalid_hashes_loose)?;
        d.set_item("invalid_hashes_packed", &report.invalid_hashes_packed)?;
        d.set_item("invalid_sizes_packed", &report.invalid_sizes_packed)?;
        d.set_item("overlapping_packed", &report.overlapping_packed)?;
        d.set_item("unreadable_packed", &report.unreadable_packed)?;
        d.set_item("missing_packs", &report.missing_packs)?;
        d.set_item("rows_pointing_nowhere", &report.rows_pointing_nowhere)?;
        d.set_item("invalid_loose_names", &report.invalid_loose_names)?;
        d.set_item("unreadable_loose", &report.unreadable_loose)?;
        d.set_item("config_problems", &report.config_problems)?;
        Ok(d)
    }

    /// Deletes objects; returns the hashkeys that existed (input order, each once).
    fn delete(&self, py: Python<'_>, hashkeys: Vec<String>) -> PyResult<Vec<String>> {
        let c = self.handle(py)?;
        let (valid, _) = split_keys(&c, hashkeys);
        py.detach(|| c.delete(valid)).map_err(|e| to_pyerr(py, e))
    }

    /// Copies objects of `source` (an `RsContainer`, or anything with `get_folder()`, such
    /// as a disk-objectstore container) into packs; returns `[(source key, new key)]`.
    #[pyo3(signature = (source, hashkeys, compress, callback = None))]
    fn import_from(
        &self,
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        hashkeys: Option<Vec<String>>,
        compress: &str,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Vec<(String, String)>> {
        let c = self.handle_for_pack_write(py)?;
        let source = match source.cast::<PyContainer>() {
            Ok(s) => s.get().handle(py)?,
            Err(_) => {
                let folder: PathBuf = source.call_method0("get_folder")?.extract()?;
                py.detach(|| Container::open(&folder))
                    .map_err(|e| to_pyerr(py, e))?
            }
        };
        let keys = hashkeys.map(|k| split_keys(&source, k).0);
        let compress = parse_compress(compress)?;
        run(py, callback, |progress| {
            c.import_from(&source, keys.as_deref(), compress, progress.as_ref())
                .map(|r| r.mapping)
        })
    }

    /// Opens pack `pack_id` for appending, holding its lock until closed; `FileExistsError`
    /// if another appender holds it.
    fn lock_pack(&self, py: Python<'_>, pack_id: u64) -> PyResult<PackHandle> {
        let c = self.handle(py)?;
        let appender = py.detach(|| c.packs().open_append(pack_id)).map_err(|e| {
            if e.kind() == rsdos::ErrorKind::Locked {
                pyo3::exceptions::PyFileExistsError::new_err(format!(
                    "pack {pack_id} is locked: {e}"
                ))
            } else {
                to_pyerr(py, e)
            }
        })?;
        Ok(PackHandle {
            appender: Mutex::new(Some(appender)),
            pack_id,
        })
    }

    // ---- rsdos additions ------------------------------------------------------------------

    /// Starts packing loose objects automatically in a background thread (rsdos addition).
    /// Thresholds: number of loose objects, their total bytes, the age of the oldest (seconds);
    /// `poll_interval` in seconds; `compress` one of no/yes/auto.
    #[pyo3(signature = (max_loose_objects = None, max_loose_bytes = None, max_age = None, poll_interval = None, compress = "no"))]
    fn start_auto_pack(
        &self,
        py: Python<'_>,
        max_loose_objects: Option<u64>,
        max_loose_bytes: Option<u64>,
        max_age: Option<f64>,
        poll_interval: Option<f64>,
        compress: &str,
    ) -> PyResult<PyAutoPacker> {
        let seconds = |v: f64, what: &str| {
            std::time::Duration::try_from_secs_f64(v).map_err(|_| {
                PyValueError::new_err(format!("{what} must be a non-negative number of seconds"))
            })
        };
        let mut options =
            rsdos::AutoPackOptions::default().with_compress(parse_compress(compress)?);
        if let Some(n) = max_loose_objects {
            options = options.with_max_loose_objects(n);
        }
        if let Some(b) = max_loose_bytes {
            options = options.with_max_loose_bytes(b);
        }
        if let Some(a) = max_age {
            options = options.with_max_age(seconds(a, "max_age")?);
        }
        if let Some(p) = poll_interval {
            options = options.with_poll_interval(seconds(p, "poll_interval")?);
        }
        let c = self.handle(py)?;
        let packer = py
            .detach(|| c.start_auto_pack(options))
            .map_err(|e| to_pyerr(py, e))?;
        Ok(PyAutoPacker {
            packer: std::sync::Mutex::new(Some(packer)),
        })
    }

    /// Recompresses zlib objects with zstd at `level` (disk-objectstore cannot read the
    /// result); returns the report as a dict.
    #[pyo3(signature = (level, callback = None))]
    fn migrate_to_zstd<'py>(
        &self,
        py: Python<'py>,
        level: i32,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle(py)?;
        let r = run(py, callback, |progress| {
            c.migrate_to_zstd(level, progress.as_ref())
        })?;
        let d = PyDict::new(py);
        d.set_item("packs_rewritten", r.packs_rewritten)?;
        d.set_item("objects_recompressed", r.objects_recompressed)?;
        d.set_item("unreferenced_packs_removed", r.unreferenced_packs_removed)?;
        d.set_item("bytes_before", r.bytes_before)?;
        d.set_item("bytes_after", r.bytes_after)?;
        Ok(d)
    }

    /// Incremental backup into `dest`; returns the report as a dict.
    #[pyo3(signature = (dest, keep, callback = None))]
    fn backup<'py>(
        &self,
        py: Python<'py>,
        dest: PathBuf,
        keep: usize,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let c = self.handle(py)?;
        let options = BackupOptions::default().with_keep(keep);
        let r = run(py, callback, |progress| {
            c.backup(&dest, &options, progress.as_ref())
        })?;
        let d = PyDict::new(py);
        d.set_item("path", r.path.clone())?;
        d.set_item("container_path", r.container_path())?;
        d.set_item("files_linked", r.files_linked)?;
        d.set_item("files_copied", r.files_copied)?;
        d.set_item("bytes_copied", r.bytes_copied)?;
        d.set_item("backups_removed", r.backups_removed.clone())?;
        d.set_item("warnings", r.warnings.clone())?;
        Ok(d)
    }

    /// Recreates `packs.idx` from the pack sidecars; returns the report as a dict. The
    /// handle is closed afterwards (the next call opens the new index).
    #[pyo3(signature = (callback = None))]
    fn rebuild_index<'py>(
        &self,
        py: Python<'py>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        self.close(py)?;
        let folder = self.folder.clone();
        let r = run(py, callback, |progress| {
            Container::rebuild_index_at(&folder, progress.as_ref())
        })?;
        let d = PyDict::new(py);
        d.set_item("packs_rebuilt", r.packs_rebuilt)?;
        d.set_item("objects_indexed", r.objects_indexed)?;
        d.set_item("undescribed_packs", r.undescribed_packs.clone())?;
        d.set_item("corrupt_entries", r.corrupt_entries.clone())?;
        d.set_item("carried_over_objects", r.carried_over_objects)?;
        d.set_item("sidecar_problems", r.sidecar_problems.clone())?;
        Ok(d)
    }

    /// Writes a consistent copy of the index `packs.idx` to `dest` (SQLite `VACUUM INTO`),
    /// safe while other processes write. Done with rsdos's own SQLite: opening `packs.idx`
    /// with Python's `sqlite3` in a process where rsdos has it open is not safe (two SQLite
    /// copies in one process do not see each other's locks).
    fn backup_index(&self, py: Python<'_>, dest: PathBuf) -> PyResult<()> {
        let c = self.handle(py)?;
        let index = c.path().join("packs.idx");
        py.detach(|| rsdos_index_sqlite::SqliteIndex::open(&index).and_then(|i| i.backup_to(&dest)))
            .map_err(|e| to_pyerr(py, e))
    }

    fn __repr__(&self) -> String {
        format!("<rsdos.RsContainer {}>", self.folder.display())
    }
}

/// Writes the object as a loose file if it is not one already (disk-objectstore's
/// `loosen_object`): streamed into `sandbox/`, verified against the hashkey, fsynced, renamed
/// into place.
fn loosen(c: &Container, hashkey: &str) -> rsdos::Result<PathBuf> {
    let dest = c.loose_path(hashkey)?;
    if dest.is_file() {
        return Ok(dest);
    }
    let mut reader = c.open_object(hashkey)?;
    let sandbox = c.path().join("sandbox");
    let tmp = sandbox.join(uuid::Uuid::new_v4().simple().to_string());
    let result = write_verified(c, hashkey, &mut reader, &tmp, &dest);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

fn write_verified(
    c: &Container,
    hashkey: &str,
    reader: &mut dyn Read,
    tmp: &Path,
    dest: &Path,
) -> rsdos::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(|e| rsdos::Error::io("create sandbox file", tmp, e))?;
    let mut hasher = c.config().hash_type.hasher();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(rsdos::Error::corrupt(
                    "object",
                    hashkey.to_string(),
                    format!("cannot read: {e}"),
                ));
            }
        };
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .map_err(|e| rsdos::Error::io("write sandbox file", tmp, e))?;
    }
    if hasher.finish_hex() != hashkey {
        return Err(rsdos::Error::corrupt(
            "object",
            hashkey.to_string(),
            "content does not match its hashkey",
        ));
    }
    file.sync_all()
        .map_err(|e| rsdos::Error::io("fsync", tmp, e))?;
    drop(file);
    let shard = dest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| c.path().join("loose"));
    match std::fs::create_dir(&shard) {
        Ok(()) => rsdos_core::durable::fsync_dir(&c.path().join("loose"))?,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(rsdos::Error::io("create loose folder", &shard, e)),
    }
    std::fs::rename(tmp, dest).map_err(|e| rsdos::Error::io("move into place", dest, e))?;
    rsdos_core::durable::fsync_dir(&shard)
}

/// A pack opened for appending by `lock_pack`: `write`, `tell`, `flush`, `fsync`, `close`.
/// The pack's lock is held until it is closed.
#[pyclass(module = "rsdos._rsdos", name = "PackHandle", frozen)]
pub(crate) struct PackHandle {
    appender: Mutex<Option<Box<dyn PackAppender>>>,
    pack_id: u64,
}

impl PackHandle {
    fn with<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn PackAppender) -> std::io::Result<T> + Send,
    ) -> PyResult<T>
    where
        T: Send,
    {
        let mut guard = self.appender.lock_py_attached(py).map_err(poisoned)?;
        let appender = guard.as_mut().ok_or_else(closed_file)?;
        let appender: &mut dyn PackAppender = appender.as_mut();
        py.detach(|| f(appender)).map_err(|e| read_error(py, e))
    }
}

#[pymethods]
impl PackHandle {
    /// Appends bytes; returns the number written.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let bytes = to_bytes(data)?;
        let data: &[u8] = bytes.as_bytes();
        self.with(py, |a| a.write_all(data).map(|()| data.len()))
    }

    /// The current length of the pack.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        self.with(py, |a| Ok(a.position()))
    }

    /// Flushes buffered bytes to the file.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |a| a.flush())
    }

    /// Flushes and fsyncs the pack.
    fn fsync(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |a| a.sync().map_err(std::io::Error::from))
    }

    /// Closes the pack and releases its lock; idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let appender = self.appender.lock_py_attached(py).map_err(poisoned)?.take();
        if let Some(mut a) = appender {
            py.detach(|| a.flush()).map_err(|e| read_error(py, e))?;
        }
        Ok(())
    }

    /// True once closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self
            .appender
            .lock_py_attached(py)
            .map_err(poisoned)?
            .is_none())
    }

    /// The pack id.
    #[getter]
    fn pack_id(&self) -> u64 {
        self.pack_id
    }

    /// Always `'ab'`.
    #[getter]
    fn mode(&self) -> &'static str {
        "ab"
    }

    /// Always False.
    fn readable(&self) -> bool {
        false
    }

    /// Always True.
    fn writable(&self) -> bool {
        true
    }

    /// Always False.
    fn seekable(&self) -> bool {
        false
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// A running automatic packer (`Container.start_auto_pack`); stopped by `stop()`, by the
/// container's `close()`, or when garbage-collected.
#[pyclass(module = "rsdos._rsdos", name = "AutoPacker", frozen)]
pub(crate) struct PyAutoPacker {
    packer: std::sync::Mutex<Option<rsdos::AutoPacker>>,
}

fn auto_pack_stats<'py>(py: Python<'py>, s: &rsdos::AutoPackStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("rounds", s.rounds)?;
    d.set_item("batches", s.batches)?;
    d.set_item("objects_packed", s.objects_packed)?;
    d.set_item("bytes_packed", s.bytes_packed)?;
    d.set_item("loose_deleted", s.loose_deleted)?;
    d.set_item("loose_objects", s.loose_objects)?;
    d.set_item("errors", s.errors)?;
    d.set_item("last_error", s.last_error.clone())?;
    d.set_item(
        "last_activity",
        s.last_activity
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
    )?;
    Ok(d)
}

#[pymethods]
impl PyAutoPacker {
    /// Stops the packer (after its current batch) and returns its statistics as a dict;
    /// `None` if it was already stopped.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let packer = self.packer.lock_py_attached(py).map_err(poisoned)?.take();
        match packer {
            None => Ok(None),
            Some(p) => {
                let stats = py.detach(|| p.stop()).map_err(|e| to_pyerr(py, e))?;
                auto_pack_stats(py, &stats).map(Some)
            }
        }
    }

    /// True while the packer's thread runs.
    fn is_running(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self
            .packer
            .lock_py_attached(py)
            .map_err(poisoned)?
            .as_ref()
            .is_some_and(|p| p.is_running()))
    }

    /// Statistics so far, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let guard = self.packer.lock_py_attached(py).map_err(poisoned)?;
        match guard.as_ref() {
            None => Ok(None),
            Some(p) => auto_pack_stats(py, &p.stats()).map(Some),
        }
    }
}
