//! Bulkhead's first cluster-tier kind, `bulkhead.dev/v1alpha1`
//! ClusterNetworkPolicy. It shared its kind name with sig-network's
//! `policy.networking.k8s.io/v1alpha2` ClusterNetworkPolicy, so it is no
//! longer accepted; this module only reads it to convert it
//! (`bulkhead policy migrate`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde::Deserialize;

use super::spec::{
    BulkheadClusterPolicy, BulkheadClusterPolicySpec, ClusterNetworkPolicy, ClusterNetworkPolicySpec, EgressRuleSpec,
    IngressRuleSpec, PeerSpec, PodsSpec, PortSpec, ProtocolPortSpec, ProtocolSpec, RangeSpec, ServiceRef, SubjectSpec,
};
use crate::error::{Blame, PolicyError};
use crate::ports::Protocol;

/// API group and version of the retired kind.
pub const API_VERSION: &str = "bulkhead.dev/v1alpha1";

/// What a manifest carrying the retired kind is told.
pub const MIGRATION: &str = "bulkhead.dev/v1alpha1 ClusterNetworkPolicy is retired, because sig-network's \
    policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy has the same name; convert the file with \
    `bulkhead policy migrate -f FILE` (Allow becomes Accept, ports become protocols; policies with services, \
    clusters or ingress networks peers become bulkhead.dev/v1alpha2 BulkheadClusterPolicy)";

/// The retired kind, as manifests wrote it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LegacyClusterNetworkPolicy {
    /// Name and labels.
    #[serde(default)]
    pub metadata: meta::ObjectMeta,
    /// The policy.
    pub spec: LegacySpec,
}

/// The retired spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacySpec {
    tier: String,
    #[serde(default)]
    priority: i32,
    subject: SubjectSpec,
    #[serde(default)]
    ingress: Vec<LegacyRule>,
    #[serde(default)]
    egress: Vec<LegacyRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyRule {
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    from: Option<Vec<LegacyPeer>>,
    #[serde(default)]
    to: Option<Vec<LegacyPeer>>,
    #[serde(default)]
    ports: Option<Vec<LegacyPort>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyPeer {
    #[serde(default)]
    namespaces: Option<meta::LabelSelector>,
    #[serde(default)]
    pods: Option<PodsSpec>,
    #[serde(default)]
    services: Option<Vec<ServiceRef>>,
    #[serde(default)]
    networks: Option<Vec<String>>,
    #[serde(default)]
    clusters: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LegacyPort {
    #[serde(default)]
    port_number: Option<LegacyPortNumber>,
    #[serde(default)]
    port_range: Option<LegacyPortRange>,
    #[serde(default)]
    named_port: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyPortNumber {
    #[serde(default)]
    protocol: Option<String>,
    port: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyPortRange {
    #[serde(default)]
    protocol: Option<String>,
    start: i32,
    end: i32,
}

/// A converted policy: upstream's kind when it can say everything, else
/// Bulkhead's extension.
#[derive(Debug, Clone, PartialEq)]
pub enum Migrated {
    /// policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy.
    Upstream(Box<ClusterNetworkPolicy>),
    /// bulkhead.dev/v1alpha2 BulkheadClusterPolicy.
    Bulkhead(Box<BulkheadClusterPolicy>),
}

fn protocols(ports: &[LegacyPort], blame: &Blame, field: &str) -> Result<Vec<ProtocolSpec>, PolicyError> {
    let mut out = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let (proto, port) = match (&p.port_number, &p.port_range, &p.named_port) {
            (Some(n), None, None) => (n.protocol.as_deref(), PortSpec { number: Some(n.port), ..Default::default() }),
            (None, Some(r), None) if r.start == r.end => {
                (r.protocol.as_deref(), PortSpec { number: Some(r.start), ..Default::default() })
            }
            (None, Some(r), None) => (
                r.protocol.as_deref(),
                PortSpec {
                    range: Some(RangeSpec { start: r.start, end: r.end, unknown: Default::default() }),
                    ..Default::default()
                },
            ),
            (None, None, Some(name)) => {
                out.push(ProtocolSpec { destination_named_port: Some(name.clone()), ..Default::default() });
                continue;
            }
            _ => return Err(blame.err(f, "a port needs exactly one of portNumber, portRange or namedPort")),
        };
        let spec = Some(ProtocolPortSpec { destination_port: Some(port), ..Default::default() });
        out.push(match Protocol::parse(proto, blame, &f)? {
            Protocol::Tcp => ProtocolSpec { tcp: spec, ..Default::default() },
            Protocol::Udp => ProtocolSpec { udp: spec, ..Default::default() },
            Protocol::Sctp => ProtocolSpec { sctp: spec, ..Default::default() },
        });
    }
    Ok(out)
}

fn peers(list: &[LegacyPeer], extended: &mut bool, ingress: bool) -> Vec<PeerSpec> {
    list.iter()
        .map(|p| {
            *extended |= p.services.is_some() || p.clusters.is_some() || (ingress && p.networks.is_some());
            PeerSpec {
                namespaces: p.namespaces.clone(),
                pods: p.pods.clone(),
                networks: p.networks.clone(),
                services: p.services.clone(),
                clusters: p.clusters.clone(),
                ..Default::default()
            }
        })
        .collect()
}

fn action(a: &str) -> String {
    if a == "Allow" { "Accept".into() } else { a.to_string() }
}

/// A retired rule's ports: absent and empty both mean every port, as they
/// did in the retired kind.
fn ports(r: &LegacyRule, blame: &Blame, field: &str) -> Result<Option<Vec<ProtocolSpec>>, PolicyError> {
    match r.ports.as_deref() {
        None | Some([]) => Ok(None),
        Some(p) => protocols(p, blame, &format!("{field}.ports")).map(Some),
    }
}

/// Converts one retired policy. The result is validated by the caller, as
/// any new object is, so a policy the old kind rejected stays rejected.
pub fn migrate(o: &LegacyClusterNetworkPolicy) -> Result<Migrated, PolicyError> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let blame = Blame::new("ClusterNetworkPolicy (bulkhead.dev/v1alpha1)", None, &name);
    let mut extended = false;
    let mut ingress = Vec::new();
    for (i, r) in o.spec.ingress.iter().enumerate() {
        let f = format!("spec.ingress[{i}]");
        let ps = ports(r, &blame, &f)?;
        let from = peers(r.from.as_deref().unwrap_or_default(), &mut extended, true);
        let (name, action, unknown) = (r.name.clone(), action(&r.action), Default::default());
        ingress.push(IngressRuleSpec { name, action, from, protocols: ps, unknown });
    }
    let mut egress = Vec::new();
    for (i, r) in o.spec.egress.iter().enumerate() {
        let f = format!("spec.egress[{i}]");
        let ps = ports(r, &blame, &f)?;
        let to = peers(r.to.as_deref().unwrap_or_default(), &mut extended, false);
        let (name, action, unknown) = (r.name.clone(), action(&r.action), Default::default());
        egress.push(EgressRuleSpec { name, action, to, protocols: ps, unknown });
    }
    let s = &o.spec;
    let mut metadata = o.metadata.clone();
    metadata.resource_version = None;
    metadata.uid = None;
    metadata.managed_fields = None;
    metadata.creation_timestamp = None;
    // The new object is created, not moved: the old one's finalizers and
    // owners are the old one's (a finalizer nobody serves would block its
    // deletion forever).
    metadata.finalizers = None;
    metadata.owner_references = None;
    metadata.generation = None;
    metadata.deletion_timestamp = None;
    metadata.deletion_grace_period_seconds = None;
    Ok(if extended {
        let spec = BulkheadClusterPolicySpec {
            tier: s.tier.clone(),
            priority: s.priority,
            subject: s.subject.clone(),
            ingress,
            egress,
            unknown: Default::default(),
        };
        let mut out = BulkheadClusterPolicy::new(&name, spec);
        out.metadata = metadata;
        Migrated::Bulkhead(Box::new(out))
    } else {
        let spec = ClusterNetworkPolicySpec {
            tier: s.tier.clone(),
            priority: s.priority,
            subject: s.subject.clone(),
            ingress,
            egress,
            unknown: Default::default(),
        };
        let mut out = ClusterNetworkPolicy::new(&name, spec);
        out.metadata = metadata;
        Migrated::Upstream(Box::new(out))
    })
}
