//! The automatic packer: `Container::start_auto_pack` (a thread) and `AutoPackRunner` (one
//! round at a time), with writers in threads and in processes, explicit maintenance issued
//! while it runs, and a packer process killed (SIGKILL) and restarted.
//!
//! Child processes are this test binary itself, run with an environment variable that turns
//! one of its tests into a writer or a packer (`child_writer_process`,
//! `child_packer_process`; without the variable those tests do nothing).
//!
//! No test asserts a duration: waits for the packer to catch up are bounded only so that a
//! broken packer fails instead of hanging.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use rsdos::{
    AutoPackOptions, AutoPackRunner, BackupOptions, CompressMode, Container, InitOptions,
    NoProgress, PackOptions, PackTrigger, Progress, ValidateOptions, auto_pack_status,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

/// Environment variable that makes `child_writer_process` write: `PATH SEED COUNT`.
const WRITER_VAR: &str = "RSDOS_AUTO_PACK_TEST_WRITER";
/// Environment variable that makes `child_packer_process` run a packer on the container.
const PACKER_VAR: &str = "RSDOS_AUTO_PACK_TEST_PACKER";
/// Longest wait for the packer to catch up (a bound against hanging, not a requirement).
const CATCH_UP: Duration = Duration::from_secs(180);

/// Object `i` of series `seed`: up to 4000 bytes of text or random bytes, and with `large`,
/// every 101st object 1.5 MiB (streamed into the pack rather than read whole).
fn content(seed: u64, i: u64, large: bool) -> Vec<u8> {
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003) ^ (i + 1).wrapping_mul(0x9E37_79B9));
    let len = if large && i % 101 == 50 {
        1536 * 1024
    } else {
        rng.below(4001) as usize
    };
    if rng.below(3) == 0 {
        random_bytes(&mut rng, len)
    } else {
        text_bytes(&mut rng, len)
    }
}

fn init(dir: &Path, pack_size_target: u64) -> Container {
    Container::init(
        &dir.join("c"),
        &InitOptions::default().with_pack_size_target(pack_size_target),
    )
    .expect("init")
}

/// Options of a packer that reacts quickly, so that the tests run many small batches.
fn eager() -> AutoPackOptions {
    AutoPackOptions::default()
        .with_max_loose_objects(50)
        .with_max_age(Duration::from_millis(200))
        .with_batch_objects(100)
        .with_poll_interval(Duration::from_millis(50))
}

/// Waits (bounded) until the container has no loose file left.
fn wait_until_no_loose(c: &Container) {
    let start = Instant::now();
    loop {
        let count = c.count().expect("count");
        if count.loose == 0 {
            return;
        }
        assert!(
            start.elapsed() < CATCH_UP,
            "the packer did not catch up: {count:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_valid(c: &Container) {
    let report = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(report.is_valid(), "{report:?}");
}

fn assert_readable(c: &Container, all: &HashMap<String, Vec<u8>>) {
    for (k, v) in all {
        assert_eq!(&c.get_object(k).expect("get"), v, "{k}");
    }
}

/// Runs rounds until every loose copy is deleted (a batch deletes copies only while it has
/// held the lock for less than about a second; the next rounds delete the rest).
fn finish_deleting(c: &Container, runner: &mut AutoPackRunner) {
    let start = Instant::now();
    while c.count().expect("count").loose > 0 {
        assert!(start.elapsed() < CATCH_UP, "loose copies are never deleted");
        let round = runner.run_once(&NoProgress).expect("round");
        assert_eq!(round.packed, 0, "{round:?}");
    }
}

/// Sets the mtime of a loose file.
fn set_mtime(c: &Container, key: &str, t: SystemTime) {
    let path = c.loose_path(key).expect("path");
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(t))
        .expect("set mtime");
}

#[test]
fn threads_write_while_the_packer_runs_and_explicit_pack_and_backup_get_the_lock() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 4 * 1024 * 1024);
    let packer = c.start_auto_pack(eager()).expect("start");
    let status = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(status.is_active(), "{status:?}");
    assert_eq!(status.pid, std::process::id());

    let (tx, rx) = mpsc::channel::<(String, Vec<u8>)>();
    let writers: Vec<_> = (0..4u64)
        .map(|seed| {
            let c = c.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..600 {
                    let data = content(seed + 10, i, true);
                    let key = c.add_object(&data).expect("add");
                    tx.send((key, data)).expect("send");
                }
            })
        })
        .collect();
    drop(tx);

    // Explicit maintenance while the packer and the writers run: each gets the lock (within
    // the library's own 60 s wait, which a packer holding the lock for good would exceed).
    let dest = dir.path().join("backups");
    let mut backups = Vec::new();
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        let options = PackOptions::default().with_clean_loose_per_pack(round == 1);
        c.pack_loose(&options, &NoProgress).expect("explicit pack");
        let report = c
            .backup(&dest, &BackupOptions::default().with_keep(3), &NoProgress)
            .expect("backup");
        backups.push(report.container_path());
    }

    for w in writers {
        w.join().expect("writer");
    }
    let all: HashMap<String, Vec<u8>> = rx.into_iter().collect();
    wait_until_no_loose(&c);
    let stats = packer.stop().expect("stop");
    assert!(stats.batches > 0 && stats.objects_packed > 0, "{stats:?}");
    assert_eq!(stats.last_error, None, "{stats:?}");

    let count = c.count().expect("count");
    assert_eq!(count.loose, 0);
    assert_eq!(count.packed, all.len() as u64);
    assert_readable(&c, &all);
    assert_valid(&c);
    for backup in backups {
        assert_valid(&Container::open(&backup).expect("open backup"));
    }
    let status = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(
        !status.is_active() && status.stopped.is_some(),
        "{status:?}"
    );
    assert_eq!(status.objects_packed, stats.objects_packed);
}

#[test]
fn dropping_the_handle_stops_the_packer() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let packer = c.start_auto_pack(eager()).expect("start");
    assert!(packer.is_running());
    for i in 0..200 {
        c.add_object(&content(1, i, false)).expect("add");
    }
    wait_until_no_loose(&c);
    assert!(packer.stats().objects_packed > 0);
    drop(packer);
    let status = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(
        status.stopped.is_some() && !status.is_active(),
        "{status:?}"
    );
    assert_eq!(status.objects_packed, 200);
    // Nothing runs any more: new objects stay loose.
    c.add_object(b"after the packer").expect("add");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.count().expect("count").loose, 1);
    assert_valid(&c);
}

#[test]
fn thresholds_decide_when_a_round_packs() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let options = AutoPackOptions::default()
        .with_max_loose_objects(100)
        .with_max_loose_bytes(1 << 30)
        .with_max_age(Duration::from_secs(3600));
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let idle = runner.run_once(&NoProgress).expect("round");
    assert_eq!((idle.loose_objects, idle.trigger), (0, None));
    assert!(idle.is_idle());

    for i in 0..99 {
        c.add_object(&content(2, i, false)).expect("add");
    }
    let below = runner.run_once(&NoProgress).expect("round");
    assert_eq!((below.loose_objects, below.trigger), (99, None));
    assert_eq!(c.count().expect("count").packed, 0);
    // Nothing changed: no shard folder is listed again, except those modified less than two
    // seconds ago (whose mtime is not trusted yet).
    let again = runner.run_once(&NoProgress).expect("round");
    assert_eq!(again.loose_objects, 99);

    c.add_object(&content(2, 99, false)).expect("add");
    let packing = runner.run_once(&NoProgress).expect("round");
    assert_eq!(packing.trigger, Some(PackTrigger::Count));
    assert_eq!(packing.packed, 100);
    // Copies not deleted within the batch's time on the lock are left for the next round.
    assert_eq!(packing.loose_deleted + packing.remaining, 100);
    finish_deleting(&c, &mut runner);
    let count = c.count().expect("count");
    assert_eq!((count.loose, count.packed), (0, 100));

    // Age: one old object is enough.
    let key = c.add_object(b"old").expect("add");
    set_mtime(&c, &key, SystemTime::now() - Duration::from_secs(7200));
    let aged = runner.run_once(&NoProgress).expect("round");
    assert_eq!(aged.trigger, Some(PackTrigger::Age));
    assert_eq!(aged.packed, 1);

    // Bytes.
    let mut runner = AutoPackRunner::new(&c, options.with_max_loose_bytes(10_000)).expect("r");
    c.add_object(&vec![7u8; 12_000]).expect("add");
    let big = runner.run_once(&NoProgress).expect("round");
    assert_eq!(big.trigger, Some(PackTrigger::Bytes));
    assert_eq!(big.packed, 1);

    // A loose copy of a packed object (an explicit pack without clean) is deleted even when
    // no threshold is passed.
    let key = c.add_object(b"packed elsewhere").expect("add");
    c.pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    assert!(c.loose_path(&key).expect("path").exists());
    let cleanup = runner.run_once(&NoProgress).expect("round");
    assert_eq!(cleanup.trigger, Some(PackTrigger::Cleanup));
    assert_eq!((cleanup.packed, cleanup.loose_deleted), (0, 1));
    assert!(!c.loose_path(&key).expect("path").exists());
    // This second runner packed the big object only.
    assert_eq!(runner.stats().objects_packed, 1);
    runner.finish().expect("finish");
    assert_valid(&c);
}

/// Stops a round once the index holds at least `n` rows (checked between objects and
/// batches; rows appear when a batch commits).
struct StopAfterRows<'a>(&'a Container, u64);

impl Progress for StopAfterRows<'_> {
    fn should_stop(&self) -> bool {
        self.0.count().map(|c| c.packed >= self.1).unwrap_or(true)
    }
}

#[test]
fn oldest_objects_are_packed_first_in_batches() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let base = SystemTime::now() - Duration::from_secs(1000);
    let mut keys = Vec::new();
    for i in 0..40u64 {
        let key = c.add_object(&content(3, i, false)).expect("add");
        // Oldest last in writing order, so that neither key nor write order gives the answer.
        set_mtime(&c, &key, base + Duration::from_secs(100 - i));
        keys.push(key);
    }
    let options = AutoPackOptions::default()
        .with_max_loose_objects(1)
        .with_batch_objects(5);
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let first = runner.run_once(&StopAfterRows(&c, 1)).expect("round");
    // Five objects, unless the batch ran out of time first (a very slow disk).
    let n = first.packed as usize;
    assert!(first.batches == 1 && (1..=5).contains(&n), "{first:?}");
    assert!(first.stopped);
    assert_eq!(first.remaining, 40 - first.packed);
    let oldest: Vec<&String> = keys.iter().rev().take(n).collect();
    for (i, key) in keys.iter().enumerate() {
        let packed = c.meta(key).expect("meta").object_type == rsdos::ObjectType::Packed;
        assert_eq!(packed, oldest.contains(&key), "object {i}");
        assert_eq!(c.loose_path(key).expect("path").exists(), !packed);
    }
    let rest = runner.run_once(&NoProgress).expect("round");
    assert_eq!(rest.packed, 40 - first.packed, "{rest:?}");
    assert!(rest.batches > (39 - first.packed) / 5, "{rest:?}");
    finish_deleting(&c, &mut runner);
    assert_eq!(c.count().expect("count").loose, 0);
    assert_valid(&c);
}

#[test]
fn a_held_lock_makes_the_round_wait_for_the_next_poll() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    for i in 0..30 {
        c.add_object(&content(4, i, false)).expect("add");
    }
    let options = AutoPackOptions::default().with_max_loose_objects(1);
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let lock = c.lock_maintenance(None).expect("lock");
    let busy = runner.run_once(&NoProgress).expect("round");
    assert!(
        busy.lock_busy && busy.batches == 0 && busy.remaining == 30,
        "{busy:?}"
    );
    drop(lock);
    let done = runner.run_once(&NoProgress).expect("round");
    assert_eq!(done.packed, 30);
    assert_eq!(runner.stats().busy_rounds, 1);
}

#[test]
fn corrupt_loose_files_are_left_alone_and_reported_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let good = c.add_object(b"good").expect("add");
    let bad = c.add_object(b"soon bad").expect("add");
    std::fs::write(c.loose_path(&bad).expect("path"), b"tampered").expect("tamper");
    let options = AutoPackOptions::default().with_max_loose_objects(1);
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let first = runner.run_once(&NoProgress).expect("round");
    assert_eq!(first.corrupt_loose, vec![bad.clone()]);
    assert_eq!(first.packed, 1);
    assert_eq!(
        c.meta(&good).expect("meta").object_type,
        rsdos::ObjectType::Packed
    );
    let second = runner.run_once(&NoProgress).expect("round");
    assert!(second.corrupt_loose.is_empty() && second.trigger.is_none());
    assert!(c.loose_path(&bad).expect("path").exists());
}

#[test]
fn sandbox_leftovers_older_than_the_grace_period_are_swept() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let sandbox = c.path().join("sandbox");
    let old = sandbox.join("old-leftover");
    let young = sandbox.join("young-write");
    std::fs::write(&old, b"x").expect("write");
    std::fs::write(&young, b"y").expect("write");
    std::fs::File::options()
        .write(true)
        .open(&old)
        .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(600)))
        .expect("set mtime");
    let options = AutoPackOptions::default().with_sandbox_grace(Duration::from_secs(300));
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let round = runner.run_once(&NoProgress).expect("round");
    assert_eq!(round.sandbox_removed, 1);
    assert!(!old.exists() && young.exists());
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    for options in [
        AutoPackOptions::default().with_batch_objects(0),
        AutoPackOptions::default().with_batch_bytes(0),
        AutoPackOptions::default().with_poll_interval(Duration::ZERO),
    ] {
        let e = c.start_auto_pack(options).expect_err("invalid");
        assert_eq!(e.kind(), rsdos::ErrorKind::InvalidArgument);
    }
    assert!(auto_pack_status(&c).expect("status").is_none());
}

#[test]
fn the_status_file_is_read_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    // As a packer killed long ago left it (pid 0 is no user process), with an error
    // message that needs escaping.
    std::fs::write(
        c.path().join(rsdos::AUTO_PACK_STATUS_FILE),
        "{\"pid\": 0, \"started\": 1700000000.250, \"last_activity\": null, \
         \"stopped\": null, \"batches\": 3, \"objects_packed\": 12, \
         \"last_error\": \"cannot \\\"x\\\"\\n\\u00e9\\/\", \"future_field\": [1, 2]}",
    )
    .expect("write");
    let e = auto_pack_status(&c).expect_err("arrays are not part of the format");
    assert_eq!(e.kind(), rsdos::ErrorKind::Corrupt);
    std::fs::write(
        c.path().join(rsdos::AUTO_PACK_STATUS_FILE),
        "{\"pid\": 0, \"started\": 1700000000.250, \"last_activity\": null, \
         \"stopped\": null, \"batches\": 3, \"objects_packed\": 12, \"extra\": true, \
         \"last_error\": \"cannot \\\"x\\\"\\n\\u00e9\\/\"}",
    )
    .expect("write");
    let status = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert_eq!(
        (status.pid, status.batches, status.objects_packed),
        (0, 3, 12)
    );
    assert_eq!(status.last_error.as_deref(), Some("cannot \"x\"\n\u{e9}/"));
    assert_eq!(status.last_activity, None);
    assert!(!status.process_alive && !status.is_active());
    assert_eq!(
        status.started,
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250)
    );

    // A packer that ran and stopped.
    let packer = c.start_auto_pack(eager()).expect("start");
    let running = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(running.process_alive && running.is_active(), "{running:?}");
    packer.stop().expect("stop");
    let stopped = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(stopped.process_alive && !stopped.is_active(), "{stopped:?}");
}

// ---- processes ------------------------------------------------------------------------------

/// A child process, killed (SIGKILL) when dropped, so that a failing test leaves none behind.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test binary, running only `test` with `var` set to `value`.
fn spawn_self(test: &str, var: &str, value: &str) -> Kid {
    Kid(Command::new(std::env::current_exe().expect("current exe"))
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child"))
}

/// In a child: exits as soon as the parent test process is gone (killed, or a test harness
/// that timed out), so that no child outlives its test.
fn exit_with_parent() {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if std::os::unix::process::parent_id() != parent {
                std::process::exit(0);
            }
        }
    });
}

/// Writer child: adds `content(SEED, i)` for i in 0..COUNT as fast as it can.
#[test]
fn child_writer_process() {
    let Ok(spec) = std::env::var(WRITER_VAR) else {
        return;
    };
    let parts: Vec<&str> = spec.split(' ').collect();
    let (path, seed, count) = (
        PathBuf::from(parts[0]),
        parts[1].parse::<u64>().expect("seed"),
        parts[2].parse::<u64>().expect("count"),
    );
    exit_with_parent();
    let c = Container::open(&path).expect("open");
    for i in 0..count {
        c.add_object(&content(seed, i, false)).expect("add");
    }
}

/// Stops nothing, but when called while this process holds the maintenance lock (the packer
/// writes its pid into `rsdos.lock` when it takes it, and empties it when it lets it go), that
/// is between two objects of a batch whose bytes are appended and not committed: says so on
/// stdout and hangs there until killed.
struct HangInBatch {
    lock_file: PathBuf,
    pid: String,
}

impl Progress for HangInBatch {
    fn should_stop(&self) -> bool {
        let holder = std::fs::read_to_string(&self.lock_file).unwrap_or_default();
        if holder.trim() == self.pid {
            println!("in batch");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        false
    }
}

/// Packer child, `PATH MODE`: with `run`, an eager packer thread until killed, printing
/// `batches <n>` after each round that committed something; with `hang`, rounds of an eager
/// packer until one hangs in the middle of a batch (see [`HangInBatch`]).
#[test]
fn child_packer_process() {
    let Ok(spec) = std::env::var(PACKER_VAR) else {
        return;
    };
    let (path, mode) = spec.rsplit_once(' ').expect("PATH MODE");
    exit_with_parent();
    let c = Container::open(Path::new(path)).expect("open");
    let options = eager().with_max_loose_objects(1);
    if mode == "hang" {
        // At least two objects per batch, so that the stop check between them comes.
        let options = options.with_max_loose_objects(2);
        let hang = HangInBatch {
            lock_file: c.path().join("rsdos.lock"),
            pid: std::process::id().to_string(),
        };
        let mut runner = AutoPackRunner::new(&c, options).expect("runner");
        loop {
            if let Err(e) = runner.run_once(&hang) {
                eprintln!("packer child: {e}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _packer = c
        .start_auto_pack_with(
            options,
            Box::new(|round| match round {
                Ok(r) if r.batches > 0 => println!("batches {}", r.batches),
                Ok(_) => {}
                Err(e) => eprintln!("packer child: {e}"),
            }),
        )
        .expect("start");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Waits (bounded) until the packer child prints `what` (libtest may have printed the
/// name of the test on the same line).
fn wait_for_line(child: &mut Kid, what: &'static str) {
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(what) && tx.send(()).is_err() {
                return;
            }
        }
    });
    rx.recv_timeout(CATCH_UP)
        .unwrap_or_else(|_| panic!("the packer process never printed {what:?}"));
}

#[test]
fn writer_processes_and_a_packer_process_killed_and_restarted() {
    const WRITERS: u64 = 3;
    const COUNT: u64 = 1200;
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 256 * 1024);
    let path = c.path().to_string_lossy().into_owned();
    let mut writers: Vec<Kid> = (0..WRITERS)
        .map(|w| {
            spawn_self(
                "child_writer_process",
                WRITER_VAR,
                &format!("{path} {} {COUNT}", 100 + w),
            )
        })
        .collect();

    // Kill the packer (SIGKILL) three times in the middle of a batch, with the lock held and
    // pack bytes appended but not committed; then once at whatever point it is after it
    // reported a batch; the fifth one finishes the job.
    let lock_file = c.path().join("rsdos.lock");
    for round in 0..4 {
        let mode = if round < 3 { "hang" } else { "run" };
        let mut packer = spawn_self(
            "child_packer_process",
            PACKER_VAR,
            &format!("{path} {mode}"),
        );
        wait_for_line(
            &mut packer,
            if mode == "hang" {
                "in batch"
            } else {
                "batches "
            },
        );
        packer.0.kill().expect("kill");
        packer.0.wait().expect("wait");
        if mode == "hang" {
            let holder = std::fs::read_to_string(&lock_file).expect("read lock file");
            assert_eq!(
                holder.trim(),
                packer.0.id().to_string(),
                "killed holding the lock"
            );
        }
        let status = auto_pack_status(&c)
            .expect("status")
            .expect("a status file");
        assert!(
            !status.is_active() && status.stopped.is_none(),
            "a killed packer is not active: {status:?}"
        );
    }
    let packer = spawn_self("child_packer_process", PACKER_VAR, &format!("{path} run"));
    for w in &mut writers {
        assert!(w.0.wait().expect("wait writer").success());
    }
    wait_until_no_loose(&c);
    let status = auto_pack_status(&c)
        .expect("status")
        .expect("a status file");
    assert!(status.is_active(), "{status:?}");
    assert_eq!(status.pid, packer.0.id());
    drop(packer);

    let mut all = HashMap::new();
    for w in 0..WRITERS {
        for i in 0..COUNT {
            let data = content(100 + w, i, false);
            all.insert(c.config().hash_type.hash_hex(&data), data);
        }
    }
    let count = c.count().expect("count");
    assert_eq!((count.loose, count.packed), (0, all.len() as u64));
    assert_readable(&c, &all);
    assert_valid(&c);
}

#[test]
fn compression_mode_is_honoured() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = init(dir.path(), 1 << 20);
    let mut all = HashMap::new();
    for i in 0..120 {
        let data = content(5, i, i == 50);
        all.insert(c.add_object(&data).expect("add"), data);
    }
    let options = AutoPackOptions::default()
        .with_max_loose_objects(1)
        .with_compress(CompressMode::Auto);
    let mut runner = AutoPackRunner::new(&c, options).expect("runner");
    let round = runner.run_once(&NoProgress).expect("round");
    assert_eq!(round.packed, all.len() as u64);
    let compressed = all
        .keys()
        .filter(|k| {
            c.meta(k)
                .expect("meta")
                .packed
                .is_some_and(|l| l.compressed)
        })
        .count();
    assert!(compressed > 0);
    assert_readable(&c, &all);
    assert_valid(&c);
}
