//! Objects the Kubernetes API server already admitted. Their CRD may be
//! newer than Bulkhead, or laxer than its validation, and refusing such an
//! object whole would stop enforcing its Deny rules. Each rule Bulkhead
//! cannot enforce as written is rewritten the way upstream asks of an
//! implementation that meets a peer it does not support: an Accept rule
//! keeps only what Bulkhead can enforce (or goes), any other rule denies
//! all traffic. Manifests and API requests are refused instead.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::convert::{self, Dialect, MAX_RULE_NAME, RuleView};
use super::spec::{
    BulkheadClusterPolicy, ClusterNetworkPolicy, EgressRuleSpec, IngressRuleSpec, PeerSpec, ProtocolSpec, Unknown,
};
use super::{BULKHEAD_KIND, FAIL_CLOSED_ANNOTATION, KIND};
use crate::error::Blame;

/// One rule, mutable, either direction.
struct RuleMut<'a> {
    name: &'a mut Option<String>,
    action: &'a mut String,
    peers: &'a mut Vec<PeerSpec>,
    protocols: &'a mut Option<Vec<ProtocolSpec>>,
    unknown: &'a mut Unknown,
}

impl<'a> From<&'a mut IngressRuleSpec> for RuleMut<'a> {
    fn from(r: &'a mut IngressRuleSpec) -> Self {
        let (name, action, protocols, unknown) = (&mut r.name, &mut r.action, &mut r.protocols, &mut r.unknown);
        Self { name, action, peers: &mut r.from, protocols, unknown }
    }
}

impl<'a> From<&'a mut EgressRuleSpec> for RuleMut<'a> {
    fn from(r: &'a mut EgressRuleSpec) -> Self {
        let (name, action, protocols, unknown) = (&mut r.name, &mut r.action, &mut r.protocols, &mut r.unknown);
        Self { name, action, peers: &mut r.to, protocols, unknown }
    }
}

impl RuleMut<'_> {
    fn view(&self) -> RuleView<'_> {
        RuleView {
            name: self.name,
            action: self.action,
            peers: self.peers,
            protocols: self.protocols,
            unknown: self.unknown,
        }
    }
}

/// Peers matching every address: all pods of every namespace, and every
/// IPv4 and IPv6 address (nodes and the world included).
fn everyone() -> Vec<PeerSpec> {
    vec![
        PeerSpec { namespaces: Some(Default::default()), ..Default::default() },
        PeerSpec { networks: Some(vec!["0.0.0.0/0".into(), "::/0".into()]), ..Default::default() },
    ]
}

/// What a rewritten rule now does, for the warning.
enum Outcome {
    Narrowed,
    Dropped,
    DeniesItsPeers,
    DeniesAll,
}

struct Rewriter<'a> {
    egress: bool,
    dialect: Dialect,
    blame: &'a Blame,
}

impl Rewriter<'_> {
    fn enforceable(&self, r: &RuleMut<'_>, i: usize) -> Result<(), crate::error::PolicyError> {
        convert::rule(&r.view(), i, self.egress, self.dialect, self.blame).map(|_| ())
    }

    fn peer_ok(&self, p: &PeerSpec) -> bool {
        convert::peer(p, self.egress, self.dialect, self.blame, "").is_ok()
    }

    /// An Accept rule keeps the peers and protocols Bulkhead can enforce,
    /// which only narrows it; a named port never matches an address peer.
    fn accept(&self, r: &mut RuleMut<'_>, i: usize) -> Outcome {
        if !r.unknown.is_empty() {
            return Outcome::Dropped;
        }
        r.peers.retain(|p| self.peer_ok(p));
        if let Some(ps) = r.protocols.as_mut() {
            ps.retain(|p| convert::protocol(p, self.blame, "").is_ok());
            if ps.is_empty() {
                return Outcome::Dropped;
            }
            if self.egress && ps.iter().any(|p| p.destination_named_port.is_some()) {
                r.peers.retain(|p| p.networks.is_none() && p.nodes.is_none());
            }
        }
        if r.peers.is_empty() || self.enforceable(r, i).is_err() {
            return Outcome::Dropped;
        }
        Outcome::Narrowed
    }

    /// Any other rule becomes a Deny, which only widens what it denies: of
    /// its own peers on every port when only its ports are in doubt, of all
    /// traffic otherwise.
    fn deny(&self, r: &mut RuleMut<'_>, i: usize) -> Outcome {
        let peers_ok = r.unknown.is_empty() && !r.peers.is_empty() && r.peers.iter().all(|p| self.peer_ok(p));
        *r.action = "Deny".into();
        r.unknown.clear();
        *r.protocols = None;
        if let Some(n) = r.name.as_mut() {
            *n = n.chars().take(MAX_RULE_NAME).collect();
        }
        if peers_ok && self.enforceable(r, i).is_ok() {
            return Outcome::DeniesItsPeers;
        }
        *r.peers = everyone();
        Outcome::DeniesAll
    }

    /// Whether to keep rule `i`, rewritten if need be, and the warning.
    fn fix(&self, mut r: RuleMut<'_>, i: usize) -> (bool, Option<String>) {
        let Err(e) = self.enforceable(&r, i) else { return (true, None) };
        let outcome = if r.action.as_str() == "Accept" { self.accept(&mut r, i) } else { self.deny(&mut r, i) };
        let now = match outcome {
            Outcome::Narrowed => "matches only its peers and protocols Bulkhead can enforce",
            Outcome::Dropped => "is left out",
            Outcome::DeniesItsPeers => "denies all traffic of its peers",
            Outcome::DeniesAll => "denies all traffic",
        };
        (!matches!(outcome, Outcome::Dropped), Some(format!("{e}; the rule {now} (fail closed)")))
    }
}

fn rewrite(
    kind: &str,
    meta: &mut ObjectMeta,
    dialect: Dialect,
    ingress: &mut Vec<IngressRuleSpec>,
    egress: &mut Vec<EgressRuleSpec>,
) -> Vec<String> {
    // Only this function may say an object was rewritten.
    if let Some(a) = meta.annotations.as_mut() {
        a.remove(FAIL_CLOSED_ANNOTATION);
    }
    let blame = Blame::new(kind, None, meta.name.as_deref().unwrap_or_default());
    let mut warnings = Vec::new();
    let mut run = |egress: bool, r: RuleMut<'_>, i: &mut usize| {
        let (keep, w) = Rewriter { egress, dialect, blame: &blame }.fix(r, *i);
        warnings.extend(w);
        *i += 1;
        keep
    };
    let mut i = 0;
    ingress.retain_mut(|r| run(false, RuleMut::from(r), &mut i));
    let mut i = 0;
    egress.retain_mut(|r| run(true, RuleMut::from(r), &mut i));
    if !warnings.is_empty() {
        meta.annotations.get_or_insert_with(BTreeMap::new).insert(FAIL_CLOSED_ANNOTATION.into(), warnings.join("\n"));
    }
    warnings
}

/// Rewrites the rules of a ClusterNetworkPolicy from the Kubernetes API
/// that Bulkhead cannot enforce as written, failing closed, and marks the
/// object with [`FAIL_CLOSED_ANNOTATION`]. Returns one warning per rule
/// rewritten. What cannot be rewritten rule by rule (the tier, the priority,
/// the subject, a field of the spec itself) still refuses the object.
pub fn fail_closed(o: &mut ClusterNetworkPolicy) -> Vec<String> {
    // Judged as upstream wrote it: an ingress networks peer is not
    // upstream's, so only the deny-all rules made here may name addresses.
    rewrite(KIND, &mut o.metadata, Dialect::Upstream, &mut o.spec.ingress, &mut o.spec.egress)
}

/// [`fail_closed`] for a BulkheadClusterPolicy from the Kubernetes API
/// (admitted by a CRD of another Bulkhead version, say).
pub fn fail_closed_extension(o: &mut BulkheadClusterPolicy) -> Vec<String> {
    rewrite(BULKHEAD_KIND, &mut o.metadata, Dialect::Bulkhead, &mut o.spec.ingress, &mut o.spec.egress)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterPolicy, TierAction, TierPeer};

    fn everywhere() -> [TierPeer; 2] {
        [TierPeer::Network("0.0.0.0/0".parse().unwrap()), TierPeer::Network("::/0".parse().unwrap())]
    }

    fn upstream(rules: &str) -> ClusterNetworkPolicy {
        serde_yaml::from_str(&format!(
            "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy
metadata: {{name: c, annotations: {{bulkhead.dev/fail-closed: forged}}}}
spec:\n  tier: Admin\n  priority: 1\n  subject: {{namespaces: {{}}}}\n{rules}"
        ))
        .unwrap()
    }

    #[test]
    fn what_cannot_be_enforced_fails_closed_rule_by_rule() {
        let mut o = upstream(
            "  ingress:
    - {name: keep, action: Accept, from: [{namespaces: {}}]}
    - {name: in-future, action: Deny, from: [{futurePeer: {}}]}
    - {name: bad-selector, action: Pass, from: [{namespaces: {matchLabels: {'bad key!': x}}}]}
  egress:
    - {name: dns, action: Accept, to: [{domainNames: [x.example.com]}]}
    - {name: narrowed, action: Accept, to: [{futurePeer: {}}, {namespaces: {}}]}
    - {name: pass, action: Pass, to: [{futurePeer: {}}], protocols: [{tcp: {destinationPort: {number: 1}}}]}
    - {name: named, action: Accept, to: [{networks: [10.0.0.0/8]}, {namespaces: {}}], protocols: [{destinationNamedPort: web}]}
    - {name: new-port, action: Deny, to: [{namespaces: {}}], protocols: [{icmp: {}}]}
    - {name: new-field, action: Deny, to: [{namespaces: {}}], except: [{namespaces: {}}]}
    - {name: new-action, action: Log, to: [{namespaces: {}}]}",
        );
        assert!(ClusterPolicy::try_from(&o).is_err(), "refused as written");
        let warnings = fail_closed(&mut o);
        assert_eq!(warnings.len(), 9, "{warnings:#?}");
        assert!(
            warnings[0].contains("spec.ingress[1].from[0].futurePeer")
                && warnings[0].ends_with("the rule denies all traffic (fail closed)"),
            "{warnings:#?}"
        );
        assert!(warnings[2].contains("domainNames") && warnings[2].contains("is left out"), "{warnings:#?}");
        let note = &o.metadata.annotations.as_ref().unwrap()[FAIL_CLOSED_ANNOTATION];
        assert_eq!(note.lines().count(), 9, "the annotation is the warnings, not the forged value: {note}");

        let p = ClusterPolicy::try_from(&o).unwrap();
        let names: Vec<&str> = p.ingress.iter().chain(&p.egress).map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            ["keep", "in-future", "bad-selector", "narrowed", "pass", "named", "new-port", "new-field", "new-action"]
        );
        // Ingress deny-all names every address, not just pods.
        for r in &p.ingress[1..] {
            assert_eq!((r.action, &r.ports), (TierAction::Deny, &None), "{r:?}");
            assert!(everywhere().iter().all(|n| r.peers.contains(n)), "{r:?}");
        }
        let e = &p.egress;
        assert_eq!(e[0].peers.len(), 1, "only the enforceable peer: {:?}", e[0]);
        assert_eq!((e[1].action, &e[1].ports), (TierAction::Deny, &None));
        assert!(everywhere().iter().all(|n| e[1].peers.contains(n)));
        assert!(
            !e[2].peers.iter().any(|p| matches!(p, TierPeer::Network(_))),
            "a named port matches no address: {:?}",
            e[2]
        );
        assert_eq!(e[2].action, TierAction::Allow);
        // Only the ports are in doubt: its own peers, every port.
        assert_eq!((e[3].action, &e[3].ports, e[3].peers.len()), (TierAction::Deny, &None, 1), "{:?}", e[3]);
        // A rule-level field of a newer CRD: all traffic.
        assert_eq!(e[4].action, TierAction::Deny);
        assert!(everywhere().iter().all(|n| e[4].peers.contains(n)), "{:?}", e[4]);
        // An action Bulkhead does not know denies what it names.
        assert_eq!((e[5].action, &e[5].ports, e[5].peers.len()), (TierAction::Deny, &None, 1), "{:?}", e[5]);
    }

    #[test]
    fn enforceable_objects_are_untouched_and_spec_fields_still_refuse() {
        let mut o = upstream("  egress:\n    - {action: Deny, to: [{namespaces: {}}]}");
        let before = o.spec.clone();
        assert!(fail_closed(&mut o).is_empty());
        assert_eq!(o.spec, before);
        assert!(
            o.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key(FAIL_CLOSED_ANNOTATION)),
            "forged mark removed"
        );
        // Without the mark, an upstream ingress networks peer is refused as ever.
        let mut o = upstream("  ingress:\n    - {action: Deny, from: [{futurePeer: {}}]}");
        fail_closed(&mut o);
        o.metadata.annotations = None;
        assert!(
            ClusterPolicy::try_from(&o)
                .unwrap_err()
                .to_string()
                .contains("ingress networks peer is a Bulkhead extension")
        );

        let mut o = upstream("  futureField: 1\n  egress:\n    - {action: Deny, to: [{namespaces: {}}]}");
        assert!(fail_closed(&mut o).is_empty());
        let e = ClusterPolicy::try_from(&o).unwrap_err().to_string();
        assert!(e.contains("spec.futureField: unknown field"), "{e}");
    }

    #[test]
    fn an_ingress_networks_peer_is_no_upstream_peer_and_users_cannot_mark_objects() {
        let mut o = upstream(
            "  ingress:
    - {name: nets, action: Deny, from: [{networks: [10.0.0.0/8]}]}
    - {name: open, action: Accept, from: [{networks: [10.1.0.0/16]}, {namespaces: {}}]}",
        );
        let w = fail_closed(&mut o);
        assert_eq!(w.len(), 2, "{w:?}");
        let p = ClusterPolicy::try_from(&o).unwrap();
        assert!(everywhere().iter().all(|n| p.ingress[0].peers.contains(n)), "the Deny denies all: {:?}", p.ingress[0]);
        assert_eq!(p.ingress[1].peers.len(), 1, "the Accept loses its address peer: {:?}", p.ingress[1]);
        assert!(!p.ingress[1].peers.iter().any(|p| matches!(p, TierPeer::Network(_))));
        // A user's copy of the mark is removed before anything reads it.
        let yaml = serde_yaml::to_string(&o).unwrap();
        let mut objs = crate::objects::parse_documents("user.yaml", &yaml).unwrap();
        objs[0].strip_internal();
        let crate::objects::Object::ClusterNetworkPolicy(stripped) = &objs[0] else { panic!("{objs:?}") };
        assert!(stripped.metadata.annotations.as_ref().is_none_or(|a| !a.contains_key(FAIL_CLOSED_ANNOTATION)));
        let e = ClusterPolicy::try_from(stripped.as_ref()).unwrap_err().to_string();
        assert!(e.contains("ingress networks peer is a Bulkhead extension"), "{e}");
    }

    #[test]
    fn the_extension_fails_closed_too() {
        let mut o: BulkheadClusterPolicy = serde_yaml::from_str(
            "apiVersion: bulkhead.dev/v1alpha2\nkind: BulkheadClusterPolicy\nmetadata: {name: b}
spec:\n  tier: Baseline\n  priority: 1\n  subject: {namespaces: {}}
  ingress:\n    - {name: x, action: Deny, from: [{domainNames: [a.example.com]}]}",
        )
        .unwrap();
        let w = fail_closed_extension(&mut o);
        assert!(
            w.len() == 1 && w[0].starts_with("BulkheadClusterPolicy b: spec.ingress[0].from[0].domainNames"),
            "{w:?}"
        );
        let p = ClusterPolicy::try_from(&o).unwrap();
        assert!(everywhere().iter().all(|n| p.ingress[0].peers.contains(n)));
    }
}
