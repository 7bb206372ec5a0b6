//! `RsWriteBatch`: the Rust engine behind `rsdos.WriteBatch` (loose writes made durable
//! together, see `rsdos::WriteBatch`), and the one-call list form behind
//! `Container.add_objects_loose`.

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use rsdos::{Container, WriteBatch, WriteBatchOptions};

use crate::errors::{PyErrSlot, to_pyerr, to_pyerr_with};
use crate::pyio::PyRead;
use crate::types::to_bytes;

/// A batch of loose writes (internal: use `Container.write_batch()`).
#[pyclass(module = "rsdos._rsdos", name = "RsWriteBatch", frozen)]
pub(crate) struct PyWriteBatch {
    /// `None` once committed or discarded.
    batch: Mutex<Option<WriteBatch>>,
}

impl PyWriteBatch {
    pub(crate) fn new(
        container: &Container,
        max_objects: Option<usize>,
        max_bytes: Option<u64>,
        use_syncfs: bool,
    ) -> PyResult<Self> {
        let mut options = WriteBatchOptions::default().with_syncfs(use_syncfs);
        if let Some(n) = max_objects {
            if n == 0 {
                return Err(PyValueError::new_err("max_objects must be at least 1"));
            }
            options = options.with_max_objects(n);
        }
        if let Some(n) = max_bytes {
            options = options.with_max_bytes(n);
        }
        Ok(PyWriteBatch {
            batch: Mutex::new(Some(container.write_batch_with(options))),
        })
    }

    /// Runs `f` on the open batch without the GIL.
    fn with_batch<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut WriteBatch) -> rsdos::Result<T> + Send,
        slot: Option<&PyErrSlot>,
    ) -> PyResult<T> {
        let mut guard = self
            .batch
            .lock_py_attached(py)
            .map_err(|_| PyRuntimeError::new_err("a previous call on this batch panicked"))?;
        let batch = guard.as_mut().ok_or_else(closed)?;
        py.detach(|| f(batch))
            .map_err(|e| to_pyerr_with(py, e, slot))
    }

    /// Takes the batch out (commit, discard): later calls find it closed.
    fn take(&self, py: Python<'_>) -> PyResult<Option<WriteBatch>> {
        Ok(self
            .batch
            .lock_py_attached(py)
            .map_err(|_| PyRuntimeError::new_err("a previous call on this batch panicked"))?
            .take())
    }
}

fn closed() -> PyErr {
    PyValueError::new_err("the write batch is closed (committed or discarded)")
}

#[pymethods]
impl PyWriteBatch {
    /// Adds bytes (or a bytes-like object); returns the hashkey. Stored at the next flush.
    fn add_object(&self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<String> {
        let bytes = to_bytes(content)?;
        let data: &[u8] = bytes.as_bytes();
        self.with_batch(py, |b| b.add_object(data), None)
    }

    /// Adds what `stream.read()` returns until the end; returns the hashkey.
    fn add_stream(&self, py: Python<'_>, stream: Py<PyAny>) -> PyResult<String> {
        let slot = PyErrSlot::new();
        let mut reader = PyRead::new(stream, false, slot.clone());
        self.with_batch(py, |b| b.add_stream(&mut reader), Some(&slot))
    }

    /// Makes everything added so far durable and visible.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.with_batch(py, |b| b.flush(), None)
    }

    /// Flushes and closes the batch; returns `(added, written, flushes)`.
    fn commit(&self, py: Python<'_>) -> PyResult<(u64, u64, u64)> {
        let batch = self.take(py)?.ok_or_else(closed)?;
        let report = py.detach(|| batch.commit()).map_err(|e| to_pyerr(py, e))?;
        Ok((report.added, report.written, report.flushes))
    }

    /// Closes the batch without storing what is pending (idempotent).
    fn discard(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(batch) = self.take(py)? {
            py.detach(|| batch.discard());
        }
        Ok(())
    }

    /// Objects added since the last flush (repeats counted once); 0 once closed.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self
            .batch
            .lock_py_attached(py)
            .map_err(|_| PyRuntimeError::new_err("a previous call on this batch panicked"))?
            .as_ref()
            .map_or(0, WriteBatch::pending))
    }

    /// True once committed or discarded.
    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self
            .batch
            .lock_py_attached(py)
            .map_err(|_| PyRuntimeError::new_err("a previous call on this batch panicked"))?
            .is_none())
    }
}

/// Stores every bytes object of `contents` through one batch in one call (the GIL released for
/// all the I/O); one hashkey per input, in order.
pub(crate) fn add_objects_loose(
    py: Python<'_>,
    container: Container,
    contents: &Bound<'_, PyAny>,
) -> PyResult<Vec<String>> {
    let mut held = Vec::new();
    for item in contents.try_iter()? {
        held.push(to_bytes(&item?)?);
    }
    let slices: Vec<&[u8]> = held.iter().map(|b| b.as_bytes()).collect();
    py.detach(move || {
        let mut batch = container.write_batch();
        let mut keys = Vec::with_capacity(slices.len());
        for data in slices {
            keys.push(batch.add_object(data)?);
        }
        batch.commit()?;
        Ok(keys)
    })
    .map_err(|e| to_pyerr(py, e))
}
