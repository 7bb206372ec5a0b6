//! Reading many objects at once, in the order that is cheapest for the storage.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rsdos_core::{ErrorKind, ObjectMeta, PackId, PackedEntry, Result};

use crate::container::Container;
use crate::reader::{ObjectReader, StoredSource};

/// Neighbouring packed objects are read together in windows of up to this many bytes.
const WINDOW_MAX: u64 = 1024 * 1024;
/// A gap between two objects larger than this starts a new window (holes are not read).
const WINDOW_GAP_MAX: u64 = 64 * 1024;
/// On stores that read in parallel, the windows of one pack are fetched in tasks of up to this
/// many bytes (one `read_ranges` call each, which object storage merges into about one request)
/// and a batch holds about `read_parallelism()` tasks: large enough that a request's round
/// trip is small beside its transfer, small enough that a batch (all a bulk read holds in
/// memory besides the readers handed out) stays at tens of MiB.
const TASK_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// A unit of work of a batch, in iteration order.
enum Work {
    /// Windows of one pack, read with one `read_ranges` call: each window's start, length and
    /// the entries it holds.
    Windows {
        pack_id: PackId,
        bytes: u64,
        windows: Vec<(u64, usize, Vec<PackedEntry>)>,
    },
    /// An object larger than a window, streamed through a pinned handle.
    Stream(PackedEntry),
}

/// A unit of work and what reading it gave (`None` for a stream, opened when its turn comes).
struct Fetched {
    work: Work,
    result: Option<Result<Vec<Vec<u8>>>>,
}

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
/// neighbouring objects fetched in one read of up to 1 MiB (on stores with
/// [`read_parallelism`](rsdos_core::PackStore::read_parallelism) above 1, object storage, the
/// windows of several packs are fetched at once through
/// [`read_ranges`](rsdos_core::PackStore::read_ranges), a batch of about `read_parallelism` x
/// 4 MiB at a time, and still come out in this order); then loose objects; then objects
/// that moved while the iteration ran (packed, or repacked, meanwhile: looked up once more);
/// last, when `skip_if_missing` is false, the missing ones. Each distinct hashkey is yielded
/// once. Each reader owns what it reads from, so readers stay valid after the iterator
/// advances; open files stay bounded by the container's handle cache.
pub struct ManyReader {
    container: Container,
    skip_if_missing: bool,
    packs: VecDeque<Vec<PackedEntry>>,
    fetched: VecDeque<Fetched>,
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
    pub(crate) fn new<S: AsRef<str>>(
        container: Container,
        hashkeys: &[S],
        skip_if_missing: bool,
    ) -> Result<Self> {
        let mut reader = ManyReader {
            container,
            skip_if_missing,
            packs: VecDeque::new(),
            fetched: VecDeque::new(),
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
    fn plan<S: AsRef<str>>(
        &self,
        hashkeys: &[S],
    ) -> Result<(VecDeque<Vec<PackedEntry>>, Vec<String>)> {
        let refs: Vec<&str> = hashkeys.iter().map(AsRef::as_ref).collect();
        // The index answers each distinct key once, however often it was asked.
        let mut entries = self.container.index().get_many(&refs)?;
        entries.sort_unstable_by(|a, b| {
            (a.location.pack_id, a.location.offset).cmp(&(b.location.pack_id, b.location.offset))
        });
        // The index answers only keys asked for, each once: as many answers as keys means every
        // key is packed (and none repeated), and the set below (a cache miss per key) is not
        // needed.
        let mut not_packed: Vec<String> = if entries.len() == hashkeys.len() {
            Vec::new()
        } else {
            let mut done: foldhash::HashSet<&str> =
                entries.iter().map(|e| e.hashkey.as_str()).collect();
            refs.iter()
                .filter(|k| done.insert(**k))
                .map(|k| (*k).to_string())
                .collect()
        };
        // Loose files in name order: one shard folder after the other.
        not_packed.sort_unstable();
        let mut groups: VecDeque<Vec<PackedEntry>> = VecDeque::new();
        for e in entries {
            match groups.back_mut() {
                Some(g) if g[0].location.pack_id == e.location.pack_id => g.push(e),
                _ => groups.push_back(vec![e]),
            }
        }
        Ok((groups, not_packed))
    }

    /// The next window of the front pack group without taking it: how many entries, and the
    /// byte range they span. `None` when no group is left (empty groups are dropped).
    fn peek_window(&mut self) -> Option<(usize, u64, u64)> {
        while self.packs.front().is_some_and(|g| g.is_empty()) {
            self.packs.pop_front();
        }
        let group = self.packs.front()?;
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
        Some((take, start, end))
    }

    /// The next batch of work, in iteration order. A store that reads one request at a time
    /// gets one window (the fast path for local packs: one `pread` per window); one with
    /// `read_parallelism() > 1` gets up to that many tasks of up to [`TASK_BYTES_MAX`] each, of
    /// one pack each, to fetch at once, so memory stays at about `parallelism` tasks.
    fn plan_batch(&mut self) -> Vec<Work> {
        let parallelism = self.container.packs().read_parallelism().max(1);
        let mut works: Vec<Work> = Vec::new();
        let mut batch_bytes = 0u64;
        while let Some((take, start, end)) = self.peek_window() {
            let Some(group) = self.packs.front_mut() else {
                break;
            };
            let pack_id = group[0].location.pack_id;
            let bytes = end - start;
            let big = take == 1 && group[0].location.length > WINDOW_MAX;
            let joins_last = !big
                && matches!(works.last(), Some(Work::Windows { pack_id: p, bytes: b, .. })
                    if *p == pack_id && b + bytes <= TASK_BYTES_MAX);
            if !works.is_empty() && !joins_last && works.len() >= parallelism {
                break;
            }
            let entries: Vec<PackedEntry> = group.drain(..take).collect();
            if big {
                if let Some(e) = entries.into_iter().next() {
                    works.push(Work::Stream(e));
                }
            } else {
                let window = (start, bytes as usize, entries);
                match works.last_mut() {
                    Some(Work::Windows {
                        windows, bytes: b, ..
                    }) if joins_last => {
                        *b += bytes;
                        windows.push(window);
                    }
                    _ => works.push(Work::Windows {
                        pack_id,
                        bytes,
                        windows: vec![window],
                    }),
                }
                batch_bytes += bytes;
            }
            if parallelism == 1 || batch_bytes >= parallelism as u64 * TASK_BYTES_MAX {
                break;
            }
        }
        works
    }

    /// Fetches the windows of a batch: inline for one task, else on up to
    /// `read_parallelism()` scoped threads taking tasks in turn.
    fn fetch(&self, works: Vec<Work>) -> VecDeque<Fetched> {
        let store = self.container.packs();
        let read = |w: &Work| match w {
            Work::Windows {
                pack_id, windows, ..
            } => {
                let ranges: Vec<(u64, usize)> = windows.iter().map(|w| (w.0, w.1)).collect();
                Some(store.read_ranges(*pack_id, &ranges))
            }
            Work::Stream(_) => None,
        };
        let tasks = works
            .iter()
            .filter(|w| matches!(w, Work::Windows { .. }))
            .count();
        let threads = store.read_parallelism().max(1).min(tasks);
        let mut results: Vec<Option<Result<Vec<Vec<u8>>>>> = Vec::with_capacity(works.len());
        if threads <= 1 {
            results.extend(works.iter().map(read));
        } else {
            let next = AtomicUsize::new(0);
            let mut slots: Vec<Option<Result<Vec<Vec<u8>>>>> =
                std::iter::repeat_with(|| None).take(works.len()).collect();
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..threads)
                    .map(|_| {
                        scope.spawn(|| {
                            let mut done = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                let Some(w) = works.get(i) else { break };
                                done.push((i, read(w)));
                            }
                            done
                        })
                    })
                    .collect();
                for worker in workers {
                    match worker.join() {
                        Ok(done) => {
                            for (i, r) in done {
                                slots[i] = r;
                            }
                        }
                        // A panicking store: let it surface here, as it would inline.
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
            });
            results = slots;
        }
        works
            .into_iter()
            .zip(results)
            .map(|(work, result)| Fetched { work, result })
            .collect()
    }

    /// Turns the next fetched task into ready items (reading at most one pack when a big
    /// object is streamed); `None` when all pack groups are done.
    fn fill_from_packs(&mut self) -> Option<Result<()>> {
        if self.fetched.is_empty() {
            let works = self.plan_batch();
            if works.is_empty() {
                return None;
            }
            self.fetched = self.fetch(works);
        }
        let Fetched { work, result } = self.fetched.pop_front()?;
        let store = Arc::clone(self.container.packs_arc());
        match (work, result) {
            (Work::Stream(e), _) => {
                let l = e.location;
                match StoredSource::pack(store.as_ref(), l.pack_id, l.offset, l.length) {
                    Ok(source) => Some(self.push_stored(e, source)),
                    Err(err) if err.kind() == ErrorKind::NotFound => {
                        // Repacked meanwhile: look it up again at the end.
                        self.retry.push(e.hashkey);
                        Some(Ok(()))
                    }
                    Err(err) => Some(Err(err)),
                }
            }
            (Work::Windows { windows, .. }, Some(Ok(bufs))) => {
                for ((start, _, entries), buf) in windows.into_iter().zip(bufs) {
                    let buf = Arc::new(buf);
                    for e in entries {
                        let source = StoredSource::Memory {
                            buf: Arc::clone(&buf),
                            start: (e.location.offset - start) as usize,
                            len: e.location.length as usize,
                        };
                        if let Err(err) = self.push_stored(e, source) {
                            return Some(Err(err));
                        }
                    }
                }
                Some(Ok(()))
            }
            (
                Work::Windows {
                    pack_id, windows, ..
                },
                Some(Err(e)),
            ) if e.kind() == ErrorKind::NotFound => {
                // Repacked meanwhile: look these, and the rest of the pack, up again at the end.
                for (_, _, entries) in windows {
                    self.retry.extend(entries.into_iter().map(|e| e.hashkey));
                }
                if self
                    .packs
                    .front()
                    .is_some_and(|g| g.first().is_some_and(|e| e.location.pack_id == pack_id))
                {
                    let rest = self.packs.pop_front().unwrap_or_default();
                    self.retry.extend(rest.into_iter().map(|e| e.hashkey));
                }
                Some(Ok(()))
            }
            (Work::Windows { .. }, Some(Err(e))) => Some(Err(e)),
            (Work::Windows { pack_id, .. }, None) => Some(Err(rsdos_core::Error::InvalidArgument(
                format!("BUG: no read result for pack {pack_id}"),
            ))),
        }
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
        let (packs, loose) = self.plan(&keys)?;
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
