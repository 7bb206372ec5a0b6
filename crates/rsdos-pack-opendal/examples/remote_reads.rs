//! Times random reads of small packed objects from a container whose packs are in object
//! storage, one object at a time (`get_object`) and in bulk (`read_many`):
//!
//! ```text
//! cargo run --release -p rsdos-pack-opendal --example remote_reads -- URL [OBJECTS] [READS]
//! ```
//!
//! `URL` is a pack-storage URL (`s3://bucket/prefix?endpoint=...`, `fs:///folder`);
//! credentials come from the service's usual environment variables. The container (OBJECTS
//! objects of 0-1000 bytes, default 100,000, packed in 4 MiB packs and uploaded) is built in a
//! temporary folder first; then READS (default 10,000) random keys are read back.

use std::sync::Arc;
use std::time::Instant;

use rsdos::{Container, InitOptions, PackWriteOptions};
use rsdos_core::PackStore;
use rsdos_index_sqlite::SqliteIndex;
use rsdos_pack_opendal::OpendalPackStore;
use rsdos_testkit::data::{Rng, random_bytes};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: remote_reads URL [OBJECTS] [READS]")?;
    let objects: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(100_000);
    let reads: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("c");
    drop(Container::init(
        &root,
        &InitOptions::default().with_pack_size_target(4 << 20),
    )?);
    let store = Arc::new(OpendalPackStore::open(&url, &root.join("packs"))?);
    let index = Arc::new(SqliteIndex::open(&root.join("packs.idx"))?);
    let c = Container::open_with_storage(&root, index, Arc::clone(&store) as Arc<dyn PackStore>)?;
    let mut rng = Rng::new(1);
    let data: Vec<Vec<u8>> = (0..objects)
        .map(|_| {
            let len = rng.below(1001) as usize;
            random_bytes(&mut rng, len)
        })
        .collect();
    let start = Instant::now();
    let mut keys =
        c.add_many_to_pack(data.iter().map(Vec::as_slice), &PackWriteOptions::default())?;
    // The last pack is still being written: seal it too, so every read is remote.
    if let Some(&last) = store.staged()?.last() {
        c.seal_pack(last)?;
    }
    println!(
        "pack and upload {objects} objects: {:.3} s ({} packs uploaded, {} staged)",
        start.elapsed().as_secs_f64(),
        store.uploaded()?.len(),
        store.staged()?.len()
    );
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.below(i as u64 + 1) as usize);
    }
    keys.truncate(reads);
    let start = Instant::now();
    for key in &keys {
        c.get_object(key)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "get_object x {reads} at random: {secs:.3} s ({:.2} ms/read)",
        secs * 1000.0 / reads as f64
    );
    let start = Instant::now();
    let mut n = 0;
    for item in c.read_many(&keys, true)? {
        let mut reader = item?.reader.ok_or("missing")?;
        reader.read_all()?;
        n += 1;
    }
    println!(
        "read_many of the same {n} keys: {:.3} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
