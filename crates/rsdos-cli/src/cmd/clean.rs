//! `rsdos clean`: delete the loose copies of packed objects, resolve `duplicates/` as
//! disk-objectstore does, remove sandbox files older than an hour (left by killed writers),
//! and with `--vacuum` compact the index. Duplicates that match nothing are left in place and
//! reported: the exit status is then 1.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{CleanOptions, CleanReport};
use serde_json::{Value, json};

use crate::cmd::{Global, Outcome, print_json, print_lines};
use crate::output::warn;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos clean`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos pack && rsdos clean --vacuum")]
pub struct CleanArgs {
    /// Compact the index afterwards (SQLite VACUUM).
    #[arg(long)]
    vacuum: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The JSON form of a clean report.
pub fn report_json(report: &CleanReport) -> Value {
    json!({
        "loose_deleted": report.loose_deleted,
        "duplicates_removed": report.duplicates_removed,
        "duplicates_restored": report.duplicates_restored,
        "inconsistent_duplicates": report.inconsistent_duplicates,
        "sandbox_removed": report.sandbox_removed,
        "deleted_packs_purged": report.deleted_packs_purged,
        "purge_error": report.purge_error,
    })
}

/// Warns about duplicates that match nothing (true if there were any), and about a purge of
/// deleted remote packs that could not be done.
pub fn warn_inconsistent(report: &CleanReport) -> bool {
    if let Some(e) = &report.purge_error {
        warn(format_args!(
            "warning: the bytes of deleted remote packs were not purged (the next clean tries \
             again): {e}"
        ));
    }
    for key in &report.inconsistent_duplicates {
        warn(format_args!(
            "warning: object {key}: no copy in duplicates/ matches its hashkey and the object \
             is nowhere else; the copies are left in duplicates/ for inspection"
        ));
    }
    !report.inconsistent_duplicates.is_empty()
}

/// The human summary of a clean report.
pub fn summary(report: &CleanReport) -> String {
    let mut s = format!(
        "deleted {} loose copies of packed objects, removed {} duplicates ({} restored), \
         removed {} sandbox leftovers",
        report.loose_deleted,
        report.duplicates_removed,
        report.duplicates_restored,
        report.sandbox_removed
    );
    if report.deleted_packs_purged > 0 {
        s.push_str(&format!(
            ", purged {} deleted remote pack{}",
            report.deleted_packs_purged,
            if report.deleted_packs_purged == 1 {
                ""
            } else {
                "s"
            }
        ));
    }
    s
}

/// Cleans and prints what was done.
pub fn run(global: &Global, args: CleanArgs) -> Result<Outcome> {
    let container = global.open()?;
    install_ctrlc_handler();
    let options = CleanOptions::default().with_vacuum(args.vacuum);
    let report = container
        .clean(&options, &Bars::for_terminal(global.quiet))
        .with_context(|| format!("cannot clean container {}", global.path.display()))?;
    if args.json {
        print_json(&report_json(&report))?;
    } else {
        print_lines([format!(
            "Cleaned {}: {}",
            global.path.display(),
            summary(&report)
        )])?;
    }
    Ok(Outcome::problems_if(warn_inconsistent(&report)))
}
