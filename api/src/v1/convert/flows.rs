//! Flows, their filters and the live stream's events.

use super::enums::{direction, peer_kind, reason, side, verdict};
use super::{ConvertError, optional, optional_enum, optional_port, port, required};
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::flows::{Flow, FlowQuery, Lost, Peer, ServiceRef, StreamEvent};

impl From<Peer> for pb::Peer {
    fn from(p: Peer) -> Self {
        Self {
            kind: pb::PeerKind::from(p.kind) as i32,
            namespace: p.namespace,
            workload_kind: p.workload_kind,
            name: p.name,
            pod: p.pod,
            ip: p.ip,
        }
    }
}

impl TryFrom<pb::Peer> for Peer {
    type Error = ConvertError;
    fn try_from(p: pb::Peer) -> Result<Self, ConvertError> {
        Ok(Self {
            kind: peer_kind(p.kind, "kind")?,
            namespace: p.namespace,
            workload_kind: p.workload_kind,
            name: p.name,
            pod: p.pod,
            ip: p.ip,
        })
    }
}

impl From<ServiceRef> for pb::ServiceRef {
    fn from(s: ServiceRef) -> Self {
        Self { namespace: s.namespace, name: s.name, port: u32::from(s.port) }
    }
}

impl TryFrom<pb::ServiceRef> for ServiceRef {
    type Error = ConvertError;
    fn try_from(s: pb::ServiceRef) -> Result<Self, ConvertError> {
        Ok(Self { namespace: s.namespace, name: s.name, port: port(s.port, "port")? })
    }
}

impl From<Flow> for pb::Flow {
    fn from(f: Flow) -> Self {
        Self {
            id: f.id,
            time_ns: f.time_ns,
            node: f.node,
            observation: flow_pb::Direction::from(f.observation) as i32,
            source: Some(f.source.into()),
            destination: Some(f.destination.into()),
            protocol: f.protocol,
            src_port: u32::from(f.src_port),
            dst_port: u32::from(f.dst_port),
            service: f.service.map(Into::into),
            verdict: flow_pb::Verdict::from(f.verdict) as i32,
            drop_reason: f.drop_reason.map(|r| flow_pb::Reason::from(r) as i32),
            rule: f.rule,
            bytes: f.bytes,
            packets: f.packets,
        }
    }
}

impl TryFrom<pb::Flow> for Flow {
    type Error = ConvertError;
    fn try_from(f: pb::Flow) -> Result<Self, ConvertError> {
        Ok(Self {
            id: f.id,
            time_ns: f.time_ns,
            node: f.node,
            observation: direction(f.observation, "observation")?,
            source: required(f.source, "source")?,
            destination: required(f.destination, "destination")?,
            protocol: f.protocol,
            src_port: port(f.src_port, "src_port")?,
            dst_port: port(f.dst_port, "dst_port")?,
            service: optional(f.service, "service")?,
            verdict: verdict(f.verdict, "verdict")?,
            drop_reason: optional_enum(f.drop_reason, "drop_reason", reason)?,
            rule: f.rule,
            bytes: f.bytes,
            packets: f.packets,
        })
    }
}

impl From<FlowQuery> for pb::FlowQuery {
    fn from(q: FlowQuery) -> Self {
        Self {
            namespace: q.namespace,
            pod: q.pod,
            workload: q.workload,
            side: q.side.map(|s| pb::Side::from(s) as i32),
            verdict: q.verdict.map(|v| flow_pb::Verdict::from(v) as i32),
            port: q.port.map(u32::from),
            protocol: q.protocol,
            rule: q.rule,
            since: q.since,
            until: q.until,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

impl TryFrom<pb::FlowQuery> for FlowQuery {
    type Error = ConvertError;
    fn try_from(q: pb::FlowQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            namespace: q.namespace,
            pod: q.pod,
            workload: q.workload,
            side: optional_enum(q.side, "side", side)?,
            verdict: optional_enum(q.verdict, "verdict", verdict)?,
            port: optional_port(q.port, "port")?,
            protocol: q.protocol,
            rule: q.rule,
            since: q.since,
            until: q.until,
            limit: q.limit,
            cursor: q.cursor,
        })
    }
}

impl From<Lost> for pb::Lost {
    fn from(l: Lost) -> Self {
        Self { lost: l.lost, total: l.total, resumed_at: l.resumed_at }
    }
}

impl TryFrom<pb::Lost> for Lost {
    type Error = ConvertError;
    fn try_from(l: pb::Lost) -> Result<Self, ConvertError> {
        Ok(Self { lost: l.lost, total: l.total, resumed_at: l.resumed_at })
    }
}

impl From<StreamEvent> for pb::StreamEvent {
    fn from(e: StreamEvent) -> Self {
        use pb::stream_event::Event;
        let event = match e {
            StreamEvent::Flow(f) => Event::Flow((*f).into()),
            StreamEvent::Lost(l) => Event::Lost(l.into()),
        };
        Self { event: Some(event) }
    }
}

impl TryFrom<pb::StreamEvent> for StreamEvent {
    type Error = ConvertError;
    fn try_from(e: pb::StreamEvent) -> Result<Self, ConvertError> {
        use pb::stream_event::Event;
        match e.event {
            Some(Event::Flow(f)) => Ok(Self::Flow(Box::new(Flow::try_from(f).map_err(|err| err.within("flow"))?))),
            Some(Event::Lost(l)) => Ok(Self::Lost(Lost::try_from(l).map_err(|err| err.within("lost"))?)),
            None => Err(ConvertError::new("event", "missing: neither flow nor lost")),
        }
    }
}

page!(pb::FlowPage, Flow);

#[cfg(test)]
pub(super) mod tests {
    use bulkhead_model::{Direction, Reason, Verdict};

    use super::*;
    use crate::v1::Page;
    use crate::v1::flows::{PeerKind, Side};

    /// A flow with every optional field set, for this and other tests.
    pub(in crate::v1::convert) fn flow(id: u64) -> Flow {
        Flow {
            id,
            time_ns: 1_700_000_000_000_000_000,
            node: "node-a".into(),
            observation: Direction::Egress,
            source: Peer {
                kind: PeerKind::Workload,
                namespace: Some("shop".into()),
                workload_kind: Some("Deployment".into()),
                name: Some("web".into()),
                pod: Some("web-1".into()),
                ip: Some("10.0.0.5".into()),
            },
            destination: Peer {
                kind: PeerKind::World,
                namespace: None,
                workload_kind: None,
                name: None,
                pod: None,
                ip: Some("192.0.2.1".into()),
            },
            protocol: "TCP".into(),
            src_port: 40_000,
            dst_port: 65_535,
            service: Some(ServiceRef { namespace: "shop".into(), name: "db".into(), port: 5432 }),
            verdict: Verdict::Audit,
            drop_reason: Some(Reason::DefaultDeny),
            rule: Some("shop/web#egress[0]".into()),
            bytes: 1234,
            packets: 7,
        }
    }

    #[test]
    fn flows_and_stream_events_round_trip() -> Result<(), ConvertError> {
        let full = flow(1);
        let bare = Flow { service: None, drop_reason: None, rule: None, ..flow(2) };
        let none_reason = Flow { drop_reason: Some(Reason::None), verdict: Verdict::Forwarded, ..flow(3) };
        for f in [full, bare, none_reason] {
            assert_eq!(Flow::try_from(pb::Flow::from(f.clone()))?, f);
        }
        for e in [StreamEvent::Flow(Box::new(flow(4))), StreamEvent::Lost(Lost { lost: 3, total: 10, resumed_at: 99 })]
        {
            assert_eq!(StreamEvent::try_from(pb::StreamEvent::from(e.clone()))?, e);
        }
        let page = Page { items: vec![flow(5), flow(6)], next_cursor: Some("6".into()) };
        assert_eq!(Page::<Flow>::try_from(pb::FlowPage::from(page.clone()))?, page);
        Ok(())
    }

    #[test]
    fn flow_queries_round_trip() -> Result<(), ConvertError> {
        let full = FlowQuery {
            namespace: Some("shop".into()),
            pod: Some("shop/web-1".into()),
            workload: Some("web".into()),
            side: Some(Side::Destination),
            verdict: Some(Verdict::Dropped),
            port: Some(443),
            protocol: Some("TCP".into()),
            rule: Some("shop/web#ingress[0]".into()),
            since: Some("5m".into()),
            until: Some("2024-01-01T00:00:00Z".into()),
            limit: Some(50),
            cursor: Some("abc".into()),
        };
        for q in [full, FlowQuery::default()] {
            assert_eq!(FlowQuery::try_from(pb::FlowQuery::from(q.clone()))?, q);
        }
        Ok(())
    }

    #[test]
    fn bad_flows_are_refused_naming_the_field() {
        let mut f = pb::Flow::from(flow(1));
        f.dst_port = 70_000;
        assert_eq!(Flow::try_from(f).err().map(|e| e.field), Some("dst_port".to_string()));

        let mut f = pb::Flow::from(flow(1));
        f.source = None;
        assert_eq!(Flow::try_from(f).err().map(|e| e.field), Some("source".to_string()));

        let mut f = pb::Flow::from(flow(1));
        if let Some(d) = f.destination.as_mut() {
            d.kind = pb::PeerKind::Unspecified as i32;
        }
        let page = pb::FlowPage { items: vec![pb::Flow::from(flow(2)), f], next_cursor: None };
        assert_eq!(Page::<Flow>::try_from(page).err().map(|e| e.field), Some("items[1].destination.kind".to_string()));

        let event = pb::StreamEvent { event: None };
        assert_eq!(StreamEvent::try_from(event).err().map(|e| e.field), Some("event".to_string()));
    }
}
