//! `networking.k8s.io/v1` NetworkPolicy, typed. Kubernetes tells an absent
//! list or map from an empty one (an absent `ingress` with `policyTypes:
//! [Ingress]` isolates, an empty selector selects everything), so each of its
//! optional lists and maps travels in a wrapper message whose absence is
//! `None`: every field carried comes back exactly as it went.
//!
//! Of the object's metadata only name, namespace, labels and annotations are
//! carried (what a policy document needs; server-set fields such as
//! `resourceVersion` stay on the server). The conversions for the parts
//! (selectors, rules, peers, ports) cannot fail; only a policy without its
//! metadata is refused.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ConvertError;
use crate::controller::v1 as pb;
use crate::controller::v1::network_policy_port::Port;

/// Each item converted (either way; the parts cannot fail).
fn each<T, U: From<T>>(values: Vec<T>) -> Vec<U> {
    values.into_iter().map(U::from).collect()
}

/// An optional list of strings, absence kept.
fn strings_to_pb(values: Option<Vec<String>>) -> Option<pb::StringList> {
    values.map(|values| pb::StringList { values })
}

/// An optional list of strings, absence kept.
fn strings_from_pb(list: Option<pb::StringList>) -> Option<Vec<String>> {
    list.map(|l| l.values)
}

/// An optional map of strings, absence kept.
fn map_to_pb(map: Option<BTreeMap<String, String>>) -> Option<pb::StringMap> {
    map.map(|m| pb::StringMap { entries: m.into_iter().collect() })
}

/// An optional map of strings, absence kept.
fn map_from_pb(map: Option<pb::StringMap>) -> Option<BTreeMap<String, String>> {
    map.map(|m| m.entries.into_iter().collect())
}

impl From<NetworkPolicy> for pb::NetworkPolicy {
    fn from(p: NetworkPolicy) -> Self {
        Self { metadata: Some(p.metadata.into()), spec: p.spec.map(Into::into) }
    }
}

impl TryFrom<pb::NetworkPolicy> for NetworkPolicy {
    type Error = ConvertError;
    fn try_from(p: pb::NetworkPolicy) -> Result<Self, ConvertError> {
        let metadata = p.metadata.map(ObjectMeta::from).ok_or_else(|| ConvertError::new("metadata", "missing"))?;
        Ok(Self { metadata, spec: p.spec.map(Into::into) })
    }
}

impl From<ObjectMeta> for pb::ObjectMeta {
    fn from(m: ObjectMeta) -> Self {
        Self {
            name: m.name,
            namespace: m.namespace,
            labels: map_to_pb(m.labels),
            annotations: map_to_pb(m.annotations),
        }
    }
}

impl From<pb::ObjectMeta> for ObjectMeta {
    fn from(m: pb::ObjectMeta) -> Self {
        Self {
            name: m.name,
            namespace: m.namespace,
            labels: map_from_pb(m.labels),
            annotations: map_from_pb(m.annotations),
            ..Default::default()
        }
    }
}

impl From<NetworkPolicySpec> for pb::NetworkPolicySpec {
    fn from(s: NetworkPolicySpec) -> Self {
        Self {
            pod_selector: s.pod_selector.map(Into::into),
            ingress: s.ingress.map(|rules| pb::IngressRules { rules: each(rules) }),
            egress: s.egress.map(|rules| pb::EgressRules { rules: each(rules) }),
            policy_types: strings_to_pb(s.policy_types),
        }
    }
}

impl From<pb::NetworkPolicySpec> for NetworkPolicySpec {
    fn from(s: pb::NetworkPolicySpec) -> Self {
        Self {
            pod_selector: s.pod_selector.map(Into::into),
            ingress: s.ingress.map(|r| each(r.rules)),
            egress: s.egress.map(|r| each(r.rules)),
            policy_types: strings_from_pb(s.policy_types),
        }
    }
}

impl From<LabelSelector> for pb::LabelSelector {
    fn from(s: LabelSelector) -> Self {
        Self {
            match_labels: map_to_pb(s.match_labels),
            match_expressions: s
                .match_expressions
                .map(|requirements| pb::LabelSelectorRequirements { requirements: each(requirements) }),
        }
    }
}

impl From<pb::LabelSelector> for LabelSelector {
    fn from(s: pb::LabelSelector) -> Self {
        Self {
            match_labels: map_from_pb(s.match_labels),
            match_expressions: s.match_expressions.map(|r| each(r.requirements)),
        }
    }
}

impl From<LabelSelectorRequirement> for pb::LabelSelectorRequirement {
    fn from(r: LabelSelectorRequirement) -> Self {
        Self { key: r.key, operator: r.operator, values: strings_to_pb(r.values) }
    }
}

impl From<pb::LabelSelectorRequirement> for LabelSelectorRequirement {
    fn from(r: pb::LabelSelectorRequirement) -> Self {
        Self { key: r.key, operator: r.operator, values: strings_from_pb(r.values) }
    }
}

impl From<NetworkPolicyIngressRule> for pb::NetworkPolicyIngressRule {
    fn from(r: NetworkPolicyIngressRule) -> Self {
        Self {
            from: r.from.map(|peers| pb::NetworkPolicyPeers { peers: each(peers) }),
            ports: r.ports.map(|ports| pb::NetworkPolicyPorts { ports: each(ports) }),
        }
    }
}

impl From<pb::NetworkPolicyIngressRule> for NetworkPolicyIngressRule {
    fn from(r: pb::NetworkPolicyIngressRule) -> Self {
        Self { from: r.from.map(|p| each(p.peers)), ports: r.ports.map(|p| each(p.ports)) }
    }
}

impl From<NetworkPolicyEgressRule> for pb::NetworkPolicyEgressRule {
    fn from(r: NetworkPolicyEgressRule) -> Self {
        Self {
            to: r.to.map(|peers| pb::NetworkPolicyPeers { peers: each(peers) }),
            ports: r.ports.map(|ports| pb::NetworkPolicyPorts { ports: each(ports) }),
        }
    }
}

impl From<pb::NetworkPolicyEgressRule> for NetworkPolicyEgressRule {
    fn from(r: pb::NetworkPolicyEgressRule) -> Self {
        Self { to: r.to.map(|p| each(p.peers)), ports: r.ports.map(|p| each(p.ports)) }
    }
}

impl From<NetworkPolicyPeer> for pb::NetworkPolicyPeer {
    fn from(p: NetworkPolicyPeer) -> Self {
        Self {
            pod_selector: p.pod_selector.map(Into::into),
            namespace_selector: p.namespace_selector.map(Into::into),
            ip_block: p.ip_block.map(Into::into),
        }
    }
}

impl From<pb::NetworkPolicyPeer> for NetworkPolicyPeer {
    fn from(p: pb::NetworkPolicyPeer) -> Self {
        Self {
            pod_selector: p.pod_selector.map(Into::into),
            namespace_selector: p.namespace_selector.map(Into::into),
            ip_block: p.ip_block.map(Into::into),
        }
    }
}

impl From<IPBlock> for pb::IpBlock {
    fn from(b: IPBlock) -> Self {
        Self { cidr: b.cidr, except: strings_to_pb(b.except) }
    }
}

impl From<pb::IpBlock> for IPBlock {
    fn from(b: pb::IpBlock) -> Self {
        Self { cidr: b.cidr, except: strings_from_pb(b.except) }
    }
}

impl From<NetworkPolicyPort> for pb::NetworkPolicyPort {
    fn from(p: NetworkPolicyPort) -> Self {
        Self {
            protocol: p.protocol,
            port: p.port.map(|port| match port {
                IntOrString::Int(n) => Port::Number(n),
                IntOrString::String(name) => Port::Name(name),
            }),
            end_port: p.end_port,
        }
    }
}

impl From<pb::NetworkPolicyPort> for NetworkPolicyPort {
    fn from(p: pb::NetworkPolicyPort) -> Self {
        Self {
            protocol: p.protocol,
            port: p.port.map(|port| match port {
                Port::Number(n) => IntOrString::Int(n),
                Port::Name(name) => IntOrString::String(name),
            }),
            end_port: p.end_port,
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
    }

    fn selector(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector { match_labels: Some(labels(pairs)), match_expressions: None }
    }

    /// A policy using every carried field, with absent and empty lists and
    /// maps side by side, for this and other tests.
    pub(in crate::v1::convert) fn policy() -> NetworkPolicy {
        NetworkPolicy {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                labels: Some(BTreeMap::new()),
                annotations: Some(labels(&[("bulkhead.dev/evidence", "{\"connections\":3}")])),
                ..Default::default()
            },
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(selector(&[("app", "web")])),
                ingress: Some(vec![
                    NetworkPolicyIngressRule {
                        from: Some(vec![
                            NetworkPolicyPeer {
                                pod_selector: Some(LabelSelector {
                                    match_labels: None,
                                    match_expressions: Some(vec![
                                        LabelSelectorRequirement {
                                            key: "tier".into(),
                                            operator: "In".into(),
                                            values: Some(vec!["front".into(), "edge".into()]),
                                        },
                                        LabelSelectorRequirement {
                                            key: "canary".into(),
                                            operator: "DoesNotExist".into(),
                                            values: None,
                                        },
                                    ]),
                                }),
                                namespace_selector: Some(LabelSelector::default()),
                                ip_block: None,
                            },
                            NetworkPolicyPeer {
                                pod_selector: None,
                                namespace_selector: None,
                                ip_block: Some(IPBlock {
                                    cidr: "10.0.0.0/8".into(),
                                    except: Some(vec!["10.1.0.0/16".into()]),
                                }),
                            },
                        ]),
                        ports: Some(vec![
                            NetworkPolicyPort {
                                protocol: Some("TCP".into()),
                                port: Some(IntOrString::Int(8080)),
                                end_port: Some(8090),
                            },
                            NetworkPolicyPort {
                                protocol: None,
                                port: Some(IntOrString::String("http".into())),
                                end_port: None,
                            },
                            NetworkPolicyPort { protocol: Some("UDP".into()), port: None, end_port: None },
                        ]),
                    },
                    NetworkPolicyIngressRule { from: None, ports: Some(vec![]) },
                    NetworkPolicyIngressRule { from: Some(vec![]), ports: None },
                ]),
                egress: Some(vec![]),
                policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            }),
        }
    }

    fn round_trip(p: &NetworkPolicy) -> Result<NetworkPolicy, ConvertError> {
        NetworkPolicy::try_from(pb::NetworkPolicy::from(p.clone()))
    }

    #[test]
    fn policies_round_trip_with_absent_and_empty_lists_apart() -> Result<(), ConvertError> {
        let full = policy();
        assert_eq!(round_trip(&full)?, full);

        // The same policy with every optional list and map absent instead of
        // empty (and the other way round) stays different after the trip.
        let mut absent = policy();
        absent.metadata.labels = None;
        absent.metadata.annotations = Some(BTreeMap::new());
        if let Some(spec) = absent.spec.as_mut() {
            spec.egress = None;
            spec.ingress = Some(vec![]);
            spec.policy_types = Some(vec![]);
            spec.pod_selector = Some(LabelSelector { match_labels: None, match_expressions: Some(vec![]) });
        }
        let back = round_trip(&absent)?;
        assert_eq!(back, absent);
        assert_ne!(back, full);

        let bare = NetworkPolicy { metadata: ObjectMeta::default(), spec: None };
        assert_eq!(round_trip(&bare)?, bare);
        let empty_spec = NetworkPolicy { metadata: ObjectMeta::default(), spec: Some(NetworkPolicySpec::default()) };
        assert_eq!(round_trip(&empty_spec)?, empty_spec);
        Ok(())
    }

    #[test]
    fn a_policy_without_metadata_is_refused() {
        let p = pb::NetworkPolicy { metadata: None, spec: None };
        assert_eq!(NetworkPolicy::try_from(p).err().map(|e| e.field), Some("metadata".to_string()));
    }
}
