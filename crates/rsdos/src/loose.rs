//! Loose objects: one file per object under `loose/`, written through `sandbox/`.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
#[cfg(target_os = "linux")]
use std::sync::Arc;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};

use rsdos_core::{EarlyWriteback, Error, HashType, ObjectIndex, Result, durable};
#[cfg(target_os = "linux")]
use rustix::fs::{Mode, OFlags};

use crate::hashing::{StreamHasher, read_up_to};

thread_local! {
    /// Copy buffer of loose writes, reused so that a write allocates nothing per object.
    static COPY_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 256 * 1024]);
}

/// The loose-object folder of one container.
#[derive(Debug, Clone)]
pub(crate) struct LooseStore {
    dir: PathBuf,
    sandbox: PathBuf,
    prefix_len: usize,
    hash_type: HashType,
    /// Whether reads still open with `O_NOATIME`: cleared by the first file that refuses it.
    #[cfg(target_os = "linux")]
    noatime: Arc<AtomicBool>,
}

impl LooseStore {
    pub(crate) fn new(
        dir: PathBuf,
        sandbox: PathBuf,
        prefix_len: usize,
        hash_type: HashType,
    ) -> Self {
        LooseStore {
            dir,
            sandbox,
            prefix_len,
            hash_type,
            #[cfg(target_os = "linux")]
            noatime: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Path of a (validated) hashkey: `loose/<key[:n]>/<key[n:]>`, or `loose/<key>` for n = 0.
    pub(crate) fn path_of(&self, hashkey: &str) -> PathBuf {
        if self.prefix_len == 0 {
            self.dir.join(hashkey)
        } else {
            self.dir
                .join(&hashkey[..self.prefix_len])
                .join(&hashkey[self.prefix_len..])
        }
    }

    /// Size of the loose file of `hashkey`, if there is one.
    pub(crate) fn size(&self, hashkey: &str) -> Result<Option<u64>> {
        let path = self.path_of(hashkey);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat loose object", path, e)),
        }
    }

    /// Opens the loose file of `hashkey` with its size, if there is one.
    pub(crate) fn open(&self, hashkey: &str) -> Result<Option<(File, u64)>> {
        let path = self.path_of(hashkey);
        #[cfg(target_os = "linux")]
        let opened = self.open_noatime(|flags| rustix::fs::open(&path, flags, Mode::empty()));
        #[cfg(not(target_os = "linux"))]
        let opened = File::open(&path);
        self.with_size(hashkey, opened)
    }

    /// An opened loose file with its size; `None` if it does not exist.
    fn with_size(
        &self,
        hashkey: &str,
        opened: std::io::Result<File>,
    ) -> Result<Option<(File, u64)>> {
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open loose object", self.path_of(hashkey), e)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat loose object", self.path_of(hashkey), e))?
            .len();
        Ok(Some((file, len)))
    }

    /// Opens a loose file for reading through `open` (given the flags), with `O_NOATIME`
    /// while the store allows it.
    ///
    /// Why: loose files are read soon after they were written (packing, validation), and
    /// under `relatime` that first read updates the access time, which dirties the inode: in a
    /// profile of packing 100,000 loose objects, 10 % of the reading threads' time, and as
    /// many inode writes for the disk later. Nothing reads the access times of objects.
    /// Linux refuses the flag (`EPERM`) on files of another user unless the process has
    /// `CAP_FOWNER`; after the first refusal this store opens without it.
    #[cfg(target_os = "linux")]
    fn open_noatime(
        &self,
        open: impl Fn(OFlags) -> rustix::io::Result<std::os::fd::OwnedFd>,
    ) -> std::io::Result<File> {
        let plain = OFlags::RDONLY | OFlags::CLOEXEC;
        if self.noatime.load(Ordering::Relaxed) {
            match open(plain | OFlags::NOATIME) {
                Err(rustix::io::Errno::PERM) => self.noatime.store(false, Ordering::Relaxed),
                other => return Ok(File::from(other?)),
            }
        }
        Ok(File::from(open(plain)?))
    }

    /// An opener of many loose files in a row (see [`LooseOpener`]).
    pub(crate) fn opener(&self) -> LooseOpener<'_> {
        LooseOpener {
            store: self,
            #[cfg(target_os = "linux")]
            shard: None,
        }
    }

    /// Reads the `size` bytes of a loose file opened by [`LooseStore::open`]: one `read` for
    /// a small object, where `read_to_end` also makes a second `statx`, an `lseek` and a read
    /// to probe the end (7 system calls per object with the open, stat and close instead of
    /// 4). A file shorter than `size` gives fewer bytes, a longer one its first `size` bytes:
    /// loose files never change after their rename, so either is damage that the caller's
    /// check of the content against the hashkey reports.
    pub(crate) fn read_sized(&self, file: &mut File, size: u64, hashkey: &str) -> Result<Vec<u8>> {
        let len = usize::try_from(size).map_err(|_| {
            Error::io(
                "read loose object",
                self.path_of(hashkey),
                std::io::Error::other("larger than this platform's memory can address"),
            )
        })?;
        let mut data = vec![0u8; len];
        let filled = read_up_to(file, &mut data)
            .map_err(|e| Error::io("read loose object", self.path_of(hashkey), e))?;
        data.truncate(filled);
        Ok(data)
    }

    /// Writes one object from `reader` and returns its hashkey; durable when this returns.
    ///
    /// The bytes go to a fresh file in `sandbox/` while being hashed (an object above 64 MiB is
    /// synced along the way, see [`EarlyWriteback`]). If the object already exists (a row in
    /// the index, or a loose file of the right size, whose folder is then synced) the sandbox
    /// file is dropped without a final fsync. Otherwise: fsync of the file, rename into place,
    /// fsync of the shard folder that received it (and of `loose/` when the shard folder is
    /// new). An error of a sync along the way fails the call, even for an object that exists.
    pub(crate) fn write(&self, reader: &mut dyn Read, index: &dyn ObjectIndex) -> Result<String> {
        let (mut file, tmp) = self.create_sandbox_file()?;
        let result = self.write_into(&mut file, &tmp, reader, index);
        drop(file);
        match result {
            Ok((key, true)) => Ok(key),
            Ok((key, false)) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(key)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// The folder of loose objects (`loose/`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The hash type of the container.
    pub(crate) fn hash_type(&self) -> HashType {
        self.hash_type
    }

    /// The folder where objects are written before they are moved into place (`sandbox/`).
    pub(crate) fn sandbox_dir(&self) -> &Path {
        &self.sandbox
    }

    /// Creates a new, empty file in `sandbox/` under a fresh uuid4-hex name.
    pub(crate) fn create_sandbox_file(&self) -> Result<(File, PathBuf)> {
        let tmp = self.sandbox.join(uuid::Uuid::new_v4().simple().to_string());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create sandbox file", &tmp, e))?;
        Ok((file, tmp))
    }

    /// Streams `reader` into a new sandbox file while hashing it, without an fsync; returns the
    /// file's path, the hashkey and the length. The file is removed again on error.
    pub(crate) fn write_sandbox(&self, reader: &mut dyn Read) -> Result<(PathBuf, String, u64)> {
        let (mut file, tmp) = self.create_sandbox_file()?;
        let result = self.stream_into(&mut file, &tmp, reader, false);
        drop(file);
        match result {
            Ok((key, len)) => Ok((tmp, key, len)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Copies `reader` into `file` while hashing; returns the hashkey and the length. With
    /// `durable`, a large object's data goes to disk along the way ([`EarlyWriteback`]), so
    /// the caller's final `sync_data` has little left to wait for.
    fn stream_into(
        &self,
        file: &mut File,
        tmp: &Path,
        reader: &mut dyn Read,
        durable: bool,
    ) -> Result<(String, u64)> {
        // Large objects are hashed on a helper thread while this one reads and writes.
        let mut hasher = StreamHasher::new(self.hash_type);
        let mut writeback = durable.then(EarlyWriteback::new);
        let mut len = 0u64;
        COPY_BUF.with(|buf| -> Result<()> {
            let mut buf = buf.borrow_mut();
            loop {
                let n =
                    read_up_to(reader, &mut buf).map_err(|e| Error::io("read input of", tmp, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(|e| Error::io("write sandbox file", tmp, e))?;
                if let Some(w) = writeback.as_mut() {
                    w.wrote(file, n as u64);
                }
                len += n as u64;
                if n < buf.len() {
                    // read_up_to only returns short at the end of the input.
                    break;
                }
            }
            Ok(())
        })?;
        if let Some(mut w) = writeback {
            w.finish().map_err(|e| Error::io("fsync", tmp, e))?;
        }
        Ok((hasher.finish()?, len))
    }

    /// Returns the key and whether the sandbox file was moved into place.
    fn write_into(
        &self,
        file: &mut File,
        tmp: &Path,
        reader: &mut dyn Read,
        index: &dyn ObjectIndex,
    ) -> Result<(String, bool)> {
        let (key, len) = self.stream_into(file, tmp, reader, true)?;
        if index.get(&key)?.is_some() {
            // Packed: the index commit made it durable.
            return Ok((key, false));
        }
        if self.size(&key)? == Some(len) {
            // Another writer may have renamed it into place without having synced the folder
            // yet: sync it ourselves, so that this call's promise holds on its own.
            let dest = self.path_of(&key);
            durable::fsync_dir(dest.parent().unwrap_or(&self.dir))?;
            return Ok((key, false));
        }
        file.sync_data().map_err(|e| Error::io("fsync", tmp, e))?;
        let dest = self.path_of(&key);
        let shard = dest.parent().unwrap_or(&self.dir).to_path_buf();
        if self.prefix_len > 0 && !shard.is_dir() {
            match std::fs::create_dir(&shard) {
                Ok(()) => durable::fsync_dir(&self.dir)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create loose folder", &shard, e)),
            }
        }
        // rename() replaces atomically: a concurrent writer of the same content converges on
        // one file, and a damaged file of the wrong size is replaced.
        std::fs::rename(tmp, &dest).map_err(|e| Error::io("move into place", &dest, e))?;
        durable::fsync_dir(&shard)?;
        Ok((key, true))
    }

    /// Deletes the loose file of `hashkey`; true if there was one.
    pub(crate) fn delete(&self, hashkey: &str) -> Result<bool> {
        let path = self.path_of(hashkey);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("delete loose object", path, e)),
        }
    }

    /// Calls `f` with the hashkey and the folder entry of every loose object (names that are
    /// not valid hashkeys of the container's hash type, such as `.DS_Store`, are skipped).
    /// The entry, not its path: most callers need only the key, and building a path per
    /// object was a tenth of listing 100,000 of them.
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(String, &std::fs::DirEntry) -> Result<()>,
    ) -> Result<()> {
        let read = |dir: &Path| std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e));
        if self.prefix_len == 0 {
            for entry in read(&self.dir)? {
                let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
                if let Some(name) = entry.file_name().to_str()
                    && self.hash_type.validate(name).is_ok()
                {
                    f(name.to_string(), &entry)?;
                }
            }
            return Ok(());
        }
        for (prefix, shard) in self.shards()? {
            self.walk_shard(&prefix, &shard, &mut f)?;
        }
        Ok(())
    }

    /// [`for_each`](LooseStore::for_each), with the shard folders shared between this thread
    /// and a helper: `f` folds each loose object into one accumulator per thread (made by
    /// `init`), and the accumulators come back. Listing the 256 shard folders of a container
    /// with no loose object takes ~4 ms: a third of a `count_objects` in a new process.
    pub(crate) fn fold_on_two_threads<T: Send>(
        &self,
        init: impl Fn() -> T + Sync,
        f: impl Fn(&mut T, String, &std::fs::DirEntry) -> Result<()> + Sync,
    ) -> Result<Vec<T>> {
        let mut mine = init();
        if self.prefix_len == 0 {
            self.for_each(|k, e| f(&mut mine, k, e))?;
            return Ok(vec![mine]);
        }
        let shards = self.shards()?;
        let (theirs, ours) = shards.split_at(shards.len() / 2);
        let walk = |acc: &mut T, part: &[(String, PathBuf)]| -> Result<()> {
            for (prefix, shard) in part {
                self.walk_shard(prefix, shard, &mut |k, e| f(acc, k, e))?;
            }
            Ok(())
        };
        std::thread::scope(|scope| {
            let helper = std::thread::Builder::new()
                .name("rsdos-loose-list".into())
                .spawn_scoped(scope, || {
                    let mut acc = init();
                    walk(&mut acc, theirs).map(|()| acc)
                });
            let mut out = Vec::with_capacity(2);
            match helper {
                Ok(helper) => {
                    walk(&mut mine, ours)?;
                    match helper.join() {
                        Ok(theirs) => out.push(theirs?),
                        Err(panic) => std::panic::resume_unwind(panic),
                    }
                }
                // No thread to be had: both halves here.
                Err(_) => {
                    walk(&mut mine, theirs)?;
                    walk(&mut mine, ours)?;
                }
            }
            out.push(mine);
            Ok(out)
        })
    }

    /// The shard folders (`<prefix>/` of `prefix_len` hex digits) with their prefix.
    fn shards(&self) -> Result<Vec<(String, PathBuf)>> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io("list", &self.dir, e))?;
        let mut shards = Vec::new();
        for shard in entries {
            let shard = shard.map_err(|e| Error::io("list", &self.dir, e))?;
            let Some(prefix) = shard.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if prefix.len() != self.prefix_len
                || !prefix
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                || !shard.file_type().map(|t| t.is_dir()).unwrap_or(false)
            {
                continue;
            }
            shards.push((prefix, shard.path()));
        }
        Ok(shards)
    }

    /// Calls `f` for each loose object of one shard folder.
    fn walk_shard(
        &self,
        prefix: &str,
        shard: &Path,
        f: &mut dyn FnMut(String, &std::fs::DirEntry) -> Result<()>,
    ) -> Result<()> {
        let entries = std::fs::read_dir(shard).map_err(|e| Error::io("list", shard, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", shard, e))?;
            let name = entry.file_name();
            let Some(rest) = name.to_str() else {
                continue;
            };
            let mut key = String::with_capacity(prefix.len() + rest.len());
            key.push_str(prefix);
            key.push_str(rest);
            if self.hash_type.validate(&key).is_ok() {
                f(key, &entry)?;
            }
        }
        Ok(())
    }
}

/// Opens many loose files, one after the other, on one thread: on Linux each relative to its
/// shard folder, opened once for the keys that share it (callers go in hashkey order), so
/// that the kernel resolves one name per file instead of the whole path. In a profile of
/// packing 100,000 loose objects, that walk was 12 % of the reading threads' time, and
/// containers in the field sit deeper than the benchmark's.
///
/// Meant for a short run of keys (a worker's batch): a shard folder removed and created again
/// while the opener holds it makes its files look missing, which callers treat as objects that
/// vanished (packing leaves them loose for the next run).
pub(crate) struct LooseOpener<'a> {
    store: &'a LooseStore,
    /// The shard prefix and its open folder.
    #[cfg(target_os = "linux")]
    shard: Option<(String, std::os::fd::OwnedFd)>,
}

impl LooseOpener<'_> {
    /// Opens the loose file of `hashkey` with its size, as [`LooseStore::open`] does.
    #[cfg(not(target_os = "linux"))]
    pub(crate) fn open(&mut self, hashkey: &str) -> Result<Option<(File, u64)>> {
        self.store.open(hashkey)
    }

    /// Opens the loose file of `hashkey` with its size, as [`LooseStore::open`] does.
    #[cfg(target_os = "linux")]
    pub(crate) fn open(&mut self, hashkey: &str) -> Result<Option<(File, u64)>> {
        use rustix::io::Errno;

        let store = self.store;
        // Callers pass listed, validated (ASCII) keys; anything else names no loose file.
        let Some((prefix, name)) = hashkey.split_at_checked(store.prefix_len) else {
            return Ok(None);
        };
        let folder = match &self.shard {
            Some((p, fd)) if p == prefix => fd,
            _ => {
                self.shard = None;
                let dir = if prefix.is_empty() {
                    store.dir.clone()
                } else {
                    store.dir.join(prefix)
                };
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
                match rustix::fs::open(&dir, flags, Mode::empty()) {
                    Ok(fd) => &self.shard.insert((prefix.to_string(), fd)).1,
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => return Err(Error::io("open loose folder", dir, e.into())),
                }
            }
        };
        store.with_size(
            hashkey,
            store.open_noatime(|flags| rustix::fs::openat(folder, name, flags, Mode::empty())),
        )
    }
}
