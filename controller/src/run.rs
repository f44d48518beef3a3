//! Wiring: state, one sync task per agent, and the API socket.

use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1::controller_server::ControllerServer;
use tokio_stream::wrappers::UnixListenerStream;

use crate::error::ControllerError;
use crate::policy::state::{Config, State};
use crate::service::ControllerService;

/// Feeds the Kubernetes API's changes to the state, in batches of whatever
/// arrived together, so a burst of pod events compiles once.
pub async fn watch_kubernetes(client: kube::Client, state: Arc<Mutex<State>>) {
    use futures::StreamExt;
    let mut stream = Box::pin(crate::policy::kubernetes::updates(client).ready_chunks(1024));
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

/// Keeps the flow pipeline's inventory history at the committed model.
async fn follow_inventory(
    mut models: tokio::sync::watch::Receiver<Arc<crate::policy::store::Model>>,
    flows: Arc<Mutex<crate::observation::flows::Pipeline>>,
) {
    loop {
        let model = models.borrow_and_update().clone();
        let f = flows.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(mut p) = f.lock() {
                p.update_inventory(&model);
            }
        })
        .await;
        if models.changed().await.is_err() {
            return;
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
    let learning = cfg.learning;
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| ControllerError::Io {
        action: "creating state dir",
        path: cfg.state_dir.clone(),
        source,
    })?;
    let store = crate::observation::storage::SqliteStorage::open(&cfg.state_dir.join("flows.db"), cfg.max_flows)?;
    let pipeline = crate::observation::flows::Pipeline::open(Box::new(store), learning)?;
    let (state, receivers) = tokio::task::spawn_blocking(move || State::open(cfg))
        .await
        .map_err(|e| ControllerError::Serve { what: "startup", message: e.to_string() })??;
    let report = state.sync.clone();
    let state = Arc::new(Mutex::new(state));
    if kubernetes {
        let client = kube::Client::try_default().await.map_err(|e| ControllerError::Watch {
            kind: "API server",
            message: format!("no Kubernetes client configuration: {e}"),
        })?;
        tokio::spawn(watch_kubernetes(client, state.clone()));
    }
    let flows = Arc::new(Mutex::new(pipeline));
    let mut models = state
        .lock()
        .map(|s| s.models())
        .map_err(|_| ControllerError::Serve { what: "startup", message: "controller state lock poisoned".into() })?;
    // Before any flow is read: buffered flows are enriched with it.
    if let Ok(mut p) = flows.lock() {
        p.update_inventory(&models.borrow_and_update());
    }
    tokio::spawn(follow_inventory(models, flows.clone()));
    if let Some(addr) = metrics_addr {
        let (state, flows) = (state.clone(), flows.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, state, flows).await {
                tracing::error!(%addr, error = %e, "metrics listener");
            }
        });
    }

    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(crate::observation::flows::collect::worker(flows.clone(), rx, std::time::Duration::from_secs(1)));
    let collecting = crate::observation::flows::collect::CollectReport::default();
    for (node, rx) in receivers {
        if let Some(sock) = agents.get(&node) {
            tokio::spawn(crate::policy::sync::run(node.clone(), sock.clone(), rx, report.clone()));
            tokio::spawn(crate::observation::flows::collect::run(
                node,
                sock.clone(),
                flows.clone(),
                tx.clone(),
                collecting.clone(),
            ));
        }
    }
    drop(tx);
    let listener = bulkhead_api::listen::root_only_listener(&socket).map_err(|e| ControllerError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })?;
    tracing::info!(socket = %socket.display(), "controller serving");
    let service = ControllerService { state, flows, learning };
    let shutdown = async {
        bulkhead_api::listen::shutdown_signal().await;
        tracing::info!("shutting down; agents keep the last state");
    };
    tonic::transport::Server::builder()
        .add_service(ControllerServer::new(service).max_decoding_message_size(64 * 1024 * 1024))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| ControllerError::Serve { what: "gRPC", message: e.to_string() })
}
