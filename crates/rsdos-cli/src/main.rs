//! `rsdos`: the command line of the rsdos object store.
//!
//! This file only parses the arguments, dispatches to one module per command under `cmd/`,
//! and turns the outcome into an exit status, so that every command has the same error
//! behaviour:
//!
//! - 0: success (including a reader closing our stdout early, as in `rsdos ls | head`);
//! - 1: reserved for checks that ran and found problems (no command uses it yet);
//! - 2: an error (bad usage, missing container, unknown object, I/O failure...), printed to
//!   stderr as `error: ...` with the whole chain of causes.

mod cmd;
mod output;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A fast content-addressed object store, on-disk compatible with AiiDA's disk-objectstore.
#[derive(Debug, Parser)]
#[command(
    name = "rsdos",
    version,
    after_help = "Example: rsdos -p /data/store init && rsdos -p /data/store add files/"
)]
struct Cli {
    /// The container folder [default: $RSDOS_PATH, else $DOSTORE_PATH, else ./dostore].
    #[arg(short, long, global = true, env = "RSDOS_PATH", value_name = "PATH")]
    path: Option<PathBuf>,

    /// Print less: no progress lines, only summaries and errors.
    #[arg(short, long, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new, empty container.
    Init(cmd::init::InitArgs),
    /// Add files, folders (recursively) or stdin to the container.
    Add(cmd::add::AddArgs),
    /// Write the content of an object to stdout or a file.
    Cat(cmd::cat::CatArgs),
    /// List the hashkeys of the container, optionally with where each object is stored.
    Ls(cmd::ls::LsArgs),
    /// Show the container's configuration, object counts and sizes.
    Status(cmd::status::StatusArgs),
}

/// Exit status of a command that failed.
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` come here too, with exit code 0; usage errors with 2.
            // Printing ignores a closed stdout (`rsdos --help | head -1`).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(EXIT_ERROR));
        }
    };
    let global = cmd::Global::new(cli.path, cli.quiet);
    let result = match cli.command {
        Command::Init(args) => cmd::init::run(&global, args),
        Command::Add(args) => cmd::add::run(&global, args),
        Command::Cat(args) => cmd::cat::run(&global, args),
        Command::Ls(args) => cmd::ls::run(&global, args),
        Command::Status(args) => cmd::status::run(&global, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Whoever read our output has seen enough: not an error (ripgrep does the same).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
