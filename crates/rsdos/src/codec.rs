//! zlib and zstd: compressing objects into packs and decompressing them back.
//!
//! Which codec a compressed object uses is not in the index (disk-objectstore's `compressed`
//! column is a boolean); it is recognised from the stored bytes: a zstd frame starts with the
//! magic `28 b5 2f fd`, which is never a valid zlib header (`0x28b5 % 31 != 0`). Both are read
//! whatever the container's `compression_algorithm`.

use std::io::{self, BufReader, Read, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use rsdos_core::CompressionAlgorithm;

use crate::parallel_codec::{ParallelZlibEncoder, ZLIB_BLOCK, ZstdEncoder, worker_count};

/// The codec of a compressed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// An RFC 1950 zlib stream (what disk-objectstore writes).
    Zlib,
    /// A zstd frame (rsdos only).
    Zstd,
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The codec of stored compressed bytes, from their first bytes.
pub fn detect_codec(head: &[u8]) -> Codec {
    if head.starts_with(&ZSTD_MAGIC) {
        Codec::Zstd
    } else {
        Codec::Zlib
    }
}

/// True if `head` starts like data that is already compressed (zlib, gzip, zstd, xz, bzip2,
/// zip-based formats, 7z, PNG, JPEG, GIF, WebP, MP4/MOV, HDF5 is *not* included: it is often
/// compressible). Used by [`CompressMode::Auto`](rsdos_core::CompressMode::Auto).
pub fn looks_compressed(head: &[u8]) -> bool {
    let zlib = head.len() >= 2
        && head[0] & 0x0f == 8
        && head[0] >> 4 <= 7
        && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
    let magics: &[&[u8]] = &[
        &[0x1f, 0x8b],                         // gzip
        &ZSTD_MAGIC,                           // zstd
        &[0xfd, b'7', b'z', b'X', b'Z', 0x00], // xz
        b"BZh",                                // bzip2
        b"PK\x03\x04",                         // zip, docx, jar, npz
        &[b'7', b'z', 0xbc, 0xaf, 0x27, 0x1c], // 7z
        &[0x89, b'P', b'N', b'G'],             // png
        &[0xff, 0xd8, 0xff],                   // jpeg
        b"GIF8",                               // gif
        &[0x04, 0x22, 0x4d, 0x18],             // lz4 frame
    ];
    let riff_webp = head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP";
    let mp4 = head.len() >= 8 && &head[4..8] == b"ftyp";
    zlib || riff_webp || mp4 || magics.iter().any(|m| head.starts_with(m))
}

/// Bytes of samples the AUTO heuristic compresses at most (as disk-objectstore: 128 KiB).
const AUTO_SAMPLE_MAX: usize = 128 * 1024;
/// Objects smaller than this are never worth compressing (headers eat the gain).
pub(crate) const AUTO_MIN_SIZE: usize = 64;

/// The AUTO decision from a sample of the object's first bytes: compress when zstd level 1
/// shrinks an evenly spaced 128 KiB sample below 90 %, skipping tiny objects and data that
/// already carries a compressed format's magic. Never compresses the whole object to decide.
pub(crate) fn auto_should_compress(sample: &[u8], object_size: u64) -> bool {
    if object_size < AUTO_MIN_SIZE as u64 || sample.is_empty() || looks_compressed(sample) {
        return false;
    }
    sample_ratio(sample, AUTO_SAMPLE_MAX) < 0.9
}

/// What zstd level 1 makes of `data`, as compressed size over input size, from at most
/// `max` bytes: all of `data` if it fits, else 1 KiB pieces spread evenly over it. 1.0 when
/// it cannot tell (empty input, a failure).
pub(crate) fn sample_ratio(data: &[u8], max: usize) -> f64 {
    let pieces = max / 1024;
    let probe: std::borrow::Cow<'_, [u8]> = if data.len() <= max || pieces == 0 {
        data.into()
    } else {
        let step = data.len() / pieces;
        let mut v = Vec::with_capacity(max);
        for i in 0..pieces {
            let start = i * step;
            v.extend_from_slice(&data[start..(start + 1024).min(data.len())]);
        }
        v.into()
    };
    if probe.is_empty() {
        return 1.0;
    }
    match zstd::bulk::compress(&probe, 1) {
        Ok(c) => c.len() as f64 / probe.len() as f64,
        Err(_) => 1.0,
    }
}

/// Compresses whole in-memory objects, reusing the codec state between objects (creating a
/// zlib or zstd context costs more than compressing a small object).
pub(crate) struct BufCompressor {
    algorithm: CompressionAlgorithm,
    zlib: Option<Compress>,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl BufCompressor {
    pub(crate) fn new(algorithm: CompressionAlgorithm) -> Self {
        BufCompressor {
            algorithm,
            zlib: None,
            zstd: None,
        }
    }

    /// Replaces `out` with the compressed form of `data`.
    pub(crate) fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        match self.algorithm {
            CompressionAlgorithm::Zlib(level) => {
                let z = self
                    .zlib
                    .get_or_insert_with(|| Compress::new(Compression::new(level), true));
                z.reset();
                out.reserve(data.len() / 2 + 64);
                loop {
                    let consumed = z.total_in() as usize;
                    let status = z
                        .compress_vec(&data[consumed..], out, FlushCompress::Finish)
                        .map_err(io::Error::other)?;
                    match status {
                        Status::StreamEnd => break,
                        Status::Ok | Status::BufError => out.reserve(out.capacity().max(64)),
                    }
                }
                Ok(())
            }
            CompressionAlgorithm::Zstd(level) => {
                let z = match &mut self.zstd {
                    Some(z) => z,
                    None => self.zstd.insert(zstd::bulk::Compressor::new(level)?),
                };
                out.resize(zstd::zstd_safe::compress_bound(data.len()), 0);
                let n = z.compress_to_buffer(data, out.as_mut_slice())?;
                out.truncate(n);
                Ok(())
            }
        }
    }
}

/// A streaming compressor writing into `W`, for objects too large to hold in memory. Large
/// inputs are compressed on all cores (see [`crate::parallel_codec`]); the output is still one
/// standard zlib stream or one zstd frame.
pub(crate) enum StreamEncoder<W: Write> {
    Zlib(ParallelZlibEncoder<W>),
    Zstd(ZstdEncoder<W>),
}

impl<W: Write> StreamEncoder<W> {
    pub(crate) fn new(algorithm: CompressionAlgorithm, w: W) -> io::Result<Self> {
        let workers = worker_count();
        Ok(match algorithm {
            CompressionAlgorithm::Zlib(level) => {
                StreamEncoder::Zlib(ParallelZlibEncoder::new(w, level, ZLIB_BLOCK, workers))
            }
            CompressionAlgorithm::Zstd(level) => {
                StreamEncoder::Zstd(ZstdEncoder::new(w, level, workers))
            }
        })
    }

    /// Writes the end of the stream and returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            StreamEncoder::Zlib(e) => e.finish(),
            StreamEncoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for StreamEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            StreamEncoder::Zlib(e) => e.write(buf),
            StreamEncoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            StreamEncoder::Zlib(e) => e.flush(),
            StreamEncoder::Zstd(e) => e.flush(),
        }
    }
}

/// A streaming decompressor over the stored bytes of one object.
pub(crate) enum StreamDecoder<R: Read> {
    Zlib(flate2::read::ZlibDecoder<R>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<R>>>),
}

impl<R: Read> StreamDecoder<R> {
    pub(crate) fn new(codec: Codec, r: R) -> io::Result<Self> {
        Ok(match codec {
            Codec::Zlib => StreamDecoder::Zlib(flate2::read::ZlibDecoder::new(r)),
            Codec::Zstd => {
                let mut d = zstd::stream::read::Decoder::new(r)?;
                // Reject frames that would need more than 128 MiB of window (corrupt input).
                d.window_log_max(27)?;
                StreamDecoder::Zstd(Box::new(d.single_frame()))
            }
        })
    }
}

impl<R: Read> Read for StreamDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            StreamDecoder::Zlib(d) => d.read(buf),
            StreamDecoder::Zstd(d) => d.read(buf),
        }
    }
}
