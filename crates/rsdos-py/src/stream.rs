//! `ObjectStream`: one object's content as a read-only binary file object.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::{MutexExt, PyOnceLock};
use pyo3::types::{PyBytes, PyList, PyMemoryView, PySlice, PyString, PyType};
use rsdos::ObjectReader;

use crate::errors::{closed_file, error_message, to_pyerr};

/// Chunk read while looking for the end of a line.
const LINE_CHUNK: usize = 8 * 1024;

struct StreamState {
    reader: Option<ObjectReader>,
    /// Logical position: what `tell()` returns.
    pos: u64,
    /// Bytes read from the reader but not consumed yet (by `readline`).
    peek: Vec<u8>,
}

/// A read-only, seekable binary stream over one object (`mode == 'rb'`), usable where Python
/// expects a binary file: `read`, `read1`, `readinto`, `readline`, iteration, `seek` with
/// whence 0, 1 and 2 (exact also on compressed objects), `tell`, `close`, context manager;
/// `io.TextIOWrapper`, `shutil.copyfileobj`, numpy and h5py accept it. Reads and seeks run
/// with the GIL released. Safe to share between threads (calls are serialised).
#[pyclass(module = "rsdos._rsdos", name = "ObjectStream", frozen)]
pub(crate) struct ObjectStream {
    state: Mutex<StreamState>,
    size: u64,
    /// The same string object as the key yielded beside the stream (no copy per object).
    hashkey: Py<PyString>,
}

/// Reads of at most this many bytes from memory are done with the GIL held.
const IN_PLACE_READ_MAX: usize = 64 * 1024;

fn poisoned<T>(_: T) -> PyErr {
    PyRuntimeError::new_err("a previous operation on this stream panicked")
}

fn unsupported(py: Python<'_>, what: &str) -> PyErr {
    static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    match CELL.import(py, "io", "UnsupportedOperation") {
        Ok(t) => PyErr::from_type(t.clone(), what.to_string()),
        Err(e) => e,
    }
}

/// The Python exception for an error of reading an object.
pub(crate) fn read_error(py: Python<'_>, e: std::io::Error) -> PyErr {
    if e.get_ref().is_some_and(|i| i.is::<rsdos::Error>()) {
        let kind = e.kind();
        return match e.into_inner().map(|i| i.downcast::<rsdos::Error>()) {
            Some(Ok(err)) => to_pyerr(py, *err),
            _ => pyo3::exceptions::PyOSError::new_err(format!("read failed: {kind}")),
        };
    }
    match e.raw_os_error() {
        Some(errno) => pyo3::exceptions::PyOSError::new_err((errno, error_message(&e))),
        None if e.kind() == std::io::ErrorKind::InvalidInput => {
            PyValueError::new_err(error_message(&e))
        }
        None => pyo3::exceptions::PyOSError::new_err(error_message(&e)),
    }
}

/// Reads exactly `buf.len()` bytes: first from `peek`, then from `reader`.
fn fill(reader: &mut ObjectReader, peek: &mut Vec<u8>, buf: &mut [u8]) -> std::io::Result<()> {
    let from_peek = peek.len().min(buf.len());
    buf[..from_peek].copy_from_slice(&peek[..from_peek]);
    peek.drain(..from_peek);
    reader.read_exact(&mut buf[from_peek..])
}

impl ObjectStream {
    pub(crate) fn new(reader: ObjectReader, hashkey: Py<PyString>) -> Self {
        ObjectStream {
            size: reader.size(),
            hashkey,
            state: Mutex::new(StreamState {
                reader: Some(reader),
                pos: 0,
                peek: Vec::new(),
            }),
        }
    }

    pub(crate) fn is_closed(&self, py: Python<'_>) -> bool {
        self.state
            .lock_py_attached(py)
            .map(|s| s.reader.is_none())
            .unwrap_or(true)
    }

    /// Reads up to `size` bytes (all that is left for `None` or a negative size).
    pub(crate) fn read_bytes<'py>(
        &self,
        py: Python<'py>,
        size: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        let st = &mut *guard;
        let reader = st.reader.as_mut().ok_or_else(closed_file)?;
        let remaining = self.size.saturating_sub(st.pos);
        let n = match size {
            Some(s) if s >= 0 => remaining.min(s as u64),
            _ => remaining,
        };
        let n = usize::try_from(n).map_err(|_| PyValueError::new_err("read size too large"))?;
        if st.peek.is_empty()
            && let Some(rest) = reader.buffered_rest()
            && let Some(content) = rest.get(..n)
        {
            // One copy into the new bytes object, instead of zero-filling it and copying.
            let bytes = PyBytes::new(py, content);
            reader
                .seek(SeekFrom::Current(n as i64))
                .map_err(|e| read_error(py, e))?;
            st.pos += n as u64;
            return Ok(bytes);
        }
        let peek = &mut st.peek;
        let mut failure = None;
        // Releasing and taking back the GIL costs more than copying a small object out of a
        // bulk read's window: such reads stay on this thread.
        let in_place = n <= IN_PLACE_READ_MAX && reader.reads_from_memory();
        let bytes = PyBytes::new_with(py, n, |buf| {
            if n > 0 {
                let read = if in_place {
                    fill(reader, peek, buf)
                } else {
                    py.detach(|| fill(reader, peek, buf))
                };
                if let Err(e) = read {
                    failure = Some(e);
                }
            }
            Ok(())
        })?;
        if let Some(e) = failure {
            return Err(read_error(py, e));
        }
        st.pos += n as u64;
        Ok(bytes)
    }

    fn seek_to(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        let st = &mut *guard;
        let reader = st.reader.as_mut().ok_or_else(closed_file)?;
        let base: i128 = match whence {
            0 => 0,
            1 => i128::from(st.pos),
            2 => i128::from(self.size),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "invalid whence ({whence}, should be 0, 1 or 2)"
                )));
            }
        };
        let target = base + i128::from(offset);
        if target < 0 {
            return Err(PyValueError::new_err(format!(
                "negative seek position {target}"
            )));
        }
        let target =
            u64::try_from(target).map_err(|_| PyValueError::new_err("seek position too large"))?;
        if target == st.pos {
            return Ok(target);
        }
        st.peek.clear();
        py.detach(|| reader.seek(SeekFrom::Start(target)))
            .map_err(|e| read_error(py, e))?;
        st.pos = target;
        Ok(target)
    }

    /// Reads one line (up to `limit` bytes when given).
    fn line<'py>(&self, py: Python<'py>, limit: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        let st = &mut *guard;
        let reader = st.reader.as_mut().ok_or_else(closed_file)?;
        let limit = match limit {
            Some(l) if l >= 0 => l as u64,
            _ => u64::MAX,
        };
        let remaining = self.size.saturating_sub(st.pos);
        let max = limit.min(remaining);
        let peek = &mut st.peek;
        let line = py
            .detach(|| -> std::io::Result<Vec<u8>> {
                let mut line = Vec::new();
                let mut left = max;
                while left > 0 {
                    if peek.is_empty() {
                        let want = LINE_CHUNK.min(usize::try_from(left).unwrap_or(LINE_CHUNK));
                        // What the reader has beyond `max` is not needed: read only up to it.
                        let mut chunk = vec![0u8; want];
                        reader.read_exact(&mut chunk)?;
                        *peek = chunk;
                    }
                    let take = peek.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    match peek[..take].iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            line.extend(peek.drain(..=i));
                            return Ok(line);
                        }
                        None => {
                            line.extend(peek.drain(..take));
                            left -= take as u64;
                        }
                    }
                }
                Ok(line)
            })
            .map_err(|e| read_error(py, e))?;
        st.pos += line.len() as u64;
        Ok(PyBytes::new(py, &line))
    }
}

#[pymethods]
impl ObjectStream {
    /// Reads and returns up to `size` bytes; everything left if `size` is omitted, `None`
    /// or negative. Returns `b''` at the end.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_bytes(py, size)
    }

    /// As `read` (there is no internal buffer to limit to).
    #[pyo3(signature = (size = -1))]
    fn read1<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_bytes(py, size)
    }

    /// Reads everything left.
    fn readall<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.read_bytes(py, None)
    }

    /// Reads into a writable bytes-like object (`bytearray`, `memoryview`, numpy array...),
    /// returns the number of bytes read (0 at the end).
    fn readinto(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        let view = PyMemoryView::from(buffer)?;
        let view = view.call_method1("cast", ("B",))?;
        let len = view.len()?;
        let data = self.read_bytes(py, Some(len as i64))?;
        let n = data.as_bytes().len();
        view.set_item(PySlice::new(py, 0, n as isize, 1), data)?;
        Ok(n)
    }

    /// As `readinto`.
    fn readinto1(&self, py: Python<'_>, buffer: &Bound<'_, PyAny>) -> PyResult<usize> {
        self.readinto(py, buffer)
    }

    /// Reads one line, up to and including `b'\n'` (at most `size` bytes if given).
    #[pyo3(signature = (size = -1))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<i64>) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, size)
    }

    /// Reads all lines (stops after the line that reaches `hint` bytes, if given).
    #[pyo3(signature = (hint = -1))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<i64>) -> PyResult<Bound<'py, PyList>> {
        let lines = PyList::empty(py);
        let mut total = 0i64;
        loop {
            let line = self.line(py, None)?;
            let n = line.as_bytes().len() as i64;
            if n == 0 {
                break;
            }
            lines.append(line)?;
            total += n;
            if let Some(h) = hint
                && h > 0
                && total >= h
            {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if slf.get().is_closed(slf.py()) {
            return Err(closed_file());
        }
        Ok(slf)
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok(if line.as_bytes().is_empty() {
            None
        } else {
            Some(line)
        })
    }

    /// Moves to `offset` relative to the start (`whence=0`), the current position (1) or the
    /// end (2); returns the new absolute position. Seeking past the end is allowed (reads then
    /// return `b''`); before the start is a `ValueError`.
    #[pyo3(signature = (offset, whence = 0))]
    fn seek(&self, py: Python<'_>, offset: i64, whence: i32) -> PyResult<u64> {
        self.seek_to(py, offset, whence)
    }

    /// The current position.
    fn tell(&self, py: Python<'_>) -> PyResult<u64> {
        let guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        if guard.reader.is_none() {
            return Err(closed_file());
        }
        Ok(guard.pos)
    }

    /// Always True.
    fn readable(&self) -> bool {
        true
    }

    /// Always True.
    fn seekable(&self) -> bool {
        true
    }

    /// Always False.
    fn writable(&self) -> bool {
        false
    }

    /// Always False.
    fn isatty(&self) -> bool {
        false
    }

    /// Does nothing (read-only).
    fn flush(&self) {}

    /// Not a file descriptor: raises `io.UnsupportedOperation`.
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        Err(unsupported(
            py,
            "fileno: an object stream has no file descriptor",
        ))
    }

    /// Raises `io.UnsupportedOperation`: the stream is read-only.
    #[pyo3(signature = (*_args))]
    fn write(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(unsupported(py, "write: the stream is read-only"))
    }

    /// Raises `io.UnsupportedOperation`: the stream is read-only.
    #[pyo3(signature = (*_args))]
    fn truncate(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(unsupported(py, "truncate: the stream is read-only"))
    }

    /// Closes the stream (releases its file handle); idempotent.
    pub(crate) fn close(&self, py: Python<'_>) -> PyResult<()> {
        let reader = {
            let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
            guard.peek = Vec::new();
            guard.reader.take()
        };
        drop(reader);
        Ok(())
    }

    /// True once closed.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.is_closed(py)
    }

    /// Always `'rb'`.
    #[getter]
    fn mode(&self) -> &'static str {
        "rb"
    }

    /// The hashkey of the object (rsdos addition).
    #[getter]
    fn hashkey(&self, py: Python<'_>) -> Py<PyString> {
        self.hashkey.clone_ref(py)
    }

    /// The size of the object in bytes (rsdos addition).
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<rsdos.ObjectStream {} size={}{}>",
            self.hashkey,
            self.size,
            if self.is_closed(py) { " closed" } else { "" }
        )
    }
}
