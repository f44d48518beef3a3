//! The one thing every operation is handed (kube-rs `controller-rs`
//! style): the policy side, the quarantines and the observation side
//! behind their locks,
//! the live flow stream, the nodes' sync reports, the agent directory for
//! the quarantine fast path, the audit log, metrics, and the authenticator.

use std::sync::{Arc, Mutex};

use bulkhead_api::agent::v1::agent_client::AgentClient;
use bulkhead_api::audit::AuditLog;
use bulkhead_api::ring::SeqRing;
use bulkhead_api::v1::status::Status;
use bulkhead_graph::FlowRecord;
use bulkhead_graph::baseline::LearningConfig;
use tonic::transport::Channel;

use crate::auth::Authenticator;
use crate::error::ControllerError;
use crate::metrics::Metrics;
use crate::observation::flows::Pipeline;
use crate::policy::quarantine::desk::Desk;
use crate::policy::state::{State, SyncReport};

/// Shared by every operation, transport and background task.
pub struct Context {
    /// The policy side: objects, model, compilation, desired state.
    pub policy: Arc<Mutex<State>>,
    /// The quarantines, behind their own lock, so a cut never waits for
    /// the policy side.
    pub desk: Desk,
    /// The observation side: flows, graph, baselines, storage, review.
    pub observation: Arc<Mutex<Pipeline>>,
    /// Every enriched flow, numbered, for live readers.
    pub stream: Arc<SeqRing<FlowRecord>>,
    /// Identifies this controller run's stream numbering (its start time).
    pub stream_epoch: u64,
    /// What each node's sync task last found.
    pub nodes: SyncReport,
    /// How each node's agent is reached: its socket, or the connection it dialed.
    pub directory: Arc<crate::agents::Directory>,
    /// Every enforcement change and every refusal.
    pub audit: AuditLog,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Verifies the HTTP API's bearer tokens.
    pub auth: Authenticator,
    /// The baselines' learning window (what-if replays it).
    pub learning: LearningConfig,
    /// Whether this replica leads (fixed for the process: a change exits it).
    pub leadership: crate::ha::Leadership,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("agents", &self.directory).field("auth", &self.auth).finish_non_exhaustive()
    }
}

/// Runs `f` on what `m` guards, off the async threads: both sides can be
/// held through compiles and store reads.
async fn locked<S: Send + 'static, T: Send + 'static>(
    m: Arc<Mutex<S>>,
    what: &'static str,
    f: impl FnOnce(&mut S) -> Result<T, ControllerError> + Send + 'static,
) -> Result<T, ControllerError> {
    tokio::task::spawn_blocking(move || {
        let mut guard = m
            .lock()
            .map_err(|_| ControllerError::Serve { what, message: "lock poisoned by an earlier panic".into() })?;
        f(&mut guard)
    })
    .await
    .map_err(|e| ControllerError::Serve { what, message: format!("worker failed: {e}") })?
}

impl Context {
    /// Runs `f` on the policy side.
    pub async fn with_policy<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, ControllerError> {
        locked(self.policy.clone(), "controller state", f).await
    }

    /// Runs `f` on the quarantine desk, off the async threads (a decision
    /// is synced to disk there while the agents enforce it).
    pub async fn with_desk<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Desk) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, ControllerError> {
        let desk = self.desk.clone();
        tokio::task::spawn_blocking(move || f(&desk))
            .await
            .map_err(|e| ControllerError::Serve { what: "quarantine book", message: format!("worker failed: {e}") })?
    }

    /// The generation `node`'s agent last reported it enforces.
    pub fn node_generation(&self, node: &str) -> Option<u64> {
        self.nodes.lock().ok()?.get(node).map(|r| r.sync.applied_generation)
    }

    /// Runs `f` on the observation side.
    pub async fn with_observation<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Pipeline) -> Result<T, ControllerError> + Send + 'static,
    ) -> Result<T, ControllerError> {
        locked(self.observation.clone(), "flow pipeline", f).await
    }

    /// A client of `node`'s agent, over the channel the directory holds.
    pub async fn agent(&self, node: &str) -> Result<AgentClient<Channel>, String> {
        let channel = self.directory.channel(node).await.map_err(|e| e.to_string())?;
        Ok(AgentClient::new(channel))
    }

    /// Drops the channel to `node`'s agent after a failure: the next call reconnects.
    pub fn forget_agent(&self, node: &str) {
        self.directory.forget(node);
    }

    /// The whole status: the policy side's, with the flow pipeline's counters.
    pub async fn status(&self) -> Result<Status, ControllerError> {
        let mut st = self.with_policy(|s| Ok(s.status())).await?;
        st.flows = self.with_observation(|p| Ok(p.stats().clone())).await?;
        Ok(st)
    }
}
