//! Protocols and port matches, shared by NetworkPolicy and the cluster tiers.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::error::{Blame, PolicyError};

/// A protocol policies can name. Anything else (ICMP, GRE…) is matched only
/// by rules that name no ports at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Protocol {
    /// TCP, the Kubernetes default.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    /// All protocols with ports.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => bulkhead_model::proto::TCP,
            Protocol::Udp => bulkhead_model::proto::UDP,
            Protocol::Sctp => bulkhead_model::proto::SCTP,
        }
    }

    /// The protocol of an IANA number, if it has ports.
    pub fn from_number(n: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.number() == n)
    }

    /// The protocol of its Kubernetes spelling ("TCP", "UDP", "SCTP").
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Parses the Kubernetes spelling; `None` means TCP.
    pub(crate) fn parse(s: Option<&str>, blame: &Blame, field: &str) -> Result<Self, PolicyError> {
        Self::from_name(s.unwrap_or("TCP")).ok_or_else(|| {
            blame.err(field, format!("unknown protocol {:?}; expected TCP, UDP or SCTP", s.unwrap_or_default()))
        })
    }

    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which ports of one protocol a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSel {
    /// Every port.
    Any,
    /// `lo..=hi`; a single port has `lo == hi`.
    Range(u16, u16),
    /// A container port name, resolved against the destination pod.
    Named(String),
}

/// One entry of a rule's `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortMatch {
    /// The protocol it matches.
    pub protocol: Protocol,
    /// The ports it matches.
    pub ports: PortSel,
}

/// A named container port of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct NamedPort {
    /// The port's name.
    pub name: String,
    /// Its protocol.
    pub protocol: Protocol,
    /// Its number.
    pub port: u16,
}

impl PortMatch {
    /// Whether traffic to `port` over `protocol` matches, resolving names
    /// against the destination's named ports (`None` for a non-pod destination).
    pub fn matches(&self, protocol: Protocol, port: u16, dest_ports: Option<&[NamedPort]>) -> bool {
        if protocol != self.protocol {
            return false;
        }
        match &self.ports {
            PortSel::Any => true,
            PortSel::Range(lo, hi) => port >= *lo && port <= *hi,
            PortSel::Named(name) => {
                dest_ports.into_iter().flatten().any(|n| &n.name == name && n.protocol == protocol && n.port == port)
            }
        }
    }

    /// The ports this entry could match for `protocol`, as inclusive ranges,
    /// for the compiler's partition of the port space.
    pub fn bounds(&self, protocol: Protocol, dest_ports: Option<&[NamedPort]>, out: &mut Vec<(u16, u16)>) {
        if protocol != self.protocol {
            return;
        }
        match &self.ports {
            PortSel::Any => out.push((1, u16::MAX)),
            PortSel::Range(lo, hi) => out.push((*lo, *hi)),
            PortSel::Named(name) => out.extend(
                dest_ports
                    .into_iter()
                    .flatten()
                    .filter(|n| &n.name == name && n.protocol == protocol)
                    .map(|n| (n.port, n.port)),
            ),
        }
    }

    /// Validates a NetworkPolicyPort-shaped entry.
    pub(crate) fn parse(
        protocol: Option<&str>,
        port: Option<&IntOrString>,
        end_port: Option<i32>,
        blame: &Blame,
        field: &str,
    ) -> Result<Self, PolicyError> {
        let protocol = Protocol::parse(protocol, blame, &format!("{field}.protocol"))?;
        let ports = match (port, end_port) {
            (None, None) => PortSel::Any,
            (None, Some(_)) => return Err(blame.err(format!("{field}.endPort"), "endPort needs a numeric port")),
            (Some(IntOrString::String(_)), Some(_)) => {
                return Err(blame.err(format!("{field}.endPort"), "endPort cannot be used with a named port"));
            }
            (Some(IntOrString::String(name)), None) => {
                check_port_name(name).map_err(|m| blame.err(format!("{field}.port"), m))?;
                PortSel::Named(name.clone())
            }
            (Some(IntOrString::Int(p)), end) => {
                let lo = port_number(*p).map_err(|m| blame.err(format!("{field}.port"), m))?;
                let hi = match end {
                    None => lo,
                    Some(e) => {
                        let hi = port_number(e).map_err(|m| blame.err(format!("{field}.endPort"), m))?;
                        if hi < lo {
                            return Err(blame
                                .err(format!("{field}.endPort"), format!("endPort {hi} is smaller than port {lo}")));
                        }
                        hi
                    }
                };
                PortSel::Range(lo, hi)
            }
        };
        Ok(Self { protocol, ports })
    }
}

/// Checks a port number is within 1..=65535.
pub(crate) fn port_number(p: i32) -> Result<u16, String> {
    match u16::try_from(p) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("port {p} is outside 1-65535")),
    }
}

/// Checks a port name as Kubernetes does (IANA service name rules).
pub(crate) fn check_port_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.chars().any(|c| c.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "port name {name:?} must be 1-15 lowercase letters, digits or single hyphens, with at least one letter"
        ))
    }
}
