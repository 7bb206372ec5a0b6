//! `rsdos validate`: re-hash every loose and packed object and report every problem.
//!
//! Read-only and safe while the container is in use. The human report counts the problems
//! of each kind; `--verbose` lists them one per line; `--json` prints every list. The exit
//! status is 1 when anything is wrong, as `dostore validate`.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{ValidateOptions, ValidationReport};
use serde_json::json;

use crate::cmd::{Global, Outcome, absolute, print_json, print_lines};
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos validate`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos validate --verbose || echo \"damaged: see above\"")]
pub struct ValidateArgs {
    /// List every problem, one per line.
    #[arg(short, long)]
    verbose: bool,

    /// Print the report as JSON: "valid", "issue_count", and one list per kind of problem.
    #[arg(long)]
    json: bool,
}

/// Validates and prints the report.
pub fn run(global: &Global, args: ValidateArgs) -> Result<Outcome> {
    let container = global.open()?;
    let context = || format!("cannot validate container {}", global.path.display());
    let count = container.count().with_context(context)?;
    install_ctrlc_handler();
    let report = container
        .validate(
            &ValidateOptions::default(),
            &Bars::for_terminal(global.quiet),
        )
        .with_context(context)?;
    let path = global.path.display();
    if args.json {
        let pairs = |v: &[(String, String)], name: &str| -> Vec<serde_json::Value> {
            v.iter()
                .map(|(what, error)| json!({name: what, "error": error}))
                .collect()
        };
        print_json(&json!({
            "path": absolute(&global.path),
            "valid": report.is_valid(),
            "issue_count": report.issue_count(),
            "checked": {"loose": count.loose, "packed": count.packed},
            "config_problems": report.config_problems,
            "invalid_hashes_loose": report.invalid_hashes_loose,
            "unreadable_loose": pairs(&report.unreadable_loose, "object"),
            "invalid_loose_names": report.invalid_loose_names,
            "missing_packs": report.missing_packs,
            "rows_pointing_nowhere": report.rows_pointing_nowhere,
            "unreadable_packed": pairs(&report.unreadable_packed, "hashkey"),
            "invalid_hashes_packed": report.invalid_hashes_packed,
            "invalid_sizes_packed": report.invalid_sizes_packed,
            "overlapping_packed": report.overlapping_packed,
        }))?;
    } else if report.is_valid() {
        print_lines([format!(
            "No problems found in {path}: {} loose and {} packed objects checked.",
            count.loose, count.packed
        )])?;
    } else {
        let n = report.issue_count();
        let mut lines = vec![format!(
            "Found {n} problem{} in {path}:",
            if n == 1 { "" } else { "s" }
        )];
        if args.verbose {
            lines.extend(report.to_string().lines().map(|l| format!("  {l}")));
        } else {
            lines.extend(
                kinds(&report)
                    .into_iter()
                    .filter(|(n, _)| *n > 0)
                    .map(|(n, what)| format!("  {n:>6}  {what}")),
            );
            lines.push("Run `rsdos validate --verbose` to list them.".into());
        }
        lines.push(
            "Damaged objects can be restored from a backup (`rsdos import` from it) or \
             deleted with `rsdos rm`; a lost index is recreated by `rsdos rebuild-index`."
                .into(),
        );
        print_lines(lines)?;
    }
    Ok(Outcome::problems_if(!report.is_valid()))
}

/// The number of problems of each kind, with what they are.
fn kinds(r: &ValidationReport) -> [(usize, &'static str); 10] {
    [
        (r.config_problems.len(), "problems of the container itself"),
        (
            r.invalid_hashes_loose.len(),
            "loose objects whose content does not hash to their name",
        ),
        (
            r.unreadable_loose.len(),
            "loose entries that cannot be read",
        ),
        (
            r.invalid_loose_names.len(),
            "entries of loose/ that are not objects",
        ),
        (
            r.missing_packs.len(),
            "packs the index points to but that are missing",
        ),
        (
            r.rows_pointing_nowhere.len(),
            "packed objects whose pack is missing",
        ),
        (
            r.unreadable_packed.len(),
            "packed objects that cannot be read",
        ),
        (
            r.invalid_hashes_packed.len(),
            "packed objects whose content does not hash to their name",
        ),
        (
            r.invalid_sizes_packed.len(),
            "packed objects whose size differs from their index row",
        ),
        (
            r.overlapping_packed.len(),
            "packed objects overlapping an earlier object of their pack",
        ),
    ]
}
