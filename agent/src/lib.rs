//! The Bulkhead node agent.
//!
//! One per node. It loads (or adopts) the pinned dataplane, attaches it to
//! every pod on the node, applies the desired state it is given over gRPC
//! without ever opening a window, streams decoded flows and serves metrics.

pub mod blocks;
pub mod classify;
pub mod cleanup;
pub mod config;
pub mod desired;
pub mod endpoints;
pub mod error;
pub mod flows;
pub mod listeners;
pub mod metrics;
pub mod node;
pub mod quarantine;
pub mod run;
pub mod service;
pub mod sweep;
pub mod uplink;

pub use config::AgentConfig;
pub use error::AgentError;
pub use run::run;
