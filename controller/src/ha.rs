//! Two controllers, one leader. The replicas hold a `coordination.k8s.io`
//! Lease; the holder is the leader: it accepts agents, takes changes, and
//! copies the state agents' numbers depend on (identities, endpoint ids,
//! generations, quarantines, blocks, objects applied through the API) into
//! a ConfigMap, and labels its pod so that the Services send everyone to
//! it. The standby serves reads, refuses changes and agents, and watches
//! the Lease. A replica whose role changes exits, so that its
//! restart starts from the cluster's copy: a new leader never runs on a
//! half-adopted state, and an old one never pushes after losing the Lease.

pub mod label;
pub mod lease;
pub mod persist;

use std::path::PathBuf;

pub use lease::{Elector, Leadership};
pub use persist::ClusterState;

/// `--ha`'s configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaConfig {
    /// The namespace of the Lease and the ConfigMap (the controller's own).
    pub namespace: String,
    /// The Lease's name.
    pub lease: String,
    /// The ConfigMap's name.
    pub state: String,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
}

impl HaConfig {
    /// The state directory files the leader copies to the cluster.
    pub fn files(state_dir: &std::path::Path) -> Vec<(String, PathBuf)> {
        persist::FILES.iter().map(|f| ((*f).to_string(), state_dir.join(f))).collect()
    }
}
