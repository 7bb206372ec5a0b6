//! `rsdos rebuild-index`: recreate `packs.idx` from the sidecars of the packs.
//!
//! Works on a container whose index is lost or damaged (it does not open the index). Packs
//! sealed by rsdos describe their objects in a sidecar; the last pack being filled, and packs
//! written by disk-objectstore, have none: their rows are carried over from the old index if
//! it can still be read, else their objects are no longer indexed. The exit status is 1 when
//! something could not be recovered: entries whose bytes no longer match their checksum,
//! unusable sidecars, or packs without a sidecar when the old index could not be read.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::Container;
use serde_json::json;

use crate::cmd::{Global, Outcome, print_json, print_lines};
use crate::output::{note, warn};
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos rebuild-index`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos rebuild-index && rsdos validate")]
pub struct RebuildIndexArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Rebuilds the index and reports what it holds.
pub fn run(global: &Global, args: RebuildIndexArgs) -> Result<Outcome> {
    // Whether the rows of packs without a sidecar can be carried over from the current index
    // (the rebuild reads it when it can). Only an existing packs.idx is opened: opening a
    // container creates a missing one.
    let old_readable = global.path.join("packs.idx").is_file()
        && global.open().is_ok_and(|c| c.index().totals().is_ok());
    install_ctrlc_handler();
    let report = Container::rebuild_index_at_with(
        &global.path,
        &global.open_options(),
        &Bars::for_terminal(global.quiet),
    )
    .with_context(|| {
        format!(
            "cannot rebuild the index of container {}",
            global.path.display()
        )
    })?;
    for id in &report.undescribed_packs {
        if old_readable {
            note(
                global.quiet,
                format_args!(
                    "note: pack {id} has no sidecar (not sealed yet, or written by \
                     disk-objectstore): its rows were carried over from the old packs.idx"
                ),
            );
        } else {
            warn(format_args!(
                "warning: pack {id} has no usable sidecar (not sealed yet, or written by \
                 disk-objectstore) and the old packs.idx could not be read: its objects are \
                 no longer indexed; do not repack or delete this pack, and restore packs.idx \
                 from a backup if you have one"
            ));
        }
    }
    for (id, problem) in &report.sidecar_problems {
        warn(format_args!("warning: sidecar of pack {id}: {problem}"));
    }
    for (id, offset) in &report.corrupt_entries {
        warn(format_args!(
            "warning: pack {id}, offset {offset}: the stored bytes no longer match their \
             checksum; that object is not indexed"
        ));
    }
    let lost = !report.corrupt_entries.is_empty()
        || !report.sidecar_problems.is_empty()
        || (!report.undescribed_packs.is_empty() && !old_readable);
    if args.json {
        let corrupt: Vec<_> = report
            .corrupt_entries
            .iter()
            .map(|(pack, offset)| json!({"pack_id": pack, "offset": offset}))
            .collect();
        let problems: Vec<_> = report
            .sidecar_problems
            .iter()
            .map(|(pack, problem)| json!({"pack_id": pack, "problem": problem}))
            .collect();
        print_json(&json!({
            "packs_rebuilt": report.packs_rebuilt,
            "objects_indexed": report.objects_indexed,
            "carried_over_objects": report.carried_over_objects,
            "undescribed_packs": report.undescribed_packs,
            "corrupt_entries": corrupt,
            "sidecar_problems": problems,
        }))?;
    } else {
        print_lines([format!(
            "Rebuilt packs.idx of {}: {} objects indexed from {} sealed packs ({} carried over \
             from the old index)",
            global.path.display(),
            report.objects_indexed,
            report.packs_rebuilt,
            report.carried_over_objects
        )])?;
    }
    Ok(Outcome::problems_if(lost))
}
