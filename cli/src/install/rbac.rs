//! CRDs, ServiceAccounts and least-privilege RBAC: the controller may list
//! and watch what it compiles and create the reviews that authenticate API
//! callers, nothing else; the agent talks to no API server at all. Bulkhead's
//! own roles are verbs on a virtual resource, bound like any permission.

use anyhow::{Context, Result};
use bulkhead_controller::auth::kubernetes::{GROUP, RESOURCE};
use bulkhead_model::Role;
use bulkhead_policy::cluster::BulkheadClusterPolicy;
use bulkhead_policy::quarantine::Quarantine;
use kube_core::CustomResourceExt;
use serde_json::{Value, json};

use super::{labels, meta};

/// Bulkhead's CRDs, generated from the Rust types (as `deploy/crds/` is).
/// sig-network's ClusterNetworkPolicy CRD is upstream's, not printed here.
pub fn crds() -> Result<Vec<Value>> {
    [BulkheadClusterPolicy::crd(), Quarantine::crd()]
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(crd).context("rendering a CRD")?;
            v["metadata"]["labels"] = json!({ "app.kubernetes.io/part-of": "bulkhead" });
            Ok(v)
        })
        .collect()
}

/// What the controller reads: exactly the kinds its watchers list and watch.
fn controller_rules() -> Value {
    json!([
        { "apiGroups": [""], "resources": ["namespaces", "nodes", "pods", "services"], "verbs": ["list", "watch"] },
        { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"] },
        { "apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies", "ingresses"], "verbs": ["list", "watch"] },
        { "apiGroups": [GROUP], "resources": ["bulkheadclusterpolicies", "quarantines"], "verbs": ["list", "watch"] },
        // sig-network's ClusterNetworkPolicy, when its CRD is installed.
        { "apiGroups": ["policy.networking.k8s.io"], "resources": ["clusternetworkpolicies"], "verbs": ["list", "watch"] },
        // Retired bulkhead.dev/v1alpha1 ClusterNetworkPolicies left after an
        // upgrade, reported in the status until they are migrated.
        { "apiGroups": [GROUP], "resources": ["clusternetworkpolicies"], "verbs": ["list"] },
        // Who an API caller is, and which Bulkhead role they hold.
        { "apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"] },
        { "apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"] },
    ])
}

/// ServiceAccounts, the controller's ClusterRole and binding, and one
/// ClusterRole per Bulkhead role for operators to bind.
pub fn objects(namespace: &str) -> Vec<Value> {
    let mut out = vec![
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta("bulkhead-agent", namespace, "agent"),
            // The agent gets its desired state from the controller, never from the API server.
            "automountServiceAccountToken": false,
        }),
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta("bulkhead-controller", namespace, "controller"),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": { "name": "bulkhead-controller", "labels": labels("controller") },
            "rules": controller_rules(),
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": { "name": "bulkhead-controller", "labels": labels("controller") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "bulkhead-controller" },
            "subjects": [{ "kind": "ServiceAccount", "name": "bulkhead-controller", "namespace": namespace }],
        }),
    ];
    for role in Role::ALL {
        out.push(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": format!("bulkhead-{}", role.as_str()),
                "labels": labels("rbac"),
                "annotations": {
                    "bulkhead.dev/description": format!(
                        "Bind with a ClusterRoleBinding for every namespace, or a RoleBinding for one tenant's: grants the Bulkhead API's {} role.",
                        role.as_str()
                    ),
                },
            },
            "rules": [{ "apiGroups": [GROUP], "resources": [RESOURCE], "verbs": [role.as_str()] }],
        }));
    }
    out
}

/// With `--ha`: the controller's Lease and state ConfigMap, and a label on
/// its own two pods, in its own namespace only. `create` cannot name its object (RBAC has no name before
/// it exists); reads and updates name exactly the two.
pub fn leader_election(namespace: &str) -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta("bulkhead-controller-leader", namespace, "controller"),
            "rules": [
                { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"] },
                { "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [bulkhead_controller::ha::lease::DEFAULT_LEASE], "verbs": ["get", "update"] },
                { "apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"] },
                { "apiGroups": [""], "resources": ["configmaps"], "resourceNames": [bulkhead_controller::ha::persist::DEFAULT_STATE], "verbs": ["get", "update"] },
                // Each replica labels its own pod as the leader or not (the StatefulSet's two names).
                { "apiGroups": [""], "resources": ["pods"], "resourceNames": ["bulkhead-controller-0", "bulkhead-controller-1"], "verbs": ["patch"] },
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("bulkhead-controller-leader", namespace, "controller"),
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "bulkhead-controller-leader" },
            "subjects": [{ "kind": "ServiceAccount", "name": "bulkhead-controller", "namespace": namespace }],
        }),
    ]
}
