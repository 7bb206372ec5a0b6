//! `rsdos cat`: write one object's content to stdout or to a file.
//!
//! The object is streamed (decompressed on the fly if it is stored compressed), so any size
//! is copied in bounded memory.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use rsdos::ObjectReader;

use crate::cmd::Global;
use crate::output;

/// Arguments of `rsdos cat`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos cat 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 -o hello.txt"
)]
pub struct CatArgs {
    /// The object's hashkey (full lowercase hex digest).
    hashkey: String,

    /// Write to this file (created or truncated) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Size of the copy buffer: the pack reader's own read size, so each read is one pack read.
const COPY_BUF: usize = 256 * 1024;

/// Streams the object to stdout or to the output file.
pub fn run(global: &Global, args: CatArgs) -> Result<()> {
    let container = global.open()?;
    let mut reader = container.open_object(&args.hashkey).with_context(|| {
        format!(
            "cannot read object from container {}",
            global.path.display()
        )
    })?;
    match &args.output {
        Some(path) if path.as_os_str() != "-" => to_file(&mut reader, path),
        _ => {
            let mut out = output::stdout();
            copy(&mut reader, &mut out, Path::new("stdout"))?;
            out.flush()?;
            Ok(())
        }
    }
}

/// Copies into `path`. A failed copy removes the partial file, so that a file that exists
/// after `cat -o` is always the whole object.
fn to_file(reader: &mut ObjectReader, path: &Path) -> Result<()> {
    let mut file =
        File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let result = copy(reader, &mut file, path).and_then(|()| {
        file.flush()
            .with_context(|| format!("cannot write {}", path.display()))
    });
    if result.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Copies the whole object, telling a failed read of the object (a corrupt or vanished pack)
/// from a failed write of the output, which `std::io::copy` would merge into one error.
/// Write errors keep their `io::Error` in the chain so that a broken pipe is recognised.
fn copy(reader: &mut ObjectReader, out: &mut dyn Write, dest: &Path) -> Result<()> {
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read object {}", reader.hashkey()));
            }
        };
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
}
