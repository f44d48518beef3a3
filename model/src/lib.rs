//! The concepts every Bulkhead crate shares, defined once so the dataplane,
//! the policy engine, the graph, the controller, the API and the CLI cannot
//! disagree on a code or a name. The eBPF ABI header uses the same numbers;
//! the dataplane crate asserts at compile time that they are equal.

mod codes;
pub mod exposure;
pub mod identity;
pub mod proto;
mod role;

pub use codes::{Action, AnomalyKind, CodeError, Direction, EventType, Mode, Reason, Verdict};
pub use role::Role;

/// Endpoint ids run from 1 to this bound: they index the dataplane's
/// quarantine array (one slot more, slot 0 unused) and are never reused.
pub const MAX_ENDPOINT_ID: u32 = 65_535;

/// The most blocked prefixes a node holds at once (`bh_blocklist`): the
/// controller refuses a block beyond it instead of a node failing to apply.
pub const MAX_BLOCKS: u32 = 65_536;
