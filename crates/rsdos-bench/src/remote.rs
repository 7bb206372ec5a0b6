//! `rsdos-bench remote URL [N] [PACK_MIB] [DIR]`: the same workload on a container with local
//! packs and on one whose packs are at `URL` (`s3://bucket?endpoint=...&region=...`, also
//! `azblob://`, `gs://`, `fs://`), side by side:
//!
//! - N objects (default 100,000) of 0-1000 bytes, written loose without fsync (set-up, not
//!   timed);
//! - `pack_loose` (fsync on, no compression; remote: every pack that fills up is sealed and
//!   uploaded on the way) followed by `upload_pending`, timed together; remote: it then checks
//!   that nothing waits for upload. Loose copies are removed afterwards (not timed), so that
//!   the reads below come from the packs;
//! - 10,000 `get_object` calls on random keys, then the same number of other random keys
//!   through one `read_many`.
//!
//! The packs are `PACK_MIB` MiB (default 4): with 4 GiB packs (disk-objectstore's default)
//! nothing would be sealed, so nothing uploaded. The pack being appended to when packing ends
//! stays local (staged), as in any remote container; the random keys are drawn from the objects
//! of uploaded packs only, so that every remote read is a remote request, and the local
//! container reads the same keys. Each run uses a fresh prefix under `URL` and leaves it there.
//! Credentials come from the service's environment variables (`AWS_ACCESS_KEY_ID`, ...).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use rsdos::{CleanOptions, Container, InitOptions, NoProgress, PackOptions};
use rsdos_testkit::data::{Rng, small_objects};

use super::fill_loose_fast;

/// Random reads of each kind.
const READS: usize = 10_000;

/// A container filled and packed.
struct Packed {
    /// Hashkeys in the order of the data.
    keys: Vec<String>,
    /// Hashkey -> index in the data.
    index: HashMap<String, usize>,
    /// Seconds of `pack_loose` + `upload_pending`.
    secs: f64,
}

pub(crate) fn run(mut args: impl Iterator<Item = String>) -> Result<()> {
    let url = args.next().context(
        "usage: rsdos-bench remote URL [N] [PACK_MIB] [DIR] \
         (URL such as s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1)",
    )?;
    let n: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let pack_mib: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let base = match args.next() {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let shown = url.split('?').next().unwrap_or_default().to_string();
    let remote_url = with_fresh_prefix(&url);
    let data = small_objects(n, 1);
    println!(
        "rsdos-bench remote: n = {n} objects of 0-1000 bytes ({} bytes), packs of {pack_mib} MiB, \
         up to {READS} random reads; remote {shown}",
        data.iter().map(Vec::len).sum::<usize>()
    );
    let target = pack_mib << 20;
    let local = Container::init(
        &base.path().join("local"),
        &InitOptions::default().with_pack_size_target(target),
    )?;
    let remote = Container::init(
        &base.path().join("remote"),
        &InitOptions::default()
            .with_pack_size_target(target)
            .with_packs_url(&remote_url),
    )
    .with_context(|| format!("init a container with its packs at {shown}"))?;

    let local_keys = pack_and_upload(&local, &data)?;
    let remote_keys = pack_and_upload(&remote, &data)?;
    ensure!(
        local_keys.keys == remote_keys.keys,
        "the two containers differ"
    );
    // Keys of objects in uploaded packs of the remote container, shuffled; the first READS are
    // read one by one, the next READS in bulk.
    let staged: HashSet<u64> = remote
        .remote_status()?
        .map(|s| s.staged.into_iter().collect())
        .unwrap_or_default();
    let mut candidates: Vec<String> = remote
        .meta_many(&remote_keys.keys)?
        .into_iter()
        .filter(|(_, m)| m.packed.is_some_and(|p| !staged.contains(&p.pack_id)))
        .map(|(k, _)| k)
        .collect();
    candidates.sort();
    candidates.dedup();
    Rng::new(3).shuffle(&mut candidates);
    // Fewer reads only when there are too few objects (a quick trial run).
    let reads_n = READS.min(candidates.len() / 2);
    ensure!(
        reads_n > 0,
        "no object is in an uploaded pack: use more objects or smaller packs"
    );
    let one_by_one = &candidates[..reads_n];
    let bulk = &candidates[reads_n..2 * reads_n];
    let expected_bytes = |keys: &[String]| -> usize {
        keys.iter()
            .map(|k| {
                let i = local_keys.index[k];
                data[i].len()
            })
            .sum()
    };
    let (single_bytes, bulk_bytes) = (expected_bytes(one_by_one), expected_bytes(bulk));

    let l = reads(&local, one_by_one, bulk, single_bytes, bulk_bytes)?;
    let r = reads(&remote, one_by_one, bulk, single_bytes, bulk_bytes)?;
    let uploaded = remote
        .remote()
        .map_or(Ok(0), |m| m.uploaded().map(|u| u.len()))?;
    println!("{:<40} {:>22} {:>22}", "", "local disk", "remote");
    let row = |name: &str, items: usize, a: f64, b: f64| {
        let cell = |s: f64| format!("{s:.3} s ({:.0} us/obj)", s * 1e6 / items as f64);
        println!("{name:<40} {:>22} {:>22}", cell(a), cell(b));
    };
    row(
        &format!("pack_loose + upload_pending, {n} obj"),
        n,
        local_keys.secs,
        remote_keys.secs,
    );
    row(
        &format!("get_object x {reads_n}, random"),
        reads_n,
        l.0,
        r.0,
    );
    row(
        &format!("read_many, {reads_n} random keys"),
        reads_n,
        l.1,
        r.1,
    );
    println!(
        "remote: {uploaded} packs uploaded, {} left local (the one being appended to); \
         reads drawn from the {} objects of uploaded packs",
        staged.len(),
        candidates.len()
    );
    Ok(())
}

/// `url` with a new prefix appended to its path (before the query).
fn with_fresh_prefix(url: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut out = format!(
        "{}/bench-{}-{nanos}",
        base.trim_end_matches('/'),
        std::process::id()
    );
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Writes `data` loose (not timed), then times `pack_loose` + `upload_pending`; removes the
/// loose copies (not timed).
fn pack_and_upload(c: &Container, data: &[Vec<u8>]) -> Result<Packed> {
    let keys = fill_loose_fast(c, data)?;
    let start = Instant::now();
    c.pack_loose(&PackOptions::default(), &NoProgress)?;
    let upload = c.upload_pending()?;
    let secs = start.elapsed().as_secs_f64();
    if !upload.failed.is_empty() {
        bail!("uploads failed: {:?}", upload.failed);
    }
    if let Some(status) = c.remote_status()? {
        ensure!(
            status.pending_upload.is_empty() && status.last_error.is_none(),
            "not everything was uploaded: {status:?}"
        );
    }
    c.clean(&CleanOptions::default(), &NoProgress)?;
    ensure!(c.count()?.loose == 0, "loose copies remain after clean");
    let index = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), i))
        .collect();
    Ok(Packed { keys, index, secs })
}

/// Times `get_object` on each of `one_by_one`, then one `read_many` of `bulk`; checks the
/// byte counts read.
fn reads(
    c: &Container,
    one_by_one: &[String],
    bulk: &[String],
    single_bytes: usize,
    bulk_bytes: usize,
) -> Result<(f64, f64)> {
    let start = Instant::now();
    let mut total = 0;
    for k in one_by_one {
        total += c.get_object(k)?.len();
    }
    let single = start.elapsed().as_secs_f64();
    ensure!(total == single_bytes, "get_object read {total} bytes");
    let start = Instant::now();
    let mut total = 0;
    let mut buf = Vec::new();
    for item in c.read_many(bulk, false)? {
        let mut item = item?;
        let reader = item.reader.as_mut().context("a missing object")?;
        buf.clear();
        total += reader.read_to_end(&mut buf)?;
    }
    let many = start.elapsed().as_secs_f64();
    ensure!(total == bulk_bytes, "read_many read {total} bytes");
    Ok((single, many))
}
