//! The `rsdos` binary end to end with its packs on S3 (moto on 127.0.0.1): `init --packs
//! s3://... --endpoint --region` with credentials from the environment, `add --pack`,
//! `status --json`, `repack --all`, `clone` with credentials as options, and `cat` and
//! `validate` in the clone.
//!
//! Built only with the `remote-tests` feature. The server is started by
//! `scripts/test-servers.sh start`, which writes its settings to `.test-servers/env` (or the
//! file named by `RSDOS_TEST_SERVERS_ENV`); without it this test fails, never skips.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn env_file() -> PathBuf {
    std::env::var_os("RSDOS_TEST_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-servers/env"))
}

/// The S3 server's bucket URL (no query), endpoint, region and credentials.
struct S3 {
    bucket_url: String,
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
}

fn s3() -> S3 {
    let path = env_file();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the remote CLI tests need the test servers: cannot read {} ({e}); run \
             `scripts/test-servers.sh start` first",
            path.display()
        )
    });
    let all: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let var = |key: &str| {
        all.get(key)
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("{key} is missing from {}", path.display()))
    };
    let url = var("RSDOS_TEST_S3_URL");
    let (base, query) = url.split_once('?').expect("the S3 URL has a query");
    let query: HashMap<&str, &str> = query.split('&').filter_map(|p| p.split_once('=')).collect();
    S3 {
        bucket_url: base.trim_end_matches('/').to_string(),
        endpoint: query
            .get("endpoint")
            .expect("endpoint in the S3 URL")
            .to_string(),
        region: query
            .get("region")
            .expect("region in the S3 URL")
            .to_string(),
        access_key_id: var("RSDOS_TEST_S3_ACCESS_KEY_ID"),
        secret_access_key: var("RSDOS_TEST_S3_SECRET_ACCESS_KEY"),
    }
}

impl S3 {
    /// `rsdos ARGS` with the credentials in the environment, as users give them.
    fn rsdos(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_rsdos"))
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)
            .output()
            .expect("run rsdos")
    }
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

fn status_json(s3: &S3, store: &str) -> serde_json::Value {
    let text = ok(&s3.rsdos(&["-p", store, "status", "--json"]));
    assert!(
        !text.contains("access_key") && !text.contains("secret") && !text.contains('?'),
        "status shows options or credentials: {text}"
    );
    serde_json::from_str(&text).expect("status JSON")
}

/// `rsdos-packs.json` in `root` names the endpoint and region but no credentials.
fn assert_setting(s3: &S3, root: &Path) {
    let text = std::fs::read_to_string(root.join("rsdos-packs.json")).expect("rsdos-packs.json");
    assert!(
        text.contains(&s3.endpoint) && text.contains(&s3.region),
        "{text}"
    );
    assert!(
        !text.contains("access_key_id") && !text.contains("secret_access_key"),
        "credentials written to disk: {text}"
    );
}

#[test]
fn init_add_pack_status_repack_clone_and_cat_on_s3() {
    let s3 = s3();
    let tmp = tempfile::tempdir().expect("tempdir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let url = format!("{}/cli-{}-{nanos}", s3.bucket_url, std::process::id());
    let store_path = tmp.path().join("store");
    let store = store_path.to_str().expect("utf8 path");

    let out = ok(&s3.rsdos(&[
        "-p",
        store,
        "init",
        "--pack-size-target",
        "4KiB",
        "--packs",
        &url,
        "--endpoint",
        &s3.endpoint,
        "--region",
        &s3.region,
    ]));
    assert!(out.contains(&url), "{out}");
    assert_setting(&s3, &store_path);

    // 30 files of about 1 KB: several 4 KiB packs fill up and are uploaded.
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let mut contents: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..30 {
        let mut v = format!("object {i} ").into_bytes();
        v.resize(900 + i * 7, b'a' + (i % 26) as u8);
        let name = format!("f{i:02}");
        std::fs::write(src.join(&name), &v).expect("write");
        contents.insert(name, v);
    }
    let added = ok(&s3.rsdos(&["-p", store, "add", "--pack", src.to_str().expect("utf8")]));
    // `<hashkey>  <path>` per input.
    let by_key: HashMap<String, Vec<u8>> = added
        .lines()
        .map(|l| {
            let (key, path) = l.split_once("  ").expect("hashkey  path");
            let name = Path::new(path)
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (key.to_string(), contents[&name].clone())
        })
        .collect();
    assert_eq!(by_key.len(), contents.len(), "{added}");

    let json = status_json(&s3, store);
    assert_eq!(json["packs"]["location"], "remote", "{json}");
    assert_eq!(json["packs"]["url"], url.as_str(), "{json}");
    assert_eq!(json["packs"]["pending_upload"], 0, "{json}");
    assert_eq!(json["count"]["packed"], 30, "{json}");

    // Repack everything, so that the pack still being appended to is uploaded too.
    ok(&s3.rsdos(&["-p", store, "repack", "--all"]));
    let json = status_json(&s3, store);
    assert_eq!(json["packs"]["staged_ids"], serde_json::json!([]), "{json}");
    assert_eq!(json["packs"]["pending_upload"], 0, "{json}");

    // The clone gets its credentials as options, none from the environment.
    let clone_path = tmp.path().join("clone");
    let clone = clone_path.to_str().expect("utf8 path");
    let out = Command::new(env!("CARGO_BIN_EXE_rsdos"))
        .args(["clone", &url, clone, "--endpoint", &s3.endpoint])
        .args(["--region", &s3.region])
        .args(["--packs-option"])
        .arg(format!("access_key_id={}", s3.access_key_id))
        .args(["--packs-option"])
        .arg(format!("secret_access_key={}", s3.secret_access_key))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .expect("run rsdos clone");
    let text = ok(&out);
    assert!(text.contains("index snapshot"), "{text}");
    assert!(text.contains("objects:  30"), "{text}");
    assert_setting(&s3, &clone_path);

    for (key, body) in &by_key {
        let out = s3.rsdos(&["-p", clone, "cat", key]);
        ok(&out);
        assert!(&out.stdout == body, "object {key} differs in the clone");
    }
    ok(&s3.rsdos(&["-p", clone, "validate"]));
    let json = status_json(&s3, clone);
    assert_eq!(json["packs"]["url"], url.as_str(), "{json}");
    assert_eq!(json["count"]["packed"], 30, "{json}");
}
