//! Mapping of rsdos errors to the Python exceptions of disk-objectstore.
//!
//! | rsdos [`ErrorKind`]      | Python exception                                            |
//! |--------------------------|-------------------------------------------------------------|
//! | `NotFound` (object)      | `rsdos.exceptions.NotExistent`                              |
//! | `NotFound` (pack file)   | `FileNotFoundError`                                         |
//! | `NotInitialised`         | `rsdos.exceptions.NotInitialisedError`, a subclass of both  |
//! |                          | `NotInitialised` and `FileNotFoundError`                    |
//! | `InvalidHashkey`         | `ValueError` (methods that look objects up turn it into     |
//! |                          | `NotExistent`, `False` or a missing entry before this)      |
//! | `InvalidConfig`          | `ValueError`                                                |
//! | `AlreadyExists`          | `FileExistsError`                                           |
//! | `Corrupt`                | `rsdos.exceptions.InconsistentContent`                      |
//! | `Io`                     | `OSError` with the errno (so `PermissionError`, ...)        |
//! | `Index`                  | `OSError`                                                   |
//! | `Locked`                 | `rsdos.exceptions.LockedError` (a `BlockingIOError`)        |
//! | `InvalidArgument`        | `ValueError`                                                |
//! | `Interrupted`            | the exception that interrupted it (raised by a callback or  |
//! |                          | a signal handler), else `KeyboardInterrupt`                 |
//! | `Unsupported`            | `NotImplementedError`                                       |
//!
//! An error raised by Python code we called (a stream's `read`, a callback) is re-raised as
//! it was.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{
    PyFileNotFoundError, PyKeyboardInterrupt, PyNotImplementedError, PyOSError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use rsdos::{Error, ErrorKind};

/// The first Python exception raised by Python code called back during an operation (stream
/// reads, progress callbacks, signal handlers). It takes precedence over the rsdos error the
/// operation then fails with.
#[derive(Clone, Default)]
pub(crate) struct PyErrSlot(Arc<Mutex<Option<PyErr>>>);

impl PyErrSlot {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records `err` unless an earlier error is recorded.
    pub(crate) fn set(&self, err: PyErr) {
        if let Ok(mut slot) = self.0.lock()
            && slot.is_none()
        {
            *slot = Some(err);
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.0.lock().map(|s| s.is_some()).unwrap_or(true)
    }

    pub(crate) fn take(&self) -> Option<PyErr> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

fn exception_type<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    name: &str,
) -> PyResult<&'py Bound<'py, PyType>> {
    cell.import(py, "rsdos.exceptions", name)
}

macro_rules! rsdos_exception {
    ($fn_name:ident, $name:literal) => {
        pub(crate) fn $fn_name(py: Python<'_>, msg: String) -> PyErr {
            static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
            match exception_type(py, &CELL, $name) {
                Ok(t) => PyErr::from_type(t.clone(), msg),
                Err(e) => e,
            }
        }
    };
}

rsdos_exception!(not_existent, "NotExistent");
rsdos_exception!(not_initialised, "NotInitialisedError");
rsdos_exception!(inconsistent, "InconsistentContent");
rsdos_exception!(locked, "LockedError");

/// The Python exception for an rsdos error (see the module documentation).
pub(crate) fn to_pyerr(py: Python<'_>, err: Error) -> PyErr {
    to_pyerr_with(py, err, None)
}

/// As [`to_pyerr`], but an exception recorded in `slot` wins.
pub(crate) fn to_pyerr_with(py: Python<'_>, err: Error, slot: Option<&PyErrSlot>) -> PyErr {
    if let Some(e) = slot.and_then(PyErrSlot::take) {
        return e;
    }
    let message = error_message(&err);
    match err {
        Error::PackNotFound { .. } => PyFileNotFoundError::new_err(message),
        Error::Io { source, op, path } => match carried_pyerr(source) {
            Ok(e) => e,
            Err(source) => os_error(
                py,
                &source,
                format!("cannot {op} {}", path.display()),
                Some(path),
            ),
        },
        Error::Input { source } => match carried_pyerr(source) {
            Ok(e) => e,
            Err(source) => os_error(py, &source, message, None),
        },
        other => match other.kind() {
            ErrorKind::NotFound => not_existent(py, message),
            ErrorKind::NotInitialised => not_initialised(py, message),
            ErrorKind::AlreadyExists => pyo3::exceptions::PyFileExistsError::new_err(message),
            ErrorKind::Corrupt => inconsistent(py, message),
            ErrorKind::Locked => locked(py, message),
            ErrorKind::Interrupted => PyKeyboardInterrupt::new_err(message),
            ErrorKind::Unsupported => PyNotImplementedError::new_err(message),
            ErrorKind::InvalidHashkey | ErrorKind::InvalidConfig | ErrorKind::InvalidArgument => {
                PyValueError::new_err(message)
            }
            _ => PyOSError::new_err(message),
        },
    }
}

/// `Display` of the error followed by its sources, as one line.
pub(crate) fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// The Python exception an `io::Error` made by [`py_io_error`] carries, if it is one.
fn carried_pyerr(source: std::io::Error) -> Result<PyErr, std::io::Error> {
    if source
        .get_ref()
        .is_some_and(|inner| inner.downcast_ref::<CarriedPyErr>().is_some())
    {
        let kind = source.kind();
        if let Some(inner) = source.into_inner()
            && let Ok(carried) = inner.downcast::<CarriedPyErr>()
        {
            return Ok(carried.0);
        }
        return Err(std::io::Error::from(kind));
    }
    Err(source)
}

fn os_error(
    py: Python<'_>,
    source: &std::io::Error,
    message: String,
    path: Option<std::path::PathBuf>,
) -> PyErr {
    match source.raw_os_error() {
        // OSError(errno, strerror, filename) picks the subclass (FileNotFoundError, ...).
        Some(errno) => {
            let strerror = format!("{message}: {source}");
            match path {
                Some(p) => PyOSError::new_err((errno, strerror, p.display().to_string())),
                None => PyOSError::new_err((errno, strerror)),
            }
        }
        None => {
            let _ = py;
            PyOSError::new_err(format!("{message}: {source}"))
        }
    }
}

/// A Python exception travelling through rsdos inside an `io::Error`.
#[derive(Debug)]
pub(crate) struct CarriedPyErr(pub(crate) PyErr);

impl std::fmt::Display for CarriedPyErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Python exception: {}", self.0)
    }
}

impl std::error::Error for CarriedPyErr {}

/// An `io::Error` carrying a Python exception (from a Python stream's `read`).
pub(crate) fn py_io_error(err: PyErr) -> std::io::Error {
    std::io::Error::other(CarriedPyErr(err))
}

/// `ValueError` for an operation on a closed stream.
pub(crate) fn closed_file() -> PyErr {
    PyValueError::new_err("I/O operation on closed file.")
}
