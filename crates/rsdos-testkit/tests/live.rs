//! Live concurrency test with real processes: while two `rsdos-crash-worker` processes keep
//! adding loose objects and three others keep reading a base set of objects (checking every
//! byte; one of them only a large object, which is streamed), this test process packs, repacks (all packs, alternating compression) and cleans
//! over and over, and a thread validates the container continuously. Objects keep moving under
//! the readers (loose to packed, pack to pack, loose copies deleted), which the concurrency
//! rules of the design say readers never notice (ARCHITECTURE.md, "Concurrency and crash
//! rules", rule 4).
//!
//! Afterwards: every process exited 0 (a reader exits 3 on any error or wrong byte), every
//! object a writer reported as written is readable and byte-identical, every concurrent
//! `validate` was clean, and so is a final one.
//!
//! `RSDOS_LIVE_SECONDS=<n>` changes the duration of the maintenance phase (default 10).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rsdos::{
    CleanOptions, CompressMode, Container, InitOptions, NoProgress, PackOptions, RepackOptions,
    ValidateOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

const WORKER: &str = env!("CARGO_BIN_EXE_rsdos-crash-worker");

/// Series of the base set, read by the readers.
const BASE_SEED: u64 = 1;
const BASE_COUNT: u64 = 300;
/// Series of the two writers.
const WRITER_SEEDS: [u64; 2] = [2, 3];

/// Must stay identical to `content` in `src/bin/rsdos-crash-worker.rs` (checked: every
/// hashkey a writer prints is compared with the hash of this content).
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

/// A worker process whose stdout and stderr are drained by threads (a writer prints more than
/// a pipe holds).
struct Worker {
    name: String,
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished worker left.
struct Finished {
    name: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<String>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = p.read_to_string(&mut s);
            s
        })
    })
}

impl Worker {
    fn spawn(name: &str, args: &[String]) -> Worker {
        let mut child = Command::new(WORKER)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        Worker {
            name: name.to_string(),
            child,
            stdout,
            stderr,
        }
    }

    /// True while the process runs.
    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit, then kills it.
    fn finish(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = self.child.kill();
                    break self.child.wait().expect("wait for worker");
                }
            }
        };
        let join = |h: Option<JoinHandle<String>>| {
            h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
        };
        Finished {
            name: self.name.clone(),
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

impl Drop for Worker {
    /// A test that panics must not leave processes behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check_all(
    c: &Container,
    objects: &BTreeMap<String, (u64, u64)>,
    when: &str,
) -> Result<(), String> {
    for (key, &(seed, i)) in objects {
        match c.get_object(key) {
            Ok(data) if data == content(seed, i) => {}
            Ok(data) => {
                return Err(format!(
                    "{when}: object {key} ({seed}, {i}) has wrong content ({} bytes)",
                    data.len()
                ));
            }
            Err(e) => return Err(format!("{when}: object {key} ({seed}, {i}): {e}")),
        }
    }
    let report = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .map_err(|e| format!("{when}: validate: {e}"))?;
    if !report.is_valid() {
        return Err(format!("{when}: validate found problems: {report:#?}"));
    }
    Ok(())
}

#[test]
fn readers_and_writers_in_other_processes_survive_pack_repack_and_clean() {
    let started = Instant::now();
    let run_for = Duration::from_secs(std::env::var("RSDOS_LIVE_SECONDS").ok().map_or(10, |s| {
        s.parse().expect("RSDOS_LIVE_SECONDS must be a number")
    }));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "live-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test folder");
    let path = dir.join("c");
    let stop_file = dir.join("stop");
    let c = Container::init(
        &path,
        &InitOptions::default().with_pack_size_target(64 * 1024),
    )
    .expect("init");
    let hash_type = c.config().hash_type;

    // The base set: half packed (with their loose copies still there), half loose only.
    let mut objects: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for i in 0..BASE_COUNT {
        if i == BASE_COUNT / 2 {
            c.pack_loose(&PackOptions::default(), &NoProgress)
                .expect("first pack");
        }
        let key = c.add_object(&content(BASE_SEED, i)).expect("add base");
        objects.insert(key, (BASE_SEED, i));
    }

    let stop = ["--stop-file".to_string(), arg(&stop_file)];
    let mut writers: Vec<Worker> = WRITER_SEEDS
        .iter()
        .map(|seed| {
            let mut args = vec![
                "add-loose".to_string(),
                arg(&path),
                seed.to_string(),
                "0".into(),
                "1000000".into(),
                "--pause-ms".into(),
                "5".into(),
            ];
            args.extend(stop.iter().cloned());
            Worker::spawn(&format!("writer {seed}"), &args)
        })
        .collect();
    // Two readers of the whole base set, and one that reads only object 110, of 300 KiB: more
    // than the 256 KiB that `get_object` reads from a pack in one go, so it is streamed from
    // the pack file while repack may delete that file.
    let reader_ranges = [(0, BASE_COUNT), (0, BASE_COUNT), (110, 1)];
    assert_eq!(content(BASE_SEED, 110).len(), 300 * 1024);
    let mut readers: Vec<Worker> = reader_ranges
        .iter()
        .enumerate()
        .map(|(n, (start, count))| {
            let mut args = vec![
                "read-all".to_string(),
                arg(&path),
                BASE_SEED.to_string(),
                start.to_string(),
                count.to_string(),
                "--rounds".into(),
                "1000000000".into(),
            ];
            args.extend(stop.iter().cloned());
            Worker::spawn(
                &format!("reader {n} of objects {start}..{}", start + count),
                &args,
            )
        })
        .collect();

    // A thread validating over and over while everything else runs.
    let done = Arc::new(AtomicBool::new(false));
    let validations = Arc::new(AtomicU64::new(0));
    let validator = {
        let c = c.clone();
        let done = Arc::clone(&done);
        let validations = Arc::clone(&validations);
        std::thread::spawn(move || -> Vec<String> {
            let mut problems = Vec::new();
            while !done.load(Ordering::SeqCst) {
                match c.validate(&ValidateOptions::default().with_threads(1), &NoProgress) {
                    Ok(r) if r.is_valid() => {}
                    Ok(r) => problems.push(format!("{r:#?}")),
                    Err(e) => problems.push(format!("error: {e}")),
                }
                validations.fetch_add(1, Ordering::SeqCst);
            }
            problems
        })
    };

    // Maintenance in this process until the time is up, or something went wrong.
    let mut maintenance_errors: Vec<String> = Vec::new();
    let mut cycles = 0u64;
    let deadline = Instant::now() + run_for;
    while Instant::now() < deadline {
        let pack_mode =
            [CompressMode::No, CompressMode::Auto, CompressMode::Yes][cycles as usize % 3];
        let repack = match cycles % 3 {
            0 => RepackOptions::default()
                .with_all(true)
                .with_compress(CompressMode::Yes),
            1 => RepackOptions::default()
                .with_all(true)
                .with_compress(CompressMode::No),
            _ => RepackOptions::default().with_compress(CompressMode::Keep),
        };
        if let Err(e) = c.pack_loose(
            &PackOptions::default()
                .with_compress(pack_mode)
                .with_clean_loose_per_pack(!cycles.is_multiple_of(2)),
            &NoProgress,
        ) {
            maintenance_errors.push(format!("cycle {cycles}: pack: {e}"));
        }
        if let Err(e) = c.repack(&repack, &NoProgress) {
            maintenance_errors.push(format!("cycle {cycles}: repack {repack:?}: {e}"));
        }
        if let Err(e) = c.clean(
            &CleanOptions::default().with_vacuum(cycles.is_multiple_of(2)),
            &NoProgress,
        ) {
            maintenance_errors.push(format!("cycle {cycles}: clean: {e}"));
        }
        cycles += 1;
        // A reader or writer that stopped early failed: no point going on.
        if !maintenance_errors.is_empty()
            || readers
                .iter_mut()
                .chain(writers.iter_mut())
                .any(|w| !w.running())
        {
            break;
        }
    }
    std::fs::write(&stop_file, b"stop").expect("create stop file");
    let finished: Vec<Finished> = writers
        .drain(..)
        .chain(readers.drain(..))
        .map(|w| w.finish(Duration::from_secs(120)))
        .collect();
    done.store(true, Ordering::SeqCst);
    let validate_problems = validator.join().expect("validator thread");

    // Every process succeeded.
    let mut failures = Vec::new();
    for f in &finished {
        if !f.status.success() {
            failures.push(format!(
                "{} exited with {}: {}",
                f.name,
                f.status,
                f.stderr.trim()
            ));
        }
    }
    let mut written = 0u64;
    let mut rounds = Vec::new();
    for f in &finished {
        let complete = f.stdout.rfind('\n').map_or("", |end| &f.stdout[..end]);
        for line in complete.lines() {
            if let Some(rest) = line.strip_prefix("ok ") {
                let seed: u64 = f
                    .name
                    .strip_prefix("writer ")
                    .and_then(|s| s.parse().ok())
                    .expect("only writers print ok lines");
                let (i, key) = rest
                    .split_once(' ')
                    .and_then(|(i, k)| Some((i.parse::<u64>().ok()?, k)))
                    .expect("ok line: ok <i> <key>");
                let expected = hash_type.hash_hex(&content(seed, i));
                assert_eq!(
                    key, expected,
                    "{} stored object {i} as {key}, but its content hashes to {expected} \
                     (content() of the worker and of this test differ?)",
                    f.name
                );
                objects.insert(key.to_string(), (seed, i));
                written += 1;
            } else if let Some(n) = line.strip_prefix("rounds ") {
                rounds.push(n.parse::<u64>().expect("rounds <n>"));
            }
        }
    }
    eprintln!(
        "live test: {cycles} maintenance cycles (pack, repack, clean) in {:.1} s, {written} \
         objects written by the writers, reader rounds {rounds:?}, {} concurrent validations",
        run_for.as_secs_f64().min(started.elapsed().as_secs_f64()),
        validations.load(Ordering::SeqCst)
    );
    let keep = || format!("container kept at {}", path.display());
    assert!(
        failures.is_empty(),
        "worker processes failed:\n{}\n{}",
        failures.join("\n"),
        keep()
    );
    assert!(
        maintenance_errors.is_empty(),
        "maintenance failed while readers and writers ran:\n{}\n{}",
        maintenance_errors.join("\n"),
        keep()
    );
    assert_eq!(rounds.len(), 3, "every reader reports its rounds");
    assert!(
        rounds.iter().all(|&r| r >= 1),
        "every reader completed at least one round: {rounds:?}"
    );
    assert!(written > 0, "the writers wrote something");
    assert!(cycles >= 1, "at least one maintenance cycle ran");
    assert!(
        validate_problems.is_empty(),
        "validate, run while objects moved, reported problems ({} of {} runs):\n{}\n{}",
        validate_problems.len(),
        validations.load(Ordering::SeqCst),
        validate_problems.first().map_or("", String::as_str),
        keep()
    );

    // Everything written is there, in this process and in a fresh one.
    drop(c);
    let c = Container::open(&path).expect("open");
    if let Err(e) = check_all(&c, &objects, "after the live phase") {
        panic!("{e}\n{}", keep());
    }
    // One more full round of maintenance, now quiet: nothing is lost, nothing is left over.
    c.pack_loose(&PackOptions::default(), &NoProgress)
        .expect("final pack");
    c.clean(&CleanOptions::default().with_vacuum(true), &NoProgress)
        .expect("final clean");
    c.repack(&RepackOptions::default().with_all(true), &NoProgress)
        .expect("final repack");
    if let Err(e) = check_all(&c, &objects, "after the final pack, clean and repack") {
        panic!("{e}\n{}", keep());
    }
    let count = c.count().expect("count");
    assert_eq!(count.loose, 0, "clean removed every packed loose copy");
    assert_eq!(
        count.packed,
        objects.len() as u64,
        "exactly the written objects are stored"
    );
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
}
