//! `rsdos migrate`: recompress a zlib container with zstd (smaller and faster to read).
//!
//! disk-objectstore cannot read zstd: after migrating, only rsdos can open the container.
//! The command says so and, on a terminal, asks first (`-y` to skip the question). The
//! migration is live-safe and resumable: interrupted, the container stays readable and
//! running the command again finishes it.

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use crate::cmd::{Global, confirm, print_json, print_lines};
use crate::output::human_size;
use crate::output::warn;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos migrate`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos migrate --level 6 --yes")]
pub struct MigrateArgs {
    /// zstd compression level, 1 (fastest) to 22 (smallest).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    level: i32,

    /// Do not ask for confirmation.
    #[arg(short = 'y', long, visible_alias = "non-interactive")]
    yes: bool,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Migrates after the warning (and, on a terminal, the question).
pub fn run(global: &Global, args: MigrateArgs) -> Result<()> {
    let container = global.open()?;
    warn(format_args!(
        "warning: after migrating, disk-objectstore (and AiiDA through it) can no longer read \
         container {}: it does not know zstd",
        global.path.display()
    ));
    if !args.yes
        && !confirm(&format!(
            "Migrate {} to zstd+{}?",
            global.path.display(),
            args.level
        ))?
    {
        return print_lines(["Nothing changed."]);
    }
    install_ctrlc_handler();
    let report = container
        .migrate_to_zstd(args.level, &Bars::for_terminal(global.quiet))
        .with_context(|| format!("cannot migrate container {}", global.path.display()))?;
    if args.json {
        return print_json(&json!({
            "compression": format!("zstd+{}", args.level),
            "packs_rewritten": report.packs_rewritten,
            "objects_recompressed": report.objects_recompressed,
            "unreferenced_packs_removed": report.unreferenced_packs_removed,
            "bytes_before": report.bytes_before,
            "bytes_after": report.bytes_after,
        }));
    }
    print_lines([format!(
        "Migrated {} to zstd+{}: {} objects recompressed in {} packs; pack files {} -> {}",
        global.path.display(),
        args.level,
        report.objects_recompressed,
        report.packs_rewritten,
        human_size(report.bytes_before),
        human_size(report.bytes_after)
    )])
}
