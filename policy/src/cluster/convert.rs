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
    SpecView,
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
enum Dialect {
    Upstream,
    Bulkhead,
}

fn pods(p: &PodsSpec, blame: &Blame, field: &str) -> Result<(Selector, Selector), PolicyError> {
    Ok((
        Selector::parse(&p.namespace_selector, blame, &format!("{field}.namespaceSelector"))?,
        Selector::parse(&p.pod_selector, blame, &format!("{field}.podSelector"))?,
    ))
}

fn extension(dialect: Dialect, blame: &Blame, field: &str, what: &str) -> Result<(), PolicyError> {
    match dialect {
        Dialect::Bulkhead => Ok(()),
        Dialect::Upstream => Err(blame.err(
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

fn peer(
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
        if !egress {
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
fn protocol(p: &ProtocolSpec, blame: &Blame, field: &str) -> Result<Vec<PortMatch>, PolicyError> {
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
    let f = format!("{field}.{key}.destinationPort");
    let Some(port) = &spec.destination_port else {
        return Err(blame.err(f, "required; write range {start: 1, end: 65535} for every port"));
    };
    let ports = match (port.number, &port.range) {
        (Some(n), None) => {
            let n = port_number(n).map_err(|m| blame.err(format!("{f}.number"), m))?;
            PortSel::Range(n, n)
        }
        (None, Some(r)) => {
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
struct RuleView<'a> {
    name: &'a Option<String>,
    action: &'a str,
    peers: &'a [PeerSpec],
    protocols: &'a Option<Vec<ProtocolSpec>>,
}

impl<'a> From<&'a IngressRuleSpec> for RuleView<'a> {
    fn from(r: &'a IngressRuleSpec) -> Self {
        Self { name: &r.name, action: &r.action, peers: &r.from, protocols: &r.protocols }
    }
}

impl<'a> From<&'a EgressRuleSpec> for RuleView<'a> {
    fn from(r: &'a EgressRuleSpec) -> Self {
        Self { name: &r.name, action: &r.action, peers: &r.to, protocols: &r.protocols }
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

fn rules<'a>(
    specs: impl ExactSizeIterator<Item = RuleView<'a>>,
    egress: bool,
    dialect: Dialect,
    blame: &Blame,
) -> Result<Vec<TierRule>, PolicyError> {
    let (dir, peers_field) = if egress { ("egress", "to") } else { ("ingress", "from") };
    if specs.len() > MAX_ITEMS {
        return Err(blame.err(format!("spec.{dir}"), format!("{} rules; at most {MAX_ITEMS} are allowed", specs.len())));
    }
    let mut out = Vec::new();
    for (i, r) in specs.enumerate() {
        let f = format!("spec.{dir}[{i}]");
        let action = match parse_action(r.action) {
            Some(a) => a,
            None if r.action == "Allow" => {
                return Err(blame.err(format!("{f}.action"), "\"Allow\" is spelled \"Accept\" in v1alpha2"));
            }
            None => {
                return Err(blame.err(
                    format!("{f}.action"),
                    format!("unknown action {:?}; expected Accept, Deny or Pass", r.action),
                ));
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
        out.push(TierRule { name, action, peers: all, ports });
    }
    Ok(out)
}

fn validate(name: String, s: SpecView<'_>, dialect: Dialect, blame: &Blame) -> Result<ClusterPolicy, PolicyError> {
    let tier = match s.tier {
        "Admin" => Tier::Admin,
        "Baseline" => Tier::Baseline,
        other => return Err(blame.err("spec.tier", format!("unknown tier {other:?}; expected Admin or Baseline"))),
    };
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
        validate(name, SpecView::from(&o.spec), Dialect::Upstream, &blame)
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

/// Whether Bulkhead cannot enforce a peer as written: a field from a newer
/// CRD, or DNS names.
fn unenforceable(p: &PeerSpec) -> Option<String> {
    p.unknown.keys().next().cloned().or_else(|| p.domain_names.as_ref().map(|_| "domainNames".to_string()))
}

/// Rewrites the peers Bulkhead cannot enforce the way upstream asks of an
/// implementation that meets a peer it does not know: an Accept rule stops
/// matching them, a Deny or Pass rule denies all traffic. For objects from
/// the Kubernetes API, where the CRD (possibly newer than Bulkhead) already
/// accepted them; manifests and API requests are refused instead. Returns
/// one warning per rewritten rule.
pub fn fail_closed(o: &mut ClusterNetworkPolicy) -> Vec<String> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    let mut fix = |dir: &str, i: usize, action: &str, peers: &mut Vec<PeerSpec>| -> Option<bool> {
        let bad = peers.iter().find_map(unenforceable)?;
        let accept = action == "Accept";
        if accept {
            peers.retain(|p| unenforceable(p).is_none());
        } else {
            *peers = vec![PeerSpec { namespaces: Some(Default::default()), ..Default::default() }];
            if dir == "egress" {
                let everywhere = vec!["0.0.0.0/0".to_string(), "::/0".to_string()];
                peers.push(PeerSpec { networks: Some(everywhere), ..Default::default() });
            }
        }
        let now = if accept { "matches only its other peers" } else { "denies all traffic" };
        warnings.push(format!(
            "{} {name}: spec.{dir}[{i}]: {bad} is not enforceable by Bulkhead; the rule {now} (fail closed)",
            super::KIND
        ));
        Some(accept && peers.is_empty())
    };
    // Whether to keep a rule, rewriting it in place when it must deny all.
    let mut rewrite = |dir: &str,
                       i: usize,
                       action: &mut String,
                       peers: &mut Vec<PeerSpec>,
                       protocols: &mut Option<Vec<ProtocolSpec>>| {
        match fix(dir, i, action, peers) {
            Some(true) => false,
            Some(false) if action != "Accept" => {
                *action = "Deny".into();
                *protocols = None;
                true
            }
            _ => true,
        }
    };
    let mut i = 0;
    o.spec.ingress.retain_mut(|r| {
        i += 1;
        rewrite("ingress", i - 1, &mut r.action, &mut r.from, &mut r.protocols)
    });
    let mut i = 0;
    o.spec.egress.retain_mut(|r| {
        i += 1;
        rewrite("egress", i - 1, &mut r.action, &mut r.to, &mut r.protocols)
    });
    warnings
}
