//! `rsdos has`: tell whether objects are in the container.
//!
//! One line per hashkey, `<hashkey>\tpresent` or `<hashkey>\tmissing`; the exit status is 0
//! when all are present and 1 when any is missing, so `rsdos has KEY && ...` reads as it
//! should. Hashkeys come from the arguments or, with `-`, from stdin.

use anyhow::{Context, Result};
use clap::Args;
use rsdos::ObjectType;
use serde_json::json;

use crate::cmd::{Global, Outcome, print_json, print_lines, read_hashkeys};

/// Arguments of `rsdos has`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos has 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 && echo stored\n         rsdos ls | rsdos -p /other/store has - | grep missing"
)]
pub struct HasArgs {
    /// Hashkeys to look up; `-` reads them from stdin, one per line.
    #[arg(required = true, value_name = "HASHKEY")]
    hashkeys: Vec<String>,

    /// Print a JSON array of {"hashkey", "present"} instead of lines.
    #[arg(long)]
    json: bool,
}

/// Hashkeys looked up at once: one index query per batch.
pub const BATCH: usize = 1000;

/// Looks every hashkey up and prints the answers.
pub fn run(global: &Global, args: HasArgs) -> Result<Outcome> {
    let container = global.open()?;
    let keys = read_hashkeys(&args.hashkeys)?;
    // Every key is checked before any answer is printed: a typo fails the whole command.
    for key in &keys {
        container.validate_key(key)?;
    }
    let context = || {
        format!(
            "cannot look objects up in container {}",
            global.path.display()
        )
    };
    let mut answers = Vec::with_capacity(keys.len());
    for batch in keys.chunks(BATCH) {
        for (key, meta) in container.meta_many(batch).with_context(context)? {
            answers.push((key, meta.object_type != ObjectType::Missing));
        }
    }
    let missing = answers.iter().filter(|(_, present)| !present).count();
    if args.json {
        let list: Vec<_> = answers
            .iter()
            .map(|(key, present)| json!({"hashkey": key, "present": present}))
            .collect();
        print_json(&json!(list))?;
    } else if !global.quiet {
        print_lines(answers.iter().map(|(key, present)| {
            format!("{key}\t{}", if *present { "present" } else { "missing" })
        }))?;
    }
    Ok(Outcome::problems_if(missing > 0))
}
