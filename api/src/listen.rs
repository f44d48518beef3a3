//! The server side of the Unix sockets clients reach through `unix_channel`:
//! the agent and the controller each serve their API on a root-only socket
//! and stop on SIGTERM or Ctrl-C.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// A socket could not be made ready: what was being done, and where.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct ListenError {
    /// What was being done, e.g. "binding socket".
    pub action: &'static str,
    /// The socket or its directory.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Binds `path` (creating its directory, replacing a stale socket) and
/// restricts it to its owner: enforcement-changing calls only come through it.
pub fn root_only_listener(path: &Path) -> Result<UnixListener, ListenError> {
    let err = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ListenError { action, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err("creating socket dir", dir))?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(err("binding socket", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err("restricting socket", path))?;
    Ok(listener)
}

/// Returns on SIGTERM or Ctrl-C (at once if signals cannot be watched).
pub async fn shutdown_signal() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
