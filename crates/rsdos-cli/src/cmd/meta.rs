//! `rsdos meta`: where and how objects are stored, without reading them.
//!
//! One line per hashkey with the tab-separated columns of `rsdos ls --meta` (type, size,
//! pack id, offset, length, compressed); a missing object has type `missing` and the exit
//! status is then 1. `--json` prints the same as an array of objects.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::{ObjectMeta, ObjectType};
use serde_json::{Value, json};

use crate::cmd::has::BATCH;
use crate::cmd::ls::meta_columns;
use crate::cmd::{Global, Outcome, print_json, print_lines, read_hashkeys};

/// Arguments of `rsdos meta`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos meta --json 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
)]
pub struct MetaArgs {
    /// Hashkeys to describe; `-` reads them from stdin, one per line.
    #[arg(required = true, value_name = "HASHKEY")]
    hashkeys: Vec<String>,

    /// Print a JSON array of {"hashkey", "type", "size", "pack_id", "offset", "length",
    /// "compressed"} (null where a field does not apply).
    #[arg(long)]
    json: bool,
}

/// The JSON form of one object's metadata.
pub fn meta_json(key: &str, meta: &ObjectMeta) -> Value {
    let packed = meta.packed;
    json!({
        "hashkey": key,
        "type": meta.object_type.as_str(),
        "size": meta.size,
        "pack_id": packed.map(|p| p.pack_id),
        "offset": packed.map(|p| p.offset),
        "length": packed.map(|p| p.length),
        "compressed": packed.map(|p| p.compressed),
    })
}

/// Prints the metadata of every hashkey.
pub fn run(global: &Global, args: MetaArgs) -> Result<Outcome> {
    let container = global.open()?;
    let keys = read_hashkeys(&args.hashkeys)?;
    for key in &keys {
        container.validate_key(key)?;
    }
    let context = || {
        format!(
            "cannot read metadata in container {}",
            global.path.display()
        )
    };
    let mut metas = Vec::with_capacity(keys.len());
    for batch in keys.chunks(BATCH) {
        metas.extend(container.meta_many(batch).with_context(context)?);
    }
    let missing = metas
        .iter()
        .filter(|(_, m)| m.object_type == ObjectType::Missing)
        .count();
    if args.json {
        let list: Vec<Value> = metas.iter().map(|(k, m)| meta_json(k, m)).collect();
        print_json(&Value::Array(list))?;
    } else {
        print_lines(
            metas
                .iter()
                .map(|(key, meta)| format!("{key}\t{}", meta_columns(meta))),
        )?;
    }
    Ok(Outcome::problems_if(missing > 0))
}
