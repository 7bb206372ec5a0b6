//! Compressing one batch of small objects on all cores, while the writing thread may do
//! something else meanwhile.
//!
//! A [`CompressJob`] owns its batch; helper threads and, when it asks for the result, the
//! writing thread claim chunks of [`CHUNK_OBJECTS`] objects until none is left. So the
//! writing thread can hand a batch over and go on collecting the next one while the helpers
//! compress, then help with whatever is left instead of waiting: compression (zlib-1 of a
//! 500-byte object takes ~18 µs) keeps both cores busy, and the work of the writing thread
//! (taking the objects, hashing, writing) overlaps it instead of adding to it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rsdos_core::{CompressMode, Error, Result};

use crate::codec::{BufCompressor, auto_should_compress};

/// Objects a thread claims at once: small enough that the threads end together, large enough
/// that claiming costs nothing beside compressing.
const CHUNK_OBJECTS: usize = 32;

/// An object buffered for a pack.
pub(crate) struct Pending {
    pub(crate) hashkey: String,
    pub(crate) data: Vec<u8>,
}

/// The stored form of each object of a batch: its compressed bytes, or `None` to store it as
/// it is.
pub(crate) type Compressed = Vec<Option<Vec<u8>>>;

/// One batch being compressed; see the module docs.
struct Shared {
    batch: Vec<Pending>,
    mode: CompressMode,
    /// The next chunk to claim (past the end: none left).
    next: AtomicUsize,
    /// Each chunk's result, set by the thread that claimed it.
    done: Vec<Mutex<Option<Result<Compressed>>>>,
}

impl Shared {
    /// Compresses chunks until none is left to claim.
    fn work(&self, compressor: &mut BufCompressor) {
        loop {
            let chunk = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = self.done.get(chunk) else {
                return;
            };
            let start = chunk * CHUNK_OBJECTS;
            let end = (start + CHUNK_OBJECTS).min(self.batch.len());
            let result = self.batch[start..end]
                .iter()
                .map(|p| compress_one(self.mode, compressor, p))
                .collect();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        }
    }

    /// Leaves every chunk not claimed yet unclaimed for ever.
    fn cancel(&self) {
        self.next.store(self.done.len(), Ordering::Relaxed);
    }
}

/// A batch handed to compression helpers; [`CompressJob::finish`] gives the result.
pub(crate) struct CompressJob {
    shared: Arc<Shared>,
    helpers: Vec<JoinHandle<BufCompressor>>,
}

impl CompressJob {
    /// Starts compressing `batch` as `mode` says, on helper threads that each take one of
    /// `compressors` (made as needed): `threads - 1` of them (the caller is the last thread,
    /// in [`CompressJob::finish`]), none for a batch below `parallel_min` objects. Fewer, or
    /// none, if the system gives no thread: the caller then does the rest.
    pub(crate) fn start(
        batch: Vec<Pending>,
        mode: CompressMode,
        threads: usize,
        parallel_min: usize,
        compressors: &mut Vec<BufCompressor>,
        make: impl Fn() -> BufCompressor,
    ) -> Self {
        let chunks = batch.len().div_ceil(CHUNK_OBJECTS);
        let helpers_wanted = if batch.len() >= parallel_min && needs_codec(mode) {
            threads.saturating_sub(1).min(chunks)
        } else {
            0
        };
        let shared = Arc::new(Shared {
            batch,
            mode,
            next: AtomicUsize::new(0),
            done: (0..chunks).map(|_| Mutex::new(None)).collect(),
        });
        let mut helpers = Vec::with_capacity(helpers_wanted);
        for _ in 0..helpers_wanted {
            let mut compressor = compressors.pop().unwrap_or_else(&make);
            let theirs = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name("rsdos-compress".into())
                .spawn(move || {
                    theirs.work(&mut compressor);
                    compressor
                });
            match spawned {
                Ok(handle) => helpers.push(handle),
                Err(_) => break,
            }
        }
        CompressJob { shared, helpers }
    }

    /// Compresses what is left on this thread, waits for the helpers, and gives the batch back
    /// with the stored form of each object, in order; the helpers' compressors go back to
    /// `compressors`. The first compression error, if any, after every thread ended.
    pub(crate) fn finish(
        mut self,
        compressor: &mut BufCompressor,
        compressors: &mut Vec<BufCompressor>,
    ) -> Result<(Vec<Pending>, Compressed)> {
        self.shared.work(compressor);
        let helpers = std::mem::take(&mut self.helpers);
        let shared = Arc::clone(&self.shared);
        // Every chunk is claimed: dropping the job cancels nothing and joins no helper.
        drop(self);
        let mut panicked = false;
        for helper in helpers {
            match helper.join() {
                Ok(c) => compressors.push(c),
                Err(_) => panicked = true,
            }
        }
        if panicked {
            return Err(Error::InvalidArgument(
                "BUG: a compression thread panicked".into(),
            ));
        }
        let shared = Arc::into_inner(shared).ok_or_else(|| {
            Error::InvalidArgument("BUG: a compression thread still holds its batch".into())
        })?;
        let mut out = Vec::with_capacity(shared.batch.len());
        for slot in shared.done {
            let chunk = slot
                .into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .ok_or_else(|| {
                    Error::InvalidArgument("BUG: a chunk of a batch was not compressed".into())
                })?;
            out.extend(chunk?);
        }
        Ok((shared.batch, out))
    }
}

impl Drop for CompressJob {
    /// A job dropped unfinished (its writer failed or was dropped): the helpers stop after
    /// their current chunk, and are waited for so that no thread outlives the writer.
    fn drop(&mut self) {
        self.shared.cancel();
        for helper in self.helpers.drain(..) {
            let _ = helper.join();
        }
    }
}

/// Whether objects written as `mode` says may be compressed at all.
fn needs_codec(mode: CompressMode) -> bool {
    !matches!(mode, CompressMode::No | CompressMode::Keep)
}

/// The stored form of one object as `mode` says (`None`: stored as it is).
fn compress_one(
    mode: CompressMode,
    compressor: &mut BufCompressor,
    p: &Pending,
) -> Result<Option<Vec<u8>>> {
    let wanted = match mode {
        CompressMode::Yes => true,
        CompressMode::No | CompressMode::Keep => false,
        CompressMode::Auto => auto_should_compress(&p.data, p.data.len() as u64),
    };
    if !wanted {
        return Ok(None);
    }
    let mut out = Vec::new();
    compressor
        .compress(&p.data, &mut out)
        .map_err(|e| Error::io("compress", format!("object {}", p.hashkey), e))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use rsdos_core::CompressionAlgorithm;
    use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

    use super::*;

    fn batch(n: usize) -> Vec<Pending> {
        let mut rng = Rng::new(5);
        (0..n)
            .map(|i| Pending {
                hashkey: format!("object {i}"),
                data: if i % 3 == 0 {
                    random_bytes(&mut rng, i % 900)
                } else {
                    text_bytes(&mut rng, i % 900)
                },
            })
            .collect()
    }

    /// Each object compressed alone on this thread, in order.
    fn one_by_one(algorithm: CompressionAlgorithm, mode: CompressMode) -> Compressed {
        let mut c = BufCompressor::new(algorithm);
        batch(1000)
            .iter()
            .map(|p| compress_one(mode, &mut c, p).expect("compress"))
            .collect()
    }

    #[test]
    fn any_number_of_threads_gives_each_object_its_own_result_in_order() {
        for algorithm in [CompressionAlgorithm::Zlib(1), CompressionAlgorithm::Zstd(1)] {
            for mode in [CompressMode::Yes, CompressMode::Auto, CompressMode::No] {
                let want = one_by_one(algorithm, mode);
                for threads in [1, 2, 5] {
                    let mut spare = Vec::new();
                    let job =
                        CompressJob::start(batch(1000), mode, threads, 64, &mut spare, || {
                            BufCompressor::new(algorithm)
                        });
                    let mut own = BufCompressor::new(algorithm);
                    let (back, got) = job.finish(&mut own, &mut spare).expect("finish");
                    assert_eq!(got, want, "{algorithm} {mode:?} on {threads} threads");
                    let keys: Vec<String> = back.into_iter().map(|p| p.hashkey).collect();
                    let want_keys: Vec<String> =
                        batch(1000).into_iter().map(|p| p.hashkey).collect();
                    assert_eq!(keys, want_keys, "the batch comes back in order");
                    // The helpers' compressors come back for the next batch.
                    let helpers = if mode == CompressMode::No {
                        0
                    } else {
                        threads - 1
                    };
                    assert_eq!(spare.len(), helpers, "{algorithm} {mode:?} {threads}");
                }
            }
        }
        assert!(
            one_by_one(CompressionAlgorithm::Zlib(1), CompressMode::Auto)
                .iter()
                .any(Option::is_none),
            "AUTO stores random objects as they are"
        );
    }

    #[test]
    fn small_batches_and_empty_ones_use_no_helper() {
        let algorithm = CompressionAlgorithm::Zstd(1);
        for n in [0, 1, 63] {
            let mut spare = Vec::new();
            let job = CompressJob::start(batch(n), CompressMode::Yes, 8, 64, &mut spare, || {
                BufCompressor::new(algorithm)
            });
            let (back, got) = job
                .finish(&mut BufCompressor::new(algorithm), &mut spare)
                .expect("finish");
            assert_eq!((back.len(), got.len()), (n, n));
            assert!(got.iter().all(Option::is_some));
            assert!(spare.is_empty(), "no helper for {n} objects");
        }
    }

    #[test]
    fn a_job_dropped_unfinished_stops_its_helpers() {
        let algorithm = CompressionAlgorithm::Zlib(1);
        let mut spare = Vec::new();
        let job = CompressJob::start(batch(5000), CompressMode::Yes, 3, 64, &mut spare, || {
            BufCompressor::new(algorithm)
        });
        let shared = Arc::clone(&job.shared);
        drop(job);
        // The helpers were joined: only this test holds the batch now, and no chunk is left
        // to claim.
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(shared.next.load(Ordering::Relaxed) >= shared.done.len());
    }
}
