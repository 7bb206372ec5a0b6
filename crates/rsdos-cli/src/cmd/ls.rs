//! `rsdos ls`: list the hashkeys of a container, one per line.
//!
//! Packed objects come first in ascending order, then loose-only ones; each object is listed
//! once even if it is both loose and packed. With `--meta`, each line also tells where the
//! object is stored, as tab-separated columns for `cut`, `awk` or a spreadsheet.

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;
use rsdos::ObjectMeta;

use crate::cmd::Global;
use crate::output;

/// Arguments of `rsdos ls`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos ls --meta | awk -F'\\t' '$2 == \"loose\"' | head")]
pub struct LsArgs {
    /// Add tab-separated columns: type (loose/packed), size, pack id, offset, length,
    /// compressed (true/false). Columns that do not apply to loose objects are `-`.
    #[arg(long)]
    meta: bool,
}

/// Hashkeys looked up at once with `--meta`: one index query per batch instead of per key.
const META_BATCH: usize = 1000;

/// Prints the listing; a reader that closes the pipe early ends it quietly (see `main`).
pub fn run(global: &Global, args: LsArgs) -> Result<()> {
    let container = global.open()?;
    let context = || format!("cannot list container {}", global.path.display());
    let mut out = output::stdout();
    let keys = container.iter_hashkeys().with_context(context)?;
    if !args.meta {
        for key in keys {
            writeln!(out, "{}", key.with_context(context)?)?;
        }
    } else {
        let mut batch = Vec::with_capacity(META_BATCH);
        let mut keys = keys.peekable();
        while keys.peek().is_some() {
            batch.clear();
            while batch.len() < META_BATCH {
                match keys.next() {
                    Some(key) => batch.push(key.with_context(context)?),
                    None => break,
                }
            }
            for (key, meta) in container.meta_many(&batch).with_context(context)? {
                writeln!(out, "{key}\t{}", meta_columns(&meta))?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The `--meta` columns after the hashkey. An object deleted between the listing and the
/// lookup shows as `missing`.
pub fn meta_columns(meta: &ObjectMeta) -> String {
    let size = meta.size.map_or_else(|| "-".to_string(), |s| s.to_string());
    match meta.packed {
        Some(p) => format!(
            "{}\t{size}\t{}\t{}\t{}\t{}",
            meta.object_type.as_str(),
            p.pack_id,
            p.offset,
            p.length,
            p.compressed
        ),
        None => format!("{}\t{size}\t-\t-\t-\t-", meta.object_type.as_str()),
    }
}
