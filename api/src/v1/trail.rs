//! The access trail of a pod: every connection to and from it over a window
//! (by default the 30 minutes before now), the ones its workload's baseline
//! never had, what the peers it reached did next (the lateral-movement
//! candidates), and its quarantines and audit records: the incident timeline
//! for a ticket, as JSON or CSV.

use bulkhead_model::{Direction, Verdict};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::v1::audit::AuditEntry;
use crate::v1::graph::GraphNode;
use crate::v1::inventory::WorkloadRef;
use crate::v1::quarantine::Quarantine;

/// Whose trail, and over which window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrailQuery {
    /// The pod, "namespace/name" (it may be gone: its flows stay).
    pub pod: String,
    /// From: an RFC 3339 time or a duration ago (default 30m).
    #[serde(default)]
    pub since: Option<String>,
    /// To (default now).
    #[serde(default)]
    pub until: Option<String>,
}

/// Connections between one end and a peer on one protocol, port and verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrailConnection {
    /// Egress: the end called the peer; ingress: the peer called it.
    pub direction: Direction,
    /// The other end (a pod, a workload, the world as its address, a node).
    pub peer: GraphNode,
    /// TCP, UDP, SCTP, ICMP…
    pub protocol: String,
    /// The port delivered to.
    pub port: u16,
    /// Forwarded, dropped or audit.
    pub verdict: Verdict,
    /// How many connections.
    pub connections: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// First seen, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last seen.
    pub last_seen_ns: i64,
    /// Not in the baseline the end's workload learned: new behaviour.
    pub new_edge: bool,
}

/// What a peer the pod reached did afterwards, inside the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrailHop {
    /// The peer pod.
    pub via: GraphNode,
    /// When the pod first reached it; only its connections from then on count.
    pub reached_ns: i64,
    /// Its outgoing connections from then on, the pod itself left out.
    pub connections: Vec<TrailConnection>,
}

/// The incident timeline of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Trail {
    /// The pod, "namespace/name".
    pub pod: String,
    /// Its workload, when its flows or the inventory say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<WorkloadRef>,
    /// The window, nanoseconds since the epoch.
    pub since_ns: i64,
    /// See `since_ns`.
    pub until_ns: i64,
    /// Its connections both ways, earliest first.
    pub connections: Vec<TrailConnection>,
    /// The second hop: what each pod it reached did next.
    pub second_hop: Vec<TrailHop>,
    /// Quarantines that cover it, whenever made.
    pub quarantines: Vec<Quarantine>,
    /// Audit records about it in the window (its quarantines, blocks of its
    /// address, refusals), oldest first.
    pub audit: Vec<AuditEntry>,
}

/// A CSV field, quoted when it needs to be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

impl Trail {
    /// The connections as CSV for a ticket: one row per connection group,
    /// hop 1 for the pod's own, hop 2 for its peers' (with the peer in `via`).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "hop,via,direction,peer,peer_kind,protocol,port,verdict,connections,bytes,first_seen,last_seen,new_edge\n",
        );
        let mut row = |hop: u8, via: &str, c: &TrailConnection| {
            let cols = [
                hop.to_string(),
                field(via),
                c.direction.as_str().to_string(),
                field(&c.peer.id),
                format!("{:?}", c.peer.kind).to_lowercase(),
                field(&c.protocol),
                c.port.to_string(),
                c.verdict.as_str().to_string(),
                c.connections.to_string(),
                c.bytes.to_string(),
                super::time::rfc3339(c.first_seen_ns),
                super::time::rfc3339(c.last_seen_ns),
                c.new_edge.to_string(),
            ];
            out.push_str(&cols.join(","));
            out.push('\n');
        };
        for c in &self.connections {
            row(1, &self.pod, c);
        }
        for h in &self.second_hop {
            for c in &h.connections {
                row(2, &h.via.id, c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::graph::NodeKind;

    #[test]
    fn csv_quotes_what_needs_quoting_and_numbers_the_hops() {
        let peer = GraphNode {
            id: "pod:shop/api-0".into(),
            kind: NodeKind::Pod,
            namespace: Some("shop".into()),
            name: "api-0".into(),
            workload_kind: None,
            redacted: false,
        };
        let c = TrailConnection {
            direction: Direction::Egress,
            peer: peer.clone(),
            protocol: "TCP".into(),
            port: 8080,
            verdict: Verdict::Forwarded,
            connections: 3,
            bytes: 100,
            first_seen_ns: 0,
            last_seen_ns: 1_000_000_000,
            new_edge: true,
        };
        let t = Trail {
            pod: "shop/web,0".into(),
            workload: None,
            since_ns: 0,
            until_ns: 1,
            connections: vec![c.clone()],
            second_hop: vec![TrailHop { via: peer, reached_ns: 0, connections: vec![c] }],
            quarantines: vec![],
            audit: vec![],
        };
        let csv = t.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[1],
            "1,\"shop/web,0\",egress,pod:shop/api-0,pod,TCP,8080,forwarded,3,100,1970-01-01T00:00:00Z,1970-01-01T00:00:01Z,true"
        );
        assert!(lines[2].starts_with("2,pod:shop/api-0,egress,"));
    }
}
