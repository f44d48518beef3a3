//! The agent DaemonSet: on every node, in the host's network namespace,
//! with only the capabilities loading, attaching and entering pod network
//! namespaces need (CAP_PERFMON is not among them: the e2e test
//! `install::the_agent_loads…` runs the agent with exactly this set). A rolling update keeps enforcement: programs and maps
//! stay pinned while the agent is replaced (fail static), and the new one
//! adopts them. It reaches the controller's agents port over mTLS, with a
//! certificate the controller signs for the node its pod-bound token names.

use serde_json::{Value, json};

use bulkhead_controller::agents::enroll::AUDIENCE;

use super::{AGENT_METRICS_PORT, AGENTS_PORT, InstallArgs, TLS_SECRET, labels, meta, selector};

/// Where the agent's enrollment token and the CA that verifies the controller are mounted.
pub(super) const IDENTITY_DIR: &str = "/var/run/secrets/bulkhead";

/// Why each privilege is there, written above it in the printed manifest.
pub const REASONS: [(&str, &str); 10] = [
    (
        "hostNetwork: true",
        "The agent attaches to pods' host-side interfaces and the node's uplinks: it must see the host's links.",
    ),
    ("- BPF", "CAP_BPF: load the programs and create, pin and update the bh_* maps."),
    ("- NET_ADMIN", "CAP_NET_ADMIN: attach tc and XDP programs to interfaces, read links and routes."),
    (
        "- SYS_ADMIN",
        "CAP_SYS_ADMIN: setns() into a pod's network namespace to read its listening sockets (the exposure report).\nRemove it, with --listener-scan-interval=0 in args, if you do not want that.",
    ),
    (
        "runAsUser: 0",
        "Capabilities are effective only for root in the container (Kubernetes sets no ambient capabilities).",
    ),
    (
        "type: Unconfined",
        "The runtime's default AppArmor profile denies writes under /sys/fs/bpf, where the agent pins.",
    ),
    ("- mountPath: /sys/fs/bpf", "Pins outlive the agent pod: enforcement continues through restarts and upgrades."),
    ("- mountPath: /var/run/netns", "The pods' network namespaces, as the container runtime bind-mounts them."),
    ("- mountPath: /var/lib/bulkhead", "The last applied state and the node's audit log, kept across restarts."),
    (
        "- serviceAccountToken:",
        "A token bound to this pod, for the controller only (its audience): the API server's review of it names\nthe node, and the controller signs a certificate for that node alone. The agent holds no other credential.",
    ),
];

/// The agent's only credential: a token bound to its pod for the
/// controller's audience, beside the CA that verifies the controller.
fn identity_volume() -> Value {
    let token = json!({ "serviceAccountToken": { "audience": AUDIENCE, "expirationSeconds": 3600, "path": "token" } });
    let ca = json!({ "secret": { "name": TLS_SECRET, "items": [{ "key": "ca.crt", "path": "ca.crt" }] } });
    json!({ "name": "identity", "projected": { "defaultMode": 0o400, "sources": [token, ca] } })
}

/// The agent's command line: its state, its probes' address, and the controller it dials.
fn args(a: &InstallArgs) -> Vec<String> {
    vec![
        "agent".into(),
        "--state-dir=/var/lib/bulkhead/agent".into(),
        "--socket=/run/bulkhead/agent.sock".into(),
        format!("--metrics-addr=$(BULKHEAD_HOST_IP):{AGENT_METRICS_PORT}"),
        format!("--controller=bulkhead-controller.{}.svc:{AGENTS_PORT}", a.namespace),
        format!("--controller-ca={IDENTITY_DIR}/ca.crt"),
        format!("--enroll-token={IDENTITY_DIR}/token"),
    ]
}

/// Where the agent's volumes are mounted (each host mount's reason is in [`REASONS`]).
fn mounts() -> Value {
    json!([
        { "name": "bpffs", "mountPath": "/sys/fs/bpf", "mountPropagation": "HostToContainer" },
        { "name": "netns", "mountPath": "/var/run/netns", "mountPropagation": "HostToContainer", "readOnly": true },
        { "name": "state", "mountPath": "/var/lib/bulkhead" },
        { "name": "run", "mountPath": "/run/bulkhead" },
        { "name": "tmp", "mountPath": "/tmp" },
        { "name": "identity", "mountPath": IDENTITY_DIR, "readOnly": true },
    ])
}

/// The host paths the agent needs, its scratch space and its identity.
fn volumes() -> Value {
    let host = |name: &str, path: &str, kind: &str| json!({ "name": name, "hostPath": { "path": path, "type": kind } });
    json!([
        host("bpffs", "/sys/fs/bpf", "Directory"),
        host("netns", "/var/run/netns", "DirectoryOrCreate"),
        host("state", "/var/lib/bulkhead", "DirectoryOrCreate"),
        { "name": "run", "emptyDir": { "medium": "Memory", "sizeLimit": "16Mi" } },
        { "name": "tmp", "emptyDir": { "sizeLimit": "64Mi" } },
        identity_volume(),
    ])
}

/// The agent's DaemonSet.
pub fn daemon_set(a: &InstallArgs) -> Value {
    let probe = |path: &str, period: u32| {
        json!({
            "httpGet": { "path": path, "port": AGENT_METRICS_PORT },
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        })
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": meta("bulkhead-agent", &a.namespace, "agent"),
        "spec": {
            "selector": { "matchLabels": selector("agent") },
            "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": { "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": labels("agent") },
                "spec": {
                    "serviceAccountName": "bulkhead-agent",
                    "automountServiceAccountToken": false,
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "priorityClassName": "system-node-critical",
                    "tolerations": [{ "operator": "Exists" }],
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": { "seccompProfile": { "type": "RuntimeDefault" } },
                    "containers": [{
                        "name": "agent",
                        "image": a.image,
                        "imagePullPolicy": a.image_pull_policy,
                        "args": args(a),
                        "env": [
        { "name": "BULKHEAD_NODE", "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } },
        { "name": "BULKHEAD_HOST_IP", "valueFrom": { "fieldRef": { "fieldPath": "status.hostIP" } } },
        { "name": "RUST_LOG", "value": "info" },
                        ],
                        "ports": [{ "name": "metrics", "containerPort": AGENT_METRICS_PORT, "protocol": "TCP" }],
                        "startupProbe": { "httpGet": { "path": "/healthz", "port": AGENT_METRICS_PORT }, "periodSeconds": 2, "failureThreshold": 60 },
                        "livenessProbe": probe("/healthz", 10),
                        "readinessProbe": probe("/readyz", 5),
                        "resources": {
                            "requests": { "cpu": "100m", "memory": "128Mi" },
                            "limits": { "cpu": "1", "memory": "1Gi" },
                        },
                        "securityContext": {
                            "privileged": false,
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "runAsUser": 0,
                            "capabilities": { "drop": ["ALL"], "add": ["BPF", "NET_ADMIN", "SYS_ADMIN"] },
                            "seccompProfile": { "type": "RuntimeDefault" },
                            "appArmorProfile": { "type": "Unconfined" },
                        },
                        "volumeMounts": mounts(),
                    }],
                    "volumes": volumes(),
                },
            },
        },
    })
}
