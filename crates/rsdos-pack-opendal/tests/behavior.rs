//! The PackStore behaviour suite against OpendalPackStore on the OpenDAL `fs` and `memory`
//! services (no server needed), plus what is specific to staging and uploading.

use std::io::Write;
use std::sync::Arc;

use rsdos_core::{Error, ErrorKind, PackStore};
use rsdos_pack_opendal::{OpendalPackStore, RemoteLocation, StoreOptions, opendal};
use rsdos_testkit::pack_store_suite::PackStoreHarness;

mod common;

// The suite seals some packs (uploading them); the tests below cover reads of uploaded packs.
mod fs_service {
    use super::*;

    pub struct Harness {
        _dirs: tempfile::TempDir,
        url: String,
        staging: std::path::PathBuf,
        store: Arc<dyn PackStore>,
    }

    impl Harness {
        pub fn new() -> Self {
            let dirs = tempfile::tempdir().expect("tempdir");
            let remote = dirs.path().join("remote");
            std::fs::create_dir(&remote).expect("mkdir");
            let url = format!("fs://{}", remote.display());
            let staging = dirs.path().join("staging");
            let store = Arc::new(OpendalPackStore::open(&url, &staging).expect("open"));
            Harness {
                _dirs: dirs,
                url,
                staging,
                store,
            }
        }
    }

    impl PackStoreHarness for Harness {
        fn store(&self) -> Arc<dyn PackStore> {
            Arc::clone(&self.store)
        }
        fn other(&self) -> Arc<dyn PackStore> {
            Arc::new(OpendalPackStore::open(&self.url, &self.staging).expect("open other"))
        }
    }

    rsdos_testkit::pack_store_suite!(Harness::new);
}

mod memory_service {
    use super::*;

    pub struct Harness {
        _dirs: tempfile::TempDir,
        op: opendal::Operator,
        store: Arc<dyn PackStore>,
    }

    fn store_over(op: &opendal::Operator, staging: &std::path::Path) -> Arc<dyn PackStore> {
        let location = RemoteLocation {
            scheme: "memory".into(),
            bucket: String::new(),
            prefix: String::new(),
        };
        Arc::new(
            OpendalPackStore::from_operator(op.clone(), location, StoreOptions::default(), staging)
                .expect("store"),
        )
    }

    impl Harness {
        pub fn new() -> Self {
            let dirs = tempfile::tempdir().expect("tempdir");
            let op = opendal::Operator::via_iter("memory", Vec::<(String, String)>::new())
                .expect("memory operator");
            let store = store_over(&op, dirs.path());
            Harness {
                _dirs: dirs,
                op,
                store,
            }
        }
    }

    impl PackStoreHarness for Harness {
        fn store(&self) -> Arc<dyn PackStore> {
            Arc::clone(&self.store)
        }
        fn other(&self) -> Arc<dyn PackStore> {
            store_over(&self.op, self._dirs.path())
        }
    }

    rsdos_testkit::pack_store_suite!(Harness::new);
}

fn fs_store() -> (tempfile::TempDir, OpendalPackStore, std::path::PathBuf) {
    let dirs = tempfile::tempdir().expect("tempdir");
    let remote = dirs.path().join("remote");
    std::fs::create_dir(&remote).expect("mkdir");
    let store = OpendalPackStore::open(
        &format!("fs://{}", remote.display()),
        &dirs.path().join("staging"),
    )
    .expect("open");
    (dirs, store, remote)
}

fn write_pack(store: &dyn PackStore, id: u64, data: &[u8]) {
    let mut a = store.open_append(id).expect("open_append");
    a.write_all(data).expect("write");
    a.sync().expect("sync");
}

#[test]
fn seal_uploads_then_removes_the_staged_copy() {
    let (_d, store, remote) = fs_store();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    write_pack(&store, 4, &data);
    assert_eq!(store.staged().expect("staged"), vec![4]);
    assert!(store.uploaded().expect("uploaded").is_empty());
    store.seal(4, b"toc").expect("seal");
    assert!(store.staged().expect("staged").is_empty());
    assert_eq!(store.uploaded().expect("uploaded"), vec![4]);
    assert_eq!(std::fs::read(remote.join("4")).expect("remote pack"), data);
    assert_eq!(
        std::fs::read(remote.join("4.toc")).expect("sidecar"),
        b"toc"
    );
    assert_eq!(store.len(4).expect("len"), Some(100_000));
    let mut buf = vec![0u8; 1000];
    store.read_at(4, 5000, &mut buf).expect("ranged read");
    assert_eq!(buf, data[5000..6000]);
    let h = store.open_pack(4).expect("open_pack");
    h.read_at(99_000, &mut buf).expect("handle read");
    assert_eq!(buf, data[99_000..]);
    let err = h.read_at(99_001, &mut buf).expect_err("past end");
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    let err = store.read_at(4, 99_001, &mut buf).expect_err("past end");
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // Sealing again rewrites the sidecar only.
    store.seal(4, b"toc2").expect("reseal");
    assert_eq!(store.sidecar(4).expect("sidecar"), Some(b"toc2".to_vec()));
}

#[test]
fn large_packs_are_uploaded_in_parts() {
    let dirs = tempfile::tempdir().expect("tempdir");
    let remote = dirs.path().join("remote");
    std::fs::create_dir(&remote).expect("mkdir");
    let url = format!(
        "fs://{}?single_put_max=1000&chunk_size={}",
        remote.display(),
        5 << 20
    );
    let store = OpendalPackStore::open(&url, &dirs.path().join("staging")).expect("open");
    assert_eq!(store.options().single_put_max, 1000);
    let data: Vec<u8> = (0..(11u32 << 20)).map(|i| (i % 249) as u8).collect();
    write_pack(&store, 0, &data);
    store.seal(0, b"t").expect("seal");
    assert_eq!(std::fs::read(remote.join("0")).expect("remote"), data);
}

#[test]
fn an_uploaded_pack_can_be_locked_but_not_appended_to() {
    let (_d, store, _remote) = fs_store();
    write_pack(&store, 1, b"sealed");
    store.seal(1, b"t").expect("seal");
    let mut a = store.open_append(1).expect("lock an uploaded pack");
    assert_eq!(a.position(), 6);
    let err = store.open_append(1).err().expect("second");
    assert_eq!(err.kind(), ErrorKind::Locked);
    assert!(a.write_all(b"more").is_err());
    a.truncate(6).expect("no-op truncate");
    assert!(a.truncate(3).is_err());
    // Maintenance deletes a pack it holds the lock of.
    store.delete(1).expect("delete");
    drop(a);
    assert_eq!(store.list().expect("list"), Vec::<u64>::new());
}

#[test]
fn a_pack_being_appended_to_cannot_be_sealed() {
    let (_d, store, _remote) = fs_store();
    let mut a = store.open_append(2).expect("open");
    a.write_all(b"abc").expect("write");
    let err = store.seal(2, b"t").expect_err("seal while appending");
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    drop(a);
    store.seal(2, b"t").expect("seal");
}

#[test]
fn a_failed_upload_keeps_the_staged_pack_readable() {
    let dirs = tempfile::tempdir().expect("tempdir");
    let remote = dirs.path().join("remote");
    std::fs::create_dir(&remote).expect("mkdir");
    let url = format!("fs://{}?retries=0", remote.display());
    let store = OpendalPackStore::open(&url, &dirs.path().join("staging")).expect("open");
    write_pack(&store, 0, b"precious");
    // The remote folder turns into a file: every upload fails.
    std::fs::remove_dir(&remote).expect("rmdir");
    std::fs::write(&remote, b"x").expect("write");
    let err = store.seal(0, b"toc").expect_err("upload must fail");
    let msg = err.to_string();
    assert!(msg.contains("fs://") && msg.contains("/0"), "{msg}");
    assert_eq!(store.staged().expect("staged"), vec![0]);
    let mut buf = [0u8; 8];
    store.read_at(0, 0, &mut buf).expect("still readable");
    assert_eq!(&buf, b"precious");
    // Once the remote is back, sealing again uploads.
    std::fs::remove_file(&remote).expect("rm");
    std::fs::create_dir(&remote).expect("mkdir");
    store.seal(0, b"toc").expect("retry");
    assert!(store.staged().expect("staged").is_empty());
    assert_eq!(
        std::fs::read(remote.join("0")).expect("uploaded"),
        b"precious"
    );
}

#[test]
fn an_unreachable_remote_names_service_bucket_and_key_but_no_secret() {
    let dirs = tempfile::tempdir().expect("tempdir");
    // Port 9 (discard) on loopback: nothing listens there in tests.
    let store = OpendalPackStore::open_with(
        "s3://somebucket/some/prefix?endpoint=http://127.0.0.1:9&region=us-east-1&retries=1&timeout_secs=5",
        dirs.path(),
        [
            ("access_key_id", "AKIDEXAMPLEKEYID"),
            ("secret_access_key", "s3cr3t-do-not-print"),
        ],
    )
    .expect("open");
    let mut buf = [0u8; 4];
    let err = store.read_at(7, 0, &mut buf).expect_err("unreachable");
    let mut full = format!("{err} / {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        full.push_str(&format!(" / {s}"));
        source = s.source();
    }
    assert!(full.contains("s3://somebucket/some/prefix/7"), "{full}");
    assert!(!full.contains("s3cr3t-do-not-print"), "{full}");
    assert!(!full.contains("AKIDEXAMPLEKEYID"), "{full}");
    assert!(!format!("{store:?}").contains("s3cr3t"));
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[test]
fn bad_urls_are_configuration_errors() {
    let dirs = tempfile::tempdir().expect("tempdir");
    for url in ["nope", "ftp://x/y", "s3://", "s3://b?retries=many"] {
        let err = OpendalPackStore::open(url, dirs.path()).expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{url}: {err}");
    }
}

#[test]
fn missing_packs_are_pack_not_found_on_both_sides() {
    let (_d, store, _remote) = fs_store();
    let mut buf = [0u8; 0];
    assert!(matches!(
        store.read_at(3, 0, &mut buf),
        Err(Error::PackNotFound { pack_id: 3 })
    ));
    assert!(matches!(
        store.open_pack(3),
        Err(Error::PackNotFound { pack_id: 3 })
    ));
    assert!(matches!(
        store.seal(3, b"x"),
        Err(Error::PackNotFound { pack_id: 3 })
    ));
}

#[test]
fn a_container_keeps_its_packs_in_opendal_fs() {
    let remote = tempfile::tempdir().expect("tempdir");
    let url = format!("fs://{}", remote.path().display());
    common::container_scenario(&|staging| OpendalPackStore::open(&url, staging).expect("open"));
}
