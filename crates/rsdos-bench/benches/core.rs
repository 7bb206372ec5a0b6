//! Criterion benchmarks of the Rust core: `cargo bench -p rsdos-bench` (not run by the test
//! command; the comparison with disk-objectstore is `docs/benchmarks.md`'s job).
//!
//! Each benchmark works on 10,000 objects of 0-1000 bytes (half random, half text, as
//! `bench/bench.py`), so one run of the whole file takes a few minutes on two cores. The
//! durable loose write is measured on 200 objects: it is bound by the disk's fsync.

use std::hint::black_box;
use std::io::Read;
use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rsdos::{
    CompressMode, Container, InitOptions, NoProgress, PackOptions, PackWriteOptions,
    ValidateOptions,
};
use rsdos_testkit::data::{Rng, small_objects};

const N: usize = 10_000;

fn fresh(dir: &Path, name: &str, algorithm: &str) -> Container {
    let algorithm = algorithm.parse().expect("algorithm");
    Container::init(
        &dir.join(name),
        &InitOptions::default().with_compression_algorithm(algorithm),
    )
    .expect("init")
}

/// Loose objects written without fsync (set-up only).
fn fill_loose(c: &Container, data: &[Vec<u8>]) -> Vec<String> {
    data.iter()
        .map(|d| {
            let key = c.config().hash_type.hash_hex(d);
            let path = c.loose_path(&key).expect("path");
            std::fs::create_dir_all(path.parent().expect("shard")).expect("shard folder");
            std::fs::write(&path, d).expect("write");
            key
        })
        .collect()
}

fn shuffled(keys: &[String]) -> Vec<String> {
    let mut out = keys.to_vec();
    Rng::new(2).shuffle(&mut out);
    out
}

fn writes(c: &mut Criterion) {
    let data = small_objects(N, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("write");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let mut round = 0;
    for (label, mode, algorithm) in [
        ("add_many_to_pack/none", CompressMode::No, "zlib+1"),
        ("add_many_to_pack/zstd+1", CompressMode::Yes, "zstd+1"),
        ("add_many_to_pack/zlib+1", CompressMode::Yes, "zlib+1"),
    ] {
        g.bench_function(label, |b| {
            b.iter_batched(
                || {
                    round += 1;
                    fresh(dir.path(), &format!("w{round}"), algorithm)
                },
                |c| {
                    c.add_many_to_pack(
                        data.iter().map(|d| &d[..]),
                        &PackWriteOptions::default().with_compress(mode),
                    )
                    .expect("add")
                },
                BatchSize::PerIteration,
            )
        });
    }
    let few = &data[..200];
    g.throughput(Throughput::Elements(few.len() as u64));
    g.bench_function("add_object/loose_durable_200", |b| {
        b.iter_batched(
            || {
                round += 1;
                fresh(dir.path(), &format!("w{round}"), "zlib+1")
            },
            |c| {
                for d in few {
                    c.add_object(d).expect("add");
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn maintenance(c: &mut Criterion) {
    let data = small_objects(N, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = c.benchmark_group("maintenance");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    let mut round = 0;
    g.bench_function("pack_loose/none", |b| {
        b.iter_batched(
            || {
                round += 1;
                let c = fresh(dir.path(), &format!("m{round}"), "zlib+1");
                fill_loose(&c, &data);
                c
            },
            |c| {
                c.pack_loose(&PackOptions::default(), &NoProgress)
                    .expect("pack")
            },
            BatchSize::PerIteration,
        )
    });
    let packed = fresh(dir.path(), "packed", "zstd+1");
    packed
        .add_many_to_pack(
            data.iter().map(|d| &d[..]),
            &PackWriteOptions::default().with_compress(CompressMode::Auto),
        )
        .expect("add");
    g.bench_function("validate", |b| {
        b.iter(|| {
            let report = packed
                .validate(&ValidateOptions::default(), &NoProgress)
                .expect("validate");
            assert!(report.is_valid());
        })
    });
    g.finish();
}

fn reads(c: &mut Criterion) {
    let data = small_objects(N, 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let container = fresh(dir.path(), "r", "zstd+1");
    let keys = container
        .add_many_to_pack(
            data.iter().map(|d| &d[..]),
            &PackWriteOptions::default().with_compress(CompressMode::Auto),
        )
        .expect("add");
    let random = shuffled(&keys);
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(20);
    g.bench_function("read_many/packed_random_order", |b| {
        b.iter(|| {
            let mut total = 0;
            for item in container.read_many(&random, false).expect("read_many") {
                let mut item = item.expect("item");
                if let Some(r) = item.reader.as_mut() {
                    total += r.read_to_end(&mut Vec::new()).expect("read");
                }
            }
            black_box(total)
        })
    });
    g.bench_function("get_object/packed_one_by_one", |b| {
        b.iter(|| {
            let total: usize = random
                .iter()
                .map(|k| container.get_object(k).expect("get").len())
                .sum();
            black_box(total)
        })
    });
    g.bench_function("has_many", |b| {
        b.iter(|| black_box(container.has_many(&random).expect("has_many")))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("count+total_size", |b| {
        b.iter(|| {
            black_box(container.count().expect("count"));
            black_box(container.total_size().expect("size"))
        })
    });
    g.finish();
}

criterion_group!(benches, writes, maintenance, reads);
criterion_main!(benches);
