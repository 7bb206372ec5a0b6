//! Where pack files live.

use std::fmt::Debug;
use std::io::Write;

use crate::Result;

/// A pack id: pack files are named by their decimal id (`packs/0`, `packs/1`, ...).
pub type PackId = u64;

/// True for a valid pack file name, as disk-objectstore decides: decimal digits, no leading
/// zero unless the name is exactly `"0"`.
pub fn is_valid_pack_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_digit())
        && (name == "0" || !name.starts_with('0'))
        && name.len() <= 19
}

/// Storage of pack files: append-only byte sequences named by a [`PackId`], with an optional
/// sidecar per pack that describes its contents once the pack is sealed.
///
/// Contract (each sentence is a test of the behaviour suite in `rsdos-testkit`):
///
/// - [`list`](PackStore::list) returns the ids of all packs present, ascending, and nothing
///   else (sidecars, lock files and temporary files are not packs).
/// - [`len`](PackStore::len) returns `None` for an absent pack and the number of bytes
///   written and synced or not for a present one.
/// - [`read_at`](PackStore::read_at) fills the whole buffer from the given offset; a pack that
///   does not exist is [`Error::PackNotFound`](crate::Error::PackNotFound), a range past the end
///   is [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt). Reads may run from many threads at
///   once, also while the pack is being appended to.
/// - [`open_append`](PackStore::open_append) creates the pack if absent and returns the only
///   appender of that pack: a second one, in this or another process, fails with
///   [`ErrorKind::Locked`](crate::ErrorKind::Locked) until the first is dropped; a holder that
///   dies leaves no lock behind. Bytes written through the appender land at the end of the
///   pack; [`PackAppender::sync`] makes them durable; [`PackAppender::truncate`] drops bytes
///   from the end.
/// - [`delete`](PackStore::delete) removes a pack and its sidecar; deleting an absent pack is not
///   an error. A pack is only deleted once no index row points to it.
/// - [`seal`](PackStore::seal) stores the sidecar of a pack durably and marks it as never
///   appended to again; [`is_sealed`](PackStore::is_sealed) tells whether that happened and
///   [`sidecar`](PackStore::sidecar) returns its bytes (`None` if absent).
/// - [`open_pack`](PackStore::open_pack) returns a handle that keeps reading the bytes the
///   pack had when it was opened, also after the pack is deleted; an absent pack is
///   [`Error::PackNotFound`](crate::Error::PackNotFound).
/// - Open file handles stay bounded whatever the number of packs (handles returned by
///   `open_pack` are held by their users and closed when dropped).
pub trait PackStore: Send + Sync + Debug {
    /// Ids of the packs present, ascending.
    fn list(&self) -> Result<Vec<PackId>>;

    /// Length of a pack in bytes, `None` if it does not exist.
    fn len(&self, pack_id: PackId) -> Result<Option<u64>>;

    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_at(&self, pack_id: PackId, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// A handle on the pack as it is now, for reading an object in several steps: it keeps
    /// reading the same bytes even if the pack is deleted or replaced meanwhile (a repack in
    /// another process), so a stream that was opened never fails half-way because maintenance
    /// moved its object.
    fn open_pack(&self, pack_id: PackId) -> Result<std::sync::Arc<dyn PackHandle>>;

    /// The exclusive appender of a pack, creating it if absent.
    fn open_append(&self, pack_id: PackId) -> Result<Box<dyn PackAppender>>;

    /// Removes a pack and its sidecar (absent is fine).
    fn delete(&self, pack_id: PackId) -> Result<()>;

    /// Stores the sidecar of a complete pack durably.
    fn seal(&self, pack_id: PackId, sidecar: &[u8]) -> Result<()>;

    /// Whether the pack has been sealed.
    fn is_sealed(&self, pack_id: PackId) -> Result<bool>;

    /// The sidecar of a sealed pack.
    fn sidecar(&self, pack_id: PackId) -> Result<Option<Vec<u8>>>;

    /// A short description for messages (`local folder /x/packs`, `s3://bucket/prefix`).
    fn describe(&self) -> String;
}

/// A pinned read handle on one pack (see [`PackStore::open_pack`]).
pub trait PackHandle: Send + Sync + Debug {
    /// The pack this handle reads.
    fn pack_id(&self) -> PackId;

    /// Reads exactly `buf.len()` bytes at `offset`; a range past the end is
    /// [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// The exclusive writer at the end of one pack (see [`PackStore::open_append`]).
pub trait PackAppender: Write + Send {
    /// The pack being appended to.
    fn pack_id(&self) -> PackId;

    /// The pack's length including everything written so far: where the next byte lands.
    fn position(&self) -> u64;

    /// Makes everything written durable (fsync of the file, and of its folder if it is new).
    fn sync(&mut self) -> Result<()>;

    /// Cuts the pack back to `len` bytes (at least its length when the appender was opened),
    /// dropping an object that turned out to be a duplicate or failed half-way.
    fn truncate(&mut self, len: u64) -> Result<()>;
}
