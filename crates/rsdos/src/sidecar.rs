//! Self-describing packs: the sidecar `packs/<id>.toc` that lists every object of a sealed
//! pack, so that a lost or corrupt `packs.idx` can be rebuilt from the packs alone.
//!
//! The [`PackStore`](rsdos_core::PackStore) only stores the sidecar's bytes
//! ([`seal`](rsdos_core::PackStore::seal), [`sidecar`](rsdos_core::PackStore::sidecar)); this
//! module defines what those bytes are. disk-objectstore ignores the `.toc` files (they are
//! not valid pack names), so a sealed pack stays readable by it.
//!
//! # Format, version 1
//!
//! All integers little-endian.
//!
//! | field           | size                   | meaning                                          |
//! |-----------------|------------------------|--------------------------------------------------|
//! | magic           | 8                      | `RSDOSTOC`                                       |
//! | version         | u32                    | 1                                                |
//! | hash type       | u8                     | 0 sha256, 1 sha1                                 |
//! | pack length     | u64                    | bytes of the pack the table describes            |
//! | entry count     | u64                    | number of entries that follow                    |
//! | entries         | count × (H + 29)       | sorted by offset, see below                      |
//! | checksum        | u32                    | CRC32C of every byte before it                   |
//!
//! Each entry: the raw hash (H = 32 bytes for sha256, 20 for sha1), u64 offset, u64 length
//! (stored bytes), u64 size (uncompressed bytes), u8 flags (bit 0: compressed; the other bits
//! are reserved and must be 0), u32 CRC32C of the stored bytes `offset..offset + length` of
//! the pack. Entries are sorted by offset (non-decreasing) and end at or before the pack
//! length.

use rsdos_core::{Error, HashType, ObjectIndexExt, PackId, PackStore, Result};

use crate::container::Container;

/// The magic bytes that start every sidecar.
const MAGIC: &[u8; 8] = b"RSDOSTOC";
/// The format version written by [`PackToc::encode`] and the only one [`PackToc::decode`]
/// accepts.
const VERSION: u32 = 1;
/// Magic, version, hash type, pack length, entry count.
const HEADER_LEN: usize = 8 + 4 + 1 + 8 + 8;
/// The CRC32C at the end.
const TRAILER_LEN: usize = 4;
/// Offset, length, size, flags, CRC32C: the bytes of an entry after the hash.
const ENTRY_FIXED_LEN: usize = 8 + 8 + 8 + 1 + 4;
/// Flag bit: the stored bytes are compressed.
const FLAG_COMPRESSED: u8 = 1;
/// Bytes read from a pack at once when checksumming its objects.
const READ_CHUNK: usize = 1024 * 1024;

/// The table of contents of one sealed pack, as stored in its sidecar `packs/<id>.toc`: what
/// the index rows of that pack were when it was sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackToc {
    /// The hash type of the hashkeys (the container's).
    pub hash_type: HashType,
    /// Length of the pack, in bytes, when the table was written: every entry ends at or
    /// before it. A pack that is longer now has bytes the table does not describe.
    pub pack_length: u64,
    /// One entry per object, sorted by offset.
    pub entries: Vec<TocEntry>,
}

/// One object of a [`PackToc`]: the columns of its index row and a checksum of its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TocEntry {
    /// The object's hashkey (lowercase hex).
    pub hashkey: String,
    /// Offset of the first stored byte in the pack.
    pub offset: u64,
    /// Number of stored bytes (compressed length if `compressed`).
    pub length: u64,
    /// Size of the uncompressed object.
    pub size: u64,
    /// Whether the stored bytes are a zlib stream or a zstd frame.
    pub compressed: bool,
    /// CRC32C (Castagnoli) of the stored bytes `offset..offset + length` of the pack.
    pub crc32c: u32,
}

/// What [`Container::rebuild_index`] and [`Container::rebuild_index_at`] did.
///
/// The new index holds the entries of every pack with a usable sidecar whose checksum
/// verified, plus (when the old index could still be read) the old index's rows of the packs,
/// or pack tails, that no sidecar describes. Objects of [`undescribed_packs`] that were not in
/// a readable old index are no longer indexed: their bytes are still in the pack, but no
/// operation can find them. Do not delete or repack those packs before they are indexed again
/// (for example by disk-objectstore's own tools or from a backup of `packs.idx`).
///
/// [`undescribed_packs`]: RebuildReport::undescribed_packs
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildReport {
    /// Packs whose entries were taken from their sidecar.
    pub packs_rebuilt: u64,
    /// Rows in the new index (from sidecars and carried over from the old index).
    pub objects_indexed: u64,
    /// Packs without a usable sidecar, ascending: packs written by disk-objectstore, packs not
    /// sealed yet, and packs whose sidecar is corrupt or describes more bytes than the pack
    /// has (see [`sidecar_problems`](RebuildReport::sidecar_problems)). No rows are invented
    /// for them; see [`carried_over_objects`](RebuildReport::carried_over_objects).
    pub undescribed_packs: Vec<u64>,
    /// `(pack id, offset)` of sidecar entries whose stored bytes no longer match their
    /// CRC32C; they are not indexed.
    pub corrupt_entries: Vec<(u64, u64)>,
    /// Rows copied from the old index, when it could be read, for packs without a usable
    /// sidecar and for the part of a pack past its sidecar's pack length (counted in
    /// `objects_indexed` too).
    pub carried_over_objects: u64,
    /// Packs that have a sidecar which could not be used (or used only in part), with why.
    pub sidecar_problems: Vec<(u64, String)>,
}

impl PackToc {
    /// The sidecar bytes of this table (format version 1, see the module docs).
    ///
    /// Entries are written in the order given: [`PackToc::decode`] rejects entries that are
    /// not sorted by offset or end past `pack_length`. Hashkeys must be valid for `hash_type`
    /// (lowercase hex of the right length); [`Container::seal_pack`] checks that. A hashkey
    /// that is not is written as zero bytes where it is not hex, cut or padded to the hash
    /// length.
    pub fn encode(&self) -> Vec<u8> {
        let hash_len = raw_hash_len(self.hash_type);
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.entries.len() * (hash_len + ENTRY_FIXED_LEN) + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(hash_type_code(self.hash_type));
        out.extend_from_slice(&self.pack_length.to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            push_raw_hash(&mut out, &e.hashkey, hash_len);
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
            out.push(if e.compressed { FLAG_COMPRESSED } else { 0 });
            out.extend_from_slice(&e.crc32c.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses the sidecar bytes of pack `pack_id` (the id only names the pack in errors).
    ///
    /// Every malformed input is an [`Error::Corrupt`] naming the pack: truncated, bad magic,
    /// unknown version or hash type, checksum mismatch, an entry count that does not match
    /// the byte length, reserved flag bits set, entries out of offset order or past the pack
    /// length. Never panics, and allocates only in proportion to `bytes.len()`.
    pub fn decode(pack_id: PackId, bytes: &[u8]) -> Result<PackToc> {
        let bad =
            |detail: String| Error::corrupt("pack sidecar", format!("pack {pack_id}"), detail);
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return Err(bad(format!(
                "truncated: {} bytes, a sidecar has at least {}",
                bytes.len(),
                HEADER_LEN + TRAILER_LEN
            )));
        }
        let mut r = Cursor { bytes, pos: 0 };
        if r.take(8) != Some(&MAGIC[..]) {
            return Err(bad("bad magic: not an rsdos pack sidecar".into()));
        }
        let version = r.u32().ok_or_else(|| bad("truncated header".into()))?;
        if version != VERSION {
            return Err(bad(format!(
                "unsupported format version {version} (this rsdos reads version {VERSION})"
            )));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let actual_crc = crc32c::crc32c(body);
        if stored_crc != actual_crc {
            return Err(bad(format!(
                "checksum mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})"
            )));
        }
        let code = r.u8().ok_or_else(|| bad("truncated header".into()))?;
        let hash_type = match code {
            0 => HashType::Sha256,
            1 => HashType::Sha1,
            other => return Err(bad(format!("unknown hash type code {other}"))),
        };
        let pack_length = r.u64().ok_or_else(|| bad("truncated header".into()))?;
        let count = r.u64().ok_or_else(|| bad("truncated header".into()))?;
        let hash_len = raw_hash_len(hash_type);
        let entry_len = (hash_len + ENTRY_FIXED_LEN) as u64;
        let entries_bytes = (body.len() - HEADER_LEN) as u64;
        if count.checked_mul(entry_len) != Some(entries_bytes) {
            return Err(bad(format!(
                "entry count {count} does not match the {entries_bytes} bytes of entries \
                 ({entry_len} bytes each)"
            )));
        }
        // `count * entry_len` equals a length of bytes in memory, so this allocation is bounded
        // by the input.
        let mut entries = Vec::with_capacity(count as usize);
        let mut prev_offset = 0u64;
        for i in 0..count {
            let raw = r
                .take(hash_len)
                .ok_or_else(|| bad("truncated entry".into()))?;
            let offset = r.u64().ok_or_else(|| bad("truncated entry".into()))?;
            let length = r.u64().ok_or_else(|| bad("truncated entry".into()))?;
            let size = r.u64().ok_or_else(|| bad("truncated entry".into()))?;
            let flags = r.u8().ok_or_else(|| bad("truncated entry".into()))?;
            let crc = r.u32().ok_or_else(|| bad("truncated entry".into()))?;
            if flags & !FLAG_COMPRESSED != 0 {
                return Err(bad(format!(
                    "entry {i} (offset {offset}) has reserved flag bits set ({flags:#04x})"
                )));
            }
            if offset < prev_offset {
                return Err(bad(format!(
                    "entry {i} is out of order: offset {offset} after offset {prev_offset}"
                )));
            }
            match offset.checked_add(length) {
                Some(end) if end <= pack_length => {}
                _ => {
                    return Err(bad(format!(
                        "entry {i} (offset {offset}, length {length}) ends past the pack \
                         length {pack_length}"
                    )));
                }
            }
            prev_offset = offset;
            entries.push(TocEntry {
                hashkey: to_hex(raw),
                offset,
                length,
                size,
                compressed: flags & FLAG_COMPRESSED != 0,
                crc32c: crc,
            });
        }
        Ok(PackToc {
            hash_type,
            pack_length,
            entries,
        })
    }
}

impl Container {
    /// Writes the sidecar of pack `pack_id` from the index rows of that pack, and returns it.
    ///
    /// Each row's stored bytes are read once, in offset order and in bounded memory, to
    /// compute their CRC32C; the table's pack length is the pack's current length. The
    /// pack store then marks the pack as sealed: pack writers never append to it again.
    ///
    /// The caller must hold the maintenance lock (or otherwise ensure that nothing appends
    /// to the pack or changes its rows meanwhile): a row committed after the rows were read
    /// would be missing from the table. This function does not take the lock itself so that
    /// the pack writer, which holds it, can seal the packs it fills.
    ///
    /// Errors: [`Error::PackNotFound`] if the pack does not exist; [`Error::Corrupt`] naming
    /// the pack and offset if a row has an invalid hashkey or ends past the end of the pack.
    pub fn seal_pack(&self, pack_id: PackId) -> Result<PackToc> {
        let toc = self.toc_from_index(pack_id)?;
        self.packs().seal(pack_id, &toc.encode())?;
        Ok(toc)
    }

    /// The sidecar [`Container::seal_pack`] writes, without writing it.
    pub(crate) fn toc_from_index(&self, pack_id: PackId) -> Result<PackToc> {
        let packs = self.packs();
        let pack_length = packs.len(pack_id)?.ok_or(Error::PackNotFound { pack_id })?;
        let hash_type = self.config().hash_type;
        let mut scanner = PackScanner::new(packs, pack_id, pack_length);
        let mut entries = Vec::new();
        for row in self.index().iter_pack(pack_id, 10_000) {
            let row = row?;
            let loc = row.location;
            if let Err(e) = hash_type.validate(&row.hashkey) {
                return Err(Error::corrupt(
                    "index row",
                    format!("pack {pack_id}, offset {}", loc.offset),
                    format!("cannot seal the pack: {e}"),
                ));
            }
            if loc
                .offset
                .checked_add(loc.length)
                .is_none_or(|end| end > pack_length)
            {
                return Err(Error::corrupt(
                    "index row",
                    format!("pack {pack_id}, offset {}", loc.offset),
                    format!(
                        "object {} of {} bytes ends past the end of the pack ({pack_length} \
                         bytes); cannot seal the pack",
                        row.hashkey, loc.length
                    ),
                ));
            }
            let crc = scanner.crc_of(loc.offset, loc.length)?;
            entries.push(TocEntry {
                hashkey: row.hashkey,
                offset: loc.offset,
                length: loc.length,
                size: loc.size,
                compressed: loc.compressed,
                crc32c: crc,
            });
        }
        Ok(PackToc {
            hash_type,
            pack_length,
            entries,
        })
    }

    /// The decoded sidecar of pack `pack_id`, `None` if the pack has none (not sealed, or
    /// written by disk-objectstore).
    ///
    /// A sidecar that does not decode, or whose hash type is not the container's, is an
    /// [`Error::Corrupt`] naming the pack.
    pub fn pack_toc(&self, pack_id: PackId) -> Result<Option<PackToc>> {
        read_toc(self.packs(), pack_id, self.config().hash_type)
    }
}

/// Reads and decodes the sidecar of a pack, checking its hash type against `hash_type`.
pub(crate) fn read_toc(
    packs: &dyn PackStore,
    pack_id: PackId,
    hash_type: HashType,
) -> Result<Option<PackToc>> {
    let Some(bytes) = packs.sidecar(pack_id)? else {
        return Ok(None);
    };
    let toc = PackToc::decode(pack_id, &bytes)?;
    if toc.hash_type != hash_type {
        return Err(Error::corrupt(
            "pack sidecar",
            format!("pack {pack_id}"),
            format!(
                "the sidecar lists {} hashkeys but the container uses {}",
                toc.hash_type.as_str(),
                hash_type.as_str()
            ),
        ));
    }
    Ok(Some(toc))
}

/// Reads bytes of a pack at an offset, exactly the length of the buffer.
type ReadAt<'a> = Box<dyn FnMut(u64, &mut [u8]) -> Result<()> + 'a>;

/// Computes CRC32Cs of byte ranges of one pack, reading it forward through a bounded window
/// so that ranges visited in offset order are read once, with few large reads.
pub(crate) struct PackScanner<'a> {
    read: ReadAt<'a>,
    pack_id: PackId,
    /// Bytes of the pack that may be read (reads never go past it).
    limit: u64,
    buf: Vec<u8>,
    /// Pack offset of `buf[0]`.
    start: u64,
    /// Valid bytes in `buf`.
    len: usize,
}

impl<'a> PackScanner<'a> {
    /// A scanner of the first `limit` bytes of a pack. Does no I/O.
    pub(crate) fn new(packs: &'a dyn PackStore, pack_id: PackId, limit: u64) -> Self {
        Self::with_reader(pack_id, limit, move |pos, buf| {
            packs.read_at(pack_id, pos, buf)
        })
    }

    /// A scanner of the first `limit` bytes of pack `pack_id` (named in errors) read through
    /// `read` (a copy of the pack, for example). Does no I/O.
    pub(crate) fn with_reader(
        pack_id: PackId,
        limit: u64,
        read: impl FnMut(u64, &mut [u8]) -> Result<()> + 'a,
    ) -> Self {
        PackScanner {
            read: Box::new(read),
            pack_id,
            limit,
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// CRC32C of the pack's bytes `offset..offset + length`.
    pub(crate) fn crc_of(&mut self, offset: u64, length: u64) -> Result<u32> {
        let end = offset
            .checked_add(length)
            .filter(|&end| end <= self.limit)
            .ok_or_else(|| {
                Error::corrupt(
                    "pack",
                    format!("pack {}, offset {offset}, {length} bytes", self.pack_id),
                    format!("the range ends past byte {} of the pack", self.limit),
                )
            })?;
        let mut crc = 0u32;
        let mut pos = offset;
        while pos < end {
            let window_end = self.start + self.len as u64;
            if pos < self.start || pos >= window_end {
                self.fill(pos)?;
            }
            // `pos` is inside the window now: both indices fit in `buf`.
            let from = (pos - self.start) as usize;
            let to = (end.min(self.start + self.len as u64) - self.start) as usize;
            crc = crc32c::crc32c_append(crc, &self.buf[from..to]);
            pos = self.start + to as u64;
        }
        Ok(crc)
    }

    /// Loads the window starting at `pos` (`pos < limit`).
    fn fill(&mut self, pos: u64) -> Result<()> {
        let n = (self.limit - pos).min(READ_CHUNK as u64) as usize;
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        self.len = 0;
        (self.read)(pos, &mut self.buf[..n])?;
        self.start = pos;
        self.len = n;
        Ok(())
    }
}

/// Checks every object a pack's table of contents lists against the bytes of a copy of the
/// pack: `read` reads the copy, `len` is its length. An object whose bytes do not match the
/// sidecar's CRC32C (or that ends past the copy) is a
/// [`Corrupt`](rsdos_core::ErrorKind::Corrupt) error naming the pack, the offset and the object.
pub(crate) fn verify_copy(
    pack_id: PackId,
    toc: &PackToc,
    len: u64,
    read: impl FnMut(u64, &mut [u8]) -> Result<()>,
) -> Result<()> {
    let mut scanner = PackScanner::with_reader(pack_id, len, read);
    for e in &toc.entries {
        let crc = scanner.crc_of(e.offset, e.length)?;
        if crc != e.crc32c {
            return Err(Error::corrupt(
                "pack",
                format!("pack {pack_id}, offset {}", e.offset),
                format!(
                    "the {} stored bytes of object {} have CRC32C {crc:08x}, its sidecar says \
                     {:08x}",
                    e.length, e.hashkey, e.crc32c
                ),
            ));
        }
    }
    Ok(())
}

/// Length of the raw digest of a hash type.
fn raw_hash_len(hash_type: HashType) -> usize {
    hash_type.hex_len() / 2
}

fn hash_type_code(hash_type: HashType) -> u8 {
    match hash_type {
        HashType::Sha256 => 0,
        HashType::Sha1 => 1,
    }
}

/// Appends the raw bytes of a hex hashkey, exactly `len` of them (see [`PackToc::encode`]).
fn push_raw_hash(out: &mut Vec<u8>, hashkey: &str, len: usize) {
    let hex = hashkey.as_bytes();
    for i in 0..len {
        let hi = hex.get(2 * i).and_then(|&c| hex_value(c)).unwrap_or(0);
        let lo = hex.get(2 * i + 1).and_then(|&c| hex_value(c)).unwrap_or(0);
        out.push(hi << 4 | lo);
    }
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn to_hex(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(raw.len() * 2);
    for &b in raw {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// A bounds-checked little-endian reader over a byte slice.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}
