//! Adapters between Python objects and rsdos: Python streams as [`Read`], Python callbacks as
//! [`Progress`]. Both are used while the GIL is released; they take it back for each call.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict};
use rsdos::{Progress, ProgressUnit};

use crate::errors::{PyErrSlot, py_io_error};

/// Size of the chunks asked from a Python stream when the caller's buffer is larger.
const MAX_CHUNK: usize = 4 * 1024 * 1024;

/// A Python object with a `read(n)` method (a file, `BytesIO`, a socket file, ...) as a Rust
/// reader. With `enter`, the object is a context manager (such as `LazyOpener`) entered on
/// the first read and exited at the end of the data (or when dropped), so that only the
/// stream being copied is open.
///
/// A regular file opened for binary reading (`io.FileIO`, `io.BufferedReader`,
/// `io.BufferedRandom`) is read directly, without the GIL and without copying through Python
/// objects, from its current position; at the end its position is set to the end of what was
/// read, as a Python `read()` to the end would leave it.
pub(crate) struct PyRead {
    obj: Py<PyAny>,
    enter: bool,
    /// The stream to read from (the object itself, or what `__enter__` returned).
    stream: Option<Py<PyAny>>,
    /// The same file opened by us, with the position to read at, when the stream is a regular
    /// file.
    direct: Option<(File, u64)>,
    entered: bool,
    done: bool,
    /// Bytes returned by `read` beyond what the caller asked for.
    pending: Vec<u8>,
    pending_pos: usize,
    errors: PyErrSlot,
    progress: Option<Arc<dyn Progress>>,
}

impl PyRead {
    pub(crate) fn new(obj: Py<PyAny>, enter: bool, errors: PyErrSlot) -> Self {
        PyRead {
            obj,
            enter,
            stream: None,
            direct: None,
            entered: false,
            done: false,
            pending: Vec::new(),
            pending_pos: 0,
            errors,
            progress: None,
        }
    }

    /// Also reports every byte read to `progress` (`advance`).
    pub(crate) fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Enters the context manager if needed and looks at what kind of stream it is.
    fn open(&mut self, py: Python<'_>) -> PyResult<()> {
        let stream = if self.enter {
            let s = self.obj.bind(py).call_method0(intern!(py, "__enter__"))?;
            self.entered = true;
            s
        } else {
            self.obj.bind(py).clone()
        };
        self.direct = direct_file(&stream);
        self.stream = Some(stream.unbind());
        Ok(())
    }

    fn read_py(&mut self, py: Python<'_>, out: &mut [u8]) -> PyResult<usize> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(0);
        };
        let want = out.len().min(MAX_CHUNK);
        let data = stream.bind(py).call_method1(intern!(py, "read"), (want,))?;
        let n = if let Ok(b) = data.cast::<PyBytes>() {
            self.take(b.as_bytes(), out)
        } else if let Ok(b) = data.cast::<PyByteArray>() {
            let v = b.to_vec();
            self.take(&v, out)
        } else if data.is_none() {
            // A non-blocking stream with nothing available: not supported, treat as an error
            // rather than as the end of the data.
            return Err(pyo3::exceptions::PyBlockingIOError::new_err(
                "the stream returned None (non-blocking stream without data)",
            ));
        } else {
            let v: Vec<u8> = py
                .get_type::<PyBytes>()
                .call1((data,))?
                .cast_into::<PyBytes>()?
                .as_bytes()
                .to_vec();
            self.take(&v, out)
        };
        Ok(n)
    }

    /// Copies `data` into `out`, keeping what does not fit for the next read.
    fn take(&mut self, data: &[u8], out: &mut [u8]) -> usize {
        let n = data.len().min(out.len());
        out[..n].copy_from_slice(&data[..n]);
        if n < data.len() {
            self.pending.clear();
            self.pending.extend_from_slice(&data[n..]);
            self.pending_pos = 0;
        }
        n
    }

    /// At the end of the data: leaves a directly read file where a Python read would have,
    /// and exits the context manager.
    fn finish(&mut self, py: Python<'_>) -> PyResult<()> {
        if let (Some((_, pos)), Some(stream)) = (self.direct.take(), self.stream.as_ref()) {
            stream.bind(py).call_method1(intern!(py, "seek"), (pos,))?;
        }
        self.exit(py)
    }

    fn exit(&mut self, py: Python<'_>) -> PyResult<()> {
        self.direct = None;
        self.stream = None;
        if self.entered {
            self.entered = false;
            self.obj
                .bind(py)
                .call_method1(intern!(py, "__exit__"), (py.None(), py.None(), py.None()))?;
        }
        Ok(())
    }

    fn report(&self, n: usize) {
        if let Some(p) = self.progress.as_ref() {
            p.advance(n as u64);
        }
    }
}

/// The regular file behind `stream`, opened anew, and the stream's position, if `stream` is
/// a readable binary file object of the `io` module (exactly, not a subclass) on a regular file (Linux only: the file is
/// reopened through `/proc/self/fd`, and checked to be the same inode).
fn direct_file(stream: &Bound<'_, PyAny>) -> Option<(File, u64)> {
    let py = stream.py();
    let io = py.import("io").ok()?;
    // Exact types only: a subclass may override `read`.
    let ty = stream.get_type();
    let known = ["FileIO", "BufferedReader", "BufferedRandom"]
        .iter()
        .any(|name| io.getattr(*name).is_ok_and(|k| ty.is(&k)));
    if !known {
        return None;
    }
    if !stream.call_method0("readable").ok()?.is_truthy().ok()?
        || !stream.call_method0("seekable").ok()?.is_truthy().ok()?
    {
        return None;
    }
    let fd: i32 = stream.call_method0("fileno").ok()?.extract().ok()?;
    let pos: u64 = stream.call_method0("tell").ok()?.extract().ok()?;
    let st = py.import("os").ok()?.call_method1("fstat", (fd,)).ok()?;
    let (ino, dev, mode): (u64, u64, u32) = (
        st.getattr("st_ino").ok()?.extract().ok()?,
        st.getattr("st_dev").ok()?.extract().ok()?,
        st.getattr("st_mode").ok()?.extract().ok()?,
    );
    // S_IFREG
    if mode & 0o170000 != 0o100000 {
        return None;
    }
    let mut file = File::open(format!("/proc/self/fd/{fd}")).ok()?;
    let meta = file.metadata().ok()?;
    if meta.ino() != ino || meta.dev() != dev {
        return None;
    }
    file.seek(SeekFrom::Start(pos)).ok()?;
    Some((file, pos))
}

impl Read for PyRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pending_pos < self.pending.len() {
            let n = out.len().min(self.pending.len() - self.pending_pos);
            out[..n].copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + n]);
            self.pending_pos += n;
            self.report(n);
            return Ok(n);
        }
        if self.done {
            return Ok(0);
        }
        if self.stream.is_none() {
            let opened = Python::attach(|py| {
                self.open(py)
                    .inspect_err(|e| self.errors.set(e.clone_ref(py)))
            });
            opened.map_err(py_io_error)?;
        }
        if let Some((file, pos)) = self.direct.as_mut() {
            let n = loop {
                match file.read(out) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            *pos += n as u64;
            if n > 0 {
                self.report(n);
                return Ok(n);
            }
        }
        let result = Python::attach(|py| {
            let read = if self.direct.is_some() {
                Ok(0)
            } else {
                self.read_py(py, out)
            };
            let read = read.and_then(|n| {
                if n == 0 {
                    self.done = true;
                    self.finish(py)?;
                }
                Ok(n)
            });
            read.inspect_err(|e| self.errors.set(e.clone_ref(py)))
        });
        match result {
            Ok(n) => {
                self.report(n);
                Ok(n)
            }
            Err(e) => Err(py_io_error(e)),
        }
    }
}

impl Drop for PyRead {
    fn drop(&mut self) {
        if self.entered {
            Python::attach(|py| {
                if let Err(e) = self.exit(py) {
                    self.errors.set(e);
                }
            });
        }
    }
}

/// Reports progress to a Python callable as disk-objectstore does:
/// `callback(action='init', value={'total': n, 'description': s})`, then
/// `callback(action='update', value=n)` with increments, then `callback(action='close',
/// value=None)`. Updates are batched (at most ~400 calls per phase). Without a callable it
/// only watches for signals.
///
/// Either way it checks, at most every 100 ms, whether a signal handler raised (Ctrl-C):
/// the operation then stops at its next safe point and the exception is re-raised.
pub(crate) struct PyProgress {
    callback: Option<Py<PyAny>>,
    errors: PyErrSlot,
    state: Mutex<PhaseState>,
    last_signal_check: Mutex<Instant>,
    pending: AtomicU64,
    threshold: AtomicU64,
}

#[derive(Default)]
struct PhaseState {
    open: bool,
}

impl PyProgress {
    pub(crate) fn new(callback: Option<Py<PyAny>>, errors: PyErrSlot) -> Self {
        PyProgress {
            callback,
            errors,
            state: Mutex::new(PhaseState::default()),
            last_signal_check: Mutex::new(Instant::now()),
            pending: AtomicU64::new(0),
            threshold: AtomicU64::new(1),
        }
    }

    fn call(&self, action: &str, value: impl for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>>) {
        let Some(cb) = self.callback.as_ref() else {
            return;
        };
        if self.errors.is_set() {
            return;
        }
        Python::attach(|py| {
            let result = (|| {
                let kwargs = PyDict::new(py);
                kwargs.set_item(intern!(py, "action"), action)?;
                kwargs.set_item(intern!(py, "value"), value(py)?)?;
                cb.bind(py).call((), Some(&kwargs))?;
                Ok::<(), PyErr>(())
            })();
            if let Err(e) = result {
                self.errors.set(e);
            }
        });
    }

    fn flush(&self) {
        let n = self.pending.swap(0, Ordering::SeqCst);
        if n > 0 {
            self.call("update", |py| Ok(n.into_pyobject(py)?.into_any().unbind()));
        }
    }

    /// Ends the open phase, if any (after an error, so that bars are closed).
    pub(crate) fn close_open_phase(&self) {
        let open = self.state.lock().map(|s| s.open).unwrap_or(false);
        if open {
            self.finish();
        }
    }

    /// Opens a phase from the Python side of an operation (not from rsdos).
    pub(crate) fn start_phase(&self, description: &str, total: u64) {
        self.start(description, total, ProgressUnit::Objects);
    }
}

impl Progress for PyProgress {
    fn start(&self, description: &str, total: u64, _unit: ProgressUnit) {
        self.flush();
        if let Ok(mut s) = self.state.lock() {
            s.open = true;
        }
        self.threshold.store((total / 400).max(1), Ordering::SeqCst);
        let description = description.to_string();
        self.call("init", move |py| {
            let d = PyDict::new(py);
            d.set_item("total", total)?;
            d.set_item("description", description)?;
            Ok(d.into_any().unbind())
        });
    }

    fn advance(&self, n: u64) {
        if self.callback.is_none() {
            return;
        }
        let pending = self.pending.fetch_add(n, Ordering::SeqCst) + n;
        if pending >= self.threshold.load(Ordering::SeqCst) {
            self.flush();
        }
    }

    fn finish(&self) {
        self.flush();
        if let Ok(mut s) = self.state.lock() {
            s.open = false;
        }
        self.call("close", |py| Ok(py.None()));
    }

    fn should_stop(&self) -> bool {
        if self.errors.is_set() {
            return true;
        }
        let due = match self.last_signal_check.lock() {
            Ok(mut last) if last.elapsed() >= Duration::from_millis(100) => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due && let Err(e) = Python::attach(|py| py.check_signals()) {
            self.errors.set(e);
            return true;
        }
        false
    }
}
