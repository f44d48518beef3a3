//! The Quarantine custom resource: a pod, or every pod of a workload, cut
//! off from the network both ways, over every policy. Declaring it as an
//! object lets GitOps and Kubernetes RBAC drive quarantines; the controller
//! treats it exactly like a quarantine made through its API.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Blame, PolicyError};

/// API group and version of the kind.
pub const API_VERSION: &str = "bulkhead.dev/v1alpha1";
/// The kind's name.
pub const KIND: &str = "Quarantine";

/// What to cut off and why: exactly one of `pod` and `workload`, in the
/// Quarantine's own namespace.
#[derive(kube_derive::CustomResource, Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bulkhead.dev",
    version = "v1alpha1",
    kind = "Quarantine",
    plural = "quarantines",
    shortname = "qt",
    namespaced,
    doc = "Cuts a pod, or every pod of a workload (including pods created later), off the network both ways until the object is deleted.",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Pod","type":"string","jsonPath":".spec.pod"}"#,
    printcolumn = r#"{"name":"Workload","type":"string","jsonPath":".spec.workload"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".spec.reason"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuarantineSpec {
    /// Name of the pod to cut off, in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Name of the workload (Deployment, StatefulSet, DaemonSet) whose pods to cut off, in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Why; recorded and audited.
    pub reason: String,
}

/// What a quarantine targets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// One pod, "namespace/name".
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Every pod of a workload.
    Workload {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

impl Target {
    /// The target's namespace.
    pub fn namespace(&self) -> &str {
        match self {
            Target::Pod { namespace, .. } | Target::Workload { namespace, .. } => namespace,
        }
    }

    /// The pod's or workload's name.
    pub fn name(&self) -> &str {
        match self {
            Target::Pod { name, .. } | Target::Workload { name, .. } => name,
        }
    }

    /// "pod ns/name" or "workload ns/name".
    pub fn describe(&self) -> String {
        match self {
            Target::Pod { namespace, name } => format!("pod {namespace}/{name}"),
            Target::Workload { namespace, name } => format!("workload {namespace}/{name}"),
        }
    }
}

/// Whether `s` is a DNS-1123 subdomain, as pod and workload names are.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// A validated quarantine: the target and the reason. `pod` and `workload`
/// are names in `namespace`; `blame` names the object or request in errors.
pub fn target(
    namespace: &str,
    pod: Option<&str>,
    workload: Option<&str>,
    reason: &str,
    blame: &str,
) -> Result<(Target, String), PolicyError> {
    let err = |field: &str, message: String| PolicyError::Invalid {
        object: blame.to_string(),
        field: field.to_string(),
        message,
    };
    let target = match (pod, workload) {
        (Some(p), None) if valid_name(p) => Target::Pod { namespace: namespace.into(), name: p.into() },
        (None, Some(w)) if valid_name(w) => Target::Workload { namespace: namespace.into(), name: w.into() },
        (Some(p), None) => return Err(err("pod", format!("{p:?} is not a pod name"))),
        (None, Some(w)) => return Err(err("workload", format!("{w:?} is not a workload name"))),
        _ => return Err(err("pod", "give exactly one of pod and workload".into())),
    };
    if !valid_name(namespace) {
        return Err(err("namespace", format!("{namespace:?} is not a namespace name")));
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(err("reason", "say why (it is recorded and audited)".into()));
    }
    if reason.len() > 1024 {
        return Err(err("reason", "at most 1024 characters".into()));
    }
    Ok((target, reason.to_string()))
}

impl TryFrom<&Quarantine> for (Target, String) {
    type Error = PolicyError;
    fn try_from(q: &Quarantine) -> Result<Self, PolicyError> {
        let namespace = q.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let name = q.metadata.name.clone().unwrap_or_default();
        let blame = Blame::new(KIND, Some(&namespace), &name);
        target(&namespace, q.spec.pod.as_deref(), q.spec.workload.as_deref(), &q.spec.reason, blame.object()).map_err(
            |e| match e {
                PolicyError::Invalid { object, field, message } => {
                    PolicyError::Invalid { object, field: format!("spec.{field}"), message }
                }
                other => other,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_quarantine_names_exactly_one_target_and_a_reason() {
        let (t, r) = target("shop", Some("web-1"), None, " compromised ", "request").unwrap();
        assert_eq!((t.describe(), r.as_str()), ("pod shop/web-1".to_string(), "compromised"));
        let e = target("shop", Some("a"), Some("b"), "x", "request").unwrap_err().to_string();
        assert_eq!(e, "request: pod: give exactly one of pod and workload");
        let e = target("shop", None, Some("Web"), "x", "request").unwrap_err().to_string();
        assert!(e.contains("workload: \"Web\" is not a workload name"), "{e}");
        let e = target("shop", Some("a"), None, "  ", "request").unwrap_err().to_string();
        assert!(e.ends_with("reason: say why (it is recorded and audited)"), "{e}");
    }
}
