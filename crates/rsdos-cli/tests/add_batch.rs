//! `rsdos add` of many files as loose objects goes through write batches (one durability point
//! per batch): the objects, the lines and the summary are those of one add per file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rsdos::{Container, HashType, ObjectType, PackWriteOptions};
use tempfile::TempDir;

fn rsdos(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .env_remove("RSDOS_PATH")
        .env_remove("DOSTORE_PATH")
        .arg("-p")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rsdos")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `count` files `d/f00000` ... with contents `content <i % distinct>` (so repeated contents).
fn make_files(dir: &Path, count: usize, distinct: usize) -> Vec<(PathBuf, Vec<u8>)> {
    std::fs::create_dir_all(dir).expect("mkdir");
    (0..count)
        .map(|i| {
            let path = dir.join(format!("f{i:05}"));
            let data = format!("content {}\n", i % distinct)
                .repeat(i % 7)
                .into_bytes();
            std::fs::write(&path, &data).expect("write");
            (path, data)
        })
        .collect()
}

fn sandbox_is_empty(store: &Path) -> bool {
    std::fs::read_dir(store.join("sandbox"))
        .expect("list sandbox")
        .next()
        .is_none()
}

#[test]
fn adding_many_files_loose_stores_and_prints_each_once_durable() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let container = Container::init(&store, &Default::default()).expect("init");
    // One content already packed and one already loose: not written again.
    let files = make_files(&tmp.path().join("tree"), 450, 300);
    container
        .add_many_to_pack([files[1].1.as_slice()], &PackWriteOptions::default())
        .expect("pack one");
    container.add_object(&files[2].1).expect("add one");

    let out = rsdos(
        &store,
        &["add", tmp.path().join("tree").to_str().expect("utf-8")],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<(&str, &str)> = stdout
        .lines()
        .map(|l| l.split_once("  ").expect("hashkey  path"))
        .collect();
    assert_eq!(lines.len(), files.len(), "one line per file");
    for ((key, shown), (path, data)) in lines.iter().zip(&files) {
        assert_eq!(Path::new(shown), path, "in sorted order");
        assert_eq!(*key, HashType::Sha256.hash_hex(data), "{shown}");
        assert_eq!(&container.get_object(key).expect("read back"), data);
    }
    assert!(
        text(&out.stderr).contains("added 450 files"),
        "{}",
        text(&out.stderr)
    );
    let distinct: std::collections::BTreeSet<&str> = lines.iter().map(|(k, _)| *k).collect();
    let count = container.count().expect("count");
    assert_eq!(count.packed, 1);
    assert_eq!(
        count.loose,
        distinct.len() as u64 - 1,
        "no loose copy of the packed one"
    );
    assert_eq!(
        container
            .meta(&HashType::Sha256.hash_hex(&files[1].1))
            .expect("meta")
            .object_type,
        ObjectType::Packed
    );
    assert!(sandbox_is_empty(&store));
    let validate = rsdos(&store, &["validate"]);
    assert!(validate.status.success(), "{}", text(&validate.stdout));
}

/// A file that fails when read: what was added before it is still stored and printed (as when
/// every file was durable on its own), nothing after it, and nothing is left in the sandbox.
#[cfg(target_os = "linux")]
#[test]
fn a_failing_input_keeps_what_was_added_before_it() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let container = Container::init(&store, &Default::default()).expect("init");
    let files = make_files(&tmp.path().join("tree"), 3, 3);
    let arg = |p: &Path| p.to_str().expect("utf-8").to_string();
    // /proc/self/mem is a regular file whose read at offset 0 fails (EIO): no page is mapped
    // there.
    let args = [
        "add".to_string(),
        arg(&files[0].0),
        arg(&files[1].0),
        "/proc/self/mem".to_string(),
        arg(&files[2].0),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = rsdos(&store, &args);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/proc/self/mem"), "{stderr}");
    let printed: Vec<String> = text(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(printed.len(), 2, "{printed:?}");
    for (path, data) in &files[..2] {
        let key = HashType::Sha256.hash_hex(data);
        assert!(printed.contains(&format!("{key}  {}", path.display())));
        assert_eq!(&container.get_object(&key).expect("kept"), data);
    }
    let last = HashType::Sha256.hash_hex(&files[2].1);
    assert!(
        !container.has(&last).expect("has"),
        "nothing after the failure"
    );
    assert!(sandbox_is_empty(&store));
}
