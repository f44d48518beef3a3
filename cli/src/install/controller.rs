//! The controller: one Deployment (one writer of its state volume, so
//! `Recreate`), its Services (API, agents and metrics; the console), its state
//! volume and a PodDisruptionBudget.

use serde_json::{Value, json};

use super::{
    AGENTS_PORT, API_PORT, CA_SECRET, CONTROLLER_METRICS_PORT, InstallArgs, REVOKED_CONFIG_MAP, TLS_SECRET,
    TOKENS_SECRET, meta, selector,
};

const STATE: &str = "bulkhead-controller-state";
/// With `--ha`, the headless Service that names each replica.
const REPLICAS: &str = "bulkhead-controller-replicas";

fn args(a: &InstallArgs) -> Vec<String> {
    let mut v = vec![
        "controller".to_string(),
        format!("--cluster={}", a.cluster),
        format!("--mode={}", a.mode),
        "--kubernetes".into(),
        "--state-dir=/var/lib/bulkhead/controller".into(),
        "--socket=/run/bulkhead/controller.sock".into(),
        format!("--api-addr=0.0.0.0:{API_PORT}"),
        "--api-tls-cert=/etc/bulkhead/tls/tls.crt".into(),
        "--api-tls-key=/etc/bulkhead/tls/tls.key".into(),
        "--console-dir=/usr/share/bulkhead/console".into(),
        format!("--metrics-addr=0.0.0.0:{CONTROLLER_METRICS_PORT}"),
        // Agents dial here with mTLS; one without a certificate may only
        // enroll, with its pod's token, for the node the API server names.
        format!("--agent-listen=0.0.0.0:{AGENTS_PORT}"),
        "--agent-tls-ca=/etc/bulkhead/ca/ca.crt".into(),
        "--agent-tls-cert=/etc/bulkhead/tls/tls.crt".into(),
        "--agent-tls-key=/etc/bulkhead/tls/tls.key".into(),
        "--agent-enroll-ca-key=/etc/bulkhead/ca/ca.key".into(),
        format!("--agent-service-account={}:bulkhead-agent", a.namespace),
        "--revoked-agents=/etc/bulkhead/revoked/revoked-agents".into(),
    ];
    if a.generate_secrets {
        v.push("--tokens-file=/etc/bulkhead/tokens/tokens.yaml".into());
    }
    if a.ha {
        v.push("--ha".into());
    }
    v
}

fn volumes(a: &InstallArgs) -> (Value, Value) {
    let state = match (a.ephemeral_state, a.ha) {
        (true, _) => Some(json!({ "name": "state", "emptyDir": {} })),
        // Each replica's own, from the StatefulSet's claim template.
        (false, true) => None,
        (false, false) => Some(json!({ "name": "state", "persistentVolumeClaim": { "claimName": STATE } })),
    };
    let mut volumes: Vec<Value> = state.into_iter().collect();
    volumes.extend([
        json!({ "name": "run", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } }),
        json!({ "name": "tmp", "emptyDir": { "sizeLimit": "256Mi" } }),
        json!({ "name": "tls", "secret": { "secretName": TLS_SECRET, "defaultMode": 0o440 } }),
        json!({ "name": "ca", "secret": { "secretName": CA_SECRET, "defaultMode": 0o440 } }),
        // Optional: until the operator creates it, nobody is revoked.
        json!({ "name": "revoked", "configMap": { "name": REVOKED_CONFIG_MAP, "optional": true, "defaultMode": 0o444 } }),
    ]);
    let mut mounts = vec![
        json!({ "name": "state", "mountPath": "/var/lib/bulkhead/controller" }),
        json!({ "name": "run", "mountPath": "/run/bulkhead" }),
        json!({ "name": "tmp", "mountPath": "/tmp" }),
        json!({ "name": "tls", "mountPath": "/etc/bulkhead/tls", "readOnly": true }),
        json!({ "name": "ca", "mountPath": "/etc/bulkhead/ca", "readOnly": true }),
        json!({ "name": "revoked", "mountPath": "/etc/bulkhead/revoked", "readOnly": true }),
    ];
    if a.generate_secrets {
        volumes.push(json!({ "name": "tokens", "secret": { "secretName": TOKENS_SECRET, "defaultMode": 0o440 } }));
        mounts.push(json!({ "name": "tokens", "mountPath": "/etc/bulkhead/tokens", "readOnly": true }));
    }
    (Value::Array(volumes), Value::Array(mounts))
}

/// The controller's pod: the same for one replica and for two.
fn template(a: &InstallArgs) -> Value {
    let (volumes, mounts) = volumes(a);
    let probe = |path: &str, period: u32| {
        json!({
            "httpGet": { "path": path, "port": "metrics" },
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    let mut env = vec![json!({ "name": "RUST_LOG", "value": "info" })];
    if a.ha {
        // The Lease names each replica by its pod.
        env.push(json!({ "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }));
        env.push(
            json!({ "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } }),
        );
    }
    json!({
    "metadata": { "labels": super::labels("controller") },
    "spec": {
        "serviceAccountName": "bulkhead-controller",
        "automountServiceAccountToken": true,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "containers": [{
            "name": "controller",
            "image": a.image,
            "imagePullPolicy": a.image_pull_policy,
            "args": args(a),
            "env": env,
            "ports": [
                { "name": "https", "containerPort": API_PORT, "protocol": "TCP" },
                { "name": "agents", "containerPort": AGENTS_PORT, "protocol": "TCP" },
                { "name": "metrics", "containerPort": CONTROLLER_METRICS_PORT, "protocol": "TCP" },
            ],
            "startupProbe": { "httpGet": { "path": "/healthz", "port": "metrics" }, "periodSeconds": 2, "failureThreshold": 150 },
            "livenessProbe": probe("/healthz", 10),
            "readinessProbe": probe("/readyz", 5),
            "resources": {
                "requests": { "cpu": "200m", "memory": "512Mi" },
                "limits": { "cpu": "2", "memory": "4Gi" },
            },
            "securityContext": {
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] },
            },
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    },
    })
}

fn deployment(a: &InstallArgs) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta("bulkhead-controller", &a.namespace, "controller"),
        "spec": {
            "replicas": 1,
            // One controller writes the state volume at a time.
            "strategy": { "type": "Recreate" },
            "selector": { "matchLabels": selector("controller") },
            "template": template(a),
        },
    })
}

/// With `--ha`: two replicas, each with its own state volume; the Lease
/// decides which one leads, and only the leader is ready.
fn stateful_set(a: &InstallArgs) -> Value {
    let mut spec = json!({
        "serviceName": REPLICAS,
        "replicas": 2,
        // Both start at once: the Lease, not the order, picks the leader.
        "podManagementPolicy": "Parallel",
        "updateStrategy": { "type": "RollingUpdate" },
        "selector": { "matchLabels": selector("controller") },
        "template": template(a),
    });
    if !a.ephemeral_state {
        let mut pvc = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": a.state_size } },
        });
        if let Some(class) = &a.storage_class {
            pvc["storageClassName"] = json!(class);
        }
        spec["volumeClaimTemplates"] = json!([{ "metadata": { "name": "state" }, "spec": pvc }]);
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta("bulkhead-controller", &a.namespace, "controller"),
        "spec": spec,
    })
}

/// The controller's objects: state volume, Deployment, Services, PDB.
pub fn objects(a: &InstallArgs) -> Vec<Value> {
    let ns = &a.namespace;
    let mut out = Vec::new();
    if !a.ephemeral_state && !a.ha {
        let mut spec = json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": a.state_size } },
        });
        if let Some(class) = &a.storage_class {
            spec["storageClassName"] = json!(class);
        }
        out.push(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta(STATE, ns, "controller"),
            "spec": spec,
        }));
    }
    if a.ha {
        out.push(stateful_set(a));
        // The StatefulSet's governing Service: every replica by name, ready or not.
        out.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(REPLICAS, ns, "controller"),
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": true,
                "selector": selector("controller"),
                "ports": [{ "name": "https", "port": API_PORT, "targetPort": "https", "protocol": "TCP" }],
            },
        }));
    } else {
        out.push(deployment(a));
    }
    // With --ha, the leader's pod alone (it labels itself; both are ready).
    let mut leading = selector("controller");
    if a.ha {
        leading[bulkhead_controller::ha::label::LABEL] = json!("true");
    }
    out.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("bulkhead-controller", ns, "controller"),
        "spec": {
            "type": "ClusterIP",
            "selector": leading.clone(),
            "ports": [
                { "name": "https", "port": API_PORT, "targetPort": "https", "protocol": "TCP" },
                { "name": "agents", "port": AGENTS_PORT, "targetPort": "agents", "protocol": "TCP" },
                { "name": "metrics", "port": CONTROLLER_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP" },
            ],
        },
    }));
    out.push(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta("bulkhead-console", ns, "controller"),
        "spec": {
            "type": "ClusterIP",
            "selector": leading,
            "ports": [{ "name": "https", "port": 443, "targetPort": "https", "protocol": "TCP" }],
        },
    }));
    let pdb = if a.ha {
        // Two replicas, both ready: a drain takes one at a time, and the other takes the Lease.
        json!({ "minAvailable": 1, "selector": { "matchLabels": selector("controller") } })
    } else {
        // One replica: a drain may move it (agents keep enforcing meanwhile).
        json!({ "maxUnavailable": 1, "selector": { "matchLabels": selector("controller") } })
    };
    out.push(json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": meta("bulkhead-controller", ns, "controller"),
        "spec": pdb,
    }));
    out
}
