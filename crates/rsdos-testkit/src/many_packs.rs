//! Helpers for the "open files never grow with the number of packs" tests: a container with
//! thousands of small packs written quickly, a re-run of the current test in a child process
//! under a lower `RLIMIT_NOFILE`, and a count of the open file descriptors.

use std::path::Path;
use std::process::Command;

use rsdos_core::{HashType, PackedEntry, PackedLocation};

use crate::data::{Rng, random_bytes};

/// Writes `packs` pack files named `0..packs` into `dir`, each holding `per_pack` random objects
/// of 1 to 200 bytes stored raw, and returns the index rows (to insert with
/// `ObjectIndex::insert`) and each object's content, in pack order.
///
/// Writes the files directly, without fsync or sidecars: what is under test is reading them,
/// and creating 10,000 packs through the pack writer (an fsync, a sidecar and a commit per
/// pack) would take minutes.
pub fn write_pack_files(
    dir: &Path,
    packs: u64,
    per_pack: usize,
    seed: u64,
) -> std::io::Result<(Vec<PackedEntry>, Vec<Vec<u8>>)> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng::new(seed);
    let mut rows = Vec::new();
    let mut contents = Vec::new();
    for pack_id in 0..packs {
        let mut pack = Vec::new();
        for i in 0..per_pack {
            let len = 1 + rng.below(200) as usize;
            let mut data = random_bytes(&mut rng, len);
            // Distinct contents even if the generator repeated itself.
            data.extend_from_slice(format!("{pack_id}/{i}").as_bytes());
            rows.push(PackedEntry {
                hashkey: HashType::Sha256.hash_hex(&data),
                location: PackedLocation {
                    pack_id,
                    offset: pack.len() as u64,
                    length: data.len() as u64,
                    size: data.len() as u64,
                    compressed: false,
                },
            });
            pack.extend_from_slice(&data);
            contents.push(data);
        }
        std::fs::write(dir.join(pack_id.to_string()), &pack)?;
    }
    Ok((rows, contents))
}

/// Number of open file descriptors of this process (entries of `/proc/self/fd`, less the one
/// the listing itself holds).
pub fn open_fds() -> usize {
    match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries.count().saturating_sub(1),
        Err(e) => panic!("cannot list /proc/self/fd: {e}"),
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits`.
pub fn nofile_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Runs test `test_name` of the current test binary again in a child process whose open-file
/// limit is `limit` (set by the shell's `ulimit -n` before it execs the binary), with the
/// environment variable `var` set to `value`; panics with the child's output unless it passes.
/// The test tells the two runs apart by `var`. Returns the child's standard output.
pub fn rerun_under_nofile_limit(test_name: &str, limit: u64, var: &str, value: &str) -> String {
    let exe = std::env::current_exe().expect("current test binary");
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(&exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .output()
        .expect("run the test binary under a lower open-file limit");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child run under `ulimit -n {limit}` failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A filter that matched nothing would also succeed: make sure the test really ran.
    assert!(
        stdout.contains("1 passed"),
        "the child run did not run {test_name}:\n{stdout}\n{stderr}"
    );
    stdout.into_owned()
}
