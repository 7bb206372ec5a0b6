//! `rsdos rm` (or `delete`): delete objects.
//!
//! Loose files, `duplicates/` copies and index rows go; the bytes of packed objects stay in
//! their pack until `rsdos repack` rewrites it. Hashkeys that are not in the container are
//! reported and otherwise ignored (deleting twice is not an error), so the exit status is 0
//! unless something fails. Every hashkey is validated before anything is deleted.

use std::collections::HashSet;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;

use crate::cmd::{Global, print_json, print_lines, read_hashkeys};
use crate::output::note;

/// Arguments of `rsdos rm`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos rm 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n         rsdos ls | grep ^00 | rsdos rm -  &&  rsdos repack"
)]
pub struct RmArgs {
    /// Hashkeys to delete; `-` reads them from stdin, one per line.
    #[arg(required = true, value_name = "HASHKEY")]
    hashkeys: Vec<String>,

    /// Print {"deleted": [...], "not_found": [...]} as JSON.
    #[arg(long)]
    json: bool,
}

/// Deletes the objects and reports what was deleted.
pub fn run(global: &Global, args: RmArgs) -> Result<()> {
    let container = global.open()?;
    let keys = read_hashkeys(&args.hashkeys)?;
    let deleted = container.delete(&keys).with_context(|| {
        format!(
            "cannot delete objects from container {}",
            global.path.display()
        )
    })?;
    let gone: HashSet<&str> = deleted.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let not_found: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| !gone.contains(k) && seen.insert(*k))
        .collect();
    if args.json {
        return print_json(&json!({"deleted": deleted, "not_found": not_found}));
    }
    for key in &not_found {
        note(global.quiet, format_args!("not in the container: {key}"));
    }
    let n = deleted.len();
    print_lines([format!(
        "Deleted {n} object{} from {}{}",
        if n == 1 { "" } else { "s" },
        global.path.display(),
        if n > 0 {
            "; `rsdos repack` reclaims the space of packed ones"
        } else {
            ""
        }
    )])?;
    Ok(())
}
