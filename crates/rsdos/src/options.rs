//! Options of the container's constructors and bulk writes.

use rsdos_core::{CompressMode, CompressionAlgorithm, DEFAULT_PACK_SIZE_TARGET, HashType};

use crate::remote::{PacksLocation, RemoteOptions};

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
    /// Where the packs go: `None` (default) for the container's `packs/` folder, else remote
    /// storage (see [`PacksLocation`]; recorded in `rsdos-packs.json`).
    pub packs: Option<PacksLocation>,
    /// Also write secret options (credentials) into `rsdos-packs.json` (default false: they
    /// come from the environment or [`OpenOptions::with_packs_option`] at each open).
    pub store_credentials: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            loose_prefix_len: 2,
            pack_size_target: DEFAULT_PACK_SIZE_TARGET,
            hash_type: HashType::Sha256,
            compression_algorithm: CompressionAlgorithm::default(),
            packs: None,
            store_credentials: false,
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
    /// Keeps the sealed packs in remote storage at `url` (`s3://bucket/prefix`, `gs://`,
    /// `azblob://`, `fs:///folder`, `memory://`); loose objects, the pack being written and
    /// the index stay in the folder.
    pub fn with_packs_url(mut self, url: &str) -> Self {
        self.packs = Some(match self.packs.take() {
            Some(old) => {
                let mut new = PacksLocation::new(url);
                for (k, v) in old.options().iter() {
                    new = new.with_option(k, v);
                }
                new
            }
            None => PacksLocation::new(url),
        });
        self
    }
    /// Adds a service option of the remote pack storage (`endpoint`, `region`, ...); call
    /// after [`with_packs_url`](Self::with_packs_url). Secret options (keys, tokens) are not
    /// written to disk unless [`with_store_credentials`](Self::with_store_credentials).
    pub fn with_packs_option(mut self, key: &str, value: &str) -> Self {
        if let Some(p) = self.packs.take() {
            self.packs = Some(p.with_option(key, value));
        }
        self
    }
    /// Writes secret options into `rsdos-packs.json` too (readable by its owner only).
    pub fn with_store_credentials(mut self, yes: bool) -> Self {
        self.store_credentials = yes;
        self
    }
}

/// How to open an existing container.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Bound on pack files kept open for reading (default 64).
    pub max_open_packs: usize,
    /// Options of the remote pack storage given at open time (credentials, typically), over
    /// those in `rsdos-packs.json`; ignored for a container with local packs.
    pub packs_options: RemoteOptions,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_open_packs: rsdos_pack_local::DEFAULT_MAX_OPEN_PACKS,
            packs_options: RemoteOptions::new(),
        }
    }
}

impl OpenOptions {
    /// Sets the bound on open pack files.
    pub fn with_max_open_packs(mut self, n: usize) -> Self {
        self.max_open_packs = n;
        self
    }
    /// Sets an option of the remote pack storage for this open (for example credentials
    /// read from a secret store); never written to disk.
    pub fn with_packs_option(mut self, key: &str, value: &str) -> Self {
        self.packs_options.set(key, value);
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
