//! The policy side of the controller: the objects it holds (from manifests,
//! its own API and the Kubernetes API), the validated model, identities and
//! stable numbering, compilation, quarantines, each node's desired state,
//! and keeping every agent at it.

pub mod blocks;
pub mod desired;
pub mod files;
pub mod ids;
pub mod kubernetes;
pub mod listening;
pub mod quarantine;
pub mod remote;
pub mod state;
pub mod store;
pub mod sync;
