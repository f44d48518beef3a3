//! The Bulkhead controller: holds the cluster's objects (from manifests, its
//! own API, and the Kubernetes API through watchers), compiles them with the
//! policy crate, and keeps every node agent at the resulting desired state
//! (the policy side); reads every agent's flows into the service graph,
//! baselines and the review workflow (the observation side). One service
//! layer answers every operation, over gRPC (the CLI on the root-only
//! socket) and HTTPS (`/api/v1`, authenticated, tenant-scoped, audited).

pub mod agents;
pub mod auth;
pub mod context;
pub mod error;
pub mod grpc;
pub mod ha;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod observation;
pub mod policy;
pub mod response;
pub mod run;
pub mod service;

pub use error::ControllerError;
pub use policy::state::Config;
