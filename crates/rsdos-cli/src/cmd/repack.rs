//! `rsdos repack`: rewrite packs without the bytes of deleted objects, optionally changing
//! how objects are compressed. Live-safe: each pack is copied to a new one, the index rows
//! switch in one transaction, and the old pack is deleted last.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::RepackOptions;
use serde_json::json;

use crate::cmd::{Global, RecompressArg, print_json, print_lines};
use crate::output::human_size;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos repack`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos repack --compress auto --all")]
pub struct RepackArgs {
    /// How to store each object in the new packs: `keep` copies it as it is stored; the
    /// others compress or decompress it (and imply --all).
    #[arg(long, value_enum, default_value = "keep")]
    compress: RecompressArg,

    /// Rewrite every pack, not only those with holes.
    #[arg(long)]
    all: bool,

    /// Do not compact the index (SQLite VACUUM) afterwards.
    #[arg(long)]
    no_vacuum: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Repacks and prints what changed.
pub fn run(global: &Global, args: RepackArgs) -> Result<()> {
    let container = global.open()?;
    install_ctrlc_handler();
    let options = RepackOptions::default()
        .with_compress(args.compress.into())
        .with_all(args.all)
        .with_vacuum(!args.no_vacuum);
    let report = container
        .repack(&options, &Bars::for_terminal(global.quiet))
        .with_context(|| format!("cannot repack container {}", global.path.display()))?;
    if args.json {
        let rewritten: Vec<_> = report
            .rewritten
            .iter()
            .map(|(old, new)| json!({"old": old, "new": new}))
            .collect();
        return print_json(&json!({
            "rewritten": rewritten,
            "removed_empty": report.removed_empty,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
        }));
    }
    let n = report.rewritten.len();
    print_lines([format!(
        "Rewrote {n} pack{} and removed {} unreferenced in {}: pack files {} -> {}",
        if n == 1 { "" } else { "s" },
        report.removed_empty.len(),
        global.path.display(),
        human_size(report.bytes_before),
        human_size(report.bytes_after)
    )])?;
    Ok(())
}
