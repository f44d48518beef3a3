//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, validated into a form
//! where the API server's defaulting is already applied: absent and empty
//! `from`/`to`/`ports` mean "everything", and policyTypes are explicit.

use ipnetwork::IpNetwork;
use k8s_openapi::api::networking::v1 as net;

use crate::error::{Blame, PolicyError};
use crate::ports::PortMatch;
use crate::selector::Selector;

/// A validated NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkPolicy {
    /// Namespace the policy lives in; it only selects pods there.
    pub namespace: String,
    /// Policy name.
    pub name: String,
    /// Pods the policy isolates.
    pub pod_selector: Selector,
    /// Ingress rules when the policy isolates ingress (possibly none: deny all).
    pub ingress: Option<Vec<Rule>>,
    /// Egress rules when the policy isolates egress.
    pub egress: Option<Vec<Rule>>,
}

/// One ingress or egress rule: traffic matching any peer on any port is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The peers; `None` means every peer (absent or empty `from`/`to`).
    pub peers: Option<Vec<Peer>>,
    /// The ports; `None` means every port and protocol (absent or empty `ports`).
    pub ports: Option<Vec<PortMatch>>,
}

/// A peer of a NetworkPolicy rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Pods matching `pods` in namespaces matching `namespaces`, or in the
    /// policy's own namespace when `namespaces` is `None`.
    Pods {
        /// Namespace selector; `None` means the policy's namespace.
        namespaces: Option<Selector>,
        /// Pod selector.
        pods: Selector,
    },
    /// Addresses in a CIDR, minus the exceptions.
    IpBlock(IpBlock),
}

/// A CIDR with exceptions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IpBlock {
    /// The block, normalised to its network address.
    pub cidr: IpNetwork,
    /// Sub-blocks excluded from it.
    pub except: Vec<IpNetwork>,
}

impl IpBlock {
    /// Whether the address is in the block and in none of the exceptions.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        self.cidr.contains(ip) && !self.except.iter().any(|e| e.contains(ip))
    }
}

use bulkhead_model::Direction;

impl NetworkPolicy {
    /// The rules for a direction, if the policy isolates it.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// "namespace/name".
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Parses a CIDR as the API server does, normalising host bits away.
pub(crate) fn parse_cidr(s: &str, blame: &Blame, field: &str) -> Result<IpNetwork, PolicyError> {
    let net: IpNetwork = s.trim().parse().map_err(|e| blame.err(field, format!("invalid CIDR {s:?}: {e}")))?;
    if !s.contains('/') {
        return Err(blame.err(field, format!("invalid CIDR {s:?}: a prefix length is required")));
    }
    IpNetwork::new(net.network(), net.prefix()).map_err(|e| blame.err(field, format!("invalid CIDR {s:?}: {e}")))
}

fn parse_ip_block(b: &net::IPBlock, blame: &Blame, field: &str) -> Result<IpBlock, PolicyError> {
    let cidr = parse_cidr(&b.cidr, blame, &format!("{field}.cidr"))?;
    let mut except = Vec::new();
    for (i, e) in b.except.iter().flatten().enumerate() {
        let f = format!("{field}.except[{i}]");
        let ex = parse_cidr(e, blame, &f)?;
        if ex.is_ipv4() != cidr.is_ipv4() || ex.prefix() <= cidr.prefix() || !cidr.contains(ex.network()) {
            return Err(blame.err(f, format!("{ex} is not strictly inside the block's cidr {cidr}")));
        }
        except.push(ex);
    }
    Ok(IpBlock { cidr, except })
}

fn parse_peer(p: &net::NetworkPolicyPeer, blame: &Blame, field: &str) -> Result<Peer, PolicyError> {
    match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
        (Some(b), None, None) => Ok(Peer::IpBlock(parse_ip_block(b, blame, &format!("{field}.ipBlock"))?)),
        (Some(_), _, _) => Err(blame.err(field, "ipBlock cannot be combined with namespaceSelector or podSelector")),
        (None, None, None) => Err(blame.err(field, "a peer needs podSelector, namespaceSelector or ipBlock")),
        (None, ns, pods) => {
            let namespaces =
                ns.as_ref().map(|s| Selector::parse(s, blame, &format!("{field}.namespaceSelector"))).transpose()?;
            let pods = match pods {
                Some(s) => Selector::parse(s, blame, &format!("{field}.podSelector"))?,
                None => Selector::everything(),
            };
            Ok(Peer::Pods { namespaces, pods })
        }
    }
}

fn parse_ports(
    ports: Option<&Vec<net::NetworkPolicyPort>>,
    blame: &Blame,
    field: &str,
) -> Result<Option<Vec<PortMatch>>, PolicyError> {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            PortMatch::parse(p.protocol.as_deref(), p.port.as_ref(), p.end_port, blame, &format!("{field}.ports[{i}]"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn parse_peers(
    peers: Option<&Vec<net::NetworkPolicyPeer>>,
    blame: &Blame,
    field: &str,
) -> Result<Option<Vec<Peer>>, PolicyError> {
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    peers
        .iter()
        .enumerate()
        .map(|(i, p)| parse_peer(p, blame, &format!("{field}[{i}]")))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl TryFrom<&net::NetworkPolicy> for NetworkPolicy {
    type Error = PolicyError;

    fn try_from(np: &net::NetworkPolicy) -> Result<Self, PolicyError> {
        let name = np.metadata.name.clone().unwrap_or_default();
        let namespace = np.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
        let blame = Blame::new("NetworkPolicy", Some(&namespace), &name);
        if name.is_empty() {
            return Err(blame.err("metadata.name", "a name is required"));
        }
        let Some(spec) = &np.spec else {
            return Err(blame.err("spec", "a spec is required"));
        };
        let pod_selector = Selector::parse(&spec.pod_selector.clone().unwrap_or_default(), &blame, "spec.podSelector")?;
        let has_egress_rules = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
        let types: Vec<String> = match &spec.policy_types {
            Some(t) if !t.is_empty() => t.clone(),
            _ if has_egress_rules => vec!["Ingress".into(), "Egress".into()],
            _ => vec!["Ingress".into()],
        };
        for (i, t) in types.iter().enumerate() {
            if t != "Ingress" && t != "Egress" {
                return Err(blame.err(
                    format!("spec.policyTypes[{i}]"),
                    format!("unknown policy type {t:?}; expected Ingress or Egress"),
                ));
            }
        }
        let mut ingress = None;
        if types.iter().any(|t| t == "Ingress") {
            let mut rules = Vec::new();
            for (i, r) in spec.ingress.iter().flatten().enumerate() {
                let f = format!("spec.ingress[{i}]");
                rules.push(Rule {
                    peers: parse_peers(r.from.as_ref(), &blame, &format!("{f}.from"))?,
                    ports: parse_ports(r.ports.as_ref(), &blame, &f)?,
                });
            }
            ingress = Some(rules);
        }
        let mut egress = None;
        if types.iter().any(|t| t == "Egress") {
            let mut rules = Vec::new();
            for (i, r) in spec.egress.iter().flatten().enumerate() {
                let f = format!("spec.egress[{i}]");
                rules.push(Rule {
                    peers: parse_peers(r.to.as_ref(), &blame, &format!("{f}.to"))?,
                    ports: parse_ports(r.ports.as_ref(), &blame, &f)?,
                });
            }
            egress = Some(rules);
        }
        Ok(Self { namespace, name, pod_selector, ingress, egress })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<NetworkPolicy, PolicyError> {
        let wire: net::NetworkPolicy = serde_yaml::from_str(yaml).unwrap();
        NetworkPolicy::try_from(&wire)
    }

    #[test]
    fn policy_types_default_like_the_api_server() {
        let p = parse("metadata: {name: p, namespace: x}\nspec: {podSelector: {}}").unwrap();
        assert_eq!(p.ingress, Some(vec![]), "no rules: ingress isolated, deny all");
        assert_eq!(p.egress, None);
        let p = parse("metadata: {name: p, namespace: x}\nspec: {podSelector: {}, egress: [{}]}").unwrap();
        assert!(p.ingress.is_some() && p.egress.is_some(), "egress rules imply both types");
        let p = parse("metadata: {name: p, namespace: x}\nspec: {podSelector: {}, egress: []}").unwrap();
        assert_eq!(p.egress, None, "an empty egress list does not add Egress");
        let p = parse("metadata: {name: p, namespace: x}\nspec: {podSelector: {}, policyTypes: [Egress]}").unwrap();
        assert_eq!((p.ingress, p.egress), (None, Some(vec![])));
    }

    #[test]
    fn empty_and_absent_mean_everything() {
        let p =
            parse("metadata: {name: p, namespace: x}\nspec: {podSelector: {}, ingress: [{from: [], ports: []}, {}]}")
                .unwrap();
        let all = Rule { peers: None, ports: None };
        assert_eq!(p.ingress, Some(vec![all.clone(), all]));
    }

    #[test]
    fn invalid_fields_are_named() {
        let cases = [
            ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]", "spec.ingress[0].from[0].ipBlock.cidr"),
            ("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]", "ipBlock.except[0]"),
            ("ingress: [{ports: [{protocol: ICMP, port: 1}]}]", "spec.ingress[0].ports[0].protocol"),
            ("ingress: [{ports: [{port: 0}]}]", "spec.ingress[0].ports[0].port"),
            ("ingress: [{ports: [{port: 65536}]}]", "outside 1-65535"),
            ("ingress: [{ports: [{port: 90, endPort: 80}]}]", "endPort 80 is smaller than port 90"),
            ("ingress: [{ports: [{port: http, endPort: 80}]}]", "endPort cannot be used with a named port"),
            ("egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]", "cannot be combined"),
            ("egress: [{to: [{}]}]", "needs podSelector, namespaceSelector or ipBlock"),
            ("policyTypes: [Sideways]", "spec.policyTypes[0]"),
        ];
        for (spec, want) in cases {
            let e = parse(&format!("metadata: {{name: p, namespace: x}}\nspec: {{podSelector: {{}}, {spec}}}"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("NetworkPolicy x/p: ") && e.contains(want), "{spec}: {e}");
        }
    }
}
