//! Finds the host-side interface that carries a pod's traffic.
//!
//! The Bulkhead dataplane attaches its TC programs to the *node* end of a
//! pod's link, but every CNI wires pods differently (veth on a bridge, routed
//! veth, macvlan, ...). This crate turns "pod netns and/or pod IP" into
//! "ifname + ifindex in the node netns", by asking the kernel over netlink
//! rather than trusting CNI-specific naming conventions.
//!
//! All lookups on the node side happen in the network namespace of the
//! calling thread; the pod side is read from a short-lived helper thread.

mod bridge;
mod detect;
pub mod discover;
mod error;
mod netlink;
pub mod netns;
mod ptp;
mod veth;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

pub use bridge::BridgeResolver;
pub use detect::resolve_auto;
pub use discover::{Discovered, NetnsIndex, discover};
pub use error::{CniError, PeerMismatch};
pub use netns::in_netns;
pub use ptp::PtpResolver;
pub use veth::VethPeerResolver;

/// What the agent knows about a pod when it needs its host interface.
///
/// Both fields are optional because the sources differ: the CRI gives the
/// netns path, the Kubernetes API gives the IP, and during restarts only one
/// of them may be at hand. Resolvers say which one they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetwork {
    /// Path of the pod's network namespace, e.g. `/var/run/netns/cni-1234`.
    pub netns: Option<PathBuf>,
    /// The pod's IP address.
    pub ip: Option<IpAddr>,
    /// Name of the pod-side interface inside the pod netns (usually `eth0`).
    pub pod_ifname: String,
}

impl Default for PodNetwork {
    /// An empty description with the conventional `eth0`, so callers can fill
    /// in only what they know with struct update syntax.
    fn default() -> Self {
        Self { netns: None, ip: None, pod_ifname: "eth0".to_owned() }
    }
}

/// The node-side interface of a pod, ready for the dataplane to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    /// Interface name in the node netns (names can change; prefer `ifindex`).
    pub ifname: String,
    /// Interface index in the node netns.
    pub ifindex: u32,
    /// How the pod is wired, which decides what else the dataplane must handle
    /// (bridge-local traffic never hits a routing decision, routed traffic does).
    pub kind: HostInterfaceKind,
    /// Index of the peer interface inside the pod netns, when known, so callers
    /// can detect that a pod was re-wired (same name, new pair).
    pub pod_ifindex: Option<u32>,
}

/// How the host-side veth is wired into the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostInterfaceKind {
    /// Host veth enslaved to a Linux bridge (CNI `bridge`, flannel, kubenet).
    VethOnBridge,
    /// Host veth with a route to the pod IP through it (CNI `ptp`, Calico).
    RoutedVeth,
    /// Any other veth: the pair is real, but we could not tell how it is used.
    Veth,
}

impl fmt::Display for HostInterfaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VethOnBridge => "veth-on-bridge",
            Self::RoutedVeth => "routed-veth",
            Self::Veth => "veth",
        })
    }
}

/// A strategy for finding a pod's host interface.
///
/// A trait so the agent can be configured per cluster (or probe several
/// strategies) without knowing how each one works. `Send + Sync` so a
/// configured resolver can be shared between the agent's tasks. Resolving
/// blocks (netlink round trips, a helper thread), so async callers should run
/// it on a blocking thread whose netns is the node's.
pub trait HostInterfaceResolver: Send + Sync {
    /// Stable short name, used in logs and configuration.
    fn name(&self) -> &'static str;

    /// Finds the host interface of `pod`, looking at the node side in the
    /// calling thread's network namespace.
    fn resolve(&self, pod: &PodNetwork) -> Result<HostInterface, CniError>;
}
