//! `ClusterNetworkPolicy` (group `bulkhead.dev`): cluster-scoped rules in two
//! tiers around NetworkPolicy, in the shape of sig-network's
//! AdminNetworkPolicy and BaselineAdminNetworkPolicy. Admin rules are
//! evaluated first and can Allow, Deny or Pass (hand the decision to
//! NetworkPolicy); Baseline rules apply only where no NetworkPolicy isolates
//! the pod.

use std::collections::BTreeMap;

use ipnetwork::IpNetwork;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{Blame, PolicyError};
use crate::netpol::parse_cidr;
use crate::ports::{PortMatch, PortSel, Protocol, check_port_name, port_number};
use crate::selector::Selector;

/// API group and version of the kind.
pub const API_VERSION: &str = "bulkhead.dev/v1alpha1";
/// The kind's name.
pub const KIND: &str = "ClusterNetworkPolicy";
/// Highest Admin priority; lower numbers are evaluated first.
pub const MAX_PRIORITY: i32 = 1000;

/// Desired behaviour of a ClusterNetworkPolicy. The derive also defines the
/// cluster-scoped `ClusterNetworkPolicy` object and its CRD (see `crd()`).
#[derive(kube_derive::CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "bulkhead.dev",
    version = "v1alpha1",
    kind = "ClusterNetworkPolicy",
    plural = "clusternetworkpolicies",
    shortname = "cnp",
    doc = "Cluster-scoped network policy in two tiers around NetworkPolicy (Admin before, Baseline after).",
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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterNetworkPolicySpec {
    /// `Admin` (before NetworkPolicy) or `Baseline` (after it).
    pub tier: String,
    /// Order within the tier, 0 to 1000, lowest first. Ties are broken by name.
    #[serde(default)]
    pub priority: i32,
    /// The pods the policy applies to.
    pub subject: SubjectSpec,
    /// Rules for traffic arriving at the subject pods, first match wins.
    #[serde(default)]
    pub ingress: Vec<RuleSpec>,
    /// Rules for traffic leaving the subject pods, first match wins.
    #[serde(default)]
    pub egress: Vec<RuleSpec>,
}

/// Which pods a policy applies to: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubjectSpec {
    /// Every pod in the matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<meta::LabelSelector>,
    /// Matching pods in matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSpec>,
}

/// Pods by namespace and pod labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodsSpec {
    /// Namespaces of the pods.
    pub namespace_selector: meta::LabelSelector,
    /// Labels of the pods.
    pub pod_selector: meta::LabelSelector,
}

/// One rule of a tier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    /// Name shown in flows and in `policy explain`.
    #[serde(default)]
    pub name: Option<String>,
    /// `Allow`, `Deny` or (Admin only) `Pass`.
    pub action: String,
    /// Peers of an ingress rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<PeerSpec>>,
    /// Peers of an egress rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<PeerSpec>>,
    /// Ports; absent means all traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortSpec>>,
}

/// A peer: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerSpec {
    /// Every pod in the matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<meta::LabelSelector>,
    /// Matching pods in matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSpec>,
    /// The pods behind these services (and, for egress, their ClusterIPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Vec<ServiceRef>>,
    /// Addresses in these CIDRs, pod addresses included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<String>>,
    /// Every pod of these clusters (by cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
}

/// A service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub struct ServiceRef {
    /// Namespace of the service.
    pub namespace: String,
    /// Name of the service.
    pub name: String,
}

/// A port match: exactly one of the fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    /// One port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_number: Option<PortNumberSpec>,
    /// A range of ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_range: Option<PortRangeSpec>,
    /// A container port name of the destination pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub named_port: Option<String>,
}

/// One port of a protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortNumberSpec {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The port.
    pub port: i32,
}

/// An inclusive range of ports of a protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortRangeSpec {
    /// TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Option<String>,
    /// First port.
    pub start: i32,
    /// Last port, inclusive.
    pub end: i32,
}

/// The tier a policy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Tier {
    /// Evaluated before NetworkPolicy.
    Admin,
    /// Evaluated where NetworkPolicy does not isolate the pod.
    Baseline,
}

/// What a matching tier rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum TierAction {
    /// Allow, skipping every later tier.
    Allow,
    /// Deny, skipping every later tier.
    Deny,
    /// Stop evaluating Admin rules and let NetworkPolicy decide.
    Pass,
}

/// A validated ClusterNetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterPolicy {
    /// Object name.
    pub name: String,
    /// Admin or Baseline.
    pub tier: Tier,
    /// Order within the tier, lowest first.
    pub priority: i32,
    /// Namespace selector of the subject pods.
    pub subject_namespaces: Selector,
    /// Pod selector of the subject pods.
    pub subject_pods: Selector,
    /// Ingress rules, in order.
    pub ingress: Vec<TierRule>,
    /// Egress rules, in order.
    pub egress: Vec<TierRule>,
}

/// A validated tier rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TierRule {
    /// Rule name (the index when the manifest gives none).
    pub name: String,
    /// What the rule does.
    pub action: TierAction,
    /// Any of these peers matches.
    pub peers: Vec<TierPeer>,
    /// Ports; `None` means all traffic.
    pub ports: Option<Vec<PortMatch>>,
}

/// A validated tier peer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TierPeer {
    /// Pods by namespace and pod labels.
    Pods {
        /// Namespace selector.
        namespaces: Selector,
        /// Pod selector.
        pods: Selector,
    },
    /// The pods behind a service.
    Service(ServiceRef),
    /// Addresses in a CIDR.
    Network(IpNetwork),
    /// Every pod of a cluster.
    Cluster(String),
}

impl ClusterPolicy {
    /// Whether the policy applies to a pod with `pod_labels` in a namespace
    /// with `namespace_labels`.
    pub fn selects(&self, namespace_labels: &crate::selector::Labels, pod_labels: &crate::selector::Labels) -> bool {
        self.subject_namespaces.matches(namespace_labels) && self.subject_pods.matches(pod_labels)
    }

    /// The rules of a direction.
    pub fn rules(&self, dir: bulkhead_model::Direction) -> &[TierRule] {
        match dir {
            bulkhead_model::Direction::Ingress => &self.ingress,
            bulkhead_model::Direction::Egress => &self.egress,
        }
    }
}

fn pods(p: &PodsSpec, blame: &Blame, field: &str) -> Result<(Selector, Selector), PolicyError> {
    Ok((
        Selector::parse(&p.namespace_selector, blame, &format!("{field}.namespaceSelector"))?,
        Selector::parse(&p.pod_selector, blame, &format!("{field}.podSelector"))?,
    ))
}

fn peer(p: &PeerSpec, blame: &Blame, field: &str) -> Result<Vec<TierPeer>, PolicyError> {
    let set =
        [p.namespaces.is_some(), p.pods.is_some(), p.services.is_some(), p.networks.is_some(), p.clusters.is_some()];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(blame.err(field, "a peer needs exactly one of namespaces, pods, services, networks or clusters"));
    }
    if let Some(ns) = &p.namespaces {
        let namespaces = Selector::parse(ns, blame, &format!("{field}.namespaces"))?;
        return Ok(vec![TierPeer::Pods { namespaces, pods: Selector::everything() }]);
    }
    if let Some(ps) = &p.pods {
        let (namespaces, pods) = pods(ps, blame, &format!("{field}.pods"))?;
        return Ok(vec![TierPeer::Pods { namespaces, pods }]);
    }
    let mut out = Vec::new();
    for (i, s) in p.services.iter().flatten().enumerate() {
        if s.namespace.is_empty() || s.name.is_empty() {
            return Err(blame.err(format!("{field}.services[{i}]"), "namespace and name are required"));
        }
        out.push(TierPeer::Service(s.clone()));
    }
    for (i, n) in p.networks.iter().flatten().enumerate() {
        out.push(TierPeer::Network(parse_cidr(n, blame, &format!("{field}.networks[{i}]"))?));
    }
    for (i, c) in p.clusters.iter().flatten().enumerate() {
        crate::selector::check_value(c).map_err(|m| blame.err(format!("{field}.clusters[{i}]"), m))?;
        out.push(TierPeer::Cluster(c.clone()));
    }
    if out.is_empty() {
        return Err(blame.err(field, "the peer's list is empty"));
    }
    Ok(out)
}

/// A port entry's matches: a named port matches whatever protocol the
/// destination's container port of that name has.
fn port(p: &PortSpec, blame: &Blame, field: &str) -> Result<Vec<PortMatch>, PolicyError> {
    match (&p.port_number, &p.port_range, &p.named_port) {
        (Some(n), None, None) => {
            let f = format!("{field}.portNumber");
            let protocol = Protocol::parse(n.protocol.as_deref(), blame, &format!("{f}.protocol"))?;
            let port = port_number(n.port).map_err(|m| blame.err(format!("{f}.port"), m))?;
            Ok(vec![PortMatch { protocol, ports: PortSel::Range(port, port) }])
        }
        (None, Some(r), None) => {
            let f = format!("{field}.portRange");
            let protocol = Protocol::parse(r.protocol.as_deref(), blame, &format!("{f}.protocol"))?;
            let lo = port_number(r.start).map_err(|m| blame.err(format!("{f}.start"), m))?;
            let hi = port_number(r.end).map_err(|m| blame.err(format!("{f}.end"), m))?;
            if hi < lo {
                return Err(blame.err(format!("{f}.end"), format!("end {hi} is smaller than start {lo}")));
            }
            Ok(vec![PortMatch { protocol, ports: PortSel::Range(lo, hi) }])
        }
        (None, None, Some(name)) => {
            check_port_name(name).map_err(|m| blame.err(format!("{field}.namedPort"), m))?;
            Ok(Protocol::ALL.iter().map(|p| PortMatch { protocol: *p, ports: PortSel::Named(name.clone()) }).collect())
        }
        _ => Err(blame.err(field, "a port needs exactly one of portNumber, portRange or namedPort")),
    }
}

fn rules(specs: &[RuleSpec], tier: Tier, egress: bool, blame: &Blame) -> Result<Vec<TierRule>, PolicyError> {
    let dir = if egress { "egress" } else { "ingress" };
    let mut names = BTreeMap::new();
    let mut out = Vec::new();
    for (i, r) in specs.iter().enumerate() {
        let f = format!("spec.{dir}[{i}]");
        let action = match (r.action.as_str(), tier) {
            ("Allow", _) => TierAction::Allow,
            ("Deny", _) => TierAction::Deny,
            ("Pass", Tier::Admin) => TierAction::Pass,
            ("Pass", Tier::Baseline) => {
                return Err(blame.err(format!("{f}.action"), "Pass is only valid in the Admin tier"));
            }
            (other, _) => {
                return Err(
                    blame.err(format!("{f}.action"), format!("unknown action {other:?}; expected Allow, Deny or Pass"))
                );
            }
        };
        let (peers_field, peers, wrong) = if egress { ("to", &r.to, &r.from) } else { ("from", &r.from, &r.to) };
        if wrong.is_some() {
            let other = if egress { "from" } else { "to" };
            return Err(blame.err(format!("{f}.{other}"), format!("{dir} rules take `{peers_field}`, not `{other}`")));
        }
        let Some(peers) = peers.as_ref().filter(|p| !p.is_empty()) else {
            return Err(blame.err(format!("{f}.{peers_field}"), "at least one peer is required"));
        };
        let mut all = Vec::new();
        for (j, p) in peers.iter().enumerate() {
            all.extend(peer(p, blame, &format!("{f}.{peers_field}[{j}]"))?);
        }
        let ports = match r.ports.as_ref().filter(|p| !p.is_empty()) {
            None => None,
            Some(ps) => Some(
                ps.iter()
                    .enumerate()
                    .map(|(j, p)| port(p, blame, &format!("{f}.ports[{j}]")))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .flatten()
                    .collect(),
            ),
        };
        let name = r.name.clone().unwrap_or_else(|| format!("{dir}[{i}]"));
        if let Some(prev) = names.insert(name.clone(), i) {
            return Err(blame.err(format!("{f}.name"), format!("name {name:?} is already used by rule {prev}")));
        }
        out.push(TierRule { name, action, peers: all, ports });
    }
    Ok(out)
}

impl TryFrom<&ClusterNetworkPolicy> for ClusterPolicy {
    type Error = PolicyError;

    fn try_from(o: &ClusterNetworkPolicy) -> Result<Self, PolicyError> {
        let name = o.metadata.name.clone().unwrap_or_default();
        let blame = Blame::new(KIND, None, &name);
        if name.is_empty() {
            return Err(blame.err("metadata.name", "a name is required"));
        }
        let s = &o.spec;
        let tier = match s.tier.as_str() {
            "Admin" => Tier::Admin,
            "Baseline" => Tier::Baseline,
            other => return Err(blame.err("spec.tier", format!("unknown tier {other:?}; expected Admin or Baseline"))),
        };
        if !(0..=MAX_PRIORITY).contains(&s.priority) {
            return Err(blame.err("spec.priority", format!("{} is outside 0-{MAX_PRIORITY}", s.priority)));
        }
        let (subject_namespaces, subject_pods) = match (&s.subject.namespaces, &s.subject.pods) {
            (Some(ns), None) => (Selector::parse(ns, &blame, "spec.subject.namespaces")?, Selector::everything()),
            (None, Some(p)) => pods(p, &blame, "spec.subject.pods")?,
            _ => return Err(blame.err("spec.subject", "exactly one of namespaces or pods is required")),
        };
        Ok(Self {
            name,
            tier,
            priority: s.priority,
            subject_namespaces,
            subject_pods,
            ingress: rules(&s.ingress, tier, false, &blame)?,
            egress: rules(&s.egress, tier, true, &blame)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(spec: &str) -> Result<ClusterPolicy, PolicyError> {
        let yaml = format!(
            "apiVersion: bulkhead.dev/v1alpha1\nkind: ClusterNetworkPolicy\nmetadata: {{name: c}}\nspec: {spec}"
        );
        let o: ClusterNetworkPolicy = serde_yaml::from_str(&yaml).unwrap();
        ClusterPolicy::try_from(&o)
    }

    #[test]
    fn parses_every_peer_kind() {
        let p = parse(
            "{tier: Admin, priority: 10, subject: {namespaces: {}}, egress: [{name: out, action: Pass, to: [
              {namespaces: {matchLabels: {a: b}}}, {pods: {namespaceSelector: {}, podSelector: {}}},
              {services: [{namespace: x, name: s}]}, {networks: [10.0.0.1/8]}, {clusters: [east]}],
              ports: [{portNumber: {port: 80}}, {portRange: {protocol: UDP, start: 1, end: 9}}, {namedPort: dns}]}]}",
        )
        .unwrap();
        assert_eq!(p.egress[0].peers.len(), 5);
        assert_eq!(p.egress[0].peers[3], TierPeer::Network("10.0.0.0/8".parse().unwrap()));
        assert_eq!(p.egress[0].action, TierAction::Pass);
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            ("{tier: Middle, subject: {namespaces: {}}}", "spec.tier"),
            ("{tier: Admin, priority: 1001, subject: {namespaces: {}}}", "spec.priority"),
            ("{tier: Admin, subject: {}}", "spec.subject"),
            (
                "{tier: Baseline, subject: {namespaces: {}}, ingress: [{action: Pass, from: [{namespaces: {}}]}]}",
                "Pass is only valid",
            ),
            ("{tier: Admin, subject: {namespaces: {}}, ingress: [{action: Allow}]}", "spec.ingress[0].from"),
            (
                "{tier: Admin, subject: {namespaces: {}}, ingress: [{action: Allow, to: [{namespaces: {}}]}]}",
                "take `from`",
            ),
            (
                "{tier: Admin, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [300.1.1.1/8]}]}]}",
                "spec.egress[0].to[0].networks[0]",
            ),
            (
                "{tier: Admin, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}, clusters: [a]}]}]}",
                "exactly one of",
            ),
            (
                "{tier: Admin, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], ports: [{portRange: {start: 9, end: 1}}]}]}",
                "end 1 is smaller",
            ),
            (
                "{tier: Admin, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], ports: [{portNumber: {protocol: ICMP, port: 1}}]}]}",
                "unknown protocol",
            ),
        ];
        for (spec, want) in cases {
            let e = parse(spec).unwrap_err().to_string();
            assert!(e.starts_with("ClusterNetworkPolicy c: ") && e.contains(want), "{spec}: {e}");
        }
    }
}
