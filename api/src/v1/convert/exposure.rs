//! The exposure report.

use super::enums::{app_protocol, exposer, exposure_class, finding_kind};
use super::{ConvertError, list, optional_enum, port, required, to_pb};
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::exposure::{
    CanReach, ExposedBy, ExposedPort, Exposure, ExposureQuery, Finding, FindingCount, HeardProtocol, Listening,
    NamespaceReach, Reached,
};

impl From<ExposureQuery> for pb::ExposureQuery {
    fn from(q: ExposureQuery) -> Self {
        Self { namespace: q.namespace, since: q.since, finding: q.finding.map(|f| pb::FindingKind::from(f) as i32) }
    }
}

impl TryFrom<pb::ExposureQuery> for ExposureQuery {
    type Error = ConvertError;
    fn try_from(q: pb::ExposureQuery) -> Result<Self, ConvertError> {
        Ok(Self { namespace: q.namespace, since: q.since, finding: optional_enum(q.finding, "finding", finding_kind)? })
    }
}

impl From<ExposedBy> for pb::ExposedBy {
    fn from(e: ExposedBy) -> Self {
        Self { via: pb::Exposer::from(e.via) as i32, detail: e.detail }
    }
}

impl TryFrom<pb::ExposedBy> for ExposedBy {
    type Error = ConvertError;
    fn try_from(e: pb::ExposedBy) -> Result<Self, ConvertError> {
        Ok(Self { via: exposer(e.via, "via")?, detail: e.detail })
    }
}

impl From<NamespaceReach> for pb::NamespaceReach {
    fn from(n: NamespaceReach) -> Self {
        Self { namespace: n.namespace, workloads: n.workloads, of: n.of }
    }
}

impl TryFrom<pb::NamespaceReach> for NamespaceReach {
    type Error = ConvertError;
    fn try_from(n: pb::NamespaceReach) -> Result<Self, ConvertError> {
        Ok(Self { namespace: n.namespace, workloads: n.workloads, of: n.of })
    }
}

impl From<CanReach> for pb::CanReach {
    fn from(c: CanReach) -> Self {
        Self {
            world: c.world,
            namespaces: to_pb(c.namespaces),
            every_namespace: c.every_namespace,
            workloads: to_pb(c.workloads),
            workloads_total: c.workloads_total,
        }
    }
}

impl TryFrom<pb::CanReach> for CanReach {
    type Error = ConvertError;
    fn try_from(c: pb::CanReach) -> Result<Self, ConvertError> {
        Ok(Self {
            world: c.world,
            namespaces: list(c.namespaces, "namespaces")?,
            every_namespace: c.every_namespace,
            workloads: list(c.workloads, "workloads")?,
            workloads_total: c.workloads_total,
        })
    }
}

impl From<Reached> for pb::Reached {
    fn from(r: Reached) -> Self {
        Self {
            source: Some(r.source.into()),
            connections: r.connections,
            dropped: r.dropped,
            last_seen_ns: r.last_seen_ns,
        }
    }
}

impl TryFrom<pb::Reached> for Reached {
    type Error = ConvertError;
    fn try_from(r: pb::Reached) -> Result<Self, ConvertError> {
        Ok(Self {
            source: required(r.source, "source")?,
            connections: r.connections,
            dropped: r.dropped,
            last_seen_ns: r.last_seen_ns,
        })
    }
}

impl From<Finding> for pb::Finding {
    fn from(f: Finding) -> Self {
        Self {
            kind: pb::FindingKind::from(f.kind) as i32,
            message: f.message,
            evidence: f.evidence,
            workloads: to_pb(f.workloads),
        }
    }
}

impl TryFrom<pb::Finding> for Finding {
    type Error = ConvertError;
    fn try_from(f: pb::Finding) -> Result<Self, ConvertError> {
        Ok(Self {
            kind: finding_kind(f.kind, "kind")?,
            message: f.message,
            evidence: f.evidence,
            workloads: list(f.workloads, "workloads")?,
        })
    }
}

impl From<ExposedPort> for pb::ExposedPort {
    fn from(p: ExposedPort) -> Self {
        Self {
            namespace: p.namespace,
            service: p.service,
            workloads: to_pb(p.workloads),
            class: pb::ExposureClass::from(p.class) as i32,
            exposed_by: to_pb(p.exposed_by),
            protocol: p.protocol,
            port: u32::from(p.port),
            targets: p.targets.into_iter().map(u32::from).collect(),
            name: p.name,
            declared_protocol: p.declared_protocol.map(|a| flow_pb::AppProtocol::from(a) as i32),
            speaks: p.speaks.map(|a| flow_pb::AppProtocol::from(a) as i32),
            heard: to_pb(p.heard),
            declared: p.declared,
            policed: p.policed,
            listening: p.listening.map(Into::into),
            can_reach: Some(p.can_reach.into()),
            did_reach: to_pb(p.did_reach),
            findings: to_pb(p.findings),
        }
    }
}

impl TryFrom<pb::ExposedPort> for ExposedPort {
    type Error = ConvertError;
    fn try_from(p: pb::ExposedPort) -> Result<Self, ConvertError> {
        let targets = p
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| port(*t, &format!("targets[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            namespace: p.namespace,
            service: p.service,
            workloads: list(p.workloads, "workloads")?,
            class: exposure_class(p.class, "class")?,
            exposed_by: list(p.exposed_by, "exposed_by")?,
            protocol: p.protocol,
            port: port(p.port, "port")?,
            targets,
            name: p.name,
            declared_protocol: optional_enum(p.declared_protocol, "declared_protocol", app_protocol)?,
            speaks: optional_enum(p.speaks, "speaks", app_protocol)?,
            heard: list(p.heard, "heard")?,
            declared: p.declared,
            policed: p.policed,
            listening: p.listening.map(Into::into),
            can_reach: required(p.can_reach, "can_reach")?,
            did_reach: list(p.did_reach, "did_reach")?,
            findings: list(p.findings, "findings")?,
        })
    }
}

impl From<HeardProtocol> for pb::HeardProtocol {
    fn from(h: HeardProtocol) -> Self {
        Self {
            protocol: h.protocol.map(|a| flow_pb::AppProtocol::from(a) as i32),
            client_samples: h.client_samples,
            server_samples: h.server_samples,
            last_seen_ns: h.last_seen_ns,
            hosts: h.hosts,
            alpn: h.alpn,
            methods: h.methods,
        }
    }
}

impl TryFrom<pb::HeardProtocol> for HeardProtocol {
    type Error = ConvertError;
    fn try_from(h: pb::HeardProtocol) -> Result<Self, ConvertError> {
        Ok(Self {
            protocol: optional_enum(h.protocol, "protocol", app_protocol)?,
            client_samples: h.client_samples,
            server_samples: h.server_samples,
            last_seen_ns: h.last_seen_ns,
            hosts: h.hosts,
            alpn: h.alpn,
            methods: h.methods,
        })
    }
}

impl From<Listening> for pb::Listening {
    fn from(l: Listening) -> Self {
        Self {
            pods_read: l.pods_read,
            open: l.open,
            loopback_only: l.loopback_only,
            closed: l.closed,
            read_ns: l.read_ns,
        }
    }
}

impl From<pb::Listening> for Listening {
    fn from(l: pb::Listening) -> Self {
        Self {
            pods_read: l.pods_read,
            open: l.open,
            loopback_only: l.loopback_only,
            closed: l.closed,
            read_ns: l.read_ns,
        }
    }
}

impl From<FindingCount> for pb::FindingCount {
    fn from(c: FindingCount) -> Self {
        Self { kind: pb::FindingKind::from(c.kind) as i32, count: c.count }
    }
}

impl TryFrom<pb::FindingCount> for FindingCount {
    type Error = ConvertError;
    fn try_from(c: pb::FindingCount) -> Result<Self, ConvertError> {
        Ok(Self { kind: finding_kind(c.kind, "kind")?, count: c.count })
    }
}

impl From<Exposure> for pb::Exposure {
    fn from(e: Exposure) -> Self {
        Self { since_ns: e.since_ns, until_ns: e.until_ns, ports: to_pb(e.ports), findings: to_pb(e.findings) }
    }
}

impl TryFrom<pb::Exposure> for Exposure {
    type Error = ConvertError;
    fn try_from(e: pb::Exposure) -> Result<Self, ConvertError> {
        Ok(Self {
            since_ns: e.since_ns,
            until_ns: e.until_ns,
            ports: list(e.ports, "ports")?,
            findings: list(e.findings, "findings")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass, FindingKind};

    use super::*;
    use crate::v1::graph::{GraphNode, NodeKind};

    fn node(id: &str) -> GraphNode {
        GraphNode {
            id: id.into(),
            kind: NodeKind::Workload,
            namespace: Some("shop".into()),
            name: id.into(),
            workload_kind: Some("Deployment".into()),
            redacted: false,
        }
    }

    #[test]
    fn the_report_round_trips_and_bad_values_are_named() -> Result<(), ConvertError> {
        let port = ExposedPort {
            namespace: "shop".into(),
            service: Some("redis".into()),
            workloads: vec![node("redis")],
            class: ExposureClass::InternetFacing,
            exposed_by: vec![ExposedBy { via: Exposer::NodePort, detail: "NodePort 30079 on every node".into() }],
            protocol: "TCP".into(),
            port: 6379,
            targets: vec![6379],
            name: "tcp-redis".into(),
            declared_protocol: Some(AppProtocol::Redis),
            speaks: Some(AppProtocol::Redis),
            heard: vec![HeardProtocol {
                protocol: Some(AppProtocol::Redis),
                client_samples: 3,
                server_samples: 2,
                last_seen_ns: 9,
                hosts: Vec::new(),
                alpn: Vec::new(),
                methods: vec!["PING".into()],
            }],
            declared: true,
            policed: true,
            listening: Some(Listening {
                pods_read: 2,
                open: vec!["shop/redis-0".into()],
                loopback_only: vec![],
                closed: vec!["shop/redis-1".into()],
                read_ns: 7,
            }),
            can_reach: CanReach {
                world: Some("from 203.0.113.10".into()),
                namespaces: vec![NamespaceReach { namespace: "shop".into(), workloads: 2, of: 3 }],
                every_namespace: false,
                workloads: vec![node("web")],
                workloads_total: 2,
            },
            did_reach: vec![Reached { source: node("web"), connections: 4, dropped: 1, last_seen_ns: 9 }],
            findings: vec![Finding {
                kind: FindingKind::DatabaseExposed,
                message: "m".into(),
                evidence: vec!["e".into()],
                workloads: vec![],
            }],
        };
        let report = Exposure {
            since_ns: 1,
            until_ns: 2,
            ports: vec![port],
            findings: vec![FindingCount { kind: FindingKind::DatabaseExposed, count: 1 }],
        };
        assert_eq!(Exposure::try_from(pb::Exposure::from(report.clone()))?, report);
        let q = ExposureQuery {
            namespace: Some("shop".into()),
            since: Some("1h".into()),
            finding: Some(FindingKind::NoPolicy),
        };
        assert_eq!(ExposureQuery::try_from(pb::ExposureQuery::from(q.clone()))?, q);
        let mut bad = pb::Exposure::from(report);
        bad.ports[0].targets[0] = 70_000;
        assert_eq!(Exposure::try_from(bad.clone()).unwrap_err().field, "ports[0].targets[0]");
        bad.ports[0].targets[0] = 1;
        bad.ports[0].class = 0;
        assert_eq!(Exposure::try_from(bad).unwrap_err().to_string(), "ports[0].class: not set");
        Ok(())
    }
}
