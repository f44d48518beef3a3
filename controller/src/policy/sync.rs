//! One task per node keeps its agent at the controller's latest desired
//! state: it pushes on every change and checks every two seconds, so an
//! agent that restarted, lost its state or was unreachable is re-synced as
//! soon as it answers again.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_api::controller::v1 as pb;
use tokio::sync::watch;

use crate::policy::state::SyncReport;

const RECHECK: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_millis(300);

async fn sync_once(
    socket: &std::path::Path,
    desired: &agent_pb::DesiredState,
) -> Result<agent_pb::AgentStatus, String> {
    let mut client = bulkhead_api::connect_unix(socket).await.map_err(|e| e.to_string())?;
    let status = client.get_status(agent_pb::StatusRequest {}).await.map_err(|s| s.message().to_string())?.into_inner();
    if status.generation == desired.generation {
        return unprotected(status);
    }
    let r = client.apply_state(desired.clone()).await.map_err(|s| format!("apply: {}", s.message()))?.into_inner();
    let status = client.get_status(agent_pb::StatusRequest {}).await.map_err(|s| s.message().to_string())?.into_inner();
    if !r.problems.is_empty() {
        let list: Vec<String> = r.problems.iter().map(|p| format!("{}: {}", p.pod, p.error)).collect();
        return Err(format!("generation {} applied, but pods are unprotected: {}", r.generation, list.join("; ")));
    }
    unprotected(status)
}

/// The status, or an error naming the endpoints the agent could not attach:
/// a node with unprotected pods is not in sync.
fn unprotected(status: agent_pb::AgentStatus) -> Result<agent_pb::AgentStatus, String> {
    let bad: Vec<String> =
        status.endpoints.iter().filter(|e| !e.attached).map(|e| format!("{}: {}", e.pod, e.error)).collect();
    if bad.is_empty() { Ok(status) } else { Err(format!("pods unprotected: {}", bad.join("; "))) }
}

/// Runs forever, keeping `node` in sync.
pub async fn run(
    node: String,
    socket: PathBuf,
    mut rx: watch::Receiver<Arc<agent_pb::DesiredState>>,
    report: SyncReport,
) {
    loop {
        let desired = rx.borrow_and_update().clone();
        let outcome = match tokio::time::timeout(Duration::from_secs(60), sync_once(&socket, &desired)).await {
            Ok(o) => o,
            Err(_) => Err("the agent did not answer within 60 s".to_string()),
        };
        let ok = outcome.is_ok();
        let entry = match outcome {
            Ok(st) => pb::NodeSync {
                node: node.clone(),
                applied_generation: st.generation,
                error: String::new(),
                endpoints: st.endpoints.len() as u32,
                policy_entries: st.policy_entries,
            },
            Err(e) => {
                tracing::warn!(%node, error = %e, "agent not in sync");
                let prev = report.lock().ok().and_then(|m| m.get(&node).cloned()).unwrap_or_default();
                pb::NodeSync { node: node.clone(), error: e, ..prev }
            }
        };
        if let Ok(mut m) = report.lock() {
            m.insert(node.clone(), entry);
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(if ok { RECHECK } else { RETRY }) => {}
        }
    }
}
