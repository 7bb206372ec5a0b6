//! `import_from`: copy objects of another container straight into packs of this one.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rsdos_core::{CompressMode, Error, ObjectIndexExt, Result};

use crate::container::Container;
use crate::pack_writer::PackWriter;
use crate::progress::{Progress, ProgressUnit, check_stop};

/// Hashkeys looked up and read from the source at once.
const CHUNK: usize = 10_000;

/// What [`Container::import_from`] did.
///
/// Every distinct hashkey asked for (or, when importing everything, every object of the
/// source) is counted once in exactly one of `copied`, `skipped_present` and
/// `missing_in_source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Objects newly stored in this container.
    pub copied: u64,
    /// Objects this container already had (checked before reading them when both containers
    /// use the same hash type; found while writing otherwise).
    pub skipped_present: u64,
    /// Hashkeys asked for that the source does not have.
    pub missing_in_source: u64,
    /// `(source hashkey, hashkey in this container)`, in the order the objects were copied:
    /// with the same hash type, one `(k, k)` pair per copied object; with different hash types,
    /// one pair per object read from the source, including those this container already had
    /// (as disk-objectstore's `import_objects`).
    pub mapping: Vec<(String, String)>,
}

/// Running state of an import.
struct Import<'a, 'c> {
    target: &'c Container,
    source: &'a Container,
    same_hash: bool,
    writer: PackWriter<'c>,
    report: ImportReport,
    /// Objects read from the source and handed to the writer.
    read: u64,
}

impl Container {
    /// Copies objects of `source` into packs of this container: the given `hashkeys` (hashkeys
    /// of the source's hash type; duplicates are imported once), or every object of the
    /// source with `None`. Missing source objects are counted, not an error.
    ///
    /// Streaming: the source is read in its efficient order ([`Container::read_many`]: pack
    /// by pack, by offset; then loose objects), 10 000 hashkeys at a time, and each object is
    /// streamed straight into this container's current pack; memory stays bounded whatever
    /// the objects' sizes. Each pack's bytes are fsynced and its rows committed in one
    /// transaction when it is full and at the end. If an error occurs (or `progress` asks to
    /// stop, [`Error::Interrupted`]), the objects completely written so far are committed
    /// and the error is returned; importing again copies the rest.
    ///
    /// With the same hash type, hashkeys this container already has (packed or loose) are
    /// skipped without reading them. With different hash types every object is read and
    /// re-hashed while it is written, and [`ImportReport::mapping`] tells each object's new
    /// hashkey; objects already packed here are not written twice.
    ///
    /// `compress` decides how the packed copies are stored, as for
    /// [`Container::add_many_to_pack`]: the objects are read decompressed from the source, so
    /// `Keep` means `No`; `Yes` and `Auto` compress with this container's algorithm.
    ///
    /// Takes this container's maintenance lock (a direct-to-pack write); the source is only
    /// read. Progress: one phase `Import objects` in [`ProgressUnit::Objects`].
    pub fn import_from(
        &self,
        source: &Container,
        hashkeys: Option<&[String]>,
        compress: CompressMode,
        progress: &dyn Progress,
    ) -> Result<ImportReport> {
        let writer = PackWriter::new(self, compress, true)?;
        let mut import = Import {
            target: self,
            source,
            same_hash: source.config().hash_type == self.config().hash_type,
            writer,
            report: ImportReport::default(),
            read: 0,
        };
        let outcome = match hashkeys {
            Some(keys) => import.given(keys, progress),
            None => import.everything(progress),
        };
        let Import {
            writer,
            mut report,
            read,
            ..
        } = import;
        // Commit what was completely written, also when stopping on an error.
        let finished = writer.finish_keep();
        outcome?;
        let inserted = finished?.total;
        progress.finish();
        report.copied = inserted;
        report.skipped_present += read.saturating_sub(inserted);
        Ok(report)
    }
}

impl Import<'_, '_> {
    /// Imports the given hashkeys, each distinct one once.
    fn given(&mut self, keys: &[String], progress: &dyn Progress) -> Result<()> {
        let mut seen: HashSet<&str> = HashSet::with_capacity(keys.len());
        let distinct: Vec<&String> = keys.iter().filter(|k| seen.insert(k.as_str())).collect();
        drop(seen);
        progress.start(
            "Import objects",
            distinct.len() as u64,
            ProgressUnit::Objects,
        );
        for chunk in distinct.chunks(CHUNK) {
            self.chunk(chunk.iter().map(|k| (*k).clone()).collect(), progress)?;
        }
        Ok(())
    }

    /// Imports every object of the source: pack by pack in offset order, then the objects
    /// that are only loose. The loose folder is listed first, so that an object packed (and
    /// its loose file cleaned) meanwhile is still found in its pack.
    fn everything(&mut self, progress: &dyn Progress) -> Result<()> {
        let source = self.source;
        let mut loose: Vec<String> = Vec::new();
        source.loose_store().for_each(|key, _| {
            loose.push(key);
            Ok(())
        })?;
        let mut loose_only: HashSet<String> = HashSet::with_capacity(loose.len());
        for chunk in loose.chunks(CHUNK) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            let packed: HashSet<String> = source.index().packed_among(&refs)?;
            loose_only.extend(chunk.iter().filter(|k| !packed.contains(*k)).cloned());
        }
        drop(loose);
        let packed_count = source.index().totals()?.count;
        progress.start(
            "Import objects",
            packed_count + loose_only.len() as u64,
            ProgressUnit::Objects,
        );
        for pack_id in source.index().pack_ids()? {
            let mut batch = Vec::with_capacity(CHUNK);
            for entry in source.index().iter_pack(pack_id, CHUNK) {
                let entry = entry?;
                // Packed after the loose folder was checked: import it from here, once.
                loose_only.remove(&entry.hashkey);
                batch.push(entry.hashkey);
                if batch.len() == CHUNK {
                    self.chunk(std::mem::take(&mut batch), progress)?;
                }
            }
            if !batch.is_empty() {
                self.chunk(batch, progress)?;
            }
        }
        let mut rest: Vec<String> = loose_only.into_iter().collect();
        rest.sort_unstable();
        for chunk in rest.chunks(CHUNK) {
            self.chunk(chunk.to_vec(), progress)?;
        }
        Ok(())
    }

    /// Imports one chunk of distinct hashkeys.
    fn chunk(&mut self, mut keys: Vec<String>, progress: &dyn Progress) -> Result<()> {
        check_stop(progress)?;
        if self.same_hash {
            let before = keys.len();
            keys = self.not_present(keys)?;
            let present = (before - keys.len()) as u64;
            self.report.skipped_present += present;
            progress.advance(present);
        }
        if keys.is_empty() {
            return Ok(());
        }
        let source_path = self.source.path().to_path_buf();
        for item in self.source.read_many(&keys, false)? {
            check_stop(progress)?;
            let item = item?;
            let Some(mut reader) = item.reader else {
                self.report.missing_in_source += 1;
                progress.advance(1);
                continue;
            };
            let dest_key = match self.writer.add(&mut reader) {
                Ok(k) => k,
                Err(Error::Input { source }) => {
                    return Err(source_error(&item.hashkey, &source_path, source));
                }
                Err(e) => return Err(e),
            };
            self.read += 1;
            self.report.mapping.push((item.hashkey, dest_key));
            progress.advance(1);
        }
        Ok(())
    }

    /// The hashkeys this container has neither packed nor loose (same hash type only).
    fn not_present(&self, keys: Vec<String>) -> Result<Vec<String>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let packed: HashSet<String> = self
            .target
            .index()
            .get_many(&refs)?
            .into_iter()
            .map(|e| e.hashkey)
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if packed.contains(&key) {
                continue;
            }
            self.target.validate_key(&key)?;
            if self.target.loose_store().size(&key)?.is_none() {
                out.push(key);
            }
        }
        Ok(out)
    }
}

/// The error of reading a source object: the rsdos error it carries (corrupt data, a missing
/// pack), else an I/O error naming the object and the source container.
fn source_error(hashkey: &str, source: &Path, e: std::io::Error) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        let text = e.to_string();
        return match e.into_inner().map(|inner| inner.downcast::<Error>()) {
            Some(Ok(err)) => *err,
            _ => Error::corrupt(
                "object of the source container",
                format!("{hashkey} in {}", source.display()),
                text,
            ),
        };
    }
    Error::io(
        "read",
        PathBuf::from(format!(
            "object {hashkey} of the source container {}",
            source.display()
        )),
        e,
    )
}
