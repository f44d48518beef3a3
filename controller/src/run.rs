//! Wiring: state, one sync task per agent, and the API socket.

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1::controller_server::ControllerServer;
use tokio_stream::wrappers::UnixListenerStream;

use crate::error::ControllerError;
use crate::service::ControllerService;
use crate::state::{Config, State};

/// Feeds the Kubernetes API's changes to the state, in batches of whatever
/// arrived together, so a burst of pod events compiles once.
pub async fn watch_kubernetes(client: kube::Client, state: Arc<Mutex<State>>) {
    use futures::StreamExt;
    let mut stream = Box::pin(crate::kubernetes::updates(client).ready_chunks(1024));
    while let Some(chunk) = stream.next().await {
        let mut batch = Vec::new();
        for item in chunk {
            match item {
                Ok(u) => batch.push(u),
                Err(e) => tracing::warn!(error = %e, "Kubernetes watch (retrying)"),
            }
        }
        if batch.is_empty() {
            continue;
        }
        let state = state.clone();
        let result =
            tokio::task::spawn_blocking(move || state.lock().map(|mut s| s.ingest(batch)).map_err(|_| ())).await;
        match result {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "Kubernetes changes refused; the last good state stays"),
            Ok(Err(())) | Err(_) => {
                tracing::error!("controller state unavailable; stopping the Kubernetes watch");
                return;
            }
            Ok(Ok(Ok(_))) => {}
        }
    }
}

/// Runs the controller until SIGTERM or Ctrl-C. Agents keep enforcing the
/// last pushed state when it stops.
pub async fn run(cfg: Config) -> Result<(), ControllerError> {
    let socket = cfg.socket.clone();
    let agents = cfg.agents.clone();
    let kubernetes = cfg.kubernetes;
    let metrics_addr = cfg.metrics_addr;
    let (state, receivers) = tokio::task::spawn_blocking(move || State::open(cfg))
        .await
        .map_err(|e| ControllerError::Serve { what: "startup", message: e.to_string() })??;
    let report = state.sync.clone();
    let state = Arc::new(Mutex::new(state));
    if let Some(addr) = metrics_addr {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, state).await {
                tracing::error!(%addr, error = %e, "metrics listener");
            }
        });
    }
    if kubernetes {
        let client = kube::Client::try_default().await.map_err(|e| ControllerError::Watch {
            kind: "API server",
            message: format!("no Kubernetes client configuration: {e}"),
        })?;
        tokio::spawn(watch_kubernetes(client, state.clone()));
    }
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
    let service = ControllerService { state };
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
