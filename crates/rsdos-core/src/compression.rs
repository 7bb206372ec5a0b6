//! Compression settings: the container-wide algorithm and the per-call mode.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// The algorithm a container uses for newly compressed objects, as spelled in `config.json`:
/// `zlib+1` .. `zlib+9` (disk-objectstore's) or `zstd+1` .. `zstd+22` (rsdos only; a
/// disk-objectstore that opens such a container refuses to decompress with its own error).
/// Objects of either codec are read whatever the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompressionAlgorithm {
    /// zlib (RFC 1950 stream) at this level, 1-9.
    Zlib(u32),
    /// zstd frame at this level, 1-22.
    Zstd(i32),
}

impl Default for CompressionAlgorithm {
    /// `zlib+1`, disk-objectstore's default, so that containers stay readable by it.
    fn default() -> Self {
        CompressionAlgorithm::Zlib(1)
    }
}

impl CompressionAlgorithm {
    /// True for the zstd codec (which disk-objectstore cannot read).
    pub fn is_rsdos_only(self) -> bool {
        matches!(self, CompressionAlgorithm::Zstd(_))
    }
}

impl fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompressionAlgorithm::Zlib(l) => write!(f, "zlib+{l}"),
            CompressionAlgorithm::Zstd(l) => write!(f, "zstd+{l}"),
        }
    }
}

impl FromStr for CompressionAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |detail: String| Error::Config { path: None, detail };
        let (name, variant) = s.split_once('+').ok_or_else(|| {
            bad(format!(
                "compression algorithm {s:?} must be NAME+LEVEL, e.g. zlib+1 or zstd+3"
            ))
        })?;
        let level_ok = !variant.is_empty() && variant.bytes().all(|b| b.is_ascii_digit());
        match name {
            "zlib" => match variant.parse::<u32>() {
                Ok(l @ 1..=9) if level_ok => Ok(CompressionAlgorithm::Zlib(l)),
                _ => Err(bad(format!(
                    "invalid zlib level {variant:?} in {s:?} (1-9)"
                ))),
            },
            "zstd" => match variant.parse::<i32>() {
                Ok(l @ 1..=22) if level_ok => Ok(CompressionAlgorithm::Zstd(l)),
                _ => Err(bad(format!(
                    "invalid zstd level {variant:?} in {s:?} (1-22)"
                ))),
            },
            other => Err(bad(format!(
                "unknown compression algorithm {other:?} in {s:?} (supported: zlib, zstd)"
            ))),
        }
    }
}

/// Whether to compress objects being written to a pack, as disk-objectstore's `CompressMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressMode {
    /// Store uncompressed.
    #[default]
    No,
    /// Compress with the container's algorithm.
    Yes,
    /// Keep what the source has (loose objects are uncompressed, so this is `No` for them).
    Keep,
    /// Decide per object from a cheap sample: small objects, already compressed data and
    /// incompressible data are stored as they are.
    Auto,
}

impl FromStr for CompressMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "no" => Ok(CompressMode::No),
            "yes" => Ok(CompressMode::Yes),
            "keep" => Ok(CompressMode::Keep),
            "auto" => Ok(CompressMode::Auto),
            other => Err(Error::InvalidArgument(format!(
                "unknown compress mode {other:?} (no, yes, keep, auto)"
            ))),
        }
    }
}

impl fmt::Display for CompressMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CompressMode::No => "no",
            CompressMode::Yes => "yes",
            CompressMode::Keep => "keep",
            CompressMode::Auto => "auto",
        })
    }
}
