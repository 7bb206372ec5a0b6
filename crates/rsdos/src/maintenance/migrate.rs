//! `migrate_to_zstd`: turn a zlib container into a zstd one, live-safe and resumable.

use std::io::Write;
use std::sync::Arc;

use rsdos_core::{
    CompressionAlgorithm, ContainerConfig, Error, ObjectIndexExt, ObjectMeta, PackId, PackedEntry,
    PackedLocation, Result, durable,
};

use crate::codec::{BufCompressor, Codec, StreamEncoder, detect_codec};
use crate::container::{Container, DEFAULT_LOCK_WAIT};
use crate::hashing::HashingReader;
use crate::layout::CONFIG;
use crate::maintenance::repack::mismatch;
use crate::progress::{Progress, ProgressUnit, check_stop};
use crate::reader::{ObjectReader, StoredSource};

/// Objects up to this size (stored and uncompressed) are recompressed in memory.
const IN_MEMORY_MAX: u64 = 4 * 1024 * 1024;
/// Bytes copied at once when an object is copied as it is.
const COPY_CHUNK: u64 = 1024 * 1024;
/// Index rows fetched per page.
const PAGE: usize = 10_000;

/// What [`Container::migrate_to_zstd`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrateReport {
    /// Packs that held zlib objects and were rewritten (each into a pack with a new id).
    pub packs_rewritten: u64,
    /// Objects recompressed from zlib to zstd.
    pub objects_recompressed: u64,
    /// Packs no index row pointed to (left by an interrupted migration or repack), deleted.
    pub unreferenced_packs_removed: u64,
    /// Bytes of all pack files before.
    pub bytes_before: u64,
    /// Bytes of all pack files after.
    pub bytes_after: u64,
}

impl Container {
    /// Turns a container that compresses with zlib (disk-objectstore's codec) into one that
    /// compresses with zstd at `level` (1-22): `config.json` is set to `zstd+<level>` and every
    /// packed object stored as a zlib stream is recompressed into a zstd frame. Uncompressed
    /// and zstd objects, and loose objects (never compressed), are kept as they are.
    ///
    /// **disk-objectstore cannot read the result**: it refuses the `zstd+N` algorithm and
    /// cannot decompress zstd frames. Only migrate containers that no disk-objectstore (or
    /// AiiDA version relying on it) needs to open.
    ///
    /// Order and safety. First `config.json` is rewritten atomically, so that from then on
    /// containers opened anew compress with zstd. Then each pack holding at least one zlib
    /// object is copied into a pack with a new id (zlib objects decompressed, verified against
    /// their hashkey and recompressed; uncompressed ones verified and copied), the new pack is
    /// fsynced, the rows of the pack switch to it in one transaction, the new pack is sealed
    /// ([`Container::seal_pack`], as [`Container::repack`] does), and only then the old pack
    /// is deleted.
    /// There is never less than one complete copy of an object, and readers in other processes
    /// follow the move as for [`Container::repack`]. Killed at any point, the container stays
    /// valid and readable; running the migration again finishes the job (it starts by
    /// deleting packs no row points to, which an interrupted run leaves behind). Running it on
    /// a migrated container does nothing but that check.
    ///
    /// A `Container` caches its configuration when opened: this one, and any other already
    /// open, keeps compressing new objects with zlib until it is opened again (such objects
    /// stay readable, and a further migration converts them).
    ///
    /// Takes the maintenance lock. Progress: `Scan packs` (packs), then `Migrate pack <id>`
    /// per rewritten pack (objects), in [`ProgressUnit::Objects`]; when asked to stop, the
    /// current pack is abandoned (its partial copy deleted) and [`Error::Interrupted`]
    /// returned.
    ///
    /// Errors: [`Error::InvalidArgument`] for a level outside 1-22; [`Error::Corrupt`] naming
    /// the object, pack and offset if a zlib object does not decompress to its hashkey (that
    /// pack is left as it is).
    pub fn migrate_to_zstd(&self, level: i32, progress: &dyn Progress) -> Result<MigrateReport> {
        let algorithm: CompressionAlgorithm = format!("zstd+{level}")
            .parse()
            .map_err(|e| Error::InvalidArgument(format!("cannot migrate to zstd: {e}")))?;
        let _lock = self.lock_maintenance(Some(DEFAULT_LOCK_WAIT))?;

        // 1. The configuration, so that new compressed objects are zstd from now on.
        let config_path = self.path().join(CONFIG);
        let mut config = ContainerConfig::read(&config_path)?;
        if config.compression_algorithm != algorithm {
            config.compression_algorithm = algorithm;
            durable::write_atomic(&config_path, config.to_json().as_bytes())?;
        }

        // 2. The packs.
        let mut report = MigrateReport::default();
        let plan = self.plan_pack_rewrite()?;
        report.bytes_before = plan.bytes_before;
        report.unreferenced_packs_removed = plan.removed_empty.len() as u64;
        let referenced = plan.referenced;
        let mut next_id = plan.next_id;

        progress.start("Scan packs", referenced.len() as u64, ProgressUnit::Objects);
        let mut todo: Vec<(PackId, u64)> = Vec::new();
        for &id in &referenced {
            check_stop(progress)?;
            if let Some(rows) = self.zlib_pack_rows(id)? {
                todo.push((id, rows));
            }
            progress.advance(1);
        }
        progress.finish();

        for (old, rows) in todo {
            check_stop(progress)?;
            let new = next_id;
            next_id += 1;
            progress.start(&format!("Migrate pack {old}"), rows, ProgressUnit::Objects);
            let recompressed = self.replace_pack(old, new, || {
                self.migrate_pack(old, new, algorithm, progress)
            })?;
            progress.finish();
            report.packs_rewritten += 1;
            report.objects_recompressed += recompressed;
        }

        report.bytes_after = self.pack_files_bytes()?;
        Ok(report)
    }

    /// The number of rows of pack `pack_id` if any of them is a zlib stream, else `None`.
    fn zlib_pack_rows(&self, pack_id: PackId) -> Result<Option<u64>> {
        let mut rows = 0u64;
        let mut zlib = false;
        for entry in self.index().iter_pack(pack_id, PAGE) {
            let entry = entry?;
            rows += 1;
            if !zlib && entry.location.compressed {
                zlib = self.stored_codec(&entry.location)? == Codec::Zlib;
            }
        }
        Ok(zlib.then_some(rows))
    }

    /// The codec of a compressed packed object, from its first stored bytes.
    fn stored_codec(&self, loc: &PackedLocation) -> Result<Codec> {
        let mut head = [0u8; 4];
        let n = loc.length.min(head.len() as u64) as usize;
        self.packs()
            .read_at(loc.pack_id, loc.offset, &mut head[..n])?;
        Ok(detect_codec(&head[..n]))
    }

    /// Copies every row of `old` into the new pack `new`, recompressing zlib objects with
    /// `algorithm`, fsyncs it and switches the rows; returns the number recompressed.
    fn migrate_pack(
        &self,
        old: PackId,
        new: PackId,
        algorithm: CompressionAlgorithm,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let hash_type = self.config().hash_type;
        let mut appender = self.packs().open_append(new)?;
        appender.write_back_early(true);
        if appender.position() != 0 {
            return Err(Error::corrupt(
                "pack",
                format!("pack {new}"),
                "the new pack for the migration is not empty",
            ));
        }
        let mut compressor = BufCompressor::new(algorithm);
        let mut out = Vec::new();
        let mut rows: Vec<PackedEntry> = Vec::new();
        let mut recompressed = 0u64;
        for entry in self.index().iter_pack(old, PAGE) {
            check_stop(progress)?;
            let entry = entry?;
            let loc = entry.location;
            let offset = appender.position();
            let where_ = || format!("{} in pack {old} at offset {}", entry.hashkey, loc.offset);
            let append_error =
                |e: std::io::Error| Error::io("append to pack", format!("pack {new}"), e);
            let zlib = loc.compressed && self.stored_codec(&loc)? == Codec::Zlib;
            if zlib && loc.length <= IN_MEMORY_MAX && loc.size <= IN_MEMORY_MAX {
                let mut raw = vec![0u8; loc.length as usize];
                self.packs().read_at(old, loc.offset, &mut raw)?;
                let mut reader = ObjectReader::stored(
                    entry.hashkey.clone(),
                    ObjectMeta::packed(loc),
                    StoredSource::Memory {
                        buf: Arc::new(raw),
                        start: 0,
                        len: loc.length as usize,
                    },
                )?;
                let plain = reader
                    .read_all()
                    .map_err(|e| Error::corrupt("packed object", where_(), e.to_string()))?;
                if plain.len() as u64 != loc.size || hash_type.hash_hex(&plain) != entry.hashkey {
                    return Err(mismatch(where_()));
                }
                compressor
                    .compress(&plain, &mut out)
                    .map_err(|e| Error::io("compress", format!("object {}", entry.hashkey), e))?;
                appender.write_all(&out).map_err(append_error)?;
            } else if zlib {
                let reader = ObjectReader::stored(
                    entry.hashkey.clone(),
                    ObjectMeta::packed(loc),
                    StoredSource::pack(self.packs(), old, loc.offset, loc.length)?,
                )?;
                let mut hashing = HashingReader::new(reader, hash_type);
                let mut encoder = StreamEncoder::new(algorithm, &mut appender)
                    .map_err(|e| Error::io("compress", format!("object {}", entry.hashkey), e))?;
                if let Err(e) = std::io::copy(&mut hashing, &mut encoder) {
                    return Err(if hashing.input_failed() {
                        Error::corrupt("packed object", where_(), e.to_string())
                    } else {
                        append_error(e)
                    });
                }
                encoder.finish().map_err(append_error)?;
                let (key, size) = hashing.finish()?;
                if size != loc.size || key != entry.hashkey {
                    return Err(mismatch(where_()));
                }
            } else {
                // Uncompressed (verified while copying) or already zstd: copied as it is.
                let mut hasher = (!loc.compressed).then(|| hash_type.hasher());
                let mut buf = vec![0u8; loc.length.min(COPY_CHUNK) as usize];
                let mut done = 0u64;
                while done < loc.length {
                    let n = (loc.length - done).min(COPY_CHUNK) as usize;
                    self.packs()
                        .read_at(old, loc.offset + done, &mut buf[..n])?;
                    if let Some(h) = hasher.as_mut() {
                        h.update(&buf[..n]);
                    }
                    appender.write_all(&buf[..n]).map_err(append_error)?;
                    done += n as u64;
                }
                if let Some(h) = hasher
                    && (loc.length != loc.size || h.finish_hex() != entry.hashkey)
                {
                    return Err(mismatch(where_()));
                }
            }
            if zlib {
                recompressed += 1;
            }
            rows.push(PackedEntry {
                hashkey: entry.hashkey,
                location: PackedLocation {
                    pack_id: new,
                    offset,
                    length: appender.position() - offset,
                    size: loc.size,
                    compressed: loc.compressed,
                },
            });
            progress.advance(1);
        }
        appender.sync()?;
        drop(appender);
        // One transaction: every reader sees either all old or all new locations.
        self.index().update(&rows)?;
        Ok(recompressed)
    }
}
