//! Reading many objects at once, in the order that is cheapest for the storage.

use std::collections::VecDeque;
use std::sync::Arc;

use rsdos_core::{ErrorKind, ObjectMeta, PackedEntry, Result};

use crate::container::Container;
use crate::reader::{ObjectReader, StoredSource};

/// Neighbouring packed objects are read together in windows of up to this many bytes.
const WINDOW_MAX: u64 = 1024 * 1024;
/// A gap between two objects larger than this starts a new window (holes are not read).
const WINDOW_GAP_MAX: u64 = 64 * 1024;

/// One object of a [`ManyReader`]: its hashkey, a reader (`None` for a missing object, only
/// when `skip_if_missing` is false) and its metadata.
#[derive(Debug)]
pub struct ManyItem {
    /// The hashkey asked for.
    pub hashkey: String,
    /// The content, or `None` when the object is missing.
    pub reader: Option<ObjectReader>,
    /// Where it is stored (type `Missing` when it is missing).
    pub meta: ObjectMeta,
}

/// Iterator over many objects, as disk-objectstore's `get_objects_stream_and_meta`.
///
/// Packed objects come first, pack by pack in ascending id and by offset within a pack,
/// neighbouring objects fetched in one read of up to 1 MiB; then loose objects; then objects
/// that moved while the iteration ran (packed, or repacked, meanwhile: looked up once more);
/// last, when `skip_if_missing` is false, the missing ones. Each distinct hashkey is yielded
/// once. Each reader owns what it reads from, so readers stay valid after the iterator
/// advances; open files stay bounded by the container's handle cache.
pub struct ManyReader {
    container: Container,
    skip_if_missing: bool,
    packs: VecDeque<Vec<PackedEntry>>,
    ready: VecDeque<ManyItem>,
    loose: VecDeque<String>,
    retry: Vec<String>,
    retried: bool,
    missing: VecDeque<String>,
}

impl std::fmt::Debug for ManyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManyReader")
            .field("packs_left", &self.packs.len())
            .field("loose_left", &self.loose.len())
            .finish()
    }
}

impl ManyReader {
    pub(crate) fn new(
        container: Container,
        hashkeys: Vec<String>,
        skip_if_missing: bool,
    ) -> Result<Self> {
        let mut reader = ManyReader {
            container,
            skip_if_missing,
            packs: VecDeque::new(),
            ready: VecDeque::new(),
            loose: VecDeque::new(),
            retry: Vec::new(),
            retried: false,
            missing: VecDeque::new(),
        };
        let (packs, loose) = reader.plan(hashkeys)?;
        reader.packs = packs;
        reader.loose = loose.into();
        Ok(reader)
    }

    /// Looks keys up in the index: packed entries grouped by pack and sorted by offset, and
    /// the keys that are not packed.
    #[allow(clippy::type_complexity)]
    fn plan(&self, mut hashkeys: Vec<String>) -> Result<(VecDeque<Vec<PackedEntry>>, Vec<String>)> {
        hashkeys.sort_unstable();
        hashkeys.dedup();
        let refs: Vec<&str> = hashkeys.iter().map(String::as_str).collect();
        let mut entries = self.container.index().get_many(&refs)?;
        entries.sort_unstable_by(|a, b| {
            (a.location.pack_id, a.location.offset).cmp(&(b.location.pack_id, b.location.offset))
        });
        let packed: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.hashkey.as_str()).collect();
        let not_packed: Vec<String> = hashkeys
            .iter()
            .filter(|k| !packed.contains(k.as_str()))
            .cloned()
            .collect();
        let mut groups: VecDeque<Vec<PackedEntry>> = VecDeque::new();
        for e in entries {
            match groups.back_mut() {
                Some(g) if g[0].location.pack_id == e.location.pack_id => g.push(e),
                _ => groups.push_back(vec![e]),
            }
        }
        Ok((groups, not_packed))
    }

    /// Reads the next window of the current pack into `ready`.
    fn fill_from_packs(&mut self) -> Option<Result<()>> {
        let group = self.packs.front_mut()?;
        if group.is_empty() {
            self.packs.pop_front();
            return Some(Ok(()));
        }
        let start = group[0].location.offset;
        let mut end = start + group[0].location.length;
        let mut take = 1;
        if group[0].location.length <= WINDOW_MAX {
            while take < group.len() {
                let l = &group[take].location;
                let next_end = l.offset + l.length;
                if l.offset < end
                    || l.offset - end > WINDOW_GAP_MAX
                    || next_end - start > WINDOW_MAX
                {
                    break;
                }
                end = next_end;
                take += 1;
            }
        }
        let window: Vec<PackedEntry> = group.drain(..take).collect();
        let pack_id = window[0].location.pack_id;
        let store = Arc::clone(self.container.packs_arc());
        if window.len() == 1 && window[0].location.length > WINDOW_MAX {
            let e = window.into_iter().next()?;
            let source = match StoredSource::pack(
                store.as_ref(),
                pack_id,
                e.location.offset,
                e.location.length,
            ) {
                Ok(s) => s,
                Err(err) if err.kind() == ErrorKind::NotFound => {
                    // Repacked meanwhile: look it up again at the end.
                    self.retry.push(e.hashkey);
                    return Some(Ok(()));
                }
                Err(err) => return Some(Err(err)),
            };
            return Some(self.push_stored(e, source));
        }
        let mut buf = vec![0u8; (end - start) as usize];
        match store.read_at(pack_id, start, &mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // Repacked meanwhile: look these up again at the end.
                self.retry.extend(window.into_iter().map(|e| e.hashkey));
                let rest = self.packs.pop_front().unwrap_or_default();
                self.retry.extend(rest.into_iter().map(|e| e.hashkey));
                return Some(Ok(()));
            }
            Err(e) => return Some(Err(e)),
        }
        let buf = Arc::new(buf);
        for e in window {
            let source = StoredSource::Memory {
                buf: Arc::clone(&buf),
                start: (e.location.offset - start) as usize,
                len: e.location.length as usize,
            };
            if let Err(err) = self.push_stored(e, source) {
                return Some(Err(err));
            }
        }
        Some(Ok(()))
    }

    fn push_stored(&mut self, e: PackedEntry, source: StoredSource) -> Result<()> {
        let meta = ObjectMeta::packed(e.location);
        let reader = ObjectReader::stored(e.hashkey.clone(), meta, source)?;
        self.ready.push_back(ManyItem {
            hashkey: e.hashkey,
            reader: Some(reader),
            meta,
        });
        Ok(())
    }

    fn next_loose(&mut self) -> Option<Result<()>> {
        let key = self.loose.pop_front()?;
        match self.container.loose_store().open(&key) {
            Ok(Some((file, size))) => {
                self.ready.push_back(ManyItem {
                    hashkey: key.clone(),
                    reader: Some(ObjectReader::loose(key, file, size)),
                    meta: ObjectMeta::loose(size),
                });
            }
            Ok(None) => self.retry.push(key),
            Err(e) => return Some(Err(e)),
        }
        Some(Ok(()))
    }

    /// One more lookup of the keys that were not found where the first lookup said.
    fn start_retry(&mut self) -> Result<bool> {
        if self.retried || self.retry.is_empty() {
            return Ok(false);
        }
        self.retried = true;
        let keys = std::mem::take(&mut self.retry);
        let (packs, loose) = self.plan(keys)?;
        self.packs = packs;
        self.loose = loose.into();
        Ok(true)
    }
}

impl Iterator for ManyReader {
    type Item = Result<ManyItem>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(Ok(item));
            }
            if let Some(step) = self.fill_from_packs() {
                if let Err(e) = step {
                    return Some(Err(e));
                }
                continue;
            }
            if let Some(step) = self.next_loose() {
                if let Err(e) = step {
                    return Some(Err(e));
                }
                continue;
            }
            match self.start_retry() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => return Some(Err(e)),
            }
            if !self.retry.is_empty() {
                // Still not found after the second lookup: missing.
                let left = std::mem::take(&mut self.retry);
                self.missing.extend(left);
            }
            if self.skip_if_missing {
                return None;
            }
            let key = self.missing.pop_front()?;
            return Some(Ok(ManyItem {
                hashkey: key,
                reader: None,
                meta: ObjectMeta::missing(),
            }));
        }
    }
}
