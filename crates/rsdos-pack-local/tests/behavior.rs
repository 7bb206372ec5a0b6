//! The PackStore behaviour suite against LocalPackStore, plus local-folder specifics.

use std::io::Write;
use std::sync::Arc;

use rsdos_core::{ErrorKind, PackStore};
use rsdos_pack_local::LocalPackStore;
use rsdos_testkit::pack_store_suite::PackStoreHarness;

struct Harness {
    dir: tempfile::TempDir,
    store: Arc<dyn PackStore>,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(LocalPackStore::new(dir.path(), 8));
        Harness { dir, store }
    }
}

impl PackStoreHarness for Harness {
    fn store(&self) -> Arc<dyn PackStore> {
        Arc::clone(&self.store)
    }
    fn other(&self) -> Arc<dyn PackStore> {
        Arc::new(LocalPackStore::new(self.dir.path(), 8))
    }
}

rsdos_testkit::pack_store_suite!(Harness::new);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn open_handles_stay_bounded_with_many_packs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalPackStore::new(dir.path(), 4);
    for id in 0..200 {
        let mut a = store.open_append(id).expect("open");
        a.write_all(&id.to_le_bytes()).expect("write");
    }
    let before = open_fds();
    for round in 0..2 {
        for id in 0..200u64 {
            let mut buf = [0u8; 8];
            store.read_at(id, 0, &mut buf).expect("read");
            assert_eq!(u64::from_le_bytes(buf), id, "round {round}");
        }
    }
    assert!(store.open_handles() <= 4);
    assert!(
        open_fds() <= before + 4,
        "fds grew from {before} to {}",
        open_fds()
    );
}

#[test]
fn stale_lock_of_a_dead_rsdos_process_is_taken_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What a SIGKILLed rsdos appender leaves: the file with its pid, no advisory lock.
    std::fs::write(dir.path().join("0.lock"), "rsdos 4194303\n").expect("write");
    let store = LocalPackStore::new(dir.path(), 4);
    let mut a = store.open_append(0).expect("stale lock must not block");
    a.write_all(b"x").expect("write");
}

#[test]
fn lock_file_of_disk_objectstore_is_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    // disk-objectstore's packer creates the lock empty, without an advisory lock.
    std::fs::write(dir.path().join("0.lock"), "").expect("write");
    let store = LocalPackStore::new(dir.path(), 4);
    let err = store.open_append(0).err().expect("must refuse");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(err.to_string().contains("disk-objectstore"), "{err}");
    // Other packs are not affected; the lock file is not removed by the refusal.
    store.open_append(1).expect("pack 1");
    assert!(dir.path().join("0.lock").exists());
}

#[test]
fn lock_file_is_removed_when_the_appender_is_dropped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalPackStore::new(dir.path(), 4);
    let a = store.open_append(5).expect("open");
    assert!(dir.path().join("5.lock").exists());
    drop(a);
    assert!(!dir.path().join("5.lock").exists());
}

#[test]
fn a_pack_replaced_under_the_same_name_is_reread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalPackStore::new(dir.path(), 4);
    std::fs::write(dir.path().join("0"), b"old-content").expect("write");
    let mut buf = [0u8; 3];
    store.read_at(0, 0, &mut buf).expect("read");
    assert_eq!(&buf, b"old");
    // disk-objectstore's repack: remove the pack, link a new file under its name.
    std::fs::write(dir.path().join("tmp"), b"new-content").expect("write");
    std::fs::remove_file(dir.path().join("0")).expect("rm");
    std::fs::rename(dir.path().join("tmp"), dir.path().join("0")).expect("mv");
    store.read_at(0, 0, &mut buf).expect("read");
    assert_eq!(&buf, b"new");
}

#[test]
fn invalid_names_are_not_packs() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["0", "7", "01", "-1", "3.lock", "4.toc", "abc", ".hidden"] {
        std::fs::write(dir.path().join(name), b"x").expect("write");
    }
    std::fs::create_dir(dir.path().join("9")).expect("dir");
    let store = LocalPackStore::new(dir.path(), 4);
    assert_eq!(store.list().expect("list"), vec![0, 7]);
}

#[test]
fn a_killed_lock_maker_never_leaves_an_empty_lock_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    // What a writer killed while preparing its lock leaves: a hidden temporary file only.
    std::fs::write(dir.path().join(".lock.1.2.3.tmp"), "").expect("write");
    let store = LocalPackStore::new(dir.path(), 4);
    drop(store.open_append(0).expect("free"));
    // A stale lock taken over twice still names its holder at offset 0.
    std::fs::write(dir.path().join("0.lock"), "rsdos 4194303\n").expect("write");
    let a = store.open_append(0).expect("take over");
    let content = std::fs::read(dir.path().join("0.lock")).expect("read");
    assert_eq!(
        content,
        format!("rsdos {}\n", std::process::id()).into_bytes()
    );
    drop(a);
}
