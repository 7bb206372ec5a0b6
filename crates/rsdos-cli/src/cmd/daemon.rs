//! `rsdos daemon`: pack loose objects automatically, in the foreground, until stopped.
//!
//! One automatic packer ([`rsdos::AutoPacker`]) runs per container. Each packs the loose
//! objects that are not packed yet whenever their number, their total size or the age of the
//! oldest passes a threshold, in small batches, oldest first, each its own transaction; it
//! takes the maintenance lock per batch and lets it go between batches, so that an explicit
//! `rsdos pack`, `repack`, `clean` or `backup` started meanwhile gets it within about a second.
//! It deletes loose copies once their batch is committed and sweeps old sandbox leftovers.
//! When idle, a poll costs a `stat` per loose shard folder.
//!
//! It logs to stderr, one line per round that did something (with `--quiet`, only errors),
//! and stops on SIGTERM, SIGINT or SIGHUP after the batch in progress commits (a second signal
//! quits at once, which the container survives as it survives a kill: the next packer just
//! sees the loose objects again). `rsdos status` shows whether a packer runs on a container
//! and its last activity.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytesize::ByteSize;
use clap::Args;
use rsdos::{AutoPackOptions, AutoPackRunner, AutoPacker, NoProgress, Progress, RoundReport};

use crate::cmd::{CompressArg, Global, open_container};
use crate::output::human_size;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos daemon`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos daemon /data/store1 /data/store2 --max-age 30s\n\n\
                        Stops on SIGTERM or Ctrl-C once the batch in progress is committed."
)]
pub struct DaemonArgs {
    /// Containers to watch [default: the container of --path].
    #[arg(value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Pack when at least this many loose objects wait.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    max_loose: u64,

    /// Pack when the waiting loose objects hold at least this much (`64MiB`, `1GB`, bytes).
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE")]
    max_loose_bytes: u64,

    /// Pack when the oldest waiting loose object is at least this old (`60s`, `5m`, `500ms`;
    /// a plain number is seconds).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    max_age: Duration,

    /// Objects per batch at most (each batch is one transaction under the lock).
    #[arg(long, default_value_t = 2000, value_name = "N")]
    batch_objects: usize,

    /// Bytes per batch at most.
    #[arg(long, default_value = "64MiB", value_parser = parse_size, value_name = "SIZE")]
    batch_bytes: u64,

    /// Time between two checks for new loose objects.
    #[arg(long, default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    poll_interval: Duration,

    /// Whether to compress the packed copies with the container's algorithm; `auto` decides
    /// per object from a sample.
    #[arg(long, value_enum, default_value = "no")]
    compress: CompressArg,

    /// Sandbox files older than this are leftovers of killed writers and are removed.
    #[arg(long, default_value = "1h", value_parser = parse_duration, value_name = "DURATION")]
    sandbox_grace: Duration,

    /// Run one round on each container (packing only if a threshold is passed) and exit,
    /// e.g. from cron.
    #[arg(long)]
    once: bool,
}

/// Parses a byte count or a size with a unit; 0 is refused.
fn parse_size(s: &str) -> Result<u64, String> {
    let size: ByteSize = s.trim().parse()?;
    if size.0 == 0 {
        return Err("the size must be more than 0 bytes".into());
    }
    Ok(size.0)
}

/// Parses `500ms`, `30s`, `5m`, `2h`, or a plain number of seconds (`1.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 30s, 5m, 2h)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "s" | "sec" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown unit {other:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

/// Current UTC time as `2024-05-01T12:34:56Z`, for log lines.
fn timestamp() -> String {
    let t = rsdos::UtcTime::now();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// Writes one log line to stderr.
fn log(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{} rsdos daemon: {line}",
        timestamp()
    );
}

/// The log line of a round that did something, if it did.
fn describe(round: &RoundReport) -> Option<String> {
    if round.is_idle() {
        return None;
    }
    let mut parts = Vec::new();
    if round.batches > 0 || round.loose_deleted > 0 {
        parts.push(format!(
            "packed {} object{} ({}) in {} batch{}{}, deleted {} loose cop{}",
            round.packed,
            if round.packed == 1 { "" } else { "s" },
            human_size(round.bytes_packed),
            round.batches,
            if round.batches == 1 { "" } else { "es" },
            round
                .trigger
                .map(|t| format!(" (threshold: {t})"))
                .unwrap_or_default(),
            round.loose_deleted,
            if round.loose_deleted == 1 { "y" } else { "ies" },
        ));
    }
    if round.sandbox_removed > 0 {
        parts.push(format!(
            "removed {} sandbox leftover{}",
            round.sandbox_removed,
            if round.sandbox_removed == 1 { "" } else { "s" }
        ));
    }
    for key in &round.corrupt_loose {
        parts.push(format!(
            "warning: loose object {key} does not match its name: left in place, not packed \
             (`rsdos validate --verbose` lists every problem)"
        ));
    }
    if round.lock_busy {
        parts.push("the maintenance lock is held by another process: retrying".into());
    }
    if round.stopped {
        parts.push("stopping".into());
    }
    if round.remaining > 0 {
        parts.push(format!("{} left for the next round", round.remaining));
    }
    Some(parts.join("; "))
}

/// What a packer thread's observer remembers between rounds, so that a repeated error or a
/// long wait for the lock is logged once.
#[derive(Default)]
struct LogState {
    last_error: Option<String>,
    busy: bool,
}

impl LogState {
    fn round(&mut self, name: &str, quiet: bool, outcome: &rsdos::Result<RoundReport>) {
        match outcome {
            Ok(round) => {
                if self.last_error.take().is_some() {
                    log(format_args!("{name}: working again"));
                }
                // A busy lock is logged when the wait starts, not at every poll.
                let busy_again = round.lock_busy && self.busy;
                self.busy = round.lock_busy;
                if quiet || busy_again && round.batches == 0 {
                    return;
                }
                if let Some(line) = describe(round) {
                    log(format_args!("{name}: {line}"));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                if self.last_error.as_deref() != Some(&message) {
                    log(format_args!(
                        "{name}: error: {message} (retrying at each poll)"
                    ));
                    self.last_error = Some(message);
                }
            }
        }
    }
}

/// Runs the packers until a signal stops them.
pub fn run(global: &Global, args: DaemonArgs) -> Result<()> {
    let paths = if args.paths.is_empty() {
        vec![global.path.clone()]
    } else {
        args.paths.clone()
    };
    let options = AutoPackOptions::default()
        .with_max_loose_objects(args.max_loose)
        .with_max_loose_bytes(args.max_loose_bytes)
        .with_max_age(args.max_age)
        .with_batch_objects(args.batch_objects.max(1))
        .with_batch_bytes(args.batch_bytes)
        .with_poll_interval(args.poll_interval.max(Duration::from_millis(10)))
        .with_compress(args.compress.into())
        .with_sandbox_grace(args.sandbox_grace);
    let mut containers = Vec::new();
    for path in &paths {
        containers.push((
            path.display().to_string(),
            open_container(path, &global.remote_options)?,
        ));
    }
    if args.once {
        return run_once(&containers, options, global.quiet);
    }

    install_ctrlc_handler();
    let stop = Bars::new(false);
    let mut packers: Vec<(String, AutoPacker)> = Vec::new();
    for (name, container) in &containers {
        let (observer_name, quiet) = (name.clone(), global.quiet);
        let mut state = LogState::default();
        let packer = container
            .start_auto_pack_with(
                options,
                Box::new(move |outcome| state.round(&observer_name, quiet, outcome)),
            )
            .with_context(|| format!("cannot start packing container {name}"))?;
        if !global.quiet {
            log(format_args!(
                "{name}: watching (pack at {} loose objects, {} or {:?} of age; batches of \
                 {} objects or {}; polling every {:?})",
                options.max_loose_objects,
                human_size(options.max_loose_bytes),
                options.max_age,
                options.batch_objects,
                human_size(options.batch_bytes),
                options.poll_interval,
            ));
        }
        packers.push((name.clone(), packer));
    }

    let mut failed = None;
    while !stop.should_stop() {
        std::thread::sleep(Duration::from_millis(100));
        if let Some((name, _)) = packers.iter().find(|(_, p)| !p.is_running()) {
            failed = Some(name.clone());
            break;
        }
    }
    // Ask every packer first, so that they all finish their batch at the same time.
    for (_, packer) in &packers {
        packer.request_stop();
    }
    let mut errors = Vec::new();
    for (name, packer) in packers {
        match packer.stop() {
            Ok(stats) => {
                if !global.quiet {
                    log(format_args!(
                        "{name}: stopped after packing {} object{} ({}) in {} batch{}",
                        stats.objects_packed,
                        if stats.objects_packed == 1 { "" } else { "s" },
                        human_size(stats.bytes_packed),
                        stats.batches,
                        if stats.batches == 1 { "" } else { "es" },
                    ));
                }
            }
            Err(e) => errors.push(format!("{name}: {e:#}")),
        }
    }
    if let Some(name) = failed {
        errors.push(format!("{name}: the packer thread ended unexpectedly"));
    }
    if !errors.is_empty() {
        bail!("the daemon stopped with errors: {}", errors.join("; "));
    }
    Ok(())
}

/// `--once`: one round per container.
fn run_once(
    containers: &[(String, rsdos::Container)],
    options: AutoPackOptions,
    quiet: bool,
) -> Result<()> {
    for (name, container) in containers {
        let mut runner = AutoPackRunner::new(container, options)
            .with_context(|| format!("cannot start packing container {name}"))?;
        let round = runner
            .run_once(&NoProgress)
            .with_context(|| format!("cannot pack container {name}"))?;
        if !quiet {
            match describe(&round) {
                Some(line) => log(format_args!("{name}: {line}")),
                None => log(format_args!(
                    "{name}: nothing to do ({} loose object{} waiting)",
                    round.loose_objects,
                    if round.loose_objects == 1 { "" } else { "s" }
                )),
            }
        }
        runner
            .finish()
            .with_context(|| format!("cannot write the packer status of container {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_and_without_units() {
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
