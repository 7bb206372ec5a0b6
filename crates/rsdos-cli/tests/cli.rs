//! End-to-end tests of the `rsdos` binary: each test runs the built executable on containers
//! in temporary folders and checks its output, exit status and what ends up stored.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rsdos::HashType;
use tempfile::TempDir;

// ---- helpers -----------------------------------------------------------------------------

/// A command for the binary with a clean environment: the developer's `RSDOS_PATH` or
/// `DOSTORE_PATH` must not leak into a test.
fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rsdos"));
    cmd.env_remove("RSDOS_PATH").env_remove("DOSTORE_PATH");
    cmd
}

/// `rsdos -p <store> <args>`, run to completion.
fn rsdos(store: &Path, args: &[&str]) -> Output {
    bin()
        .arg("-p")
        .arg(store)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rsdos")
}

/// Like [`rsdos`], with `input` on stdin.
fn rsdos_stdin(store: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .arg("-p")
        .arg(store)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rsdos");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write stdin");
    drop(stdin);
    child.wait_with_output().expect("wait rsdos")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "rsdos failed with {:?}: {}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts exit status 2 and returns stderr.
fn fails(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// Parses `<hashkey>  <path>` lines.
fn parse_add(out: &str) -> Vec<(String, String)> {
    out.lines()
        .map(|l| {
            let (k, p) = l.split_once("  ").expect("hashkey  path");
            (k.to_string(), p.to_string())
        })
        .collect()
}

fn status_json(store: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(rsdos(store, &["status", "--json"]))).expect("status JSON")
}

fn sha256(data: &[u8]) -> String {
    HashType::Sha256.hash_hex(data)
}

/// xorshift64: reproducible random bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

/// A folder tree of random files: nested folders, sizes from 0 B to 300 KiB (both ends
/// included), some files with the same content as others. Returns path (as printed by
/// `rsdos add <root>`) to content.
fn make_tree(root: &Path, seed: u64) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut rng = Rng(seed);
    let dirs = ["", "a", "a/b", "a/b/c", "a/d", "z"];
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let mut files = BTreeMap::new();
    let mut contents: Vec<Vec<u8>> = Vec::new();
    for i in 0..30 {
        let size = match i {
            0 => 0,
            1 => 300 * 1024,
            2 => 1,
            _ => rng.below(300 * 1024 + 1) as usize,
        };
        let data = if i >= 24 {
            // Duplicates of earlier files, in other folders.
            contents[rng.below(contents.len() as u64) as usize].clone()
        } else {
            rng.bytes(size)
        };
        contents.push(data.clone());
        let dir = dirs[rng.below(dirs.len() as u64) as usize];
        let path = root.join(dir).join(format!("f{i:02}.bin"));
        std::fs::write(&path, &data).expect("write file");
        files.insert(path, data);
    }
    files
}

fn distinct(files: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<String, usize> {
    files.values().map(|d| (sha256(d), d.len())).collect()
}

/// Checks `cat` of every file, to stdout and with `-o`.
fn check_cat(store: &Path, tmp: &Path, files: &BTreeMap<PathBuf, Vec<u8>>) {
    for (i, data) in files.values().enumerate() {
        let key = sha256(data);
        let out = rsdos(store, &["cat", &key]);
        assert!(out.status.success(), "cat {key}: {}", stderr(&out));
        assert!(out.stdout == *data, "cat {key} to stdout differs");
        let dest = tmp.join(format!("out{i}"));
        let out = rsdos(store, &["cat", &key, "-o", dest.to_str().expect("utf-8")]);
        assert!(out.status.success(), "cat -o {key}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        assert!(
            std::fs::read(&dest).expect("read -o file") == *data,
            "cat -o {key} differs"
        );
    }
}

// ---- tests ---------------------------------------------------------------------------------

#[test]
fn init_add_folder_status_ls_cat_roundtrip() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let tree = tmp.path().join("tree");
    let files = make_tree(&tree, 0x9e37_79b9_7f4a_7c15);

    let out = ok(rsdos(&store, &["init"]));
    assert_eq!(
        out.trim(),
        format!("Created container: {}", store.display())
    );

    let added = rsdos(&store, &["add", tree.to_str().expect("utf-8")]);
    let summary = stderr(&added);
    let lines = parse_add(&ok(added));
    assert!(
        summary.contains(&format!("added {} files", files.len())),
        "summary: {summary}"
    );
    // One line per file, in sorted order, each with the hash of that file's content.
    let printed: Vec<PathBuf> = lines.iter().map(|(_, p)| PathBuf::from(p)).collect();
    let expected: Vec<PathBuf> = files.keys().cloned().collect();
    assert_eq!(printed, expected);
    for (key, path) in &lines {
        assert_eq!(key, &sha256(&files[Path::new(path)]), "hashkey of {path}");
    }

    let distinct = distinct(&files);
    assert!(distinct.len() < files.len(), "the tree has duplicates");
    let status = status_json(&store);
    assert_eq!(status["count"]["loose"], distinct.len() as u64);
    assert_eq!(status["count"]["packed"], 0);
    assert_eq!(status["count"]["pack_files"], 0);
    assert_eq!(
        status["size"]["total_size_loose"],
        distinct.values().sum::<usize>() as u64
    );
    assert_eq!(status["hash_type"], "sha256");
    assert_eq!(status["compression"], "zlib+1");
    assert_eq!(status["id"].as_str().expect("id").len(), 32);
    assert_eq!(
        PathBuf::from(status["path"].as_str().expect("path")),
        std::path::absolute(&store).expect("absolute")
    );

    let listed: Vec<String> = ok(rsdos(&store, &["ls"]))
        .lines()
        .map(str::to_string)
        .collect();
    let unique: BTreeSet<String> = listed.iter().cloned().collect();
    assert_eq!(unique.len(), listed.len(), "ls lists each object once");
    assert_eq!(unique, distinct.keys().cloned().collect::<BTreeSet<_>>());

    check_cat(&store, tmp.path(), &files);

    // The human status names the container and the counts.
    let human = ok(rsdos(&store, &["status"]));
    assert!(human.contains(&store.display().to_string()), "{human}");
    assert!(
        human.contains(&format!("loose:          {}", distinct.len())),
        "{human}"
    );
}

#[test]
fn add_pack_stores_everything_in_packs() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let tree = tmp.path().join("tree");
    let files = make_tree(&tree, 42);
    // A small pack target, so that the objects are spread over several packs.
    ok(rsdos(&store, &["init", "--pack-size-target", "512KiB"]));
    let lines = parse_add(&ok(rsdos(
        &store,
        &["add", "--pack", tree.to_str().expect("utf-8")],
    )));
    assert_eq!(lines.len(), files.len());
    for (key, path) in &lines {
        assert_eq!(key, &sha256(&files[Path::new(path)]));
    }

    let distinct = distinct(&files);
    let status = status_json(&store);
    assert_eq!(status["count"]["loose"], 0);
    assert_eq!(status["count"]["packed"], distinct.len() as u64);
    assert!(
        status["count"]["pack_files"].as_u64().expect("pack_files") >= 2,
        "{status}"
    );
    assert_eq!(
        status["size"]["total_size_packed"],
        distinct.values().sum::<usize>() as u64
    );
    assert_eq!(
        status["size"]["total_size_packed_on_disk"], status["size"]["total_size_packed"],
        "nothing is compressed by default"
    );

    let meta = ok(rsdos(&store, &["ls", "--meta"]));
    let mut seen = BTreeSet::new();
    for line in meta.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 7, "{line}");
        assert_eq!(cols[1], "packed", "{line}");
        assert_eq!(cols[2].parse::<usize>().expect("size"), distinct[cols[0]]);
        cols[3].parse::<u64>().expect("pack id");
        cols[4].parse::<u64>().expect("offset");
        assert_eq!(cols[5], cols[2], "stored length is the size: {line}");
        assert_eq!(cols[6], "false");
        seen.insert(cols[0].to_string());
    }
    assert_eq!(seen, distinct.keys().cloned().collect::<BTreeSet<_>>());

    check_cat(&store, tmp.path(), &files);
}

#[test]
fn add_pack_compress_yes_compresses() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let file = tmp.path().join("text.txt");
    let data: Vec<u8> = b"all work and no play makes jack a dull boy\n"
        .iter()
        .copied()
        .cycle()
        .take(2 * 1024 * 1024 + 7)
        .collect();
    std::fs::write(&file, &data).expect("write");
    let small = tmp.path().join("small.txt");
    std::fs::write(&small, &data[..100_000]).expect("write");
    ok(rsdos(&store, &["init", "--compression", "zstd+3"]));
    ok(rsdos(
        &store,
        &[
            "add",
            "--pack",
            "--compress",
            "yes",
            file.to_str().expect("utf-8"),
            small.to_str().expect("utf-8"),
        ],
    ));
    let meta = ok(rsdos(&store, &["ls", "--meta"]));
    assert_eq!(meta.lines().count(), 2);
    for line in meta.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols[6], "true", "{line}");
        let size: u64 = cols[2].parse().expect("size");
        let length: u64 = cols[5].parse().expect("length");
        assert!(length < size / 10, "compressed: {line}");
    }
    let status = status_json(&store);
    assert!(
        status["size"]["total_size_packed_on_disk"].as_u64()
            < status["size"]["total_size_packed"].as_u64()
    );
    let out = rsdos(&store, &["cat", &sha256(&data)]);
    assert!(out.status.success());
    assert!(out.stdout == data, "decompressed content differs");
}

#[test]
fn add_reads_stdin_loose_and_packed() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let data = Rng(7).bytes(700 * 1024);
    let lines = parse_add(&ok(rsdos_stdin(&store, &["add", "-"], &data)));
    assert_eq!(lines, vec![(sha256(&data), "-".to_string())]);
    let other = Rng(8).bytes(1536 * 1024);
    let lines = parse_add(&ok(rsdos_stdin(&store, &["add", "--pack", "-"], &other)));
    assert_eq!(lines, vec![(sha256(&other), "-".to_string())]);
    let status = status_json(&store);
    assert_eq!(status["count"]["loose"], 1);
    assert_eq!(status["count"]["packed"], 1);
    for d in [&data, &other] {
        let out = rsdos(&store, &["cat", &sha256(d)]);
        assert!(out.status.success() && out.stdout == *d);
    }
    // Stdin twice would silently store an empty second object.
    let err = fails(rsdos_stdin(&store, &["add", "-", "-"], b"x"));
    assert!(err.contains("stdin"), "{err}");
}

#[test]
fn add_init_creates_the_container_when_missing() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let file = tmp.path().join("f");
    std::fs::write(&file, b"hello").expect("write");
    let err = fails(rsdos(&store, &["add", file.to_str().expect("utf-8")]));
    assert!(err.contains("rsdos init"), "{err}");
    assert!(!store.exists());

    let out = rsdos(&store, &["add", "--init", file.to_str().expect("utf-8")]);
    assert!(
        stderr(&out).contains("Created container"),
        "{}",
        stderr(&out)
    );
    let lines = parse_add(&ok(out));
    assert_eq!(lines[0].0, sha256(b"hello"));
    // On an existing container --init changes nothing.
    let out = rsdos(&store, &["add", "--init", file.to_str().expect("utf-8")]);
    assert!(!stderr(&out).contains("Created container"));
    ok(out);
    assert_eq!(status_json(&store)["count"]["loose"], 1);
}

#[test]
fn missing_container_is_exit_2_and_suggests_init() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("nothing-here");
    let key = sha256(b"x");
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["ls"],
        vec!["cat", key.as_str()],
        vec!["add", "-"],
    ] {
        let out = rsdos(&store, &args);
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = fails(out);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains("rsdos init"), "{args:?}: {err}");
        assert!(err.contains("nothing-here"), "{args:?}: {err}");
    }
    // An empty folder is not a container either.
    std::fs::create_dir(&store).expect("mkdir");
    let err = fails(rsdos(&store, &["ls"]));
    assert!(err.contains("rsdos init"), "{err}");
}

#[test]
fn cat_invalid_hashkey_is_an_error() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let upper = sha256(b"x").to_uppercase();
    for bad in ["xyz", "../../etc/passwd", upper.as_str(), ""] {
        let out = rsdos(&store, &["cat", bad]);
        assert!(out.stdout.is_empty());
        let err = fails(out);
        assert!(err.contains("invalid hashkey"), "{bad:?}: {err}");
    }
}

#[test]
fn cat_unknown_hashkey_is_not_found() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let key = sha256(b"never added");
    let dest = tmp.path().join("out");
    let err = fails(rsdos(
        &store,
        &["cat", &key, "-o", dest.to_str().expect("utf-8")],
    ));
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains(&key), "{err}");
    assert!(!dest.exists(), "no output file for a missing object");
}

#[test]
fn corrupt_config_is_an_error() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    std::fs::write(store.join("config.json"), b"{\"loose_prefix_len\": ").expect("write");
    for args in [vec!["status"], vec!["ls"], vec!["add", "-"]] {
        let err = fails(rsdos(&store, &args));
        assert!(err.contains("config.json"), "{args:?}: {err}");
    }
    std::fs::write(
        store.join("config.json"),
        b"{\"container_version\": 1, \"loose_prefix_len\": 2, \"pack_size_target\": 4, \"hash_type\": \"md5\", \"container_id\": \"x\"}",
    )
    .expect("write");
    let err = fails(rsdos(&store, &["status"]));
    assert!(err.contains("md5"), "{err}");
}

#[test]
fn init_refuses_non_empty_folder_and_existing_container() {
    let tmp = TempDir::new().expect("tempdir");
    let folder = tmp.path().join("folder");
    std::fs::create_dir(&folder).expect("mkdir");
    std::fs::write(folder.join("precious.txt"), b"keep me").expect("write");
    let err = fails(rsdos(&folder, &["init"]));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(
        std::fs::read_dir(&folder).expect("list").count(),
        1,
        "nothing was created"
    );

    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let id = status_json(&store)["id"].clone();
    let err = fails(rsdos(&store, &["init"]));
    assert!(err.contains("already a container"), "{err}");
    assert_eq!(status_json(&store)["id"], id, "the container is untouched");
}

#[test]
fn init_options_are_written_to_config() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let out = rsdos(
        &store,
        &[
            "init",
            "--hash-type",
            "sha1",
            "--compression",
            "zstd+3",
            "--pack-size-target",
            "1MiB",
            "--loose-prefix-len",
            "0",
        ],
    );
    assert!(stderr(&out).contains("disk-objectstore"), "zstd note");
    ok(out);
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("config.json")).expect("read config"))
            .expect("config JSON");
    assert_eq!(config["hash_type"], "sha1");
    assert_eq!(config["compression_algorithm"], "zstd+3");
    assert_eq!(config["pack_size_target"], 1024 * 1024);
    assert_eq!(config["loose_prefix_len"], 0);

    let lines = parse_add(&ok(rsdos_stdin(&store, &["add", "-"], b"sha1 content")));
    let key = &lines[0].0;
    assert_eq!(key, &HashType::Sha1.hash_hex(b"sha1 content"));
    assert!(store.join("loose").join(key).is_file(), "flat loose layout");
    assert_eq!(status_json(&store)["hash_type"], "sha1");

    // Plain byte counts are accepted too.
    let other = tmp.path().join("other");
    ok(rsdos(&other, &["init", "--pack-size-target", "1000"]));
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.join("config.json")).expect("read"))
            .expect("JSON");
    assert_eq!(config["pack_size_target"], 1000);
}

#[test]
fn init_rejects_invalid_options() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    for (args, needle) in [
        (vec!["init", "--compression", "lz4+1"], "lz4"),
        (vec!["init", "--compression", "zlib+10"], "zlib"),
        (vec!["init", "--pack-size-target", "0"], "more than 0"),
        (vec!["init", "--pack-size-target", "lots"], "lots"),
        (vec!["init", "--hash-type", "md5"], "md5"),
        (vec!["init", "--loose-prefix-len", "64"], "loose_prefix_len"),
    ] {
        let err = fails(rsdos(&store, &args));
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!store.exists(), "{args:?} created the folder");
    }
}

#[test]
fn path_comes_from_option_then_env_then_dostore() {
    let tmp = TempDir::new().expect("tempdir");
    let run = |envs: &[(&str, &Path)], args: &[&str]| {
        let mut cmd = bin();
        cmd.current_dir(tmp.path()).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("run")
    };
    // No option, no environment: ./dostore, as disk-objectstore's dostore.
    ok(run(&[], &["init"]));
    assert!(tmp.path().join("dostore/config.json").is_file());

    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    ok(run(&[("DOSTORE_PATH", &b)], &["init"]));
    assert!(b.join("config.json").is_file());
    // RSDOS_PATH wins over DOSTORE_PATH.
    ok(run(&[("RSDOS_PATH", &a), ("DOSTORE_PATH", &b)], &["init"]));
    assert!(a.join("config.json").is_file());
    // --path wins over both, and works after the subcommand too.
    let c = tmp.path().join("c");
    ok(run(
        &[("RSDOS_PATH", &a), ("DOSTORE_PATH", &b)],
        &["init", "--path", c.to_str().expect("utf-8")],
    ));
    assert!(c.join("config.json").is_file());
}

#[cfg(unix)]
#[test]
fn add_skips_links_and_special_files_inside_folders() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).expect("mkdir");
    let outside = tmp.path().join("outside.txt");
    std::fs::write(&outside, b"outside").expect("write");
    std::fs::write(tree.join("real.txt"), b"real").expect("write");
    std::os::unix::fs::symlink(&outside, tree.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink(&tree, tree.join("loop")).expect("symlink");
    let _socket = std::os::unix::net::UnixListener::bind(tree.join("socket")).expect("bind socket");
    ok(rsdos(&store, &["init"]));

    let out = rsdos(&store, &["add", tree.to_str().expect("utf-8")]);
    let err = stderr(&out);
    let lines = parse_add(&ok(out));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, sha256(b"real"));
    assert!(err.contains("link.txt") && err.contains("socket"), "{err}");

    // A link named on the command line is followed.
    let link = tree.join("link.txt");
    let lines = parse_add(&ok(rsdos(&store, &["add", link.to_str().expect("utf-8")])));
    assert_eq!(lines[0].0, sha256(b"outside"));
    // A socket named on the command line is an error.
    let err = fails(rsdos(
        &store,
        &["add", tree.join("socket").to_str().expect("utf-8")],
    ));
    assert!(err.contains("not a regular file"), "{err}");
}

#[test]
fn add_never_adds_the_container_itself() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    ok(rsdos(&store, &["add", "--pack", "-"]));
    std::fs::write(tmp.path().join("data.txt"), b"data").expect("write");
    // The store is inside the folder being added: it is skipped, not fed into itself.
    let out = rsdos(
        &store,
        &["add", "--pack", tmp.path().to_str().expect("utf-8")],
    );
    assert!(
        stderr(&out).contains("the container itself"),
        "{}",
        stderr(&out)
    );
    let lines = parse_add(&ok(out));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].0, sha256(b"data"));
    // Naming something inside the container is refused.
    let err = fails(rsdos(
        &store,
        &["add", store.join("packs").to_str().expect("utf-8")],
    ));
    assert!(err.contains("inside the container"), "{err}");
}

#[test]
fn add_checks_every_path_before_adding() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let file = tmp.path().join("f");
    std::fs::write(&file, b"content").expect("write");
    let missing = tmp.path().join("missing");
    let err = fails(rsdos(
        &store,
        &[
            "add",
            file.to_str().expect("utf-8"),
            missing.to_str().expect("utf-8"),
        ],
    ));
    assert!(err.contains("missing"), "{err}");
    assert_eq!(status_json(&store)["count"]["loose"], 0);
}

#[test]
fn quiet_prints_only_the_summary() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let out = rsdos(&store, &["-q", "init"]);
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    ok(out);
    let tree = tmp.path().join("tree");
    let files = make_tree(&tree, 3);
    let out = rsdos(&store, &["add", "--quiet", tree.to_str().expect("utf-8")]);
    let err = stderr(&out);
    assert!(ok(out).is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("added {} files (", files.len())),
        "{err}"
    );
    assert!(err.contains(&store.display().to_string()), "{err}");
}

#[test]
fn closed_stdout_ends_quietly_with_exit_0() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    let tree = tmp.path().join("many");
    std::fs::create_dir(&tree).expect("mkdir");
    // More output than a pipe and our buffer hold, so that writing must hit the closed pipe.
    let n = 4000;
    for i in 0..n {
        std::fs::write(tree.join(format!("{i:05}")), i.to_string()).expect("write");
    }
    ok(rsdos(&store, &["init"]));

    // `rsdos add --pack many | head -1`: the add completes all the same.
    let head_one = |args: &[&str]| -> (String, Output) {
        let mut child = bin()
            .arg("-p")
            .arg(&store)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("read a line");
        drop(reader);
        (line, child.wait_with_output().expect("wait"))
    };
    let (line, out) = head_one(&["add", "--pack", tree.to_str().expect("utf-8")]);
    assert!(line.starts_with(&sha256(b"0")), "{line}");
    assert!(out.status.success(), "add: {}", stderr(&out));
    assert_eq!(status_json(&store)["count"]["packed"], n);

    for args in [vec!["ls"], vec!["ls", "--meta"]] {
        let (line, out) = head_one(&args);
        assert_eq!(line.split('\t').next().expect("key").trim().len(), 64);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }

    let big = Rng(11).bytes(2 * 1024 * 1024);
    ok(rsdos_stdin(&store, &["add", "-"], &big));
    let mut child = bin()
        .arg("-p")
        .arg(&store)
        .args(["cat", &sha256(&big)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = [0u8; 10];
    child
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("read");
    assert_eq!(first, big[..10]);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0), "cat: {}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

#[test]
fn usage_errors_are_exit_2_and_help_has_examples() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let err = fails(rsdos(&store, &["add", "--compress", "yes", "-"]));
    assert!(err.contains("--pack"), "{err}");
    fails(rsdos(&store, &["add"]));
    fails(rsdos(&store, &["frobnicate"]));
    for cmd in ["init", "add", "cat", "ls", "status"] {
        let help = ok(bin().args([cmd, "--help"]).output().expect("help"));
        let example = help
            .lines()
            .find(|l| l.starts_with("Example: rsdos"))
            .unwrap_or_else(|| panic!("no example in `{cmd} --help`: {help}"));
        assert!(example.contains(cmd), "{example}");
    }
}
