//! Bulkhead's service graph: who talks to whom, built from enriched flows.
//! Pure logic with no I/O, so the controller, the suggestion engine and the
//! tests all share one implementation.

pub mod flow;
pub mod service_graph;

pub use flow::{Entity, FlowRecord, Observation, ServiceRef, Verdict};
pub use service_graph::{EdgeKey, EdgeStats, Neighbour, ServiceGraph};
