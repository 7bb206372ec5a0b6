//! `rsdos backup DEST`: an incremental backup of the container into a local folder, in the
//! layout of `dostore backup` (`DEST/backup_<time>_<random>/container`, `DEST/last-backup`),
//! while the container may be in use. Unchanged loose objects and sealed packs are
//! hard-linked to the previous backup; `--keep N` keeps N previous backups besides the new
//! one.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use rsdos::BackupOptions;
use serde_json::json;

use crate::cmd::{Global, print_json, print_lines};
use crate::output::warn;
use crate::output::{human_size, note};
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos backup`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos backup /mnt/backups/store --keep 3")]
pub struct BackupArgs {
    /// The local folder holding the backups (created if missing).
    #[arg(value_name = "DEST")]
    dest: PathBuf,

    /// Previous backups to keep besides the new one (as dostore: 1 keeps two in all).
    #[arg(long, default_value_t = 1, value_name = "N")]
    keep: usize,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,

    /// Accepted for `dostore backup` compatibility and ignored: rsdos copies by itself.
    #[arg(long, value_name = "EXE", hide_short_help = true)]
    rsync_exe: Option<String>,

    /// Accepted for `dostore backup` compatibility: `silent` is --quiet.
    #[arg(long, value_enum, hide_short_help = true)]
    verbosity: Option<Verbosity>,
}

/// dostore's `--verbosity` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Verbosity {
    Silent,
    Info,
    Debug,
}

/// True for dostore's remote destinations, `host:path` (a colon before any slash), unless a
/// local file of that name exists.
fn looks_remote(dest: &Path) -> bool {
    let Some(Component::Normal(first)) = dest.components().next() else {
        return false;
    };
    first.to_str().is_some_and(|s| s.contains(':')) && !dest.exists()
}

/// Backs up and prints where the backup went.
pub fn run(global: &Global, args: BackupArgs) -> Result<()> {
    let quiet = global.quiet || matches!(args.verbosity, Some(Verbosity::Silent));
    if looks_remote(&args.dest) {
        bail!(
            "cannot back up to {}: remote destinations (host:path) are not supported; back up \
             to a local or mounted folder, then copy it (for example with rsync)",
            args.dest.display()
        );
    }
    if args.rsync_exe.is_some() {
        note(
            quiet,
            format_args!("note: --rsync-exe is ignored: rsdos copies the files itself"),
        );
    }
    let container = global.open()?;
    install_ctrlc_handler();
    let options = BackupOptions::default().with_keep(args.keep);
    let report = container
        .backup(&args.dest, &options, &Bars::for_terminal(quiet))
        .with_context(|| {
            format!(
                "cannot back up container {} to {}",
                global.path.display(),
                args.dest.display()
            )
        })?;
    for warning in &report.warnings {
        warn(format_args!("warning: {warning}"));
    }
    if args.json {
        return print_json(&json!({
            "path": report.path,
            "container_path": report.container_path(),
            "files_copied": report.files_copied,
            "files_linked": report.files_linked,
            "bytes_copied": report.bytes_copied,
            "backups_removed": report.backups_removed,
            "warnings": report.warnings,
        }));
    }
    let mut lines = vec![format!(
        "Backed up {} to {}: {} files copied ({}), {} hard-linked to the previous backup",
        global.path.display(),
        report.container_path().display(),
        report.files_copied,
        human_size(report.bytes_copied),
        report.files_linked
    )];
    for old in &report.backups_removed {
        lines.push(format!("Removed old backup {}", old.display()));
    }
    print_lines(lines)
}
