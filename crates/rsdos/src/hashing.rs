//! Hashing while data streams through.
//!
//! A large object is hashed on a helper thread while the caller's thread keeps reading and
//! writing: SHA-256 runs at ~1.6 GB/s on one core, about as fast as reading a file and
//! writing it elsewhere together, so splitting the two nearly halves the time to store a
//! large object (1 GiB: the hash alone is ~0.65 s).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;

use rsdos_core::{Error, HashType, ObjectHasher, Result};

/// Bytes handed to the helper thread at once.
const CHUNK: usize = 1024 * 1024;
/// An object is hashed on a helper thread once this many bytes went through: below it,
/// starting a thread costs more than it saves.
const BACKGROUND_AFTER: u64 = 4 * 1024 * 1024;
/// Chunks in flight at most (queued, being hashed, being filled): bounds memory to a few MiB.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The helper thread hashing chunks in order, and the recycling of its chunks.
struct Background {
    work: SyncSender<Vec<u8>>,
    recycled: Receiver<Vec<u8>>,
    thread: JoinHandle<ObjectHasher>,
    /// Chunks allocated so far (at most [`CHUNKS_IN_FLIGHT`]).
    allocated: usize,
}

/// Hashes a stream of bytes in order, on a helper thread once it is large.
pub(crate) struct StreamHasher {
    inline: Option<ObjectHasher>,
    background: Option<Background>,
    /// Bytes not yet sent to the helper thread.
    staging: Vec<u8>,
    bytes: u64,
}

impl StreamHasher {
    pub(crate) fn new(hash_type: HashType) -> Self {
        StreamHasher {
            inline: Some(hash_type.hasher()),
            background: None,
            staging: Vec::new(),
            bytes: 0,
        }
    }

    /// Bytes hashed so far.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Adds `data` to the hash.
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        if let Some(h) = self.inline.as_mut() {
            h.update(data);
            if self.bytes >= BACKGROUND_AFTER {
                self.start_background();
            }
            return;
        }
        let mut rest = data;
        while !rest.is_empty() {
            let take = (CHUNK - self.staging.len()).min(rest.len());
            self.staging.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.staging.len() == CHUNK {
                self.ship();
            }
        }
    }

    /// The hashkey of everything added.
    pub(crate) fn finish(mut self) -> Result<String> {
        if let Some(h) = self.inline.take() {
            return Ok(h.finish_hex());
        }
        let mut hasher = match self.background.take() {
            Some(bg) => {
                drop(bg.work);
                bg.thread.join().map_err(|_| Error::Io {
                    op: "hash",
                    path: "a stream".into(),
                    source: io::Error::other("the hashing thread stopped unexpectedly"),
                })?
            }
            None => {
                return Err(Error::InvalidArgument(
                    "BUG: stream hasher without a hasher".into(),
                ));
            }
        };
        hasher.update(&self.staging);
        Ok(hasher.finish_hex())
    }

    fn start_background(&mut self) {
        let Some(inline) = self.inline.as_ref() else {
            return;
        };
        let mut hasher = inline.clone();
        let (work, jobs) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT - 2);
        let (give_back, recycled) = sync_channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
        let spawned = std::thread::Builder::new()
            .name("rsdos-hash".into())
            .spawn(move || {
                for chunk in jobs {
                    hasher.update(&chunk);
                    // The caller may be gone (an error): the chunk is simply dropped.
                    let _ = give_back.try_send(chunk);
                }
                hasher
            });
        // Without a thread (resources exhausted) the hash simply stays on this thread.
        if let Ok(thread) = spawned {
            self.inline = None;
            self.staging = Vec::with_capacity(CHUNK);
            self.background = Some(Background {
                work,
                recycled,
                thread,
                allocated: 1,
            });
        }
    }

    /// Sends the full staging chunk to the helper thread and takes an empty one.
    fn ship(&mut self) {
        let Some(bg) = self.background.as_mut() else {
            return;
        };
        let next = match bg.recycled.try_recv() {
            Ok(buf) => Some(buf),
            Err(TryRecvError::Empty) if bg.allocated < CHUNKS_IN_FLIGHT => {
                bg.allocated += 1;
                Some(Vec::with_capacity(CHUNK))
            }
            Err(TryRecvError::Empty) => bg.recycled.recv().ok(),
            Err(TryRecvError::Disconnected) => None,
        };
        let mut next = next.unwrap_or_else(|| Vec::with_capacity(CHUNK));
        next.clear();
        let full = std::mem::replace(&mut self.staging, next);
        // A send fails only if the thread is gone; `finish` then reports it.
        let _ = bg.work.send(full);
    }
}

/// Reads from `R` and hashes every byte it hands out.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: StreamHasher,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, hash_type: HashType) -> Self {
        HashingReader {
            inner,
            hasher: StreamHasher::new(hash_type),
            failed: false,
        }
    }

    /// True if a read of the inner reader failed (to tell input errors from output errors).
    pub(crate) fn input_failed(&self) -> bool {
        self.failed
    }

    /// The hashkey and number of bytes read so far.
    pub(crate) fn finish(self) -> Result<(String, u64)> {
        let bytes = self.hasher.bytes();
        Ok((self.hasher.finish()?, bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads until `buf` is full or the reader ends; returns the number of bytes read.
pub(crate) fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash is the same whether the bytes arrive in tiny or huge pieces, and whether the
    /// helper thread was used (large inputs) or not (small ones).
    #[test]
    fn background_hash_equals_one_shot_hash() {
        for (len, piece) in [
            (0usize, 1usize),
            (1000, 7),
            (BACKGROUND_AFTER as usize - 1, 65_536),
            (BACKGROUND_AFTER as usize, 4096),
            (BACKGROUND_AFTER as usize + 1, 1_000_003),
            (3 * CHUNK + BACKGROUND_AFTER as usize + 17, 8192),
            (20 * CHUNK, 20 * CHUNK),
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            for hash_type in [HashType::Sha256, HashType::Sha1] {
                let mut h = StreamHasher::new(hash_type);
                for part in data.chunks(piece.max(1)) {
                    h.update(part);
                }
                assert_eq!(h.bytes(), len as u64);
                assert_eq!(
                    h.finish().expect("finish"),
                    hash_type.hash_hex(&data),
                    "len {len} piece {piece} {hash_type:?}"
                );
            }
        }
    }

    #[test]
    fn hashing_reader_reports_bytes_and_hash() {
        let data = vec![7u8; 9 * 1024 * 1024 + 3];
        let mut r = HashingReader::new(&data[..], HashType::Sha256);
        let n = std::io::copy(&mut r, &mut std::io::sink()).expect("copy");
        assert_eq!(n, data.len() as u64);
        let (key, bytes) = r.finish().expect("finish");
        assert_eq!(bytes, data.len() as u64);
        assert_eq!(key, HashType::Sha256.hash_hex(&data));
    }
}
