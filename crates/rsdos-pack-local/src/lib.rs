//! [`LocalPackStore`]: pack files in a local folder (disk-objectstore's `packs/`).
//!
//! Packs are plain files named by their decimal id. Reads use positioned reads (`pread`) on
//! handles kept in a bounded LRU, so any number of threads read at once without sharing a file
//! offset and the number of open files never grows with the number of packs. A cached handle
//! whose file was unlinked (a pack replaced by a repack in another process) is noticed by its
//! link count and reopened.
//!
//! Appending takes `packs/<id>.lock`, the lock file disk-objectstore's packer uses, so the two
//! never append to the same pack at once; rsdos also holds an advisory lock on it, so a lock
//! left by a killed rsdos process is taken over instead of blocking forever. A sealed pack has a
//! sidecar `packs/<id>.toc` that disk-objectstore ignores.
//!
//! ```
//! use std::io::Write;
//! use rsdos_core::PackStore;
//! use rsdos_pack_local::LocalPackStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalPackStore::new(dir.path(), 64);
//! let mut appender = store.open_append(0).unwrap();
//! appender.write_all(b"hello world").unwrap();
//! appender.sync().unwrap();
//! drop(appender);
//! let mut buf = [0u8; 5];
//! store.read_at(0, 6, &mut buf).unwrap();
//! assert_eq!(&buf, b"world");
//! assert_eq!(store.list().unwrap(), vec![0]);
//! ```

mod appender;
mod store;

pub use store::{DEFAULT_MAX_OPEN_PACKS, LocalPackStore};
