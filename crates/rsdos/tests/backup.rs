//! `Container::backup`: layout, incrementality (hard links), rotation, consistency while the
//! container changes, and that disk-objectstore reads a backup.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rsdos::{
    BackupOptions, BackupReport, Container, ErrorKind, InitOptions, NoProgress, PackOptions,
    PackWriteOptions, Progress, RepackOptions, ValidateOptions,
};
use rsdos_testkit::data::{Rng, random_bytes, text_bytes};

const PACK_SIZE_TARGET: u64 = 16 * 1024;

fn new_container(dir: &Path) -> Container {
    Container::init(
        &dir.join("c"),
        &InitOptions::default().with_pack_size_target(PACK_SIZE_TARGET),
    )
    .expect("init")
}

fn add_loose(c: &Container, rng: &mut Rng, n: usize, all: &mut HashMap<String, Vec<u8>>) {
    for i in 0..n {
        let data = if i % 2 == 0 {
            let len = 1 + rng.below(3000) as usize;
            random_bytes(rng, len)
        } else {
            let len = 1 + rng.below(5000) as usize;
            text_bytes(rng, len)
        };
        all.insert(c.add_object(&data).expect("add"), data);
    }
}

fn add_packed(c: &Container, rng: &mut Rng, n: usize, all: &mut HashMap<String, Vec<u8>>) {
    let contents: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let len = 1 + rng.below(4000) as usize;
            text_bytes(rng, len)
        })
        .collect();
    let keys = c
        .add_many_to_pack(
            contents.iter().map(|v| v.as_slice()),
            &PackWriteOptions::default(),
        )
        .expect("pack");
    all.extend(keys.into_iter().zip(contents));
}

/// Opens the container of a backup and checks every expected object and validate.
fn assert_backup_holds(report_path: &Path, expected: &HashMap<String, Vec<u8>>) {
    let c = Container::open(&report_path.join("container")).expect("open backup");
    for (k, v) in expected {
        assert_eq!(&c.get_object(k).expect("backup object"), v, "{k}");
    }
    let listed: Vec<String> = c
        .iter_hashkeys()
        .expect("list")
        .collect::<Result<_, _>>()
        .expect("list");
    assert_eq!(listed.len(), expected.len(), "objects in the backup");
    let issues = c
        .validate(&ValidateOptions::default(), &NoProgress)
        .expect("validate");
    assert!(issues.is_valid(), "{issues:?}");
}

fn backup_dirs(dest: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dest)
        .expect("list dest")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("backup_"))
        .collect();
    names.sort();
    names
}

fn inode(p: &Path) -> u64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .ino()
}

/// Relative paths of the loose files of a container.
fn loose_files(container: &Path) -> Vec<PathBuf> {
    let root = container.join("loose");
    let mut out = Vec::new();
    for shard in std::fs::read_dir(&root).expect("loose") {
        let shard = shard.expect("shard").path();
        for f in std::fs::read_dir(&shard).expect("shard") {
            let f = f.expect("file").path();
            out.push(f.strip_prefix(&root).expect("prefix").to_path_buf());
        }
    }
    out.sort();
    out
}

fn backup(c: &Container, dest: &Path, keep: usize) -> BackupReport {
    c.backup(dest, &BackupOptions::default().with_keep(keep), &NoProgress)
        .expect("backup")
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `%Y%m%d%H%M%S` in UTC of a Unix time, by GNU `date` (an independent implementation).
fn utc_by_date(secs: u64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y%m%d%H%M%S"])
        .output()
        .expect("run date");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Backups are named by the UTC second: wait for the next one so that names sort by age.
fn next_second() {
    std::thread::sleep(Duration::from_millis(1100));
}

#[test]
fn successive_backups_link_unchanged_files_rotate_and_stay_readable() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    let mut rng = Rng::new(7);
    let mut all = HashMap::new();
    add_loose(&c, &mut rng, 60, &mut all);
    c.pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    add_loose(&c, &mut rng, 40, &mut all);
    add_packed(&c, &mut rng, 30, &mut all);
    let packs = c.packs().list().expect("packs");
    assert!(packs.len() >= 3, "{packs:?}");
    // Full packs are sealed by the pack writer; seal the first explicitly in case.
    let sealed = packs[0];
    if !c.packs().is_sealed(sealed).expect("sealed") {
        c.seal_pack(sealed).expect("seal");
    }
    let unsealed = *packs
        .iter()
        .find(|id| !c.packs().is_sealed(**id).expect("sealed"))
        .expect("an unsealed pack");
    // A leftover of a killed backup is removed.
    std::fs::create_dir_all(dest.join("live-backup").join("junk")).expect("leftover");

    let start = unix_secs();
    let first = backup(&c, &dest, 1);
    let end = unix_secs();
    assert!(!dest.join("live-backup").exists());
    // backup_<UTC %Y%m%d%H%M%S>_<4 of [a-z0-9]>
    let name = first
        .path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let parts: Vec<&str> = name.split('_').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert_eq!(parts[0], "backup");
    assert!(
        (start..=end).any(|t| utc_by_date(t) == parts[1]),
        "{name} not between {} and {}",
        utc_by_date(start),
        utc_by_date(end)
    );
    assert_eq!(parts[2].len(), 4);
    assert!(
        parts[2]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    );
    // The layout: a container, and nothing else, in backup_*/container.
    let mut entries: Vec<String> = std::fs::read_dir(first.container_path())
        .expect("list backup")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            "config.json",
            "duplicates",
            "loose",
            "packs",
            "packs.idx",
            "sandbox"
        ]
    );
    assert_eq!(
        std::fs::read_dir(first.container_path().join("sandbox"))
            .expect("sandbox")
            .count(),
        0
    );
    assert_eq!(
        std::fs::read(first.container_path().join("config.json")).expect("config"),
        std::fs::read(c.path().join("config.json")).expect("config")
    );
    assert_eq!(first.files_linked, 0);
    assert!(first.files_copied > 100, "{first:?}");
    assert!(first.backups_removed.is_empty());
    assert!(first.warnings.is_empty(), "{first:?}");
    let first_snapshot = all.clone();
    assert_backup_holds(&first.path, &first_snapshot);
    assert_eq!(
        std::fs::read_link(dest.join("last-backup")).expect("link"),
        PathBuf::from(first.path.file_name().expect("name"))
    );

    // The container changes: new loose and packed objects, a new pack.
    next_second();
    add_loose(&c, &mut rng, 20, &mut all);
    add_packed(&c, &mut rng, 20, &mut all);
    let second = backup(&c, &dest, 1);
    assert_ne!(first.path, second.path);
    assert_backup_holds(&second.path, &all);
    assert_backup_holds(&first.path, &first_snapshot);

    // Unchanged loose files and the sealed pack (and its sidecar) are hard links.
    let (a, b) = (first.container_path(), second.container_path());
    let mut shared = 0;
    for rel in loose_files(&a) {
        let in_second = b.join("loose").join(&rel);
        if in_second.exists() {
            assert_eq!(
                inode(&a.join("loose").join(&rel)),
                inode(&in_second),
                "{rel:?}"
            );
            shared += 1;
        }
    }
    assert!(shared >= 40, "{shared}");
    let name = sealed.to_string();
    assert_eq!(
        inode(&a.join("packs").join(&name)),
        inode(&b.join("packs").join(&name))
    );
    assert_eq!(
        inode(&a.join("packs").join(format!("{name}.toc"))),
        inode(&b.join("packs").join(format!("{name}.toc")))
    );
    // Packs that are not sealed are copied, as is the index.
    let unsealed = unsealed.to_string();
    assert_ne!(
        inode(&a.join("packs").join(&unsealed)),
        inode(&b.join("packs").join(&unsealed))
    );
    assert_ne!(inode(&a.join("packs.idx")), inode(&b.join("packs.idx")));
    assert!(second.files_linked > shared as u64, "{second:?}");
    assert_eq!(
        std::fs::read_link(dest.join("last-backup")).expect("link"),
        PathBuf::from(second.path.file_name().expect("name"))
    );
    assert_eq!(backup_dirs(&dest).len(), 2);

    // keep = 1: a third backup removes the first, two remain.
    next_second();
    let third = backup(&c, &dest, 1);
    assert_eq!(third.backups_removed, vec![first.path.clone()]);
    assert!(!first.path.exists());
    let names = backup_dirs(&dest);
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        dest.join(names.last().expect("newest")),
        third.path,
        "the newest sorts last"
    );
    assert_eq!(
        std::fs::read_link(dest.join("last-backup")).expect("link"),
        PathBuf::from(third.path.file_name().expect("name"))
    );
    // Everything was unchanged: only the index, the unsealed packs and config are copied.
    assert!(third.files_linked >= 100, "{third:?}");
    assert_backup_holds(&third.path, &all);
    // Files of the removed backup live on through their links.
    assert_backup_holds(&second.path, &all);

    // keep = 0: only the new one remains.
    next_second();
    let fourth = backup(&c, &dest, 0);
    assert_eq!(fourth.backups_removed.len(), 2);
    assert_eq!(backup_dirs(&dest).len(), 1);
    assert_backup_holds(&fourth.path, &all);
}

/// Stops the operation after `after` units of work.
struct StopAfter {
    after: u64,
    done: AtomicU64,
}

impl Progress for StopAfter {
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::SeqCst);
    }
    fn should_stop(&self) -> bool {
        self.done.load(Ordering::SeqCst) >= self.after
    }
}

#[test]
fn an_interrupted_backup_leaves_only_live_backup_which_the_next_run_replaces() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    let mut rng = Rng::new(11);
    let mut all = HashMap::new();
    add_loose(&c, &mut rng, 30, &mut all);
    let stop = StopAfter {
        after: 10,
        done: AtomicU64::new(0),
    };
    let err = c
        .backup(&dest, &BackupOptions::default(), &stop)
        .expect_err("stopped");
    assert_eq!(err.kind(), ErrorKind::Interrupted);
    assert!(dest.join("live-backup").is_dir());
    assert!(backup_dirs(&dest).is_empty());
    assert!(!dest.join("last-backup").exists());

    let report = backup(&c, &dest, 1);
    assert!(!dest.join("live-backup").exists());
    assert_eq!(backup_dirs(&dest).len(), 1);
    assert_backup_holds(&report.path, &all);
}

/// Repacks the container the first time the backup reports progress on its packs, i.e.
/// after the index was copied: the packs it points to disappear.
struct RepackDuringPacks {
    container: Container,
    phase: Mutex<String>,
    done: AtomicBool,
    pack_phases: AtomicU64,
}

impl Progress for RepackDuringPacks {
    fn start(&self, description: &str, _total: u64, _unit: rsdos::ProgressUnit) {
        if description == "Backup packs" {
            self.pack_phases.fetch_add(1, Ordering::SeqCst);
        }
        *self.phase.lock().expect("lock") = description.to_string();
    }
    fn advance(&self, _n: u64) {
        if self.phase.lock().expect("lock").as_str() == "Backup packs"
            && !self.done.swap(true, Ordering::SeqCst)
        {
            let report = self
                .container
                .repack(&RepackOptions::default().with_all(true), &NoProgress)
                .expect("repack");
            assert!(!report.rewritten.is_empty());
        }
    }
}

#[test]
fn a_repack_while_packs_are_copied_is_detected_and_the_copy_redone() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    let mut rng = Rng::new(5);
    let mut all = HashMap::new();
    add_packed(&c, &mut rng, 40, &mut all);
    add_loose(&c, &mut rng, 10, &mut all);
    let before = c.packs().list().expect("packs");
    let progress = RepackDuringPacks {
        container: c.clone(),
        phase: Mutex::new(String::new()),
        done: AtomicBool::new(false),
        pack_phases: AtomicU64::new(0),
    };
    let report = c
        .backup(&dest, &BackupOptions::default(), &progress)
        .expect("backup");
    assert!(progress.done.load(Ordering::SeqCst));
    // The first copy of the packs was found inconsistent and redone.
    assert_eq!(progress.pack_phases.load(Ordering::SeqCst), 2);
    let after = c.packs().list().expect("packs");
    assert!(before.iter().all(|id| !after.contains(id)), "repacked");
    assert_backup_holds(&report.path, &all);
}

#[test]
fn a_second_backup_into_the_same_folder_fails_while_one_runs() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    std::fs::create_dir_all(&dest).expect("dest");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dest.join(".rsdos-backup.lock"))
        .expect("lock file");
    lock.lock().expect("lock");
    let err = c
        .backup(&dest, &BackupOptions::default(), &NoProgress)
        .expect_err("locked");
    assert_eq!(err.kind(), ErrorKind::Locked);
    drop(lock);
    backup(&c, &dest, 1);
}

// ---- disk-objectstore reads a backup ---------------------------------------------------

/// The Python with disk-objectstore (as in `interop_disk_objectstore.rs`).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("RSDOS_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let python = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("..")
        .join(".venv")
        .join("bin")
        .join("python");
    assert!(
        python.exists(),
        "{} does not exist: run scripts/setup-venv.sh or set RSDOS_TEST_PYTHON",
        python.display()
    );
    python
}

#[test]
fn disk_objectstore_reads_a_backup() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    let mut rng = Rng::new(3);
    let mut all = HashMap::new();
    add_loose(&c, &mut rng, 20, &mut all);
    c.pack_loose(&PackOptions::default(), &NoProgress)
        .expect("pack");
    add_packed(&c, &mut rng, 10, &mut all);
    add_loose(&c, &mut rng, 5, &mut all);
    if !c.packs().is_sealed(0).expect("sealed") {
        c.seal_pack(0).expect("seal");
    }
    let report = backup(&c, &dest, 1);

    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("interop")
        .join("dos_read.py");
    let out = Command::new(python())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg(&script)
        .arg(report.container_path())
        .output()
        .expect("run dos_read.py");
    assert!(
        out.status.success(),
        "dos_read.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["is_valid"], true, "{}", seen["validate"]);
    let objects = seen["objects"].as_object().expect("objects");
    assert_eq!(objects.len(), all.len());
    for (k, v) in &all {
        let o = &objects[k.as_str()];
        assert_eq!(o["hash_ok"], true, "{k}");
        assert_eq!(o["stream_matches"], true, "{k}");
        assert_eq!(o["size_of_content"], v.len(), "{k}");
    }
    assert_eq!(seen["copy"]["is_valid"], true);
    assert_eq!(seen["copy"]["contents_unchanged"], true);
    assert_eq!(seen["copy"]["new_objects_ok"], true);
}

#[test]
fn backups_taken_while_objects_are_written_packed_and_cleaned_are_consistent() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = new_container(dir.path());
    let dest = dir.path().join("backups");
    let mut rng = Rng::new(21);
    let mut all = HashMap::new();
    add_loose(&c, &mut rng, 50, &mut all);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let c = c.clone();
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut rng = Rng::new(22);
            let mut written = HashMap::new();
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                add_loose(&c, &mut rng, 10, &mut written);
                round += 1;
                if round % 3 == 0 {
                    c.pack_loose(&PackOptions::default(), &NoProgress)
                        .expect("pack");
                    c.clean(&rsdos::CleanOptions::default(), &NoProgress)
                        .expect("clean");
                }
            }
            written
        })
    };
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(backup(&c, &dest, 5));
        next_second();
    }
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().expect("writer");
    all.extend(written);
    for report in &reports {
        let b = Container::open(&report.container_path()).expect("open backup");
        let issues = b
            .validate(&ValidateOptions::default(), &NoProgress)
            .expect("validate");
        assert!(issues.is_valid(), "{issues:?}");
        let mut n = 0;
        for key in b.iter_hashkeys().expect("list") {
            let key = key.expect("key");
            assert_eq!(&b.get_object(&key).expect("get"), &all[&key], "{key}");
            n += 1;
        }
        // Everything written before the backup started is in it.
        assert!(n >= 50, "{n}");
    }
}
