//! Reserved security identities. The dataplane assigns them to addresses the
//! controller did not allocate an identity for; allocated ones start above.

/// Wildcard in policy keys ("any peer"); never an address's identity.
pub const ANY: u32 = 0;
/// The node itself (the controller gives each node its own allocated identity instead).
pub const HOST: u32 = 1;
/// Addresses no policy CIDR contains: outside the cluster.
pub const WORLD: u32 = 2;
/// Inside the cluster ranges but not (yet) known.
pub const UNKNOWN: u32 = 3;
/// The first identity the controller allocates.
pub const FIRST_ALLOCATED: u32 = 256;

/// Whether an identity is one of the reserved ones the agent knows by itself.
pub const fn is_reserved(id: u32) -> bool {
    id < FIRST_ALLOCATED
}
