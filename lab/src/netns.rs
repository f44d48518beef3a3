//! The lab's named network namespaces (iproute2's `/var/run/netns`), and
//! entering one through the shared helper of `bulkhead_cni::netns`.

use std::path::{Path, PathBuf};

use crate::error::LabError;

/// Path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

/// Moves the calling thread into the namespace at `path`. Sockets created
/// afterwards on this thread live there.
pub fn enter(path: &Path) -> Result<(), LabError> {
    bulkhead_cni::netns::enter(path)
        .map_err(|source| LabError::Netns { path: path.to_path_buf(), source: Box::new(source) })
}

/// Enters the namespace at `path` and returns a single-threaded runtime
/// whose sockets live there (a multi-threaded one would spread work to
/// threads that never entered it).
pub fn runtime_in(path: &Path) -> Result<tokio::runtime::Runtime, LabError> {
    enter(path)?;
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|source| LabError::Io {
        action: "starting a runtime in netns",
        path: path.to_path_buf(),
        source,
    })
}

/// Whether a named namespace exists.
pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Names of every namespace whose name starts with `prefix`.
pub fn list(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}
