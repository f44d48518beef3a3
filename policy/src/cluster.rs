//! Cluster-scoped policy in two tiers around NetworkPolicy, read from
//! sig-network's `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy
//! and from Bulkhead's `bulkhead.dev/v1alpha2` BulkheadClusterPolicy (the
//! same fields plus the peers upstream cannot say). Admin rules are
//! evaluated first and can Accept, Deny or Pass (hand the decision to
//! NetworkPolicy); Baseline rules apply only where no NetworkPolicy isolates
//! the pod, and a Baseline Pass leaves the traffic to the default (allowed).

mod admitted;
mod convert;
pub mod legacy;
pub mod spec;

use ipnetwork::IpNetwork;
use serde::Serialize;

use crate::ports::PortMatch;

use crate::selector::Selector;

pub use admitted::{fail_closed, fail_closed_extension};
pub use convert::{MAX_ITEMS, MAX_PRIORITY, MAX_RULE_NAME};
pub use spec::{BulkheadClusterPolicy, ClusterNetworkPolicy, ServiceRef};

/// API group and version of sig-network's kind.
pub const API_VERSION: &str = "policy.networking.k8s.io/v1alpha2";
/// sig-network's kind.
pub const KIND: &str = "ClusterNetworkPolicy";
/// API group and version of Bulkhead's extension.
pub const BULKHEAD_API_VERSION: &str = "bulkhead.dev/v1alpha2";
/// Bulkhead's extension kind.
pub const BULKHEAD_KIND: &str = "BulkheadClusterPolicy";
/// Set by [`fail_closed`] on an object from the Kubernetes API whose rules
/// it rewrote; the value says what and why, one line per rule. It also lets
/// a rewritten ClusterNetworkPolicy's deny-all ingress rules name every
/// address, which upstream's ingress peers cannot.
pub const FAIL_CLOSED_ANNOTATION: &str = "bulkhead.dev/fail-closed";

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
    /// Accept (the wire's `Accept`), skipping every later tier.
    Allow,
    /// Deny, skipping every later tier.
    Deny,
    /// Skip the rest of the tier: an Admin Pass lets NetworkPolicy decide,
    /// a Baseline Pass leaves the traffic to the default (allowed).
    Pass,
}

/// A validated ClusterNetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterPolicy {
    /// Object name; a BulkheadClusterPolicy's is prefixed with its kind
    /// (`BulkheadClusterPolicy/name`), so the two kinds never collide.
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
    /// The addresses of the nodes whose labels match.
    Nodes(Selector),
    /// Every pod of a cluster.
    Cluster(String),
}

impl ClusterPolicy {
    /// The kind and bare name of the object the policy came from.
    pub fn object(&self) -> (&'static str, &str) {
        match self.name.strip_prefix(BULKHEAD_KIND).and_then(|r| r.strip_prefix('/')) {
            Some(n) => (BULKHEAD_KIND, n),
            None => (KIND, &self.name),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PolicyError;

    fn parse(kind: &str, spec: &str) -> Result<ClusterPolicy, PolicyError> {
        let head = |v: &str, k: &str| format!("apiVersion: {v}\nkind: {k}\nmetadata: {{name: c}}\nspec: {spec}");
        if kind == KIND {
            let o: ClusterNetworkPolicy = serde_yaml::from_str(&head(API_VERSION, KIND)).unwrap();
            ClusterPolicy::try_from(&o)
        } else {
            let o: BulkheadClusterPolicy = serde_yaml::from_str(&head(BULKHEAD_API_VERSION, BULKHEAD_KIND)).unwrap();
            ClusterPolicy::try_from(&o)
        }
    }

    #[test]
    fn parses_every_peer_and_protocol_kind() {
        let p = parse(
            KIND,
            "{tier: Baseline, priority: 10, subject: {namespaces: {}}, egress: [{name: out, action: Pass, to: [
              {namespaces: {matchLabels: {a: b}}}, {pods: {namespaceSelector: {}, podSelector: {}}},
              {nodes: {matchLabels: {kubernetes.io/os: linux}}}, {networks: [10.0.0.1/8, '::/0']}],
              protocols: [{tcp: {destinationPort: {number: 80}}}, {udp: {destinationPort: {range: {start: 1, end: 9}}}},
                          {sctp: {destinationPort: {number: 9003}}}]}]}",
        )
        .unwrap();
        assert_eq!(p.tier, Tier::Baseline);
        assert_eq!(p.egress[0].action, TierAction::Pass);
        assert_eq!(p.egress[0].peers.len(), 5);
        assert_eq!(p.egress[0].peers[3], TierPeer::Network("10.0.0.0/8".parse().unwrap()));
        let ports = p.egress[0].ports.as_ref().unwrap();
        assert_eq!(ports.len(), 3);
        assert_eq!(ports[2].protocol, crate::ports::Protocol::Sctp);
        let b = parse(
            BULKHEAD_KIND,
            "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Accept, from: [
              {services: [{namespace: x, name: s}]}, {clusters: [east]}, {networks: [10.1.0.0/16]}],
              protocols: [{destinationNamedPort: dns}]}]}",
        )
        .unwrap();
        assert_eq!(b.name, "BulkheadClusterPolicy/c");
        assert_eq!(b.ingress[0].name, "ingress[0]");
        assert_eq!(b.ingress[0].peers.len(), 3);
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            (KIND, "{tier: Middle, priority: 1, subject: {namespaces: {}}}", "spec.tier"),
            (KIND, "{tier: Admin, priority: 1001, subject: {namespaces: {}}}", "spec.priority"),
            (KIND, "{tier: Admin, priority: 1, subject: {}}", "spec.subject"),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Allow, from: [{namespaces: {}}]}]}",
                "spelled \"Accept\"",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Accept, from: []}]}",
                "spec.ingress[0].from",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{networks: [300.1.1.1/8]}]}]}",
                "spec.egress[0].to[0].networks[0]",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}, networks: [10.0.0.0/8]}]}]}",
                "exactly one of",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{services: [{namespace: a, name: b}]}]}]}",
                "write this policy as kind BulkheadClusterPolicy",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{networks: [10.0.0.0/8]}]}]}",
                "an ingress networks peer is a Bulkhead extension",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{domainNames: [a.example.com]}]}]}",
                "not DNS names",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{fqdn: a}]}]}",
                "spec.egress[0].to[0].fqdn: unknown peer field",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {range: {start: 9, end: 9}}}}]}]}",
                "start 9 must be below end 9",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{tcp: {}}]}]}",
                "range {start: 1, end: 65535}",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: []}]}",
                "protocols must not be empty",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Accept, to: [{networks: [10.0.0.0/8]}], protocols: [{destinationNamedPort: web}]}]}",
                "cannot be used with networks or nodes",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, ingress: [{action: Accept, from: [{nodes: {}}]}]}",
                "egress rules only",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], except: []}]}",
                "spec.egress[0].except: unknown field",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}}, egress: [{action: Deny, to: [{namespaces: {}}], protocols: [{tcp: {destinationPort: {number: 1, step: 2}}}]}]}",
                "spec.egress[0].protocols[0].tcp.destinationPort.step: unknown field",
            ),
            (
                KIND,
                "{tier: Admin, priority: 1, subject: {namespaces: {}, nodes: {}}}",
                "spec.subject.nodes: unknown field",
            ),
        ];
        for (kind, spec, want) in cases {
            let e = parse(kind, spec).unwrap_err().to_string();
            assert!(e.starts_with("ClusterNetworkPolicy c: ") && e.contains(want), "{spec}: {e}");
        }
        let rules: Vec<String> =
            (0..26).map(|i| format!("{{name: r{i}, action: Deny, from: [{{namespaces: {{}}}}]}}")).collect();
        let e = parse(
            KIND,
            &format!("{{tier: Admin, priority: 1, subject: {{namespaces: {{}}}}, ingress: [{}]}}", rules.join(",")),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("26 rules; at most 25"), "{e}");
        let missing = serde_yaml::from_str::<ClusterNetworkPolicy>(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\nmetadata: {name: c}\nspec: {tier: Admin, subject: {namespaces: {}}}",
        )
        .unwrap_err()
        .to_string();
        assert!(missing.contains("priority"), "{missing}");
    }

    #[test]
    fn the_retired_kind_migrates_to_the_kind_that_can_say_it() {
        let old = |spec: &str| -> legacy::LegacyClusterNetworkPolicy {
            serde_yaml::from_str(&format!("metadata: {{name: m}}\nspec: {spec}")).unwrap()
        };
        let plain = old(
            "{tier: Admin, priority: 5, subject: {namespaces: {}}, egress: [{action: Allow, to: [{namespaces: {}}],
              ports: [{portNumber: {port: 80}}, {portRange: {protocol: UDP, start: 53, end: 53}},
                      {portRange: {protocol: SCTP, start: 1, end: 9}}, {namedPort: web}]}]}",
        );
        let legacy::Migrated::Upstream(u) = legacy::migrate(&plain).unwrap() else { panic!("expected upstream") };
        let p = ClusterPolicy::try_from(u.as_ref()).unwrap();
        assert_eq!(p.egress[0].action, TierAction::Allow);
        let yaml = serde_yaml::to_string(u.as_ref()).unwrap();
        assert!(
            yaml.starts_with("apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("action: Accept")
                && yaml.contains("number: 53")
                && yaml.contains("destinationNamedPort: web"),
            "{yaml}"
        );
        let ext =
            old("{tier: Baseline, subject: {namespaces: {}}, ingress: [{action: Deny, from: [{clusters: [east]}]}]}");
        let legacy::Migrated::Bulkhead(b) = legacy::migrate(&ext).unwrap() else { panic!("expected extension") };
        assert_eq!(ClusterPolicy::try_from(b.as_ref()).unwrap().priority, 0);
    }
}
