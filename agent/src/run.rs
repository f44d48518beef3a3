//! Wiring: node, flow pump, sweep, metrics, the gRPC socket and the
//! connection to the controller.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_api::agent::v1::agent_server::AgentServer;
use bulkhead_dataplane::FlowReader;
use tokio_stream::wrappers::UnixListenerStream;

use crate::config::AgentConfig;
use crate::error::AgentError;
use crate::flows::FlowHub;
use crate::metrics::Metrics;
use crate::node::Node;
use crate::service::AgentService;

/// Runs the agent until SIGINT/SIGTERM. Exiting leaves enforcement in place (fail static).
pub async fn run(cfg: AgentConfig) -> Result<(), AgentError> {
    let socket = cfg.socket.clone();
    let metrics_addr = cfg.metrics_addr;
    let history = cfg.flow_history;
    let pins = cfg.pins.clone();
    let listener_scan = cfg.listener_scan;
    let uplink = cfg.controller.clone();
    // Before anything is attached: bad certificate files stop the start.
    let dialer = uplink.as_ref().map(crate::uplink::dialer).transpose()?;
    let node_name = cfg.node.clone();
    let node = Arc::new(Mutex::new(
        tokio::task::spawn_blocking(move || Node::start(cfg))
            .await
            .map_err(|e| AgentError::Serve { what: "startup", message: e.to_string() })??,
    ));
    let hub = Arc::new(FlowHub::new(history));
    let metrics = Arc::new(Metrics::new());

    let mut reader = FlowReader::open(&pins)?;
    {
        let (node, hub) = (node.clone(), hub.clone());
        tokio::spawn(async move {
            loop {
                match reader.next_batch().await {
                    Ok((events, bad)) => {
                        let enricher = match node.lock() {
                            Ok(n) => n.enricher(),
                            Err(_) => return,
                        };
                        for ev in &events {
                            hub.publish(enricher.flow(ev));
                        }
                        hub.undecodable.fetch_add(bad, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "flow ring");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
    }
    tokio::spawn(crate::sweep::run(node.clone(), hub.clone(), Duration::from_secs(2)));
    if let Some(every) = listener_scan {
        let book = node
            .lock()
            .map(|n| n.listeners())
            .map_err(|_| AgentError::Serve { what: "startup", message: "node lock poisoned".into() })?;
        tokio::spawn(crate::listeners::run(node.clone(), book, every));
    }
    if let Some(addr) = metrics_addr {
        let (node, hub, metrics) = (node.clone(), hub.clone(), metrics.clone());
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, node, hub, metrics).await {
                tracing::error!(%addr, error = %e, "metrics listener");
            }
        });
    }

    let listener = bulkhead_api::listen::root_only_listener(&socket).map_err(|e| AgentError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })?;
    tracing::info!(socket = %socket.display(), "agent serving");
    metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);

    let quarantines = node
        .lock()
        .map(|n| n.quarantines())
        .map_err(|_| AgentError::Serve { what: "startup", message: "node lock poisoned".into() })?;
    let service = AgentService { node, quarantines, hub, metrics, allowed_uids: Vec::new() };
    let shutdown = async {
        bulkhead_api::listen::shutdown_signal().await;
        tracing::info!("shutting down; enforcement stays pinned");
    };
    let server = AgentServer::new(service).max_decoding_message_size(256 * 1024 * 1024);
    if let (Some(up), Some(dialer)) = (uplink, dialer) {
        tracing::info!(controller = %up.addr, "dialing the controller");
        tokio::spawn(crate::uplink::run(up, node_name, dialer, tonic::service::Routes::new(server.clone())));
    }
    tonic::transport::Server::builder()
        .add_service(server)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| AgentError::Serve { what: "gRPC", message: e.to_string() })
}
