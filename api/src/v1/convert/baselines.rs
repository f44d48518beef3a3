//! Learned baselines and the anomalies seen once a workload is stable.

use super::enums::{anomaly_kind, direction, phase};
use super::{ConvertError, list, port, required, to_pb};
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::baselines::{Anomaly, AnomalyQuery, Baselines, ScanSummary, WorkloadBaseline};

impl From<WorkloadBaseline> for pb::WorkloadBaseline {
    fn from(b: WorkloadBaseline) -> Self {
        Self {
            workload: Some(b.workload.into()),
            phase: pb::Phase::from(b.phase) as i32,
            first_seen_ns: b.first_seen_ns,
            last_new_edge_ns: b.last_new_edge_ns,
            stable_since_ns: b.stable_since_ns,
            edges: b.edges,
        }
    }
}

impl TryFrom<pb::WorkloadBaseline> for WorkloadBaseline {
    type Error = ConvertError;
    fn try_from(b: pb::WorkloadBaseline) -> Result<Self, ConvertError> {
        Ok(Self {
            workload: required(b.workload, "workload")?,
            phase: phase(b.phase, "phase")?,
            first_seen_ns: b.first_seen_ns,
            last_new_edge_ns: b.last_new_edge_ns,
            stable_since_ns: b.stable_since_ns,
            edges: b.edges,
        })
    }
}

impl From<Baselines> for pb::Baselines {
    fn from(b: Baselines) -> Self {
        Self { window_seconds: b.window_seconds, quiet_seconds: b.quiet_seconds, workloads: to_pb(b.workloads) }
    }
}

impl TryFrom<pb::Baselines> for Baselines {
    type Error = ConvertError;
    fn try_from(b: pb::Baselines) -> Result<Self, ConvertError> {
        Ok(Self {
            window_seconds: b.window_seconds,
            quiet_seconds: b.quiet_seconds,
            workloads: list(b.workloads, "workloads")?,
        })
    }
}

impl From<Anomaly> for pb::Anomaly {
    fn from(a: Anomaly) -> Self {
        Self {
            id: a.id,
            workload: Some(a.workload.into()),
            side: flow_pb::Direction::from(a.side) as i32,
            source: Some(a.source.into()),
            destination: Some(a.destination.into()),
            protocol: a.protocol,
            port: u32::from(a.port),
            first_seen_ns: a.first_seen_ns,
            last_seen_ns: a.last_seen_ns,
            connections: a.connections,
            dropped: a.dropped,
            evidence: to_pb(a.evidence),
            kind: pb::AnomalyKind::from(a.kind) as i32,
            scan: a.scan.map(Into::into),
        }
    }
}

impl From<ScanSummary> for pb::ScanSummary {
    fn from(s: ScanSummary) -> Self {
        Self {
            source_ip: s.source_ip.to_string(),
            source_pod: s.source_pod,
            ports: s.ports,
            hosts: s.hosts,
            sample_ports: s.sample_ports.into_iter().map(u32::from).collect(),
            folded: s.folded,
            unlearned: s.unlearned,
        }
    }
}

impl TryFrom<pb::ScanSummary> for ScanSummary {
    type Error = ConvertError;
    fn try_from(s: pb::ScanSummary) -> Result<Self, ConvertError> {
        Ok(Self {
            source_ip: s
                .source_ip
                .parse()
                .map_err(|_| ConvertError::new("scan.source_ip", format!("{:?} is not an address", s.source_ip)))?,
            source_pod: s.source_pod,
            ports: s.ports,
            hosts: s.hosts,
            sample_ports: s.sample_ports.into_iter().map(|p| port(p, "scan.sample_ports")).collect::<Result<_, _>>()?,
            folded: s.folded,
            unlearned: s.unlearned,
        })
    }
}

impl TryFrom<pb::Anomaly> for Anomaly {
    type Error = ConvertError;
    fn try_from(a: pb::Anomaly) -> Result<Self, ConvertError> {
        Ok(Self {
            id: a.id,
            workload: required(a.workload, "workload")?,
            side: direction(a.side, "side")?,
            source: required(a.source, "source")?,
            destination: required(a.destination, "destination")?,
            protocol: a.protocol,
            port: port(a.port, "port")?,
            first_seen_ns: a.first_seen_ns,
            last_seen_ns: a.last_seen_ns,
            connections: a.connections,
            dropped: a.dropped,
            evidence: list(a.evidence, "evidence")?,
            kind: anomaly_kind(a.kind, "kind")?,
            scan: a.scan.map(ScanSummary::try_from).transpose()?,
        })
    }
}

impl From<AnomalyQuery> for pb::AnomalyQuery {
    fn from(q: AnomalyQuery) -> Self {
        Self {
            namespace: q.namespace,
            workload: q.workload,
            since: q.since,
            limit: q.limit,
            cursor: q.cursor,
            kind: q.kind.map(|k| pb::AnomalyKind::from(k) as i32),
        }
    }
}

impl TryFrom<pb::AnomalyQuery> for AnomalyQuery {
    type Error = ConvertError;
    fn try_from(q: pb::AnomalyQuery) -> Result<Self, ConvertError> {
        Ok(Self {
            namespace: q.namespace,
            workload: q.workload,
            since: q.since,
            limit: q.limit,
            cursor: q.cursor,
            kind: q.kind.map(|k| anomaly_kind(k, "kind")).transpose()?,
        })
    }
}

page!(pb::AnomalyPage, Anomaly);

#[cfg(test)]
mod tests {
    use bulkhead_model::Direction;

    use super::*;
    use crate::v1::Page;
    use crate::v1::baselines::Phase;
    use crate::v1::convert::flows::tests::flow;
    use crate::v1::inventory::WorkloadRef;

    fn workload() -> WorkloadRef {
        WorkloadRef { namespace: "shop".into(), kind: "Deployment".into(), name: "web".into() }
    }

    #[test]
    fn baselines_and_anomalies_round_trip() -> Result<(), ConvertError> {
        let baselines = Baselines {
            window_seconds: 3600,
            quiet_seconds: 600,
            workloads: vec![
                WorkloadBaseline {
                    workload: workload(),
                    phase: Phase::Stable,
                    first_seen_ns: 1,
                    last_new_edge_ns: 2,
                    stable_since_ns: Some(3),
                    edges: 4,
                },
                WorkloadBaseline {
                    workload: workload(),
                    phase: Phase::Learning,
                    first_seen_ns: 5,
                    last_new_edge_ns: 6,
                    stable_since_ns: None,
                    edges: 0,
                },
            ],
        };
        assert_eq!(Baselines::try_from(pb::Baselines::from(baselines.clone()))?, baselines);
        let f = flow(9);
        let anomaly = Anomaly {
            id: 3,
            workload: workload(),
            side: Direction::Ingress,
            source: f.source.clone(),
            destination: f.destination.clone(),
            protocol: "UDP".into(),
            port: 53,
            first_seen_ns: 10,
            last_seen_ns: 20,
            connections: 2,
            dropped: 1,
            evidence: vec![f],
            kind: bulkhead_model::AnomalyKind::NewEdge,
            scan: None,
        };
        let scan = Anomaly {
            id: 4,
            kind: bulkhead_model::AnomalyKind::PortScan,
            side: Direction::Egress,
            scan: Some(ScanSummary {
                source_ip: "10.1.0.7".parse().unwrap(),
                source_pod: "shop/web-0".into(),
                ports: 100,
                hosts: 1,
                sample_ports: vec![1, 2, 3],
                folded: 20,
                unlearned: 0,
            }),
            ..anomaly.clone()
        };
        let page = Page { items: vec![anomaly, scan], next_cursor: None };
        assert_eq!(Page::<Anomaly>::try_from(pb::AnomalyPage::from(page.clone()))?, page);
        let mut bad = pb::AnomalyPage::from(page);
        bad.items[1].scan.as_mut().unwrap().source_ip = "not-an-ip".into();
        assert!(Page::<Anomaly>::try_from(bad).unwrap_err().to_string().contains("scan.source_ip"));
        let q = AnomalyQuery {
            namespace: Some("shop".into()),
            workload: Some("shop/web".into()),
            since: Some("1h".into()),
            limit: Some(10),
            cursor: Some("3".into()),
            kind: Some(bulkhead_model::AnomalyKind::HostSweep),
        };
        assert_eq!(AnomalyQuery::try_from(pb::AnomalyQuery::from(q.clone()))?, q);
        Ok(())
    }
}
