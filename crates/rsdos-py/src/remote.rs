//! Containers whose packs live in remote storage: `init_container(packs_url=...)`,
//! `Container.clone_from(url, folder)`, `remote_status()` and `upload_pending()`.
//!
//! Secret options given here are used for the container opened by the call; they are written
//! to `rsdos-packs.json` only with `store_credentials=True`, so later opens (another process,
//! or after `close()`) take credentials from the service's environment variables.

use std::collections::BTreeMap;
use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rsdos::{CloneOptions, Container, InitOptions};

use crate::container::PyContainer;
use crate::errors::to_pyerr;

/// `options` with the remote pack storage set, when `packs_url` is given.
pub(crate) fn with_packs(
    options: InitOptions,
    packs_url: Option<&str>,
    packs_options: Option<BTreeMap<String, String>>,
    store_credentials: bool,
) -> PyResult<InitOptions> {
    let Some(url) = packs_url else {
        if packs_options.is_some_and(|o| !o.is_empty()) || store_credentials {
            return Err(PyValueError::new_err(
                "packs_options and store_credentials need packs_url",
            ));
        }
        return Ok(options);
    };
    let mut options = options
        .with_packs_url(url)
        .with_store_credentials(store_credentials);
    for (k, v) in packs_options.unwrap_or_default() {
        options = options.with_packs_option(&k, &v);
    }
    Ok(options)
}

/// Makes a container in `folder` from the remote pack storage at `url` alone; returns the
/// report as a dict (`from_snapshot`, `snapshot_problem`, `packs`, `packs_from_sidecars`,
/// `objects`, `rows_dropped`, `undescribed_packs`, `corrupt_entries`, `sidecar_problems`).
#[pyfunction]
#[pyo3(signature = (url, folder, packs_options=None, store_credentials=false))]
pub(crate) fn clone_from<'py>(
    py: Python<'py>,
    url: String,
    folder: PathBuf,
    packs_options: Option<BTreeMap<String, String>>,
    store_credentials: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut options = CloneOptions::default().with_store_credentials(store_credentials);
    for (k, v) in packs_options.unwrap_or_default() {
        options = options.with_packs_option(&k, &v);
    }
    let (_, report) = py
        .detach(|| Container::clone_from_remote(&url, &folder, &options))
        .map_err(|e| to_pyerr(py, e))?;
    let d = PyDict::new(py);
    d.set_item("from_snapshot", report.from_snapshot)?;
    d.set_item("snapshot_problem", report.snapshot_problem)?;
    d.set_item("packs", report.packs)?;
    d.set_item("packs_from_sidecars", report.packs_from_sidecars)?;
    d.set_item("objects", report.objects)?;
    d.set_item("rows_dropped", report.rows_dropped)?;
    d.set_item("undescribed_packs", report.undescribed_packs)?;
    d.set_item("corrupt_entries", report.corrupt_entries)?;
    d.set_item("sidecar_problems", report.sidecar_problems)?;
    Ok(d)
}

/// Where the packs are and what waits for upload (`url`, `staged`, `pending_upload`,
/// `last_error`), or `None` for a container with local packs.
#[pyfunction]
pub(crate) fn remote_status<'py>(
    py: Python<'py>,
    rs: &PyContainer,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let c = rs.handle(py)?;
    let Some(status) = py
        .detach(|| c.remote_status())
        .map_err(|e| to_pyerr(py, e))?
    else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    d.set_item("url", status.url)?;
    d.set_item("staged", status.staged)?;
    d.set_item("pending_upload", status.pending_upload)?;
    d.set_item("last_error", status.last_error)?;
    Ok(Some(d))
}

/// Uploads the packs that wait for upload and snapshots the index (`uploaded`, `failed`,
/// `snapshot_taken`, `snapshot_error`).
/// With `seal_open`, the packs still being filled are sealed and uploaded too.
#[pyfunction]
#[pyo3(signature = (rs, seal_open = false))]
pub(crate) fn upload_pending<'py>(
    py: Python<'py>,
    rs: &PyContainer,
    seal_open: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let c = rs.handle(py)?;
    let report = py
        .detach(|| {
            if seal_open {
                c.upload_all()
            } else {
                c.upload_pending()
            }
        })
        .map_err(|e| to_pyerr(py, e))?;
    let d = PyDict::new(py);
    d.set_item("uploaded", report.uploaded)?;
    d.set_item("failed", report.failed)?;
    d.set_item("snapshot_taken", report.snapshot_taken)?;
    d.set_item("snapshot_error", report.snapshot_error)?;
    Ok(d)
}
