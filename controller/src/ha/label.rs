//! Which replica the Services send traffic to: the leader labels its own
//! pod `bulkhead.dev/leader: "true"`, a standby `"false"` (a pod keeps its
//! labels across restarts, so a former leader must say it no longer leads).
//! Both replicas stay ready, so drains and rolling updates proceed; the
//! Services of the API, the console and the agents port select the label.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

use crate::error::ControllerError;

/// The label the Services select.
pub const LABEL: &str = "bulkhead.dev/leader";
/// How long to wait between attempts.
const RETRY: Duration = Duration::from_secs(2);

/// Labels pod `name` in `namespace` as the leader or not, asking until the
/// API server takes it. A pod that does not exist (a replica run outside
/// Kubernetes) has nothing to label: that is said once and not an error.
pub async fn mark(client: &kube::Client, namespace: &str, name: &str, leader: bool) -> Result<(), ControllerError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({ "metadata": { "labels": { LABEL: if leader { "true" } else { "false" } } } });
    let mut attempts = 0u32;
    loop {
        match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                tracing::warn!(
                    pod = name,
                    "no such pod to label as the leader or not: Services cannot follow the Lease"
                );
                return Ok(());
            }
            Err(e) => {
                attempts += 1;
                tracing::warn!(pod = name, error = %e, attempts, "labelling this replica's pod; asking again");
                if attempts >= 30 {
                    return Err(ControllerError::Leadership { message: format!("labelling pod {name}: {e}") });
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
