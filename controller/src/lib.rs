//! The Bulkhead controller: holds the cluster's objects (from manifests, its
//! own API, and the Kubernetes API through watchers), compiles them with the
//! policy crate, and keeps every node agent at the resulting desired state.

pub mod desired;
pub mod error;
pub mod flows;
pub mod ids;
pub mod kubernetes;
pub mod metrics;
pub mod review;
pub mod run;
pub mod service;
pub mod state;
pub mod storage;
pub mod store;
pub mod sync;

pub use error::ControllerError;
pub use state::Config;
