//! The wire shape of both cluster-tier kinds. sig-network's
//! `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy is the
//! vocabulary; Bulkhead's `bulkhead.dev/v1alpha2` BulkheadClusterPolicy has
//! the same fields plus the peers upstream cannot say (`services`,
//! `clusters`, and `networks` for ingress). One set of rule types serves
//! both, so a policy moves between the kinds by changing two lines.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Fields of a newer CRD than this Bulkhead knows, kept rather than refused
/// so one such object never fails the watcher's whole list.
pub type Unknown = BTreeMap<String, serde_json::Value>;

/// sig-network's ClusterNetworkPolicy, as its CRD serves it. Bulkhead reads
/// it; the CRD itself belongs to the upstream project and is never printed
/// by `bulkhead install`.
#[derive(kube_derive::CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "policy.networking.k8s.io",
    version = "v1alpha2",
    kind = "ClusterNetworkPolicy",
    plural = "clusternetworkpolicies",
    derive = "PartialEq",
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterNetworkPolicySpec {
    /// `Admin` (before NetworkPolicy) or `Baseline` (after it).
    #[schemars(extend("enum" = ["Admin", "Baseline"]))]
    pub tier: String,
    /// Order within the tier, 0 to 1000, lowest first.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: SubjectSpec,
    /// Rules for traffic arriving at the subject pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub ingress: Vec<IngressRuleSpec>,
    /// Rules for traffic leaving the subject pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub egress: Vec<EgressRuleSpec>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Bulkhead's extension of ClusterNetworkPolicy: the same tiers, priorities
/// and rules, plus peers by service, by cluster, and ingress by network.
#[derive(kube_derive::CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bulkhead.dev",
    version = "v1alpha2",
    kind = "BulkheadClusterPolicy",
    plural = "bulkheadclusterpolicies",
    shortname = "bcp",
    doc = "ClusterNetworkPolicy (policy.networking.k8s.io/v1alpha2) plus services, clusters and ingress networks peers.",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Tier","type":"string","jsonPath":".spec.tier"}"#,
    printcolumn = r#"{"name":"Priority","type":"integer","jsonPath":".spec.priority"}"#,
    crates(
        kube_core = "::kube_core",
        k8s_openapi = "::k8s_openapi",
        schemars = "::schemars",
        serde = "::serde",
        serde_json = "::serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BulkheadClusterPolicySpec {
    /// `Admin` (before NetworkPolicy) or `Baseline` (after it).
    #[schemars(extend("enum" = ["Admin", "Baseline"]))]
    pub tier: String,
    /// Order within the tier, 0 to 1000, lowest first. Ties are broken by name.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: SubjectSpec,
    /// Rules for traffic arriving at the subject pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub ingress: Vec<IngressRuleSpec>,
    /// Rules for traffic leaving the subject pods, first match wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub egress: Vec<EgressRuleSpec>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Which pods a policy applies to: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectSpec {
    /// Every pod in the matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<meta::LabelSelector>,
    /// Matching pods in matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSpec>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// Pods by namespace and pod labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodsSpec {
    /// Namespaces of the pods; empty means every namespace.
    #[serde(default)]
    pub namespace_selector: meta::LabelSelector,
    /// Labels of the pods.
    pub pod_selector: meta::LabelSelector,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// One ingress rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRuleSpec {
    /// Name shown in flows and in `policy explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// `Accept`, `Deny` or `Pass`.
    #[schemars(extend("enum" = ["Accept", "Deny", "Pass"]))]
    pub action: String,
    /// Where the traffic comes from; any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub from: Vec<PeerSpec>,
    /// Destination ports; absent means all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<ProtocolSpec>>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// One egress rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRuleSpec {
    /// Name shown in flows and in `policy explain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 100))]
    pub name: Option<String>,
    /// `Accept`, `Deny` or `Pass`.
    #[schemars(extend("enum" = ["Accept", "Deny", "Pass"]))]
    pub action: String,
    /// Where the traffic goes; any peer matches.
    #[schemars(length(min = 1, max = 25))]
    pub to: Vec<PeerSpec>,
    /// Destination ports; absent means all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub protocols: Option<Vec<ProtocolSpec>>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// A peer: exactly one of the fields. Fields this version does not know are
/// kept, so a policy written for a newer CRD fails closed instead of being
/// read as a narrower one (see `fail_closed`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerSpec {
    /// Every pod in the matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<meta::LabelSelector>,
    /// Matching pods in matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSpec>,
    /// The addresses of the matching nodes (egress only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<meta::LabelSelector>,
    /// Addresses in these CIDRs, pod addresses included (egress only upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub networks: Option<Vec<String>>,
    /// DNS names (upstream's experimental channel). Bulkhead sees addresses,
    /// not names, so it refuses them; its own CRD does not offer them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(skip)]
    pub domain_names: Option<Vec<String>>,
    /// BulkheadClusterPolicy only: the pods behind these services (and, for
    /// egress, their ClusterIPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub services: Option<Vec<ServiceRef>>,
    /// BulkheadClusterPolicy only: every pod of these clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 25))]
    pub clusters: Option<Vec<String>>,
    /// Fields this version of Bulkhead does not know.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// A service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service.
    pub name: String,
}

/// One protocols entry: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolSpec {
    /// TCP to a destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<ProtocolPortSpec>,
    /// UDP to a destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<ProtocolPortSpec>,
    /// SCTP to a destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sctp: Option<ProtocolPortSpec>,
    /// A container port name of the destination pod, in that port's protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_named_port: Option<String>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// The destination port of one protocol.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolPortSpec {
    /// Required: write the range 1-65535 for every port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_port: Option<PortSpec>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// A port or a range: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// One port, 1-65535.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub number: Option<i32>,
    /// An inclusive range; start must be below end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSpec>,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// An inclusive range of ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RangeSpec {
    /// First port.
    #[schemars(range(min = 1, max = 65535))]
    pub start: i32,
    /// Last port, inclusive.
    #[schemars(range(min = 1, max = 65535))]
    pub end: i32,
    /// Fields this version of Bulkhead does not know: refused in manifests,
    /// failed closed in objects the API server admitted.
    #[serde(flatten, default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(skip)]
    pub unknown: Unknown,
}

/// The parts of a policy both kinds share, borrowed for validation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SpecView<'a> {
    pub tier: &'a str,
    pub priority: i32,
    pub subject: &'a SubjectSpec,
    pub ingress: &'a [IngressRuleSpec],
    pub egress: &'a [EgressRuleSpec],
    pub unknown: &'a Unknown,
}

/// Both kinds' specs have the same fields.
macro_rules! spec_view {
    ($($spec:ty),*) => {$(
        impl<'a> From<&'a $spec> for SpecView<'a> {
            fn from(s: &'a $spec) -> Self {
                Self {
                    tier: &s.tier,
                    priority: s.priority,
                    subject: &s.subject,
                    ingress: &s.ingress,
                    egress: &s.egress,
                    unknown: &s.unknown,
                }
            }
        }
    )*};
}

spec_view!(ClusterNetworkPolicySpec, BulkheadClusterPolicySpec);
