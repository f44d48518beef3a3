//! `bulkhead lab`: a small cluster on one host, without an API server.
//! Nodes and pods are network namespaces; pods are wired by the real CNI
//! reference plugins; every node runs a real agent.

pub mod api;
pub mod calls;
pub mod cidr;
pub mod dns;
pub mod error;
pub mod inventory;
pub mod lifecycle;
pub mod link;
pub mod listens;
pub mod manifest;
pub mod netns;
pub mod probe;
pub mod sctp;
pub mod server;
pub mod services;
pub mod shell;
pub mod speak;
pub mod state;
pub mod status;

pub use error::LabError;
pub use lifecycle::{UpOptions, down, up};
pub use state::LabState;
