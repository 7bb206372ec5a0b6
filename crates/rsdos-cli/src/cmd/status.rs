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

    // A packer that cannot be read about is a note, not a failure of `status`.
    let packer = match rsdos::auto_pack_status(&container) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warning: cannot read the automatic packer's status: {e:#}");
            None
        }
    };

    // Where the packs are; local only (no remote request), so status works offline.
    let remote = container.remote_status().with_context(context)?;

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
        let json = match &packer {
            None => json.raw("packer", "null"),
            Some(p) => json.object("packer", packer_json(p)),
        };
        let json = match &remote {
            None => json.object(
                "packs",
                JsonObject::new()
                    .string("location", "local")
                    .raw("url", "null"),
            ),
            Some(r) => json.object("packs", remote_json(r)),
        };
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
        writeln!(out, "Packer:       {}", packer_line(packer.as_ref()))?;
        match &remote {
            None => writeln!(out, "Packs:        local (packs/)")?,
            Some(r) => {
                writeln!(out, "Packs:        {}", r.url)?;
                writeln!(
                    out,
                    "  waiting for upload: {} pack(s){}",
                    r.pending_upload.len(),
                    if r.pending_upload.is_empty() {
                        String::new()
                    } else {
                        " (run `rsdos upload`)".into()
                    }
                )?;
                writeln!(out, "  staged locally:     {} pack(s)", r.staged.len())?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn unix_seconds(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn ago(t: std::time::SystemTime) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs} s ago")
}

/// One line on the automatic packer (`rsdos daemon` or an in-process one).
fn packer_line(packer: Option<&rsdos::PackerStatus>) -> String {
    let Some(p) = packer else {
        return "none (start one with `rsdos daemon`)".into();
    };
    let activity = p.last_activity.map_or_else(|| "none yet".to_string(), ago);
    let mut line = if p.is_active() {
        format!(
            "running (pid {}), last activity {activity}, {} objects packed since it started {}",
            p.pid,
            p.objects_packed,
            ago(p.started)
        )
    } else if let Some(stopped) = p.stopped {
        format!("stopped {}, last activity {activity}", ago(stopped))
    } else {
        format!(
            "not running (pid {} ended without stopping), last activity {activity}",
            p.pid
        )
    };
    if let Some(e) = &p.last_error {
        line.push_str(&format!("; last error: {e}"));
    }
    line
}

fn packer_json(p: &rsdos::PackerStatus) -> JsonObject {
    let opt_time = |t: Option<std::time::SystemTime>| {
        t.map_or_else(|| "null".to_string(), |t| unix_seconds(t).to_string())
    };
    let obj = JsonObject::new()
        .raw("active", if p.is_active() { "true" } else { "false" })
        .number("pid", u64::from(p.pid))
        .number("started", unix_seconds(p.started))
        .raw("last_activity", &opt_time(p.last_activity))
        .raw("stopped", &opt_time(p.stopped))
        .number("objects_packed", p.objects_packed)
        .number("bytes_packed", p.bytes_packed)
        .number("loose_waiting", p.loose_waiting);
    match &p.last_error {
        Some(e) => obj.string("last_error", e),
        None => obj.raw("last_error", "null"),
    }
}

fn remote_json(r: &rsdos::RemoteStatus) -> JsonObject {
    let ids = |v: &[u64]| {
        format!(
            "[{}]",
            v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        )
    };
    let obj = JsonObject::new()
        .string("location", "remote")
        .string("url", &r.url)
        .number("pending_upload", r.pending_upload.len() as u64)
        .raw("pending_upload_ids", &ids(&r.pending_upload))
        .raw("staged_ids", &ids(&r.staged));
    match &r.last_error {
        Some(e) => obj.string("last_error", e),
        None => obj.raw("last_error", "null"),
    }
}
