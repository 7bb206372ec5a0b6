//! End-to-end tests of the `rsdos` commands beyond init/add/cat/ls/status: has, meta, rm,
//! pack, repack, clean, validate, backup, import, migrate, rebuild-index, the dostore
//! spellings (create, add-files, optimize), completions, Ctrl-C and the exit codes. Each test
//! runs the built binary on containers in temporary folders.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rsdos::HashType;
use serde_json::Value;
use tempfile::TempDir;

// ---- helpers -----------------------------------------------------------------------------

/// A command for the binary with a clean environment (no container path, no test hook).
fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rsdos"));
    cmd.env_remove("RSDOS_PATH")
        .env_remove("DOSTORE_PATH")
        .env_remove("RSDOS_TEST_WAIT_FOR_INTERRUPT");
    cmd
}

/// `rsdos -p <store> <args>`, run to completion with an empty stdin.
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

/// Asserts the exit status and returns stdout.
fn exits(code: i32, out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}, stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Asserts success and returns stdout.
fn ok(out: Output) -> String {
    exits(0, out)
}

/// Asserts exit status 2 (an error) with an `error:` message and returns stderr.
fn fails(out: Output) -> String {
    let err = stderr(&out);
    exits(2, out);
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Parses stdout as JSON, asserting the exit status first.
fn json(code: i32, out: Output) -> Value {
    let text = exits(code, out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
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

/// A folder of `n` files with random sizes (0 B to 200 KiB) and content, in sub-folders; a
/// few are compressible text and a few duplicate others. Returns path to content.
fn make_tree(root: &Path, seed: u64, n: usize) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut rng = Rng(seed);
    let dirs = ["", "x", "x/y", "z"];
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    let mut files = BTreeMap::new();
    let mut contents: Vec<Vec<u8>> = Vec::new();
    for i in 0..n {
        let size = match i {
            0 => 0,
            1 => 200 * 1024,
            _ => rng.below(200 * 1024 + 1) as usize,
        };
        let data = match i % 7 {
            5 if !contents.is_empty() => {
                contents[rng.below(contents.len() as u64) as usize].clone()
            }
            3 => format!("line {i} of a compressible text file\n")
                .repeat(size / 30 + 1)
                .into_bytes(),
            _ => rng.bytes(size),
        };
        contents.push(data.clone());
        let dir = dirs[rng.below(dirs.len() as u64) as usize];
        let path = root.join(dir).join(format!("f{i:03}"));
        std::fs::write(&path, &data).expect("write file");
        files.insert(path, data);
    }
    files
}

/// Distinct contents by hashkey.
fn distinct(files: &BTreeMap<PathBuf, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    files.values().map(|d| (sha256(d), d.clone())).collect()
}

/// Asserts that `cat` gives back every object byte for byte.
fn check_cat_all(store: &Path, objects: &BTreeMap<String, Vec<u8>>) {
    for (key, data) in objects {
        let out = rsdos(store, &["cat", key]);
        assert!(out.status.success(), "cat {key}: {}", stderr(&out));
        assert!(out.stdout == *data, "cat {key}: content differs");
    }
}

fn status(store: &Path) -> Value {
    json(0, rsdos(store, &["status", "--json"]))
}

/// A container with the objects of a random tree added loose.
fn store_with_tree(
    tmp: &Path,
    seed: u64,
    n: usize,
    init: &[&str],
) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let store = tmp.join("store");
    let tree = tmp.join(format!("tree{seed}"));
    let files = make_tree(&tree, seed, n);
    let mut args = vec!["init"];
    args.extend_from_slice(init);
    ok(rsdos(&store, &args));
    ok(rsdos(&store, &["add", "-q", s(&tree)]));
    (store, distinct(&files))
}

/// The `ls --meta` columns of every object, by hashkey.
fn ls_meta(store: &Path) -> BTreeMap<String, Vec<String>> {
    ok(rsdos(store, &["ls", "--meta"]))
        .lines()
        .map(|l| {
            let cols: Vec<String> = l.split('\t').map(str::to_string).collect();
            (cols[0].clone(), cols[1..].to_vec())
        })
        .collect()
}

/// Flips one byte of a file at `offset`.
fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[offset as usize] ^= 0xff;
    std::fs::write(path, bytes).expect("write");
}

// ---- round trip ----------------------------------------------------------------------------

#[test]
fn roundtrip_add_pack_clean_validate_cat() {
    let tmp = TempDir::new().expect("tempdir");
    // A small pack target, so that the objects are spread over several packs.
    let (store, objects) = store_with_tree(tmp.path(), 0x5eed, 60, &["--pack-size-target", "1MiB"]);
    let total: u64 = objects.values().map(|d| d.len() as u64).sum();

    let report = json(0, rsdos(&store, &["pack", "--compress", "auto", "--json"]));
    assert_eq!(report["packed"], objects.len() as u64, "{report}");
    assert_eq!(report["bytes"], total, "{report}");
    assert_eq!(report["loose_deleted"], 0);
    assert_eq!(report["corrupt_loose"], serde_json::json!([]));
    // Packing again finds nothing to do.
    assert_eq!(json(0, rsdos(&store, &["pack", "--json"]))["packed"], 0);

    let cleaned = json(0, rsdos(&store, &["clean", "--vacuum", "--json"]));
    assert_eq!(cleaned["loose_deleted"], objects.len() as u64, "{cleaned}");
    assert_eq!(cleaned["inconsistent_duplicates"], serde_json::json!([]));

    let st = status(&store);
    assert_eq!(st["count"]["loose"], 0);
    assert_eq!(st["count"]["packed"], objects.len() as u64);
    assert!(
        st["count"]["pack_files"].as_u64().expect("packs") >= 2,
        "{st}"
    );
    assert_eq!(st["size"]["total_size_packed"], total);
    // `auto` compressed the text files and nothing else.
    let meta = ls_meta(&store);
    for (key, cols) in &meta {
        let text = objects[key].starts_with(b"line ");
        if text && objects[key].len() > 4096 {
            assert_eq!(cols[5], "true", "text object {key} compressed: {cols:?}");
        }
        if !text && !objects[key].is_empty() {
            assert_eq!(
                cols[5], "false",
                "random object {key} stored as is: {cols:?}"
            );
        }
    }

    let v = json(0, rsdos(&store, &["validate", "--json"]));
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["issue_count"], 0);
    assert_eq!(v["checked"]["packed"], objects.len() as u64);
    let human = ok(rsdos(&store, &["validate"]));
    assert!(human.starts_with("No problems found in"), "{human}");

    check_cat_all(&store, &objects);
}

// ---- has, meta, rm -------------------------------------------------------------------------

#[test]
fn has_and_meta_answer_and_exit_1_for_missing_objects() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let loose = b"a loose object".to_vec();
    let packed = b"a packed object".to_vec();
    ok(rsdos_stdin(&store, &["add", "-"], &loose));
    ok(rsdos_stdin(&store, &["add", "--pack", "-"], &packed));
    let (kl, kp, km) = (sha256(&loose), sha256(&packed), sha256(b"never added"));

    let out = ok(rsdos(&store, &["has", &kl, &kp]));
    assert_eq!(out, format!("{kl}\tpresent\n{kp}\tpresent\n"));
    let out = exits(1, rsdos(&store, &["has", &kl, &km]));
    assert_eq!(out, format!("{kl}\tpresent\n{km}\tmissing\n"));
    // Quiet: only the exit status.
    assert_eq!(exits(1, rsdos(&store, &["-q", "has", &km])), "");
    // From stdin, with blank lines and spaces around.
    let input = format!("{kp}\n\n  {km}  \r\n");
    let answers = json(
        1,
        rsdos_stdin(&store, &["has", "--json", "-"], input.as_bytes()),
    );
    assert_eq!(
        answers,
        serde_json::json!([
            {"hashkey": kp, "present": true},
            {"hashkey": km, "present": false},
        ])
    );

    let metas = json(0, rsdos(&store, &["meta", "--json", &kl, &kp]));
    assert_eq!(metas[0]["type"], "loose");
    assert_eq!(metas[0]["size"], loose.len() as u64);
    assert_eq!(metas[0]["pack_id"], Value::Null);
    assert_eq!(metas[1]["type"], "packed");
    assert_eq!(metas[1]["size"], packed.len() as u64);
    assert_eq!(metas[1]["length"], packed.len() as u64);
    assert_eq!(metas[1]["compressed"], false);
    assert!(metas[1]["pack_id"].is_u64() && metas[1]["offset"].is_u64());
    let metas = json(1, rsdos(&store, &["meta", "--json", &km]));
    assert_eq!(metas[0]["type"], "missing");
    assert_eq!(metas[0]["size"], Value::Null);
    // The human form has the columns of `ls --meta`.
    let line = ok(rsdos(&store, &["meta", &kp]));
    assert_eq!(
        line.trim_end(),
        format!("{kp}\t{}", ls_meta(&store)[&kp].join("\t"))
    );
    let line = exits(1, rsdos(&store, &["meta", &km]));
    assert_eq!(line, format!("{km}\tmissing\t-\t-\t-\t-\t-\n"));
}

#[test]
fn invalid_hashkeys_are_exit_2_and_change_nothing() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    ok(rsdos_stdin(&store, &["add", "-"], b"keep me"));
    let good = sha256(b"keep me");
    let upper = good.to_uppercase();
    for bad in ["xyz", "../../etc/passwd", upper.as_str(), &good[..10]] {
        for cmd in ["has", "meta", "rm"] {
            let out = rsdos(&store, &[cmd, &good, bad]);
            assert!(out.stdout.is_empty(), "{cmd} {bad}: nothing printed");
            let err = fails(out);
            assert!(err.contains("invalid hashkey"), "{cmd} {bad:?}: {err}");
        }
    }
    // The valid key before the bad one was not deleted.
    ok(rsdos(&store, &["has", &good]));
}

#[test]
fn rm_deletes_from_args_and_stdin_and_repack_reclaims_space() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 77, 20, &[]);
    ok(rsdos(&store, &["pack"]));
    ok(rsdos(&store, &["clean"]));
    let keys: Vec<&String> = objects.keys().collect();
    let missing = sha256(b"not there");

    // From the arguments; an unknown hashkey is reported, not an error.
    let out = rsdos(&store, &["rm", keys[0], &missing]);
    assert!(stderr(&out).contains(&format!("not in the container: {missing}")));
    let text = ok(out);
    assert!(text.starts_with("Deleted 1 object from"), "{text}");
    exits(1, rsdos(&store, &["has", keys[0]]));

    // From stdin, with --json; `delete` is the same command.
    let input = format!("{}\n{}\n{}\n", keys[1], keys[2], keys[0]);
    let report = json(
        0,
        rsdos_stdin(&store, &["delete", "--json", "-"], input.as_bytes()),
    );
    assert_eq!(report["deleted"], serde_json::json!([keys[1], keys[2]]));
    assert_eq!(report["not_found"], serde_json::json!([keys[0]]));
    assert_eq!(status(&store)["count"]["packed"], objects.len() as u64 - 3);

    // The packed bytes stay until a repack.
    let repack = json(0, rsdos(&store, &["repack", "--json"]));
    assert!(
        !repack["rewritten"].as_array().expect("list").is_empty(),
        "{repack}"
    );
    let gone: u64 = keys[..3].iter().map(|k| objects[*k].len() as u64).sum();
    assert_eq!(
        repack["bytes_before"].as_u64().expect("before")
            - repack["bytes_after"].as_u64().expect("after"),
        gone,
        "{repack}"
    );
    ok(rsdos(&store, &["validate"]));
    let rest: BTreeMap<String, Vec<u8>> = objects
        .iter()
        .filter(|(k, _)| !keys[..3].contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_cat_all(&store, &rest);
    // Nothing to do a second time.
    let again = json(0, rsdos(&store, &["repack", "--json"]));
    assert_eq!(again["rewritten"], serde_json::json!([]));
}

// ---- pack, repack, clean -------------------------------------------------------------------

#[test]
fn pack_compress_yes_with_clean_per_pack() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 9, 25, &["--pack-size-target", "512KiB"]);
    let report = json(
        0,
        rsdos(
            &store,
            &["pack", "--compress", "yes", "--clean-per-pack", "--json"],
        ),
    );
    assert_eq!(report["packed"], objects.len() as u64);
    assert_eq!(report["loose_deleted"], objects.len() as u64, "{report}");
    let st = status(&store);
    assert_eq!(st["count"]["loose"], 0);
    for (key, cols) in ls_meta(&store) {
        assert_eq!(cols[0], "packed");
        assert_eq!(cols[5], "true", "{key} compressed");
    }
    check_cat_all(&store, &objects);
    // The human summary says what happened.
    let (store2, _) = store_with_tree(&tmp.path().join("2"), 10, 3, &[]);
    let out = ok(rsdos(&store2, &["pack"]));
    assert!(out.starts_with("Packed 3 objects ("), "{out}");
    assert!(out.contains("rsdos clean"), "{out}");
}

#[test]
fn repack_changes_compression_both_ways() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 12, 20, &["--compression", "zstd+3"]);
    ok(rsdos(&store, &["pack", "--clean-per-pack"]));
    assert!(ls_meta(&store).values().all(|c| c[5] == "false"));

    let report = json(0, rsdos(&store, &["repack", "--compress", "yes", "--json"]));
    assert_eq!(
        report["rewritten"].as_array().expect("list").len(),
        1,
        "{report}"
    );
    assert!(report["rewritten"][0]["new"].as_u64() > report["rewritten"][0]["old"].as_u64());
    assert!(ls_meta(&store).values().all(|c| c[5] == "true"));
    check_cat_all(&store, &objects);

    ok(rsdos(
        &store,
        &["repack", "--compress", "no", "--no-vacuum"],
    ));
    assert!(ls_meta(&store).values().all(|c| c[5] == "false"));
    // --all rewrites packs without holes too.
    let report = json(0, rsdos(&store, &["repack", "--all", "--json"]));
    assert_eq!(report["rewritten"].as_array().expect("list").len(), 1);
    ok(rsdos(&store, &["validate"]));
    check_cat_all(&store, &objects);
    let human = ok(rsdos(&store, &["repack"]));
    assert!(human.starts_with("Rewrote 0 packs"), "{human}");
}

#[test]
fn clean_reports_loose_copies_and_duplicates() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 13, 10, &[]);
    // Nothing packed yet: nothing to delete.
    let report = json(0, rsdos(&store, &["clean", "--json"]));
    assert_eq!(report["loose_deleted"], 0);
    ok(rsdos(&store, &["pack"]));
    // A duplicate copy of a packed object, as disk-objectstore leaves them.
    let (key, data) = objects.iter().next().expect("an object");
    std::fs::write(store.join("duplicates").join(format!("{key}.dup1")), data).expect("write");
    let out = ok(rsdos(&store, &["clean"]));
    assert!(
        out.contains(&format!("deleted {} loose copies", objects.len())),
        "{out}"
    );
    assert!(out.contains("removed 1 duplicates"), "{out}");
    assert_eq!(
        std::fs::read_dir(store.join("duplicates"))
            .expect("list")
            .count(),
        0
    );

    // A duplicate whose content matches nothing, of an object that is nowhere: exit 1.
    let lost = sha256(b"lost");
    std::fs::write(
        store.join("duplicates").join(format!("{lost}.dup1")),
        b"other",
    )
    .expect("write");
    let out = rsdos(&store, &["clean", "--json"]);
    assert!(stderr(&out).contains(&lost), "{}", stderr(&out));
    let report = json(1, out);
    assert_eq!(report["inconsistent_duplicates"], serde_json::json!([lost]));
}

// ---- validate ------------------------------------------------------------------------------

#[test]
fn validate_finds_a_corrupt_packed_byte_and_a_corrupt_loose_file() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 21, 15, &[]);
    ok(rsdos(&store, &["pack", "--clean-per-pack"]));
    ok(rsdos(&store, &["validate"]));

    // Flip one byte in the middle of the largest packed object.
    let meta = ls_meta(&store);
    let (victim, cols) = meta
        .iter()
        .max_by_key(|(_, c)| c[1].parse::<u64>().expect("size"))
        .expect("an object");
    let (pack, offset, length): (u64, u64, u64) = (
        cols[2].parse().expect("pack"),
        cols[3].parse().expect("offset"),
        cols[4].parse().expect("length"),
    );
    flip_byte(
        &store.join("packs").join(pack.to_string()),
        offset + length / 2,
    );

    let out = exits(1, rsdos(&store, &["validate"]));
    assert!(
        out.starts_with(&format!("Found 1 problem in {}", store.display())),
        "{out}"
    );
    assert!(
        out.contains("packed objects whose content does not hash to their name"),
        "{out}"
    );
    assert!(out.contains("validate --verbose"), "{out}");
    assert!(
        !out.contains(victim.as_str()),
        "the hashkeys only with --verbose: {out}"
    );
    let out = exits(1, rsdos(&store, &["validate", "--verbose"]));
    assert!(
        out.contains(&format!(
            "packed object {victim}: content does not hash to its name"
        )),
        "{out}"
    );
    let v = json(1, rsdos(&store, &["validate", "--json"]));
    assert_eq!(v["valid"], false);
    assert_eq!(v["issue_count"], 1);
    assert_eq!(v["invalid_hashes_packed"], serde_json::json!([victim]));
    assert_eq!(v["invalid_hashes_loose"], serde_json::json!([]));

    // `cat` does not re-hash what it reads (neither does disk-objectstore): validate is the
    // check. Every other object is intact.
    let intact: BTreeMap<String, Vec<u8>> = objects
        .iter()
        .filter(|(k, _)| *k != victim)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    check_cat_all(&store, &intact);

    // A loose file whose content no longer matches its name.
    ok(rsdos_stdin(
        &store,
        &["add", "-"],
        b"loose and then damaged",
    ));
    let key = sha256(b"loose and then damaged");
    std::fs::write(
        store.join("loose").join(&key[..2]).join(&key[2..]),
        b"tampered",
    )
    .expect("write");
    let v = json(1, rsdos(&store, &["validate", "--json"]));
    assert_eq!(v["issue_count"], 2);
    assert_eq!(v["invalid_hashes_loose"], serde_json::json!([key]));
    // pack leaves it in place and says so, with exit 1.
    let out = rsdos(&store, &["pack", "--json"]);
    assert!(
        stderr(&out).contains(&format!("loose object {key} does not match")),
        "{}",
        stderr(&out)
    );
    let report = json(1, out);
    assert_eq!(report["corrupt_loose"], serde_json::json!([key]));
}

// ---- lost index ----------------------------------------------------------------------------

#[test]
fn lost_or_damaged_index_points_to_rebuild_index_which_recovers_everything() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 31, 40, &["--pack-size-target", "1MiB"]);
    ok(rsdos(&store, &["pack", "--clean-per-pack"]));
    // Full packs are sealed (described by a sidecar) as they are written; the last one is
    // sealed by a repack. A sealed pack is what rebuild-index can read back.
    ok(rsdos(&store, &["repack", "--all"]));
    let some_key = objects.keys().next().expect("a key").clone();

    std::fs::remove_file(store.join("packs.idx")).expect("delete packs.idx");
    for args in [
        vec!["ls"],
        vec!["status"],
        vec!["cat", some_key.as_str()],
        vec!["validate"],
        vec!["pack"],
        vec!["has", some_key.as_str()],
    ] {
        let out = rsdos(&store, &args);
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = fails(out);
        assert!(err.contains("packs.idx is missing"), "{args:?}: {err}");
        assert!(err.contains("rsdos rebuild-index"), "{args:?}: {err}");
    }
    assert!(
        !store.join("packs.idx").exists(),
        "no empty index was created"
    );

    let report = json(0, rsdos(&store, &["rebuild-index", "--json"]));
    assert_eq!(report["objects_indexed"], objects.len() as u64, "{report}");
    assert_eq!(report["undescribed_packs"], serde_json::json!([]));
    assert_eq!(report["corrupt_entries"], serde_json::json!([]));
    ok(rsdos(&store, &["validate"]));
    check_cat_all(&store, &objects);

    // A damaged index: the error suggests rebuild-index, which replaces it.
    std::fs::write(store.join("packs.idx"), b"this is not an SQLite database").expect("write");
    let err = fails(rsdos(&store, &["ls"]));
    assert!(err.contains("rebuild-index"), "{err}");
    let out = ok(rsdos(&store, &["rebuild-index"]));
    assert!(
        out.starts_with(&format!(
            "Rebuilt packs.idx of {}: {} objects indexed",
            store.display(),
            objects.len()
        )),
        "{out}"
    );
    check_cat_all(&store, &objects);

    // Objects of a pack that is not sealed yet cannot be recovered without the old index:
    // rebuild-index says so and exits 1.
    ok(rsdos_stdin(
        &store,
        &["add", "--pack", "-"],
        b"in an unsealed pack",
    ));
    std::fs::remove_file(store.join("packs.idx")).expect("delete packs.idx");
    let out = rsdos(&store, &["rebuild-index"]);
    assert!(
        stderr(&out).contains("its objects are no longer indexed"),
        "{}",
        stderr(&out)
    );
    exits(1, out);
    check_cat_all(&store, &objects);
    exits(1, rsdos(&store, &["has", &sha256(b"in an unsealed pack")]));
}

// ---- backup --------------------------------------------------------------------------------

#[test]
fn backup_is_incremental_keeps_n_and_is_a_container() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 41, 20, &["--pack-size-target", "512KiB"]);
    ok(rsdos(&store, &["pack", "--clean-per-pack"]));
    ok(rsdos_stdin(&store, &["add", "-"], b"one loose object"));
    let dest = tmp.path().join("backups");

    let first = json(0, rsdos(&store, &["backup", s(&dest), "--json"]));
    let copy = PathBuf::from(first["container_path"].as_str().expect("container_path"));
    assert!(copy.starts_with(&dest), "{first}");
    assert_eq!(first["files_linked"], 0, "nothing to link to yet: {first}");
    assert!(first["files_copied"].as_u64().expect("copied") > 0);
    assert!(dest.join("last-backup").exists());
    // The backup is a valid container with every object.
    ok(rsdos(&copy, &["validate"]));
    let mut all = objects.clone();
    all.insert(sha256(b"one loose object"), b"one loose object".to_vec());
    check_cat_all(&copy, &all);

    // The second one hard-links what did not change (sealed packs, the loose object).
    let second = json(0, rsdos(&store, &["backup", s(&dest), "--json"]));
    assert!(
        second["files_linked"].as_u64().expect("linked") > 0,
        "{second}"
    );
    assert_eq!(
        second["backups_removed"],
        serde_json::json!([]),
        "keep 1 keeps two"
    );
    let third = ok(rsdos(&store, &["backup", s(&dest), "--keep", "0"]));
    assert!(
        third.starts_with(&format!("Backed up {} to ", store.display())),
        "{third}"
    );
    assert_eq!(third.matches("Removed old backup").count(), 2, "{third}");
    let backups: Vec<_> = std::fs::read_dir(&dest)
        .expect("list")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("backup_"))
        .collect();
    assert_eq!(backups.len(), 1);
}

#[test]
fn backup_to_an_impossible_destination_is_exit_2() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    ok(rsdos_stdin(&store, &["add", "-"], b"data"));
    // A file where the destination folder should be: nothing can be written there, as on
    // a full or read-only disk (and unlike permissions, this also holds for root).
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"not a folder").expect("write");
    for dest in [file.clone(), file.join("backups")] {
        let err = fails(rsdos(&store, &["backup", s(&dest)]));
        assert!(err.contains(s(&dest)), "{err}");
        assert!(err.contains(s(&store)), "{err}");
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"not a folder");
    // dostore's remote destinations are refused, not created as a local folder.
    let err = fails(
        bin()
            .current_dir(tmp.path())
            .args(["-p", "store", "backup", "host:/backups"])
            .output()
            .expect("run"),
    );
    assert!(err.contains("remote destinations"), "{err}");
    assert!(!tmp.path().join("host:").exists());
    // dostore's options are accepted: --rsync-exe is ignored, with a note unless silent.
    let dest = tmp.path().join("ok");
    let out = rsdos(&store, &["backup", s(&dest), "--rsync-exe", "rsync"]);
    assert!(
        stderr(&out).contains("--rsync-exe is ignored"),
        "{}",
        stderr(&out)
    );
    ok(out);
    let out = rsdos(
        &store,
        &[
            "backup",
            s(&dest),
            "--rsync-exe",
            "rsync",
            "--verbosity",
            "silent",
        ],
    );
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    ok(out);
}

// ---- import, migrate -----------------------------------------------------------------------

#[test]
fn import_copies_everything_or_the_keys_given() {
    let tmp = TempDir::new().expect("tempdir");
    let (source, objects) = store_with_tree(tmp.path(), 51, 20, &[]);
    ok(rsdos(&source, &["pack"]));
    ok(rsdos_stdin(&source, &["add", "-"], b"loose in the source"));
    let n = objects.len() as u64 + 1;

    let target = tmp.path().join("target");
    ok(rsdos(&target, &["init"]));
    let report = json(0, rsdos(&target, &["import", s(&source), "--json"]));
    assert_eq!(report["copied"], n, "{report}");
    assert_eq!(report["missing_in_source"], 0);
    assert!(
        report.get("mapping").is_none(),
        "same hash type: no mapping"
    );
    check_cat_all(&target, &objects);
    let again = ok(rsdos(&target, &["import", s(&source)]));
    assert!(
        again.starts_with(&format!("Imported 0 objects from {}", source.display())),
        "{again}"
    );
    assert!(again.contains(&format!("{n} already present")), "{again}");

    // Some keys, one of which the source lacks: exit 1.
    let other = tmp.path().join("other");
    ok(rsdos(&other, &["init", "--compression", "zstd+3"]));
    let key = objects.keys().next().expect("a key").clone();
    let absent = sha256(b"absent");
    let input = format!("{key}\n{absent}\n");
    let out = rsdos_stdin(
        &other,
        &["import", s(&source), "--compress", "yes", "--json", "-"],
        input.as_bytes(),
    );
    assert!(stderr(&out).contains("not in"), "{}", stderr(&out));
    let report = json(1, out);
    assert_eq!(report["copied"], 1);
    assert_eq!(report["missing_in_source"], 1);
    assert_eq!(ls_meta(&other)[&key][5], "true");

    // Different hash types: the new hashkeys are printed.
    let sha1 = tmp.path().join("sha1");
    ok(rsdos(&sha1, &["init", "--hash-type", "sha1"]));
    let report = json(0, rsdos(&sha1, &["import", s(&source), "--json", &key]));
    assert_eq!(
        report["mapping"],
        serde_json::json!([[key, HashType::Sha1.hash_hex(&objects[&key])]])
    );
    // A source that is not a container is named.
    let err = fails(rsdos(&target, &["import", s(&tmp.path().join("nothing"))]));
    assert!(
        err.contains("source container") && err.contains("nothing"),
        "{err}"
    );
}

#[test]
fn migrate_recompresses_with_zstd_and_warns() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 61, 20, &[]);
    ok(rsdos(
        &store,
        &["pack", "--compress", "yes", "--clean-per-pack"],
    ));
    let out = rsdos(&store, &["migrate", "--level", "5", "--yes", "--json"]);
    let err = stderr(&out);
    assert!(
        err.contains("disk-objectstore") && err.contains("zstd"),
        "{err}"
    );
    let report = json(0, out);
    assert_eq!(report["compression"], "zstd+5");
    assert_eq!(
        report["objects_recompressed"],
        objects.len() as u64,
        "{report}"
    );
    assert_eq!(report["packs_rewritten"], 1);
    assert_eq!(status(&store)["compression"], "zstd+5");
    ok(rsdos(&store, &["validate"]));
    check_cat_all(&store, &objects);
    // Again: nothing left to do. Without --yes and without a terminal, no question is asked.
    let out = ok(rsdos(&store, &["migrate", "--level", "5"]));
    assert!(out.contains("0 objects recompressed"), "{out}");
    fails(rsdos(&store, &["migrate", "--level", "23", "-y"]));
}

// ---- dostore spellings ---------------------------------------------------------------------

#[test]
fn dostore_create_add_files_optimize_status_validate() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("dostore");
    let out = ok(rsdos(&store, &["create", "-a", "zlib+5"]));
    assert_eq!(
        out.trim(),
        format!("Created container: {}", store.display())
    );
    assert_eq!(status(&store)["compression"], "zlib+5");
    fails(rsdos(&store, &["create"]));

    let tree = tmp.path().join("files");
    let files = make_tree(&tree, 71, 12);
    let paths: Vec<&str> = files.keys().map(|p| s(p)).collect();
    let mut args = vec!["add-files"];
    args.extend(&paths);
    let out = ok(rsdos(&store, &args));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), files.len());
    for ((path, data), line) in files.iter().zip(&lines) {
        assert_eq!(*line, format!("{}: {}", sha256(data), path.display()));
    }

    let out = ok(rsdos(&store, &["optimize", "-n"]));
    assert!(out.starts_with("Initial container size: "), "{out}");
    assert!(out.contains("Final container size: "), "{out}");
    let objects = distinct(&files);
    let st = status(&store);
    assert_eq!(st["count"]["loose"], 0);
    assert_eq!(st["count"]["packed"], objects.len() as u64);
    // --compress is the default: compressible objects are stored compressed.
    assert!(ls_meta(&store).values().any(|c| c[5] == "true"));
    check_cat_all(&store, &objects);

    ok(rsdos_stdin(&store, &["add", "-"], b"one more"));
    let report = json(
        0,
        rsdos(
            &store,
            &[
                "optimize",
                "--non-interactive",
                "--no-compress",
                "--no-vacuum",
                "--json",
            ],
        ),
    );
    assert_eq!(report["pack"]["packed"], 1);
    assert_eq!(report["clean"]["loose_deleted"], 1);
    assert!(report["size_before"].as_u64() > Some(0));
    assert_eq!(ls_meta(&store)[&sha256(b"one more")][5], "false");
    // The last flag of a pair wins, as with click.
    ok(rsdos(
        &store,
        &[
            "optimize",
            "-n",
            "--no-compress",
            "--compress",
            "--vacuum",
            "--no-vacuum",
        ],
    ));

    // status and validate are spelled as in dostore; validate's -v is --verbose.
    ok(rsdos(&store, &["validate", "-v"]));
    // DOSTORE_PATH finds the container, as for dostore.
    let out = bin()
        .env("DOSTORE_PATH", &store)
        .args(["status", "--json"])
        .output()
        .expect("run");
    let st: Value = serde_json::from_str(&ok(out)).expect("JSON");
    assert_eq!(st["count"]["packed"], objects.len() as u64 + 1);
}

// ---- errors common to all commands ---------------------------------------------------------

/// Every command that opens a container, with valid arguments.
fn container_commands(key: &str, other: &str, dest: &str) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        v(&["has", key]),
        v(&["meta", key]),
        v(&["rm", key]),
        v(&["delete", key]),
        v(&["get", key]),
        v(&["pack"]),
        v(&["repack"]),
        v(&["clean"]),
        v(&["validate"]),
        v(&["backup", dest]),
        v(&["import", other]),
        v(&["migrate", "-y"]),
        v(&["optimize", "-n"]),
        v(&["add-files", other]),
    ]
}

#[test]
fn missing_container_and_corrupt_config_are_exit_2_for_every_command() {
    let tmp = TempDir::new().expect("tempdir");
    let missing = tmp.path().join("nothing-here");
    let other = tmp.path().join("other");
    ok(rsdos(&other, &["init"]));
    let dest = tmp.path().join("dest");
    let key = sha256(b"x");
    for args in container_commands(&key, s(&other), s(&dest)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rsdos(&missing, &args);
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = fails(out);
        assert!(err.contains("rsdos init"), "{args:?}: {err}");
        assert!(err.contains("nothing-here"), "{args:?}: {err}");
    }
    assert!(!dest.exists(), "no backup folder for a missing container");
    let err = fails(rsdos(&missing, &["rebuild-index"]));
    assert!(
        err.contains("not a container") && err.contains("nothing-here"),
        "{err}"
    );

    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    std::fs::write(store.join("config.json"), b"{\"loose_prefix_len\": ").expect("write");
    for args in container_commands(&key, s(&other), s(&dest)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = fails(rsdos(&store, &args));
        assert!(err.contains("config.json"), "{args:?}: {err}");
    }
    let err = fails(rsdos(&store, &["rebuild-index"]));
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn unreadable_inputs_and_outputs_are_named() {
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    // A file that cannot be read: without permission (unless we are root, who reads
    // anything), else one the kernel refuses to read.
    let locked = tmp.path().join("locked.txt");
    std::fs::write(&locked, b"secret").expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    }
    let unreadable = if std::fs::File::open(&locked).is_err() {
        locked.clone()
    } else {
        PathBuf::from("/proc/self/mem")
    };
    if unreadable.exists() {
        for cmd in ["add", "add-files"] {
            let err = fails(rsdos(&store, &[cmd, s(&unreadable)]));
            assert!(err.contains(s(&unreadable)), "{cmd}: {err}");
        }
        assert_eq!(status(&store)["count"]["loose"], 0);
    }
    // A file that does not exist.
    let err = fails(rsdos(
        &store,
        &["add-files", s(&tmp.path().join("nope.txt"))],
    ));
    assert!(err.contains("nope.txt"), "{err}");
    // An output file where no file can be created.
    ok(rsdos_stdin(&store, &["add", "-"], b"content"));
    let bad = tmp.path().join("no-such-folder").join("out.txt");
    let err = fails(rsdos(&store, &["cat", &sha256(b"content"), "-o", s(&bad)]));
    assert!(err.contains("out.txt"), "{err}");
}

// ---- Ctrl-C --------------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn ctrl_c_stops_pack_cleanly_with_exit_130() {
    const WAIT_LINE: &str = "rsdos: waiting for Ctrl-C (test hook)";
    let tmp = TempDir::new().expect("tempdir");
    let store = tmp.path().join("store");
    ok(rsdos(&store, &["init"]));
    let tree = tmp.path().join("many");
    std::fs::create_dir(&tree).expect("mkdir");
    let n = 600u64;
    let mut objects = BTreeMap::new();
    for i in 0..n {
        let data = format!("object number {i}").into_bytes();
        std::fs::write(tree.join(format!("{i:04}")), &data).expect("write");
        objects.insert(sha256(&data), data);
    }
    ok(rsdos(&store, &["add", "-q", s(&tree)]));

    // The test hook makes pack wait for Ctrl-C after 100 objects, so that the signal
    // arrives in the middle of the work without any timing.
    let mut child = bin()
        .args(["-p", s(&store), "pack"])
        .env("RSDOS_TEST_WAIT_FOR_INTERRUPT", "100")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.contains(WAIT_LINE) {
        line.clear();
        assert!(
            err.read_line(&mut line).expect("read stderr") > 0,
            "no wait line"
        );
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).expect("read stderr");
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(130), "stderr: {rest}");
    assert!(rest.contains("stopping at the next safe point"), "{rest}");
    assert!(rest.contains("interrupted; nothing half-written"), "{rest}");
    assert!(out.stdout.is_empty(), "no summary for an interrupted pack");

    // What was packed is committed and valid; the rest is still loose.
    let packed = status(&store)["count"]["packed"].as_u64().expect("packed");
    assert!(packed >= 100 && packed < n, "packed {packed} of {n}");
    let v = json(0, rsdos(&store, &["validate", "--json"]));
    assert_eq!(v["valid"], true, "{v}");
    // Running it again finishes the job.
    let report = json(0, rsdos(&store, &["pack", "--json"]));
    assert_eq!(report["packed"], n - packed);
    ok(rsdos(&store, &["clean"]));
    check_cat_all(&store, &objects);
}

// ---- completions and help ------------------------------------------------------------------

#[test]
fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(bin().args(["completions", shell]).output().expect("run"));
        assert!(script.contains("rsdos"), "{shell}");
        for sub in ["rebuild-index", "add-files", "optimize", "validate"] {
            assert!(script.contains(sub), "{shell} completes {sub}");
        }
    }
    fails(bin().args(["completions", "tcsh"]).output().expect("run"));
}

#[test]
fn every_command_has_help_with_an_example() {
    let main_help = ok(bin().arg("--help").output().expect("help"));
    assert!(
        main_help.contains(
            "Exit status: 0 success, 1 a check found problems, 2 an error, 130 interrupted"
        )
    );
    for cmd in [
        "init",
        "add",
        "cat",
        "ls",
        "has",
        "meta",
        "rm",
        "status",
        "pack",
        "repack",
        "clean",
        "validate",
        "backup",
        "import",
        "migrate",
        "rebuild-index",
        "create",
        "add-files",
        "optimize",
        "completions",
    ] {
        assert!(
            main_help.contains(&format!("  {cmd} ")),
            "{cmd} listed: {main_help}"
        );
        let help = ok(bin().args([cmd, "--help"]).output().expect("help"));
        let example = help
            .lines()
            .find(|l| l.starts_with("Example: rsdos"))
            .unwrap_or_else(|| panic!("no example in `{cmd} --help`: {help}"));
        assert!(example.contains(cmd), "{example}");
    }
    // The aliases are the same commands.
    for (alias, cmd) in [("get", "cat"), ("delete", "rm")] {
        let a = ok(bin().args([alias, "--help"]).output().expect("help"));
        let b = ok(bin().args([cmd, "--help"]).output().expect("help"));
        assert_eq!(a, b);
    }
}

#[test]
fn json_and_quiet_outputs_are_machine_readable() {
    let tmp = TempDir::new().expect("tempdir");
    let (store, objects) = store_with_tree(tmp.path(), 81, 8, &[]);
    let dest = tmp.path().join("backups");
    // Without a terminal no progress bar is drawn, and stdout is only the JSON.
    for args in [
        vec!["pack", "--json"],
        vec!["clean", "--json"],
        vec!["validate", "--json"],
        vec!["repack", "--json"],
        vec!["rebuild-index", "--json"],
        vec!["backup", s(&dest), "--json"],
    ] {
        let out = rsdos(&store, &args);
        let err = stderr(&out);
        for bar in ["ETA", "done:", "\r", "\x1b"] {
            assert!(!err.contains(bar), "{args:?}: {err:?}");
        }
        json(0, out);
    }
    // With --quiet, maintenance commands print only their summary.
    let out = rsdos(&store, &["-q", "rebuild-index"]);
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert_eq!(ok(out).lines().count(), 1);
    let keys: BTreeSet<&String> = objects.keys().collect();
    let listed = ok(rsdos(&store, &["ls"]));
    assert_eq!(listed.lines().count(), keys.len());
}
