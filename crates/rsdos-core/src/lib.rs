//! Types, traits and errors shared by every rsdos crate.
//!
//! rsdos is a content-addressed object store, on-disk compatible with AiiDA's
//! `disk-objectstore`. This crate holds what every layer agrees on and nothing that does I/O
//! on its own:
//!
//! - [`HashType`] and hashkey validation ([`HashType::validate`]),
//! - the container configuration ([`ContainerConfig`], `config.json`),
//! - compression settings ([`CompressionAlgorithm`], [`CompressMode`]),
//! - object metadata ([`ObjectMeta`], [`ObjectCount`], [`TotalSize`], [`PackedLocation`]),
//! - the two storage traits the container is written against: [`ObjectIndex`] (hashkey to
//!   packed location) and [`PackStore`] (the pack files themselves),
//! - the error type ([`Error`], [`ErrorKind`]).
//!
//! ```
//! use rsdos_core::{HashType, ContainerConfig, CompressionAlgorithm};
//!
//! let key = HashType::Sha256.hash_hex(b"hello");
//! assert_eq!(key.len(), 64);
//! assert!(HashType::Sha256.validate(&key).is_ok());
//! assert!(HashType::Sha256.validate("../x").is_err());
//!
//! let config = ContainerConfig::new(2, 4 << 30, HashType::Sha256, "zstd+3".parse().unwrap());
//! assert_eq!(config.compression_algorithm, CompressionAlgorithm::Zstd(3));
//! let json = config.to_json();
//! assert_eq!(ContainerConfig::from_json(&json).unwrap(), config);
//! ```

mod compression;
mod config;
pub mod durable;
mod early_writeback;
mod error;
mod hash_type;
mod index;
mod meta;
mod pack_store;
mod remote_mirror;
mod utc_time;

pub use compression::{CompressMode, CompressionAlgorithm};
pub use config::{CONTAINER_VERSION, ContainerConfig, DEFAULT_PACK_SIZE_TARGET};
pub use early_writeback::{EARLY_WRITEBACK_STEP, EarlyWriteback};
pub use error::{Error, ErrorKind, Result};
pub use hash_type::{HashType, ObjectHasher};
pub use index::{
    HashkeyIter, IndexInsert, IndexTotals, ObjectIndex, ObjectIndexExt, PackEntryIter,
};
pub use meta::{ObjectCount, ObjectMeta, ObjectType, PackedEntry, PackedLocation, TotalSize};
pub use pack_store::{PackAppender, PackHandle, PackId, PackStore, is_valid_pack_name};
pub use remote_mirror::RemoteMirror;
pub use utc_time::UtcTime;
