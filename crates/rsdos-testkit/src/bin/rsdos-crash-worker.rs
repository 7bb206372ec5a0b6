//! `rsdos-crash-worker <op> <container> [args]`: one container operation per process, for the
//! crash (SIGKILL) tests in `tests/kill.rs` and the live concurrency tests in `tests/live.rs`.
//!
//! It reports on stdout, one line at a time and flushed, exactly what *returned*, so that a
//! parent that kills it at a random instant knows which effects must have survived:
//!
//! ```text
//! init [PACK_SIZE_TARGET] [ALGORITHM]
//!                             creates the container (e.g. `init c 65536 zstd+3`)
//! add-loose SEED START COUNT [--pause-ms N] [--stop-file PATH]
//!                             add_object of content(SEED, i) for i in START..START+COUNT;
//!                             prints `ok <i> <hashkey>` after each return
//! add-batch SEED START COUNT  write_batch (flushing by itself every 5 objects) of 12 objects
//!                             at a time, alternately add_object and add_stream; prints the
//!                             batch's `ok <i> <hashkey>` lines after each commit returns
//! add-pack SEED START COUNT   add_many_to_pack in batches of 20; prints the batch's
//!                             `ok <i> <hashkey>` lines after each call returns
//! pack [no|yes|auto]          pack_loose (`compress` means yes); prints `packed <n>`
//! pack-clean [no|yes|auto]    pack_loose with clean_loose_per_pack
//! clean [vacuum] [nograce]    clean (nograce: sandbox files of any age are leftovers)
//! repack [no|yes|auto|keep] [all]
//! delete KEY...               prints `deleted <n>` after delete returns
//! validate                    prints a one-line JSON summary; exit 2 if not valid
//! read-all SEED START COUNT [--rounds N] [--stop-file PATH]
//!                             reads every object (get_object and read_many on alternate
//!                             rounds) and compares it with content(SEED, i); exit 3 on
//!                             any mismatch or error (on stderr); prints `rounds <n>`
//! ```
//!
//! Exit codes: 0 done, 1 an operation failed, 2 bad usage or validation found problems,
//! 3 a read returned an error or wrong bytes.
//!
//! `content` must stay identical to the copies in `tests/kill.rs` and `tests/live.rs`; the
//! tests check every hashkey this worker prints against their own copy, so a drift fails them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rsdos::{
    CleanOptions, CompressMode, Container, InitOptions, NoProgress, PackOptions, PackWriteOptions,
    RepackOptions, ValidateOptions, WriteBatchOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

/// The deterministic content of object `i` of series `seed`: 0..4000 bytes of text or random
/// bytes, and every 97 objects one of 300 KiB (read by streaming) and two of 200 KiB.
fn content(seed: u64, i: u64) -> Vec<u8> {
    let mut rng = Rng::new(
        seed.wrapping_mul(0x0000_0100_0000_01B3) ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9),
    );
    let len = match i % 97 {
        13 => 300 * 1024,
        29 | 71 => 200 * 1024,
        _ => rng.below(4001) as usize,
    };
    if rng.below(3) == 0 {
        random_bytes(&mut rng, len)
    } else {
        text_bytes(&mut rng, len)
    }
}

/// An error that ends the worker with an exit code.
struct Fail(u8, String);

impl From<rsdos::Error> for Fail {
    fn from(e: rsdos::Error) -> Self {
        Fail(1, e.to_string())
    }
}

fn usage(msg: &str) -> Fail {
    Fail(
        2,
        format!("{msg}\nusage: rsdos-crash-worker <op> <container> [args] (see the source)"),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("rsdos-crash-worker {}: {msg}", args.join(" "));
            ExitCode::from(code)
        }
    }
}

/// Writes one line to stdout and flushes it, so a parent sees it even if we are killed next.
fn say(line: &str) -> Result<(), Fail> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Fail(1, format!("stdout: {e}")))
}

fn num(args: &[String], at: usize, what: &str) -> Result<u64, Fail> {
    args.get(at)
        .ok_or_else(|| usage(&format!("missing {what}")))?
        .parse()
        .map_err(|_| usage(&format!("{what} must be a number")))
}

/// The value after `--name`, if given.
fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|p| args.get(p + 1))
        .map(String::as_str)
}

fn compress_arg(arg: Option<&String>) -> Result<CompressMode, Fail> {
    match arg.map(String::as_str) {
        None => Ok(CompressMode::No),
        Some("compress") => Ok(CompressMode::Yes),
        Some(s) => s
            .parse()
            .map_err(|_| usage(&format!("bad compress mode {s}"))),
    }
}

fn stop_requested(stop_file: Option<&Path>) -> bool {
    stop_file.is_some_and(Path::exists)
}

fn run(args: &[String]) -> Result<(), Fail> {
    let op = args.first().ok_or_else(|| usage("missing op"))?.as_str();
    let path = PathBuf::from(args.get(1).ok_or_else(|| usage("missing container"))?);
    let rest = &args[2..];
    if op == "init" {
        let mut options = InitOptions::default();
        if !rest.is_empty() {
            options = options.with_pack_size_target(num(rest, 0, "PACK_SIZE_TARGET")?);
        }
        if let Some(a) = rest.get(1) {
            options = options.with_compression_algorithm(
                a.parse()
                    .map_err(|_| usage(&format!("bad compression algorithm {a}")))?,
            );
        }
        Container::init(&path, &options)?;
        return say("initialised");
    }
    let container = Container::open(&path)?;
    match op {
        "add-loose" => {
            let (seed, start, count) = (
                num(rest, 0, "SEED")?,
                num(rest, 1, "START")?,
                num(rest, 2, "COUNT")?,
            );
            let pause = flag(rest, "--pause-ms")
                .map(|s| s.parse::<u64>().map_err(|_| usage("bad --pause-ms")))
                .transpose()?
                .map(Duration::from_millis);
            let stop_file = flag(rest, "--stop-file").map(PathBuf::from);
            for i in start..start + count {
                if stop_requested(stop_file.as_deref()) {
                    break;
                }
                let key = container.add_object(&content(seed, i))?;
                say(&format!("ok {i} {key}"))?;
                if let Some(p) = pause {
                    std::thread::sleep(p);
                }
            }
        }
        "add-batch" => {
            let (seed, start, count) = (
                num(rest, 0, "SEED")?,
                num(rest, 1, "START")?,
                num(rest, 2, "COUNT")?,
            );
            let end = start + count;
            let mut first = start;
            while first < end {
                let last = (first + 12).min(end);
                let mut batch =
                    container.write_batch_with(WriteBatchOptions::default().with_max_objects(5));
                let mut lines = Vec::new();
                for i in first..last {
                    let data = content(seed, i);
                    let key = if i % 2 == 0 {
                        batch.add_object(&data)?
                    } else {
                        batch.add_stream(&mut data.as_slice())?
                    };
                    lines.push(format!("ok {i} {key}"));
                }
                batch.commit()?;
                say(&lines.join("\n"))?;
                first = last;
            }
        }
        "add-pack" => {
            let (seed, start, count) = (
                num(rest, 0, "SEED")?,
                num(rest, 1, "START")?,
                num(rest, 2, "COUNT")?,
            );
            let end = start + count;
            let mut first = start;
            while first < end {
                let last = (first + 20).min(end);
                let batch: Vec<Vec<u8>> = (first..last).map(|i| content(seed, i)).collect();
                let keys = container.add_many_to_pack(
                    batch.iter().map(|d| d.as_slice()),
                    &PackWriteOptions::default(),
                )?;
                if keys.len() != batch.len() {
                    return Err(Fail(
                        1,
                        format!("{} keys for {} objects", keys.len(), batch.len()),
                    ));
                }
                let lines: Vec<String> = (first..last)
                    .zip(&keys)
                    .map(|(i, k)| format!("ok {i} {k}"))
                    .collect();
                say(&lines.join("\n"))?;
                first = last;
            }
        }
        "pack" | "pack-clean" => {
            let options = PackOptions::default()
                .with_compress(compress_arg(rest.first())?)
                .with_clean_loose_per_pack(op == "pack-clean");
            let report = container.pack_loose(&options, &NoProgress)?;
            say(&format!(
                "packed {} loose_deleted {} corrupt {}",
                report.packed,
                report.loose_deleted,
                report.corrupt_loose.len()
            ))?;
        }
        "clean" => {
            let mut options = CleanOptions::default();
            for a in rest {
                options = match a.as_str() {
                    "vacuum" => options.with_vacuum(true),
                    "nograce" => options.with_sandbox_grace(Duration::ZERO),
                    other => return Err(usage(&format!("bad clean option {other}"))),
                };
            }
            let report = container.clean(&options, &NoProgress)?;
            say(&format!(
                "cleaned loose {} sandbox {}",
                report.loose_deleted, report.sandbox_removed
            ))?;
        }
        "repack" => {
            let mut options = RepackOptions::default();
            for a in rest {
                options = match a.as_str() {
                    "all" => options.with_all(true),
                    mode => options.with_compress(
                        mode.parse()
                            .map_err(|_| usage(&format!("bad repack option {mode}")))?,
                    ),
                };
            }
            let report = container.repack(&options, &NoProgress)?;
            say(&format!(
                "repacked {} removed {}",
                report.rewritten.len(),
                report.removed_empty.len()
            ))?;
        }
        "delete" => {
            let existed = container.delete(rest)?;
            say(&format!("deleted {}", existed.len()))?;
        }
        "validate" => {
            let r = container.validate(&ValidateOptions::default(), &NoProgress)?;
            say(&format!(
                "{{\"valid\": {}, \"issues\": {}, \"invalid_hashes_loose\": {}, \
                 \"invalid_hashes_packed\": {}, \"invalid_sizes_packed\": {}, \
                 \"overlapping_packed\": {}, \"unreadable_packed\": {}, \"missing_packs\": {}, \
                 \"rows_pointing_nowhere\": {}, \"invalid_loose_names\": {}, \
                 \"unreadable_loose\": {}, \"config_problems\": {}}}",
                r.is_valid(),
                r.issue_count(),
                r.invalid_hashes_loose.len(),
                r.invalid_hashes_packed.len(),
                r.invalid_sizes_packed.len(),
                r.overlapping_packed.len(),
                r.unreadable_packed.len(),
                r.missing_packs.len(),
                r.rows_pointing_nowhere.len(),
                r.invalid_loose_names.len(),
                r.unreadable_loose.len(),
                r.config_problems.len(),
            ))?;
            if !r.is_valid() {
                return Err(Fail(2, format!("validation found problems: {r:?}")));
            }
        }
        "read-all" => read_all(&container, rest)?,
        other => return Err(usage(&format!("unknown op {other}"))),
    }
    Ok(())
}

/// Reads every object of a series, round after round, and compares it with its content.
fn read_all(container: &Container, rest: &[String]) -> Result<(), Fail> {
    let (seed, start, count) = (
        num(rest, 0, "SEED")?,
        num(rest, 1, "START")?,
        num(rest, 2, "COUNT")?,
    );
    let rounds = flag(rest, "--rounds")
        .map(|s| s.parse::<u64>().map_err(|_| usage("bad --rounds")))
        .transpose()?
        .unwrap_or(1);
    let stop_file = flag(rest, "--stop-file").map(PathBuf::from);
    let hash_type = container.config().hash_type;
    let mut expected: std::collections::HashMap<String, Vec<u8>> = std::collections::HashMap::new();
    let mut keys = Vec::new();
    for i in start..start + count {
        let data = content(seed, i);
        let key = hash_type.hash_hex(&data);
        keys.push(key.clone());
        expected.insert(key, data);
    }
    let bad = |what: String| Fail(3, what);
    let mut done = 0u64;
    while done < rounds && !stop_requested(stop_file.as_deref()) {
        if done.is_multiple_of(2) {
            for key in &keys {
                let got = container
                    .get_object(key)
                    .map_err(|e| bad(format!("round {done}: get_object {key}: {e}")))?;
                if expected.get(key) != Some(&got) {
                    return Err(bad(format!(
                        "round {done}: get_object {key}: wrong content ({} bytes)",
                        got.len()
                    )));
                }
            }
        } else {
            let mut seen = 0usize;
            let many = container
                .read_many(&keys, false)
                .map_err(|e| bad(format!("round {done}: read_many: {e}")))?;
            for item in many {
                let item = item.map_err(|e| bad(format!("round {done}: read_many item: {e}")))?;
                let key = item.hashkey;
                let Some(mut reader) = item.reader else {
                    return Err(bad(format!("round {done}: read_many: {key} missing")));
                };
                let mut got = Vec::new();
                reader
                    .read_to_end(&mut got)
                    .map_err(|e| bad(format!("round {done}: read_many {key}: {e}")))?;
                if Some(&got) != expected.get(&key) {
                    return Err(bad(format!(
                        "round {done}: read_many {key}: wrong content ({} bytes)",
                        got.len()
                    )));
                }
                seen += 1;
            }
            if seen != expected.len() {
                return Err(bad(format!(
                    "round {done}: read_many yielded {seen} of {} objects",
                    expected.len()
                )));
            }
        }
        done += 1;
    }
    say(&format!("rounds {done}"))
}
