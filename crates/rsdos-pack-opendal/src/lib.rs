//! [`OpendalPackStore`]: rsdos packs in object storage (S3, Google Cloud Storage, Azure Blob)
//! or any other [Apache OpenDAL](https://opendal.apache.org) service, with a local staging
//! folder for the packs being written.
//!
//! The store is configured by a URL:
//!
//! | URL | service | credentials (when not in the URL) |
//! |---|---|---|
//! | `s3://bucket/prefix?region=us-east-1&endpoint=http://host:port` | S3 and compatibles | `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, profiles, instance roles; region from `AWS_REGION` |
//! | `gs://bucket/prefix` | Google Cloud Storage | `GOOGLE_APPLICATION_CREDENTIALS`, metadata server |
//! | `azblob://container/prefix?account_name=...&endpoint=...` | Azure Blob | `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`, Azure CLI and managed identities |
//! | `fs:///path/to/folder` | a local or mounted folder | – |
//! | `memory://` | process memory (tests) | – |
//!
//! Other query options go to the OpenDAL service as they are (for example
//! `allow_anonymous=true` for GCS; the store sets `checksum_algorithm=crc32c` for S3, so the
//! server checks the CRC32C of every request), except the store's own [`StoreOptions`]: `retries`,
//! `timeout_secs`, `io_timeout_secs`, `chunk_size`, `single_put_max`, `verify_checksum` and
//! `delete_grace_secs`.
//! Credentials given in the URL or as extra options are never shown in messages: errors name
//! the service, bucket, prefix and key only.
//!
//! What happens where is told on [`OpendalPackStore`]. A short run on the `memory` service:
//!
//! ```
//! use std::io::Write;
//! use rsdos_core::PackStore;
//! use rsdos_pack_opendal::OpendalPackStore;
//!
//! let staging = tempfile::tempdir().unwrap();
//! let store = OpendalPackStore::open("memory://", staging.path()).unwrap();
//!
//! let mut appender = store.open_append(0).unwrap();
//! appender.write_all(b"hello world").unwrap();
//! appender.sync().unwrap();
//! drop(appender);
//! assert_eq!(store.staged().unwrap(), vec![0]); // written locally first
//!
//! store.seal(0, b"table of contents").unwrap(); // uploads, checks, then drops the local copy
//! assert!(store.staged().unwrap().is_empty());
//! assert_eq!(store.uploaded().unwrap(), vec![0]);
//!
//! let mut buf = [0u8; 5];
//! store.read_at(0, 6, &mut buf).unwrap(); // a ranged GET of exactly these 5 bytes
//! assert_eq!(&buf, b"world");
//! assert!(store.is_sealed(0).unwrap());
//! assert_eq!(store.describe().split(' ').next(), Some("memory://"));
//! ```

mod appender;
mod checksum;
mod location;
mod mirror;
mod store;

pub use location::{RemoteLocation, StoreOptions, is_secret_option};
pub use store::OpendalPackStore;

/// The OpenDAL crate this store is built on, for [`OpendalPackStore::from_operator`].
pub use opendal;
