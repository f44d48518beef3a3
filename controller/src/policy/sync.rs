//! Keeping each node's agent at the controller's latest desired state, as
//! a reconcile loop: `reconcile` compares what the agent enforces with what
//! it should and pushes the difference; its typed error feeds the metrics
//! and the backoff. A change is pushed at once; an agent in sync is checked
//! again every two seconds, so one that restarted, lost its state or was
//! unreachable is re-synced as soon as it answers.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_api::v1::status::{NodeSync, UnprotectedPod};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::policy::state::{NodeReport, SyncReport};

/// How often an agent in sync is checked again.
const RECHECK: Duration = Duration::from_secs(2);
/// The first retry after a failure; doubled on each failure in a row.
const RETRY_FIRST: Duration = Duration::from_millis(300);
/// The longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How long one reconcile may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What to do after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Check again after this long, or earlier if the desired state changes.
    Requeue(Duration),
}

/// Why a node is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The agent's socket could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The agent did not report its status.
    #[error("{0}")]
    Status(String),
    /// The agent refused or failed the desired state.
    #[error("apply: {0}")]
    Apply(String),
    /// The state is applied, but some pods could not be protected.
    #[error("generation {generation} applied, but pods are unprotected: {pods}")]
    Unprotected {
        /// The generation applied.
        generation: u64,
        /// "namespace/pod: why", semicolon-separated.
        pods: String,
    },
    /// The agent did not answer in time.
    #[error("the agent did not answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

impl SyncError {
    /// Short stable label, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Status(_) => "status",
            Self::Apply(_) => "apply",
            Self::Unprotected { .. } => "unprotected",
            Self::Timeout(_) => "timeout",
        }
    }
}

/// One node's agent, as the sync loop sees it.
#[derive(Debug, Clone)]
pub struct NodeAgent {
    /// Node name.
    pub node: String,
    /// How the agent is reached.
    pub directory: Arc<crate::agents::Directory>,
}

fn unprotected(status: &agent_pb::AgentStatus, node: &str) -> Vec<UnprotectedPod> {
    status
        .endpoints
        .iter()
        .filter(|e| !e.attached)
        .map(|e| UnprotectedPod { pod: e.pod.clone(), node: node.to_string(), reason: e.error.clone() })
        .collect()
}

fn listed(pods: &[UnprotectedPod]) -> String {
    pods.iter().map(|p| format!("{}: {}", p.pod, p.reason)).collect::<Vec<_>>().join("; ")
}

async fn push(agent: &NodeAgent, desired: &agent_pb::DesiredState) -> Result<agent_pb::AgentStatus, SyncError> {
    let channel = agent.directory.channel(&agent.node).await.map_err(|e| SyncError::Connect(e.to_string()))?;
    let mut client = bulkhead_api::agent::v1::agent_client::AgentClient::new(channel)
        .max_decoding_message_size(256 * 1024 * 1024)
        .max_encoding_message_size(256 * 1024 * 1024);
    let status = |s: tonic::Status| SyncError::Status(s.message().to_string());
    let current = client.get_status(agent_pb::StatusRequest {}).await.map_err(status)?.into_inner();
    if current.generation == desired.generation {
        return Ok(current);
    }
    let r =
        client.apply_state(desired.clone()).await.map_err(|s| SyncError::Apply(s.message().to_string()))?.into_inner();
    let after = client.get_status(agent_pb::StatusRequest {}).await.map_err(status)?.into_inner();
    if !r.problems.is_empty() {
        let pods: Vec<String> = r.problems.iter().map(|p| format!("{}: {}", p.pod, p.error)).collect();
        return Err(SyncError::Unprotected { generation: r.generation, pods: pods.join("; ") });
    }
    Ok(after)
}

/// Brings `agent` to `desired` and records what it found in `report`.
pub async fn reconcile(
    agent: &NodeAgent,
    desired: &agent_pb::DesiredState,
    report: &SyncReport,
) -> Result<Action, SyncError> {
    let outcome = match tokio::time::timeout(TIMEOUT, push(agent, desired)).await {
        Ok(o) => o,
        Err(_) => Err(SyncError::Timeout(TIMEOUT)),
    };
    if outcome.is_err() {
        agent.directory.forget(&agent.node);
    }
    let entry = match &outcome {
        Ok(st) => {
            let pods = unprotected(st, &agent.node);
            let error = if pods.is_empty() { String::new() } else { format!("pods unprotected: {}", listed(&pods)) };
            NodeReport {
                sync: NodeSync {
                    node: agent.node.clone(),
                    applied_generation: st.generation,
                    in_sync: error.is_empty() && st.generation == desired.generation,
                    error,
                    endpoints: st.endpoints.len() as u32,
                    policy_entries: st.policy_entries,
                },
                unprotected: pods,
                sockets: crate::policy::listening::from_status(&agent.node, st),
            }
        }
        Err(e) => {
            let prev = report.lock().ok().and_then(|m| m.get(&agent.node).cloned()).unwrap_or_default();
            NodeReport {
                sync: NodeSync { node: agent.node.clone(), in_sync: false, error: e.to_string(), ..prev.sync },
                unprotected: prev.unprotected,
                sockets: prev.sockets,
            }
        }
    };
    let clean = entry.sync.error.is_empty();
    if let Ok(mut m) = report.lock() {
        m.insert(agent.node.clone(), entry);
    }
    outcome?;
    if !clean {
        // The agent answered, but a pod is unprotected: not in sync, check again soon.
        return Err(SyncError::Unprotected { generation: desired.generation, pods: String::new() });
    }
    Ok(Action::Requeue(RECHECK))
}

/// The wait before retry number `failures` (from 1).
pub fn backoff(failures: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(10)).min(RETRY_MAX)
}

/// Resolves when the node's link changes; never, for a fixed socket.
pub async fn relinked(link: &mut Option<watch::Receiver<u64>>) {
    match link {
        Some(rx) => {
            if rx.changed().await.is_err() {
                *link = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending::<()>().await,
    }
}

/// Runs forever, keeping `agent` in sync with what `rx` holds.
pub async fn run(
    agent: NodeAgent,
    mut rx: watch::Receiver<Arc<agent_pb::DesiredState>>,
    report: SyncReport,
    metrics: Arc<Metrics>,
) {
    let mut failures = 0u32;
    // Wakes the loop when the agent dials in again, so a rejoin waits for no backoff.
    let mut link = agent.directory.watch(&agent.node);
    loop {
        let desired = rx.borrow_and_update().clone();
        let wait = match reconcile(&agent, &desired, &report).await {
            Ok(Action::Requeue(after)) => {
                failures = 0;
                metrics.record_sync(&agent.node, Ok(()));
                after
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(node = %agent.node, error = %e, failures, "agent not in sync");
                metrics.record_sync(&agent.node, Err(e.label()));
                backoff(failures)
            }
        };
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
            _ = relinked(&mut link) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_exponentially_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(300));
        assert_eq!(backoff(2), Duration::from_millis(600));
        assert_eq!(backoff(4), Duration::from_millis(2400));
        assert_eq!(backoff(20), RETRY_MAX);
    }
}
