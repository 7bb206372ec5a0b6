//! `repack`: rewrite packs without holes, optionally changing compression. Live-safe.

use std::io::Write;

use rsdos_core::{
    CompressMode, Error, ObjectIndexExt, ObjectMeta, PackId, PackedEntry, PackedLocation, Result,
};

use crate::codec::{BufCompressor, StreamEncoder, auto_should_compress};
use crate::container::Container;
use crate::hashing::HashingReader;
use crate::progress::{Progress, ProgressUnit, check_stop};
use crate::reader::{ObjectReader, StoredSource};

/// Objects up to this stored size are copied through memory.
const IN_MEMORY_MAX: u64 = 4 * 1024 * 1024;

/// Options of [`Container::repack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepackOptions {
    /// `Keep` (default) copies stored bytes as they are; `Yes`/`No` recompress or decompress;
    /// `Auto` decides per object.
    pub compress: CompressMode,
    /// Rewrite every pack, not only those with holes (always the case when the compression
    /// mode is not `Keep`).
    pub all: bool,
    /// VACUUM the index afterwards (default true, as disk-objectstore).
    pub vacuum: bool,
}

impl Default for RepackOptions {
    fn default() -> Self {
        RepackOptions {
            compress: CompressMode::Keep,
            all: false,
            vacuum: true,
        }
    }
}

impl RepackOptions {
    /// Sets the compression mode.
    pub fn with_compress(mut self, compress: CompressMode) -> Self {
        self.compress = compress;
        self
    }
    /// Sets whether all packs are rewritten.
    pub fn with_all(mut self, all: bool) -> Self {
        self.all = all;
        self
    }
    /// Sets whether the index is vacuumed.
    pub fn with_vacuum(mut self, vacuum: bool) -> Self {
        self.vacuum = vacuum;
        self
    }
}

/// What [`Container::repack`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RepackReport {
    /// `(old pack, new pack)` for every rewritten pack.
    pub rewritten: Vec<(PackId, PackId)>,
    /// Packs no row pointed to, removed.
    pub removed_empty: Vec<PackId>,
    /// Bytes of pack files before and after.
    pub bytes_before: u64,
    /// Bytes of pack files after.
    pub bytes_after: u64,
}

impl Container {
    /// Rewrites packs that have holes (bytes of deleted objects, duplicates, failed writes),
    /// or all packs when asked or when the compression changes, and removes packs that no row
    /// points to.
    ///
    /// Live-safe: each pack is copied into a pack with a new id, which is fsynced; then the
    /// rows switch to it in one transaction; the old pack is deleted last. Readers in other
    /// processes that still hold an old location find the old pack gone and look the object
    /// up again (see the concurrency rules in `docs/design.md`). Killed at any point, the
    /// container stays valid: at worst an unreferenced new or old pack remains, which the
    /// next repack removes.
    ///
    /// Takes the maintenance lock.
    pub fn repack(&self, options: &RepackOptions, progress: &dyn Progress) -> Result<RepackReport> {
        let _lock = self.lock_maintenance(Some(crate::container::DEFAULT_LOCK_WAIT))?;
        self.retry_uploads_in_cycle();
        let mut report = RepackReport::default();
        let plan = self.plan_pack_rewrite()?;
        report.bytes_before = plan.bytes_before;
        report.removed_empty = plan.removed_empty;
        let referenced = plan.referenced;
        let mut next_id = plan.next_id;
        let rewrite_all = options.all || options.compress != CompressMode::Keep;
        for &old in &referenced {
            check_stop(progress)?;
            let Some(pack_len) = self.packs().len(old)? else {
                // Rows pointing to a missing pack: validate reports them; nothing to copy.
                continue;
            };
            let mut live = 0u64;
            let mut count = 0u64;
            for e in self.index().iter_pack(old, 10_000) {
                let e = e?;
                live += e.location.length;
                count += 1;
            }
            if !rewrite_all && live >= pack_len {
                continue;
            }
            let new = next_id;
            next_id += 1;
            progress.start(&format!("Repack {old}"), count, ProgressUnit::Objects);
            self.replace_pack(old, new, || {
                self.copy_pack(old, new, options.compress, progress)
            })?;
            progress.finish();
            report.rewritten.push((old, new));
        }
        if options.vacuum {
            self.index().vacuum()?;
        }
        report.bytes_after = self.pack_files_bytes()?;
        Ok(report)
    }

    /// Total bytes of the pack files.
    pub(crate) fn pack_files_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for id in self.packs().list()? {
            total += self.packs().len(id)?.unwrap_or(0);
        }
        Ok(total)
    }

    /// What every pack rewrite (repack, migrate) starts with: removes the packs no row points
    /// to (leftovers of an interrupted rewrite, or emptied by deletes) and picks the first id
    /// for new packs, above every existing one. A pack being appended to by another writer
    /// (disk-objectstore's packer, whose rows are not committed yet) holds its lock file, so
    /// only packs we can lock are deleted.
    pub(crate) fn plan_pack_rewrite(&self) -> Result<PackRewritePlan> {
        let on_disk = self.packs().list()?;
        let bytes_before = self.pack_files_bytes()?;
        let referenced = self.index().pack_ids()?;
        let mut removed_empty = Vec::new();
        for &id in on_disk.iter().filter(|id| !referenced.contains(id)) {
            if let Ok(appender) = self.packs().open_append(id) {
                self.packs().delete(id)?;
                drop(appender);
                removed_empty.push(id);
            }
        }
        let next_id = on_disk
            .iter()
            .chain(referenced.iter())
            .max()
            .map_or(0, |m| m + 1);
        Ok(PackRewritePlan {
            referenced,
            removed_empty,
            bytes_before,
            next_id,
        })
    }

    /// Runs `copy` (which writes pack `new`, fsyncs it and switches the rows of `old` to it),
    /// then seals `new` and deletes `old`, in that order. If `copy` fails no row points to the
    /// partial `new`: it is deleted (a failure to delete leaves an unreferenced pack, which the
    /// next rewrite removes).
    pub(crate) fn replace_pack<T>(
        &self,
        old: PackId,
        new: PackId,
        copy: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let out = match copy() {
            Ok(out) => out,
            Err(e) => {
                let _ = self.packs().delete(new);
                return Err(e);
            }
        };
        self.seal_finished_pack(new)?;
        self.packs().delete(old)?;
        Ok(out)
    }

    /// Copies the live objects of `old` into the new pack `new` and switches their rows.
    fn copy_pack(
        &self,
        old: PackId,
        new: PackId,
        mode: CompressMode,
        progress: &dyn Progress,
    ) -> Result<()> {
        let algorithm = self.config().compression_algorithm;
        let mut appender = self.packs().open_append(new)?;
        appender.write_back_early(true);
        if appender.position() != 0 {
            return Err(Error::corrupt(
                "pack",
                format!("pack {new}"),
                "a new pack for repacking is not empty",
            ));
        }
        let mut compressor = BufCompressor::new(algorithm);
        let mut rows: Vec<PackedEntry> = Vec::new();
        let mut buf = Vec::new();
        for e in self.index().iter_pack(old, 10_000) {
            let e = e?;
            let loc = e.location;
            let offset = appender.position();
            let store = std::sync::Arc::clone(self.packs_arc());
            // Both bounds: a small zlib stream may decompress to gigabytes.
            if loc.length <= IN_MEMORY_MAX && loc.size <= IN_MEMORY_MAX {
                let mut raw = vec![0u8; loc.length as usize];
                self.packs().read_at(old, loc.offset, &mut raw)?;
                let where_ = || format!("{} in pack {old} at offset {}", e.hashkey, loc.offset);
                let (stored, compressed): (&[u8], bool) = if mode == CompressMode::Keep {
                    if !loc.compressed && self.config().hash_type.hash_hex(&raw) != e.hashkey {
                        return Err(mismatch(where_()));
                    }
                    (&raw, loc.compressed)
                } else {
                    let plain = if loc.compressed {
                        let mut reader = ObjectReader::stored(
                            e.hashkey.clone(),
                            ObjectMeta::packed(loc),
                            StoredSource::Memory {
                                buf: std::sync::Arc::new(std::mem::take(&mut raw)),
                                start: 0,
                                len: loc.length as usize,
                            },
                        )?;
                        reader.read_all().map_err(|err| {
                            Error::corrupt("packed object", where_(), err.to_string())
                        })?
                    } else {
                        std::mem::take(&mut raw)
                    };
                    if self.config().hash_type.hash_hex(&plain) != e.hashkey {
                        return Err(mismatch(where_()));
                    }
                    if target_compression(mode, loc.compressed, &plain) {
                        compressor.compress(&plain, &mut buf).map_err(|err| {
                            Error::io("compress", format!("object {}", e.hashkey), err)
                        })?;
                        raw = std::mem::take(&mut buf);
                        (&raw, true)
                    } else {
                        raw = plain;
                        (&raw, false)
                    }
                };
                appender
                    .write_all(stored)
                    .map_err(|err| Error::io("append to pack", format!("pack {new}"), err))?;
                rows.push(PackedEntry {
                    hashkey: e.hashkey,
                    location: PackedLocation {
                        pack_id: new,
                        offset,
                        length: appender.position() - offset,
                        size: loc.size,
                        compressed,
                    },
                });
            } else if mode == CompressMode::Keep {
                // Large object, same representation: copy the stored bytes in chunks (hashing
                // them when they are the content itself), as disk-objectstore's repack does.
                let handle = self.packs().open_pack(old)?;
                let mut hasher = (!loc.compressed).then(|| self.config().hash_type.hasher());
                let mut chunk = vec![0u8; 1 << 20];
                let mut done = 0u64;
                while done < loc.length {
                    let n = (loc.length - done).min(chunk.len() as u64) as usize;
                    handle.read_at(loc.offset + done, &mut chunk[..n])?;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&chunk[..n]);
                    }
                    appender
                        .write_all(&chunk[..n])
                        .map_err(|err| Error::io("append to pack", format!("pack {new}"), err))?;
                    done += n as u64;
                }
                if hasher.is_some_and(|h| h.finish_hex() != e.hashkey) {
                    return Err(mismatch(format!(
                        "{} in pack {old} at offset {}",
                        e.hashkey, loc.offset
                    )));
                }
                rows.push(PackedEntry {
                    hashkey: e.hashkey,
                    location: PackedLocation {
                        pack_id: new,
                        offset,
                        length: loc.length,
                        size: loc.size,
                        compressed: loc.compressed,
                    },
                });
            } else {
                // Large object: stream, decompressing and recompressing as needed, verifying.
                let reader = ObjectReader::stored(
                    e.hashkey.clone(),
                    ObjectMeta::packed(loc),
                    StoredSource::pack(store.as_ref(), old, loc.offset, loc.length)?,
                )?;
                let compress = match mode {
                    CompressMode::Keep => loc.compressed,
                    CompressMode::Yes => true,
                    CompressMode::No => false,
                    // Large objects are not sampled again: compressed ones stay compressed while
                    // that saves 10 %, uncompressed ones stay as they are.
                    CompressMode::Auto => {
                        loc.compressed && (loc.length as f64) < 0.9 * loc.size as f64
                    }
                };
                let mut hashing = HashingReader::new(reader, self.config().hash_type);
                let copied = if compress {
                    StreamEncoder::new(algorithm, &mut appender).and_then(|mut enc| {
                        std::io::copy(&mut hashing, &mut enc)?;
                        enc.finish().map(|_| ())
                    })
                } else {
                    std::io::copy(&mut hashing, &mut appender).map(|_| ())
                };
                copied.map_err(|err| {
                    Error::corrupt(
                        "packed object",
                        format!("{} in pack {old}", e.hashkey),
                        err.to_string(),
                    )
                })?;
                if hashing.finish()?.0 != e.hashkey {
                    return Err(mismatch(format!(
                        "{} in pack {old} at offset {}",
                        e.hashkey, loc.offset
                    )));
                }
                rows.push(PackedEntry {
                    hashkey: e.hashkey,
                    location: PackedLocation {
                        pack_id: new,
                        offset,
                        length: appender.position() - offset,
                        size: loc.size,
                        compressed: compress,
                    },
                });
            }
            progress.advance(1);
        }
        appender.sync()?;
        drop(appender);
        // One transaction: every reader sees either all old or all new locations.
        self.index().update(&rows)?;
        Ok(())
    }
}

/// Whether an object should be stored compressed after repacking with `mode`.
fn target_compression(mode: CompressMode, was_compressed: bool, plain: &[u8]) -> bool {
    match mode {
        CompressMode::Keep => was_compressed,
        CompressMode::Yes => true,
        CompressMode::No => false,
        CompressMode::Auto => auto_should_compress(plain, plain.len() as u64),
    }
}

/// The error of a packed object whose content does not match its row during a rewrite.
pub(crate) fn mismatch(location: String) -> Error {
    Error::corrupt(
        "packed object",
        location,
        "content does not match its hashkey or size; this pack is left as it is (run validate)",
    )
}

/// See [`Container::plan_pack_rewrite`].
pub(crate) struct PackRewritePlan {
    /// Pack ids that rows point to, ascending.
    pub(crate) referenced: Vec<PackId>,
    /// Packs removed because no row pointed to them.
    pub(crate) removed_empty: Vec<PackId>,
    /// Bytes of all pack files before.
    pub(crate) bytes_before: u64,
    /// The first id for new packs.
    pub(crate) next_id: PackId,
}
