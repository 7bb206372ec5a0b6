//! [`ObjectReader`]: one object's content as a stream.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use rsdos_core::{Error, ObjectMeta, PackHandle, PackId, PackStore};

use crate::codec::{Codec, StreamDecoder, detect_codec};

/// Largest read issued to a pack store at once.
const PACK_READ_CHUNK: usize = 256 * 1024;

/// Where the stored bytes of an object come from; cheap to re-create for a backward seek
/// in compressed data.
#[derive(Debug, Clone)]
pub(crate) enum StoredSource {
    /// A byte range of a pack, read with positioned reads on a pinned handle.
    Pack {
        handle: Arc<dyn PackHandle>,
        offset: u64,
        length: u64,
    },
    /// Bytes already in memory (a window of a bulk read, or a small object read whole).
    Memory {
        buf: Arc<Vec<u8>>,
        start: usize,
        len: usize,
    },
}

impl StoredSource {
    /// A range of pack `pack_id`, pinned now: later reads go to this very file even if the
    /// pack is deleted or replaced by a repack meanwhile. Opened with
    /// [`PackStore::open_range`], so on object storage opening costs no request besides the
    /// read of the first chunk.
    pub(crate) fn pack(
        store: &dyn PackStore,
        pack_id: PackId,
        offset: u64,
        length: u64,
    ) -> Result<Self, Error> {
        Ok(StoredSource::Pack {
            handle: store.open_range(pack_id, offset, length)?,
            offset,
            length,
        })
    }

    /// As [`StoredSource::pack`], but a pack that cannot be opened gives a source whose reads
    /// fail with that error (for validate, which classifies read errors per object).
    pub(crate) fn pack_or_failing(
        store: &dyn PackStore,
        pack_id: PackId,
        offset: u64,
        length: u64,
    ) -> Self {
        let handle: Arc<dyn PackHandle> = match store.open_pack(pack_id) {
            Ok(h) => h,
            Err(e) => Arc::new(FailingHandle {
                pack_id,
                not_found: e.kind() == rsdos_core::ErrorKind::NotFound,
                message: e.to_string(),
            }),
        };
        StoredSource::Pack {
            handle,
            offset,
            length,
        }
    }

    fn open(&self) -> RawReader {
        match self {
            StoredSource::Pack {
                handle,
                offset,
                length,
            } => RawReader::Pack(PackRangeReader {
                handle: Arc::clone(handle),
                offset: *offset,
                length: *length,
                pos: 0,
                buf: Vec::new(),
                buf_pos: 0,
                chunk: PACK_READ_CHUNK,
            }),
            StoredSource::Memory { buf, start, len } => RawReader::Memory {
                buf: Arc::clone(buf),
                start: *start,
                len: *len,
                pos: 0,
            },
        }
    }

    fn head(&self) -> io::Result<Vec<u8>> {
        let mut head = vec![0u8; 4];
        let n = crate::hashing::read_up_to(&mut self.open(), &mut head)?;
        head.truncate(n);
        Ok(head)
    }
}

/// A pack that could not be opened: every read reports why.
#[derive(Debug)]
struct FailingHandle {
    pack_id: PackId,
    not_found: bool,
    message: String,
}

impl PackHandle for FailingHandle {
    fn pack_id(&self) -> PackId {
        self.pack_id
    }

    fn read_at(&self, offset: u64, _buf: &mut [u8]) -> Result<(), Error> {
        if self.not_found {
            Err(Error::PackNotFound {
                pack_id: self.pack_id,
            })
        } else {
            Err(Error::corrupt(
                "pack",
                format!("pack {}, offset {offset}", self.pack_id),
                self.message.clone(),
            ))
        }
    }
}

/// Reads the raw stored bytes of an object.
pub(crate) enum RawReader {
    Pack(PackRangeReader),
    Memory {
        buf: Arc<Vec<u8>>,
        start: usize,
        len: usize,
        pos: usize,
    },
}

pub(crate) struct PackRangeReader {
    handle: Arc<dyn PackHandle>,
    offset: u64,
    length: u64,
    pos: u64,
    buf: Vec<u8>,
    buf_pos: usize,
    /// Size of the next read: [`PACK_READ_CHUNK`] after opening or a seek, doubled after each
    /// read up to the handle's [`sequential_read_max`](PackHandle::sequential_read_max).
    chunk: usize,
}

impl PackRangeReader {
    /// The size of this read, and the next one's.
    fn next_chunk(&mut self) -> usize {
        let this = self.chunk;
        self.chunk = self
            .chunk
            .saturating_mul(2)
            .min(self.handle.sequential_read_max().max(PACK_READ_CHUNK));
        this
    }
}

impl Read for PackRangeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf_pos < self.buf.len() {
            let n = out.len().min(self.buf.len() - self.buf_pos);
            out[..n].copy_from_slice(&self.buf[self.buf_pos..self.buf_pos + n]);
            self.buf_pos += n;
            return Ok(n);
        }
        let remaining = self.length - self.pos;
        if remaining == 0 || out.is_empty() {
            return Ok(0);
        }
        let want = remaining.min(self.next_chunk() as u64) as usize;
        if out.len() >= want {
            self.handle
                .read_at(self.offset + self.pos, &mut out[..want])?;
            self.pos += want as u64;
            return Ok(want);
        }
        self.buf.resize(want, 0);
        self.handle.read_at(self.offset + self.pos, &mut self.buf)?;
        self.pos += want as u64;
        let n = out.len();
        out.copy_from_slice(&self.buf[..n]);
        self.buf_pos = n;
        Ok(n)
    }
}

impl Read for RawReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            RawReader::Pack(p) => p.read(out),
            RawReader::Memory {
                buf,
                start,
                len,
                pos,
            } => {
                let n = out.len().min(*len - *pos);
                out[..n].copy_from_slice(&buf[*start + *pos..*start + *pos + n]);
                *pos += n;
                Ok(n)
            }
        }
    }
}

enum Body {
    Loose(File),
    Raw(RawReader),
    Decoded {
        source: StoredSource,
        codec: Codec,
        decoder: Box<StreamDecoder<RawReader>>,
    },
}

/// The content of one object as a stream: `Read` and `Seek` over the uncompressed bytes.
///
/// Seeking is exact on all objects. On compressed objects a forward seek decompresses and
/// discards, a backward seek restarts decompression from the start. A reader never returns more
/// or fewer bytes than the object's size: stored data that decompresses to a different size is
/// an [`ErrorKind::Corrupt`](rsdos_core::ErrorKind::Corrupt) error (as `io::ErrorKind::InvalidData`).
pub struct ObjectReader {
    hashkey: String,
    meta: ObjectMeta,
    size: u64,
    pos: u64,
    body: Body,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("hashkey", &self.hashkey)
            .field("meta", &self.meta)
            .field("pos", &self.pos)
            .finish()
    }
}

impl ObjectReader {
    pub(crate) fn loose(hashkey: String, file: File, size: u64) -> Self {
        ObjectReader {
            hashkey,
            meta: ObjectMeta::loose(size),
            size,
            pos: 0,
            body: Body::Loose(file),
        }
    }

    pub(crate) fn stored(
        hashkey: String,
        meta: ObjectMeta,
        source: StoredSource,
    ) -> Result<Self, Error> {
        let size = meta.size.unwrap_or(0);
        let compressed = meta.packed.is_some_and(|p| p.compressed);
        let body = if compressed {
            let codec = detect_codec(&source.head().map_err(|e| io_to_error(&hashkey, e))?);
            let decoder =
                StreamDecoder::new(codec, source.open()).map_err(|e| io_to_error(&hashkey, e))?;
            Body::Decoded {
                source,
                codec,
                decoder: Box::new(decoder),
            }
        } else {
            Body::Raw(source.open())
        };
        Ok(ObjectReader {
            hashkey,
            meta,
            size,
            pos: 0,
            body,
        })
    }

    /// The object's hashkey.
    pub fn hashkey(&self) -> &str {
        &self.hashkey
    }

    /// The object's metadata (where it is stored, its size).
    pub fn meta(&self) -> &ObjectMeta {
        &self.meta
    }

    /// The uncompressed size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True when reading needs no file or network I/O: the stored bytes are already in memory
    /// (a window of a bulk read), only copying or decompressing them is left. Bindings use it
    /// to keep small reads on the calling thread instead of handing the work off.
    pub fn reads_from_memory(&self) -> bool {
        match &self.body {
            Body::Loose(_) => false,
            Body::Raw(r) => matches!(r, RawReader::Memory { .. }),
            Body::Decoded { source, .. } => matches!(source, StoredSource::Memory { .. }),
        }
    }

    /// The rest of the content, borrowed, when it is in memory as stored uncompressed (a
    /// packed object of a bulk read's window); `None` otherwise. A caller that copies it into
    /// its own buffer (as Python's `read()` does into a new `bytes`) then seeks past it, and
    /// saves filling that buffer twice.
    pub fn buffered_rest(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Raw(RawReader::Memory {
                buf,
                start,
                len,
                pos,
            }) => {
                let rest = buf.get(start + pos..start + len)?;
                // A stored length that disagrees with the size is read (and reported as
                // corrupt) by `read`.
                (rest.len() as u64 == self.size.saturating_sub(self.pos)).then_some(rest)
            }
            _ => None,
        }
    }

    /// Reads the rest of the object into a vector (preallocating at most 64 MiB up front, so a
    /// corrupt size cannot exhaust memory).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        let remaining = self.size.saturating_sub(self.pos);
        let mut out = Vec::with_capacity(remaining.min(64 << 20) as usize);
        self.read_to_end(&mut out)?;
        Ok(out)
    }

    fn corrupt(&self, detail: String) -> io::Error {
        let location = match self.meta.packed {
            Some(p) => format!(
                "object {} in pack {} at offset {}",
                self.hashkey, p.pack_id, p.offset
            ),
            None => format!("loose object {}", self.hashkey),
        };
        Error::corrupt("object", location, detail).into()
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::Loose(f) => f.read(buf),
            Body::Raw(r) => r.read(buf),
            Body::Decoded { decoder, .. } => decoder.read(buf),
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let remaining = self.size - self.pos.min(self.size);
        if remaining == 0 {
            // Check that compressed data really ends here.
            if let Body::Decoded { .. } = self.body {
                let mut probe = [0u8; 1];
                match self.read_body(&mut probe) {
                    Ok(0) => {}
                    Ok(_) => {
                        return Err(self.corrupt(format!(
                            "decompresses to more than its recorded size {}",
                            self.size
                        )));
                    }
                    Err(e) => return Err(self.corrupt(format!("cannot decompress: {e}"))),
                }
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        let n = match self.read_body(&mut buf[..want]) {
            Ok(n) => n,
            Err(e)
                if matches!(self.body, Body::Decoded { .. })
                    && e.kind() != io::ErrorKind::Interrupted =>
            {
                return Err(self.corrupt(format!("cannot decompress: {e}")));
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(self.corrupt(format!(
                "ends after {} of its {} bytes",
                self.pos, self.size
            )));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for ObjectReader {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let new = match target {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the object",
            )
        })?;
        match &mut self.body {
            Body::Loose(f) => {
                f.seek(SeekFrom::Start(new))?;
                self.pos = new;
            }
            Body::Raw(RawReader::Memory { pos, len, .. }) => {
                *pos = (new.min(*len as u64)) as usize;
                self.pos = new;
            }
            Body::Raw(RawReader::Pack(p)) => {
                p.pos = new.min(p.length);
                // Released, not kept: a stream that grew its reads may hold 8 MiB.
                p.buf = Vec::new();
                p.buf_pos = 0;
                p.chunk = PACK_READ_CHUNK;
                self.pos = new;
            }
            Body::Decoded { .. } => {
                // The decoder always stands at min(pos, size).
                let target = new.min(self.size);
                self.pos = self.pos.min(self.size);
                if target < self.pos {
                    if let Body::Decoded {
                        source,
                        codec,
                        decoder,
                    } = &mut self.body
                    {
                        **decoder = StreamDecoder::new(*codec, source.open())?;
                    }
                    self.pos = 0;
                }
                let mut skip = target - self.pos;
                let mut scratch = [0u8; 64 * 1024];
                while skip > 0 {
                    let n = self.read(&mut scratch[..(skip.min(64 * 1024)) as usize])?;
                    skip -= n as u64;
                }
                self.pos = new;
            }
        }
        Ok(self.pos)
    }
}

/// Turns an I/O error of reading stored bytes back into the library error it carries.
fn io_to_error(hashkey: &str, e: io::Error) -> Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Error>() {
            Ok(e) => *e,
            Err(other) => Error::corrupt("object", hashkey.to_string(), other.to_string()),
        },
        None => Error::corrupt("object", hashkey.to_string(), "read failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A pack in memory that counts its reads.
    #[derive(Debug)]
    struct CountingHandle {
        data: Vec<u8>,
        reads: AtomicUsize,
        max: usize,
    }

    impl PackHandle for CountingHandle {
        fn pack_id(&self) -> PackId {
            0
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let start = offset as usize;
            buf.copy_from_slice(&self.data[start..start + buf.len()]);
            Ok(())
        }
        fn sequential_read_max(&self) -> usize {
            self.max
        }
    }

    fn reader_over(handle: &Arc<CountingHandle>, len: u64) -> ObjectReader {
        let source = StoredSource::Pack {
            handle: Arc::clone(handle) as Arc<dyn PackHandle>,
            offset: 0,
            length: len,
        };
        let meta = ObjectMeta::packed(rsdos_core::PackedLocation {
            pack_id: 0,
            offset: 0,
            length: len,
            size: len,
            compressed: false,
        });
        ObjectReader::stored("k".into(), meta, source).expect("reader")
    }

    /// A sequential stream grows its reads up to the handle's maximum, starts over small after
    /// a seek, and returns the same bytes whatever the read sizes.
    #[test]
    fn sequential_reads_grow_to_the_handles_maximum() {
        let data: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        let len = data.len() as u64;
        for (max, most_reads) in [(PACK_READ_CHUNK, 40), (8 << 20, 6)] {
            let handle = Arc::new(CountingHandle {
                data: data.clone(),
                reads: AtomicUsize::new(0),
                max,
            });
            let mut r = reader_over(&handle, len);
            let mut out = Vec::new();
            let mut small = [0u8; 4096];
            loop {
                let n = r.read(&mut small).expect("read");
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&small[..n]);
            }
            assert!(out == data, "bytes differ with max {max}");
            let reads = handle.reads.load(Ordering::SeqCst);
            assert!(reads <= most_reads, "{reads} reads with max {max}");

            // After a seek the reads start small again: one 4 KiB read costs one 256 KiB read.
            let before = handle.reads.load(Ordering::SeqCst);
            r.seek(SeekFrom::Start(12345)).expect("seek");
            let mut one = [0u8; 4096];
            r.read_exact(&mut one).expect("read after seek");
            assert_eq!(&one[..], &data[12345..12345 + 4096]);
            assert_eq!(handle.reads.load(Ordering::SeqCst), before + 1);
            assert_eq!(
                next_chunk_of(&r),
                Some((2 * PACK_READ_CHUNK).min(max.max(PACK_READ_CHUNK)))
            );
        }
    }

    /// The size of the next read of a stream over a pack range.
    fn next_chunk_of(r: &ObjectReader) -> Option<usize> {
        match &r.body {
            Body::Raw(RawReader::Pack(p)) => Some(p.chunk),
            _ => None,
        }
    }
}
