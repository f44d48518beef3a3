//! NetworkPolicies for Bulkhead's own namespace: nothing in or out but the
//! API (authenticated), the agents port (mTLS), metrics for the monitoring namespace, and the
//! controller's calls to DNS, the API server and alert webhooks. The agents
//! run in the host network, which NetworkPolicy does not govern.

use serde_json::{Value, json};

use super::{AGENTS_PORT, API_PORT, CONTROLLER_METRICS_PORT, InstallArgs, meta, selector};

/// The namespace's policies.
pub fn objects(a: &InstallArgs) -> Vec<Value> {
    let ns = &a.namespace;
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("bulkhead-default-deny", ns, "network"),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
        }),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("bulkhead-controller", ns, "network"),
            "spec": {
                "podSelector": { "matchLabels": selector("controller") },
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    // The API and console: every caller authenticates with a token.
                    { "ports": [{ "protocol": "TCP", "port": API_PORT }] },
                    // Agents dial from their nodes' addresses (host network): mTLS decides.
                    { "ports": [{ "protocol": "TCP", "port": AGENTS_PORT }] },
                    {
                        "from": [{ "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": a.metrics_namespace } } }],
                        "ports": [{ "protocol": "TCP", "port": CONTROLLER_METRICS_PORT }],
                    },
                ],
                "egress": [
                    { "ports": [{ "protocol": "UDP", "port": 53 }, { "protocol": "TCP", "port": 53 }] },
                    // The Kubernetes API server (its address differs per cluster) and HTTPS alert webhooks.
                    { "ports": [{ "protocol": "TCP", "port": 443 }, { "protocol": "TCP", "port": 6443 }] },
                ],
            },
        }),
    ]
}
