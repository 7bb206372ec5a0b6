//! The subcommands, one module each, and what they share: the resolved global options and
//! opening the container.

pub mod add;
pub mod cat;
pub mod init;
pub mod ls;
pub mod status;

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use rsdos::Container;

/// The folder used when neither `--path` nor an environment variable names one; the same
/// default as disk-objectstore's `dostore`, so both tools find the same container.
const DEFAULT_PATH: &str = "dostore";

/// Options that apply to every command.
#[derive(Debug, Clone)]
pub struct Global {
    /// The container folder, as the user spelled it (messages show it that way).
    pub path: PathBuf,
    /// Print only summaries and errors.
    pub quiet: bool,
}

impl Global {
    /// Resolves the container path: `--path` (or `$RSDOS_PATH`, which clap reads), else
    /// `$DOSTORE_PATH` (so scripts written for disk-objectstore's CLI keep working), else
    /// `./dostore`. Empty values count as unset, as an empty path names no folder.
    pub fn new(path: Option<PathBuf>, quiet: bool) -> Self {
        let path = path
            .filter(|p| !p.as_os_str().is_empty())
            .or_else(|| {
                std::env::var_os("DOSTORE_PATH")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(OsString::from(DEFAULT_PATH)));
        Global { path, quiet }
    }

    /// Opens the container. The library's errors already name the folder, and when it is not
    /// a container they say to run `rsdos init`, so they are passed on unchanged.
    pub fn open(&self) -> Result<Container> {
        Ok(Container::open(&self.path)?)
    }
}
