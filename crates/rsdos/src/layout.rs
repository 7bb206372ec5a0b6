//! Names of the files and folders of a container (disk-objectstore's layout).

use std::path::{Path, PathBuf};

/// `config.json`.
pub(crate) const CONFIG: &str = "config.json";
/// `loose/`.
pub(crate) const LOOSE: &str = "loose";
/// `packs/`.
pub(crate) const PACKS: &str = "packs";
/// `packs.idx`.
pub(crate) const INDEX: &str = "packs.idx";
/// `sandbox/`.
pub(crate) const SANDBOX: &str = "sandbox";
/// `duplicates/`.
pub(crate) const DUPLICATES: &str = "duplicates";
/// rsdos's maintenance lock (ignored by disk-objectstore).
pub(crate) const MAINTENANCE_LOCK: &str = "rsdos.lock";

/// The paths of one container folder.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    pub(crate) fn config(&self) -> PathBuf {
        self.root.join(CONFIG)
    }
    pub(crate) fn loose(&self) -> PathBuf {
        self.root.join(LOOSE)
    }
    pub(crate) fn packs(&self) -> PathBuf {
        self.root.join(PACKS)
    }
    pub(crate) fn index(&self) -> PathBuf {
        self.root.join(INDEX)
    }
    pub(crate) fn sandbox(&self) -> PathBuf {
        self.root.join(SANDBOX)
    }
    pub(crate) fn duplicates(&self) -> PathBuf {
        self.root.join(DUPLICATES)
    }
    pub(crate) fn maintenance_lock(&self) -> PathBuf {
        self.root.join(MAINTENANCE_LOCK)
    }
}
