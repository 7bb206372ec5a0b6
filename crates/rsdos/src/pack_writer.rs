//! Writing objects straight into packs: one transaction per pack, bounded memory.

use std::io::{Read, Write};

use rsdos_core::{
    CompressMode, Error, ErrorKind, ObjectIndexExt, PackAppender, PackId, PackedEntry,
    PackedLocation, Result,
};

use crate::codec::{BufCompressor, StreamEncoder, auto_should_compress};
use crate::compress_job::{CompressJob, Compressed, Pending};
use crate::container::Container;
use crate::hashing::{HashingReader, read_up_to};
use crate::lock::MaintenanceLock;
use crate::row_feeder::{FeedOutcome, RowFeeder};

/// Objects up to this size are read whole into memory, hashed, looked up in batches and
/// written only if new; larger ones are streamed into the pack (and cut off again if they turn
/// out to be duplicates).
const SMALL_OBJECT_MAX: usize = 1024 * 1024;
/// Small objects buffered before one batched index lookup and write.
const PENDING_MAX_OBJECTS: usize = 2048;
/// Bytes of small objects buffered at most.
const PENDING_MAX_BYTES: usize = 16 * 1024 * 1024;
/// Below this many objects a batch is compressed on the writing thread: starting threads
/// costs more than it saves.
const PARALLEL_COMPRESS_MIN: usize = 64;
/// Threads compressing one batch at most (the writing thread is one of them).
const COMPRESS_THREADS_MAX: usize = 8;
/// Rows of the current pack before they are handed to a [`RowFeeder`]: fewer are inserted at
/// commit on the writing thread (a thread costs more than the overlap saves), and handing
/// them over in batches of this size keeps the channel's messages few.
const FEED_MIN_ROWS: usize = 2048;

/// A session of direct-to-pack writes. Holds the maintenance lock and the appender of the
/// current pack; rows of each pack are committed in one transaction after the pack's bytes
/// are fsynced. Dropping it without [`PackWriter::finish`] discards the uncommitted tail.
pub(crate) struct PackWriter<'c> {
    container: &'c Container,
    compress: CompressMode,
    fsync: bool,
    appender: Option<Box<dyn PackAppender>>,
    /// Position of the current pack up to which everything is committed.
    committed_len: u64,
    rows: Vec<PackedEntry>,
    /// Hashkeys written (or found present) in this session.
    /// Hashkeys added so far (foldhash: SipHash of 100,000 keys showed in profiles).
    seen: foldhash::HashSet<String>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    compressor: BufCompressor,
    /// Compressors of the helper threads of [`CompressJob`]s, kept between batches.
    extra_compressors: Vec<BufCompressor>,
    /// The batch handed to compression helpers while the next one is collected: written
    /// before the next batch is handed over, and by [`PackWriter::flush_pending`].
    in_flight: Option<CompressJob>,
    inbuf: Vec<u8>,
    next_pack_hint: PackId,
    /// The helper inserting this pack's rows while the pack is written (started once a
    /// pack has [`FEED_MIN_ROWS`] rows; smaller commits insert on this thread).
    feeder: Option<RowFeeder>,
    /// A helper could not be started or failed: rows are inserted on this thread from then on
    /// (a failed helper hands its rows back).
    feeder_failed: bool,
    /// Why making a pack durable failed. Nothing is committed after that: on Linux a second
    /// fsync after a failed write-back can succeed although the data was dropped, and rows
    /// committed then would let the caller delete the loose copies of lost objects.
    sync_failed: Option<String>,
    /// Rows added to the index by this writer.
    inserted: u64,
    /// Hashkeys whose rows were committed since the last [`PackWriter::take_committed`].
    committed: Vec<String>,
    /// The maintenance lock, unless the caller holds it.
    _lock: Option<MaintenanceLock>,
}

impl<'c> PackWriter<'c> {
    pub(crate) fn new(
        container: &'c Container,
        compress: CompressMode,
        fsync: bool,
    ) -> Result<Self> {
        let lock = container.maintenance_lock()?;
        Ok(Self::with_lock_held(container, compress, fsync, Some(lock)))
    }

    /// A writer for a caller that already holds the maintenance lock (`lock` is `None`).
    pub(crate) fn with_lock_held(
        container: &'c Container,
        compress: CompressMode,
        fsync: bool,
        lock: Option<MaintenanceLock>,
    ) -> Self {
        // Every writing cycle first retries uploads that failed (remote containers only).
        container.retry_uploads_in_cycle();
        PackWriter {
            container,
            compress,
            fsync,
            appender: None,
            committed_len: 0,
            rows: Vec::new(),
            seen: foldhash::HashSet::default(),
            pending: Vec::new(),
            pending_bytes: 0,
            compressor: BufCompressor::new(container.config().compression_algorithm),
            extra_compressors: Vec::new(),
            in_flight: None,
            inbuf: Vec::new(),
            next_pack_hint: container.pack_id_hint(),
            committed: Vec::new(),
            feeder: None,
            feeder_failed: false,
            sync_failed: None,
            inserted: 0,
            _lock: lock,
        }
    }

    /// Hashkeys committed since the last call (for incremental clean after each pack).
    pub(crate) fn take_committed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.committed)
    }

    /// Appends an object whose stored form is already prepared (hashed, verified and possibly
    /// compressed by a worker thread). Skips hashkeys already written in this session.
    pub(crate) fn add_prepared(
        &mut self,
        hashkey: String,
        stored: &[u8],
        size: u64,
        compressed: bool,
    ) -> Result<()> {
        if !self.seen.insert(hashkey.clone()) {
            return Ok(());
        }
        let appender = self.ensure_pack()?;
        let offset = appender.position();
        let pack_id = appender.pack_id();
        if let Err(e) = appender.write_all(stored) {
            let _ = appender.truncate(offset);
            return Err(Error::io("append to pack", format!("pack {pack_id}"), e));
        }
        self.rows.push(PackedEntry {
            hashkey,
            location: PackedLocation {
                pack_id,
                offset,
                length: stored.len() as u64,
                size,
                compressed,
            },
        });
        self.feed_rows(FEED_MIN_ROWS);
        Ok(())
    }

    /// Hands the rows written so far, if there are at least `at_least`, to the helper that
    /// inserts them while the pack is still being written. The helper is started once there
    /// are [`FEED_MIN_ROWS`] rows to hand over.
    fn feed_rows(&mut self, at_least: usize) {
        if self.rows.is_empty() || self.rows.len() < at_least {
            return;
        }
        if self.feeder.is_none() && !self.feeder_failed && self.rows.len() >= FEED_MIN_ROWS {
            self.feeder = RowFeeder::start(self.container);
            self.feeder_failed = self.feeder.is_none();
        }
        if let Some(feeder) = self.feeder.as_mut()
            && let Err(rows) = feeder.feed(std::mem::take(&mut self.rows))
        {
            // The helper failed: its rows come back at commit; these stay here.
            self.rows = rows;
        }
    }

    /// Streams a large object whose hashkey must be `expected` (a loose file being packed);
    /// on a mismatch the bytes are cut off again and a `Corrupt` error is returned.
    pub(crate) fn add_stream_verified(
        &mut self,
        reader: &mut dyn Read,
        expected: &str,
    ) -> Result<()> {
        self.flush_pending()?;
        let rows_before = self.rows.len();
        // The first bytes serve as the sample of the AUTO compression decision.
        let mut head = vec![0u8; 128 * 1024];
        let n = read_up_to(reader, &mut head).map_err(|source| Error::Input { source })?;
        head.truncate(n);
        let got = self.add_streamed(head, reader)?;
        if got != expected {
            if self.rows.len() > rows_before
                && let Some(row) = self.rows.pop()
                && let Some(appender) = self.appender.as_mut()
                && appender.pack_id() == row.location.pack_id
            {
                appender.truncate(row.location.offset)?;
            }
            self.seen.remove(&got);
            return Err(Error::corrupt(
                "loose object",
                expected.to_string(),
                format!("its content hashes to {got}"),
            ));
        }
        Ok(())
    }

    /// Adds one object; returns its hashkey. Small objects are only buffered here.
    pub(crate) fn add(&mut self, reader: &mut dyn Read) -> Result<String> {
        if self.inbuf.len() != SMALL_OBJECT_MAX + 1 {
            self.inbuf = vec![0u8; SMALL_OBJECT_MAX + 1];
        }
        let n = read_up_to(reader, &mut self.inbuf).map_err(|source| Error::Input { source })?;
        let head = self.inbuf[..n].to_vec();
        if n <= SMALL_OBJECT_MAX {
            let hashkey = self.container.config().hash_type.hash_hex(&head);
            if self.seen.insert(hashkey.clone()) {
                self.pending_bytes += head.len();
                self.pending.push(Pending {
                    hashkey: hashkey.clone(),
                    data: head,
                });
                if self.pending.len() >= PENDING_MAX_OBJECTS
                    || self.pending_bytes >= PENDING_MAX_BYTES
                {
                    self.hand_off_pending()?;
                }
            }
            return Ok(hashkey);
        }
        self.flush_pending()?;
        self.add_streamed(head, reader)
    }

    /// Writes buffered small objects that are not already packed, and the batch in flight
    /// before them: when it returns, every object added so far is written.
    fn flush_pending(&mut self) -> Result<()> {
        self.write_in_flight()?;
        let batch = self.take_new_pending()?;
        if batch.is_empty() {
            return Ok(());
        }
        let job = self.start_job(batch);
        let (batch, compressed) = job.finish(&mut self.compressor, &mut self.extra_compressors)?;
        self.write_batch(batch, compressed)
    }

    /// As [`PackWriter::flush_pending`], except that a batch to compress is only handed to
    /// helper threads: it is written when the next batch is handed over (or flushed), and the
    /// caller collects the next batch meanwhile.
    fn hand_off_pending(&mut self) -> Result<()> {
        if matches!(self.compress, CompressMode::No | CompressMode::Keep) {
            return self.flush_pending();
        }
        let batch = self.take_new_pending()?;
        self.write_in_flight()?;
        if !batch.is_empty() {
            self.in_flight = Some(self.start_job(batch));
        }
        Ok(())
    }

    /// Finishes compressing the batch in flight, if any, and writes it.
    fn write_in_flight(&mut self) -> Result<()> {
        let Some(job) = self.in_flight.take() else {
            return Ok(());
        };
        let (batch, compressed) = job.finish(&mut self.compressor, &mut self.extra_compressors)?;
        self.write_batch(batch, compressed)
    }

    /// The buffered objects that are not packed already (one index lookup for all).
    fn take_new_pending(&mut self) -> Result<Vec<Pending>> {
        if self.pending.is_empty() {
            return Ok(Vec::new());
        }
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let keys: Vec<&str> = pending.iter().map(|p| p.hashkey.as_str()).collect();
        let present: foldhash::HashSet<String> = self.container.index().packed_among(&keys)?;
        Ok(if present.is_empty() {
            pending
        } else {
            pending
                .into_iter()
                .filter(|p| !present.contains(&p.hashkey))
                .collect()
        })
    }

    /// Starts compressing `batch` on all cores (up to [`COMPRESS_THREADS_MAX`] threads, the
    /// caller of [`CompressJob::finish`] one of them). Compression is the costly step of a
    /// compressed write (zlib-1 runs at ~100 MB/s on large objects, ~18 µs per small one).
    fn start_job(&mut self, batch: Vec<Pending>) -> CompressJob {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(COMPRESS_THREADS_MAX);
        let algorithm = self.container.config().compression_algorithm;
        CompressJob::start(
            batch,
            self.compress,
            threads,
            PARALLEL_COMPRESS_MIN,
            &mut self.extra_compressors,
            || BufCompressor::new(algorithm),
        )
    }

    /// Appends each object of `batch` in its stored form (`compressed`, in the same order)
    /// and records its row.
    fn write_batch(&mut self, batch: Vec<Pending>, compressed: Compressed) -> Result<()> {
        for (p, packed) in batch.into_iter().zip(compressed) {
            let stored: &[u8] = packed.as_deref().unwrap_or(&p.data);
            let appender = self.ensure_pack()?;
            let offset = appender.position();
            let pack_id = appender.pack_id();
            if let Err(e) = appender.write_all(stored) {
                let _ = appender.truncate(offset);
                return Err(Error::io("append to pack", format!("pack {pack_id}"), e));
            }
            self.rows.push(PackedEntry {
                location: PackedLocation {
                    pack_id,
                    offset,
                    length: stored.len() as u64,
                    size: p.data.len() as u64,
                    compressed: packed.is_some(),
                },
                hashkey: p.hashkey,
            });
        }
        self.feed_rows(FEED_MIN_ROWS);
        Ok(())
    }

    /// Streams a large object into the current pack while hashing (and compressing).
    fn add_streamed(&mut self, head: Vec<u8>, rest: &mut dyn Read) -> Result<String> {
        let hash_type = self.container.config().hash_type;
        let algorithm = self.container.config().compression_algorithm;
        let compress = match self.compress {
            CompressMode::Yes => true,
            CompressMode::No | CompressMode::Keep => false,
            CompressMode::Auto => auto_should_compress(&head, u64::MAX),
        };
        let appender = self.ensure_pack()?;
        let offset = appender.position();
        let pack_id = appender.pack_id();
        let mut input = HashingReader::new(std::io::Cursor::new(head).chain(rest), hash_type);
        let copied = if compress {
            StreamEncoder::new(algorithm, &mut *appender).and_then(|mut enc| {
                std::io::copy(&mut input, &mut enc)?;
                enc.finish().map(|_| ())
            })
        } else {
            std::io::copy(&mut input, &mut *appender).map(|_| ())
        };
        if let Err(e) = copied {
            let _ = appender.truncate(offset);
            return Err(if input.input_failed() {
                Error::Input { source: e }
            } else {
                Error::io("append to pack", format!("pack {pack_id}"), e)
            });
        }
        let length = appender.position() - offset;
        let (hashkey, size) = input.finish()?;
        let duplicate =
            !self.seen.insert(hashkey.clone()) || self.container.index().get(&hashkey)?.is_some();
        if duplicate {
            if let Some(appender) = self.appender.as_mut() {
                appender.truncate(offset)?;
            }
        } else {
            self.rows.push(PackedEntry {
                hashkey: hashkey.clone(),
                location: PackedLocation {
                    pack_id,
                    offset,
                    length,
                    size,
                    compressed: compress,
                },
            });
        }
        Ok(hashkey)
    }

    /// The appender to write the next object to: the current pack while it is below
    /// `pack_size_target`, else (after committing it) the first pack id, from the cached hint
    /// on, that is absent or below target and not sealed (disk-objectstore's rule, so a pack
    /// overshoots the target by at most one object).
    fn ensure_pack(&mut self) -> Result<&mut Box<dyn PackAppender>> {
        let target = self.container.config().pack_size_target;
        let full = self
            .appender
            .as_ref()
            .is_some_and(|a| a.position() >= target);
        if full {
            self.commit()?;
            // A full pack is never appended to again: seal it, which writes its sidecar.
            if let Some(appender) = self.appender.take() {
                let id = appender.pack_id();
                drop(appender);
                self.container.seal_finished_pack(id)?;
            }
            self.next_pack_hint += 1;
        }
        if self.appender.is_none() {
            let packs = self.container.packs();
            // Ids below the highest existing pack that are absent were removed by a repack:
            // they are retired, never created again, so that a reader holding an old location
            // can never read another pack's bytes under the same id.
            let highest = packs.list()?.last().copied();
            let mut id = self.next_pack_hint;
            let appender = loop {
                let usable = match packs.len(id)? {
                    None => highest.is_none_or(|h| id > h),
                    Some(len) => {
                        len < target && !packs.is_sealed(id)? && !self.container.seal_deferred(id)
                    }
                };
                if usable {
                    match packs.open_append(id) {
                        Ok(mut appender) => {
                            appender.write_back_early(self.fsync);
                            break appender;
                        }
                        // A deleted pack whose bytes object storage still keeps (the highest
                        // id was removed): retired as well.
                        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(e),
                    }
                }
                id += 1;
            };
            self.committed_len = appender.position();
            self.next_pack_hint = id;
            self.container.set_pack_id_hint(id);
            self.appender = Some(appender);
        }
        self.appender
            .as_mut()
            .ok_or_else(|| Error::InvalidArgument("BUG: no pack appender".into()))
    }

    /// Makes the current pack durable and commits its rows in one transaction.
    fn commit(&mut self) -> Result<()> {
        if self.appender.is_none() {
            return Ok(());
        }
        if let Some(why) = &self.sync_failed {
            let pack = self
                .appender
                .as_ref()
                .map(|a| a.pack_id())
                .unwrap_or_default();
            return Err(Error::io(
                "commit pack",
                format!("pack {pack}"),
                std::io::Error::other(format!(
                    "making the pack durable failed earlier ({why}); nothing more is committed"
                )),
            ));
        }
        // The rows not fed yet are fed now, so that the helper inserts them while the pack
        // syncs (a helper is started for them if they are many).
        self.feed_rows(1);
        let Some(appender) = self.appender.as_mut() else {
            return Ok(());
        };
        let pack_id = appender.pack_id();
        let position = appender.position();
        let durable = if self.fsync {
            appender.sync()
        } else {
            // Without fsync the rows must still point at bytes in the file: a buffering
            // appender writes them out here, and a failure (a full disk) stops the commit.
            appender
                .flush()
                .map_err(|e| Error::io("write pack", format!("pack {pack_id}"), e))
        };
        if let Err(e) = durable {
            self.sync_failed = Some(e.to_string());
            // Its session rolls back.
            self.feeder = None;
            return Err(e);
        }
        // Only now, with the bytes durable, may the rows become visible.
        if let Some(feeder) = self.feeder.take() {
            match feeder.commit()? {
                FeedOutcome::Committed { added, rows } => {
                    self.inserted += added;
                    self.committed
                        .extend(rows.into_iter().flatten().map(|r| r.hashkey));
                }
                FeedOutcome::NotCommitted(mut rows) => {
                    // Inserted here instead, below; `INSERT OR IGNORE` skips any row that a
                    // commit reported as failed did write.
                    rows.append(&mut self.rows);
                    self.rows = rows;
                    self.feeder_failed = true;
                }
            }
        }
        self.inserted += self.container.index().insert(&self.rows)?;
        self.committed
            .extend(self.rows.drain(..).map(|r| r.hashkey));
        self.committed_len = position;
        Ok(())
    }

    /// Writes what is buffered and commits the current pack.
    pub(crate) fn finish(self) -> Result<()> {
        self.finish_keep().map(|_| ())
    }

    /// As [`PackWriter::finish`], returning the number of rows added and the hashkeys
    /// committed since the last [`PackWriter::take_committed`].
    pub(crate) fn finish_keep(mut self) -> Result<Finished> {
        self.flush_pending()?;
        self.commit()?;
        if let Some(appender) = self.appender.take() {
            let (id, full) = (
                appender.pack_id(),
                appender.position() >= self.container.config().pack_size_target,
            );
            drop(appender);
            if full {
                self.container.seal_finished_pack(id)?;
            }
        }
        Ok(Finished {
            total: self.inserted,
            last_keys: std::mem::take(&mut self.committed),
        })
    }
}

/// What a finished [`PackWriter`] committed.
pub(crate) struct Finished {
    /// Rows added to the index in the whole session.
    pub(crate) total: u64,
    /// Hashkeys committed since the last `take_committed`.
    pub(crate) last_keys: Vec<String>,
}

impl Drop for PackWriter<'_> {
    fn drop(&mut self) {
        // Rows not committed are invisible; their bytes would only be an unreferenced tail.
        if let Some(appender) = self.appender.as_mut() {
            let pos = appender.position();
            if pos > self.committed_len {
                let _ = appender.truncate(self.committed_len);
            }
        }
    }
}
