//! Python iterators over many objects and over all hashkeys.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyString, PyTuple};
use rsdos::{ManyItem, ManyReader, ObjectMeta};

use crate::errors::to_pyerr;
use crate::stream::ObjectStream;
use crate::types::object_meta;

/// Hashkeys fetched from the index per batch by [`HashkeyIter`].
const KEY_BATCH: usize = 2048;
/// Objects [`ManyIter`] takes from the reader per release of the GIL: one release per object
/// costs about as much as reading a small packed object.
const ITEM_BATCH: usize = 256;
/// Bytes of object content a batch of [`ManyIter`] holds at most (beyond one object).
const ITEM_BATCH_BYTES: u64 = 8 * 1024 * 1024;
/// Items of a batch that hold an open file (loose objects, large streamed ones) at most, so a
/// batch never needs more than a few file descriptors.
const ITEM_BATCH_OPEN_FILES: usize = 16;
/// Packed objects stored in more bytes than this are streamed (their reader holds a pack
/// handle): read_many's window size.
const STREAMED_MIN: u64 = 1024 * 1024;

fn poisoned<T>(_: T) -> PyErr {
    PyRuntimeError::new_err("a previous operation on this iterator panicked")
}

/// Where a [`ManyIter`]'s items come from.
enum Source {
    /// Read on the calling thread, a batch per release of the GIL.
    Inline(ManyReader),
    /// Read on a helper thread a batch ahead, while Python consumes the previous one. The
    /// channel holds one batch: with the one being filled and the one being consumed, at most
    /// three batches (and their open files) exist.
    Ahead(Receiver<Filled>),
}

/// A batch filled by the helper thread; `Err` holds the items read before an error.
type Filled = Result<(VecDeque<ManyItem>, bool), (VecDeque<ManyItem>, rsdos::Error)>;

/// Bulk reads of at least this many keys read ahead on a helper thread.
const READ_AHEAD_MIN_KEYS: usize = 1024;

struct ManyState {
    reader: Option<Source>,
    /// Items taken from the reader and not yet yielded, in order.
    queue: VecDeque<ManyItem>,
    /// An error the reader gave after the queued items: raised once they are yielded.
    error: Option<rsdos::Error>,
    /// Requested keys that cannot exist (not a hashkey of the container's type), yielded as
    /// missing at the end unless missing objects are skipped.
    invalid: VecDeque<String>,
    skip_if_missing: bool,
    /// The stream yielded last: closed when the iterator advances, as disk-objectstore
    /// documents (a stream is valid until the next item), so that open files stay bounded.
    previous: Option<Py<ObjectStream>>,
    /// The process that created the iterator: a forked child has no helper thread.
    pid: u32,
    /// Used in a forked child: every call raises.
    forked: bool,
}

fn forked_error() -> PyErr {
    PyRuntimeError::new_err(
        "this iterator was created in another process (before a fork): iterate it there, or \
         open a new one here",
    )
}

/// Iterator of `(hashkey, stream or None, ObjectMeta)` of `get_objects_stream_and_meta`: packed
/// objects pack by pack in offset order, then loose ones, then (unless skipped) the missing
/// ones. Each stream is valid until the iterator advances.
#[pyclass(module = "rsdos._rsdos", name = "ObjectsIterator", frozen)]
pub(crate) struct ManyIter {
    state: Mutex<ManyState>,
}

impl ManyIter {
    /// An iterator over `reader`'s items, then the `invalid` keys (as missing). With
    /// `keys_hint` of at least [`READ_AHEAD_MIN_KEYS`], reading runs a batch ahead on a helper
    /// thread (if the system gives one), so that it overlaps the Python side's work on the
    /// other core; below, a thread costs more than it saves.
    pub(crate) fn new(
        reader: ManyReader,
        invalid: Vec<String>,
        skip_if_missing: bool,
        keys_hint: usize,
    ) -> Self {
        let source = if keys_hint >= READ_AHEAD_MIN_KEYS {
            read_ahead(reader)
        } else {
            Source::Inline(reader)
        };
        ManyIter {
            state: Mutex::new(ManyState {
                reader: Some(source),
                queue: VecDeque::new(),
                error: None,
                invalid: invalid.into(),
                skip_if_missing,
                previous: None,
                pid: std::process::id(),
                forked: false,
            }),
        }
    }
}

/// Moves `reader` to a helper thread that fills batches a step ahead; `Inline` if no thread
/// can be had. The thread ends when the reader is exhausted or fails, or when the iterator is
/// dropped (its next send fails).
fn read_ahead(reader: ManyReader) -> Source {
    let (tx, rx) = sync_channel::<Filled>(1);
    // The reader comes back if the thread cannot be started.
    let slot = Arc::new(Mutex::new(Some(reader)));
    let theirs = Arc::clone(&slot);
    let spawned = std::thread::Builder::new()
        .name("rsdos-read-ahead".into())
        .spawn(move || {
            let Some(mut reader) = theirs.lock().ok().and_then(|mut r| r.take()) else {
                return;
            };
            drop(theirs);
            loop {
                let mut batch = VecDeque::new();
                let filled = match fill_batch(&mut reader, &mut batch) {
                    Ok(more) => Ok((batch, more)),
                    Err(e) => Err((batch, e)),
                };
                let last = !matches!(filled, Ok((_, true)));
                if tx.send(filled).is_err() || last {
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Source::Ahead(rx),
        Err(_) => match slot.lock().ok().and_then(|mut r| r.take()) {
            Some(reader) => Source::Inline(reader),
            // Unreachable: the thread did not start, so it did not take the reader.
            None => Source::Ahead(rx),
        },
    }
}

#[pymethods]
impl ManyIter {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        let st = &mut *guard;
        if let Some(prev) = st.previous.take() {
            prev.get().close(py)?;
        }
        if st.forked {
            return Err(forked_error());
        }
        if st.queue.is_empty()
            && st.error.is_none()
            && let Some(source) = st.reader.as_mut()
        {
            // Checked only before waiting for the helper: a forked child has no helper, and
            // would wait for ever. From then on every call raises, so the child never takes
            // the end of what it read for the end of the objects.
            if matches!(source, Source::Ahead(_)) && st.pid != std::process::id() {
                st.forked = true;
                st.reader = None;
                st.invalid.clear();
                return Err(forked_error());
            }
            let queue = &mut st.queue;
            let outcome = match source {
                Source::Inline(reader) => py.detach(|| fill_batch(reader, queue)),
                Source::Ahead(rx) => match py.detach(move || rx.recv()) {
                    Ok(Ok((batch, more))) => {
                        *queue = batch;
                        Ok(more)
                    }
                    Ok(Err((batch, e))) => {
                        *queue = batch;
                        Err(e)
                    }
                    // The helper ended without a last batch: it panicked. Everything it sent
                    // was yielded (the queue is empty).
                    Err(_) => {
                        st.reader = None;
                        st.invalid.clear();
                        return Err(PyRuntimeError::new_err(
                            "the bulk read's helper thread stopped unexpectedly",
                        ));
                    }
                },
            };
            match outcome {
                Ok(true) => {}
                Ok(false) => st.reader = None,
                Err(e) => {
                    st.reader = None;
                    st.error = Some(e);
                }
            }
        }
        let next = match st.queue.pop_front() {
            Some(item) => Some(Ok(item)),
            None => st.error.take().map(Err),
        };
        match next {
            Some(Ok(item)) => {
                let meta = object_meta(py, &item.meta)?;
                let key = PyString::new(py, &item.hashkey);
                let stream = match item.reader {
                    Some(r) => {
                        let s = Py::new(py, ObjectStream::new(r, key.clone().unbind()))?;
                        st.previous = Some(s.clone_ref(py));
                        s.into_bound(py).into_any()
                    }
                    None => py.None().into_bound(py),
                };
                Ok(Some(PyTuple::new(py, [key.into_any(), stream, meta])?))
            }
            Some(Err(e)) => {
                st.reader = None;
                Err(to_pyerr(py, e))
            }
            None => {
                st.reader = None;
                if st.skip_if_missing {
                    return Ok(None);
                }
                match st.invalid.pop_front() {
                    Some(key) => {
                        let meta = object_meta(py, &ObjectMeta::missing())?;
                        let key = key.into_pyobject(py)?.into_any();
                        Ok(Some(PyTuple::new(
                            py,
                            [key, py.None().into_bound(py), meta],
                        )?))
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// Closes the stream yielded last and stops the iteration.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        if let Some(prev) = guard.previous.take() {
            prev.get().close(py)?;
        }
        guard.reader = None;
        guard.queue.clear();
        guard.error = None;
        guard.invalid.clear();
        Ok(())
    }
}

/// Moves the next items of `reader` into `queue`, up to one batch; false once the reader is
/// exhausted.
fn fill_batch(reader: &mut ManyReader, queue: &mut VecDeque<ManyItem>) -> rsdos::Result<bool> {
    let mut bytes = 0u64;
    let mut open_files = 0usize;
    while queue.len() < ITEM_BATCH && bytes < ITEM_BATCH_BYTES {
        let Some(item) = reader.next() else {
            return Ok(false);
        };
        let item = item?;
        let size = item.meta.size.unwrap_or(0);
        bytes = bytes.saturating_add(size);
        // read_many streams packed objects by their stored length, loose ones always hold a file.
        let stored = item.meta.packed.map_or(size, |p| p.length);
        let holds_file = item.reader.is_some()
            && (item.meta.object_type == rsdos::ObjectType::Loose || stored > STREAMED_MIN);
        queue.push_back(item);
        if holds_file {
            open_files += 1;
            if open_files >= ITEM_BATCH_OPEN_FILES {
                break;
            }
        }
    }
    Ok(true)
}

type KeyIterator = Box<dyn Iterator<Item = rsdos::Result<String>> + Send>;

struct KeyState {
    source: Option<KeyIterator>,
    batch: VecDeque<String>,
    /// An error met after some keys of the batch: raised once those keys are consumed.
    error: Option<rsdos::Error>,
}

/// Iterator of every hashkey of the container (`list_all_objects`), fetched in batches.
#[pyclass(module = "rsdos._rsdos", name = "HashkeyIterator", frozen)]
pub(crate) struct HashkeyIter {
    state: Mutex<KeyState>,
}

impl HashkeyIter {
    pub(crate) fn new(source: KeyIterator) -> Self {
        HashkeyIter {
            state: Mutex::new(KeyState {
                source: Some(source),
                batch: VecDeque::new(),
                error: None,
            }),
        }
    }
}

#[pymethods]
impl HashkeyIter {
    fn __iter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let mut guard = self.state.lock_py_attached(py).map_err(poisoned)?;
        let st = &mut *guard;
        if let Some(k) = st.batch.pop_front() {
            return Ok(Some(k));
        }
        if let Some(e) = st.error.take() {
            return Err(to_pyerr(py, e));
        }
        let Some(source) = st.source.as_mut() else {
            return Ok(None);
        };
        let batch = &mut st.batch;
        let outcome = py.detach(|| {
            for item in source.by_ref() {
                batch.push_back(item?);
                if batch.len() >= KEY_BATCH {
                    return Ok(false);
                }
            }
            Ok::<bool, rsdos::Error>(true)
        });
        match outcome {
            Ok(true) => st.source = None,
            Ok(false) => {}
            Err(e) => {
                st.source = None;
                if st.batch.is_empty() {
                    return Err(to_pyerr(py, e));
                }
                st.error = Some(e);
            }
        }
        Ok(st.batch.pop_front())
    }
}
