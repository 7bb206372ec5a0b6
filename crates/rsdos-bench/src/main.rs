//! `rsdos-bench`: times the Rust core on n small objects (0-1000 bytes, half random, half
//! text, as `bench/bench.py`) and prints one line per workload. A benchmark command, never a
//! test: `cargo run --release -p rsdos-bench -- [N] [DIR]`. Subcommands: `phases N DIR [FILTER]`
//! (single phases of the core), `durable N DIR` (the flush floor of W1, `durable_floor.rs`),
//! `op OP PATH`, `remote ...`.

use std::io::Read;
use std::time::Instant;

use anyhow::{Context, Result};
use rsdos::{
    CleanOptions, CompressMode, Container, InitOptions, NoProgress, PackOptions, PackWriteOptions,
    PackedEntry, PackedLocation, ValidateOptions,
};
use rsdos_testkit::data::{Rng, small_objects};

mod durable_floor;
mod remote;

fn timed<T>(name: &str, items: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let start = Instant::now();
    let out = f().with_context(|| name.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name:<44} {secs:>9.3} s {:>12.0} obj/s {:>9.2} us/obj",
        items as f64 / secs,
        secs * 1e6 / items.max(1) as f64
    );
    Ok(out)
}

/// `rsdos-bench op OP PATH [ARG]`: one maintenance operation on an existing container,
/// printing `{"op": .., "seconds": ..}` (used by `compare_maintenance.py`, which times
/// disk-objectstore on a copy of the same container).
fn op(mut args: impl Iterator<Item = String>) -> Result<()> {
    let op = args.next().context("missing OP")?;
    let path = std::path::PathBuf::from(args.next().context("missing PATH")?);
    let arg = args.next();
    let c = Container::open(&path)?;
    let start = Instant::now();
    match op.as_str() {
        "pack" => {
            let compress = match arg.as_deref() {
                Some("yes") => CompressMode::Yes,
                Some("auto") => CompressMode::Auto,
                _ => CompressMode::No,
            };
            c.pack_loose(&PackOptions::default().with_compress(compress), &NoProgress)?;
        }
        "clean" => {
            c.clean(&CleanOptions::default(), &NoProgress)?;
        }
        "validate" => {
            let report = c.validate(&ValidateOptions::default(), &NoProgress)?;
            anyhow::ensure!(report.is_valid(), "not valid: {report:?}");
        }
        "repack" => {
            c.repack(&rsdos::RepackOptions::default().with_all(true), &NoProgress)?;
        }
        "delete-every-10th" => {
            let keys: Vec<String> = c.iter_hashkeys()?.collect::<rsdos::Result<_>>()?;
            c.delete(keys.iter().step_by(10))?;
        }
        "backup" => {
            let dest = std::path::PathBuf::from(arg.as_deref().context("backup needs DEST")?);
            c.backup(&dest, &rsdos::BackupOptions::default(), &NoProgress)?;
        }
        other => anyhow::bail!("unknown op {other}"),
    }
    println!(
        "{{\"op\": \"{op}\", \"seconds\": {:.4}}}",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Reads every object of `keys` through one `read_many`; returns the bytes read.
fn read_all(c: &Container, keys: &[String]) -> Result<usize> {
    let mut total = 0;
    for item in c.read_many(keys, true)? {
        let mut item = item?;
        if let Some(r) = item.reader.as_mut() {
            total += r.read_to_end(&mut Vec::new())?;
        }
    }
    Ok(total)
}

/// `keys` in a fixed random order.
fn shuffled(keys: &[String]) -> Vec<String> {
    let mut out = keys.to_vec();
    Rng::new(2).shuffle(&mut out);
    out
}

/// Writes `data` as loose objects of `c` without any fsync: benchmark set-up only, so the
/// phases after it (pack, read, clean) can be profiled without waiting minutes for durable
/// writes. Returns the hashkeys in `data`'s order.
fn fill_loose_fast(c: &Container, data: &[Vec<u8>]) -> Result<Vec<String>> {
    data.iter()
        .map(|d| {
            let key = c.config().hash_type.hash_hex(d);
            let path = c.loose_path(&key)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, d)?;
            Ok(key)
        })
        .collect()
}

/// `rsdos-bench phases N DIR`: the non-fsync-bound phases only (loose objects written without
/// fsync first), for profiling: pack_loose, read_many packed, get_object, validate, and
/// add_many_to_pack with each compression.
fn phases(mut args: impl Iterator<Item = String>) -> Result<()> {
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let base = match args.next() {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let only = args.next();
    let data = small_objects(n, 1);
    let wanted = |name: &str| only.as_deref().is_none_or(|o| name.contains(o));
    if wanted("pack_loose") || wanted("read") || wanted("validate") {
        let c = Container::init(&base.path().join("loose"), &InitOptions::default())?;
        let keys = fill_loose_fast(&c, &data)?;
        timed("pack_loose (no compression)", n, || {
            Ok(c.pack_loose(&PackOptions::default(), &NoProgress)?)
        })?;
        let shuffled = shuffled(&keys);
        timed("read_many, packed, random order", n, || {
            read_all(&c, &shuffled)
        })?;
        timed("validate", n, || {
            Ok(c.validate(&ValidateOptions::default(), &NoProgress)?)
        })?;
    }
    if wanted("index insert") {
        // The floor of W5 and W2: SQLite inserting one pack's rows in one transaction.
        let c = Container::init(&base.path().join("index-only"), &InitOptions::default())?;
        let mut offset = 0;
        let entries: Vec<PackedEntry> = data
            .iter()
            .map(|d| {
                let e = PackedEntry {
                    hashkey: c.config().hash_type.hash_hex(d),
                    location: PackedLocation {
                        pack_id: 0,
                        offset,
                        length: d.len() as u64,
                        size: d.len() as u64,
                        compressed: false,
                    },
                };
                offset += d.len() as u64;
                e
            })
            .collect();
        timed("index insert, one transaction", n, || {
            Ok(c.index().insert(&entries)?)
        })?;
        // W3's planning: every key of the table asked for at once, in random order; 5 times, or
        // GET_MANY_ROUNDS times (more for a profile).
        let keys: Vec<String> = entries.iter().map(|e| e.hashkey.clone()).collect();
        let shuffled = shuffled(&keys);
        let refs: Vec<&str> = shuffled.iter().map(String::as_str).collect();
        let rounds: usize = std::env::var("GET_MANY_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        for _ in 0..rounds {
            timed("index get_many, every key", n, || {
                Ok(c.index().get_many(&refs)?.len())
            })?;
        }
    }
    if wanted("compress only") {
        // The CPU floor of W5 compressed: each object compressed on its own, one thread, the
        // codec state reused (as rsdos' pack writer does), nothing else.
        let bytes: usize = data.iter().map(Vec::len).sum();
        let mut zlib = flate2::Compress::new(flate2::Compression::new(1), true);
        let mut out = Vec::with_capacity(2048);
        let stored = timed("compress only, zlib+1, one thread", n, || {
            let mut stored = 0usize;
            for d in &data {
                zlib.reset();
                out.clear();
                out.reserve(d.len() + 64);
                let status = zlib.compress_vec(d, &mut out, flate2::FlushCompress::Finish)?;
                anyhow::ensure!(status == flate2::Status::StreamEnd, "zlib: {status:?}");
                stored += out.len();
            }
            Ok(stored)
        })?;
        println!("  zlib+1: {bytes} bytes to {stored}");
        let mut zstd = zstd::bulk::Compressor::new(1)?;
        let stored = timed("compress only, zstd+1, one thread", n, || {
            let mut stored = 0usize;
            for d in &data {
                stored += zstd.compress(d)?.len();
            }
            Ok(stored)
        })?;
        println!("  zstd+1: {bytes} bytes to {stored}");
    }
    for (name, mode, algorithm) in [
        ("no", CompressMode::No, "zlib+1"),
        ("yes", CompressMode::Yes, "zstd+1"),
        ("yes", CompressMode::Yes, "zlib+1"),
    ] {
        let label = format!("add_many_to_pack, compress {name}, {algorithm}");
        if !wanted(&label) {
            continue;
        }
        let dir = base.path().join(format!("pack-{name}-{algorithm}"));
        let c = Container::init(
            &dir,
            &InitOptions::default().with_compression_algorithm(algorithm.parse()?),
        )?;
        timed(&label, n, || {
            Ok(c.add_many_to_pack(
                data.iter().map(|d| &d[..]),
                &PackWriteOptions::default().with_compress(mode),
            )?)
        })?;
    }
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    match args.peek().map(String::as_str) {
        Some("op") => {
            args.next();
            return op(args);
        }
        Some("phases") => {
            args.next();
            return phases(args);
        }
        Some("remote") => {
            args.next();
            return remote::run(args);
        }
        Some("durable") => {
            args.next();
            return durable_floor::run(args);
        }
        _ => {}
    }
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let base = match args.next() {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let data = small_objects(n, 1);
    println!(
        "rsdos-bench: n = {n} objects of 0-1000 bytes ({} bytes)",
        data.iter().map(Vec::len).sum::<usize>()
    );

    let c = Container::init(&base.path().join("loose"), &InitOptions::default())?;
    let keys = timed("add_object (loose, durable on return)", n, || {
        data.iter()
            .map(|d| Ok(c.add_object(d)?))
            .collect::<Result<Vec<_>>>()
    })?;
    timed("read_many, loose", n, || read_all(&c, &keys))?;
    timed("pack_loose (no compression)", n, || {
        Ok(c.pack_loose(&PackOptions::default(), &NoProgress)?)
    })?;
    timed("clean (delete the loose copies)", n, || {
        Ok(c.clean(&CleanOptions::default(), &NoProgress)?)
    })?;
    let shuffled = shuffled(&keys);
    timed("read_many, packed, random order", n, || {
        read_all(&c, &shuffled)
    })?;
    let single = n.min(10_000);
    timed("get_object one by one, packed", single, || {
        shuffled[..single]
            .iter()
            .map(|k| Ok(c.get_object(k)?.len()))
            .sum::<Result<usize>>()
    })?;
    timed("validate", n, || {
        Ok(c.validate(&ValidateOptions::default(), &NoProgress)?)
    })?;
    timed("count", 1, || Ok(c.count()?))?;
    timed("iter_hashkeys", n, || Ok(c.iter_hashkeys()?.count()))?;
    timed("total_size", 1, || Ok(c.total_size()?))?;

    for (name, mode) in [
        ("no", CompressMode::No),
        ("auto", CompressMode::Auto),
        ("yes", CompressMode::Yes),
    ] {
        for algorithm in ["zlib+1", "zstd+1"] {
            if mode == CompressMode::No && algorithm == "zstd+1" {
                continue;
            }
            let dir = base.path().join(format!("pack-{name}-{algorithm}"));
            let c = Container::init(
                &dir,
                &InitOptions::default().with_compression_algorithm(algorithm.parse()?),
            )?;
            timed(
                &format!("add_many_to_pack, compress {name}, {algorithm}"),
                n,
                || {
                    Ok(c.add_many_to_pack(
                        data.iter().map(|d| &d[..]),
                        &PackWriteOptions::default().with_compress(mode),
                    )?)
                },
            )?;
        }
    }
    Ok(())
}
