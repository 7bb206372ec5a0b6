//! Writing a large file's data to disk while the file is still being written.

use std::fs::File;
use std::io;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Bytes written between two background syncs.
pub const EARLY_WRITEBACK_STEP: u64 = 64 * 1024 * 1024;

/// Syncs a file being written on a helper thread every [`EARLY_WRITEBACK_STEP`] bytes, so
/// that the disk writes while the writer goes on reading, hashing and compressing.
///
/// Without it, a 1 GiB write leaves all its pages dirty until the final `fdatasync`: the
/// kernel throttles the writer once its dirty-page limit is reached, and the final sync then
/// waits for the whole GiB. On this project's machine the final sync of 1 GiB took 0.65-0.72 s
/// after a write that was itself throttled, against 0.03-0.04 s with syncs along the way.
///
/// The helper's syncs are only a head start: the writer still calls `sync_data` (or `syncfs`)
/// at the end, as before. An error of a helper's sync is kept and returned by
/// [`finish`](Self::finish), because Linux reports a write-back error once per open file: the
/// helper shares the writer's open file (a `try_clone`), so the writer's final sync might not
/// see an error the helper already consumed. Files smaller than one step never start a thread.
#[derive(Debug)]
pub struct EarlyWriteback {
    step: u64,
    unsynced: u64,
    started: Option<Started>,
    /// `File::sync_data`, replaced in tests.
    sync: fn(&File) -> io::Result<()>,
    /// No helper could be had (no second handle of the file, or no thread): the final sync
    /// does all the work, as without this type.
    unavailable: bool,
}

#[derive(Debug)]
struct Started {
    wake: SyncSender<()>,
    worker: JoinHandle<()>,
    error: Arc<Mutex<Option<io::Error>>>,
}

impl Default for EarlyWriteback {
    fn default() -> Self {
        Self::with_step(EARLY_WRITEBACK_STEP)
    }
}

impl EarlyWriteback {
    /// Follows the writes of one file, passed to each [`wrote`](Self::wrote).
    pub fn new() -> Self {
        Self::default()
    }

    fn with_step(step: u64) -> Self {
        EarlyWriteback {
            step,
            unsynced: 0,
            started: None,
            sync: File::sync_data,
            unavailable: false,
        }
    }

    /// Records `n` more bytes written to `file`; every [`EARLY_WRITEBACK_STEP`] bytes the
    /// helper is asked to sync it (if it is still syncing the previous step, this step joins
    /// the next). The helper is started at the first step, with its own handle of `file`; if
    /// that handle cannot be had, nothing is synced early (the final sync does it all).
    pub fn wrote(&mut self, file: &File, n: u64) {
        self.unsynced = self.unsynced.saturating_add(n);
        if self.unsynced < self.step || self.unavailable {
            return;
        }
        if self.started.is_none() {
            match file
                .try_clone()
                .and_then(|handle| Started::spawn(handle, self.sync))
            {
                Ok(started) => self.started = Some(started),
                Err(_) => {
                    self.unavailable = true;
                    return;
                }
            }
        }
        if let Some(s) = &self.started {
            match s.wake.try_send(()) {
                Ok(()) => self.unsynced = 0,
                // Busy with the previous step: ask again after the next write.
                Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }

    /// Waits for the helper, stops it, and returns the first error one of its syncs met. Call
    /// it before the final sync; later writes start over (a new helper after a full step).
    pub fn finish(&mut self) -> io::Result<()> {
        self.unsynced = 0;
        match self.started.take() {
            Some(s) => s.stop(),
            None => Ok(()),
        }
    }
}

impl Drop for EarlyWriteback {
    fn drop(&mut self) {
        if let Some(s) = self.started.take() {
            // Dropped on an error path: the writer fails anyway; just stop the helper.
            let _ = s.stop();
        }
    }
}

impl Started {
    fn spawn(file: File, sync: fn(&File) -> io::Result<()>) -> io::Result<Self> {
        let (wake, woken) = std::sync::mpsc::sync_channel::<()>(1);
        let error = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&error);
        // A thread the system refuses is no error: the final sync does the work instead.
        let worker = std::thread::Builder::new()
            .name("rsdos-writeback".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = sync(&file)
                        && let Ok(mut slot) = seen.lock()
                    {
                        slot.get_or_insert(e);
                    }
                }
            })?;
        Ok(Started {
            wake,
            worker,
            error,
        })
    }

    fn stop(self) -> io::Result<()> {
        drop(self.wake);
        if self.worker.join().is_err() {
            return Err(io::Error::other("the early write-back thread panicked"));
        }
        let error = match self.error.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SYNCS: AtomicUsize = AtomicUsize::new(0);

    fn counting_failing_sync(_: &File) -> io::Result<()> {
        SYNCS.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::other("disk on fire"))
    }

    /// The helper really syncs, `finish` waits for it, and an error of its sync reaches the
    /// writer (who could not see it again from its own sync).
    #[test]
    fn a_helpers_sync_error_is_returned_by_finish() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut f = File::create(dir.path().join("f")).expect("create");
        let mut wb = EarlyWriteback::with_step(4096);
        wb.sync = counting_failing_sync;
        for _ in 0..8 {
            f.write_all(&[3u8; 4096]).expect("write");
            wb.wrote(&f, 4096);
        }
        let err = wb.finish().expect_err("the helper's error");
        assert_eq!(err.to_string(), "disk on fire");
        assert!(SYNCS.load(Ordering::SeqCst) >= 1, "the helper synced");
        // Reported once; a later round starts clean.
        wb.wrote(&f, 10);
        wb.finish().expect("nothing new");
    }

    #[test]
    fn small_files_start_no_thread() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut f = File::create(dir.path().join("f")).expect("create");
        let mut wb = EarlyWriteback::new();
        f.write_all(&[1u8; 1000]).expect("write");
        wb.wrote(&f, 1000);
        assert!(wb.started.is_none());
        wb.finish().expect("finish");
    }

    #[test]
    fn large_files_are_synced_along_the_way_and_stay_intact() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        let mut f = File::create(&path).expect("create");
        let mut wb = EarlyWriteback::with_step(1 << 20);
        let chunk = vec![7u8; 256 << 10];
        let chunks = 4 * 4 + 3;
        for _ in 0..chunks {
            f.write_all(&chunk).expect("write");
            wb.wrote(&f, chunk.len() as u64);
        }
        assert!(wb.started.is_some(), "a helper was started");
        wb.finish().expect("finish");
        assert!(wb.started.is_none(), "finish stops the helper");
        f.sync_data().expect("final sync");
        let len = std::fs::metadata(&path).expect("stat").len();
        assert_eq!(len, chunks * chunk.len() as u64);
    }
}
