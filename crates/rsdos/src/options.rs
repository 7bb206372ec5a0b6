//! Options of the container's constructors and bulk writes.

use rsdos_core::{CompressMode, CompressionAlgorithm, DEFAULT_PACK_SIZE_TARGET, HashType};

/// How to initialise a new container. Defaults are disk-objectstore's, so that a container
/// made with `InitOptions::default()` is one disk-objectstore could have made.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InitOptions {
    /// Hex characters of the hashkey used as the loose shard folder (default 2).
    pub loose_prefix_len: usize,
    /// Bytes after which a pack is closed (default 4 GiB).
    pub pack_size_target: u64,
    /// `sha256` (default) or `sha1`.
    pub hash_type: HashType,
    /// Codec for compressed objects (default `zlib+1`).
    pub compression_algorithm: CompressionAlgorithm,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            loose_prefix_len: 2,
            pack_size_target: DEFAULT_PACK_SIZE_TARGET,
            hash_type: HashType::Sha256,
            compression_algorithm: CompressionAlgorithm::default(),
        }
    }
}

impl InitOptions {
    /// Sets the loose prefix length.
    pub fn with_loose_prefix_len(mut self, n: usize) -> Self {
        self.loose_prefix_len = n;
        self
    }
    /// Sets the pack size target.
    pub fn with_pack_size_target(mut self, bytes: u64) -> Self {
        self.pack_size_target = bytes;
        self
    }
    /// Sets the hash type.
    pub fn with_hash_type(mut self, hash_type: HashType) -> Self {
        self.hash_type = hash_type;
        self
    }
    /// Sets the compression algorithm.
    pub fn with_compression_algorithm(mut self, algorithm: CompressionAlgorithm) -> Self {
        self.compression_algorithm = algorithm;
        self
    }
}

/// How to open an existing container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Bound on pack files kept open for reading (default 64).
    pub max_open_packs: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_open_packs: rsdos_pack_local::DEFAULT_MAX_OPEN_PACKS,
        }
    }
}

impl OpenOptions {
    /// Sets the bound on open pack files.
    pub fn with_max_open_packs(mut self, n: usize) -> Self {
        self.max_open_packs = n;
        self
    }
}

/// How to write objects straight into packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackWriteOptions {
    /// Compress: `No`, `Yes`, `Auto` (`Keep` means `No` for new data). Default `No`.
    pub compress: CompressMode,
    /// fsync each pack before its rows are committed (default true; turning it off trades
    /// durability on power loss for speed, as disk-objectstore's `do_fsync=False`).
    pub fsync: bool,
}

impl Default for PackWriteOptions {
    fn default() -> Self {
        PackWriteOptions {
            compress: CompressMode::No,
            fsync: true,
        }
    }
}

impl PackWriteOptions {
    /// Sets the compression mode.
    pub fn with_compress(mut self, compress: CompressMode) -> Self {
        self.compress = compress;
        self
    }
    /// Sets whether packs are fsynced before commit.
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }
}
