//! Learned normal traffic. Each workload learns for at least a window; its
//! baseline is stable once no new edge has touched it for a quiet period.
//! After that, a new edge is not learned: it is an anomaly event carrying
//! the flows that showed it. Time comes from the flows and from `tick`, so
//! the learner is deterministic and replayable.

mod scans;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::flow::{Entity, FlowRecord, ServiceRef};
use crate::scan::{ScanConfig, ScanDetector, Step};
use crate::service_graph::EdgeKey;
use bulkhead_model::{AnomalyKind, Direction, Verdict};

/// How long workloads learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearningConfig {
    /// Minimum learning time from a workload's first flow, in nanoseconds.
    pub window_ns: i64,
    /// Time without a new edge after which the baseline is stable.
    pub quiet_ns: i64,
    /// Flows kept as evidence on each anomaly.
    pub evidence_per_anomaly: usize,
    /// When one source trying many targets is a scan.
    #[serde(default)]
    pub scan: ScanConfig,
}

impl Default for LearningConfig {
    /// One hour of learning, stable after ten quiet minutes.
    fn default() -> Self {
        Self {
            window_ns: 3_600_000_000_000,
            quiet_ns: 600_000_000_000,
            evidence_per_anomaly: 10,
            scan: ScanConfig::default(),
        }
    }
}

/// One kind of connection: from, to, protocol and the port it was delivered
/// to (the target port behind a service).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Edge {
    /// Source.
    pub src: Entity,
    /// Destination.
    pub dst: Entity,
    /// IANA protocol number.
    pub protocol: u8,
    /// Delivered port.
    pub port: u16,
}

/// What was seen of a learned edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeEvidence {
    /// Connections counted (each once, whichever ends saw it).
    pub connections: u64,
    /// First seen, nanoseconds since the epoch.
    pub first_seen_ns: i64,
    /// Last seen.
    pub last_seen_ns: i64,
    /// Services the source addressed to reach it.
    pub services: BTreeSet<ServiceRef>,
    /// Part of the source workload's egress baseline.
    pub egress_learned: bool,
    /// Part of the destination workload's ingress baseline.
    pub ingress_learned: bool,
}

impl EdgeEvidence {
    fn add(&mut self, r: &FlowRecord, key: &EdgeKey) {
        if self.connections == 0 {
            self.first_seen_ns = r.time_ns;
        }
        self.first_seen_ns = self.first_seen_ns.min(r.time_ns);
        self.last_seen_ns = self.last_seen_ns.max(r.time_ns);
        self.connections += 1;
        if let Some(s) = &key.service {
            self.services.insert(s.clone());
        }
    }
}

/// Where a workload's baseline stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// New edges are learned.
    Learning,
    /// New edges are anomalies.
    Stable,
}

/// One workload's learning state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadBaseline {
    /// First flow seen.
    pub first_seen_ns: i64,
    /// Last time an edge was added to its baseline.
    pub last_new_edge_ns: i64,
    /// Learning or stable.
    pub phase: Phase,
    /// When it became stable.
    pub stable_since_ns: Option<i64>,
    /// Edges in its baseline (both directions).
    pub edges: u64,
}

/// What a scan has tried so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSummary {
    /// The scanning address.
    pub source_ip: std::net::IpAddr,
    /// The scanning pod ("namespace/name"), when a pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_pod: String,
    /// Distinct ports tried.
    pub ports: u32,
    /// Distinct hosts tried.
    pub hosts: u32,
    /// The first ports tried, ascending (at most [`crate::scan::SAMPLE`]).
    pub sample_ports: Vec<u16>,
    /// New-edge anomalies of the scan's first window, folded into it.
    pub folded: u32,
    /// Edges the scan's first window had added to a baseline, taken back out.
    pub unlearned: u32,
}

fn new_edge() -> AnomalyKind {
    AnomalyKind::NewEdge
}

/// A new edge at a workload whose baseline was stable, or a scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Stable, increasing id.
    pub id: u64,
    /// New edge, port scan or host sweep.
    #[serde(default = "new_edge")]
    pub kind: AnomalyKind,
    /// The stable workload that saw something new; for a scan, the scanning
    /// workload, or the first scanned one when the scanner is not a workload.
    pub workload: Entity,
    /// Its side of the edge.
    pub side: Direction,
    /// The new edge; for a scan, its first attempt's.
    pub edge: Edge,
    /// What a scan tried; none for a new edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanSummary>,
    /// First and last occurrence.
    pub first_seen_ns: i64,
    /// Last occurrence.
    pub last_seen_ns: i64,
    /// Connections on it so far.
    pub connections: u64,
    /// Of which dropped by policy.
    pub dropped: u64,
    /// The first flows that showed it (up to the configured number).
    pub evidence: Vec<FlowRecord>,
}

/// Baselines of every workload, learned edges and anomalies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Learner {
    config: LearningConfig,
    #[serde(with = "pairs")]
    workloads: BTreeMap<Entity, WorkloadBaseline>,
    #[serde(with = "pairs")]
    edges: BTreeMap<Edge, EdgeEvidence>,
    #[serde(with = "pairs")]
    anomalies: BTreeMap<(Entity, Direction, Edge), Anomaly>,
    /// Scans, by id.
    #[serde(default)]
    scans: BTreeMap<u64, Anomaly>,
    next_anomaly: u64,
    #[serde(skip)]
    detector: ScanDetector,
    /// Anomalies made since the last `take_fresh`, for alerts and rules.
    #[serde(skip)]
    fresh: Vec<Fresh>,
    #[serde(skip)]
    fresh_lost: u64,
}

/// An anomaly not yet handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fresh {
    Edge((Entity, Direction, Edge)),
    Scan(u64),
}

/// Anomalies waiting to be handed out, at most; beyond it they are counted.
const FRESH_MAX: usize = 65_536;

impl Learner {
    /// A learner with nothing learned.
    pub fn new(config: LearningConfig) -> Self {
        Self { config, next_anomaly: 1, detector: ScanDetector::new(config.scan), ..Default::default() }
    }

    /// The configuration.
    pub fn config(&self) -> LearningConfig {
        self.config
    }

    /// Changes the windows (e.g. on restart with new flags); phases already
    /// reached are kept.
    pub fn set_config(&mut self, config: LearningConfig) {
        self.config = config;
        self.detector.set_config(config.scan);
    }

    fn start(&mut self, w: &Entity, t: i64) {
        if matches!(w, Entity::Workload { .. }) && !self.workloads.contains_key(w) {
            self.workloads.entry(w.clone()).or_insert(WorkloadBaseline {
                first_seen_ns: t,
                last_new_edge_ns: t,
                phase: Phase::Learning,
                stable_since_ns: None,
                edges: 0,
            });
        }
    }

    fn phase(&self, w: &Entity) -> Option<Phase> {
        self.workloads.get(w).map(|b| b.phase)
    }

    /// Takes one counted connection (what `ServiceGraph::ingest` or `flush`
    /// counted). Returns the ids of anomalies it created or added to.
    pub fn observe(&mut self, r: &FlowRecord, key: &EdgeKey) -> Vec<u64> {
        self.start(&r.src, r.time_ns);
        self.start(&r.dst, r.time_ns);
        let edge = Edge { src: r.src.clone(), dst: r.dst.clone(), protocol: key.protocol, port: key.port };
        // The common case: an edge both ends already learned.
        if let Some(e) = self.edges.get_mut(&edge)
            && e.egress_learned
            && e.ingress_learned
        {
            e.add(r, key);
            return Vec::new();
        }
        // A folded key has no port of its own; the detector counts the one addressed.
        let port = if key.is_folded() { r.dst_port } else { key.port };
        match self.detector.observe(r, port) {
            Step::Normal => {}
            Step::Scanning { anomaly, ports, hosts } => return self.scanning(anomaly, r, ports, hosts),
            Step::Detected(d) => return vec![self.scan_started(r, key, d)],
        }
        let known = self.edges.get(&edge).map(|e| (e.egress_learned, e.ingress_learned)).unwrap_or_default();
        let dropped = r.verdict == Verdict::Dropped;
        let mut learned = (known.0, known.1);
        let mut anomalies = Vec::new();
        for (side, end, already) in [(Direction::Egress, &r.src, known.0), (Direction::Ingress, &r.dst, known.1)] {
            if already {
                continue;
            }
            match self.phase(end) {
                // The scan edge is never learned: a port past the limit is
                // never known, so the detector always sees it.
                Some(Phase::Learning) if !dropped && !key.is_folded() => {
                    if side == Direction::Egress {
                        learned.0 = true;
                    } else {
                        learned.1 = true;
                    }
                    if let Some(b) = self.workloads.get_mut(end) {
                        b.last_new_edge_ns = b.last_new_edge_ns.max(r.time_ns);
                        b.edges += 1;
                    }
                }
                Some(Phase::Stable) => anomalies.push(self.anomaly(end.clone(), side, &edge, r)),
                _ => {}
            }
        }
        if learned.0 || learned.1 {
            let e = self.edges.entry(edge).or_default();
            e.egress_learned = learned.0;
            e.ingress_learned = learned.1;
            e.add(r, key);
        }
        anomalies
    }

    fn fresh(&mut self, f: Fresh) {
        if self.fresh.len() < FRESH_MAX {
            self.fresh.push(f);
        } else {
            self.fresh_lost += 1;
        }
    }

    fn anomaly(&mut self, workload: Entity, side: Direction, edge: &Edge, r: &FlowRecord) -> u64 {
        let next = &mut self.next_anomaly;
        let key = (workload.clone(), side, edge.clone());
        let mut created = false;
        let a = self.anomalies.entry(key.clone()).or_insert_with(|| {
            let id = (*next).max(1);
            *next = id + 1;
            created = true;
            Anomaly {
                id,
                kind: AnomalyKind::NewEdge,
                workload,
                side,
                edge: edge.clone(),
                scan: None,
                first_seen_ns: r.time_ns,
                last_seen_ns: r.time_ns,
                connections: 0,
                dropped: 0,
                evidence: Vec::new(),
            }
        });
        a.last_seen_ns = a.last_seen_ns.max(r.time_ns);
        a.connections += 1;
        if r.verdict == Verdict::Dropped {
            a.dropped += 1;
        }
        if a.evidence.len() < self.config.evidence_per_anomaly {
            a.evidence.push(r.clone());
        }
        let id = a.id;
        if created {
            self.fresh(Fresh::Edge(key));
        }
        id
    }

    /// Marks stable every workload that has learned for the window and seen
    /// no new edge for the quiet period. Returns those that just became stable.
    /// Also ends scans that have gone quiet.
    pub fn tick(&mut self, now_ns: i64) -> Vec<Entity> {
        self.detector.tick(now_ns);
        let cfg = self.config;
        let mut out = Vec::new();
        for (w, b) in &mut self.workloads {
            if b.phase == Phase::Learning
                && now_ns - b.first_seen_ns >= cfg.window_ns
                && now_ns - b.last_new_edge_ns >= cfg.quiet_ns
            {
                b.phase = Phase::Stable;
                b.stable_since_ns = Some(now_ns);
                out.push(w.clone());
            }
        }
        out
    }

    /// Every workload's state.
    pub fn workloads(&self) -> &BTreeMap<Entity, WorkloadBaseline> {
        &self.workloads
    }

    /// Every learned edge.
    pub fn edges(&self) -> &BTreeMap<Edge, EdgeEvidence> {
        &self.edges
    }

    /// A workload's baseline: edges it learned as source, then as destination.
    pub fn baseline_of<'a>(
        &'a self,
        w: &'a Entity,
    ) -> impl Iterator<Item = (Direction, &'a Edge, &'a EdgeEvidence)> + 'a {
        let out = self
            .edges
            .iter()
            .filter(move |(e, ev)| e.src == *w && ev.egress_learned)
            .map(|(e, v)| (Direction::Egress, e, v));
        let inc = self
            .edges
            .iter()
            .filter(move |(e, ev)| e.dst == *w && ev.ingress_learned)
            .map(|(e, v)| (Direction::Ingress, e, v));
        out.chain(inc)
    }

    /// How many anomalies there are.
    pub fn anomaly_count(&self) -> usize {
        self.anomalies.len() + self.scans.len()
    }

    /// Every anomaly, oldest first.
    pub fn anomalies(&self) -> Vec<&Anomaly> {
        let mut v: Vec<&Anomaly> = self.anomalies.values().chain(self.scans.values()).collect();
        v.sort_by_key(|a| a.id);
        v
    }
}

/// Maps with structured keys as lists of pairs, so JSON can hold them.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(m: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(m.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::Direction;

    const S: i64 = 1_000_000_000;

    fn w(name: &str) -> Entity {
        Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: name.into() }
    }

    fn conn(src: &Entity, dst: &Entity, port: u16, t: i64, verdict: Verdict) -> (FlowRecord, EdgeKey) {
        let r = FlowRecord {
            time_ns: t,
            observation: Direction::Ingress,
            node: "n1".into(),
            src: src.clone(),
            dst: dst.clone(),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: 40000,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: port,
            protocol: 6,
            service: None,
            verdict,
            bytes: 0,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: None,
            packets: 0,
        };
        (r, EdgeKey { protocol: 6, port, service: None })
    }

    #[test]
    fn learns_until_quiet_then_reports_new_edges_with_evidence() {
        let cfg = LearningConfig { window_ns: 10 * S, quiet_ns: 5 * S, evidence_per_anomaly: 2, ..Default::default() };
        let mut l = Learner::new(cfg);
        let (a, b, c) = (w("a"), w("b"), w("c"));
        let (r, k) = conn(&a, &b, 80, 0, Verdict::Forwarded);
        assert!(l.observe(&r, &k).is_empty());
        let (r, k) = conn(&a, &b, 81, 8 * S, Verdict::Forwarded);
        assert!(l.observe(&r, &k).is_empty());
        assert!(l.tick(11 * S).is_empty(), "a new edge at 8 s: not quiet until 13 s");
        assert_eq!(l.tick(13 * S), vec![a.clone(), b.clone()]);
        assert_eq!(l.baseline_of(&a).count(), 2);

        // Known edges stay quiet; a new one is an anomaly at both stable ends.
        let (r, k) = conn(&a, &b, 80, 20 * S, Verdict::Forwarded);
        assert!(l.observe(&r, &k).is_empty());
        let (r, k) = conn(&b, &a, 22, 21 * S, Verdict::Dropped);
        assert_eq!(l.observe(&r, &k).len(), 2);
        let (r, k) = conn(&b, &a, 22, 22 * S, Verdict::Dropped);
        l.observe(&r, &k);
        let (r, k) = conn(&b, &a, 22, 23 * S, Verdict::Dropped);
        l.observe(&r, &k);
        let an = l.anomalies();
        assert_eq!(an.len(), 2);
        assert_eq!((an[0].connections, an[0].dropped, an[0].evidence.len()), (3, 3, 2));
        assert!(!l.edges().contains_key(&Edge { src: b.clone(), dst: a.clone(), protocol: 6, port: 22 }));

        // A new workload learns while the stable one it calls reports it.
        let (r, k) = conn(&c, &a, 80, 30 * S, Verdict::Forwarded);
        let ids = l.observe(&r, &k);
        assert_eq!(ids.len(), 1);
        assert_eq!(l.anomalies().last().unwrap().workload, a);
        assert_eq!(l.baseline_of(&c).count(), 1, "c learned its egress");
        assert_eq!(l.baseline_of(&a).count(), 2, "a did not learn the new ingress");

        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::to_string(&serde_json::from_str::<Learner>(&json).unwrap()).unwrap(), json);
    }

    #[test]
    fn a_scan_is_one_anomaly_its_new_edges_fold_in_and_its_edges_are_not_learned() {
        let scan = ScanConfig { window_ns: 2 * S, ports: 20, hosts: 20, ..Default::default() };
        let cfg = LearningConfig { window_ns: 10 * S, quiet_ns: 5 * S, evidence_per_anomaly: 3, scan };
        let mut l = Learner::new(cfg);
        let (a, b, c) = (w("a"), w("b"), w("c"));
        let (r, k) = conn(&a, &b, 80, 0, Verdict::Forwarded);
        l.observe(&r, &k);
        let (r, k) = conn(&c, &b, 80, 0, Verdict::Forwarded);
        l.observe(&r, &k);
        l.tick(20 * S);
        assert_eq!(l.baseline_of(&a).count(), 1);
        // a, stable, tries 100 ports of b in 1.5 s, all dropped.
        for p in 0..100u16 {
            let (r, k) = conn(&a, &b, 1000 + p, 30 * S + i64::from(p) * 15_000_000, Verdict::Dropped);
            l.observe(&r, &k);
        }
        let all = l.anomalies();
        assert_eq!(all.len(), 1, "{all:#?}");
        let s = all[0];
        assert_eq!((s.kind, s.workload.clone(), s.side), (AnomalyKind::PortScan, a.clone(), Direction::Egress));
        assert_eq!((s.connections, s.dropped), (100, 100));
        let sum = s.scan.as_ref().unwrap();
        assert_eq!((sum.ports, sum.hosts), (100, 1));
        assert_eq!(sum.folded, 38, "19 new edges before detection, each an anomaly at both stable ends");
        assert_eq!(sum.sample_ports, (1000..1032).collect::<Vec<u16>>());
        assert_eq!(s.evidence.len(), 3);
        // Handed out once, at once; the folded new edges never are.
        let fresh = l.take_fresh(31 * S);
        assert_eq!(fresh.iter().map(|a| a.kind).collect::<Vec<_>>(), vec![AnomalyKind::PortScan]);
        assert!(l.take_fresh(60 * S).is_empty());
        // Known edges still pass; another source's new edge is its own anomaly, after the hold.
        let (r, k) = conn(&a, &b, 80, 32 * S, Verdict::Forwarded);
        assert!(l.observe(&r, &k).is_empty());
        let (mut r, k) = conn(&c, &b, 443, 33 * S, Verdict::Forwarded);
        r.src_ip = "10.0.0.9".parse().unwrap();
        assert_eq!(l.observe(&r, &k).len(), 2);
        assert!(l.take_fresh(34 * S).is_empty(), "held for one scan window");
        assert_eq!(l.take_fresh(35 * S).len(), 2);

        // A learning workload's scan in learn mode (forwarded) is found with
        // the dropped share at 0, and its edges are taken back out.
        let scan = ScanConfig { dropped_percent: 0, ..scan };
        let mut l = Learner::new(LearningConfig { scan, ..cfg });
        for p in 0..30u16 {
            let (r, k) = conn(&a, &b, 1000 + p, i64::from(p) * 10_000_000, Verdict::Forwarded);
            l.observe(&r, &k);
        }
        let s = l.anomalies()[0].scan.clone().unwrap();
        assert_eq!((s.folded, s.unlearned), (0, 19));
        assert_eq!(l.baseline_of(&a).count(), 0);
        assert_eq!(l.workloads()[&a].edges, 0);
        assert_eq!(l.anomaly_count(), 1);

        let json = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::to_string(&serde_json::from_str::<Learner>(&json).unwrap()).unwrap(), json);
    }
}
