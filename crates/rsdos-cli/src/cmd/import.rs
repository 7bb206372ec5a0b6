//! `rsdos import SOURCE`: copy objects of another container into this one's packs.
//!
//! Everything, or the hashkeys given (`-` reads them from stdin). Objects this container
//! already has are skipped; if the two containers use different hash types, each object is
//! re-hashed and the lines `<source hashkey>  <new hashkey>` are printed. Hashkeys asked for
//! that the source does not have are reported, and the exit status is then 1.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use crate::cmd::{
    CompressArg, Global, Outcome, open_container, print_json, print_lines, read_hashkeys,
};
use crate::output::warn;
use crate::progress::{Bars, install_ctrlc_handler};

/// Arguments of `rsdos import`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos -p /data/store import /old/store --compress auto")]
pub struct ImportArgs {
    /// The container to copy from (only read).
    #[arg(value_name = "SOURCE")]
    source: PathBuf,

    /// Hashkeys to copy (of the source's hash type); `-` reads them from stdin. Default:
    /// every object of the source.
    #[arg(value_name = "HASHKEY")]
    hashkeys: Vec<String>,

    /// Whether to compress the copies with this container's algorithm.
    #[arg(long, value_enum, default_value = "no")]
    compress: CompressArg,

    /// Print the report as JSON (with the hashkey mapping when the hash types differ).
    #[arg(long)]
    json: bool,
}

/// Imports and prints what was copied.
pub fn run(global: &Global, args: ImportArgs) -> Result<Outcome> {
    let container = global.open()?;
    let source = open_container(&args.source, &global.remote_options)
        .with_context(|| format!("cannot open the source container {}", args.source.display()))?;
    let keys = if args.hashkeys.is_empty() {
        None
    } else {
        let keys = read_hashkeys(&args.hashkeys)?;
        for key in &keys {
            source.validate_key(key)?;
        }
        Some(keys)
    };
    install_ctrlc_handler();
    let report = container
        .import_from(
            &source,
            keys.as_deref(),
            args.compress.into(),
            &Bars::for_terminal(global.quiet),
        )
        .with_context(|| {
            format!(
                "cannot import from {} into container {}",
                args.source.display(),
                global.path.display()
            )
        })?;
    let same_hash = source.config().hash_type == container.config().hash_type;
    if args.json {
        let mut value = json!({
            "copied": report.copied,
            "skipped_present": report.skipped_present,
            "missing_in_source": report.missing_in_source,
        });
        if !same_hash {
            value["mapping"] = json!(report.mapping);
        }
        print_json(&value)?;
    } else {
        let mut lines = Vec::new();
        if !same_hash {
            lines.extend(
                report
                    .mapping
                    .iter()
                    .map(|(from, to)| format!("{from}  {to}")),
            );
        }
        lines.push(format!(
            "Imported {} objects from {} into {} ({} already present, {} missing in the source)",
            report.copied,
            args.source.display(),
            global.path.display(),
            report.skipped_present,
            report.missing_in_source
        ));
        print_lines(lines)?;
    }
    if report.missing_in_source > 0 {
        warn(format_args!(
            "warning: {} of the hashkeys asked for are not in {} (`rsdos -p {} has -` tells which)",
            report.missing_in_source,
            args.source.display(),
            args.source.display()
        ));
    }
    Ok(Outcome::problems_if(report.missing_in_source > 0))
}
