//! Progress reporting and interruption of long operations.

use std::sync::atomic::{AtomicBool, Ordering};

/// What a progress total counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Objects.
    Objects,
    /// Bytes.
    Bytes,
}

/// Receives progress of a long operation (pack, repack, validate, backup, ...), and may ask it
/// to stop. The CLI draws bars with it; the Python module forwards it to a callable.
///
/// An operation calls `start` once per phase, `advance` as work is done, `finish` at the end
/// of the phase. It polls [`Progress::should_stop`] between units of work (an object, a pack)
/// and, when asked, stops at the next point where nothing is half-written and returns
/// [`Error::Interrupted`](rsdos_core::Error::Interrupted).
pub trait Progress: Send + Sync {
    /// A phase begins, with `total` units to do (0 if unknown).
    fn start(&self, _description: &str, _total: u64, _unit: ProgressUnit) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// The phase is over.
    fn finish(&self) {}
    /// True when the operation should stop at the next safe point.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Reports nothing and never stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// A flag that asks operations to stop (set it from a Ctrl-C handler); reports nothing.
#[derive(Debug, Default)]
pub struct StopFlag(AtomicBool);

impl StopFlag {
    /// A flag that is not set.
    pub fn new() -> Self {
        StopFlag(AtomicBool::new(false))
    }
    /// Asks operations to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Progress for StopFlag {
    fn should_stop(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Returns `Err(Interrupted)` when the progress receiver asks to stop.
pub(crate) fn check_stop(progress: &dyn Progress) -> rsdos_core::Result<()> {
    if progress.should_stop() {
        Err(rsdos_core::Error::Interrupted)
    } else {
        Ok(())
    }
}
