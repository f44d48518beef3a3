//! Wiring: state, one sync task per agent, and the API socket.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1::controller_server::ControllerServer;
use tokio_stream::wrappers::UnixListenerStream;

use crate::error::ControllerError;
use crate::service::ControllerService;
use crate::state::{Config, State};

/// Runs the controller until SIGTERM or Ctrl-C. Agents keep enforcing the
/// last pushed state when it stops.
pub async fn run(cfg: Config) -> Result<(), ControllerError> {
    let socket = cfg.socket.clone();
    let agents = cfg.agents.clone();
    let (state, receivers) = tokio::task::spawn_blocking(move || State::open(cfg))
        .await
        .map_err(|e| ControllerError::Serve { what: "startup", message: e.to_string() })??;
    let report = state.sync.clone();
    for (node, rx) in receivers {
        if let Some(sock) = agents.get(&node) {
            tokio::spawn(crate::sync::run(node, sock.clone(), rx, report.clone()));
        }
    }
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ControllerError::Io {
            action: "creating socket dir",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).map_err(|source| ControllerError::Io {
        action: "binding API socket",
        path: socket.clone(),
        source,
    })?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| ControllerError::Io { action: "restricting API socket", path: socket.clone(), source })?;
    tracing::info!(socket = %socket.display(), "controller serving");
    let service = ControllerService { state: Arc::new(Mutex::new(state)) };
    let shutdown = async {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("shutting down; agents keep the last state");
    };
    tonic::transport::Server::builder()
        .add_service(ControllerServer::new(service).max_decoding_message_size(64 * 1024 * 1024))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| ControllerError::Serve { what: "gRPC", message: e.to_string() })
}
