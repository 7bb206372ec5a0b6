//! `rsdos clone URL DIR` and `rsdos upload`: containers whose packs live in remote storage.
//!
//! `clone` makes a working local container from the remote alone (its config, the index
//! snapshot uploaded after each seal, the sidecars of packs sealed later); the clone's packs
//! stay remote. `upload` retries the uploads that failed (every pack, repack and daemon cycle
//! does too) and snapshots the index. Neither prints credentials: URLs are shown without
//! their query.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{CloneOptions, Container};
use serde_json::json;

use crate::cmd::init::PacksArgs;
use crate::cmd::{Global, Outcome, print_json};
use crate::output::{note, warn};

/// Arguments of `rsdos clone`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos clone s3://bucket/store ./store --region eu-west-1")]
pub struct CloneArgs {
    /// Where the packs of the container to clone are (s3://, gs://, azblob://, fs://).
    #[arg(value_name = "URL")]
    url: String,

    /// The new container's folder (absent or empty).
    #[arg(value_name = "DIR")]
    dir: PathBuf,

    /// Service options (`--packs-option`, `--endpoint`, `--region`, `--store-credentials`);
    /// `--packs` is ignored (the URL is the positional argument).
    #[command(flatten)]
    packs: PacksArgs,

    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `rsdos upload`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos upload && rsdos status")]
pub struct UploadArgs {
    /// Also seal and upload the packs still being filled, so that the remote holds every
    /// packed object (later writes start new packs).
    #[arg(long)]
    all: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn shown(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

/// Clones and reports what was done; exit 1 if some packs could not be indexed.
pub fn run_clone(global: &Global, args: CloneArgs) -> Result<Outcome> {
    let mut options = CloneOptions::default().with_store_credentials(args.packs.store_credentials);
    for (k, v) in args.packs.options() {
        options = options.with_packs_option(&k, &v);
    }
    let (container, report) = Container::clone_from_remote(&args.url, &args.dir, &options)
        .with_context(|| {
            format!(
                "cannot clone {} into {}",
                shown(&args.url),
                args.dir.display()
            )
        })?;
    let problems = !report.undescribed_packs.is_empty()
        || !report.corrupt_entries.is_empty()
        || !report.sidecar_problems.is_empty();
    if args.json {
        print_json(&json!({
            "path": args.dir.display().to_string(),
            "url": shown(&args.url),
            "from_snapshot": report.from_snapshot,
            "snapshot_problem": report.snapshot_problem,
            "packs": report.packs,
            "packs_from_sidecars": report.packs_from_sidecars,
            "objects": report.objects,
            "rows_dropped": report.rows_dropped,
            "undescribed_packs": report.undescribed_packs,
            "corrupt_entries": report.corrupt_entries,
            "sidecar_problems": report.sidecar_problems,
        }))?;
    } else {
        if let Some(p) = &report.snapshot_problem {
            note(
                global.quiet,
                format_args!("note: index snapshot not used ({p}); rebuilt from the sidecars"),
            );
        }
        for (id, why) in &report.sidecar_problems {
            warn(format_args!("warning: pack {id}: {why}"));
        }
        for id in &report.undescribed_packs {
            warn(format_args!(
                "warning: pack {id} has no usable sidecar: its objects are not indexed"
            ));
        }
        if !report.corrupt_entries.is_empty() {
            warn(format_args!(
                "warning: {} sidecar entries did not match their pack's bytes and were left out",
                report.corrupt_entries.len()
            ));
        }
        let source = if report.from_snapshot {
            format!(
                "index snapshot + {} pack(s) from sidecars",
                report.packs_from_sidecars
            )
        } else {
            format!("sidecars of {} pack(s)", report.packs_from_sidecars)
        };
        crate::cmd::print_lines([
            format!(
                "Cloned {} into {}",
                shown(&args.url),
                container.path().display()
            ),
            format!("  packs:    {} (remote)", report.packs),
            format!("  objects:  {}", report.objects),
            format!("  index:    {source}"),
        ])?;
        if report.rows_dropped > 0 {
            note(
                global.quiet,
                format_args!(
                    "note: {} object(s) of the snapshot were in packs not uploaded (still \
                     staged at the origin) and are not in the clone",
                    report.rows_dropped
                ),
            );
        }
    }
    Ok(if problems {
        Outcome::Problems
    } else {
        Outcome::Done
    })
}

/// Uploads waiting packs; exit 1 if some upload or the snapshot failed again.
pub fn run_upload(global: &Global, args: UploadArgs) -> Result<Outcome> {
    let container = global.open()?;
    if container.remote().is_none() {
        note(
            global.quiet,
            format_args!("note: the packs of this container are local: nothing to upload"),
        );
        return Ok(Outcome::Done);
    }
    let uploaded = if args.all {
        container.upload_all()
    } else {
        container.upload_pending()
    };
    let report = uploaded.with_context(|| {
        format!(
            "cannot upload the packs of container {}",
            global.path.display()
        )
    })?;
    let failed = !report.failed.is_empty() || report.snapshot_error.is_some();
    if args.json {
        print_json(&json!({
            "uploaded": report.uploaded,
            "failed": report.failed,
            "snapshot_taken": report.snapshot_taken,
            "snapshot_error": report.snapshot_error,
        }))?;
    } else {
        for (id, why) in &report.failed {
            warn(format_args!("warning: pack {id} stays local: {why}"));
        }
        if let Some(e) = &report.snapshot_error {
            warn(format_args!("warning: index snapshot failed: {e}"));
        }
        crate::cmd::print_lines([format!(
            "Uploaded {} pack(s){}",
            report.uploaded.len(),
            if report.snapshot_taken {
                ", index snapshot updated"
            } else {
                ""
            }
        )])?;
    }
    Ok(if failed {
        Outcome::Problems
    } else {
        Outcome::Done
    })
}
