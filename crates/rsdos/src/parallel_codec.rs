//! Compressing one large object on all cores, with bounded memory.
//!
//! zlib (pigz's method): the input is cut into blocks that worker threads compress as raw
//! deflate, each primed with the last 32 KiB of the previous block as dictionary (so matches
//! across a block boundary are still found and the ratio stays close to one sequential
//! stream), each ending with a sync flush (an empty stored block: byte-aligned, not final),
//! the last one with the final block. The writer emits the 2-byte zlib header, the blocks in
//! order and the big-endian Adler-32 of the whole input, combined from per-block values. The
//! result is one standard RFC 1950 stream that any zlib (Python's `zlib.decompress`, hence
//! disk-objectstore) reads.
//!
//! zstd: the C library's own multithreading (`ZSTD_c_nbWorkers`), which also writes one
//! standard frame; see [`ZstdEncoder`].

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::codec::sample_ratio;

/// Uncompressed bytes per zlib block. Measured on a 2-core machine over 1 GiB (half random,
/// half text) at level 1: 128 KiB to 4 MiB all keep both cores busy, and 1 MiB kept the ratio
/// within 0.1 % of one stream (each block is primed with the previous one's last 32 KiB).
/// 256 KiB (pigz uses 128 KiB) lets a stretch of incompressible data of that size be stored
/// instead of deflated (see [`STORE_RATIO`]); on the benchmark's 1 GiB the result was 540.2 MB
/// against 541.2 MB for disk-objectstore's single stream.
pub(crate) const ZLIB_BLOCK: usize = 256 * 1024;
/// A block whose sample zstd level 1 cannot shrink below this ratio is written as stored
/// deflate blocks (a copy) instead of being deflated: deflate at level 1 would not shrink it
/// either (zlib then emits stored blocks itself) but spends as long as on any data, about
/// 10 ms per MiB here. Random, encrypted or already compressed stretches then cost a copy.
const STORE_RATIO: f64 = 0.97;
/// Bytes of a block that zstd compresses to decide: 16 pieces of 1 KiB, about 1 % of the
/// time of deflating the block.
const STORE_SAMPLE: usize = 16 * 1024;
/// Deflate's window: the dictionary carried from one block into the next.
const DICT_SIZE: usize = 32 * 1024;
/// Worker threads per encoder at most.
const WORKERS_MAX: usize = 8;
/// Blocks handed to workers and not yet written, at most: two per worker keep them busy while
/// the writer writes, and bound the memory (about two blocks each: input and output).
const IN_FLIGHT_MAX: usize = 8;
/// zstd objects up to this size are compressed on the calling thread: below it starting the
/// library's thread pool and its job buffers costs more than it saves.
pub(crate) const ZSTD_PARALLEL_MIN: usize = 4 * 1024 * 1024;

/// Threads to use for one object: the cores, capped.
pub(crate) fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(WORKERS_MAX)
}

const ADLER_BASE: u32 = 65521;
/// Largest n such that 255 n (n + 1) / 2 + (n + 1) (BASE - 1) fits in 32 bits (zlib's NMAX).
const ADLER_NMAX: usize = 5552;

/// Adler-32 of `data` continued from `adler` (1 for an empty start), as zlib's `adler32`.
pub(crate) fn adler32(adler: u32, data: &[u8]) -> u32 {
    let mut a = adler & 0xffff;
    let mut b = adler >> 16;
    for chunk in data.chunks(ADLER_NMAX) {
        let mut quads = chunk.chunks_exact(4);
        for q in &mut quads {
            a += u32::from(q[0]);
            b += a;
            a += u32::from(q[1]);
            b += a;
            a += u32::from(q[2]);
            b += a;
            a += u32::from(q[3]);
            b += a;
        }
        for &x in quads.remainder() {
            a += u32::from(x);
            b += a;
        }
        a %= ADLER_BASE;
        b %= ADLER_BASE;
    }
    (b << 16) | a
}

/// The Adler-32 of `A ++ B` from those of `A` and of `B` (`len2` bytes), as zlib's
/// `adler32_combine`.
pub(crate) fn adler32_combine(adler1: u32, adler2: u32, len2: u64) -> u32 {
    let base = u64::from(ADLER_BASE);
    let rem = len2 % base;
    let a1 = u64::from(adler1 & 0xffff);
    let b1 = u64::from(adler1 >> 16);
    let a2 = u64::from(adler2 & 0xffff);
    let b2 = u64::from(adler2 >> 16);
    let a = (a1 + a2 + base - 1) % base;
    let b = (rem * a1 % base + b1 + b2 + base - rem) % base;
    ((b << 16) | a) as u32
}

/// The 2-byte zlib header zlib itself writes for `level` (32 KiB window, no dictionary).
fn zlib_header(level: u32) -> [u8; 2] {
    let cmf: u16 = 0x78;
    let flevel: u16 = match level {
        0 | 1 => 0,
        2..=5 => 1,
        6 => 2,
        _ => 3,
    };
    let mut h = (cmf << 8) | (flevel << 6);
    h += 31 - h % 31;
    h.to_be_bytes()
}

/// Compresses one block as raw deflate into `out` (cleared first): primed with `dict`, ending
/// with a sync flush, or with the final block when `last`.
fn deflate_block(
    z: &mut Compress,
    dict: &[u8],
    data: &[u8],
    last: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    z.reset();
    if !dict.is_empty() {
        z.set_dictionary(dict).map_err(io::Error::other)?;
    }
    out.clear();
    // deflate's worst case is a few bytes per 16 KiB stored block; one call is then enough.
    out.reserve(data.len() + data.len() / 64 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = z.total_in() as usize;
        let status = z
            .compress_vec(&data[consumed..], out, flush)
            .map_err(io::Error::other)?;
        let all_in = z.total_in() as usize == data.len();
        let done = match status {
            Status::StreamEnd => true,
            // The flush is complete once all input is taken and output space is left over.
            Status::Ok | Status::BufError => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            return Ok(());
        }
        out.reserve(out.capacity().max(4096));
    }
}

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    out: Vec<u8>,
    last: bool,
    reply: SyncSender<io::Result<Done>>,
}

struct Done {
    /// The input, given back for reuse.
    data: Vec<u8>,
    out: Vec<u8>,
    adler: u32,
}

/// The worker threads of one encoder; they end when the job channel is closed.
struct Pool {
    jobs: Option<SyncSender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(level: u32, workers: usize) -> io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(IN_FLIGHT_MAX);
        let rx = Arc::new(Mutex::new(rx));
        let mut pool = Pool {
            jobs: Some(tx),
            threads: Vec::with_capacity(workers),
        };
        for _ in 0..workers {
            let rx = Arc::clone(&rx);
            let handle = std::thread::Builder::new()
                .name("rsdos-deflate".into())
                .spawn(move || worker(&rx, level))?;
            pool.threads.push(handle);
        }
        Ok(pool)
    }
}

fn worker(rx: &Mutex<Receiver<Job>>, level: u32) {
    let mut z = Compress::new(Compression::new(level), false);
    let mut store = Compress::new(Compression::none(), false);
    loop {
        // A poisoned lock means another worker panicked: end too (the writer sees the error).
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else {
            return;
        };
        // Stored blocks need no dictionary; the next block is still primed with this one's end.
        let incompressible = sample_ratio(&job.data, STORE_SAMPLE) >= STORE_RATIO;
        let (codec, dict) = if incompressible {
            (&mut store, &[][..])
        } else {
            (&mut z, &job.dict[..])
        };
        let result = deflate_block(codec, dict, &job.data, job.last, &mut job.out).map(|()| Done {
            adler: adler32(1, &job.data),
            data: job.data,
            out: job.out,
        });
        // The writer stopped waiting (an error elsewhere): nothing to do with the result.
        let _ = job.reply.send(result);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing the channel ends the workers after their current block; joining them makes
        // an encoder dropped on error leave no thread behind.
        self.jobs = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A zlib stream encoder compressing blocks on worker threads (see the module docs). Inputs
/// up to one block are compressed on the calling thread, without starting threads.
///
/// `flush` only flushes the inner writer: the block being filled is held until it is full
/// and more input arrives, or until [`ParallelZlibEncoder::finish`] (the last block must be
/// known to end the stream).
pub(crate) struct ParallelZlibEncoder<W: Write> {
    w: W,
    level: u32,
    block: usize,
    workers: usize,
    /// The block being filled.
    buf: Vec<u8>,
    /// The last `DICT_SIZE` bytes of the previous block.
    dict: Vec<u8>,
    header_written: bool,
    /// Adler-32 of the blocks written so far.
    adler: u32,
    in_flight: VecDeque<Receiver<io::Result<Done>>>,
    free_in: Vec<Vec<u8>>,
    free_out: Vec<Vec<u8>>,
    /// Declared after `in_flight`, so dropped after it: workers never wait on a reply.
    pool: Option<Pool>,
}

impl<W: Write> ParallelZlibEncoder<W> {
    /// An encoder at `level` with blocks of `block` bytes on `workers` threads.
    pub(crate) fn new(w: W, level: u32, block: usize, workers: usize) -> Self {
        ParallelZlibEncoder {
            w,
            level,
            block: block.max(1),
            workers: workers.max(1),
            buf: Vec::new(),
            dict: Vec::new(),
            header_written: false,
            adler: 1,
            in_flight: VecDeque::new(),
            free_in: Vec::new(),
            free_out: Vec::new(),
            pool: None,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.w.write_all(&zlib_header(self.level))?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Writes the oldest block in flight.
    fn write_oldest(&mut self) -> io::Result<()> {
        let Some(rx) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = rx
            .recv()
            .map_err(|_| io::Error::other("a compression thread ended unexpectedly"))??;
        self.w.write_all(&done.out)?;
        self.adler = adler32_combine(self.adler, done.adler, done.data.len() as u64);
        self.free_in.push(done.data);
        self.free_out.push(done.out);
        Ok(())
    }

    /// Hands the current block to the workers.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        if self.pool.is_none() {
            self.pool = Some(Pool::new(self.level, self.workers)?);
        }
        let in_flight_max = (2 * self.workers).min(IN_FLIGHT_MAX);
        while self.in_flight.len() >= in_flight_max {
            self.write_oldest()?;
        }
        let mut next = self.free_in.pop().unwrap_or_default();
        next.clear();
        let data = std::mem::replace(&mut self.buf, next);
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(DICT_SIZE)..].to_vec(),
        );
        let (reply, rx) = sync_channel(1);
        let job = Job {
            dict,
            data,
            out: self.free_out.pop().unwrap_or_default(),
            last,
            reply,
        };
        let sent = self
            .pool
            .as_ref()
            .and_then(|p| p.jobs.as_ref())
            .map(|jobs| jobs.send(job).is_ok());
        if sent != Some(true) {
            return Err(io::Error::other(
                "the compression threads ended unexpectedly",
            ));
        }
        self.in_flight.push_back(rx);
        Ok(())
    }

    /// Compresses what is buffered, writes the end of the stream and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        if self.pool.is_none() {
            // At most one block in all: no threads.
            let mut z = Compress::new(Compression::new(self.level), false);
            let mut out = Vec::new();
            deflate_block(&mut z, &[], &self.buf, true, &mut out)?;
            self.w.write_all(&out)?;
            self.adler = adler32(1, &self.buf);
        } else {
            self.dispatch(true)?;
            while !self.in_flight.is_empty() {
                self.write_oldest()?;
            }
        }
        self.w.write_all(&self.adler.to_be_bytes())?;
        // Dropping the rest ends the workers (see `Pool`'s `Drop`).
        let ParallelZlibEncoder { w, .. } = self;
        Ok(w)
    }
}

impl<W: Write> Write for ParallelZlibEncoder<W> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        self.write_header()?;
        while !data.is_empty() {
            if self.buf.len() >= self.block {
                // Full and more input follows: this block is not the last one.
                self.dispatch(false)?;
            }
            if self.buf.capacity() < self.block {
                self.buf.reserve_exact(self.block - self.buf.len());
            }
            let take = (self.block - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// A zstd stream encoder that uses the library's worker threads for inputs above
/// [`ZSTD_PARALLEL_MIN`] (buffered until then) and the calling thread below. Either way the
/// output is one zstd frame.
pub(crate) struct ZstdEncoder<W: Write> {
    level: i32,
    workers: usize,
    state: ZstdState<W>,
}

enum ZstdState<W: Write> {
    /// The first bytes, while the input may still be small.
    Front {
        w: W,
        buf: Vec<u8>,
    },
    Streaming(zstd::stream::write::Encoder<'static, W>),
    /// After a failed switch to streaming (the writer went with the error).
    Failed,
}

impl<W: Write> ZstdEncoder<W> {
    pub(crate) fn new(w: W, level: i32, workers: usize) -> Self {
        ZstdEncoder {
            level,
            workers: workers.max(1),
            state: ZstdState::Front { w, buf: Vec::new() },
        }
    }

    fn encoder(
        &self,
        w: W,
        parallel: bool,
    ) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
        let mut enc = zstd::stream::write::Encoder::new(w, self.level)?;
        if parallel && self.workers > 1 {
            enc.multithread(self.workers as u32)?;
        }
        Ok(enc)
    }

    /// Writes the end of the frame and returns the writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        match std::mem::replace(&mut self.state, ZstdState::Failed) {
            ZstdState::Front { w, buf } => {
                let mut enc = self.encoder(w, false)?;
                enc.write_all(&buf)?;
                enc.finish()
            }
            ZstdState::Streaming(enc) => enc.finish(),
            ZstdState::Failed => Err(failed()),
        }
    }
}

fn failed() -> io::Error {
    io::Error::other("the zstd encoder failed earlier")
}

impl<W: Write> Write for ZstdEncoder<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match &mut self.state {
            ZstdState::Streaming(enc) => enc.write(data),
            ZstdState::Failed => Err(failed()),
            ZstdState::Front { buf, .. } if buf.len() + data.len() <= ZSTD_PARALLEL_MIN => {
                buf.extend_from_slice(data);
                Ok(data.len())
            }
            ZstdState::Front { .. } => {
                let ZstdState::Front { w, buf } =
                    std::mem::replace(&mut self.state, ZstdState::Failed)
                else {
                    return Err(failed());
                };
                let mut enc = self.encoder(w, true)?;
                enc.write_all(&buf)?;
                drop(buf);
                enc.write_all(data)?;
                self.state = ZstdState::Streaming(enc);
                Ok(data.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            ZstdState::Streaming(enc) => enc.flush(),
            ZstdState::Front { w, .. } => w.flush(),
            ZstdState::Failed => Err(failed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Deterministic data: incompressible, compressible or a mix (per 4 KiB).
    fn data(n: usize, kind: u8, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let random = match kind {
                0 => true,
                1 => false,
                _ => (out.len() / 4096) % 2 == 0,
            };
            if random {
                out.extend_from_slice(&s.to_le_bytes());
            } else {
                out.extend_from_slice(format!("word{} line of text ", s % 97).as_bytes());
            }
        }
        out.truncate(n);
        out
    }

    fn zlib_parallel(input: &[u8], level: u32, block: usize, workers: usize) -> Vec<u8> {
        let mut enc = ParallelZlibEncoder::new(Vec::new(), level, block, workers);
        // Uneven writes, so that writes straddle block boundaries.
        for piece in input.chunks(777) {
            enc.write_all(piece).expect("write");
        }
        enc.finish().expect("finish")
    }

    fn inflate(stream: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        // ZlibDecoder checks the header and the Adler-32 trailer.
        flate2::read::ZlibDecoder::new(stream)
            .read_to_end(&mut out)
            .expect("a valid zlib stream");
        out
    }

    /// Input sizes around the block size, for `block`.
    fn sizes(block: usize) -> Vec<usize> {
        vec![0, 1, block - 1, block, block + 1, 2 * block, 5 * block + 3]
    }

    #[test]
    fn adler32_matches_known_values_and_combines() {
        assert_eq!(adler32(1, b""), 1);
        assert_eq!(adler32(1, b"Wikipedia"), 0x11E6_0398);
        let d = data(100_000, 2, 1);
        // All 0xff: the worst case for the deferred modulo.
        let ff = vec![0xffu8; 3 * ADLER_NMAX + 5];
        assert_eq!(
            adler32(adler32(1, &ff[..10]), &ff[10..]),
            adler32(1, &ff),
            "continued"
        );
        for split in [0, 1, 5551, 5552, 65521, 65522, 99_999, 100_000] {
            let (a, b) = d.split_at(split);
            assert_eq!(
                adler32_combine(adler32(1, a), adler32(1, b), b.len() as u64),
                adler32(1, &d),
                "split at {split}"
            );
        }
        let mut sequential = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(1));
        sequential.write_all(&ff).expect("compress");
        let s = sequential.finish().expect("finish");
        assert_eq!(
            s[s.len() - 4..],
            adler32(1, &ff).to_be_bytes(),
            "same trailer as zlib"
        );
    }

    #[test]
    fn header_is_zlibs() {
        for level in 0..=9 {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(level));
            e.write_all(b"x").expect("compress");
            let z = e.finish().expect("finish");
            assert_eq!(zlib_header(level), [z[0], z[1]], "level {level}");
        }
    }

    #[test]
    fn parallel_zlib_round_trips_at_every_size_and_kind() {
        for (block, workers) in [(1000, 2), (4096, 3), (ZLIB_BLOCK, 2)] {
            for n in sizes(block) {
                for kind in 0..3 {
                    let input = data(n, kind, n as u64);
                    for level in [1, 6, 9] {
                        let z = zlib_parallel(&input, level, block, workers);
                        assert_eq!(inflate(&z), input, "{n} bytes, kind {kind}, level {level}");
                    }
                }
            }
        }
    }

    /// Each block is judged on its own: random blocks are stored (a copy, no deflate), text
    /// blocks deflated, and the stream alternating them still reads back whole.
    #[test]
    fn incompressible_blocks_are_stored_and_the_rest_deflated() {
        let block = 64 * 1024;
        let mut input = Vec::new();
        for i in 0..8u64 {
            let kind = if i % 2 == 0 { 0 } else { 1 };
            let piece = data(block, kind, 20 + i);
            let ratio = sample_ratio(&piece, STORE_SAMPLE);
            if kind == 0 {
                assert!(ratio >= STORE_RATIO, "random block judged {ratio}");
            } else {
                assert!(ratio < 0.5, "text block judged {ratio}");
            }
            input.extend_from_slice(&piece);
        }
        let z = zlib_parallel(&input, 1, block, 2);
        assert_eq!(inflate(&z), input);
        // The four random blocks cannot shrink; the four text ones must.
        assert!(z.len() >= 4 * block, "{} bytes", z.len());
        assert!(z.len() < 4 * block + block, "{} bytes", z.len());
        // Stored by the level-0 path: each random block starts with a byte-aligned stored
        // block of 65,535 bytes (`00 ff ff 00 00`). Deflate at level 1 also falls back to
        // stored blocks on random data, but of at most its 16 Ki-symbol buffer.
        let full_stored = z.windows(5).filter(|w| *w == [0, 0xff, 0xff, 0, 0]).count();
        assert_eq!(full_stored, 4, "stored blocks of 65,535 bytes");
    }

    #[test]
    fn parallel_zlib_ratio_stays_close_to_one_stream() {
        let input = data(8 * ZLIB_BLOCK, 1, 3);
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(1));
        e.write_all(&input).expect("compress");
        let single = e.finish().expect("finish").len();
        let parallel = zlib_parallel(&input, 1, ZLIB_BLOCK, 2).len();
        // A sync flush and a dictionary per block: at most about 1 % more.
        assert!(
            (parallel as f64) < single as f64 * 1.01,
            "parallel {parallel} vs single {single}"
        );
    }

    /// The Python of the interoperability tests (`$RSDOS_TEST_PYTHON`, else the workspace
    /// venv); its standard `zlib` module must read the streams.
    #[test]
    fn python_zlib_decompresses_parallel_streams() {
        let python = std::env::var_os("RSDOS_TEST_PYTHON")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python")
            });
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cases = Vec::new();
        for (block, workers) in [(1000, 2), (ZLIB_BLOCK, 2)] {
            for n in sizes(block) {
                for kind in 0..3 {
                    let input = data(n, kind, 7 + n as u64);
                    let i = cases.len();
                    let raw = dir.path().join(format!("{i}.raw"));
                    let z = dir.path().join(format!("{i}.z"));
                    std::fs::write(&raw, &input).expect("write");
                    std::fs::write(&z, zlib_parallel(&input, 1, block, workers)).expect("write");
                    cases.push(i);
                }
            }
        }
        let script = format!(
            "import sys, zlib\n\
             for i in range({}):\n\
             \x20   raw = open(f'{{sys.argv[1]}}/{{i}}.raw', 'rb').read()\n\
             \x20   z = open(f'{{sys.argv[1]}}/{{i}}.z', 'rb').read()\n\
             \x20   assert zlib.decompress(z) == raw, i\n\
             \x20   d = zlib.decompressobj()\n\
             \x20   assert d.decompress(z) == raw and d.eof and not d.unused_data, i\n\
             print('ok', {})\n",
            cases.len(),
            cases.len()
        );
        let out = std::process::Command::new(&python)
            .args(["-c", &script])
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (set RSDOS_TEST_PYTHON or run scripts/setup-venv.sh): {e}",
                    python.display()
                )
            });
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("ok {}", cases.len())
        );
    }

    /// A writer that fails after `left` bytes.
    struct Failing {
        left: usize,
    }

    impl Write for Failing {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("disk full"));
            }
            let n = buf.len().min(self.left);
            self.left -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A reader that fails half-way.
    struct FailingReader {
        data: Vec<u8>,
        pos: usize,
        fail_at: usize,
    }

    impl Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.fail_at {
                return Err(io::Error::other("input failed"));
            }
            let n = buf.len().min(self.fail_at - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn errors_end_the_workers_without_hanging() {
        let input = data(10 * 4096, 2, 9);
        // The output fails: the error comes back from write or finish, threads end.
        for left in [0, 1, 3000, 20_000] {
            let mut enc = ParallelZlibEncoder::new(Failing { left }, 1, 4096, 2);
            let r = enc
                .write_all(&input)
                .and_then(|()| enc.finish().map(|_| ()));
            assert!(r.is_err(), "output failing after {left} bytes");
        }
        // The input fails half-way: the encoder is dropped mid-stream.
        for algorithm in [
            rsdos_core::CompressionAlgorithm::Zlib(1),
            rsdos_core::CompressionAlgorithm::Zstd(1),
        ] {
            let big = data(3 * ZSTD_PARALLEL_MIN, 2, 10);
            let mut reader = FailingReader {
                fail_at: big.len() / 2,
                data: big,
                pos: 0,
            };
            let mut enc = crate::codec::StreamEncoder::new(algorithm, Vec::new()).expect("encoder");
            let err = std::io::copy(&mut reader, &mut enc).expect_err("input fails");
            assert_eq!(err.to_string(), "input failed");
            drop(enc);
        }
    }

    #[test]
    fn zstd_encoder_writes_one_frame_below_and_above_the_threshold() {
        for n in [
            0,
            1,
            ZSTD_PARALLEL_MIN,
            ZSTD_PARALLEL_MIN + 1,
            3 * ZSTD_PARALLEL_MIN + 5,
        ] {
            let input = data(n, 2, n as u64);
            let mut enc = ZstdEncoder::new(Vec::new(), 1, 2);
            for piece in input.chunks(65_536) {
                enc.write_all(piece).expect("write");
            }
            let z = enc.finish().expect("finish");
            assert_eq!(crate::codec::detect_codec(&z), crate::codec::Codec::Zstd);
            let mut out = Vec::new();
            crate::codec::StreamDecoder::new(crate::codec::Codec::Zstd, z.as_slice())
                .expect("decoder")
                .read_to_end(&mut out)
                .expect("one frame");
            assert_eq!(out, input, "{n} bytes");
        }
    }
}
