//! What is specific to reads and deletes of uploaded packs: deferred deletion with its grace
//! period and purge, a deleted id not reused meanwhile, and bulk reads of a container whose
//! packs are fetched in parallel still coming out in storage order.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rsdos::{Container, InitOptions, PackWriteOptions};
use rsdos_core::{ErrorKind, PackStore};
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::{Rng, random_bytes};

fn sealed_pack(store: &dyn PackStore, id: u64, data: &[u8]) {
    let mut a = store.open_append(id).expect("open_append");
    a.write_all(data).expect("write");
    a.sync().expect("sync");
    drop(a);
    store.seal(id, b"toc").expect("seal");
}

fn remote_files(remote: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(remote)
        .expect("list remote")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn deleted_packs_are_hidden_at_once_and_purged_after_the_grace_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let remote = dir.path().join("remote");
    std::fs::create_dir(&remote).expect("mkdir");
    let url = format!("fs://{}", remote.display());
    let store = OpendalPackStore::open(&url, &dir.path().join("staging")).expect("open");
    sealed_pack(&store, 0, b"old bytes");
    sealed_pack(&store, 1, b"other pack");
    let handle = store.open_range(0, 4, 5).expect("open_range");
    store.delete(0).expect("delete");
    assert_eq!(store.list().expect("list"), vec![1]);
    assert_eq!(store.deleted_kept().expect("kept"), vec![0]);
    assert_eq!(remote_files(&remote), ["0", "0.deleted", "1", "1.toc"]);
    // Its id is not reused while its bytes are kept (pinned handles still read them).
    let err = store.open_append(0).err().expect("tombstoned id");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let mut buf = [0u8; 5];
    handle.read_at(4, &mut buf).expect("pinned read");
    assert_eq!(&buf, b"bytes");
    let mut head = [0u8; 3];
    handle
        .read_at(0, &mut head)
        .expect("pinned read outside the prefetched range");
    assert_eq!(&head, b"old");
    // Within the grace period nothing is purged.
    assert_eq!(store.purge_deleted().expect("purge"), 0);
    assert_eq!(store.deleted_kept().expect("kept"), vec![0]);

    // Past it (an instance with no grace period), the bytes go, then the id is free again.
    let eager = OpendalPackStore::open(
        &format!("{url}?delete_grace_secs=0"),
        &dir.path().join("staging"),
    )
    .expect("open eager");
    assert_eq!(eager.purge_deleted().expect("purge"), 1);
    assert_eq!(remote_files(&remote), ["1", "1.toc"]);
    assert!(matches!(
        handle.read_at(0, &mut head),
        Err(rsdos_core::Error::PackNotFound { pack_id: 0 })
    ));
    drop(store.open_append(0).expect("id free after the purge"));
    // Without a grace period a delete removes the bytes at once.
    eager.delete(1).expect("delete");
    assert_eq!(remote_files(&remote), Vec::<String>::new());
}

#[test]
fn bulk_reads_fetch_packs_in_parallel_in_storage_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("c");
    drop(
        Container::init(
            &root,
            &InitOptions::default().with_pack_size_target(256 * 1024),
        )
        .expect("init"),
    );
    let url = format!("fs://{}", dir.path().join("remote").display());
    let store = Arc::new(OpendalPackStore::open(&url, &root.join("packs")).expect("store"));
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx")).expect("index"));
    let c = Container::open_with_storage(&root, index, Arc::clone(&store) as Arc<dyn PackStore>)
        .expect("open");
    let mut rng = Rng::new(3);
    // Small objects over many packs, with objects larger than a bulk-read window among them.
    let contents: Vec<Vec<u8>> = (0..3000)
        .map(|i| {
            let len = if i % 500 == 7 {
                1_500_000
            } else {
                1 + (i * 97) % 4000
            };
            random_bytes(&mut rng, len)
        })
        .collect();
    let keys = c
        .add_many_to_pack(
            contents.iter().map(|d| d.as_slice()),
            &PackWriteOptions::default(),
        )
        .expect("add");
    assert!(store.uploaded().expect("uploaded").len() > 20);
    let expected: std::collections::HashMap<&str, &[u8]> = keys
        .iter()
        .map(String::as_str)
        .zip(contents.iter().map(Vec::as_slice))
        .collect();
    let mut last = (0, 0);
    let mut seen = 0;
    for item in c.read_many(keys.iter().rev(), false).expect("read_many") {
        let item = item.expect("item");
        let p = item.meta.packed.expect("packed");
        assert!((p.pack_id, p.offset) >= last, "out of storage order");
        last = (p.pack_id, p.offset);
        let data = item.reader.expect("present").read_all().expect("read");
        assert_eq!(data, expected[item.hashkey.as_str()]);
        seen += 1;
    }
    assert_eq!(seen, keys.len());
    // Single reads (a whole small object, a large one streamed) give the same bytes.
    for key in keys.iter().step_by(97) {
        assert_eq!(c.get_object(key).expect("get"), expected[key.as_str()]);
    }
}
