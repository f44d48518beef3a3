//! The access trail.

use super::enums::{direction, verdict};
use super::{ConvertError, list, optional, port, required, to_pb};
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::trail::{Trail, TrailConnection, TrailHop, TrailQuery};

impl From<TrailQuery> for pb::TrailQuery {
    fn from(q: TrailQuery) -> Self {
        Self { pod: q.pod, since: q.since, until: q.until }
    }
}

impl TryFrom<pb::TrailQuery> for TrailQuery {
    type Error = ConvertError;
    fn try_from(q: pb::TrailQuery) -> Result<Self, ConvertError> {
        Ok(Self { pod: q.pod, since: q.since, until: q.until })
    }
}

impl From<TrailConnection> for pb::TrailConnection {
    fn from(c: TrailConnection) -> Self {
        Self {
            direction: flow_pb::Direction::from(c.direction) as i32,
            peer: Some(c.peer.into()),
            protocol: c.protocol,
            port: u32::from(c.port),
            verdict: flow_pb::Verdict::from(c.verdict) as i32,
            connections: c.connections,
            bytes: c.bytes,
            first_seen_ns: c.first_seen_ns,
            last_seen_ns: c.last_seen_ns,
            new_edge: c.new_edge,
        }
    }
}

impl TryFrom<pb::TrailConnection> for TrailConnection {
    type Error = ConvertError;
    fn try_from(c: pb::TrailConnection) -> Result<Self, ConvertError> {
        Ok(Self {
            direction: direction(c.direction, "direction")?,
            peer: required(c.peer, "peer")?,
            protocol: c.protocol,
            port: port(c.port, "port")?,
            verdict: verdict(c.verdict, "verdict")?,
            connections: c.connections,
            bytes: c.bytes,
            first_seen_ns: c.first_seen_ns,
            last_seen_ns: c.last_seen_ns,
            new_edge: c.new_edge,
        })
    }
}

impl From<TrailHop> for pb::TrailHop {
    fn from(h: TrailHop) -> Self {
        Self { via: Some(h.via.into()), reached_ns: h.reached_ns, connections: to_pb(h.connections) }
    }
}

impl TryFrom<pb::TrailHop> for TrailHop {
    type Error = ConvertError;
    fn try_from(h: pb::TrailHop) -> Result<Self, ConvertError> {
        Ok(Self {
            via: required(h.via, "via")?,
            reached_ns: h.reached_ns,
            connections: list(h.connections, "connections")?,
        })
    }
}

impl From<Trail> for pb::Trail {
    fn from(t: Trail) -> Self {
        Self {
            pod: t.pod,
            workload: t.workload.map(Into::into),
            since_ns: t.since_ns,
            until_ns: t.until_ns,
            connections: to_pb(t.connections),
            second_hop: to_pb(t.second_hop),
            quarantines: to_pb(t.quarantines),
            audit: to_pb(t.audit),
        }
    }
}

impl TryFrom<pb::Trail> for Trail {
    type Error = ConvertError;
    fn try_from(t: pb::Trail) -> Result<Self, ConvertError> {
        Ok(Self {
            pod: t.pod,
            workload: optional(t.workload, "workload")?,
            since_ns: t.since_ns,
            until_ns: t.until_ns,
            connections: list(t.connections, "connections")?,
            second_hop: list(t.second_hop, "second_hop")?,
            quarantines: list(t.quarantines, "quarantines")?,
            audit: list(t.audit, "audit")?,
        })
    }
}
