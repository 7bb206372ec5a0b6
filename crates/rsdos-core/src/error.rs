//! The one error type of the rsdos libraries.

use std::path::PathBuf;

/// Result with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, for callers that branch on the cause (the CLI's exit codes, the Python
/// module's exception classes). Match on this rather than on [`Error`]'s variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object (or pack) does not exist.
    NotFound,
    /// A hashkey is not a lowercase hex digest of the container's hash type.
    InvalidHashkey,
    /// `config.json` (or a configuration value) is invalid.
    InvalidConfig,
    /// The folder is not an initialised container.
    NotInitialised,
    /// Something that must not exist already does (init on a non-empty folder).
    AlreadyExists,
    /// Stored data does not match what the index or the hash says.
    Corrupt,
    /// An operating-system I/O error.
    Io,
    /// The index database failed.
    Index,
    /// A lock is held by someone else.
    Locked,
    /// The caller passed an invalid argument.
    InvalidArgument,
    /// The operation was interrupted on request.
    Interrupted,
    /// The operation is not supported by this backend or configuration.
    Unsupported,
}

/// An error of an rsdos library, carrying what failed and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object is in neither the loose folder nor the index.
    #[error("object {hashkey} not found")]
    NotFound {
        /// The hashkey that was looked up.
        hashkey: String,
    },
    /// The pack file does not exist.
    #[error("pack {pack_id} not found")]
    PackNotFound {
        /// The missing pack.
        pack_id: u64,
    },
    /// A hashkey argument is malformed.
    #[error("invalid hashkey {hashkey:?}: {reason}")]
    InvalidHashkey {
        /// The offending value (as given).
        hashkey: String,
        /// Why it is rejected.
        reason: String,
    },
    /// The configuration is invalid.
    #[error("invalid configuration{}: {detail}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Config {
        /// The file it was read from, if any.
        path: Option<PathBuf>,
        /// What is wrong.
        detail: String,
    },
    /// The folder is not a container.
    #[error("not a container: {} ({detail}); run `rsdos init` to create one", path.display())]
    NotInitialised {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// Something exists that must not.
    #[error("{}: {detail}", path.display())]
    AlreadyExists {
        /// The path that exists.
        path: PathBuf,
        /// Why that is a problem.
        detail: String,
    },
    /// Stored data is inconsistent.
    #[error("corrupt {what} ({location}): {detail}")]
    Corrupt {
        /// What kind of thing is corrupt ("packed object", "loose object", "pack", ...).
        what: &'static str,
        /// Where (hashkey, pack id and offset, path).
        location: String,
        /// What was found.
        detail: String,
    },
    /// An I/O error on a path.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// The operation ("open", "read", "fsync", ...).
        op: &'static str,
        /// The path it was applied to.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// Reading the input of an object being stored failed (the caller's stream, not ours).
    #[error("cannot read the input of the object being stored")]
    Input {
        /// The error of the input stream.
        #[source]
        source: std::io::Error,
    },
    /// The index database failed.
    #[error("index {}: {detail}", path.display())]
    Index {
        /// The database file.
        path: PathBuf,
        /// What was attempted.
        detail: String,
        /// The database error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A lock is held by another process or thread.
    #[error("{what} is locked{}: {hint}", holder.map(|p| format!(" by process {p}")).unwrap_or_default())]
    Locked {
        /// What is locked (a path).
        what: String,
        /// The pid holding it, if known.
        holder: Option<u32>,
        /// What to do about it.
        hint: String,
    },
    /// An argument is invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// Stopped on request (Ctrl-C, a progress callback asking to stop).
    #[error("interrupted")]
    Interrupted,
    /// Not supported here.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::PackNotFound { .. } => ErrorKind::NotFound,
            Error::InvalidHashkey { .. } => ErrorKind::InvalidHashkey,
            Error::Config { .. } => ErrorKind::InvalidConfig,
            Error::NotInitialised { .. } => ErrorKind::NotInitialised,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { .. } | Error::Input { .. } => ErrorKind::Io,
            Error::Index { .. } => ErrorKind::Index,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Interrupted => ErrorKind::Interrupted,
            Error::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// Builds an [`Error::Io`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(
        what: &'static str,
        location: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            what,
            location: location.into(),
            detail: detail.into(),
        }
    }

    /// True if this is an I/O error whose OS error is "no such file or directory".
    pub fn is_os_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// True if this is an I/O error caused by a full disk or exhausted quota.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull
            || source.kind() == std::io::ErrorKind::QuotaExceeded)
    }
}

impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        let kind = match e.kind() {
            ErrorKind::NotFound => std::io::ErrorKind::NotFound,
            ErrorKind::Corrupt => std::io::ErrorKind::InvalidData,
            ErrorKind::InvalidArgument | ErrorKind::InvalidHashkey => {
                std::io::ErrorKind::InvalidInput
            }
            ErrorKind::Interrupted => std::io::ErrorKind::Interrupted,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}
