//! Hashing while data streams through.

use std::io::{self, Read};

use rsdos_core::{HashType, ObjectHasher};

/// Reads from `R` and hashes every byte it hands out.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: ObjectHasher,
    bytes: u64,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R, hash_type: HashType) -> Self {
        HashingReader {
            inner,
            hasher: hash_type.hasher(),
            bytes: 0,
            failed: false,
        }
    }

    /// True if a read of the inner reader failed (to tell input errors from output errors).
    pub(crate) fn input_failed(&self) -> bool {
        self.failed
    }

    /// The hashkey and number of bytes read so far.
    pub(crate) fn finish(self) -> (String, u64) {
        (self.hasher.finish_hex(), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
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
