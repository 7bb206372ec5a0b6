//! The [`PackStore`] behaviour suite: one function per sentence of the trait's contract.

use std::sync::Arc;

use rsdos_core::{Error, ErrorKind, PackStore};

/// What the suite needs from an implementation under test.
pub trait PackStoreHarness {
    /// The (empty) store under test.
    fn store(&self) -> Arc<dyn PackStore>;
    /// A second, independent instance over the same storage (as another process would have).
    fn other(&self) -> Arc<dyn PackStore>;
}

fn write_pack(store: &dyn PackStore, id: u64, data: &[u8]) {
    let mut a = store.open_append(id).expect("open_append");
    a.write_all(data).expect("write");
    a.sync().expect("sync");
}

/// `list` returns the ids of all packs present, ascending, and nothing else.
pub fn list_returns_only_packs_ascending(h: &dyn PackStoreHarness) {
    let s = h.store();
    assert!(s.list().expect("list").is_empty());
    for id in [10, 0, 2] {
        write_pack(s.as_ref(), id, b"abc");
    }
    s.seal(2, b"sidecar").expect("seal");
    // An appender being held (lock files exist) does not add entries either.
    let _held = s.open_append(3).expect("open 3");
    let mut ids = s.list().expect("list");
    ids.retain(|i| *i != 3); // pack 3 may or may not exist yet while it is empty
    assert_eq!(ids, vec![0, 2, 10]);
}

/// `len` is `None` for an absent pack and counts the bytes of a present one.
pub fn len_is_none_for_absent_and_counts_bytes(h: &dyn PackStoreHarness) {
    let s = h.store();
    assert_eq!(s.len(4).expect("len"), None);
    write_pack(s.as_ref(), 4, &[7u8; 1000]);
    assert_eq!(s.len(4).expect("len"), Some(1000));
}

/// `read_at` fills the whole buffer from the given offset.
pub fn read_at_reads_exact_ranges(h: &dyn PackStoreHarness) {
    let s = h.store();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    write_pack(s.as_ref(), 0, &data);
    for (off, len) in [
        (0usize, 1usize),
        (17, 1000),
        (250_000, 50_000),
        (299_999, 1),
        (5, 0),
    ] {
        let mut buf = vec![0u8; len];
        s.read_at(0, off as u64, &mut buf).expect("read_at");
        assert_eq!(buf, data[off..off + len]);
    }
    let other = h.other();
    let mut buf = vec![0u8; 10];
    other
        .read_at(0, 100, &mut buf)
        .expect("read from other instance");
    assert_eq!(buf, data[100..110]);
}

/// A pack that does not exist is `Error::PackNotFound`.
pub fn read_at_absent_pack_is_pack_not_found(h: &dyn PackStoreHarness) {
    let s = h.store();
    let mut buf = [0u8; 4];
    match s.read_at(9, 0, &mut buf) {
        Err(Error::PackNotFound { pack_id: 9 }) => {}
        other => panic!("expected PackNotFound, got {other:?}"),
    }
}

/// A range past the end is `ErrorKind::Corrupt`.
pub fn read_past_end_is_corrupt(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 0, b"0123456789");
    let mut buf = [0u8; 5];
    let err = s.read_at(0, 8, &mut buf).expect_err("past end");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

/// The appender is the only one of its pack until dropped, also across instances.
pub fn appender_is_exclusive_until_dropped(h: &dyn PackStoreHarness) {
    let (s, other) = (h.store(), h.other());
    let first = s.open_append(0).expect("first");
    let err = s.open_append(0).err().expect("second appender must fail");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    let err = other
        .open_append(0)
        .err()
        .expect("appender in other instance must fail");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    // Other packs are independent.
    drop(s.open_append(1).expect("pack 1"));
    drop(first);
    drop(other.open_append(0).expect("free again"));
}

/// Bytes written land at the end of the pack; `position` tracks it; `sync` makes them durable.
pub fn appended_bytes_land_at_the_end(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 0, b"hello ");
    let mut a = s.open_append(0).expect("reopen");
    assert_eq!(a.position(), 6);
    assert_eq!(a.pack_id(), 0);
    a.write_all(b"world").expect("write");
    assert_eq!(a.position(), 11);
    a.sync().expect("sync");
    drop(a);
    let mut buf = [0u8; 11];
    h.other().read_at(0, 0, &mut buf).expect("read");
    assert_eq!(&buf, b"hello world");
}

/// `truncate` drops bytes from the end, never below what existed when the appender opened.
pub fn truncate_drops_the_tail_only(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 0, b"keep");
    let mut a = s.open_append(0).expect("open");
    a.write_all(b"-drop").expect("write");
    a.truncate(4).expect("truncate");
    assert_eq!(a.position(), 4);
    assert!(
        a.truncate(3).is_err(),
        "truncating older data must be refused"
    );
    a.write_all(b"!").expect("write");
    a.sync().expect("sync");
    drop(a);
    assert_eq!(s.len(0).expect("len"), Some(5));
    let mut buf = [0u8; 5];
    s.read_at(0, 0, &mut buf).expect("read");
    assert_eq!(&buf, b"keep!");
}

/// `delete` removes a pack and its sidecar; deleting an absent pack is not an error.
pub fn delete_removes_pack_and_sidecar(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 3, b"data");
    s.seal(3, b"toc").expect("seal");
    let mut buf = [0u8; 4];
    s.read_at(3, 0, &mut buf).expect("read caches a handle");
    s.delete(3).expect("delete");
    assert_eq!(s.len(3).expect("len"), None);
    assert!(!s.is_sealed(3).expect("is_sealed"));
    assert_eq!(s.sidecar(3).expect("sidecar"), None);
    assert!(matches!(
        s.read_at(3, 0, &mut buf),
        Err(Error::PackNotFound { .. })
    ));
    s.delete(3).expect("delete absent");
    s.delete(77).expect("delete never existing");
}

/// `seal` stores the sidecar durably; `is_sealed` and `sidecar` report it.
pub fn seal_stores_the_sidecar(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 1, b"packdata");
    assert!(!s.is_sealed(1).expect("is_sealed"));
    assert_eq!(s.sidecar(1).expect("sidecar"), None);
    s.seal(1, b"the table of contents").expect("seal");
    assert!(s.is_sealed(1).expect("is_sealed"));
    assert!(h.other().is_sealed(1).expect("is_sealed other"));
    assert_eq!(
        s.sidecar(1).expect("sidecar").as_deref(),
        Some(&b"the table of contents"[..])
    );
    assert!(
        s.seal(42, b"x").is_err(),
        "sealing an absent pack must fail"
    );
}

/// Reads may run from many threads at once, also while the pack is being appended to.
pub fn reads_run_from_many_threads_while_appending(h: &dyn PackStoreHarness) {
    let s = h.store();
    let block: Vec<u8> = (0..4096u32).map(|i| (i % 256) as u8).collect();
    write_pack(s.as_ref(), 0, &block);
    let mut a = s.open_append(0).expect("open");
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let s = Arc::clone(&s);
            let block = &block;
            scope.spawn(move || {
                for i in 0..200u64 {
                    let off = (i * 37) % 4000;
                    let mut buf = [0u8; 96];
                    s.read_at(0, off, &mut buf).expect("read");
                    assert_eq!(&buf[..], &block[off as usize..off as usize + 96]);
                }
            });
        }
        for _ in 0..50 {
            a.write_all(&block).expect("append");
        }
    });
    a.sync().expect("sync");
    assert_eq!(s.len(0).expect("len"), Some(4096 * 51));
}

/// A handle from `open_pack` keeps reading the pack's bytes after the pack is deleted.
pub fn open_pack_handle_survives_deletion(h: &dyn PackStoreHarness) {
    let s = h.store();
    write_pack(s.as_ref(), 6, b"pinned bytes");
    let handle = s.open_pack(6).expect("open_pack");
    assert_eq!(handle.pack_id(), 6);
    h.other().delete(6).expect("delete from another instance");
    let mut buf = [0u8; 5];
    handle.read_at(7, &mut buf).expect("read after delete");
    assert_eq!(&buf, b"bytes");
    assert!(handle.read_at(10, &mut buf).is_err(), "past the end");
    assert!(matches!(
        s.open_pack(6),
        Err(Error::PackNotFound { pack_id: 6 })
    ));
}

/// `read_ranges` returns one buffer per range in the order given, each as `read_at` reads it;
/// an absent pack is `PackNotFound` and a range past the end `Corrupt`.
pub fn read_ranges_returns_each_range_in_order(h: &dyn PackStoreHarness) {
    let s = h.store();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    write_pack(s.as_ref(), 0, &data);
    write_pack(s.as_ref(), 1, &data);
    s.seal(1, b"toc").expect("seal"); // one staged or local pack, one sealed
    // Unsorted, neighbouring, with small and large gaps, overlapping, repeated and empty.
    let ranges: Vec<(u64, usize)> = vec![
        (250_000, 50_000),
        (0, 10),
        (10, 20),
        (100, 1),
        (40, 30),
        (50, 100),
        (120_000, 5),
        (0, 10),
        (7, 0),
        (299_999, 1),
    ];
    for store in [&s, &h.other()] {
        for pack in [0, 1] {
            let got = store.read_ranges(pack, &ranges).expect("read_ranges");
            assert_eq!(got.len(), ranges.len());
            for (buf, &(off, len)) in got.iter().zip(&ranges) {
                assert_eq!(
                    buf[..],
                    data[off as usize..off as usize + len],
                    "({off}, {len})"
                );
            }
        }
    }
    assert!(s.read_ranges(0, &[]).expect("no ranges").is_empty());
    assert!(matches!(
        s.read_ranges(9, &[(0, 4)]),
        Err(Error::PackNotFound { pack_id: 9 })
    ));
    for pack in [0, 1] {
        let err = s
            .read_ranges(pack, &[(0, 4), (299_990, 20)])
            .expect_err("past end");
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
}

/// `open_range` returns a handle that reads the given range (and its pack); an absent pack is
/// `PackNotFound`.
pub fn open_range_reads_the_range(h: &dyn PackStoreHarness) {
    let s = h.store();
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 241) as u8).collect();
    write_pack(s.as_ref(), 2, &data);
    write_pack(s.as_ref(), 3, &data);
    s.seal(3, b"toc").expect("seal");
    for pack in [2, 3] {
        let handle = s.open_range(pack, 1000, 500_000).expect("open_range");
        assert_eq!(handle.pack_id(), pack);
        // As a stream reads it: in chunks from the start, then beyond the first chunk.
        for (off, len) in [
            (1000u64, 4usize),
            (1000, 262_144),
            (263_144, 237_856),
            (5, 10),
        ] {
            let mut buf = vec![0u8; len];
            handle.read_at(off, &mut buf).expect("read");
            assert_eq!(
                buf[..],
                data[off as usize..off as usize + len],
                "({off}, {len})"
            );
        }
        let mut buf = [0u8; 8];
        let err = handle.read_at(599_996, &mut buf).expect_err("past end");
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    }
    assert!(matches!(
        s.open_range(8, 0, 10),
        Err(Error::PackNotFound { pack_id: 8 })
    ));
}

/// Handles on a sealed pack (`open_pack` and `open_range`) keep reading after another instance
/// deletes it, while the pack is absent at once for `list`, `len`, `is_sealed`, `sidecar` and
/// `open_pack` of every instance, and for reads of the instance that deleted it.
pub fn sealed_pack_handles_survive_deletion(h: &dyn PackStoreHarness) {
    let (s, other) = (h.store(), h.other());
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 239) as u8).collect();
    write_pack(s.as_ref(), 4, &data);
    s.seal(4, b"toc").expect("seal");
    write_pack(s.as_ref(), 5, b"stays");
    let pinned = s.open_pack(4).expect("open_pack");
    let ranged = s.open_range(4, 100, 1000).expect("open_range");
    other.delete(4).expect("delete from another instance");
    for handle in [&pinned, &ranged] {
        let mut buf = vec![0u8; 1000];
        handle.read_at(100, &mut buf).expect("read after delete");
        assert_eq!(buf[..], data[100..1100]);
        let mut buf = vec![0u8; 10];
        handle
            .read_at(5000, &mut buf)
            .expect("read elsewhere after delete");
        assert_eq!(buf[..], data[5000..5010]);
    }
    for store in [&s, &other] {
        assert_eq!(store.list().expect("list"), vec![5]);
        assert_eq!(store.len(4).expect("len"), None);
        assert!(!store.is_sealed(4).expect("is_sealed"));
        assert_eq!(store.sidecar(4).expect("sidecar"), None);
        assert!(matches!(
            store.open_pack(4),
            Err(Error::PackNotFound { pack_id: 4 })
        ));
    }
    let mut buf = [0u8; 4];
    assert!(matches!(
        other.read_at(4, 0, &mut buf),
        Err(Error::PackNotFound { pack_id: 4 })
    ));
    assert!(matches!(
        other.read_ranges(4, &[(0, 4)]),
        Err(Error::PackNotFound { pack_id: 4 })
    ));
    assert!(matches!(
        other.open_range(4, 0, 4),
        Err(Error::PackNotFound { pack_id: 4 })
    ));
    // Purging (a no-op where deletion is immediate) keeps other packs.
    s.purge_deleted().expect("purge");
    assert_eq!(s.list().expect("list"), vec![5]);
}
