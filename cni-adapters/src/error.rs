//! The one error type of the crate.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::HostInterfaceKind;

/// Everything that can stop us from finding a pod's host-side interface.
///
/// Every variant names the namespace, interface or IP it is about, because the
/// agent logs these per pod and an operator has to be able to tell *which* pod
/// wiring was not understood without re-running anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CniError {
    /// The pod's netns file could not be opened (pod gone, wrong path, no permission).
    #[error("cannot open pod network namespace {}: {source}", netns.display())]
    NetnsOpen {
        /// Path that was given as the pod's netns.
        netns: PathBuf,
        /// Underlying OS error.
        source: io::Error,
    },

    /// `setns(2)` into the pod's netns failed (e.g. the path is not a netns file).
    #[error("cannot enter {} as a network namespace: {source}", netns.display())]
    NetnsEnter {
        /// Path of the namespace we tried to enter.
        netns: PathBuf,
        /// Errno returned by `setns`.
        source: nix::errno::Errno,
    },

    /// The helper thread that enters the pod netns could not be started.
    #[error("cannot spawn helper thread to enter network namespace {}: {source}", netns.display())]
    NetnsThreadSpawn {
        /// Namespace the thread was meant to enter.
        netns: PathBuf,
        /// Underlying OS error.
        source: io::Error,
    },

    /// The helper thread that entered the pod netns panicked.
    #[error("helper thread inside network namespace {} panicked", netns.display())]
    NetnsThreadPanicked {
        /// Namespace the thread had entered.
        netns: PathBuf,
    },

    /// A netlink request failed (socket error, kernel error or undecodable reply).
    #[error("netlink {op} in {netns} failed: {source}")]
    Netlink {
        /// What we were asking the kernel for, e.g. `get link by index 7`.
        op: String,
        /// Human readable namespace: `node netns` or `pod netns <path>`.
        netns: String,
        /// Underlying error (kernel errno, I/O error or decode error).
        source: io::Error,
    },

    /// The pod interface name cannot be a Linux interface name.
    #[error("invalid pod interface name {ifname:?}: must be 1 to 15 bytes without '/' or whitespace")]
    InvalidInterfaceName {
        /// The rejected name.
        ifname: String,
    },

    /// Neither a netns nor an IP was given, or the resolver needs the one that is missing.
    #[error("resolver {resolver} needs {needed}; pod has netns {netns:?} and ip {ip:?}")]
    MissingPodInfo {
        /// Resolver that was asked.
        resolver: &'static str,
        /// What it needs, e.g. `the pod netns path`.
        needed: &'static str,
        /// Netns given by the caller, if any.
        netns: Option<PathBuf>,
        /// IP given by the caller, if any.
        ip: Option<IpAddr>,
    },

    /// The pod's interface does not exist inside its netns.
    #[error("interface {ifname} not found in pod netns {}", netns.display())]
    InterfaceNotFound {
        /// Pod-side interface name.
        ifname: String,
        /// Pod netns path.
        netns: PathBuf,
    },

    /// The pod's interface is of a kind this crate cannot map to a host interface.
    #[error("pod interface {ifname} in netns {} is a {kind} link, not a veth", netns.display())]
    NotVeth {
        /// Pod-side interface name.
        ifname: String,
        /// Pod netns path.
        netns: PathBuf,
        /// Link kind as reported by the kernel (`IFLA_INFO_KIND`), or `unknown`.
        kind: String,
    },

    /// The pod is wired in a way that has no host-side interface at all
    /// (macvlan, ipvlan): the agent must use a different attach mode.
    #[error("{kind} pod interface {interface} is unsupported: {reason}")]
    Unsupported {
        /// Link kind of the pod interface, e.g. `macvlan`.
        kind: &'static str,
        /// Why, and what to do instead.
        reason: &'static str,
        /// Which interface: `<ifname> in netns <path>`.
        interface: String,
    },

    /// The pod's veth does not report a peer index (`IFLA_LINK`).
    #[error("veth {ifname} in pod netns {} reports no peer ifindex (IFLA_LINK)", netns.display())]
    NoPeerIndex {
        /// Pod-side interface name.
        ifname: String,
        /// Pod netns path.
        netns: PathBuf,
    },

    /// The peer ifindex reported by the pod veth does not exist in the node netns.
    #[error(
        "peer ifindex {peer_ifindex} of {ifname} in pod netns {} does not exist in the node netns \
         (is the peer in another namespace?)",
        netns.display()
    )]
    PeerNotFound {
        /// Index the pod side claims its peer has.
        peer_ifindex: u32,
        /// Pod-side interface name.
        ifname: String,
        /// Pod netns path.
        netns: PathBuf,
    },

    /// The node interface at the peer index is not the pod veth's peer.
    #[error(
        "node interface {host_ifname} (ifindex {host_ifindex}) is not the peer of {ifname} \
         (ifindex {pod_ifindex}) in pod netns {}: {mismatch}",
        netns.display()
    )]
    PeerMismatch {
        /// Node-side interface found at the peer index.
        host_ifname: String,
        /// Its ifindex.
        host_ifindex: u32,
        /// Pod-side interface name.
        ifname: String,
        /// Pod-side ifindex.
        pod_ifindex: u32,
        /// Pod netns path.
        netns: PathBuf,
        /// Which check failed.
        mismatch: PeerMismatch,
    },

    /// A resolver that only understands one wiring found another one.
    #[error("resolver {resolver} expects a {expected} host interface, but {ifname} (ifindex {ifindex}) is {found}")]
    WrongKind {
        /// Resolver that was asked.
        resolver: &'static str,
        /// Wiring it handles.
        expected: HostInterfaceKind,
        /// Wiring actually found.
        found: HostInterfaceKind,
        /// Host interface that was found.
        ifname: String,
        /// Its ifindex.
        ifindex: u32,
    },

    /// No namespace of this node holds the pod's addresses on a veth that
    /// pairs with a node interface, and no host route leads to them.
    #[error(
        "pod with IPs {ips:?} not found on this node: none of the {scanned} pod network namespaces peered with its veths holds them, and no host route leads to them{}",
        if tried.is_empty() { String::new() } else { format!(" ({})", tried.join("; ")) }
    )]
    NotDiscovered {
        /// The pod's addresses.
        ips: Vec<IpAddr>,
        /// How many namespaces were read.
        scanned: usize,
        /// What each candidate said.
        tried: Vec<String>,
    },

    /// Several namespaces of this node hold the pod's address on a veth.
    #[error("pod IP {ip} is held by several network namespaces of this node: {}", netns.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    AmbiguousPod {
        /// The address.
        ip: IpAddr,
        /// The namespaces that hold it.
        netns: Vec<PathBuf>,
    },

    /// No host route (/32 or /128) to the pod IP exists in the node netns.
    #[error("no host route (/32 or /128) to pod IP {ip} in the node netns")]
    NoHostRoute {
        /// Pod IP.
        ip: IpAddr,
    },

    /// The host route to the pod IP leaves through something that is not a veth.
    #[error("host route to pod IP {ip} goes through {ifname} (ifindex {ifindex}), a {kind} link, not a veth")]
    HostRouteNotVeth {
        /// Pod IP.
        ip: IpAddr,
        /// Interface of the route.
        ifname: String,
        /// Its ifindex.
        ifindex: u32,
        /// Its link kind.
        kind: String,
    },

    /// Several veths carry a host route to the same pod IP.
    #[error("pod IP {ip} has host routes through several veths: {}", interfaces.join(", "))]
    AmbiguousHostRoute {
        /// Pod IP.
        ip: IpAddr,
        /// Names of the candidate veths.
        interfaces: Vec<String>,
    },
}

/// The individual consistency checks between the two ends of a veth pair,
/// kept apart so the error says exactly what did not line up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMismatch {
    /// The node interface is not a veth at all.
    NotVeth {
        /// Its link kind.
        kind: String,
    },
    /// The node veth's own peer index is not the pod interface.
    PeerIndex {
        /// Its `IFLA_LINK`, if any.
        found: Option<u32>,
    },
    /// The node veth's peer lives in a different namespace than the pod's.
    Namespace {
        /// `IFLA_LINK_NETNSID` of the node veth.
        link_nsid: Option<i32>,
        /// nsid the node netns assigns to the pod netns.
        pod_nsid: Option<i32>,
    },
}

impl std::fmt::Display for PeerMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotVeth { kind } => write!(f, "it is a {kind} link, not a veth"),
            Self::PeerIndex { found: Some(found) } => {
                write!(f, "its peer is ifindex {found}")
            }
            Self::PeerIndex { found: None } => write!(f, "it reports no peer ifindex"),
            Self::Namespace { link_nsid, pod_nsid } => {
                match link_nsid {
                    Some(id) => write!(f, "its peer is in the netns with nsid {id}")?,
                    None => write!(f, "its peer is in the node netns itself")?,
                }
                match pod_nsid {
                    Some(id) => write!(f, ", but the pod netns has nsid {id}"),
                    None => write!(f, ", but the pod netns has no nsid in the node netns"),
                }
            }
        }
    }
}
