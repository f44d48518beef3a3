//! Validating either cluster-tier kind into the one `ClusterPolicy` the
//! evaluator and compiler read. The limits are upstream's CRD validation,
//! checked again here because manifests and the API reach Bulkhead without
//! an API server in between.

use crate::error::{Blame, PolicyError};
use crate::netpol::parse_cidr;
use crate::ports::{PortMatch, PortSel, Protocol, check_port_name, port_number};
use crate::selector::Selector;

use super::spec::{
    BulkheadClusterPolicy, ClusterNetworkPolicy, EgressRuleSpec, IngressRuleSpec, PeerSpec, PodsSpec, ProtocolSpec,
    SpecView, Unknown,
};
use super::{ClusterPolicy, Tier, TierAction, TierPeer, TierRule};

/// Upstream's limit on rules per direction, peers per rule, protocols per
/// rule and networks per peer.
pub const MAX_ITEMS: usize = 25;
/// Upstream's limit on a rule name's length.
pub const MAX_RULE_NAME: usize = 100;
/// Highest priority; lower numbers are evaluated first.
pub const MAX_PRIORITY: i32 = 1000;

/// Which kind is being read: the extension peers are Bulkhead's only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// sig-network's kind as written.
    Upstream,
    /// sig-network's kind after `fail_closed`, whose deny-all rules name
    /// every address for ingress too.
    UpstreamFailedClosed,
    /// BulkheadClusterPolicy.
    Bulkhead,
}

/// Refuses the first field this version does not know.
pub(super) fn known(unknown: &Unknown, blame: &Blame, field: &str) -> Result<(), PolicyError> {
    match unknown.keys().next() {
        Some(k) => Err(blame.err(format!("{field}.{k}"), "unknown field")),
        None => Ok(()),
    }
}

fn pods(p: &PodsSpec, blame: &Blame, field: &str) -> Result<(Selector, Selector), PolicyError> {
    known(&p.unknown, blame, field)?;
    Ok((
        Selector::parse(&p.namespace_selector, blame, &format!("{field}.namespaceSelector"))?,
        Selector::parse(&p.pod_selector, blame, &format!("{field}.podSelector"))?,
    ))
}

fn extension(dialect: Dialect, blame: &Blame, field: &str, what: &str) -> Result<(), PolicyError> {
    match dialect {
        Dialect::Bulkhead => Ok(()),
        Dialect::Upstream | Dialect::UpstreamFailedClosed => Err(blame.err(
            field,
            format!(
                "{what} is a Bulkhead extension that policy.networking.k8s.io/v1alpha2 cannot say: \
                 write this policy as kind BulkheadClusterPolicy, apiVersion bulkhead.dev/v1alpha2"
            ),
        )),
    }
}

fn list_len(n: usize, blame: &Blame, field: &str, what: &str) -> Result<(), PolicyError> {
    match n {
        0 => Err(blame.err(field, format!("{what} must not be empty"))),
        n if n > MAX_ITEMS => Err(blame.err(field, format!("{n} {what}; at most {MAX_ITEMS} are allowed"))),
        _ => Ok(()),
    }
}

/// One peer's matches.
pub(super) fn peer(
    p: &PeerSpec,
    egress: bool,
    dialect: Dialect,
    blame: &Blame,
    field: &str,
) -> Result<Vec<TierPeer>, PolicyError> {
    if let Some(k) = p.unknown.keys().next() {
        return Err(blame.err(format!("{field}.{k}"), "unknown peer field"));
    }
    let set = [
        p.namespaces.is_some(),
        p.pods.is_some(),
        p.nodes.is_some(),
        p.networks.is_some(),
        p.domain_names.is_some(),
        p.services.is_some(),
        p.clusters.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err(blame.err(
            field,
            "a peer needs exactly one of namespaces, pods, nodes, networks (or, in a BulkheadClusterPolicy, services or clusters)",
        ));
    }
    if let Some(ns) = &p.namespaces {
        let namespaces = Selector::parse(ns, blame, &format!("{field}.namespaces"))?;
        return Ok(vec![TierPeer::Pods { namespaces, pods: Selector::everything() }]);
    }
    if let Some(ps) = &p.pods {
        let (namespaces, pods) = pods(ps, blame, &format!("{field}.pods"))?;
        return Ok(vec![TierPeer::Pods { namespaces, pods }]);
    }
    if let Some(n) = &p.nodes {
        if !egress {
            return Err(blame.err(format!("{field}.nodes"), "nodes peers are for egress rules only"));
        }
        return Ok(vec![TierPeer::Nodes(Selector::parse(n, blame, &format!("{field}.nodes"))?)]);
    }
    if p.domain_names.is_some() {
        return Err(blame.err(
            format!("{field}.domainNames"),
            "domainNames peers are not supported: Bulkhead's dataplane sees addresses, not DNS names; use networks",
        ));
    }
    let mut out = Vec::new();
    if let Some(nets) = &p.networks {
        if !egress && dialect != Dialect::UpstreamFailedClosed {
            extension(dialect, blame, &format!("{field}.networks"), "an ingress networks peer")?;
        }
        list_len(nets.len(), blame, &format!("{field}.networks"), "networks")?;
        for (i, n) in nets.iter().enumerate() {
            out.push(TierPeer::Network(parse_cidr(n, blame, &format!("{field}.networks[{i}]"))?));
        }
    }
    if let Some(svcs) = &p.services {
        extension(dialect, blame, &format!("{field}.services"), "a services peer")?;
        list_len(svcs.len(), blame, &format!("{field}.services"), "services")?;
        for (i, s) in svcs.iter().enumerate() {
            if s.namespace.is_empty() || s.name.is_empty() {
                return Err(blame.err(format!("{field}.services[{i}]"), "namespace and name are required"));
            }
            out.push(TierPeer::Service(s.clone()));
        }
    }
    if let Some(clusters) = &p.clusters {
        extension(dialect, blame, &format!("{field}.clusters"), "a clusters peer")?;
        list_len(clusters.len(), blame, &format!("{field}.clusters"), "clusters")?;
        for (i, c) in clusters.iter().enumerate() {
            crate::selector::check_value(c).map_err(|m| blame.err(format!("{field}.clusters[{i}]"), m))?;
            out.push(TierPeer::Cluster(c.clone()));
        }
    }
    Ok(out)
}

/// One protocols entry's matches: a named port matches whatever protocol
/// the destination's container port of that name has.
pub(super) fn protocol(p: &ProtocolSpec, blame: &Blame, field: &str) -> Result<Vec<PortMatch>, PolicyError> {
    known(&p.unknown, blame, field)?;
    let by_protocol =
        [(Protocol::Tcp, &p.tcp, "tcp"), (Protocol::Udp, &p.udp, "udp"), (Protocol::Sctp, &p.sctp, "sctp")];
    let set =
        by_protocol.iter().filter(|(_, s, _)| s.is_some()).count() + usize::from(p.destination_named_port.is_some());
    if set != 1 {
        return Err(blame.err(field, "a protocols entry needs exactly one of tcp, udp, sctp or destinationNamedPort"));
    }
    if let Some(name) = &p.destination_named_port {
        check_port_name(name).map_err(|m| blame.err(format!("{field}.destinationNamedPort"), m))?;
        return Ok(Protocol::ALL
            .iter()
            .map(|p| PortMatch { protocol: *p, ports: PortSel::Named(name.clone()) })
            .collect());
    }
    let Some((proto, Some(spec), key)) = by_protocol.into_iter().find(|(_, s, _)| s.is_some()) else {
        return Err(blame.err(field, "a protocols entry needs exactly one of tcp, udp, sctp or destinationNamedPort"));
    };
    known(&spec.unknown, blame, &format!("{field}.{key}"))?;
    let f = format!("{field}.{key}.destinationPort");
    let Some(port) = &spec.destination_port else {
        return Err(blame.err(f, "required; write range {start: 1, end: 65535} for every port"));
    };
    known(&port.unknown, blame, &f)?;
    let ports = match (port.number, &port.range) {
        (Some(n), None) => {
            let n = port_number(n).map_err(|m| blame.err(format!("{f}.number"), m))?;
            PortSel::Range(n, n)
        }
        (None, Some(r)) => {
            known(&r.unknown, blame, &format!("{f}.range"))?;
            let lo = port_number(r.start).map_err(|m| blame.err(format!("{f}.range.start"), m))?;
            let hi = port_number(r.end).map_err(|m| blame.err(format!("{f}.range.end"), m))?;
            if lo >= hi {
                return Err(blame.err(
                    format!("{f}.range"),
                    format!("start {lo} must be below end {hi} (one port is written as number)"),
                ));
            }
            PortSel::Range(lo, hi)
        }
        _ => return Err(blame.err(f, "exactly one of number or range is required")),
    };
    Ok(vec![PortMatch { protocol: proto, ports }])
}

/// One rule, either direction.
pub(super) struct RuleView<'a> {
    pub name: &'a Option<String>,
    pub action: &'a str,
    pub peers: &'a [PeerSpec],
    pub protocols: &'a Option<Vec<ProtocolSpec>>,
    pub unknown: &'a Unknown,
}

impl<'a> From<&'a IngressRuleSpec> for RuleView<'a> {
    fn from(r: &'a IngressRuleSpec) -> Self {
        Self { name: &r.name, action: &r.action, peers: &r.from, protocols: &r.protocols, unknown: &r.unknown }
    }
}

impl<'a> From<&'a EgressRuleSpec> for RuleView<'a> {
    fn from(r: &'a EgressRuleSpec) -> Self {
        Self { name: &r.name, action: &r.action, peers: &r.to, protocols: &r.protocols, unknown: &r.unknown }
    }
}

/// The wire spelling of an action.
pub(crate) fn parse_action(s: &str) -> Option<TierAction> {
    match s {
        "Accept" => Some(TierAction::Allow),
        "Deny" => Some(TierAction::Deny),
        "Pass" => Some(TierAction::Pass),
        _ => None,
    }
}

/// The field path of a direction's rules and of a rule's peers.
pub(super) fn direction(egress: bool) -> (&'static str, &'static str) {
    if egress { ("egress", "to") } else { ("ingress", "from") }
}

/// The `i`th rule of a direction.
pub(super) fn rule(
    r: &RuleView<'_>,
    i: usize,
    egress: bool,
    dialect: Dialect,
    blame: &Blame,
) -> Result<TierRule, PolicyError> {
    let (dir, peers_field) = direction(egress);
    let f = format!("spec.{dir}[{i}]");
    known(r.unknown, blame, &f)?;
    let action = match parse_action(r.action) {
        Some(a) => a,
        None if r.action == "Allow" => {
            return Err(blame.err(format!("{f}.action"), "\"Allow\" is spelled \"Accept\" in v1alpha2"));
        }
        None => {
            return Err(blame
                .err(format!("{f}.action"), format!("unknown action {:?}; expected Accept, Deny or Pass", r.action)));
        }
    };
    list_len(r.peers.len(), blame, &format!("{f}.{peers_field}"), "peers")?;
    let mut all = Vec::new();
    for (j, p) in r.peers.iter().enumerate() {
        all.extend(peer(p, egress, dialect, blame, &format!("{f}.{peers_field}[{j}]"))?);
    }
    let ports = match r.protocols {
        None => None,
        Some(ps) => {
            list_len(ps.len(), blame, &format!("{f}.protocols"), "protocols")?;
            let mut matches = Vec::new();
            for (j, p) in ps.iter().enumerate() {
                matches.extend(protocol(p, blame, &format!("{f}.protocols[{j}]"))?);
            }
            Some(matches)
        }
    };
    let named = ports.iter().flatten().any(|m| matches!(m.ports, PortSel::Named(_)));
    if egress && named && all.iter().any(|p| matches!(p, TierPeer::Network(_) | TierPeer::Nodes(_))) {
        return Err(blame.err(
            format!("{f}.protocols"),
            "an egress destinationNamedPort cannot be used with networks or nodes peers: addresses have no named ports",
        ));
    }
    let name = match r.name {
        Some(n) if n.chars().count() > MAX_RULE_NAME => {
            return Err(blame.err(format!("{f}.name"), format!("longer than {MAX_RULE_NAME} characters")));
        }
        Some(n) => n.clone(),
        None => format!("{dir}[{i}]"),
    };
    Ok(TierRule { name, action, peers: all, ports })
}

fn rules<'a>(
    specs: impl ExactSizeIterator<Item = RuleView<'a>>,
    egress: bool,
    dialect: Dialect,
    blame: &Blame,
) -> Result<Vec<TierRule>, PolicyError> {
    let (dir, _) = direction(egress);
    if specs.len() > MAX_ITEMS {
        return Err(blame.err(format!("spec.{dir}"), format!("{} rules; at most {MAX_ITEMS} are allowed", specs.len())));
    }
    specs.enumerate().map(|(i, r)| rule(&r, i, egress, dialect, blame)).collect()
}

fn validate(name: String, s: SpecView<'_>, dialect: Dialect, blame: &Blame) -> Result<ClusterPolicy, PolicyError> {
    let tier = match s.tier {
        "Admin" => Tier::Admin,
        "Baseline" => Tier::Baseline,
        other => return Err(blame.err("spec.tier", format!("unknown tier {other:?}; expected Admin or Baseline"))),
    };
    known(s.unknown, blame, "spec")?;
    known(&s.subject.unknown, blame, "spec.subject")?;
    if !(0..=MAX_PRIORITY).contains(&s.priority) {
        return Err(blame.err("spec.priority", format!("{} is outside 0-{MAX_PRIORITY}", s.priority)));
    }
    let (subject_namespaces, subject_pods) = match (&s.subject.namespaces, &s.subject.pods) {
        (Some(ns), None) => (Selector::parse(ns, blame, "spec.subject.namespaces")?, Selector::everything()),
        (None, Some(p)) => pods(p, blame, "spec.subject.pods")?,
        _ => return Err(blame.err("spec.subject", "exactly one of namespaces or pods is required")),
    };
    Ok(ClusterPolicy {
        name,
        tier,
        priority: s.priority,
        subject_namespaces,
        subject_pods,
        ingress: rules(s.ingress.iter().map(RuleView::from), false, dialect, blame)?,
        egress: rules(s.egress.iter().map(RuleView::from), true, dialect, blame)?,
    })
}

fn object_name(
    m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    blame: &Blame,
) -> Result<String, PolicyError> {
    match m.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(n.to_string()),
        _ => Err(blame.err("metadata.name", "a name is required")),
    }
}

impl TryFrom<&ClusterNetworkPolicy> for ClusterPolicy {
    type Error = PolicyError;

    fn try_from(o: &ClusterNetworkPolicy) -> Result<Self, PolicyError> {
        let blame = Blame::new(super::KIND, None, o.metadata.name.as_deref().unwrap_or_default());
        let name = object_name(&o.metadata, &blame)?;
        let failed_closed = o.metadata.annotations.iter().flatten().any(|(k, _)| k == super::FAIL_CLOSED_ANNOTATION);
        let dialect = if failed_closed { Dialect::UpstreamFailedClosed } else { Dialect::Upstream };
        validate(name, SpecView::from(&o.spec), dialect, &blame)
    }
}

impl TryFrom<&BulkheadClusterPolicy> for ClusterPolicy {
    type Error = PolicyError;

    fn try_from(o: &BulkheadClusterPolicy) -> Result<Self, PolicyError> {
        let blame = Blame::new(super::BULKHEAD_KIND, None, o.metadata.name.as_deref().unwrap_or_default());
        let name = object_name(&o.metadata, &blame)?;
        // The two kinds are separate objects in the API: their names may
        // coincide, their policies may not.
        validate(format!("{}/{name}", super::BULKHEAD_KIND), SpecView::from(&o.spec), Dialect::Bulkhead, &blame)
    }
}
