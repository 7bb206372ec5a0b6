//! Python bindings of rsdos: the `rsdos._rsdos` extension module behind the `rsdos` Python
//! package, a drop-in for disk-objectstore's `Container`.
//!
//! The pure-Python part of the package (`python/rsdos`) holds disk-objectstore's signatures,
//! dataclasses, enums and exceptions; this module does the work with the GIL released.

mod container;
mod errors;
mod iters;
mod pyio;
mod remote;
mod stream;
mod types;
mod write_batch;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _rsdos(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<container::PyContainer>()?;
    m.add_class::<container::PackHandle>()?;
    m.add_class::<container::PyAutoPacker>()?;
    m.add_class::<stream::ObjectStream>()?;
    m.add_class::<iters::ManyIter>()?;
    m.add_class::<iters::HashkeyIter>()?;
    m.add_class::<write_batch::PyWriteBatch>()?;
    m.add_function(wrap_pyfunction!(remote::clone_from, m)?)?;
    m.add_function(wrap_pyfunction!(remote::remote_status, m)?)?;
    m.add_function(wrap_pyfunction!(remote::upload_pending, m)?)?;
    m.add("RSDOS_VERSION", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
