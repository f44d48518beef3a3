//! The Bulkhead controller: holds the cluster's objects (from manifests, its
//! own API, and the Kubernetes API through watchers), compiles them with the
//! policy crate, and keeps every node agent at the resulting desired state
//! (the policy side); reads every agent's flows into the service graph,
//! baselines and the review workflow (the observation side).

pub mod error;
pub mod metrics;
pub mod observation;
pub mod policy;
pub mod run;
pub mod service;

pub use error::ControllerError;
pub use policy::state::Config;
