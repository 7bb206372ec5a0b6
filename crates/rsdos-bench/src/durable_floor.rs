//! `rsdos-bench durable N DIR`: the cost of one durable loose write, three ways, interleaved
//! in slices so that all three see the same disk (its flush latency changes several-fold
//! within minutes):
//!
//! - `three syncs` is what disk-objectstore does per `add_object` (as bench.py's W0 probe):
//!   write a file in `sandbox/`, `fsync` it, `fsync` `sandbox/`, rename it into its shard
//!   folder, `fsync` that folder;
//! - `two syncs` is the least the durability allows (the file's data, then the
//!   folder that received its name), with nothing else around it;
//! - `rsdos add_object` is [`Container::add_object`] (the same two syncs, with hashing, the
//!   existence check and the temporary-file handling).
//!
//! The first two are the floor of W1 on this disk: their ratio bounds what any implementation
//! with the same durability can gain over disk-objectstore, and the third's distance to `two
//! syncs` is what rsdos itself adds.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use rsdos::{Container, InitOptions};
use rsdos_testkit::data::small_objects;

/// Objects written in a row by one way before the next way takes over.
const SLICE: usize = 50;

pub(crate) fn run(mut args: impl Iterator<Item = String>) -> Result<()> {
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let base = match args.next() {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let data = small_objects(n, 11);
    let plain = base.path().join("plain");
    fs::create_dir_all(plain.join("sandbox"))?;
    for shard in 0..256 {
        fs::create_dir_all(plain.join("loose").join(format!("{shard:02x}")))?;
    }
    let container = Container::init(&base.path().join("rsdos"), &InitOptions::default())?;
    // As in a container in use, every shard folder exists already (creating one costs rsdos a
    // third sync, of `loose/`, once per shard).
    for shard in 0..256 {
        fs::create_dir_all(base.path().join("rsdos/loose").join(format!("{shard:02x}")))?;
    }
    let mut totals = [Duration::ZERO; 3];
    for (slice, chunk) in data.chunks(SLICE).enumerate() {
        // Each way goes first in turn.
        for turn in 0..3 {
            let way = (slice + turn) % 3;
            let start = Instant::now();
            for (i, object) in chunk.iter().enumerate() {
                let name = format!("{way}-{slice}-{i}");
                let shard = (slice * SLICE + i) % 256;
                match way {
                    0 => write_synced(&plain, shard, &name, object, true)?,
                    1 => write_synced(&plain, shard, &name, object, false)?,
                    _ => {
                        container.add_object(object)?;
                    }
                }
            }
            totals[way] += start.elapsed();
        }
    }
    let per_object = |d: Duration| d.as_secs_f64() * 1e3 / n.max(1) as f64;
    for (name, total) in ["three syncs", "two syncs", "rsdos add_object"]
        .iter()
        .zip(totals)
    {
        println!(
            "{name:<20} {:>8.3} s for {n} objects {:>8.3} ms per object",
            total.as_secs_f64(),
            per_object(total)
        );
    }
    println!(
        "three syncs / two syncs: {:.2}   rsdos / two syncs: {:.2}",
        totals[0].as_secs_f64() / totals[1].as_secs_f64(),
        totals[2].as_secs_f64() / totals[1].as_secs_f64()
    );
    Ok(())
}

/// Writes `data` as `sandbox/<name>`, makes it durable and renames it into shard folder
/// `shard` of `loose/`, made durable too; with `sync_sandbox`, also syncs `sandbox/` before
/// the rename.
fn write_synced(
    root: &Path,
    shard: usize,
    name: &str,
    data: &[u8],
    sync_sandbox: bool,
) -> Result<()> {
    let sandbox = root.join("sandbox");
    let tmp = sandbox.join(name);
    let mut f = File::create(&tmp)?;
    f.write_all(data)?;
    if sync_sandbox {
        f.sync_all()?;
        File::open(&sandbox)?.sync_all()?;
    } else {
        f.sync_data()?;
    }
    drop(f);
    let shard = root.join("loose").join(format!("{shard:02x}"));
    fs::rename(&tmp, shard.join(name))?;
    File::open(&shard)?.sync_all()?;
    Ok(())
}
