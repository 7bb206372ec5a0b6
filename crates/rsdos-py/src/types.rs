//! Conversions to the pure-Python types of the `rsdos` package (`rsdos.dataclasses`,
//! `rsdos.container.ObjectType`), imported once.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyMemoryView, PyString};
use rsdos::{ObjectMeta, ObjectType};

/// `rsdos.dataclasses.ObjectMeta(type, size, pack_id, pack_compressed, pack_offset,
/// pack_length)`.
pub(crate) fn object_meta<'py>(py: Python<'py>, meta: &ObjectMeta) -> PyResult<Bound<'py, PyAny>> {
    static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static LOOSE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static PACKED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static MISSING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let class = CLASS.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("rsdos.dataclasses")?
                .getattr("ObjectMeta")?
                .unbind(),
        )
    })?;
    let (cell, name) = match meta.object_type {
        ObjectType::Loose => (&LOOSE, "LOOSE"),
        ObjectType::Packed => (&PACKED, "PACKED"),
        _ => (&MISSING, "MISSING"),
    };
    let object_type = cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("rsdos.container")?
                .getattr("ObjectType")?
                .getattr(name)?
                .unbind(),
        )
    })?;
    let none = || py.None().into_bound(py);
    let values: [Bound<'py, PyAny>; 6] = match meta.packed {
        Some(p) => {
            let size = meta.size.into_pyobject(py)?.into_any();
            // An object stored uncompressed has a length equal to its size: one int object
            // serves both (ints are immutable), one allocation less per object of a bulk read.
            let length = if meta.size == Some(p.length) {
                size.clone()
            } else {
                p.length.into_pyobject(py)?.into_any()
            };
            [
                object_type.bind(py).clone(),
                size,
                p.pack_id.into_pyobject(py)?.into_any(),
                pyo3::types::PyBool::new(py, p.compressed)
                    .to_owned()
                    .into_any(),
                p.offset.into_pyobject(py)?.into_any(),
                length,
            ]
        }
        None => [
            object_type.bind(py).clone(),
            meta.size.into_pyobject(py)?.into_any(),
            none(),
            none(),
            none(),
            none(),
        ],
    };
    // The dataclass is frozen, so its generated `__init__` sets each field through
    // `object.__setattr__` (~1.3 µs per object, a quarter of a bulk read's time per object).
    // Filling the instance dictionary directly gives the same object: no field has a default
    // factory or a `__post_init__`. The field names are interned once: interning them per
    // object (a lookup in the interpreter's table of interned strings) cost as much again.
    static OBJECT_NEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static FIELD_NAMES: PyOnceLock<[Py<PyString>; 6]> = PyOnceLock::new();
    let object_new = OBJECT_NEW.get_or_try_init(py, || {
        Ok::<_, PyErr>(
            py.import("builtins")?
                .getattr("object")?
                .getattr("__new__")?
                .unbind(),
        )
    })?;
    let names =
        FIELD_NAMES.get_or_init(py, || META_FIELDS.map(|n| PyString::intern(py, n).unbind()));
    let instance = object_new.bind(py).call1((class.bind(py),))?;
    let dict = instance.getattr(pyo3::intern!(py, "__dict__"))?;
    let dict = dict.cast::<PyDict>()?;
    for (name, value) in names.iter().zip(values) {
        dict.set_item(name.bind(py), value)?;
    }
    Ok(instance)
}

/// The fields of `ObjectMeta`, in the order of its constructor.
const META_FIELDS: [&str; 6] = [
    "type",
    "size",
    "pack_id",
    "pack_compressed",
    "pack_offset",
    "pack_length",
];

/// `obj` as `bytes`: itself if it is `bytes`, else a copy of any bytes-like object
/// (`bytearray`, `memoryview`, arrays); `TypeError` for anything else (`str`, `int`, ...).
pub(crate) fn to_bytes<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(b.clone());
    }
    let py = obj.py();
    let view = PyMemoryView::from(obj)?;
    Ok(py
        .get_type::<PyBytes>()
        .call1((view,))?
        .cast_into::<PyBytes>()?)
}
