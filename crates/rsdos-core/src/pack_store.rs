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
/// - [`len`](PackStore::len) returns `None` for an absent pack and the number of bytes in a
///   present one (an appender may buffer writes: what it wrote counts once it is synced,
///   flushed or dropped).
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
/// - [`read_ranges`](PackStore::read_ranges) returns one buffer per `(offset, length)` of its
///   ranges, in the order given (unsorted, overlapping, repeated and empty ranges allowed), each
///   holding exactly the bytes `read_at` reads there; an absent pack is
///   [`Error::PackNotFound`](crate::Error::PackNotFound) and a range past the end is
///   [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt), for the whole call.
/// - [`delete`](PackStore::delete) removes a pack and its sidecar; deleting an absent pack is not
///   an error. A pack is only deleted once no index row points to it. The pack is absent at once
///   for the instance that deleted it and for `list`, `len`, `is_sealed`, `sidecar` and
///   `open_pack` of every instance. A store may keep the bytes for a grace period so that
///   handles opened before keep reading (object storage does); meanwhile ranged reads
///   (`read_at`, `read_ranges`, `open_range`) by *other* instances may still return those
///   unchanged bytes instead of `PackNotFound`, which is harmless because a pack's bytes never
///   change and pack ids are never reused.
/// - [`seal`](PackStore::seal) stores the sidecar of a pack durably and marks it as never
///   appended to again; [`is_sealed`](PackStore::is_sealed) tells whether that happened and
///   [`sidecar`](PackStore::sidecar) returns its bytes (`None` if absent).
/// - [`open_pack`](PackStore::open_pack) returns a handle that keeps reading the bytes the
///   pack had when it was opened, also after the pack is deleted; an absent pack is
///   [`Error::PackNotFound`](crate::Error::PackNotFound). A sealed pack's handles do too.
/// - [`open_range`](PackStore::open_range) returns a handle as `open_pack` does that reads at
///   least the given range; an absent pack is
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

    /// Reads many `(offset, length)` ranges of one pack at once, one buffer per range in the
    /// order given. The default reads them one by one with [`read_at`](PackStore::read_at);
    /// object storage merges neighbouring ranges into fewer, larger requests.
    fn read_ranges(&self, pack_id: PackId, ranges: &[(u64, usize)]) -> Result<Vec<Vec<u8>>> {
        ranges
            .iter()
            .map(|&(offset, len)| {
                let mut buf = vec![0u8; len];
                self.read_at(pack_id, offset, &mut buf)?;
                Ok(buf)
            })
            .collect()
    }

    /// How many [`read_ranges`](PackStore::read_ranges) calls are worth running at once for a
    /// bulk read. 1 (the default) for local disks, where one thread of `pread`s is as fast as
    /// several; more for object storage, where each request mostly waits for a round trip.
    fn read_parallelism(&self) -> usize {
        1
    }

    /// A handle on the pack as it is now, for reading an object in several steps: it keeps
    /// reading the same bytes even if the pack is deleted or replaced meanwhile (a repack in
    /// another process), so a stream that was opened never fails half-way because maintenance
    /// moved its object.
    fn open_pack(&self, pack_id: PackId) -> Result<std::sync::Arc<dyn PackHandle>>;

    /// A handle as [`open_pack`](PackStore::open_pack) gives, for reading `length` bytes at
    /// `offset`: a range the caller knows the pack holds (from the index). The default is
    /// `open_pack`; object storage fetches the start of the range at once instead of first asking
    /// for the pack's length, so opening and reading a small object cost one request, not two.
    fn open_range(
        &self,
        pack_id: PackId,
        offset: u64,
        length: u64,
    ) -> Result<std::sync::Arc<dyn PackHandle>> {
        let _ = (offset, length);
        self.open_pack(pack_id)
    }

    /// Removes for good the bytes of deleted packs whose grace period is over (see
    /// [`delete`](PackStore::delete)), returning how many packs it removed. The default does
    /// nothing: stores that delete at once have nothing to purge.
    fn purge_deleted(&self) -> Result<usize> {
        Ok(0)
    }

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

    /// The largest read a sequential reader of this handle should make at once. A stream
    /// over a large object starts with 256 KiB reads and doubles them up to this size while
    /// it reads on without seeking: on object storage every read is a request, and a round
    /// trip per 256 KiB bounds the throughput of one stream. The default keeps local files at
    /// 256 KiB.
    fn sequential_read_max(&self) -> usize {
        256 * 1024
    }
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

    /// Tells the appender that its writer will [`sync`](Self::sync) what it writes, so that
    /// it may write large appends to disk along the way (see
    /// [`EarlyWriteback`](crate::EarlyWriteback)). Off until called; a writer that never syncs
    /// leaves it off, so it does no disk writes it did not ask for. Stores with nothing to
    /// gain ignore it.
    fn write_back_early(&mut self, on: bool) {
        let _ = on;
    }
}
