//! `rsdos completions SHELL`: print a completion script for bash, zsh, fish, elvish or
//! PowerShell, generated from the same definitions as the argument parser.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use clap_complete::Shell;

use crate::output;

/// Arguments of `rsdos completions`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example: rsdos completions bash > ~/.local/share/bash-completion/completions/rsdos\n         rsdos completions zsh > ~/.zfunc/_rsdos\n         rsdos completions fish > ~/.config/fish/completions/rsdos.fish"
)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Prints the script for `command` (the whole `rsdos` command line).
pub fn run(args: CompletionsArgs, mut command: clap::Command) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rsdos", &mut script);
    let mut out = output::stdout();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}
