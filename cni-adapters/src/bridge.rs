//! The CNI `bridge` plugin (and flannel, kubenet): host veths on a Linux bridge.

use crate::veth::require_kind;
use crate::{CniError, HostInterface, HostInterfaceKind, HostInterfaceResolver, PodNetwork, VethPeerResolver};

/// Resolves pods wired as a veth enslaved to a bridge, and nothing else.
///
/// Only the netns path works here: a bridge port carries no per-pod route,
/// so the pod IP alone does not point at it.
#[derive(Debug, Clone, Copy, Default)]
pub struct BridgeResolver;

impl HostInterfaceResolver for BridgeResolver {
    fn name(&self) -> &'static str {
        "bridge"
    }

    fn resolve(&self, pod: &PodNetwork) -> Result<HostInterface, CniError> {
        if pod.netns.is_none() {
            return Err(CniError::MissingPodInfo {
                resolver: self.name(),
                needed: "the pod netns path (a bridge port has no per-pod route to follow)",
                netns: None,
                ip: pod.ip,
            });
        }
        let iface = VethPeerResolver.resolve(pod)?;
        require_kind(self.name(), HostInterfaceKind::VethOnBridge, iface)
    }
}
