//! Times a container whose packs are remote against the same on local disk: insert N small
//! objects directly into packs (sealing and uploading each full pack), then read M of them
//! back at random, one `get_object` each.
//!
//! ```text
//! scripts/test-servers.sh start
//! cargo run --release -p rsdos-pack-opendal --example remote_timing -- [N] [M] [PACK_MIB]
//! ```
//!
//! The remote is the S3 server of `.test-servers/env` (or `RSDOS_TEST_SERVERS_ENV`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rsdos::{Container, InitOptions, PackWriteOptions};
use rsdos_core::PackStore;
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::{Rng, text_bytes};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn settings() -> Res<HashMap<String, String>> {
    let path = std::env::var_os("RSDOS_TEST_SERVERS_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.test-servers/env"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}; run scripts/test-servers.sh start", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn arg(n: usize, default: u64) -> Res<u64> {
    Ok(match std::env::args().nth(n) {
        Some(a) => a.parse()?,
        None => default,
    })
}

/// Inserts `n` objects in packs, then reads `m` at random; returns (insert s, read s).
fn run(container: &Container, n: u64, m: u64) -> Res<(f64, f64)> {
    let mut rng = Rng::new(7);
    let objects: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let len = 200 + rng.below(1800) as usize;
            let mut d = text_bytes(&mut rng, len);
            d.extend_from_slice(&i.to_le_bytes());
            d
        })
        .collect();
    let t = Instant::now();
    let keys = container.add_many_to_pack(
        objects.iter().map(|o| o.as_slice()),
        &PackWriteOptions::default(),
    )?;
    let insert = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..m {
        let i = rng.below(n) as usize;
        let got = container.get_object(&keys[i])?;
        if got != objects[i] {
            return Err(format!("object {i} read back wrong").into());
        }
    }
    Ok((insert, t.elapsed().as_secs_f64()))
}

fn main() -> Res<()> {
    let n = arg(1, 100_000)?;
    let m = arg(2, 10_000)?;
    let pack_mib = arg(3, 16)?;
    let init = InitOptions::default().with_pack_size_target(pack_mib << 20);

    let dir = tempfile::tempdir()?;
    let local = Container::init(&dir.path().join("local"), &init)?;
    let (li, lr) = run(&local, n, m)?;
    println!("local disk : insert {n} objects {li:.2} s, read {m} at random {lr:.2} s");

    let s = settings()?;
    let root = dir.path().join("remote");
    drop(Container::init(&root, &init)?);
    let url = s
        .get("RSDOS_TEST_S3_URL")
        .ok_or("RSDOS_TEST_S3_URL missing")?;
    let prefix = format!("timing-{}", std::process::id());
    let (base, query) = url.split_once('?').unwrap_or((url.as_str(), ""));
    let store = Arc::new(OpendalPackStore::open_with(
        &format!("{base}/{prefix}?{query}"),
        &root.join("packs"),
        [
            (
                "access_key_id",
                s.get("RSDOS_TEST_S3_ACCESS_KEY_ID")
                    .map_or("", String::as_str),
            ),
            (
                "secret_access_key",
                s.get("RSDOS_TEST_S3_SECRET_ACCESS_KEY")
                    .map_or("", String::as_str),
            ),
        ],
    )?);
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx"))?);
    let packs: Arc<dyn PackStore> = Arc::clone(&store) as Arc<dyn PackStore>;
    let remote = Container::open_with_storage(&root, index, packs)?;
    let (ri, rr) = run(&remote, n, m)?;
    println!(
        "S3 (moto)  : insert {n} objects {ri:.2} s (uploaded packs: {}, still local: {}), \
         read {m} at random {rr:.2} s",
        store.uploaded()?.len(),
        store.staged()?.len()
    );
    Ok(())
}
