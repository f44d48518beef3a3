//! `bulkhead uninstall --node-cleanup`: a DaemonSet, in a namespace of its
//! own, whose pods detach Bulkhead from every node once the agents are
//! gone (`bulkhead node-cleanup`). An init container does the work, so a
//! pod is Ready only once its node is clean, and `kubectl rollout status`
//! says when every node is.

use serde_json::{Value, json};

use super::{labels, meta, selector};

/// The namespace the cleanup runs in.
pub const NAMESPACE: &str = "bulkhead-cleanup";

/// The cleanup's Namespace, its deny-all NetworkPolicy and the DaemonSet.
pub fn objects(image: &str, pull: &str) -> Vec<Value> {
    let container = |name: &str, wait: bool| {
        let mut args = vec!["node-cleanup"];
        if wait {
            args.push("--wait");
        }
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": pull,
            "args": args,
            "env": [{ "name": "BULKHEAD_NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }],
            "resources": { "requests": { "cpu": "10m", "memory": "16Mi" }, "limits": { "cpu": "100m", "memory": "64Mi" } },
            "securityContext": {
                "privileged": false,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                // Unlinking root-owned pins needs uid 0, and no capability.
                "runAsUser": 0,
                "capabilities": { "drop": ["ALL"] },
                "seccompProfile": { "type": "RuntimeDefault" },
                "appArmorProfile": { "type": "Unconfined" },
            },
            "volumeMounts": [{ "name": "bpffs", "mountPath": "/sys/fs/bpf" }],
        })
    };
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": { "app.kubernetes.io/part-of": "bulkhead", "pod-security.kubernetes.io/enforce": "privileged" },
            },
        }),
        // The cleanup needs no network at all.
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("bulkhead-node-cleanup", NAMESPACE, "node-cleanup"),
            "spec": { "podSelector": {}, "policyTypes": ["Ingress", "Egress"] },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta("bulkhead-node-cleanup", NAMESPACE, "node-cleanup"),
            "spec": {
                "selector": { "matchLabels": selector("node-cleanup") },
                "template": {
                    "metadata": { "labels": labels("node-cleanup") },
                    "spec": {
                        "automountServiceAccountToken": false,
                        "tolerations": [{ "operator": "Exists" }],
                        "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                        "initContainers": [container("cleanup", false)],
                        "containers": [container("done", true)],
                        "volumes": [{ "name": "bpffs", "hostPath": { "path": "/sys/fs/bpf", "type": "Directory" } }],
                    },
                },
            },
        }),
    ]
}
