//! Bulkhead's service graph: who talks to whom, built from enriched flows.
//! Also learned baselines with anomaly events, least-privilege policy
//! suggestions and what-if replay. Pure logic with no I/O, so the controller,
//! the CLI and the tests all share one implementation.

pub mod apps;
pub mod baseline;
pub mod exposure;
pub mod flow;
pub mod pairing;
pub mod scan;
pub mod service_graph;
pub mod suggest;
pub mod whatif;

pub use flow::{Entity, FlowRecord, ServiceRef};
pub use pairing::{IngestStats, Pairing};
pub use service_graph::{EdgeKey, EdgeStats, Neighbour, ServiceGraph};
