//! `rsdos optimize`: disk-objectstore's `dostore optimize`, pack + clean + vacuum in one go.
//!
//! As dostore: compressing by default (`--no-compress` to store as is), vacuuming by default
//! (`--no-vacuum`), and asking first unless `-n/--non-interactive`; rsdos asks only on a
//! terminal, as a script that runs the command has already chosen to. The container's size
//! (all its files) is printed before and after.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{CleanOptions, CompressMode, PackOptions};
use serde_json::json;

use crate::cmd::{Global, Outcome, clean, confirm, pack, print_json, print_lines};
use crate::output::human_size;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos optimize`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos optimize -n --no-vacuum")]
pub struct OptimizeArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'n', long)]
    non_interactive: bool,

    /// Compress the packed objects (the default).
    #[arg(long, overrides_with = "no_compress")]
    compress: bool,

    /// Store the packed objects uncompressed.
    #[arg(long, overrides_with = "compress")]
    no_compress: bool,

    /// Compact the index at the end (the default).
    #[arg(long, overrides_with = "no_vacuum")]
    vacuum: bool,

    /// Do not compact the index.
    #[arg(long, overrides_with = "vacuum")]
    no_vacuum: bool,

    /// Print the sizes and both reports as JSON.
    #[arg(long)]
    json: bool,
}

/// Bytes of all files under `dir` (what the container takes on disk, as dostore counts it).
fn folder_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                // A file packed and cleaned while we count is simply not counted.
                total += entry.metadata().map_or(0, |m| m.len());
            }
        }
    }
    Ok(total)
}

/// Packs, cleans and vacuums.
pub fn run(global: &Global, args: OptimizeArgs) -> Result<Outcome> {
    let container = global.open()?;
    let compress = !args.no_compress;
    let vacuum = !args.no_vacuum;
    if !args.non_interactive
        && !confirm(&format!(
            "Optimize container {}: pack all loose objects{}, clean{}? This can take a while.",
            global.path.display(),
            if compress { " compressed" } else { "" },
            if vacuum { " and vacuum the index" } else { "" }
        ))?
    {
        print_lines(["Nothing changed."])?;
        return Ok(Outcome::Done);
    }
    let before = folder_size(&global.path)?;
    if !args.json {
        print_lines([format!("Initial container size: {}", human_size(before))])?;
    }
    install_ctrlc_handler();
    let bars = Bars::for_terminal(global.quiet);
    let options = PackOptions::default().with_compress(if compress {
        CompressMode::Yes
    } else {
        CompressMode::No
    });
    let packed = container
        .pack_loose(&options, &bars)
        .with_context(|| format!("cannot pack container {}", global.path.display()))?;
    let cleaned = container
        .clean(&CleanOptions::default().with_vacuum(vacuum), &bars)
        .with_context(|| format!("cannot clean container {}", global.path.display()))?;
    // Closing the index first folds its write-ahead log (grown by the vacuum) back into it,
    // so that the size is what the container keeps taking.
    drop(container);
    let after = folder_size(&global.path)?;
    if args.json {
        print_json(&json!({
            "size_before": before,
            "size_after": after,
            "pack": pack::report_json(&packed),
            "clean": clean::report_json(&cleaned),
        }))?;
    } else {
        print_lines([
            format!(
                "Packed {} objects ({}); {}",
                packed.packed,
                human_size(packed.bytes),
                clean::summary(&cleaned)
            ),
            format!("Final container size: {}", human_size(after)),
        ])?;
    }
    let corrupt = pack::warn_corrupt(&packed);
    let inconsistent = clean::warn_inconsistent(&cleaned);
    Ok(Outcome::problems_if(corrupt || inconsistent))
}
