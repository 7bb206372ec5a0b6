//! `rsdos pack`: move loose objects into packs.
//!
//! Loose objects not packed yet are re-hashed, optionally compressed, and appended to packs;
//! each pack is fsynced before its index rows are committed. The loose copies stay until
//! `rsdos clean` (so readers in other processes are never surprised), or go right after each
//! pack's commit with `--clean-per-pack`. A loose file whose content does not match its name
//! is left in place and reported: the exit status is then 1.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{PackOptions, PackReport};
use serde_json::{Value, json};

use crate::cmd::{CompressArg, Global, Outcome, print_json, print_lines};
use crate::output::human_size;
use crate::output::warn;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos pack`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos pack --compress auto --clean-per-pack")]
pub struct PackArgs {
    /// Whether to compress the packed copies with the container's algorithm; `auto` decides
    /// per object from a sample.
    #[arg(long, value_enum, default_value = "no")]
    compress: CompressArg,

    /// Delete the loose copies of each pack as soon as it is committed, so that packing
    /// never needs twice the disk space (by default `rsdos clean` deletes them later).
    #[arg(long)]
    clean_per_pack: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// The JSON form of a pack report.
pub fn report_json(report: &PackReport) -> Value {
    json!({
        "packed": report.packed,
        "bytes": report.bytes,
        "loose_deleted": report.loose_deleted,
        "corrupt_loose": report.corrupt_loose,
    })
}

/// Warns about loose files that do not match their name; true if there were any.
pub fn warn_corrupt(report: &PackReport) -> bool {
    for key in &report.corrupt_loose {
        warn(format_args!(
            "warning: loose object {key} does not match its name: left in place, not packed"
        ));
    }
    if !report.corrupt_loose.is_empty() {
        warn(format_args!(
            "hint: `rsdos validate --verbose` lists every problem; restore those objects from a backup or delete them with `rsdos rm`"
        ));
    }
    !report.corrupt_loose.is_empty()
}

/// Packs the loose objects.
pub fn run(global: &Global, args: PackArgs) -> Result<Outcome> {
    let container = global.open()?;
    install_ctrlc_handler();
    let options = PackOptions::default()
        .with_compress(args.compress.into())
        .with_clean_loose_per_pack(args.clean_per_pack);
    let report = container
        .pack_loose(&options, &Bars::for_terminal(global.quiet))
        .with_context(|| format!("cannot pack container {}", global.path.display()))?;
    if args.json {
        print_json(&report_json(&report))?;
    } else {
        let n = report.packed;
        let mut line = format!(
            "Packed {n} object{} ({}) in {}",
            if n == 1 { "" } else { "s" },
            human_size(report.bytes),
            global.path.display()
        );
        if args.clean_per_pack {
            line.push_str(&format!("; deleted {} loose copies", report.loose_deleted));
        } else if n > 0 {
            line.push_str("; `rsdos clean` deletes their loose copies");
        }
        print_lines([line])?;
    }
    Ok(Outcome::problems_if(warn_corrupt(&report)))
}
