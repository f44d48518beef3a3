//! Bulkhead's policy semantics, in one pure crate: Kubernetes NetworkPolicy
//! and the cluster-scoped tiers, validated from their wire types; the
//! reference evaluator; identities; and the compiler to dataplane entries.
//! No I/O: the controller feeds it and ships its output.

pub mod cluster;
pub mod compile;
pub mod conformance;
pub mod error;
pub mod evaluate;
pub mod identity;
pub mod inventory;
pub mod netpol;
pub mod objects;
pub mod ports;
pub mod quarantine;
pub mod routes;
pub mod selector;

pub use error::PolicyError;
