//! Crash tests with real processes: the `rsdos-crash-worker` binary runs one container
//! operation (add loose objects one by one or in write batches, add straight to packs, pack, pack with incremental clean,
//! clean, repack in every compression mode, delete, validate) and is killed with SIGKILL at a
//! random instant. After every kill the test opens the container itself and checks the crash
//! rules of the design (ARCHITECTURE.md, "Concurrency and crash rules"):
//!
//! - every object whose insert *returned* (the worker printed its `ok` line) is readable and
//!   byte-identical;
//! - every object whose delete returned stays deleted;
//! - `validate` finds nothing wrong (leftover sandbox files and unreferenced pack bytes are
//!   not problems);
//! - a worker that was not killed succeeded (a crash must not leave anything, such as a stale
//!   lock, that makes the next operation fail).
//!
//! Then the next operation runs on the same container, so crashes compound. At the end of each
//! phase an uninterrupted pack, clean and repack must reclaim all the debris.
//!
//! The kill instant is uniform in `0..estimate`, where `estimate` tracks how long that
//! operation takes when it is not killed (fsync makes operations take 0.1-1 s here, much more
//! than a fixed 40 ms window would cover), so kills land anywhere in an operation, from the
//! process start to its last commit.
//!
//! Quick mode (the default, a debug build on 2 cores takes about two minutes): runs until at
//! least 200 workers were really killed, in two phases (a zlib container with 2-character loose
//! shards, a zstd container with 3-character shards). Long mode:
//!
//! ```text
//! RSDOS_KILL_ITERATIONS=5000 cargo test -p rsdos-testkit --release --test kill
//! ```
//!
//! runs that many iterations, switching to a fresh container every 1000. The operation
//! sequence and the kill delays come from a PRNG whose seed is printed at the start and on any
//! failure; `RSDOS_KILL_SEED=<n>` replays a sequence (the process timing still varies). A
//! failing container is kept under the target's tmp folder and its path printed.
//!
//! SIGKILL tests process crashes: the page cache survives, so a missing fsync is not detected
//! here (that needs power-loss testing).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rsdos::{
    CleanOptions, CompressMode, CompressionAlgorithm, Container, InitOptions, NoProgress,
    PackOptions, RepackOptions, ValidateOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

const WORKER: &str = env!("CARGO_BIN_EXE_rsdos-crash-worker");

/// Kills required in quick mode.
const QUICK_KILLS: u64 = 200;
/// Iterations per container in long mode.
const LONG_PHASE: u64 = 1000;
/// Objects the model aims to keep in the container (deletes take over above it).
const TARGET_OBJECTS: usize = 250;
/// Upper bound of the kill window of any operation.
const MAX_WINDOW: Duration = Duration::from_millis(1500);
/// Kill window before an operation's duration is known.
const FIRST_WINDOW: Duration = Duration::from_millis(300);

/// Must stay identical to `content` in `src/bin/rsdos-crash-worker.rs` (checked: every
/// hashkey the worker prints is compared with the hash of this content).
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    AddLoose,
    AddBatch,
    AddPack,
    Pack,
    PackAuto,
    PackClean,
    PackCleanYes,
    Clean,
    CleanVacuumNoGrace,
    RepackKeep,
    RepackKeepAll,
    RepackYesAll,
    RepackNoAll,
    RepackAutoAll,
    Delete,
    Validate,
}

impl Op {
    const ALL: [Op; 16] = [
        Op::AddLoose,
        Op::AddBatch,
        Op::AddPack,
        Op::Pack,
        Op::PackAuto,
        Op::PackClean,
        Op::PackCleanYes,
        Op::Clean,
        Op::CleanVacuumNoGrace,
        Op::RepackKeep,
        Op::RepackKeepAll,
        Op::RepackYesAll,
        Op::RepackNoAll,
        Op::RepackAutoAll,
        Op::Delete,
        Op::Validate,
    ];

    /// Relative frequency, given whether the container is above its target size.
    fn weight(self, full: bool) -> u64 {
        match self {
            Op::AddLoose => {
                if full {
                    1
                } else {
                    6
                }
            }
            Op::AddBatch => {
                if full {
                    1
                } else {
                    4
                }
            }
            Op::AddPack => {
                if full {
                    1
                } else {
                    4
                }
            }
            Op::Delete => {
                if full {
                    8
                } else {
                    2
                }
            }
            Op::Pack | Op::PackClean | Op::Clean | Op::RepackYesAll | Op::RepackNoAll => 3,
            Op::PackAuto
            | Op::PackCleanYes
            | Op::CleanVacuumNoGrace
            | Op::RepackKeep
            | Op::RepackKeepAll
            | Op::RepackAutoAll => 2,
            Op::Validate => 1,
        }
    }

    /// Worker arguments after the container path (the data arguments come separately).
    fn fixed_args(self) -> &'static [&'static str] {
        match self {
            Op::AddLoose => &["add-loose"],
            Op::AddBatch => &["add-batch"],
            Op::AddPack => &["add-pack"],
            Op::Pack => &["pack"],
            Op::PackAuto => &["pack", "auto"],
            Op::PackClean => &["pack-clean"],
            Op::PackCleanYes => &["pack-clean", "yes"],
            Op::Clean => &["clean"],
            Op::CleanVacuumNoGrace => &["clean", "vacuum", "nograce"],
            Op::RepackKeep => &["repack", "keep"],
            Op::RepackKeepAll => &["repack", "keep", "all"],
            Op::RepackYesAll => &["repack", "yes", "all"],
            Op::RepackNoAll => &["repack", "no", "all"],
            Op::RepackAutoAll => &["repack", "auto", "all"],
            Op::Delete => &["delete"],
            Op::Validate => &["validate"],
        }
    }
}

/// What the test knows about the container.
#[derive(Default)]
struct Model {
    /// Objects whose insert returned and that no delete was asked for since: hashkey ->
    /// (seed, i) of one content that hashes to it.
    must: BTreeMap<String, (u64, u64)>,
    /// Objects whose delete returned and that no insert was attempted for since.
    gone: BTreeSet<String>,
    /// Next content series.
    next_seed: u64,
}

/// Per-operation statistics and kill window.
struct OpStats {
    window: Duration,
    runs: u64,
    kills: u64,
}

/// One worker run, for messages.
struct Run {
    iteration: u64,
    op: Op,
    args: Vec<String>,
    delay: Duration,
    killed: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut args = self.args.join(" ");
        if args.len() > 300 {
            args.truncate(300);
            args.push_str(" ...");
        }
        write!(
            f,
            "iteration {}: {:?} (worker {args}), kill after {:?}, killed: {}\n  stdout: {}\n  stderr: {}",
            self.iteration,
            self.op,
            self.delay,
            self.killed,
            self.stdout.lines().last().unwrap_or(""),
            self.stderr.trim()
        )
    }
}

struct Harness {
    seed: u64,
    rng: Rng,
    dir: PathBuf,
    path: PathBuf,
    model: Model,
    stats: BTreeMap<Op, OpStats>,
    kills: u64,
    iterations: u64,
    /// The last few runs, for failure messages.
    history: std::collections::VecDeque<String>,
}

impl Harness {
    fn fail(&self, what: &str) -> ! {
        let history: Vec<&str> = self.history.iter().map(String::as_str).collect();
        panic!(
            "{what}\nseed {} (replay with RSDOS_KILL_SEED={}); container kept at {}\n\
             previous runs:\n{}",
            self.seed,
            self.seed,
            self.path.display(),
            history.join("\n")
        );
    }

    fn new_container(&mut self, phase: u64) {
        self.path = self.dir.join(format!("phase-{phase}"));
        let options = if phase.is_multiple_of(2) {
            InitOptions::default()
                .with_pack_size_target(64 * 1024)
                .with_compression_algorithm(CompressionAlgorithm::Zlib(1))
        } else {
            InitOptions::default()
                .with_pack_size_target(64 * 1024)
                .with_loose_prefix_len(3)
                .with_compression_algorithm(CompressionAlgorithm::Zstd(3))
        };
        if let Err(e) = Container::init(&self.path, &options) {
            self.fail(&format!("init: {e}"));
        }
        self.model = Model::default();
    }

    fn pick_op(&mut self) -> Op {
        let full = self.model.must.len() > TARGET_OBJECTS;
        let total: u64 = Op::ALL.iter().map(|o| o.weight(full)).sum();
        let mut x = self.rng.below(total);
        for op in Op::ALL {
            if x < op.weight(full) {
                return op;
            }
            x -= op.weight(full);
        }
        Op::Validate
    }

    /// Runs one operation, kills it at a random instant, updates the model and checks the
    /// container.
    fn iteration(&mut self) {
        let op = self.pick_op();
        let hash_type = match Container::open(&self.path) {
            Ok(c) => c.config().hash_type,
            Err(e) => self.fail(&format!("open before iteration {}: {e}", self.iterations)),
        };
        let mut args: Vec<String> = vec![op.fixed_args()[0].to_string(), path_arg(&self.path)];
        args.extend(op.fixed_args()[1..].iter().map(|s| s.to_string()));
        // Inserts: the keys they may create are no longer known to be gone.
        let mut series = None;
        let mut doomed = Vec::new();
        match op {
            Op::AddLoose | Op::AddBatch | Op::AddPack => {
                let seed = self.model.next_seed;
                self.model.next_seed += 1;
                let count = 10 + self.rng.below(31);
                for i in 0..count {
                    self.model
                        .gone
                        .remove(&hash_type.hash_hex(&content(seed, i)));
                }
                args.extend([seed.to_string(), "0".into(), count.to_string()]);
                series = Some(seed);
            }
            Op::Delete => {
                let n = if self.model.must.len() > TARGET_OBJECTS {
                    30 + self.rng.below(40)
                } else {
                    1 + self.rng.below(10)
                } as usize;
                let keys: Vec<String> = self.model.must.keys().cloned().collect();
                for _ in 0..n.min(keys.len()) {
                    let k = &keys[self.rng.below(keys.len() as u64) as usize];
                    if self.model.must.remove(k).is_some() {
                        doomed.push(k.clone());
                    }
                }
                // Also a key that was never stored: delete must ignore it.
                doomed.push(hash_type.hash_hex(&self.rng.next_u64().to_le_bytes()));
                args.extend(doomed.iter().cloned());
            }
            _ => {}
        }
        let window = self
            .stats
            .get(&op)
            .map_or(FIRST_WINDOW, |s| s.window)
            .max(Duration::from_millis(1));
        let delay = Duration::from_micros(self.rng.below(window.as_micros() as u64 + 1));

        let mut child = Command::new(WORKER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| self.fail(&format!("spawn {WORKER}: {e}")));
        let started = Instant::now();
        let (status, finished_after) = loop {
            match child.try_wait() {
                Ok(Some(status)) => break (status, Some(started.elapsed())),
                Ok(None) => {}
                Err(e) => self.fail(&format!("wait for worker: {e}")),
            }
            let elapsed = started.elapsed();
            if elapsed >= delay {
                // SIGKILL. If the worker exited just now, this is a no-op and the status says so.
                let _ = child.kill();
                match child.wait() {
                    Ok(status) => break (status, None),
                    Err(e) => self.fail(&format!("wait for killed worker: {e}")),
                }
            }
            std::thread::sleep((delay - elapsed).min(Duration::from_millis(1)));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        if let Some(mut err) = child.stderr.take() {
            let _ = err.read_to_string(&mut stderr);
        }
        let killed = status.signal() == Some(9);
        let run = Run {
            iteration: self.iterations,
            op,
            args: args.clone(),
            delay,
            killed,
            stdout,
            stderr,
        };
        self.iterations += 1;
        if self.history.len() == 5 {
            self.history.pop_front();
        }
        self.history.push_back(run.to_string());
        if !killed && !status.success() {
            self.fail(&format!(
                "the worker failed without being killed ({status}):\n{run}"
            ));
        }
        let stats = self.stats.entry(op).or_insert(OpStats {
            window: FIRST_WINDOW,
            runs: 0,
            kills: 0,
        });
        stats.runs += 1;
        if killed {
            self.kills += 1;
            stats.kills += 1;
            // The operation may have grown longer than the window: widen it slowly.
            stats.window = (stats.window.mul_f64(1.05)).min(MAX_WINDOW);
        } else if let Some(t) = finished_after {
            stats.window = ((stats.window + t.mul_f64(1.1)) / 2).min(MAX_WINDOW);
        }

        // Complete lines only: a line cut by the kill proves nothing.
        let complete = match run.stdout.rfind('\n') {
            Some(end) => &run.stdout[..end],
            None => "",
        };
        for line in complete.lines() {
            if let Some(rest) = line.strip_prefix("ok ") {
                let (Some(seed), Some((i, key))) = (
                    series,
                    rest.split_once(' ')
                        .and_then(|(i, k)| Some((i.parse::<u64>().ok()?, k))),
                ) else {
                    self.fail(&format!("unexpected worker output {line:?}:\n{run}"));
                };
                let expected = hash_type.hash_hex(&content(seed, i));
                if key != expected {
                    self.fail(&format!(
                        "the worker stored object {i} of series {seed} as {key}, but its content \
                         hashes to {expected} (content() of the worker and of this test differ?)\n{run}"
                    ));
                }
                self.model.must.insert(key.to_string(), (seed, i));
            } else if line.starts_with("deleted ") {
                self.model.gone.extend(doomed.iter().cloned());
            }
        }
        if let Err(problem) = self.check() {
            self.fail(&format!("after {run}\n{problem}"));
        }
    }

    /// Opens the container afresh and checks the model and `validate`.
    fn check(&self) -> Result<(), String> {
        let c = Container::open(&self.path).map_err(|e| format!("open: {e}"))?;
        for (key, &(seed, i)) in &self.model.must {
            match c.get_object(key) {
                Ok(data) if data == content(seed, i) => {}
                Ok(data) => {
                    return Err(format!(
                        "object {key} (whose insert returned) has wrong content: {} bytes, \
                         expected {}",
                        data.len(),
                        content(seed, i).len()
                    ));
                }
                Err(e) => {
                    return Err(format!(
                        "object {key} (whose insert returned) is not readable: {e}"
                    ));
                }
            }
        }
        for key in &self.model.gone {
            if c.has(key).map_err(|e| format!("has {key}: {e}"))? {
                return Err(format!("object {key} is back although its delete returned"));
            }
        }
        let report = c
            .validate(&ValidateOptions::default(), &NoProgress)
            .map_err(|e| format!("validate failed: {e}"))?;
        if !report.is_valid() {
            return Err(format!("validate found problems: {report:#?}"));
        }
        Ok(())
    }

    /// After a phase: an uninterrupted pack, clean and repack must leave no debris.
    fn reclaim(&self) {
        let c = Container::open(&self.path).unwrap_or_else(|e| self.fail(&format!("open: {e}")));
        let result = (|| -> rsdos::Result<()> {
            c.pack_loose(&PackOptions::default(), &NoProgress)?;
            c.clean(
                &CleanOptions::default()
                    .with_vacuum(true)
                    .with_sandbox_grace(Duration::ZERO),
                &NoProgress,
            )?;
            c.repack(
                &RepackOptions::default()
                    .with_all(true)
                    .with_compress(CompressMode::Auto),
                &NoProgress,
            )?;
            Ok(())
        })();
        if let Err(e) = result {
            self.fail(&format!("final pack, clean and repack failed: {e}"));
        }
        if let Err(problem) = self.check() {
            self.fail(&format!(
                "after the final pack, clean and repack: {problem}"
            ));
        }
        let count = c
            .count()
            .unwrap_or_else(|e| self.fail(&format!("count: {e}")));
        let sizes = c
            .total_size()
            .unwrap_or_else(|e| self.fail(&format!("total_size: {e}")));
        if count.loose != 0 {
            self.fail(&format!(
                "{} loose objects remain after pack and clean",
                count.loose
            ));
        }
        if sizes.total_size_packfiles_on_disk != sizes.total_size_packed_on_disk {
            self.fail(&format!(
                "pack files hold {} bytes but objects only {} after repack --all: crash debris \
                 was not reclaimed",
                sizes.total_size_packfiles_on_disk, sizes.total_size_packed_on_disk
            ));
        }
        // Temporary files of interrupted writes in packs/ are not covered by the crash rules
        // (validate ignores them); report them without failing.
        let debris: Vec<String> = std::fs::read_dir(self.path.join("packs"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        let stem = n
                            .strip_suffix(".toc")
                            .or_else(|| n.strip_suffix(".lock"))
                            .unwrap_or(n);
                        stem.is_empty() || !stem.bytes().all(|b| b.is_ascii_digit())
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !debris.is_empty() {
            eprintln!(
                "note: after the final clean and repack, packs/ still holds {} leftover file(s) \
                 of interrupted writes, e.g. {:?}",
                debris.len(),
                &debris[..debris.len().min(3)]
            );
        }
        let sandbox: Vec<_> = std::fs::read_dir(self.path.join("sandbox"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if !sandbox.is_empty() {
            self.fail(&format!(
                "sandbox/ still holds {sandbox:?} after clean with no grace period"
            ));
        }
    }
}

fn path_arg(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[test]
fn sigkill_at_random_instants_loses_nothing_that_returned() {
    let started = Instant::now();
    let long: Option<u64> = std::env::var("RSDOS_KILL_ITERATIONS")
        .ok()
        .map(|s| s.parse().expect("RSDOS_KILL_ITERATIONS must be a number"));
    let seed: u64 = match std::env::var("RSDOS_KILL_SEED") {
        Ok(s) => s.parse().expect("RSDOS_KILL_SEED must be a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007),
    };
    eprintln!("kill test seed {seed} (replay with RSDOS_KILL_SEED={seed})");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kill-{}-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create test folder");
    let mut h = Harness {
        seed,
        rng: Rng::new(seed),
        dir: dir.clone(),
        path: PathBuf::new(),
        model: Model::default(),
        stats: BTreeMap::new(),
        kills: 0,
        iterations: 0,
        history: Default::default(),
    };
    let mut phase = 0;
    h.new_container(phase);
    match long {
        None => {
            // Two phases of about half the kills each; a cap on iterations guards against a
            // worker that never gets killed.
            let cap = QUICK_KILLS * 4;
            while h.kills < QUICK_KILLS && h.iterations < cap {
                if phase == 0 && h.kills >= QUICK_KILLS / 2 {
                    h.reclaim();
                    phase = 1;
                    h.new_container(phase);
                }
                h.iteration();
            }
        }
        Some(n) => {
            while h.iterations < n {
                if h.iterations > 0 && h.iterations.is_multiple_of(LONG_PHASE) {
                    h.reclaim();
                    phase += 1;
                    h.new_container(phase);
                }
                h.iteration();
            }
        }
    }
    h.reclaim();
    let mut summary = String::new();
    for (op, s) in &h.stats {
        summary.push_str(&format!(
            "\n  {op:?}: {} runs, {} killed, kill window now {:?}",
            s.runs, s.kills, s.window
        ));
    }
    eprintln!(
        "kill test seed {seed}: {} SIGKILLs in {} iterations, {} phases, {:.1} s{summary}",
        h.kills,
        h.iterations,
        phase + 1,
        started.elapsed().as_secs_f64()
    );
    if long.is_none() {
        assert!(
            h.kills >= QUICK_KILLS,
            "only {} of {} iterations were killed (seed {seed})",
            h.kills,
            h.iterations
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
