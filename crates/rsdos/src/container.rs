//! [`Container`]: one object store folder.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rsdos_core::{
    ContainerConfig, Error, ErrorKind, ObjectCount, ObjectIndex, ObjectIndexExt, ObjectMeta,
    PackStore, PackedLocation, Result, TotalSize, durable,
};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_local::LocalPackStore;

use crate::layout::Layout;
use crate::lock::MaintenanceLock;
use crate::loose::LooseStore;
use crate::maintenance::remote_sync::RemoteState;
use crate::options::{InitOptions, OpenOptions, PackWriteOptions};
use crate::pack_writer::PackWriter;
use crate::read_many::ManyReader;
use crate::reader::{ObjectReader, StoredSource};
use crate::remote::PacksLocation;

/// Packed objects up to this size are read with one positioned read when opened.
const READ_WHOLE_MAX: u64 = 256 * 1024;

/// How long maintenance operations wait for the maintenance lock by default.
pub(crate) const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

struct Inner {
    layout: Layout,
    config: ContainerConfig,
    index: Arc<dyn ObjectIndex>,
    packs: Arc<dyn PackStore>,
    loose: LooseStore,
    /// First pack id worth checking when choosing a pack to append to.
    pack_id_hint: AtomicU64,
    /// The remote copy, for a container whose packs live in remote storage.
    remote: Option<RemoteState>,
}

/// A content-addressed object store in one folder, in disk-objectstore's layout.
///
/// Cheap to clone (clones share one state) and `Send + Sync`: use it from many threads at
/// once. Many processes may use the same folder: loose writes need no coordination, and
/// operations that write packs take the container's [`MaintenanceLock`].
///
/// Every method that takes a hashkey validates it first ([`HashType::validate`](rsdos_core::HashType::validate)).
#[derive(Clone)]
pub struct Container {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("path", &self.inner.layout.root)
            .field("index", &self.inner.index)
            .field("packs", &self.inner.packs.describe())
            .finish()
    }
}

impl Container {
    /// Creates a new container in `path` (which may exist but must be empty) and opens it.
    ///
    /// The folders, the index and lastly `config.json` are written, so that an interrupted
    /// init never leaves something that looks like a container.
    pub fn init(path: &Path, options: &InitOptions) -> Result<Container> {
        let config = ContainerConfig::new(
            options.loose_prefix_len,
            options.pack_size_target,
            options.hash_type,
            options.compression_algorithm,
        );
        config.validate()?;
        let layout = Layout::new(path);
        match std::fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    let detail = if Self::is_initialised(path) {
                        "already a container".to_string()
                    } else {
                        "the folder is not empty; a container must be created in an empty or new folder"
                            .to_string()
                    };
                    return Err(Error::AlreadyExists {
                        path: path.to_path_buf(),
                        detail,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(path).map_err(|e| Error::io("create folder", path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(Error::AlreadyExists {
                    path: path.to_path_buf(),
                    detail: "a file, not a folder".into(),
                });
            }
            Err(e) => return Err(Error::io("list", path, e)),
        }
        for dir in [
            layout.loose(),
            layout.packs(),
            layout.sandbox(),
            layout.duplicates(),
        ] {
            std::fs::create_dir(&dir).map_err(|e| Error::io("create folder", &dir, e))?;
        }
        SqliteIndex::create(&layout.index())?;
        if let Some(packs) = &options.packs {
            // config.json is written last locally, so a failure here leaves no container.
            if let Err(e) = Self::init_remote(&layout, &config, packs, options.store_credentials) {
                // The folder was empty or new: leave it so, and a corrected init can run.
                let _ = std::fs::remove_file(layout.root.join(crate::remote::PACKS_SETTING_FILE));
                for dir in [
                    layout.loose(),
                    layout.packs(),
                    layout.sandbox(),
                    layout.duplicates(),
                ] {
                    let _ = std::fs::remove_dir_all(dir);
                }
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = layout.index().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
            durable::write_atomic(&layout.config(), config.to_json().as_bytes())?;
            let mut open = OpenOptions::default();
            for (k, v) in packs.options().iter() {
                open = open.with_packs_option(k, v);
            }
            return Self::open_with(path, &open);
        }
        durable::write_atomic(&layout.config(), config.to_json().as_bytes())?;
        Self::open(path)
    }

    /// Checks that the remote holds no container yet, records the setting and uploads
    /// `config.json` there (so a clone can start from the remote alone).
    fn init_remote(
        layout: &Layout,
        config: &ContainerConfig,
        packs: &PacksLocation,
        store_credentials: bool,
    ) -> Result<()> {
        let store = packs.open_store(&layout.packs(), &Default::default())?;
        if store
            .mirror
            .get_meta(crate::maintenance::remote_sync::REMOTE_CONFIG)?
            .is_some()
            || !store.mirror.uploaded()?.is_empty()
        {
            return Err(Error::AlreadyExists {
                path: packs.display_url().into(),
                detail: "the remote already holds the packs of a container; use `rsdos clone` \
                         to make a local container of it, or choose another prefix"
                    .into(),
            });
        }
        packs.write(&layout.root, store_credentials)?;
        store.mirror.put_meta(
            crate::maintenance::remote_sync::REMOTE_CONFIG,
            config.to_json().as_bytes(),
        )
    }

    /// True if `path` holds a container: a parsable `config.json` and the four folders
    /// (disk-objectstore's test; `packs.idx` is created on open when missing).
    pub fn is_initialised(path: &Path) -> bool {
        let layout = Layout::new(path);
        ContainerConfig::read(&layout.config()).is_ok()
            && [
                layout.loose(),
                layout.packs(),
                layout.sandbox(),
                layout.duplicates(),
            ]
            .iter()
            .all(|d| d.is_dir())
    }

    /// Opens an existing container with default options.
    pub fn open(path: &Path) -> Result<Container> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens an existing container with the SQLite index and its pack storage: the local pack
    /// folder, or the remote storage named in `rsdos-packs.json` (see [`PacksLocation`]) with
    /// `packs/` as the staging folder of the packs being written.
    pub fn open_with(path: &Path, options: &OpenOptions) -> Result<Container> {
        let layout = Layout::new(path);
        let config = Self::read_config(&layout)?;
        let index_path = layout.index();
        let (packs, remote): (Arc<dyn PackStore>, _) = match PacksLocation::read(path)? {
            Some(location) => {
                let store = location.open_store(&layout.packs(), &options.packs_options)?;
                (store.packs, Some(RemoteState::new(store.mirror)))
            }
            None => (
                Arc::new(LocalPackStore::new(&layout.packs(), options.max_open_packs)),
                None,
            ),
        };
        let index = if index_path.exists() {
            SqliteIndex::open(&index_path)?
        } else if packs.list()?.is_empty() {
            // disk-objectstore creates the schema on first use, so a container may lack it.
            SqliteIndex::create(&index_path)?
        } else {
            // An empty index next to pack files would hide every packed object.
            return Err(Error::corrupt(
                "index",
                index_path.display().to_string(),
                "the pack index is missing but pack files exist; run `rsdos rebuild-index` to \
                 recreate it from the packs' sidecars",
            ));
        };
        Ok(Self::assemble(
            layout,
            config,
            Arc::new(index),
            packs,
            remote,
        ))
    }

    /// Opens an existing container whose index and packs live in the given implementations
    /// (the config and loose objects are always in the folder).
    pub fn open_with_storage(
        path: &Path,
        index: Arc<dyn ObjectIndex>,
        packs: Arc<dyn PackStore>,
    ) -> Result<Container> {
        let layout = Layout::new(path);
        let config = Self::read_config(&layout)?;
        Ok(Self::assemble(layout, config, index, packs, None))
    }

    /// As [`open_with_storage`](Self::open_with_storage) for packs in remote storage:
    /// `mirror` (usually the same object as `packs`) receives the index snapshots after each
    /// seal, and failed uploads are retried as for a container opened from
    /// `rsdos-packs.json`. The index must be the folder's `packs.idx` for snapshots to work,
    /// and `mirror.staging_dir()` should be the container's `packs/` folder.
    pub fn open_with_remote_storage(
        path: &Path,
        index: Arc<dyn ObjectIndex>,
        packs: Arc<dyn PackStore>,
        mirror: Arc<dyn rsdos_core::RemoteMirror>,
    ) -> Result<Container> {
        let layout = Layout::new(path);
        let config = Self::read_config(&layout)?;
        Ok(Self::assemble(
            layout,
            config,
            index,
            packs,
            Some(RemoteState::new(mirror)),
        ))
    }

    fn read_config(layout: &Layout) -> Result<ContainerConfig> {
        let root = &layout.root;
        if !root.is_dir() {
            return Err(Error::NotInitialised {
                path: root.clone(),
                detail: "the folder does not exist".into(),
            });
        }
        if !layout.config().exists() {
            return Err(Error::NotInitialised {
                path: root.clone(),
                detail: "there is no config.json".into(),
            });
        }
        let config = ContainerConfig::read(&layout.config())?;
        let missing: Vec<String> = [
            layout.loose(),
            layout.packs(),
            layout.sandbox(),
            layout.duplicates(),
        ]
        .iter()
        .filter(|d| !d.is_dir())
        .map(|d| {
            d.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
        if !missing.is_empty() {
            return Err(Error::NotInitialised {
                path: root.clone(),
                detail: format!("missing folder(s): {}", missing.join(", ")),
            });
        }
        Ok(config)
    }

    fn assemble(
        layout: Layout,
        config: ContainerConfig,
        index: Arc<dyn ObjectIndex>,
        packs: Arc<dyn PackStore>,
        remote: Option<RemoteState>,
    ) -> Container {
        let loose = LooseStore::new(
            layout.loose(),
            layout.sandbox(),
            config.loose_prefix_len,
            config.hash_type,
        );
        Container {
            inner: Arc::new(Inner {
                layout,
                config,
                index,
                packs,
                loose,
                pack_id_hint: AtomicU64::new(0),
                remote,
            }),
        }
    }

    /// The container folder.
    pub fn path(&self) -> &Path {
        &self.inner.layout.root
    }

    /// The configuration read from `config.json`.
    pub fn config(&self) -> &ContainerConfig {
        &self.inner.config
    }

    /// The index of packed objects.
    pub fn index(&self) -> &dyn ObjectIndex {
        self.inner.index.as_ref()
    }

    /// The pack storage.
    pub fn packs(&self) -> &dyn PackStore {
        self.inner.packs.as_ref()
    }

    pub(crate) fn packs_arc(&self) -> &Arc<dyn PackStore> {
        &self.inner.packs
    }

    pub(crate) fn remote_state(&self) -> Option<&RemoteState> {
        self.inner.remote.as_ref()
    }

    pub(crate) fn loose_store(&self) -> &LooseStore {
        &self.inner.loose
    }

    pub(crate) fn pack_id_hint(&self) -> u64 {
        self.inner.pack_id_hint.load(Ordering::Relaxed)
    }

    pub(crate) fn set_pack_id_hint(&self, id: u64) {
        self.inner.pack_id_hint.store(id, Ordering::Relaxed);
    }

    /// Path of the loose file an object has or would have.
    pub fn loose_path(&self, hashkey: &str) -> Result<PathBuf> {
        self.validate_key(hashkey)?;
        Ok(self.inner.loose.path_of(hashkey))
    }

    /// Takes the maintenance lock, waiting up to `timeout` for another holder.
    pub fn lock_maintenance(&self, timeout: Option<Duration>) -> Result<MaintenanceLock> {
        MaintenanceLock::acquire(&self.inner.layout.maintenance_lock(), timeout)
    }

    pub(crate) fn maintenance_lock(&self) -> Result<MaintenanceLock> {
        self.lock_maintenance(Some(DEFAULT_LOCK_WAIT))
    }

    /// Checks a hashkey against the container's hash type.
    pub fn validate_key(&self, hashkey: &str) -> Result<()> {
        self.inner.config.hash_type.validate(hashkey)
    }

    // ---- writing -------------------------------------------------------------------------

    /// Stores `data` as a loose object and returns its hashkey; durable on return.
    pub fn add_object(&self, data: &[u8]) -> Result<String> {
        self.add_stream(&mut std::io::Cursor::new(data))
    }

    /// Stores everything `reader` yields as a loose object (streamed through `sandbox/` in
    /// bounded memory) and returns its hashkey; durable on return. Content that is already
    /// present (loose or packed) is not written again.
    pub fn add_stream(&self, reader: &mut dyn Read) -> Result<String> {
        self.inner.loose.write(reader, self.index())
    }

    /// Writes many objects straight into packs and returns one hashkey per input, in input
    /// order (duplicates included). Each pack's bytes are fsynced (unless turned off) before
    /// its rows are committed in one transaction. Content already packed, or repeated in the
    /// input, is stored once. Objects are streamed: memory stays bounded for any size.
    ///
    /// Takes the maintenance lock for the duration. Once a pack has 2,048 new rows, the
    /// index's write lock is held until that pack commits (its rows are inserted on a helper
    /// thread meanwhile): other processes keep reading, but another writer of `packs.idx`
    /// (disk-objectstore packing at the same time, which its concurrency rules forbid)
    /// waits. If an input fails to read, the objects before it are committed and the error
    /// is returned.
    pub fn add_many_to_pack<I, R>(
        &self,
        objects: I,
        options: &PackWriteOptions,
    ) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = R>,
        R: Read,
    {
        let mut writer = PackWriter::new(self, options.compress, options.fsync)?;
        let mut keys = Vec::new();
        for mut object in objects {
            match writer.add(&mut object) {
                Ok(k) => keys.push(k),
                Err(e) => {
                    writer.finish()?;
                    return Err(e);
                }
            }
        }
        writer.finish()?;
        Ok(keys)
    }

    /// Writes one object straight into a pack (see [`Container::add_many_to_pack`]).
    pub fn add_stream_to_pack(
        &self,
        reader: &mut dyn Read,
        options: &PackWriteOptions,
    ) -> Result<String> {
        let mut keys = self.add_many_to_pack(std::iter::once(reader), options)?;
        keys.pop()
            .ok_or_else(|| Error::InvalidArgument("BUG: no key for the object written".into()))
    }

    // ---- reading -------------------------------------------------------------------------

    /// Opens an object for streaming. A miss is retried once with a fresh lookup, so an object
    /// packed, cleaned or repacked by another process meanwhile is still found.
    pub fn open_object(&self, hashkey: &str) -> Result<ObjectReader> {
        self.validate_key(hashkey)?;
        for _ in 0..2 {
            if let Some(location) = self.index().get(hashkey)? {
                match self.open_packed(hashkey, location) {
                    Ok(r) => return Ok(r),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            if let Some((file, size)) = self.inner.loose.open(hashkey)? {
                return Ok(ObjectReader::loose(hashkey.to_string(), file, size));
            }
        }
        Err(Error::NotFound {
            hashkey: hashkey.to_string(),
        })
    }

    fn open_packed(&self, hashkey: &str, location: PackedLocation) -> Result<ObjectReader> {
        let meta = ObjectMeta::packed(location);
        let source = if location.length <= READ_WHOLE_MAX {
            let mut buf = vec![0u8; location.length as usize];
            self.packs()
                .read_at(location.pack_id, location.offset, &mut buf)?;
            let len = buf.len();
            StoredSource::Memory {
                buf: Arc::new(buf),
                start: 0,
                len,
            }
        } else {
            // An absent pack is `PackNotFound` from `open_range` itself, without a length
            // request first (a HEAD on object storage).
            StoredSource::pack(
                self.packs(),
                location.pack_id,
                location.offset,
                location.length,
            )?
        };
        ObjectReader::stored(hashkey.to_string(), meta, source)
    }

    /// The whole content of an object.
    pub fn get_object(&self, hashkey: &str) -> Result<Vec<u8>> {
        let mut reader = self.open_object(hashkey)?;
        reader.read_all().map_err(|e| read_error(hashkey, e))
    }

    /// Streams many objects in storage order (see [`ManyReader`]). With `skip_if_missing`,
    /// missing objects are left out; otherwise they come last with no reader.
    pub fn read_many<I, S>(&self, hashkeys: I, skip_if_missing: bool) -> Result<ManyReader>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // The keys are only borrowed while the read is planned: the plan owns the hashkeys of
        // the index rows it found and copies only the keys that are not packed (a bulk read
        // whose keys are all packed copies none of them here).
        let keys: Vec<S> = hashkeys.into_iter().collect();
        for k in &keys {
            self.validate_key(k.as_ref())?;
        }
        ManyReader::new(self.clone(), &keys, skip_if_missing)
    }

    /// [`read_many`](Container::read_many) of the hashkeys that are the lines of `text`
    /// (separated by `\n`, with no newline after the last, so that the empty text is one
    /// empty key), as `git cat-file --batch` takes them: a caller holding its keys in another
    /// language hands them over in one allocation (the Python module's bulk reads do).
    pub fn read_many_lines(&self, text: &str, skip_if_missing: bool) -> Result<ManyReader> {
        self.read_many(text.split('\n'), skip_if_missing)
    }

    /// The contents of many objects; missing ones are left out with `skip_if_missing`, else
    /// mapped to `None`.
    pub fn get_many<I, S>(
        &self,
        hashkeys: I,
        skip_if_missing: bool,
    ) -> Result<HashMap<String, Option<Vec<u8>>>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = HashMap::new();
        for item in self.read_many(hashkeys, skip_if_missing)? {
            let item = item?;
            let content = match item.reader {
                Some(mut r) => Some(r.read_all().map_err(|e| read_error(&item.hashkey, e))?),
                None => None,
            };
            out.insert(item.hashkey, content);
        }
        Ok(out)
    }

    /// Metadata of one object (type `Missing` if it does not exist), without reading data.
    pub fn meta(&self, hashkey: &str) -> Result<ObjectMeta> {
        self.validate_key(hashkey)?;
        for _ in 0..2 {
            if let Some(location) = self.index().get(hashkey)? {
                return Ok(ObjectMeta::packed(location));
            }
            if let Some(size) = self.inner.loose.size(hashkey)? {
                return Ok(ObjectMeta::loose(size));
            }
        }
        Ok(ObjectMeta::missing())
    }

    /// Metadata of many objects, one per input in input order, with batched index lookups.
    pub fn meta_many<I, S>(&self, hashkeys: I) -> Result<Vec<(String, ObjectMeta)>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = self.collect_keys(hashkeys)?;
        let packed = self.packed_locations(&keys)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let meta = match packed.get(&key) {
                Some(l) => ObjectMeta::packed(*l),
                None => self.meta(&key)?,
            };
            out.push((key, meta));
        }
        Ok(out)
    }

    /// True if the object exists (loose or packed).
    pub fn has(&self, hashkey: &str) -> Result<bool> {
        Ok(self.meta(hashkey)?.object_type != rsdos_core::ObjectType::Missing)
    }

    /// Existence of many objects, one boolean per input in input order.
    pub fn has_many<I, S>(&self, hashkeys: I) -> Result<Vec<bool>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(self
            .meta_many(hashkeys)?
            .into_iter()
            .map(|(_, m)| m.object_type != rsdos_core::ObjectType::Missing)
            .collect())
    }

    fn collect_keys<I, S>(&self, hashkeys: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        hashkeys
            .into_iter()
            .map(|k| {
                let k = k.as_ref();
                self.validate_key(k).map(|()| k.to_string())
            })
            .collect()
    }

    fn packed_locations(&self, keys: &[String]) -> Result<HashMap<String, PackedLocation>> {
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        Ok(self
            .index()
            .get_many(&refs)?
            .into_iter()
            .map(|e| (e.hashkey, e.location))
            .collect())
    }

    // ---- statistics and listing ----------------------------------------------------------

    /// Counts of loose objects, packed objects and pack files.
    pub fn count(&self) -> Result<ObjectCount> {
        // The loose folders are listed before the index is read, here and in `total_size`:
        // an object packed and cleaned meanwhile is then counted twice, never missed. (Doing
        // both at once on two threads saved 1-2 ms of 10 and could miss it; dropped. The
        // loose folders alone are listed on two threads.)
        let loose = self.sum_over_loose(|_| Ok(1))?;
        Ok(ObjectCount {
            packed: self.index().totals()?.count,
            loose,
            pack_files: self.packs().list()?.len() as u64,
        })
    }

    /// The five size figures of disk-objectstore's `get_total_size`.
    pub fn total_size(&self) -> Result<TotalSize> {
        let loose = self.sum_over_loose(|entry| {
            let path = entry.path();
            match std::fs::metadata(&path) {
                Ok(m) => Ok(m.len()),
                // Packed and cleaned while we listed: not loose any more.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(Error::io("stat", path, e)),
            }
        })?;
        let totals = self.index().totals()?;
        let mut packfiles = 0u64;
        for id in self.packs().list()? {
            packfiles += self.packs().len(id)?.unwrap_or(0);
        }
        Ok(TotalSize {
            total_size_packed: totals.size,
            total_size_packed_on_disk: totals.length,
            total_size_packfiles_on_disk: packfiles,
            total_size_packindexes_on_disk: self.index().size_on_disk()?,
            total_size_loose: loose,
        })
    }

    /// The sum of `value` over the loose objects, their shard folders listed on two threads.
    fn sum_over_loose(
        &self,
        value: impl Fn(&std::fs::DirEntry) -> Result<u64> + Sync,
    ) -> Result<u64> {
        Ok(self
            .inner
            .loose
            .fold_on_two_threads(
                || 0u64,
                |sum, _, entry| {
                    *sum += value(entry)?;
                    Ok(())
                },
            )?
            .into_iter()
            .sum())
    }

    /// Every hashkey in the container, each once: packed ones in ascending order, then the
    /// loose-only ones. The loose folder is listed first (so an object packed and cleaned
    /// while the listing runs is still listed, from the index); the index is read in pages.
    pub fn iter_hashkeys(&self) -> Result<impl Iterator<Item = Result<String>> + Send + 'static> {
        let mut parts = self
            .inner
            .loose
            .fold_on_two_threads(HashSet::new, |set, k, _| {
                set.insert(k);
                Ok(())
            })?;
        // The smaller sets go into the largest.
        parts.sort_unstable_by_key(|set| std::cmp::Reverse(set.len()));
        let mut parts = parts.into_iter();
        let mut loose: HashSet<String> = parts.next().unwrap_or_default();
        for part in parts {
            loose.extend(part);
        }
        let container = self.clone();
        let mut last: Option<String> = None;
        let mut page: std::vec::IntoIter<String> = Vec::new().into_iter();
        let mut index_done = false;
        let mut leftovers: Option<std::vec::IntoIter<String>> = None;
        Ok(std::iter::from_fn(move || {
            loop {
                if let Some(rest) = leftovers.as_mut() {
                    return rest.next().map(Ok);
                }
                if let Some(k) = page.next() {
                    loose.remove(&k);
                    last = Some(k.clone());
                    return Some(Ok(k));
                }
                if index_done {
                    let mut rest: Vec<String> = loose.drain().collect();
                    rest.sort_unstable();
                    leftovers = Some(rest.into_iter());
                    continue;
                }
                const PAGE: usize = 10_000;
                match container.index().hashkeys_page(last.as_deref(), PAGE) {
                    Ok(p) => {
                        index_done = p.len() < PAGE;
                        page = p.into_iter();
                    }
                    Err(e) => {
                        index_done = true;
                        return Some(Err(e));
                    }
                }
            }
        }))
    }

    /// Number of rows of one pack, via the index (for tests and status).
    pub fn pack_object_count(&self, pack_id: u64) -> Result<u64> {
        let mut n = 0;
        for e in self.index().iter_pack(pack_id, 10_000) {
            e?;
            n += 1;
        }
        Ok(n)
    }

    // ---- deleting ------------------------------------------------------------------------

    /// Deletes objects: their loose files, their `duplicates/` copies, and their index rows in
    /// one transaction (packed bytes stay in the pack until a repack). Returns the hashkeys
    /// that existed, in input order; unknown hashkeys are ignored. Takes the maintenance lock.
    pub fn delete<I, S>(&self, hashkeys: I) -> Result<Vec<String>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let keys = self.collect_keys(hashkeys)?;
        let _lock = self.maintenance_lock()?;
        let mut duplicates: HashMap<String, Vec<PathBuf>> = HashMap::new();
        let dup_dir = self.inner.layout.duplicates();
        if let Ok(entries) = std::fs::read_dir(&dup_dir) {
            for entry in entries.flatten() {
                if let Some((prefix, _)) =
                    entry.file_name().to_str().and_then(|n| n.split_once('.'))
                {
                    duplicates
                        .entry(prefix.to_string())
                        .or_default()
                        .push(entry.path());
                }
            }
        }
        let mut existed: HashSet<String> = HashSet::new();
        for key in &keys {
            for dup in duplicates.remove(key).unwrap_or_default() {
                if let Err(e) = std::fs::remove_file(&dup)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(Error::io("delete duplicate", dup, e));
                }
            }
            if self.inner.loose.delete(key)? {
                existed.insert(key.clone());
            }
        }
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let locations = self.index().get_many(&refs)?;
        existed.extend(self.index().delete(&refs)?);
        // Sealed packs describe their objects in a sidecar; drop the deleted ones from it,
        // so that a rebuilt index does not bring them back.
        let mut by_pack: HashMap<u64, HashSet<String>> = HashMap::new();
        for e in locations {
            by_pack
                .entry(e.location.pack_id)
                .or_default()
                .insert(e.hashkey);
        }
        for (pack_id, gone) in by_pack {
            if let Some(mut toc) = self.pack_toc(pack_id).ok().flatten() {
                toc.entries.retain(|t| !gone.contains(&t.hashkey));
                self.packs().seal(pack_id, &toc.encode())?;
            }
        }
        self.index_changed();
        let mut seen = HashSet::new();
        Ok(keys
            .into_iter()
            .filter(|k| existed.contains(k) && seen.insert(k.clone()))
            .collect())
    }
}

fn read_error(hashkey: &str, e: std::io::Error) -> Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<Error>() {
            Ok(err) => *err,
            Err(other) => Error::corrupt("object", hashkey.to_string(), other.to_string()),
        },
        None => Error::corrupt("object", hashkey.to_string(), "read failed"),
    }
}
