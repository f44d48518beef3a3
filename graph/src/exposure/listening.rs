//! What the pods behind a port listen on, from the agents' reads of each
//! pod's socket tables: a port open that nothing declares, and a port
//! declared (or targeted by a service) that no socket serves.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_policy::ports::Protocol;
use serde::Serialize;

use super::entries::Backend;

/// One pod's listening sockets, as its agent last read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSockets {
    /// When they were read, nanoseconds since the epoch.
    pub read_ns: i64,
    /// Ports bound on every address or on a pod address: reachable from other pods.
    pub open: BTreeSet<(Protocol, u16)>,
    /// Ports bound on loopback only: open, yet unreachable from other pods.
    pub loopback: BTreeSet<(Protocol, u16)>,
}

/// Every read pod's sockets, by "namespace/pod".
pub type Sockets = BTreeMap<String, PodSockets>;

/// How the pods behind a port were found listening; absent from a port
/// when no agent has read any of its pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// Pods behind the port whose sockets were read.
    pub pods_read: usize,
    /// Those listening on it, "namespace/pod".
    pub open: Vec<String>,
    /// Those listening on loopback only.
    pub loopback_only: Vec<String>,
    /// Those not listening on it at all.
    pub closed: Vec<String>,
    /// The oldest of the reads, nanoseconds since the epoch.
    pub read_ns: i64,
}

/// What the port's backends listen on, by their last reads.
pub(super) fn of(sockets: &Sockets, protocol: Protocol, backends: &[Backend<'_>]) -> Option<Listening> {
    let mut out = Listening::default();
    let mut seen = BTreeSet::new();
    for b in backends {
        let key = b.pod.key();
        let Some(s) = sockets.get(&key) else { continue };
        if !seen.insert((key.clone(), b.target)) {
            continue;
        }
        out.pods_read += 1;
        out.read_ns = if out.read_ns == 0 { s.read_ns } else { out.read_ns.min(s.read_ns) };
        let port = (protocol, b.target);
        if s.open.contains(&port) {
            out.open.push(key);
        } else if s.loopback.contains(&port) {
            out.loopback_only.push(key);
        } else {
            out.closed.push(key);
        }
    }
    (out.pods_read > 0).then_some(out)
}
