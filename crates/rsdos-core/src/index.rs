//! The index of packed objects: hashkey to (pack, offset, length).

use std::fmt::Debug;

use crate::{PackedEntry, PackedLocation, Result};

/// Sums over all index rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IndexTotals {
    /// Number of rows.
    pub count: u64,
    /// Sum of `size` (uncompressed bytes).
    pub size: u64,
    /// Sum of `length` (stored bytes).
    pub length: u64,
}

/// Maps the hashkey of every packed object to its [`PackedLocation`].
///
/// Contract, for every implementation (each sentence is a test of the behaviour suite in
/// `rsdos-testkit`):
///
/// - Every call sees all changes committed before it started, by this or any other process:
///   no snapshot is kept from one call to the next, and a result kept between calls is only
///   returned after checking that nothing was committed since.
/// - [`get`](ObjectIndex::get) returns `None` for an unknown hashkey.
/// - [`get_many`](ObjectIndex::get_many) returns one entry per distinct known hashkey of its
///   input, in no particular order, and leaves unknown hashkeys out; any number of keys may be
///   asked at once.
/// - [`insert`](ObjectIndex::insert) adds all entries in one transaction: after a failure none
///   of them is visible. An entry whose hashkey is already indexed is skipped (the existing
///   location is kept) and not counted in the returned number.
/// - Entries of a [`begin_insert`](ObjectIndex::begin_insert) session are invisible (to this
///   and other instances) until its commit, which has the same result as one `insert` of all
///   the entries given to the session; a session dropped without commit adds nothing, and so
///   does a session one of whose inserts failed (its later inserts and its commit fail).
/// - [`update`](ObjectIndex::update) replaces the locations of existing hashkeys in one
///   transaction and ignores hashkeys that are not indexed; it returns how many it changed.
/// - [`delete`](ObjectIndex::delete) removes the given hashkeys in one transaction and returns
///   those that were indexed; unknown hashkeys are not an error.
/// - [`totals`](ObjectIndex::totals) counts rows and sums `size` and `length` (0 when empty).
/// - [`pack_ids`](ObjectIndex::pack_ids) lists the distinct pack ids that rows point to,
///   ascending.
/// - [`pack_entries_page`](ObjectIndex::pack_entries_page) pages through the rows of one pack
///   ordered by `(offset, hashkey)`, starting strictly after the given position.
/// - [`hashkeys_page`](ObjectIndex::hashkeys_page) pages through all hashkeys in ascending
///   order, starting strictly after the given key.
/// - Implementations are `Send + Sync` and may be called from many threads at once.
pub trait ObjectIndex: Send + Sync + Debug {
    /// The location of `hashkey`, or `None` if it is not packed.
    fn get(&self, hashkey: &str) -> Result<Option<PackedLocation>>;

    /// The entries of those `hashkeys` that are packed: only keys asked for, each once however
    /// often it was asked, in any order.
    fn get_many(&self, hashkeys: &[&str]) -> Result<Vec<PackedEntry>>;

    /// Inserts entries in one transaction, skipping hashkeys already present; returns the number
    /// of rows added.
    fn insert(&self, entries: &[PackedEntry]) -> Result<u64>;

    /// Opens an insert transaction that stays open across calls: entries passed to
    /// [`IndexInsert::insert`] become visible together at [`IndexInsert::commit`], and not at
    /// all if the session is dropped without it. A writer hands rows to a session on another
    /// thread while it still writes the pack they point into, and commits after the pack is
    /// durable.
    fn begin_insert(&self) -> Result<Box<dyn IndexInsert + '_>>;

    /// Replaces the locations of indexed hashkeys in one transaction; returns the number changed.
    fn update(&self, entries: &[PackedEntry]) -> Result<u64>;

    /// Deletes hashkeys in one transaction; returns those that were present.
    fn delete(&self, hashkeys: &[&str]) -> Result<Vec<String>>;

    /// Row count and sums of `size` and `length`.
    fn totals(&self) -> Result<IndexTotals>;

    /// Distinct pack ids referenced by rows, ascending.
    fn pack_ids(&self) -> Result<Vec<u64>>;

    /// Up to `limit` rows of pack `pack_id` ordered by `(offset, hashkey)`, strictly after
    /// `after` (an `(offset, hashkey)` position) or from the start.
    fn pack_entries_page(
        &self,
        pack_id: u64,
        after: Option<(u64, &str)>,
        limit: usize,
    ) -> Result<Vec<PackedEntry>>;

    /// Up to `limit` hashkeys in ascending order, strictly after `after` or from the first.
    fn hashkeys_page(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;

    /// Bytes the index occupies on disk (0 for an index that is not a file).
    fn size_on_disk(&self) -> Result<u64>;

    /// Compacts the storage (SQLite `VACUUM`); a no-op where that means nothing.
    fn vacuum(&self) -> Result<()>;
}

/// An open insert transaction of [`ObjectIndex::begin_insert`]. `Send`, so that a helper
/// thread can own it; dropping it without [`commit`](IndexInsert::commit) rolls it back.
pub trait IndexInsert: Send {
    /// Adds entries to the transaction (invisible until the commit). Of several entries with
    /// one hashkey, in this call or an earlier one of the session, the first wins. After a
    /// failure the session is over: nothing of it will be committed, and later calls fail.
    fn insert(&mut self, entries: &[PackedEntry]) -> Result<()>;

    /// Makes every entry of the session visible at once; returns the number of rows added
    /// (entries whose hashkey was already indexed are skipped and not counted).
    fn commit(self: Box<Self>) -> Result<u64>;
}

/// Iterators built on [`ObjectIndex`]'s pages, for every implementation.
pub trait ObjectIndexExt: ObjectIndex {
    /// All hashkeys in ascending order, fetched `page` at a time (each page a fresh query, so
    /// memory stays bounded and nothing is held open between pages).
    fn iter_hashkeys(&self, page: usize) -> HashkeyIter<'_, Self> {
        HashkeyIter {
            index: self,
            page: page.max(1),
            buf: Vec::new().into_iter(),
            last: None,
            done: false,
        }
    }

    /// The hashkeys among `keys` that are packed, collected into any set (one
    /// [`ObjectIndex::get_many`]): the question packing, cleaning and direct writes ask of a
    /// batch of keys before they act on it.
    fn packed_among<S: FromIterator<String>>(&self, keys: &[&str]) -> Result<S> {
        Ok(self
            .get_many(keys)?
            .into_iter()
            .map(|e| e.hashkey)
            .collect())
    }

    /// All rows of one pack ordered by offset, fetched `page` at a time.
    fn iter_pack(&self, pack_id: u64, page: usize) -> PackEntryIter<'_, Self> {
        PackEntryIter {
            index: self,
            pack_id,
            page: page.max(1),
            buf: Vec::new().into_iter(),
            last: None,
            done: false,
        }
    }
}

impl<T: ObjectIndex + ?Sized> ObjectIndexExt for T {}

/// Iterator of [`ObjectIndexExt::iter_hashkeys`].
#[derive(Debug)]
pub struct HashkeyIter<'a, I: ?Sized> {
    index: &'a I,
    page: usize,
    buf: std::vec::IntoIter<String>,
    last: Option<String>,
    done: bool,
}

impl<I: ObjectIndex + ?Sized> Iterator for HashkeyIter<'_, I> {
    type Item = Result<String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(k) = self.buf.next() {
                self.last = Some(k.clone());
                return Some(Ok(k));
            }
            if self.done {
                return None;
            }
            match self.index.hashkeys_page(self.last.as_deref(), self.page) {
                Ok(page) => {
                    self.done = page.len() < self.page;
                    self.buf = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Iterator of [`ObjectIndexExt::iter_pack`].
#[derive(Debug)]
pub struct PackEntryIter<'a, I: ?Sized> {
    index: &'a I,
    pack_id: u64,
    page: usize,
    buf: std::vec::IntoIter<PackedEntry>,
    last: Option<(u64, String)>,
    done: bool,
}

impl<I: ObjectIndex + ?Sized> Iterator for PackEntryIter<'_, I> {
    type Item = Result<PackedEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.buf.next() {
                self.last = Some((e.location.offset, e.hashkey.clone()));
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            let after = self.last.as_ref().map(|(o, k)| (*o, k.as_str()));
            match self.index.pack_entries_page(self.pack_id, after, self.page) {
                Ok(page) => {
                    self.done = page.len() < self.page;
                    self.buf = page.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}
