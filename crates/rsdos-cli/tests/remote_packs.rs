//! `rsdos init --packs`, `status`, `pack`, `upload` and `clone` with packs on the OpenDAL `fs`
//! service (a folder standing in for a bucket).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn rsdos(path: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .arg("-p")
        .arg(path)
        .args(args)
        .output()
        .expect("run rsdos")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: PathBuf,
    bucket: PathBuf,
    url: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let bucket = dir.join("bucket");
    std::fs::create_dir(&bucket).expect("mkdir");
    let url = format!("fs://{}", bucket.display());
    Setup {
        store: dir.join("store"),
        dir,
        bucket,
        url,
        _tmp: tmp,
    }
}

/// Adds `n` files of about 1 KiB and packs them; returns the files' contents.
fn add_and_pack(s: &Setup, seed: u32, n: u32) -> Vec<Vec<u8>> {
    let src = s.dir.join(format!("src{seed}"));
    std::fs::create_dir(&src).expect("mkdir");
    let mut contents = Vec::new();
    for i in 0..n {
        let mut v = format!("file {seed} {i} ").into_bytes();
        v.resize(1000, b'x');
        std::fs::write(src.join(format!("f{i}")), &v).expect("write");
        contents.push(v);
    }
    ok(&rsdos(&s.store, &["add", src.to_str().expect("utf8")]));
    ok(&rsdos(&s.store, &["pack"]));
    contents
}

fn remote_packs(bucket: &Path) -> usize {
    std::fs::read_dir(bucket)
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .parse::<u64>()
                .is_ok()
        })
        .count()
}

#[test]
fn init_with_packs_status_upload_and_clone() {
    let s = setup();
    let secret = "cli-S3CR3T-never-printed";
    let out = rsdos(
        &s.store,
        &[
            "init",
            "--pack-size-target",
            "4KiB",
            "--packs",
            &s.url,
            "--region",
            "eu-west-1",
            "--packs-option",
            &format!("secret_access_key={secret}"),
        ],
    );
    let text = ok(&out);
    assert!(
        text.contains(&format!("Packs stored in: {}", s.url)),
        "{text}"
    );
    let setting = std::fs::read_to_string(s.store.join("rsdos-packs.json")).expect("setting");
    assert!(
        setting.contains("eu-west-1") && !setting.contains(secret),
        "{setting}"
    );

    let contents = add_and_pack(&s, 1, 20);
    assert!(remote_packs(&s.bucket) >= 4);
    assert!(s.bucket.join("index/packs.idx").is_file());

    let human = ok(&rsdos(&s.store, &["status"]));
    assert!(
        human.contains(&format!("Packs:        {}", s.url)),
        "{human}"
    );
    assert!(human.contains("waiting for upload: 0 pack(s)"), "{human}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&rsdos(&s.store, &["status", "--json"]))).expect("json");
    assert_eq!(json["packs"]["url"], s.url.as_str(), "{json}");
    assert_eq!(json["packs"]["pending_upload"], 0, "{json}");
    assert_eq!(json["count"]["packed"], 20, "{json}");
    assert!(!json.to_string().contains(secret));

    let up = ok(&rsdos(&s.store, &["upload"]));
    assert!(up.contains("Uploaded 0 pack(s)"), "{up}");

    let clone = s.dir.join("clone");
    let out = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["clone", &s.url])
        .arg(&clone)
        .output()
        .expect("clone");
    let text = ok(&out);
    assert!(text.contains("index snapshot"), "{text}");
    assert!(!all_text(&out).contains(secret));
    // Every object of an uploaded pack is in the clone; check them through `cat`.
    let ls = ok(&rsdos(&clone, &["ls"]));
    let keys: Vec<&str> = ls.lines().collect();
    assert!(keys.len() >= 16, "{ls}");
    for key in keys {
        let out = rsdos(&clone, &["cat", key]);
        let body = out.stdout.clone();
        ok(&out);
        assert!(contents.contains(&body), "object {key}");
    }
    ok(&rsdos(&clone, &["validate"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&rsdos(&clone, &["status", "--json"]))).expect("json");
    assert_eq!(json["packs"]["url"], s.url.as_str(), "{json}");
}

#[test]
fn clone_json_report_without_snapshot_and_errors() {
    let s = setup();
    ok(&rsdos(
        &s.store,
        &["init", "--pack-size-target", "4KiB", "--packs", &s.url],
    ));
    add_and_pack(&s, 2, 12);
    std::fs::remove_dir_all(s.bucket.join("index")).expect("rm snapshot");
    let clone = s.dir.join("clone");
    let out = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["clone", "--json", &s.url])
        .arg(&clone)
        .output()
        .expect("clone");
    let json: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(json["from_snapshot"], false, "{json}");
    assert_eq!(json["packs"], json["packs_from_sidecars"], "{json}");
    assert!(json["objects"].as_u64().expect("n") >= 8, "{json}");
    ok(&rsdos(&clone, &["validate"]));

    // Into a folder that is not empty: an error (exit 2) naming the folder.
    let out = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["clone", &s.url])
        .arg(&clone)
        .output()
        .expect("clone");
    assert_eq!(out.status.code(), Some(2), "{}", all_text(&out));
    // From a remote that holds no container.
    let empty = s.dir.join("empty-bucket");
    std::fs::create_dir(&empty).expect("mkdir");
    let out = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["clone", &format!("fs://{}", empty.display())])
        .arg(s.dir.join("clone2"))
        .output()
        .expect("clone");
    assert_eq!(out.status.code(), Some(2));
    assert!(all_text(&out).contains("config.json"), "{}", all_text(&out));
    // Options without --packs are a usage mistake.
    let out = rsdos(&s.dir.join("other"), &["init", "--region", "x"]);
    assert!(!out.status.success());
}

#[test]
fn status_of_a_local_container_says_local() {
    let s = setup();
    ok(&rsdos(&s.store, &["init"]));
    let human = ok(&rsdos(&s.store, &["status"]));
    assert!(human.contains("Packs:        local"), "{human}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&rsdos(&s.store, &["status", "--json"]))).expect("json");
    assert_eq!(json["packs"]["location"], "local", "{json}");
    let up = rsdos(&s.store, &["upload"]);
    assert!(up.status.success());
}

/// `--remote-option` reaches the pack store of every command (a bad value is refused, naming
/// the option), is not written into the container, and a good one works.
#[test]
fn remote_options_apply_to_any_command_and_are_not_stored() {
    let s = setup();
    ok(&rsdos(&s.store, &["init", "--packs", &s.url]));
    let setting = std::fs::read_to_string(s.store.join("rsdos-packs.json")).expect("setting");

    let out = rsdos(&s.store, &["--remote-option", "retries=many", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_text(&out));
    let text = all_text(&out);
    assert!(text.contains("retries"), "{text}");

    let out = rsdos(&s.store, &["status", "--remote-option", "retries=5"]);
    ok(&out);
    // rebuild-index works without opening the container, and takes them too.
    let out = rsdos(
        &s.store,
        &["--remote-option", "retries=many", "rebuild-index"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", all_text(&out));
    assert!(all_text(&out).contains("retries"), "{}", all_text(&out));
    ok(&rsdos(
        &s.store,
        &["--remote-option", "retries=2", "rebuild-index"],
    ));
    let out = rsdos(&s.store, &["--remote-option", "bogus", "status"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_text(&out));
    assert!(all_text(&out).contains("KEY=VALUE"), "{}", all_text(&out));

    assert_eq!(
        std::fs::read_to_string(s.store.join("rsdos-packs.json")).expect("setting"),
        setting,
        "options given at a later open are not stored"
    );
}
