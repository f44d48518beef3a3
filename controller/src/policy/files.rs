//! The controller's state files: written whole through a sibling and a
//! rename, so a crash leaves the old file or the new one, never half of
//! either; decisions are synced to disk before they are answered.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::ControllerError;

/// A JSON state file, or `T::default()` when there is none yet.
pub fn read_json<T: DeserializeOwned + Default>(path: &Path) -> Result<T, ControllerError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| ControllerError::StateFile { path: path.to_path_buf(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(ControllerError::Io { action: "reading", path: path.to_path_buf(), source }),
    }
}

/// Writes a file as [`write_atomic`] does, synced to disk before the
/// rename: a decision saved this way is durable once this returns.
pub fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), ControllerError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ControllerError::Io { action, path, source }
    };
    let mut f = std::fs::File::create(&tmp).map_err(io("writing", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_data().map_err(io("syncing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io("renaming", path))
}

/// Writes a file by writing a sibling and renaming it over.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ControllerError> {
    let tmp: PathBuf = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|source| ControllerError::Io {
        action: "writing",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, path).map_err(|source| ControllerError::Io {
        action: "renaming",
        path: path.to_path_buf(),
        source,
    })
}
