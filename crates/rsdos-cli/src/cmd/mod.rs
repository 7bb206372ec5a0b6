//! The subcommands, one module each, and what they share: the resolved global options,
//! opening the container, reading hashkeys from arguments or stdin, asking for confirmation
//! and the compression arguments.

pub mod add;
pub mod backup;
pub mod cat;
pub mod clean;
pub mod completions;
pub mod daemon;
pub mod has;
pub mod import;
pub mod init;
pub mod ls;
pub mod meta;
pub mod migrate;
pub mod optimize;
pub mod pack;
pub mod rebuild_index;
pub mod remote;
pub mod repack;
pub mod rm;
pub mod status;
pub mod validate;

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use rsdos::{CompressMode, Container, OpenOptions};

/// The folder used when neither `--path` nor an environment variable names one; the same
/// default as disk-objectstore's `dostore`, so both tools find the same container.
const DEFAULT_PATH: &str = "dostore";

/// How a command that ran to the end went: the exit status is 0 for `Done` and 1 for
/// `Problems` (a check found something wrong, which the command has already printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything as expected.
    Done,
    /// The command worked, and found problems (a corrupt object, a missing hashkey...).
    Problems,
}

impl Outcome {
    /// `Problems` if `found`, else `Done`.
    pub fn problems_if(found: bool) -> Self {
        if found {
            Outcome::Problems
        } else {
            Outcome::Done
        }
    }
}

/// Options that apply to every command.
#[derive(Debug, Clone)]
pub struct Global {
    /// The container folder, as the user spelled it (messages show it that way).
    pub path: PathBuf,
    /// Print only summaries and errors.
    pub quiet: bool,
    /// Service options of a remote container's pack storage for this run (`--remote-option`):
    /// credentials that were not stored at `init`. Never written anywhere.
    pub remote_options: Vec<(String, String)>,
}

impl Global {
    /// Resolves the container path: `--path` (or `$RSDOS_PATH`, which clap reads), else
    /// `$DOSTORE_PATH` (so scripts written for disk-objectstore's CLI keep working), else
    /// `./dostore`. Empty values count as unset, as an empty path names no folder.
    pub fn new(path: Option<PathBuf>, quiet: bool, remote_options: Vec<(String, String)>) -> Self {
        let path = path
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| {
                std::env::var_os("DOSTORE_PATH")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(OsString::from(DEFAULT_PATH)));
        Global {
            path,
            quiet,
            remote_options,
        }
    }

    /// Opens the container (see [`open_container`]).
    pub fn open(&self) -> Result<Container> {
        open_container(&self.path, &self.remote_options)
    }

    /// The library's open options for the `--remote-option`s given.
    pub fn open_options(&self) -> OpenOptions {
        open_options(&self.remote_options)
    }
}

fn open_options(remote_options: &[(String, String)]) -> OpenOptions {
    remote_options
        .iter()
        .fold(OpenOptions::default(), |o, (key, value)| {
            o.with_packs_option(key, value)
        })
}

/// Opens the container in `path`. The library's errors already name the folder, and when it
/// is not a container they say to run `rsdos init`, so they are passed on unchanged.
///
/// One case is caught first: the library (as disk-objectstore) creates an empty `packs.idx`
/// when there is none, which is right for a new container but hides every packed object of
/// a container whose index was lost. A missing `packs.idx` next to pack files is therefore
/// an error that points to `rsdos rebuild-index`.
pub fn open_container(path: &Path, remote_options: &[(String, String)]) -> Result<Container> {
    if Container::is_initialised(path) && !path.join("packs.idx").exists() {
        let packs = count_pack_files(&path.join("packs"));
        if packs > 0 {
            bail!(
                "container {}: packs.idx is missing but packs/ holds {packs} pack file{}; \
                 run `rsdos rebuild-index` to recreate the index from the packs",
                path.display(),
                if packs == 1 { "" } else { "s" }
            );
        }
    }
    Ok(Container::open_with(path, &open_options(remote_options))?)
}

/// `KEY=VALUE` of an option given on the command line.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// Pack files in a `packs/` folder: files named by a number (sidecars and lock files are not).
fn count_pack_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    })
}

/// The hashkeys named on the command line, where `-` stands for the lines of stdin (blank
/// lines skipped, surrounding spaces trimmed, so `rsdos ls | rsdos has -` and files with
/// Windows line ends both work). Nothing is validated here: the container checks each key.
pub fn read_hashkeys(args: &[String]) -> Result<Vec<String>> {
    let mut keys = Vec::with_capacity(args.len());
    let mut stdin_seen = false;
    for arg in args {
        if arg != "-" {
            keys.push(arg.clone());
            continue;
        }
        if stdin_seen {
            bail!("stdin (-) can only be read once");
        }
        stdin_seen = true;
        for line in io::stdin().lock().lines() {
            let line = line.context("cannot read hashkeys from stdin")?;
            let key = line.trim();
            if !key.is_empty() {
                keys.push(key.to_string());
            }
        }
    }
    Ok(keys)
}

/// Asks a yes/no question on the terminal (default no). When stdin is not a terminal there
/// is nobody to ask: the command was run by a script, which chose to run it, so the answer
/// is yes.
pub fn confirm(question: &str) -> Result<bool> {
    if !io::stdin().is_terminal() {
        return Ok(true);
    }
    let mut err = io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    drop(err);
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// The compression modes that make sense for new data (`keep` only applies to repacking).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressArg {
    /// Store objects as they are.
    No,
    /// Compress every object with the container's algorithm.
    Yes,
    /// Compress an object only if a sample of it compresses well.
    Auto,
}

impl From<CompressArg> for CompressMode {
    fn from(c: CompressArg) -> Self {
        match c {
            CompressArg::No => CompressMode::No,
            CompressArg::Yes => CompressMode::Yes,
            CompressArg::Auto => CompressMode::Auto,
        }
    }
}

/// The compression modes of `repack`, which may also keep each object as it is stored.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RecompressArg {
    /// Copy each object as it is stored (compressed or not).
    Keep,
    /// Store every object uncompressed.
    No,
    /// Compress every object with the container's algorithm.
    Yes,
    /// Compress an object only if a sample of it compresses well.
    Auto,
}

impl From<RecompressArg> for CompressMode {
    fn from(c: RecompressArg) -> Self {
        match c {
            RecompressArg::Keep => CompressMode::Keep,
            RecompressArg::No => CompressMode::No,
            RecompressArg::Yes => CompressMode::Yes,
            RecompressArg::Auto => CompressMode::Auto,
        }
    }
}

/// The absolute form of a path for messages and JSON (the path as given if that fails).
pub fn absolute(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// Writes pretty JSON (two-space indentation, keys in insertion order) and a newline to
/// stdout.
pub fn print_json(value: &serde_json::Value) -> Result<()> {
    // Formatted first: a write error then stays an `io::Error`, so a closed pipe is seen.
    let text = serde_json::to_string_pretty(value)?;
    let mut out = crate::output::stdout();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

/// Writes lines of text to stdout through the buffered writer.
pub fn print_lines<I, S>(lines: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = crate::output::stdout();
    for line in lines {
        writeln!(out, "{}", line.as_ref())?;
    }
    out.flush()?;
    Ok(())
}
