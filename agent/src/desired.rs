//! The desired state of a node, parsed from the wire and validated before
//! anything touches the kernel. A state that fails here changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use bulkhead_api::agent::v1 as pb;
use bulkhead_dataplane::abi;
use bulkhead_dataplane::model::{Action, Direction, Mode};
use bulkhead_dataplane::table::PolicyEntry;
use ipnetwork::IpNetwork;

use crate::error::AgentError;

/// Labels and namespace of an identity, for flow enrichment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdentityInfo {
    /// Cluster the identity belongs to.
    pub cluster: String,
    /// Kubernetes namespace of the identity's pods.
    pub namespace: String,
    /// Labels that define the identity.
    pub labels: BTreeMap<String, String>,
}

/// A prefix, its identity, and the pod behind it when it is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcacheItem {
    /// The prefix; host bits are zero.
    pub net: IpNetwork,
    /// Security identity of addresses in the prefix; never 0.
    pub identity: u32,
    /// Namespace of the pod behind the prefix; empty if not a pod.
    pub namespace: String,
    /// Name of the pod behind the prefix; empty if not a pod.
    pub pod: String,
}

/// A pod this node must protect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Dataplane id, unique on the node and never 0.
    pub endpoint_id: u32,
    /// Security identity of the pod.
    pub identity: u32,
    /// Kubernetes namespace of the pod.
    pub namespace: String,
    /// Name of the pod.
    pub pod: String,
    /// Path of the pod's network namespace, e.g. /var/run/netns/x; `None` to find it by IP.
    pub netns: Option<PathBuf>,
    /// Pod addresses; the first of each family is used for anti-spoofing.
    pub ips: Vec<IpAddr>,
    /// [ingress, egress]
    pub mode: [Mode; 2],
    /// [ingress, egress]
    pub isolated: [bool; 2],
    /// Name of the pod's interface inside its namespace (default "eth0").
    pub pod_ifname: String,
}

impl EndpointSpec {
    /// "namespace/pod".
    pub fn name(&self) -> String {
        format!("{}/{}", self.namespace, self.pod)
    }
}

/// A validated desired state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredState {
    /// Monotonic version; an older one than the applied state is rejected.
    pub generation: u64,
    /// Identity metadata by identity number, for flow enrichment.
    pub identities: BTreeMap<u32, IdentityInfo>,
    /// Prefix-to-identity entries for `bh_ipcache`.
    pub ipcache: Vec<IpcacheItem>,
    /// Pods on this node.
    pub endpoints: Vec<EndpointSpec>,
    /// Flat policy entries for the pods of this node.
    pub policy: Vec<PolicyEntry>,
    /// Human rule names by rule id, shown in flows.
    pub rule_names: BTreeMap<u32, String>,
    /// Endpoint ids to quarantine.
    pub quarantined: BTreeSet<u32>,
    /// The cluster's block list, expired entries included (the agent lifts them).
    pub blocks: Vec<crate::blocks::BlockItem>,
}

/// Largest label set accepted for one identity; larger is a bug upstream or an attack.
pub const MAX_LABELS: usize = 64;
/// Largest label key or value accepted, in bytes (Kubernetes allows 63 + prefix).
pub const MAX_LABEL_LEN: usize = 317;

fn mode(m: i32, field: String) -> Result<Mode, AgentError> {
    match pb::Mode::try_from(m) {
        Ok(pb::Mode::Learn) => Ok(Mode::Learn),
        Ok(pb::Mode::Audit) => Ok(Mode::Audit),
        Ok(pb::Mode::Enforce) => Ok(Mode::Enforce),
        _ => Err(AgentError::invalid(field, format!("mode must be learn, audit or enforce (got {m})"))),
    }
}

fn port(p: u32, field: String) -> Result<u16, AgentError> {
    u16::try_from(p).map_err(|_| AgentError::invalid(field, format!("port {p} is above 65535")))
}

impl TryFrom<pb::DesiredState> for DesiredState {
    type Error = AgentError;

    fn try_from(s: pb::DesiredState) -> Result<Self, AgentError> {
        let mut out = DesiredState { generation: s.generation, ..Default::default() };

        for (i, id) in s.identities.into_iter().enumerate() {
            let f = |x: &str| format!("identities[{i}].{x}");
            if id.id < abi::BH_ID_FIRST_ALLOCATED {
                return Err(AgentError::invalid(
                    f("id"),
                    format!("{} is reserved (allocated identities start at 256)", id.id),
                ));
            }
            if id.labels.len() > MAX_LABELS {
                return Err(AgentError::invalid(
                    f("labels"),
                    format!("{} labels, at most {MAX_LABELS}", id.labels.len()),
                ));
            }
            if let Some((k, v)) =
                id.labels.iter().find(|(k, v)| k.len() > MAX_LABEL_LEN || v.len() > MAX_LABEL_LEN || k.is_empty())
            {
                return Err(AgentError::invalid(
                    f("labels"),
                    format!("label {k:?}={v:?} is empty or longer than {MAX_LABEL_LEN} bytes"),
                ));
            }
            let info =
                IdentityInfo { cluster: id.cluster, namespace: id.namespace, labels: id.labels.into_iter().collect() };
            if out.identities.insert(id.id, info).is_some() {
                return Err(AgentError::invalid(f("id"), format!("identity {} listed twice", id.id)));
            }
        }

        let mut seen_nets = BTreeSet::new();
        for (i, e) in s.ipcache.into_iter().enumerate() {
            let field = format!("ipcache[{i}].cidr");
            let net: IpNetwork = e
                .cidr
                .parse()
                .map_err(|err| AgentError::invalid(&field, format!("invalid CIDR {:?}: {err}", e.cidr)))?;
            if net.network() != net.ip() {
                return Err(AgentError::invalid(
                    &field,
                    format!("{} has host bits set; did you mean {}/{}?", e.cidr, net.network(), net.prefix()),
                ));
            }
            if e.identity == abi::BH_ID_ANY {
                return Err(AgentError::invalid(
                    format!("ipcache[{i}].identity"),
                    "identity 0 is the policy wildcard, not an identity",
                ));
            }
            if !seen_nets.insert(net) {
                return Err(AgentError::invalid(field, format!("{net} listed twice")));
            }
            out.ipcache.push(IpcacheItem { net, identity: e.identity, namespace: e.namespace, pod: e.pod });
        }

        let mut ids = BTreeSet::new();
        for (i, e) in s.endpoints.into_iter().enumerate() {
            let f = |x: &str| format!("endpoints[{i}].{x}");
            if e.endpoint_id == 0 || !ids.insert(e.endpoint_id) {
                return Err(AgentError::invalid(f("endpoint_id"), format!("{} is zero or duplicated", e.endpoint_id)));
            }
            let mut ips = Vec::new();
            for (j, ip) in e.ips.iter().enumerate() {
                ips.push(ip.parse().map_err(|err| {
                    AgentError::invalid(format!("endpoints[{i}].ips[{j}]"), format!("invalid IP {ip:?}: {err}"))
                })?);
            }
            if ips.is_empty() && e.netns.is_empty() {
                return Err(AgentError::invalid(
                    f("netns"),
                    "an endpoint needs its netns path or an IP to find its interface",
                ));
            }
            out.endpoints.push(EndpointSpec {
                endpoint_id: e.endpoint_id,
                identity: e.identity,
                mode: [mode(e.ingress_mode, f("ingress_mode"))?, mode(e.egress_mode, f("egress_mode"))?],
                isolated: [e.ingress_isolated, e.egress_isolated],
                netns: (!e.netns.is_empty()).then(|| PathBuf::from(e.netns)),
                pod_ifname: if e.pod_ifname.is_empty() { "eth0".into() } else { e.pod_ifname },
                namespace: e.namespace,
                pod: e.pod,
                ips,
            });
        }

        for (i, p) in s.policy.into_iter().enumerate() {
            let f = |x: &str| format!("policy[{i}].{x}");
            if !ids.contains(&p.endpoint_id) {
                return Err(AgentError::invalid(
                    f("endpoint_id"),
                    format!("endpoint {} is not in this state", p.endpoint_id),
                ));
            }
            let direction = match bulkhead_api::flow::v1::Direction::try_from(p.direction) {
                Ok(bulkhead_api::flow::v1::Direction::Ingress) => Direction::Ingress,
                Ok(bulkhead_api::flow::v1::Direction::Egress) => Direction::Egress,
                _ => {
                    return Err(AgentError::invalid(f("direction"), "must be ingress or egress"));
                }
            };
            let action = match pb::Action::try_from(p.action) {
                Ok(pb::Action::Allow) => Action::Allow,
                Ok(pb::Action::Deny) => Action::Deny,
                _ => return Err(AgentError::invalid(f("action"), "must be allow or deny")),
            };
            let protocol = u8::try_from(p.protocol).map_err(|_| {
                AgentError::invalid(f("protocol"), format!("{} is not an IP protocol number", p.protocol))
            })?;
            let lo = port(p.port, f("port"))?;
            let hi = port(p.end_port, f("end_port"))?;
            if protocol == 0 && (lo != 0 || hi != 0) {
                return Err(AgentError::invalid(f("port"), "a port needs a protocol"));
            }
            if hi != 0 && (lo == 0 || hi < lo) {
                return Err(AgentError::invalid(
                    f("end_port"),
                    format!("end_port {hi} needs a port at or below it (port {lo})"),
                ));
            }
            if p.rule_id == 0 {
                return Err(AgentError::invalid(f("rule_id"), "rule ids start at 1 (0 means no rule in flows)"));
            }
            if !p.rule_name.is_empty() {
                out.rule_names.insert(p.rule_id, p.rule_name);
            }
            out.policy.push(PolicyEntry {
                endpoint_id: p.endpoint_id,
                identity: p.remote_identity,
                direction,
                protocol,
                port: lo,
                end_port: hi,
                action,
                rule_id: p.rule_id,
            });
        }

        for q in s.quarantined_endpoints {
            if !ids.contains(&q) {
                return Err(AgentError::invalid("quarantined_endpoints", format!("endpoint {q} is not in this state")));
            }
            out.quarantined.insert(q);
        }
        out.blocks = crate::blocks::parse(s.blocks)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> pb::DesiredState {
        pb::DesiredState {
            generation: 1,
            endpoints: vec![pb::Endpoint {
                endpoint_id: 1,
                identity: 300,
                namespace: "x".into(),
                pod: "a".into(),
                ips: vec!["10.0.0.1".into()],
                ingress_mode: pb::Mode::Enforce as i32,
                egress_mode: pb::Mode::Enforce as i32,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn err(s: pb::DesiredState) -> String {
        DesiredState::try_from(s).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_valid_state_parses() {
        let s = DesiredState::try_from(base()).unwrap();
        assert_eq!(s.endpoints[0].mode, [Mode::Enforce, Mode::Enforce]);
    }

    #[test]
    fn bad_input_is_rejected_with_the_field_named() {
        let mut s = base();
        s.ipcache.push(pb::IpcacheEntry { cidr: "10.0.0.0/33".into(), identity: 300, ..Default::default() });
        assert!(err(s).contains("ipcache[0].cidr"));

        let mut s = base();
        s.ipcache.push(pb::IpcacheEntry { cidr: "10.0.0.1/24".into(), identity: 300, ..Default::default() });
        assert!(err(s).contains("host bits"));

        let mut s = base();
        s.policy.push(pb::PolicyEntry {
            endpoint_id: 1,
            direction: 1,
            action: 1,
            protocol: 6,
            port: 70000,
            rule_id: 1,
            ..Default::default()
        });
        assert!(err(s).contains("policy[0].port"));

        let mut s = base();
        s.policy.push(pb::PolicyEntry {
            endpoint_id: 1,
            direction: 1,
            action: 1,
            protocol: 6,
            port: 90,
            end_port: 80,
            rule_id: 1,
            ..Default::default()
        });
        assert!(err(s).contains("policy[0].end_port"));

        let mut s = base();
        s.policy.push(pb::PolicyEntry { endpoint_id: 9, direction: 1, action: 1, rule_id: 1, ..Default::default() });
        assert!(err(s).contains("endpoint 9"));

        let mut s = base();
        s.endpoints[0].ingress_mode = 0;
        assert!(err(s).contains("endpoints[0].ingress_mode"));

        let mut s = base();
        s.identities.push(pb::Identity {
            id: 400,
            labels: (0..100).map(|i| (format!("k{i}"), "v".into())).collect(),
            ..Default::default()
        });
        assert!(err(s).contains("identities[0].labels"));

        let mut s = base();
        s.identities.push(pb::Identity { id: 2, ..Default::default() });
        assert!(err(s).contains("reserved"));
    }
}
