//! The [`ObjectIndex`] behaviour suite: one function per sentence of the trait's contract.

use std::collections::HashSet;
use std::sync::Arc;

use rsdos_core::{HashType, ObjectIndex, ObjectIndexExt, PackedEntry, PackedLocation};

/// What the suite needs from an implementation under test.
pub trait IndexHarness {
    /// The (empty) index under test.
    fn index(&self) -> Arc<dyn ObjectIndex>;
    /// A second, independent instance on the same storage (another connection, as another
    /// process would have).
    fn other(&self) -> Arc<dyn ObjectIndex>;
}

/// The hashkey of `n` (sha256 of its decimal form).
pub fn key(n: u64) -> String {
    HashType::Sha256.hash_hex(n.to_string().as_bytes())
}

/// An entry for `key(n)` in `pack` at `offset`.
pub fn entry(n: u64, pack: u64, offset: u64) -> PackedEntry {
    PackedEntry {
        hashkey: key(n),
        location: PackedLocation {
            pack_id: pack,
            offset,
            length: 10 + n,
            size: 20 + n,
            compressed: n.is_multiple_of(2),
        },
    }
}

/// Every call sees all changes committed before it started, by this or any other instance.
pub fn sees_commits_of_other_instances(h: &dyn IndexHarness) {
    let (a, b) = (h.index(), h.other());
    assert_eq!(a.get(&key(1)).expect("get"), None);
    b.insert(&[entry(1, 0, 0)]).expect("insert");
    assert_eq!(a.get(&key(1)).expect("get"), Some(entry(1, 0, 0).location));
    assert_eq!(a.totals().expect("totals").count, 1);
    b.update(&[entry(1, 3, 7)]).expect("update");
    assert_eq!(a.get(&key(1)).expect("get").map(|l| l.pack_id), Some(3));
    b.delete(&[&key(1)]).expect("delete");
    assert_eq!(a.get(&key(1)).expect("get"), None);
    assert_eq!(a.totals().expect("totals").count, 0);
}

/// `get` returns `None` for an unknown hashkey.
pub fn get_unknown_is_none(h: &dyn IndexHarness) {
    let i = h.index();
    i.insert(&[entry(1, 0, 0)]).expect("insert");
    assert_eq!(i.get(&key(2)).expect("get"), None);
    assert!(i.get(&key(1)).expect("get").is_some());
}

/// `get_many` returns one entry per distinct known hashkey, in any order, leaving out unknown ones.
pub fn get_many_returns_each_known_key_once(h: &dyn IndexHarness) {
    let i = h.index();
    i.insert(&[entry(1, 0, 0), entry(2, 0, 11), entry(3, 1, 0)])
        .expect("insert");
    let (k1, k3, k9) = (key(1), key(3), key(9));
    let got = i.get_many(&[&k3, &k9, &k1, &k3, &k1]).expect("get_many");
    assert_eq!(got.len(), 2);
    let set: HashSet<PackedEntry> = got.into_iter().collect();
    assert!(set.contains(&entry(1, 0, 0)) && set.contains(&entry(3, 1, 0)));
    assert!(i.get_many(&[]).expect("empty").is_empty());
}

/// Any number of keys may be asked at once.
pub fn get_many_accepts_many_keys(h: &dyn IndexHarness) {
    let i = h.index();
    let entries: Vec<PackedEntry> = (0..5000).map(|n| entry(n, n / 1000, n * 100)).collect();
    assert_eq!(i.insert(&entries).expect("insert"), 5000);
    let keys: Vec<String> = (0..6000).map(key).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let got = i.get_many(&refs).expect("get_many");
    assert_eq!(got.len(), 5000);
    let set: HashSet<PackedEntry> = got.into_iter().collect();
    assert_eq!(set, entries.into_iter().collect());
}

/// A large request answers the same whether it covers a small part of the index or nearly all
/// of it (implementations may switch between per-key lookups and a scan).
pub fn get_many_is_exact_for_sparse_and_dense_requests(h: &dyn IndexHarness) {
    let i = h.index();
    let entries: Vec<PackedEntry> = (0..40_000).map(|n| entry(n, n / 5000, n * 10)).collect();
    assert_eq!(i.insert(&entries).expect("insert"), 40_000);
    // Sparse: every 9th known key (4,445) plus 500 unknown ones.
    let sparse: Vec<String> = (0..40_000)
        .step_by(9)
        .chain(50_000..50_500)
        .map(key)
        .collect();
    let refs: Vec<&str> = sparse.iter().map(String::as_str).collect();
    let got: HashSet<PackedEntry> = i.get_many(&refs).expect("sparse").into_iter().collect();
    let want: HashSet<PackedEntry> = entries.iter().step_by(9).cloned().collect();
    assert_eq!(got, want, "sparse request");
    // Dense: every key, twice, plus unknown ones.
    let dense: Vec<String> = (0..40_000)
        .chain(0..40_000)
        .chain(60_000..61_000)
        .map(key)
        .collect();
    let refs: Vec<&str> = dense.iter().map(String::as_str).collect();
    let got = i.get_many(&refs).expect("dense");
    assert_eq!(got.len(), 40_000, "one entry per distinct known key");
    let got: HashSet<PackedEntry> = got.into_iter().collect();
    assert_eq!(got, entries.into_iter().collect(), "dense request");
}

/// A large request (as packing asks for every loose key) answers nothing on an empty index,
/// and again once every row was deleted; then exactly the rows added back.
pub fn get_many_on_an_empty_index_is_empty(h: &dyn IndexHarness) {
    let i = h.index();
    let keys: Vec<String> = (0..6000).map(key).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert!(i.get_many(&refs).expect("empty index").is_empty());
    let entries: Vec<PackedEntry> = (0..3000).map(|n| entry(n, 0, n * 10)).collect();
    assert_eq!(i.insert(&entries).expect("insert"), 3000);
    assert_eq!(i.get_many(&refs).expect("filled").len(), 3000);
    let deleted = i.delete(&refs[..3000]).expect("delete");
    assert_eq!(deleted.len(), 3000);
    assert!(i.get_many(&refs).expect("emptied").is_empty());
    assert_eq!(i.insert(&entries[..2]).expect("insert again"), 2);
    let got: HashSet<PackedEntry> = i.get_many(&refs).expect("two").into_iter().collect();
    assert_eq!(got, entries[..2].iter().cloned().collect());
}

/// `insert` adds all entries in one transaction: after a failure none of them is visible.
pub fn insert_is_all_or_nothing(h: &dyn IndexHarness) {
    let i = h.index();
    let mut bad = entry(2, 0, 100);
    bad.location.offset = u64::MAX; // not representable by an SQL integer
    match i.insert(&[entry(1, 0, 0), bad.clone()]) {
        Err(_) => {
            assert_eq!(i.get(&key(1)).expect("get"), None, "partial insert visible");
            assert_eq!(i.totals().expect("totals").count, 0);
        }
        Ok(n) => {
            // An implementation that can store the value must store both.
            assert_eq!(n, 2);
            assert_eq!(i.get(&key(2)).expect("get"), Some(bad.location));
        }
    }
}

/// Entries of a `begin_insert` session are invisible until its commit, which adds them all as
/// one `insert` would; a session dropped without commit adds nothing.
pub fn insert_session_is_invisible_until_commit(h: &dyn IndexHarness) {
    let (i, other) = (h.index(), h.other());
    i.insert(&[entry(1, 0, 0)]).expect("insert");
    let mut session = i.begin_insert().expect("begin");
    session
        .insert(&[entry(1, 7, 70), entry(2, 0, 11)])
        .expect("session insert");
    session
        .insert(&[entry(3, 0, 30), entry(2, 9, 90)])
        .expect("session insert");
    for probe in [&i, &other] {
        assert_eq!(
            probe.get(&key(2)).expect("get"),
            None,
            "visible before commit"
        );
        assert_eq!(probe.totals().expect("totals").count, 1);
    }
    // Existing hashkey 1 is skipped; of the two entries of 2, the first wins.
    assert_eq!(session.commit().expect("commit"), 2);
    assert_eq!(
        other.get(&key(1)).expect("get"),
        Some(entry(1, 0, 0).location)
    );
    assert_eq!(
        other.get(&key(2)).expect("get"),
        Some(entry(2, 0, 11).location)
    );
    assert_eq!(
        other.get(&key(3)).expect("get"),
        Some(entry(3, 0, 30).location)
    );

    let mut dropped = i.begin_insert().expect("begin");
    dropped.insert(&[entry(4, 1, 0)]).expect("session insert");
    drop(dropped);
    for probe in [&i, &other] {
        assert_eq!(
            probe.get(&key(4)).expect("get"),
            None,
            "dropped session visible"
        );
        assert_eq!(probe.totals().expect("totals").count, 3);
    }
    // The index is writable again at once (the dropped session released its write lock).
    assert_eq!(other.insert(&[entry(5, 1, 0)]).expect("insert"), 1);
    let empty = i.begin_insert().expect("begin");
    assert_eq!(empty.commit().expect("empty commit"), 0);

    // Many rows per call (implementations batch them): duplicates inside a call and keys
    // already indexed, on both sides of any batch boundary; the first entry of a key wins.
    let mut many: Vec<PackedEntry> = (100..400).map(|n| entry(n, 2, n * 10)).collect();
    for n in [100, 163, 164, 165, 227, 228, 300, 399] {
        many.push(entry(n, 8, 1));
    }
    many.insert(0, entry(3, 8, 1));
    many.insert(64, entry(5, 8, 1));
    let mut session = i.begin_insert().expect("begin");
    session.insert(&many[..150]).expect("session insert");
    session.insert(&many[150..]).expect("session insert");
    assert_eq!(session.commit().expect("commit"), 300);
    for n in [3, 5] {
        assert_ne!(other.get(&key(n)).expect("get").map(|l| l.pack_id), Some(8));
    }
    for n in [100, 163, 164, 165, 227, 228, 300, 399] {
        assert_eq!(
            other.get(&key(n)).expect("get"),
            Some(entry(n, 2, n * 10).location)
        );
    }
    assert_eq!(other.totals().expect("totals").count, 304);
}

/// A session one of whose inserts failed commits nothing: its later inserts and its commit
/// fail, and the index is writable again at once.
pub fn insert_session_after_a_failure_commits_nothing(h: &dyn IndexHarness) {
    let (i, other) = (h.index(), h.other());
    let mut bad = entry(2, 0, 100);
    bad.location.offset = u64::MAX; // not representable by an SQL integer
    let mut session = i.begin_insert().expect("begin");
    session.insert(&[entry(1, 0, 0)]).expect("session insert");
    if session.insert(&[entry(3, 0, 30), bad]).is_ok() {
        // An implementation that can store the value has nothing to test here.
        return;
    }
    assert!(
        session.insert(&[entry(4, 0, 40)]).is_err(),
        "insert after failure"
    );
    assert!(session.commit().is_err(), "commit after failure");
    for probe in [&i, &other] {
        assert_eq!(probe.totals().expect("totals").count, 0);
        assert_eq!(probe.get(&key(1)).expect("get"), None);
    }
    assert_eq!(other.insert(&[entry(5, 1, 0)]).expect("insert"), 1);
}

/// An entry whose hashkey is already indexed is skipped (the existing location is kept) and not counted.
pub fn insert_skips_existing_and_counts_new(h: &dyn IndexHarness) {
    let i = h.index();
    assert_eq!(i.insert(&[entry(1, 0, 0)]).expect("insert"), 1);
    assert_eq!(
        i.insert(&[entry(1, 5, 500), entry(2, 0, 11)])
            .expect("insert"),
        1
    );
    assert_eq!(i.get(&key(1)).expect("get"), Some(entry(1, 0, 0).location));
    // Duplicates inside one batch: the first wins.
    assert_eq!(
        i.insert(&[entry(3, 0, 40), entry(3, 9, 90)])
            .expect("insert"),
        1
    );
    assert_eq!(i.get(&key(3)).expect("get"), Some(entry(3, 0, 40).location));
    assert_eq!(i.totals().expect("totals").count, 3);
}

/// `update` replaces the locations of existing hashkeys and ignores unknown ones, returning how many changed.
pub fn update_replaces_known_and_ignores_unknown(h: &dyn IndexHarness) {
    let i = h.index();
    i.insert(&[entry(1, 0, 0), entry(2, 0, 11)])
        .expect("insert");
    let mut moved = entry(1, 7, 70);
    moved.location.compressed = !moved.location.compressed;
    assert_eq!(
        i.update(&[moved.clone(), entry(3, 0, 0)]).expect("update"),
        1
    );
    assert_eq!(i.get(&key(1)).expect("get"), Some(moved.location));
    assert_eq!(i.get(&key(3)).expect("get"), None);
    assert_eq!(i.get(&key(2)).expect("get"), Some(entry(2, 0, 11).location));
}

/// `delete` removes the given hashkeys and returns those that were indexed.
pub fn delete_returns_present_and_ignores_unknown(h: &dyn IndexHarness) {
    let i = h.index();
    i.insert(&[entry(1, 0, 0), entry(2, 0, 11), entry(3, 0, 30)])
        .expect("insert");
    let (k1, k3, k8) = (key(1), key(3), key(8));
    let mut deleted = i.delete(&[&k1, &k8, &k3]).expect("delete");
    deleted.sort();
    let mut want = vec![k1.clone(), k3.clone()];
    want.sort();
    assert_eq!(deleted, want);
    assert_eq!(i.get(&k1).expect("get"), None);
    assert!(i.get(&key(2)).expect("get").is_some());
    assert!(i.delete(&[&k1]).expect("delete again").is_empty());
}

/// `totals` counts rows and sums `size` and `length` (0 when empty).
pub fn totals_count_and_sum(h: &dyn IndexHarness) {
    let i = h.index();
    let t = i.totals().expect("totals");
    assert_eq!((t.count, t.size, t.length), (0, 0, 0));
    i.insert(&[entry(1, 0, 0), entry(2, 0, 11)])
        .expect("insert");
    let t = i.totals().expect("totals");
    assert_eq!((t.count, t.size, t.length), (2, 21 + 22, 11 + 12));
    // Asked again after each kind of change, by this instance and by another (an
    // implementation may keep the sums between calls, but never past a commit).
    assert_eq!(i.totals().expect("totals"), t);
    let mut moved = entry(1, 0, 0);
    moved.location.size = 1000;
    moved.location.length = 500;
    i.update(&[moved]).expect("update");
    let t = i.totals().expect("totals");
    assert_eq!((t.count, t.size, t.length), (2, 1000 + 22, 500 + 12));
    h.other().insert(&[entry(3, 1, 0)]).expect("insert");
    let t = i.totals().expect("totals");
    assert_eq!(
        (t.count, t.size, t.length),
        (3, 1000 + 22 + 23, 500 + 12 + 13)
    );
    i.delete(&[&key(2)]).expect("delete");
    let t = i.totals().expect("totals");
    assert_eq!((t.count, t.size, t.length), (2, 1000 + 23, 500 + 13));
    let other = h.other();
    let mut session = other.begin_insert().expect("begin");
    session.insert(&[entry(4, 1, 50)]).expect("session insert");
    assert_eq!(i.totals().expect("totals").count, 2);
    session.commit().expect("commit");
    assert_eq!(i.totals().expect("totals").count, 3);
}

/// `pack_ids` lists the distinct pack ids that rows point to, ascending.
pub fn pack_ids_are_distinct_and_ascending(h: &dyn IndexHarness) {
    let i = h.index();
    assert!(i.pack_ids().expect("pack_ids").is_empty());
    i.insert(&[
        entry(1, 5, 0),
        entry(2, 0, 0),
        entry(3, 5, 100),
        entry(4, 12, 0),
    ])
    .expect("insert");
    assert_eq!(i.pack_ids().expect("pack_ids"), vec![0, 5, 12]);
}

/// `pack_entries_page` pages through one pack ordered by `(offset, hashkey)`, strictly after a position.
pub fn pack_entries_page_orders_by_offset_then_hashkey(h: &dyn IndexHarness) {
    let i = h.index();
    let mut entries: Vec<PackedEntry> = (0..10).map(|n| entry(n, 1, (9 - n) * 50)).collect();
    // Two rows at the same offset are ordered by hashkey.
    entries.push(entry(20, 1, 100));
    entries.push(entry(21, 2, 0));
    i.insert(&entries).expect("insert");
    let mut want: Vec<PackedEntry> = entries
        .into_iter()
        .filter(|e| e.location.pack_id == 1)
        .collect();
    want.sort_by(|a, b| (a.location.offset, &a.hashkey).cmp(&(b.location.offset, &b.hashkey)));
    let mut got = Vec::new();
    let mut after: Option<(u64, String)> = None;
    loop {
        let page = i
            .pack_entries_page(1, after.as_ref().map(|(o, k)| (*o, k.as_str())), 3)
            .expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some((last.location.offset, last.hashkey.clone()));
        got.extend(page);
    }
    assert_eq!(got, want);
    let via_iter: Vec<PackedEntry> = i.iter_pack(1, 4).collect::<Result<_, _>>().expect("iter");
    assert_eq!(via_iter, want);
}

/// `hashkeys_page` pages through all hashkeys ascending, strictly after the given key.
pub fn hashkeys_page_is_ascending_and_exclusive(h: &dyn IndexHarness) {
    let i = h.index();
    let entries: Vec<PackedEntry> = (0..25).map(|n| entry(n, 0, n * 100)).collect();
    i.insert(&entries).expect("insert");
    let mut want: Vec<String> = entries.into_iter().map(|e| e.hashkey).collect();
    want.sort();
    let first = i.hashkeys_page(None, 10).expect("page");
    assert_eq!(first, want[..10]);
    let second = i.hashkeys_page(Some(&want[9]), 10).expect("page");
    assert_eq!(second, want[10..20]);
    let all: Vec<String> = i.iter_hashkeys(7).collect::<Result<_, _>>().expect("iter");
    assert_eq!(all, want);
}

/// Implementations may be called from many threads at once.
pub fn usable_from_many_threads(h: &dyn IndexHarness) {
    let i = h.index();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let i = Arc::clone(&i);
            s.spawn(move || {
                for n in 0..50 {
                    let e = entry(t * 1000 + n, t, n * 100);
                    i.insert(std::slice::from_ref(&e)).expect("insert");
                    assert_eq!(i.get(&e.hashkey).expect("get"), Some(e.location));
                }
            });
        }
    });
    assert_eq!(i.totals().expect("totals").count, 200);
}
