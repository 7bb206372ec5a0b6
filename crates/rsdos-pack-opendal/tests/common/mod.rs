//! A Container whose packs live in an OpendalPackStore: the scenario shared by the `fs` test
//! (tests/behavior.rs) and the S3 and Azure tests (tests/remote.rs).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rsdos::{
    CompressMode, Container, InitOptions, NoProgress, PackOptions, PackWriteOptions, RepackOptions,
    ValidateOptions,
};
use rsdos_core::PackStore;
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::{Rng, random_bytes};

/// Opens the container at `root` with its packs in `open_store(staging)`; the staging folder
/// is the container's own `packs/` (the active pack stays local).
fn open(
    root: &Path,
    open_store: &dyn Fn(&Path) -> OpendalPackStore,
) -> (Container, Arc<OpendalPackStore>) {
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx")).expect("index"));
    let store = Arc::new(open_store(&root.join("packs")));
    let packs: Arc<dyn PackStore> = Arc::clone(&store) as Arc<dyn PackStore>;
    let c = Container::open_with_storage(root, index, packs).expect("open container");
    (c, store)
}

/// Insert (loose and direct to packs), pack, read back, validate, delete and repack on a
/// container whose packs are in the remote `open_store` gives.
pub fn container_scenario(open_store: &dyn Fn(&Path) -> OpendalPackStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("c");
    // Small packs, so that several fill up, get sealed and are uploaded.
    drop(
        Container::init(
            &root,
            &InitOptions::default().with_pack_size_target(64 * 1024),
        )
        .expect("init"),
    );
    let (c, store) = open(&root, open_store);
    let mut rng = Rng::new(42);
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..150 {
        let data = random_bytes(&mut rng, 100 + (i * 37) % 3000);
        let key = c.add_object(&data).expect("add loose");
        expected.insert(key, data);
    }
    let report = c
        .pack_loose(
            &PackOptions::default()
                .with_compress(CompressMode::Auto)
                .with_threads(2),
            &NoProgress,
        )
        .expect("pack");
    let _ = report;
    let direct: Vec<Vec<u8>> = (0..100)
        .map(|i| random_bytes(&mut rng, 50 + (i * 53) % 2000))
        .collect();
    let keys = c
        .add_many_to_pack(
            direct.iter().map(|d| d.as_slice()),
            &PackWriteOptions::default(),
        )
        .expect("direct to pack");
    for (k, d) in keys.into_iter().zip(direct) {
        expected.insert(k, d);
    }

    let uploaded = store.uploaded().expect("uploaded");
    assert!(
        uploaded.len() >= 3,
        "full packs must be sealed and uploaded: {uploaded:?}"
    );
    let staged = store.staged().expect("staged");
    assert!(
        staged.len() <= 1,
        "only the active pack stays local: {staged:?}"
    );
    for id in &uploaded {
        assert!(store.is_sealed(*id).expect("is_sealed"), "pack {id}");
    }

    for (k, d) in &expected {
        assert_eq!(&c.get_object(k).expect("read"), d, "{k}");
    }
    let report = c
        .validate(&ValidateOptions::default().with_threads(2), &NoProgress)
        .expect("validate");
    assert!(report.is_valid(), "{report:?}");

    // A second process: another store over the same staging folder and remote.
    drop(c);
    let (c2, store2) = open(&root, open_store);
    let got = c2
        .get_many(expected.keys(), false)
        .expect("get_many from a new instance");
    for (k, d) in &expected {
        assert_eq!(got.get(k).and_then(|v| v.as_ref()), Some(d), "{k}");
    }

    // Delete a third of the objects, then repack: remote packs are rewritten and replaced.
    let gone: Vec<String> = expected.keys().take(expected.len() / 3).cloned().collect();
    c2.delete(gone.iter()).expect("delete");
    for k in &gone {
        expected.remove(k);
    }
    c2.repack(&RepackOptions::default(), &NoProgress)
        .expect("repack");
    for (k, d) in &expected {
        assert_eq!(&c2.get_object(k).expect("read after repack"), d, "{k}");
    }
    for k in &gone {
        assert!(!c2.has(k).expect("has"), "{k} was deleted");
    }
    let report = c2
        .validate(&ValidateOptions::default().with_threads(2), &NoProgress)
        .expect("validate after repack");
    assert!(report.is_valid(), "{report:?}");
    // The packs repack replaced are gone from the remote too.
    let referenced = c2.index().pack_ids().expect("pack ids");
    for id in store2.list().expect("list") {
        assert!(
            referenced.contains(&id) || store2.staged().expect("staged").contains(&id),
            "pack {id} is left in the remote without rows"
        );
    }
}
