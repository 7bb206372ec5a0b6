//! `rsdos`: the command line of the rsdos object store.
//!
//! This file only parses the arguments, dispatches to one module per command under `cmd/`,
//! and turns the outcome into an exit status, so that every command has the same error
//! behaviour:
//!
//! - 0: success (including a reader closing our stdout early, as in `rsdos ls | head`);
//! - 1: a check ran and found problems (`validate` found a corrupt object, `has` or `meta` a
//!   missing one, `pack` a loose file that does not match its name...); the command has
//!   printed what it found;
//! - 2: an error (bad usage, missing container, unknown object, I/O failure...), printed to
//!   stderr as `error: ...` with the whole chain of causes, and a `hint:` where there is a
//!   likely fix;
//! - 130: stopped by Ctrl-C (128 + SIGINT, as a shell reports a process killed by it). The
//!   long operations stop at a safe point: what they committed is kept, nothing is
//!   half-written, and running the command again finishes the job.

mod cmd;
mod output;
mod progress;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use rsdos::ErrorKind;

use crate::cmd::Outcome;

/// A fast content-addressed object store, on-disk compatible with AiiDA's disk-objectstore.
#[derive(Debug, Parser)]
#[command(
    name = "rsdos",
    version,
    after_help = "Example: rsdos -p /data/store init && rsdos -p /data/store add files/\n\n\
                  Exit status: 0 success, 1 a check found problems, 2 an error, 130 interrupted."
)]
struct Cli {
    /// The container folder [default: $RSDOS_PATH, else $DOSTORE_PATH, else ./dostore].
    #[arg(short, long, global = true, env = "RSDOS_PATH", value_name = "PATH")]
    path: Option<PathBuf>,

    /// Print less: no progress bars or notes, only summaries, warnings and errors.
    #[arg(short, long, global = true)]
    quiet: bool,

    /// A service option of the container's remote pack storage, for this run only
    /// (repeatable): the credentials not stored at `init`, e.g. `--remote-option
    /// secret_access_key=...` (the services' environment variables work too). Never written
    /// to disk.
    #[arg(long = "remote-option", global = true, value_name = "KEY=VALUE",
          value_parser = cmd::parse_key_value)]
    remote_options: Vec<(String, String)>,

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
    #[command(visible_alias = "get")]
    Cat(cmd::cat::CatArgs),
    /// List the hashkeys of the container, optionally with where each object is stored.
    Ls(cmd::ls::LsArgs),
    /// Tell whether objects are in the container (exit 1 if any is not).
    Has(cmd::has::HasArgs),
    /// Show where and how objects are stored (exit 1 if any is missing).
    Meta(cmd::meta::MetaArgs),
    /// Delete objects.
    #[command(visible_alias = "delete")]
    Rm(cmd::rm::RmArgs),
    /// Show the container's configuration, object counts and sizes.
    Status(cmd::status::StatusArgs),
    /// Move loose objects into packs.
    Pack(cmd::pack::PackArgs),
    /// Rewrite packs without the bytes of deleted objects, optionally changing compression.
    Repack(cmd::repack::RepackArgs),
    /// Delete loose copies of packed objects, resolve duplicates, sweep old sandbox files.
    Clean(cmd::clean::CleanArgs),
    /// Re-hash every object and report every problem (exit 1 if any).
    Validate(cmd::validate::ValidateArgs),
    /// Back the container up into a folder, incrementally (as `dostore backup`).
    Backup(cmd::backup::BackupArgs),
    /// Copy objects from another container into this one.
    Import(cmd::import::ImportArgs),
    /// Recompress the container with zstd (disk-objectstore cannot read the result).
    Migrate(cmd::migrate::MigrateArgs),
    /// Recreate a lost or damaged packs.idx from the packs' sidecars.
    RebuildIndex(cmd::rebuild_index::RebuildIndexArgs),
    /// Make a local container from remote pack storage alone (config, index snapshot, sidecars).
    Clone(cmd::remote::CloneArgs),
    /// Upload the packs of a remote container that wait for upload, and snapshot its index.
    Upload(cmd::remote::UploadArgs),
    /// dostore spelling: create a new container (`init` with `-a/--algorithm`).
    Create(cmd::init::CreateArgs),
    /// dostore spelling: add files as loose objects, printing `<hashkey>: <path>`.
    AddFiles(cmd::add::AddFilesArgs),
    /// dostore spelling: pack all loose objects, clean and vacuum, in one go.
    Optimize(cmd::optimize::OptimizeArgs),
    /// Pack loose objects automatically, in the foreground, until SIGTERM or Ctrl-C.
    Daemon(cmd::daemon::DaemonArgs),
    /// Print a shell completion script.
    Completions(cmd::completions::CompletionsArgs),
}

/// Exit status of a check that found problems.
const EXIT_PROBLEMS: u8 = 1;
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
    let global = cmd::Global::new(cli.path, cli.quiet, cli.remote_options);
    let done = |r: anyhow::Result<()>| r.map(|()| Outcome::Done);
    let result = match cli.command {
        Command::Init(args) => done(cmd::init::run(&global, args)),
        Command::Add(args) => done(cmd::add::run(&global, args)),
        Command::Cat(args) => done(cmd::cat::run(&global, args)),
        Command::Ls(args) => done(cmd::ls::run(&global, args)),
        Command::Has(args) => cmd::has::run(&global, args),
        Command::Meta(args) => cmd::meta::run(&global, args),
        Command::Rm(args) => done(cmd::rm::run(&global, args)),
        Command::Status(args) => done(cmd::status::run(&global, args)),
        Command::Pack(args) => cmd::pack::run(&global, args),
        Command::Repack(args) => done(cmd::repack::run(&global, args)),
        Command::Clean(args) => cmd::clean::run(&global, args),
        Command::Validate(args) => cmd::validate::run(&global, args),
        Command::Backup(args) => done(cmd::backup::run(&global, args)),
        Command::Import(args) => cmd::import::run(&global, args),
        Command::Migrate(args) => done(cmd::migrate::run(&global, args)),
        Command::RebuildIndex(args) => cmd::rebuild_index::run(&global, args),
        Command::Clone(args) => cmd::remote::run_clone(&global, args),
        Command::Upload(args) => cmd::remote::run_upload(&global, args),
        Command::Create(args) => done(cmd::init::run_create(&global, args)),
        Command::AddFiles(args) => done(cmd::add::run_add_files(&global, args)),
        Command::Optimize(args) => cmd::optimize::run(&global, args),
        Command::Daemon(args) => done(cmd::daemon::run(&global, args)),
        Command::Completions(args) => done(cmd::completions::run(args, Cli::command())),
    };
    progress::abandon();
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(EXIT_PROBLEMS),
        // Whoever read our output has seen enough: not an error (ripgrep does the same).
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if error_kind(&e) == Some(ErrorKind::Interrupted) => {
            let _ = writeln!(
                std::io::stderr(),
                "interrupted; nothing half-written: what was done is kept, and running the \
                 command again finishes the job"
            );
            ExitCode::from(progress::EXIT_INTERRUPTED)
        }
        Err(e) => {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "error: {e:#}");
            // A message that already names the `rsdos` command to run needs no hint.
            if let Some(hint) = hint(&e).filter(|_| !format!("{e:#}").contains("`rsdos ")) {
                let _ = writeln!(err, "hint: {hint}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// The kind of the first library error in the chain, if any.
fn error_kind(e: &anyhow::Error) -> Option<ErrorKind> {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<rsdos::Error>())
        .map(rsdos::Error::kind)
}

/// A likely fix for the error, where the message itself does not already say it.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    let full = e.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        }) || cause
            .downcast_ref::<rsdos::Error>()
            .is_some_and(rsdos::Error::is_storage_full)
    });
    if full {
        return Some(
            "the disk is full: free some space, or choose another destination, and run the command again",
        );
    }
    match error_kind(e)? {
        ErrorKind::Index => Some(
            "if packs.idx is damaged or was lost, `rsdos rebuild-index` recreates it from the packs",
        ),
        ErrorKind::Corrupt => {
            Some("`rsdos validate --verbose` lists every damaged object of the container")
        }
        _ => None,
    }
}
