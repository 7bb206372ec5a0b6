//! rsdos: a fast, server-less, content-addressed object store for millions of files,
//! on-disk compatible with AiiDA's `disk-objectstore`.
//!
//! A [`Container`] is a folder. New objects are written cheaply as loose files (one file per
//! object, named by the hash of its content), or straight into packs; packs are a few large
//! append-only files indexed by an SQLite database (`packs.idx`). Objects are stored once
//! whatever the number of inserts, optionally compressed (zlib as disk-objectstore, or zstd),
//! and read back as streams in bounded memory.
//!
//! ```
//! use rsdos::{Container, InitOptions, PackWriteOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let container = Container::init(dir.path(), &InitOptions::default()).unwrap();
//!
//! // A loose object, durable when the call returns.
//! let key = container.add_object(b"hello").unwrap();
//! assert_eq!(container.get_object(&key).unwrap(), b"hello");
//!
//! // Many objects straight into a pack, in one transaction per pack.
//! let contents: Vec<&[u8]> = vec![b"a", b"b", b"a"];
//! let keys = container
//!     .add_many_to_pack(contents, &PackWriteOptions::default())
//!     .unwrap();
//! assert_eq!(keys[0], keys[2]);
//! let count = container.count().unwrap();
//! assert_eq!((count.loose, count.packed), (1, 2));
//! ```
//!
//! See `docs/design.md` in the repository for the on-disk format, the traits behind the
//! container ([`ObjectIndex`], [`PackStore`](rsdos_core::PackStore))
//! and the concurrency and crash rules.

mod auto_pack;
mod codec;
mod compress_job;
mod container;
mod hashing;
mod layout;
mod lock;
mod loose;
mod maintenance;
mod options;
mod pack_writer;
mod parallel_codec;
mod progress;
mod read_many;
mod reader;
mod remote;
mod row_feeder;
mod sidecar;
mod write_batch;

pub use auto_pack::{
    AUTO_PACK_STATUS_FILE, AutoPackOptions, AutoPackRunner, AutoPackStats, AutoPacker, PackTrigger,
    PackerStatus, RoundObserver, RoundReport, auto_pack_status,
};
pub use codec::{Codec, detect_codec, looks_compressed};
pub use container::Container;
pub use lock::MaintenanceLock;
pub use maintenance::backup::{BackupOptions, BackupReport};
pub use maintenance::clean::{CLEAN_THREADS, CleanOptions, CleanReport};
pub use maintenance::import::ImportReport;
pub use maintenance::migrate::MigrateReport;
pub use maintenance::pack::{PackOptions, PackReport};
pub use maintenance::remote_clone::{CloneOptions, CloneReport};
pub use maintenance::remote_sync::{
    REMOTE_CONFIG, REMOTE_INDEX, REMOTE_SNAPSHOT_INFO, RemoteStatus, SnapshotInfo, UploadReport,
};
pub use maintenance::repack::{RepackOptions, RepackReport};
pub use maintenance::validate::{ValidateOptions, ValidationReport};
pub use options::{InitOptions, OpenOptions, PackWriteOptions};
pub use progress::{NoProgress, Progress, ProgressUnit, StopFlag};
pub use read_many::{ManyItem, ManyReader};
pub use reader::ObjectReader;
pub use remote::{PACKS_SETTING_FILE, PacksLocation, RemoteOptions};
pub use rsdos_core::{
    CompressMode, CompressionAlgorithm, ContainerConfig, Error, ErrorKind, HashType, ObjectCount,
    ObjectIndex, ObjectMeta, ObjectType, PackedEntry, PackedLocation, RemoteMirror, Result,
    TotalSize, UtcTime,
};
pub use sidecar::{PackToc, RebuildReport, TocEntry};
pub use write_batch::{
    DEFAULT_BATCH_MAX_BYTES, DEFAULT_BATCH_MAX_OBJECTS, WriteBatch, WriteBatchOptions,
    WriteBatchReport,
};
