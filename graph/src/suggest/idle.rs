//! The suggestion for a workload nothing was seen to use: once its learning
//! window has passed without a single connection to or from it, least
//! privilege denies it all ingress, and all egress but DNS to the cluster
//! DNS. The policy says what it rests on, so a reviewer knows.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::render::{MANAGED_BY, WORKLOAD_ANNOTATION, entity_name, timestamp};
use super::{Suggestion, WorkloadInfo};
use crate::flow::Entity;

/// Annotation saying what a suggestion rests on; `nothing-observed` here.
pub const BASIS_ANNOTATION: &str = "bulkhead.dev/basis";
/// Its value for a workload nothing was seen to use.
pub const NOTHING_OBSERVED: &str = "nothing-observed";

fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        match_expressions: None,
    }
}

/// The deny-all suggestion for `w`, present since `since_ns` and unused
/// through a window of `window_ns`.
pub(super) fn suggestion(w: &Entity, info: &WorkloadInfo, since_ns: i64, window_ns: i64) -> Suggestion {
    let (namespace, name) = match w {
        Entity::Workload { namespace, name, .. } => (namespace.to_string(), name.to_string()),
        other => (String::new(), entity_name(other)),
    };
    let why = format!(
        "nothing observed: no connection to or from it from {} through its learning window of {} s; this policy denies all ingress, and all egress but DNS to the cluster DNS",
        timestamp(since_ns),
        window_ns / 1_000_000_000
    );
    let annotations = BTreeMap::from([
        (WORKLOAD_ANNOTATION.to_string(), entity_name(w)),
        (BASIS_ANNOTATION.to_string(), NOTHING_OBSERVED.to_string()),
        ("bulkhead.dev/baseline".to_string(), why.clone()),
    ]);
    let dns = NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            namespace_selector: Some(labels(&[("kubernetes.io/metadata.name", "kube-system")])),
            pod_selector: Some(labels(&[("k8s-app", "kube-dns")])),
            ip_block: None,
        }]),
        ports: Some(
            ["UDP", "TCP"]
                .into_iter()
                .map(|p| NetworkPolicyPort {
                    protocol: Some(p.to_string()),
                    port: Some(IntOrString::Int(53)),
                    end_port: None,
                })
                .collect(),
        ),
    };
    let policy = NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(format!("bulkhead-{name}")),
            namespace: Some(namespace),
            labels: Some(BTreeMap::from([(MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string())])),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector { match_labels: Some(info.selector.clone()), match_expressions: None }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(vec![dns]),
        }),
    };
    Suggestion { workload: w.clone(), stable: true, policy, rules: Vec::new(), warnings: vec![why] }
}
