//! `rsdos rebuild-index`: recreate `packs.idx` from the sidecars of the packs.
//!
//! Works on a container whose index is lost or damaged (it does not open the index). Packs
//! sealed by rsdos describe their objects in a sidecar; the last pack being filled, and packs
//! written by disk-objectstore, have none: their rows are carried over from the old index if
//! it can still be read, else their objects are no longer indexed. The exit status is 1 when
//! something could not be recovered: entries whose bytes no longer match their checksum,
//! unusable sidecars, or packs without a sidecar when nothing could be carried over.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::Container;
use serde_json::json;

use crate::cmd::{Global, Outcome, print_json, print_lines};
use crate::output::warn;
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
    install_ctrlc_handler();
    let report = Container::rebuild_index_at(&global.path, &Bars::for_terminal(global.quiet))
        .with_context(|| {
            format!(
                "cannot rebuild the index of container {}",
                global.path.display()
            )
        })?;
    for id in &report.undescribed_packs {
        warn(format_args!(
            "warning: pack {id} has no usable sidecar (not sealed yet, or written by \
             disk-objectstore): its objects are indexed only if the old packs.idx still \
             listed them; do not repack or delete this pack before they are"
        ));
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
        || (!report.undescribed_packs.is_empty() && report.carried_over_objects == 0);
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
