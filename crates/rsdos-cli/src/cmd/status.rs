//! `rsdos status`: the container's configuration, object counts and sizes.
//!
//! `--json` prints the shape of disk-objectstore's `dostore status` (path, id, compression,
//! count, size) plus `hash_type`, so scripts written for it can read rsdos containers' status.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;

use crate::cmd::Global;
use crate::output::{self, JsonObject, human_size};

/// Arguments of `rsdos status`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos status --json | jq .count")]
pub struct StatusArgs {
    /// Print JSON instead of a human summary.
    #[arg(long)]
    json: bool,
}

/// Prints the summary.
pub fn run(global: &Global, args: StatusArgs) -> Result<()> {
    let container = global.open()?;
    let context = || {
        format!(
            "cannot read the status of container {}",
            global.path.display()
        )
    };
    let count = container.count().with_context(context)?;
    let size = container.total_size().with_context(context)?;
    let config = container.config();
    // The absolute path, as the status is often pasted somewhere the working folder is lost.
    let path = std::path::absolute(container.path())
        .unwrap_or_else(|_| container.path().to_path_buf())
        .display()
        .to_string();
    let compression = config.compression_algorithm.to_string();
    let sizes = [
        (
            "total_size_packed",
            "packed objects",
            size.total_size_packed,
        ),
        (
            "total_size_packed_on_disk",
            "packed, as stored",
            size.total_size_packed_on_disk,
        ),
        (
            "total_size_packfiles_on_disk",
            "pack files",
            size.total_size_packfiles_on_disk,
        ),
        (
            "total_size_packindexes_on_disk",
            "pack index",
            size.total_size_packindexes_on_disk,
        ),
        ("total_size_loose", "loose objects", size.total_size_loose),
    ];

    let mut out = output::stdout();
    if args.json {
        let size_json = sizes
            .iter()
            .fold(JsonObject::new(), |obj, (key, _, n)| obj.number(key, *n));
        let json = JsonObject::new()
            .string("path", &path)
            .string("id", &config.container_id)
            .string("hash_type", config.hash_type.as_str())
            .string("compression", &compression)
            .object(
                "count",
                JsonObject::new()
                    .number("packed", count.packed)
                    .number("loose", count.loose)
                    .number("pack_files", count.pack_files),
            )
            .object("size", size_json);
        writeln!(out, "{}", json.to_pretty())?;
    } else {
        writeln!(out, "Container:    {path}")?;
        writeln!(out, "Id:           {}", config.container_id)?;
        writeln!(out, "Hash type:    {}", config.hash_type.as_str())?;
        writeln!(out, "Compression:  {compression}")?;
        writeln!(out, "Objects:")?;
        writeln!(out, "  loose:          {}", count.loose)?;
        writeln!(out, "  packed:         {}", count.packed)?;
        writeln!(out, "  pack files:     {}", count.pack_files)?;
        writeln!(out, "Sizes:")?;
        for (_, label, n) in sizes {
            writeln!(
                out,
                "  {:<18}{:>12}  ({n} bytes)",
                format!("{label}:"),
                human_size(n)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
