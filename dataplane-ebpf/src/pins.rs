//! Where a node's programs, maps and links live on bpffs.
//!
//! Everything is under `/sys/fs/bpf/bulkhead/<node>/`, so enforcement
//! outlives the agent and a new agent adopts it, and so one `rm -r` of that
//! directory is a complete cleanup.

use std::path::{Path, PathBuf};

use crate::error::DataplaneError;

/// Default bpffs root for all Bulkhead pins.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/bulkhead";

/// The pin directories of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinLayout {
    root: PathBuf,
}

impl PinLayout {
    /// Pins for `node` under the default root.
    pub fn for_node(node: &str) -> Self {
        Self::at(Path::new(DEFAULT_ROOT).join(node))
    }

    /// Pins under an explicit directory (tests use a unique one each).
    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The node's pin directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps, pinned by name.
    pub fn maps(&self) -> PathBuf {
        self.root.join("maps")
    }

    /// One map's pin.
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    /// Programs, by function name.
    pub fn progs(&self) -> PathBuf {
        self.root.join("progs")
    }

    /// TCX and XDP links, one per interface and hook.
    pub fn links(&self) -> PathBuf {
        self.root.join("links")
    }

    /// The link pin of `hook` on `ifindex`.
    pub fn link(&self, ifindex: u32, hook: &str) -> PathBuf {
        self.links().join(format!("{ifindex}-{hook}"))
    }

    /// Creates the directories (bpffs allows mkdir).
    pub fn create(&self) -> Result<(), DataplaneError> {
        for dir in [self.maps(), self.progs(), self.links()] {
            std::fs::create_dir_all(&dir).map_err(|source| DataplaneError::Io {
                action: "creating pin directory",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Whether maps were pinned here before (an agent ran on this node).
    pub fn exists(&self) -> bool {
        self.map("bh_endpoints").exists()
    }

    /// Removes every pin, which detaches every link and frees every map and
    /// program that nothing else holds. Used by `lab down` and tests.
    pub fn remove_all(&self) -> Result<(), DataplaneError> {
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(DataplaneError::Io { action: "removing pins", path: self.root.clone(), source }),
        }
    }
}
