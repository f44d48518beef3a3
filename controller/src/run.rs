//! Wiring: the context, one sync task and one flow reader per agent (on
//! this host's sockets, or registered on the agents port), the Kubernetes
//! watchers, metrics, the gRPC socket and the HTTP API.

use std::sync::{Arc, Mutex};

use bulkhead_api::controller::v1::controller_server::ControllerServer;
use tokio_stream::wrappers::UnixListenerStream;

use crate::auth::Authenticator;
use crate::context::Context;
use crate::error::ControllerError;
use crate::grpc::Grpc;
use crate::policy::state::{Config, State};
use crate::policy::sync::NodeAgent;
use crate::service::Service;

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

/// Looks for retired `bulkhead.dev/v1alpha1` ClusterNetworkPolicies every
/// five minutes, so the status names each until it is migrated.
pub async fn watch_retired(client: kube::Client, state: Arc<Mutex<State>>) {
    loop {
        match crate::policy::kubernetes::retired_policies(client.clone()).await {
            Ok(names) => {
                for n in &names {
                    tracing::error!("{}", crate::policy::kubernetes::retired_warning(n));
                }
                if let Ok(mut s) = state.lock() {
                    s.set_retired(names);
                }
            }
            Err(e) => tracing::warn!(error = %e, "looking for retired ClusterNetworkPolicies"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(300)).await;
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

/// Starts each node's sync task and flow reader: at start for the agents
/// on this host, and when a network agent registers for the first time.
struct NodeTasks {
    ctx: Arc<Context>,
    queue: tokio::sync::mpsc::Sender<crate::observation::flows::collect::NodeBatch>,
    collecting: crate::observation::flows::collect::CollectReport,
}

impl NodeTasks {
    fn start(&self, node: String, rx: crate::policy::state::DesiredRx) {
        let ctx = &self.ctx;
        let agent = NodeAgent { node: node.clone(), directory: ctx.directory.clone() };
        tokio::spawn(crate::policy::sync::run(agent, rx, ctx.nodes.clone(), ctx.metrics.clone()));
        tokio::spawn(crate::observation::flows::collect::run(
            node,
            ctx.directory.clone(),
            ctx.observation.clone(),
            self.queue.clone(),
            self.collecting.clone(),
        ));
    }

    /// A node whose agent registered: its desired state, then its tasks.
    async fn join(&self, node: String) {
        let name = node.clone();
        match self.ctx.with_policy(move |s| s.join(&name)).await {
            Ok(rx) => {
                tracing::info!(%node, "node joined: syncing and reading its flows");
                self.start(node, rx);
            }
            Err(e) => tracing::error!(%node, error = %e, "a registered node's desired state"),
        }
    }
}

fn startup(message: impl std::fmt::Display) -> ControllerError {
    ControllerError::Serve { what: "startup", message: message.to_string() }
}

/// The context of a controller with `cfg` (state and flow store opened from
/// its state dir, the tokens file loaded), and each node's desired-state
/// channel for its sync task. What `run` serves; tests build it directly.
pub fn open(
    cfg: Config,
) -> Result<(Arc<Context>, std::collections::BTreeMap<String, crate::policy::state::DesiredRx>), ControllerError> {
    let directory = Arc::new(crate::agents::Directory::with_sockets(&cfg.agents));
    let learning = cfg.learning;
    let tokens_path = cfg.api.as_ref().and_then(|a| a.tokens.clone());
    std::fs::create_dir_all(&cfg.state_dir).map_err(|source| ControllerError::Io {
        action: "creating state dir",
        path: cfg.state_dir.clone(),
        source,
    })?;
    let audit = bulkhead_api::audit::AuditLog::new(&cfg.state_dir.join("audit.log"));
    let store = crate::observation::storage::SqliteStorage::open(&cfg.state_dir.join("flows.db"), cfg.max_flows)?;
    let pipeline = crate::observation::flows::Pipeline::open(Box::new(store), learning)?;
    let (state, receivers) = State::open(cfg)?;
    let mut auth = Authenticator::default();
    if let Some(path) = tokens_path {
        let tokens = crate::auth::tokens::TokenSource::load(&path).map_err(startup)?;
        tracing::info!(path = %path.display(), holders = tokens.len(), "API tokens loaded");
        auth.tokens = Some(tokens);
    }
    let ctx = Context {
        nodes: state.sync.clone(),
        metrics: state.metrics(),
        desk: state.desk().clone(),
        policy: Arc::new(Mutex::new(state)),
        stream: pipeline.stream(),
        stream_epoch: crate::observation::flows::now_ns().max(1) as u64,
        observation: Arc::new(Mutex::new(pipeline)),
        directory,
        audit,
        auth,
        learning,
        leadership: crate::ha::Leadership::Leader,
    };
    Ok((Arc::new(ctx), receivers))
}

/// Runs the controller until SIGTERM or Ctrl-C. Agents keep enforcing the
/// last pushed state when it stops. `api` is the HTTP API's listener, bound
/// by the caller (before it entered another network namespace).
pub async fn run(cfg: Config, api: Option<std::net::TcpListener>) -> Result<(), ControllerError> {
    let socket = cfg.socket.clone();
    let kubernetes = cfg.kubernetes;
    let metrics_addr = cfg.metrics_addr;
    let api_cfg = cfg.api.clone();
    let response = cfg.response.clone();
    let agent_listen = cfg.agent_listen.clone();
    let kube_client = match kubernetes {
        true => Some(kube::Client::try_default().await.map_err(|e| ControllerError::Watch {
            kind: "API server",
            message: format!("no Kubernetes client configuration: {e}"),
        })?),
        false => None,
    };
    let ha = match (&cfg.ha, &kube_client) {
        (Some(_), Some(_)) if !cfg.agents.is_empty() => {
            return Err(startup(
                "--ha takes agents on the agents port only: a standby must not push to --agent sockets",
            ));
        }
        (Some(ha), Some(client)) => Some(lead_or_stand_by(ha, client, &cfg.state_dir).await?),
        (Some(_), None) => return Err(startup("--ha needs the Kubernetes API (--kubernetes)")),
        (None, _) => None,
    };
    let (ctx, receivers) = tokio::task::spawn_blocking(move || open(cfg)).await.map_err(startup)??;
    let ctx = if let Some(client) = &kube_client {
        tokio::spawn(watch_kubernetes(client.clone(), ctx.policy.clone()));
        tokio::spawn(watch_retired(client.clone(), ctx.policy.clone()));
        let mut ctx = Arc::try_unwrap(ctx).map_err(|_| startup("context shared before start"))?;
        ctx.auth.kubernetes = Some(crate::auth::kubernetes::KubernetesAuth::new(client.clone(), Vec::new()));
        if let Some((_, leadership)) = &ha {
            ctx.leadership = leadership.clone();
        }
        Arc::new(ctx)
    } else {
        ctx
    };
    let leader = ctx.leadership.is_leader();
    let policy = ctx.policy.clone();
    let mut models = policy.lock().map(|s| s.models()).map_err(|_| startup("controller state lock poisoned"))?;
    // Before any flow is read: buffered flows are enriched with it.
    if let Ok(mut p) = ctx.observation.lock() {
        p.update_inventory(&models.borrow_and_update());
    }
    tokio::spawn(follow_inventory(models, ctx.observation.clone()));
    if let Some(addr) = metrics_addr {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, ctx).await {
                tracing::error!(%addr, error = %e, "metrics listener");
            }
        });
    }

    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(crate::observation::flows::collect::worker(
        ctx.observation.clone(),
        rx,
        std::time::Duration::from_secs(1),
    ));
    let tasks = NodeTasks { ctx: ctx.clone(), queue: tx, collecting: Default::default() };
    for (node, rx) in receivers {
        tasks.start(node, rx);
    }
    if let Some(listen) = agent_listen.filter(|_| leader) {
        let acceptor = crate::agents::listen::acceptor(&listen)?;
        let revoked = listen.revoked.as_deref().map(crate::agents::revoked::RevocationFile::open).transpose()?;
        let listener = tokio::net::TcpListener::bind(listen.addr).await.map_err(|source| ControllerError::Io {
            action: "binding the agents port",
            path: listen.addr.to_string().into(),
            source,
        })?;
        tracing::info!(addr = %listen.addr, revoked = revoked.as_ref().map_or(0, |r| r.current().len()), "agents port listening");
        let tasks = Arc::new(tasks);
        let on_first: crate::agents::listen::OnFirst = Arc::new(move |node: String| {
            let tasks = tasks.clone();
            tokio::spawn(async move { tasks.join(node).await });
        });
        let enroller = match (&listen.enroll, &kube_client) {
            (Some(cfg), Some(client)) => {
                Some(Arc::new(crate::agents::enroll::Enroller::new(cfg.clone(), &listen.ca, client.clone())?))
            }
            (Some(_), None) => return Err(startup("agent enrollment needs the Kubernetes API (--kubernetes)")),
            (None, _) => None,
        };
        let serving = crate::agents::listen::Serving {
            acceptor,
            revoked,
            enroller,
            directory: ctx.directory.clone(),
            audit: ctx.audit.clone(),
            on_first,
        };
        tokio::spawn(crate::agents::listen::serve(listener, serving));
    }
    tokio::spawn(expire_blocks(ctx.clone()));
    let service = Service::new(ctx);
    let api_url = match (&api_cfg, &api) {
        (Some(cfg), Some(l)) => {
            l.local_addr().ok().map(|a| format!("{}://{a}", if cfg.tls.is_some() { "https" } else { "http" }))
        }
        _ => None,
    };
    tokio::spawn(crate::response::run(service.clone(), response, api_url));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if let (Some(cfg), Some(listener)) = (api_cfg, api) {
        let service = service.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let shutdown = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = crate::http::serve(cfg, listener, service, shutdown).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        });
    }
    let listener = bulkhead_api::listen::root_only_listener(&socket).map_err(|e| ControllerError::Io {
        action: e.action,
        path: e.path,
        source: e.source,
    })?;
    tracing::info!(socket = %socket.display(), "controller serving");
    if let Some((elector, leadership)) = ha {
        tokio::spawn(async move {
            let next = elector.until_changed(&leadership).await;
            // At once, not gracefully: an old leader must not push, accept
            // agents or write the cluster's copy for one more moment. Every
            // decision is already synced to disk; agents keep enforcing.
            tracing::error!(was = %leadership, now = %next, "leadership changed: exiting, so the restart starts from the cluster's state");
            std::process::exit(ROLE_CHANGED_EXIT);
        });
    }
    let shutdown = async {
        bulkhead_api::listen::shutdown_signal().await;
        tracing::info!("shutting down; agents keep the last state");
        let _ = stop_tx.send(true);
    };
    tonic::transport::Server::builder()
        .add_service(
            ControllerServer::new(Grpc::new(service))
                .max_decoding_message_size(64 * 1024 * 1024)
                .max_encoding_message_size(64 * 1024 * 1024),
        )
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| ControllerError::Serve { what: "gRPC", message: e.to_string() })
}

/// The exit status of a replica whose role changed (it restarts in the new one).
pub const ROLE_CHANGED_EXIT: i32 = 75;

/// Takes part in the election before anything opens: a leader first writes
/// the cluster's copy of the state into its state directory, then keeps
/// the copy current; a standby opens what it has, to serve reads.
async fn lead_or_stand_by(
    ha: &crate::ha::HaConfig,
    client: &kube::Client,
    state_dir: &std::path::Path,
) -> Result<(crate::ha::Elector, crate::ha::Leadership), ControllerError> {
    let elector = crate::ha::Elector::new(client.clone(), &ha.namespace, &ha.lease, &ha.identity);
    let leadership = elector.first().await;
    tracing::info!(identity = %ha.identity, lease = %ha.lease, %leadership, "controller role");
    crate::ha::label::mark(client, &ha.namespace, &ha.identity, leadership.is_leader()).await?;
    if leadership.is_leader() {
        let state = crate::ha::ClusterState::new(client.clone(), &ha.namespace, &ha.state);
        match state.load().await? {
            Some(copy) => {
                let n = crate::ha::persist::adopt(state_dir, &copy)?;
                tracing::info!(files = n, configmap = %ha.state, "adopted the cluster's copy of the state");
            }
            None => {
                tracing::info!(configmap = %ha.state, "no copy of the state in the cluster yet: starting from this replica's")
            }
        }
        tokio::spawn(crate::ha::persist::follow(state, crate::ha::HaConfig::files(state_dir)));
    }
    Ok((elector, leadership))
}

/// Ends blocks whose time is up, once a second. The agents lift them on
/// their own clocks as well; this records it, audits it and pushes the list.
async fn expire_blocks(ctx: Arc<Context>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(e) = ctx.with_policy(|s| s.expire_blocks()).await {
            tracing::error!(error = %e, "expiring blocks");
        }
    }
}
