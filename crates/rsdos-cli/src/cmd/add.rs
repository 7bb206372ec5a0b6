//! `rsdos add`: store files, folders and stdin as objects.
//!
//! The inputs are listed first (folders recursively, in sorted order), then added one by one,
//! streamed in bounded memory: by default as loose objects through a write batch (made durable
//! together, one durability point per batch), with `--pack` straight into pack files in one
//! transaction per pack. Each input is printed as
//! `<hashkey>  <path>` (the layout of `sha256sum`), followed by a summary on stderr.

use std::cell::Cell;
use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Read, StdoutLock, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{Context, Result, bail};
use clap::Args;
use rsdos::{CompressMode, Container, InitOptions, PackWriteOptions};

use crate::cmd::{CompressArg, Global};
use crate::output::{self, human_size, note};

/// Arguments of `rsdos add`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos add --init --pack --compress auto data/ notes.txt")]
pub struct AddArgs {
    /// Create the container (with default settings) if the folder is not one yet.
    #[arg(long)]
    init: bool,

    /// Write straight into pack files instead of one loose file per object: faster for many
    /// objects, and no later packing is needed.
    #[arg(long)]
    pack: bool,

    /// Whether to compress packed objects (default: no); `auto` decides per object from a
    /// sample. Only with --pack: loose objects are always stored as they are.
    #[arg(long, value_enum, requires = "pack")]
    compress: Option<CompressArg>,

    /// Files and folders to add (folders recursively; symbolic links and special files inside
    /// them are skipped); `-` reads stdin.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
}

/// Arguments of `rsdos add-files`, disk-objectstore's `dostore add-files`.
#[derive(Debug, Args)]
#[command(after_help = "Example: rsdos add-files notes.txt data/results.csv")]
pub struct AddFilesArgs {
    /// Files (or folders, recursively) to add as loose objects.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// How each added input is printed.
#[derive(Debug, Clone, Copy)]
enum LineStyle {
    /// `<hashkey>  <path>`, as `sha256sum`.
    Rsdos,
    /// `<hashkey>: <path>`, as `dostore add-files`.
    Dostore,
}

/// Where one object's content comes from.
#[derive(Debug)]
enum Source {
    Stdin,
    File(PathBuf),
}

/// One object to add, with the name it is printed under.
#[derive(Debug)]
struct Input {
    source: Source,
    shown: String,
}

impl Input {
    fn file(path: PathBuf) -> Self {
        Input {
            shown: path.display().to_string(),
            source: Source::File(path),
        }
    }

    /// Opens the content. Errors name the file, because the library only knows it is reading
    /// "a stream".
    fn open(&self) -> io::Result<Box<dyn Read>> {
        match &self.source {
            Source::Stdin => Ok(Box::new(io::stdin().lock())),
            Source::File(path) => match File::open(path) {
                Ok(f) => Ok(Box::new(f)),
                Err(e) => Err(annotate(e, "open", path)),
            },
        }
    }
}

/// An I/O error whose message names the input (the kind is kept for callers that match it).
fn annotate(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("cannot {op} {}: {e}", path.display()))
}

/// A reader that opens its input on first read and counts the bytes read. `add_many_to_pack`
/// takes an iterator of readers; opening lazily keeps one file open at a time, however many
/// inputs there are.
struct LazyInput<'a> {
    input: &'a Input,
    reader: Option<Box<dyn Read>>,
    bytes: Rc<Cell<u64>>,
}

impl Read for LazyInput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let reader = match &mut self.reader {
            Some(r) => r,
            None => self.reader.insert(self.input.open()?),
        };
        let n = reader.read(buf).map_err(|e| match &self.input.source {
            Source::File(path) => annotate(e, "read", path),
            Source::Stdin => annotate(e, "read", Path::new("stdin")),
        })?;
        self.bytes.set(self.bytes.get() + n as u64);
        Ok(n)
    }
}

/// The per-input lines on stdout. A reader that stops early (`rsdos add dir | head`) must not
/// stop the add half-way, so a broken pipe only silences the lines; other write errors (a
/// full disk behind a redirection) are errors.
struct Lines {
    out: Option<BufWriter<StdoutLock<'static>>>,
    style: LineStyle,
    /// Flush after each line so that a person watching sees progress.
    interactive: bool,
}

impl Lines {
    fn new(quiet: bool, style: LineStyle) -> Self {
        Lines {
            out: (!quiet).then(output::stdout),
            style,
            interactive: io::stdout().is_terminal(),
        }
    }

    fn line(&mut self, hashkey: &str, shown: &str) -> Result<()> {
        let interactive = self.interactive;
        let separator = match self.style {
            LineStyle::Rsdos => "  ",
            LineStyle::Dostore => ": ",
        };
        self.write(|out| {
            writeln!(out, "{hashkey}{separator}{shown}")?;
            if interactive {
                out.flush()?;
            }
            Ok(())
        })
    }

    fn finish(mut self) -> Result<()> {
        self.write(|out| out.flush())
    }

    fn write(
        &mut self,
        f: impl FnOnce(&mut BufWriter<StdoutLock<'static>>) -> io::Result<()>,
    ) -> Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        match f(out) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                self.out = None;
                Ok(())
            }
            Err(e) => Err(anyhow::Error::from(e).context("cannot write to stdout")),
        }
    }
}

/// `rsdos add-files`: a loose add, printed as `dostore add-files` does.
pub fn run_add_files(global: &Global, args: AddFilesArgs) -> Result<()> {
    let args = AddArgs {
        init: false,
        pack: false,
        compress: None,
        paths: args.files,
    };
    add(global, args, LineStyle::Dostore)
}

/// Adds the inputs and prints one line per input, then the summary.
pub fn run(global: &Global, args: AddArgs) -> Result<()> {
    add(global, args, LineStyle::Rsdos)
}

fn add(global: &Global, args: AddArgs, style: LineStyle) -> Result<()> {
    let path = &global.path;
    // Open before listing so that a missing container is reported before any work; with
    // --init the container is only created once every input has been found and listed.
    let existing = if args.init && !Container::is_initialised(path) {
        None
    } else {
        Some(global.open()?)
    };
    let root = fs::canonicalize(path).ok();
    let inputs = collect_inputs(&args.paths, root.as_deref(), global.quiet)?;
    let container = match existing {
        Some(c) => c,
        None => {
            let c = Container::init(path, &InitOptions::default())?;
            note(
                global.quiet,
                format_args!("Created container: {}", path.display()),
            );
            c
        }
    };

    let mut lines = Lines::new(global.quiet, style);
    let bytes = Rc::new(Cell::new(0u64));
    if args.pack {
        let compress = args.compress.map_or(CompressMode::No, CompressMode::from);
        let options = PackWriteOptions::default().with_compress(compress);
        let readers = inputs.iter().map(|input| LazyInput {
            input,
            reader: None,
            bytes: Rc::clone(&bytes),
        });
        let keys = container
            .add_many_to_pack(readers, &options)
            .with_context(|| format!("cannot add to the packs of container {}", path.display()))?;
        if keys.len() != inputs.len() {
            bail!(
                "BUG: {} hashkeys returned for {} inputs",
                keys.len(),
                inputs.len()
            );
        }
        for (input, key) in inputs.iter().zip(&keys) {
            lines.line(key, &input.shown)?;
        }
    } else {
        add_loose(&container, &inputs, &bytes, &mut lines)?;
    }
    lines.finish()?;
    let n = inputs.len();
    // The summary is printed even with --quiet: it is then the only confirmation of the add.
    output::note(
        false,
        format_args!(
            "added {n} file{} ({}) to {}",
            if n == 1 { "" } else { "s" },
            human_size(bytes.get()),
            path.display()
        ),
    );
    Ok(())
}

/// Adds the inputs as loose objects through one write batch (one durability point per batch
/// instead of two fsyncs per file). A line is printed only once its object is durable: after
/// each flush of the batch, and at the end. If an input fails, what was added before it is
/// still committed (as when every file was durable on its own) before the error is returned.
fn add_loose(
    container: &Container,
    inputs: &[Input],
    bytes: &Rc<Cell<u64>>,
    lines: &mut Lines,
) -> Result<()> {
    let path = container.path();
    let mut batch = container.write_batch();
    // Inputs added but not printed yet, and their hashkeys.
    let mut unprinted: Vec<(&Input, String)> = Vec::new();
    for input in inputs {
        let added = input
            .open()
            .map_err(anyhow::Error::from)
            .and_then(|reader| {
                let mut reader = LazyInput {
                    input,
                    reader: Some(reader),
                    bytes: Rc::clone(bytes),
                };
                Ok(batch.add_stream(&mut reader)?)
            });
        let key = match added {
            Ok(key) => key,
            Err(e) => {
                let committed = batch.commit();
                for (done, key) in unprinted.drain(..) {
                    if committed.is_ok() {
                        lines.line(&key, &done.shown)?;
                    }
                }
                return Err(e.context(format!(
                    "cannot add {} to container {}",
                    input.shown,
                    path.display()
                )));
            }
        };
        unprinted.push((input, key));
        if batch.pending() == 0 {
            // The batch flushed by itself: everything added so far is durable.
            for (done, key) in unprinted.drain(..) {
                lines.line(&key, &done.shown)?;
            }
        }
    }
    batch
        .commit()
        .with_context(|| format!("cannot add to container {}", path.display()))?;
    for (done, key) in unprinted {
        lines.line(&key, &done.shown)?;
    }
    Ok(())
}

/// Lists what to add, in order, before anything is written: a typo in the last argument
/// fails the command without a half-done add. Folders are walked depth-first in sorted name
/// order, so the output and the pack layout do not depend on the file system's listing order.
/// The container's own folder is never added: appending a pack to itself would not end.
fn collect_inputs(paths: &[PathBuf], root: Option<&Path>, quiet: bool) -> Result<Vec<Input>> {
    let inside_container = |p: &Path| -> bool {
        root.is_some_and(|root| fs::canonicalize(p).is_ok_and(|c| c.starts_with(root)))
    };
    let mut inputs = Vec::new();
    let mut stdin_seen = false;
    for path in paths {
        if path.as_os_str() == "-" {
            if stdin_seen {
                bail!("stdin (-) can only be added once");
            }
            stdin_seen = true;
            inputs.push(Input {
                source: Source::Stdin,
                shown: "-".into(),
            });
            continue;
        }
        // metadata() follows symbolic links: a link named on the command line is followed.
        let meta = fs::metadata(path).with_context(|| format!("cannot add {}", path.display()))?;
        if inside_container(path) {
            bail!(
                "cannot add {}: it is inside the container itself",
                path.display()
            );
        }
        if meta.is_dir() {
            walk(path, root, &mut inputs, quiet)?;
        } else if meta.is_file() || is_fifo(&meta) {
            inputs.push(Input::file(path.clone()));
        } else {
            bail!(
                "cannot add {}: not a regular file or folder",
                path.display()
            );
        }
    }
    Ok(inputs)
}

/// A named pipe, as made by the shell for `rsdos add <(command)`: read like a file.
#[cfg(unix)]
fn is_fifo(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    meta.file_type().is_fifo()
}

#[cfg(not(unix))]
fn is_fifo(_meta: &fs::Metadata) -> bool {
    false
}

/// Appends the regular files under `dir`, depth-first in sorted name order. Symbolic links
/// are not followed (they could loop or lead out of the tree) and special files (sockets,
/// pipes, devices) have no content to store; both are skipped with a note.
fn walk(dir: &Path, root: Option<&Path>, inputs: &mut Vec<Input>, quiet: bool) -> Result<()> {
    // Entries still to visit, the next one last: a folder's children are pushed in reverse
    // sorted order, so each sub-folder is walked fully before its next sibling. An explicit
    // stack, as a deep tree must not overflow the call stack.
    let mut stack = vec![(dir.to_path_buf(), true)];
    while let Some((path, is_dir)) = stack.pop() {
        if !is_dir {
            inputs.push(Input::file(path));
            continue;
        }
        let mut entries = fs::read_dir(&path)
            .and_then(|it| it.collect::<io::Result<Vec<_>>>())
            .with_context(|| format!("cannot list {}", path.display()))?;
        entries.sort_by_key(|e| e.file_name());
        let mut children = Vec::with_capacity(entries.len());
        for entry in entries {
            let path = entry.path();
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot stat {}", path.display()))?;
            if kind.is_file() {
                children.push((path, false));
            } else if kind.is_dir() {
                if root.is_some_and(|root| fs::canonicalize(&path).is_ok_and(|c| c == root)) {
                    note(
                        quiet,
                        format_args!("skipped {}: the container itself", path.display()),
                    );
                } else {
                    children.push((path, true));
                }
            } else if kind.is_symlink() {
                note(
                    quiet,
                    format_args!(
                        "skipped {}: symbolic link (links are followed only when named on the command line)",
                        path.display()
                    ),
                );
            } else {
                note(
                    quiet,
                    format_args!("skipped {}: not a regular file", path.display()),
                );
            }
        }
        stack.extend(children.into_iter().rev());
    }
    Ok(())
}
