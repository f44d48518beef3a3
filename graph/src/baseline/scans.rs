//! Scans in the learner: a detected scan becomes one anomaly, the new-edge
//! anomalies of its first window fold into it, the edges that window added
//! to a baseline are taken back out, and the scan's later attempts only
//! count. New anomalies are handed out once, for alerts and response rules.

use bulkhead_model::{AnomalyKind, Direction, Verdict};

use super::{Anomaly, Edge, Fresh, Learner, ScanSummary};
use crate::flow::{Entity, FlowRecord};
use crate::scan::{Detection, SAMPLE};
use crate::service_graph::EdgeKey;

fn sample(ports: &mut Vec<u16>, port: u16) {
    if let Err(at) = ports.binary_search(&port)
        && at < SAMPLE
    {
        ports.insert(at, port);
        ports.truncate(SAMPLE);
    }
}

impl Learner {
    /// A scan's later attempt: counted, never learned.
    pub(super) fn scanning(&mut self, id: u64, r: &FlowRecord, ports: u32, hosts: u32) -> Vec<u64> {
        let evidence = self.config.evidence_per_anomaly;
        let Some(a) = self.scans.get_mut(&id) else { return Vec::new() };
        a.last_seen_ns = a.last_seen_ns.max(r.time_ns);
        a.connections += 1;
        if r.verdict == Verdict::Dropped {
            a.dropped += 1;
        }
        if a.evidence.len() < evidence {
            a.evidence.push(r.clone());
        }
        if let Some(s) = &mut a.scan {
            s.ports = s.ports.max(ports);
            s.hosts = s.hosts.max(hosts);
            sample(&mut s.sample_ports, r.dst_port);
        }
        vec![id]
    }

    /// The attempt that made its source a scanner: one anomaly for the scan.
    pub(super) fn scan_started(&mut self, r: &FlowRecord, key: &EdgeKey, d: Detection) -> u64 {
        let id = self.next_anomaly.max(1);
        self.next_anomaly = id + 1;
        self.detector.attach(r.src_ip, id);
        // The window's new-edge anomalies from this address are the scan's.
        let folded: Vec<_> = self
            .anomalies
            .iter()
            .filter(|(_, a)| {
                a.first_seen_ns >= d.first_ns
                    && a.edge.src == r.src
                    && !a.evidence.is_empty()
                    && a.evidence.iter().all(|f| f.src_ip == r.src_ip)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut evidence: Vec<FlowRecord> = Vec::new();
        for k in &folded {
            if let Some(a) = self.anomalies.remove(k) {
                evidence.extend(a.evidence);
            }
        }
        self.fresh.retain(|f| !matches!(f, Fresh::Edge(k) if folded.contains(k)));
        evidence.push(r.clone());
        evidence.sort_by_key(|f| f.time_ns);
        evidence.truncate(self.config.evidence_per_anomaly.max(1));
        let unlearned = self.unlearn(&r.src, &d);
        let mut sample_ports = d.sample_ports.clone();
        for f in &evidence {
            sample(&mut sample_ports, f.dst_port);
        }
        let (workload, side) = match &r.src {
            Entity::Workload { .. } => (r.src.clone(), Direction::Egress),
            _ => (r.dst.clone(), Direction::Ingress),
        };
        let a = Anomaly {
            id,
            kind: d.kind,
            workload,
            side,
            edge: Edge { src: r.src.clone(), dst: r.dst.clone(), protocol: key.protocol, port: key.port },
            scan: Some(ScanSummary {
                source_ip: r.src_ip,
                source_pod: r.src_pod.clone(),
                ports: d.ports,
                hosts: d.hosts,
                sample_ports,
                folded: folded.len() as u32,
                unlearned,
            }),
            first_seen_ns: d.first_ns,
            last_seen_ns: r.time_ns,
            connections: u64::from(d.attempts),
            dropped: u64::from(d.dropped),
            evidence,
        };
        self.scans.insert(id, a);
        self.fresh(Fresh::Scan(id));
        id
    }

    /// Takes out of the baselines the edges a scan's first window added.
    fn unlearn(&mut self, src: &Entity, d: &Detection) -> u32 {
        let mut n = 0;
        for (dst, protocol, port) in &d.edges {
            let edge = Edge { src: src.clone(), dst: dst.clone(), protocol: *protocol, port: *port };
            if self.edges.get(&edge).is_none_or(|e| e.first_seen_ns < d.first_ns) {
                continue;
            }
            if let Some(e) = self.edges.remove(&edge) {
                n += 1;
                for (learned, end) in [(e.egress_learned, src), (e.ingress_learned, dst)] {
                    if let Some(b) = self.workloads.get_mut(end).filter(|_| learned) {
                        b.edges = b.edges.saturating_sub(1);
                    }
                }
            }
        }
        n
    }

    /// Anomalies made since the last call, once each, oldest first. A new
    /// edge is held for one scan window, so that a scan's first edges fold
    /// into the scan before anyone is told of them; `now_ns` is the clock.
    pub fn take_fresh(&mut self, now_ns: i64) -> Vec<Anomaly> {
        let hold = self.config.scan.window_ns;
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for f in std::mem::take(&mut self.fresh) {
            match &f {
                Fresh::Scan(id) => out.extend(self.scans.get(id).cloned()),
                Fresh::Edge(k) => match self.anomalies.get(k) {
                    Some(a) if now_ns - a.first_seen_ns >= hold => out.push(a.clone()),
                    Some(_) => keep.push(f),
                    None => {}
                },
            }
        }
        self.fresh = keep;
        out.sort_by_key(|a| a.id);
        out
    }

    /// Anomalies never handed out because too many were waiting.
    pub fn fresh_lost(&self) -> u64 {
        self.fresh_lost
    }

    /// Sources the scan detector tracks, and attempts it could not track.
    pub fn scan_tracking(&self) -> (usize, u64) {
        (self.detector.tracked(), self.detector.untracked())
    }

    /// How many anomalies of a kind there are.
    pub fn count_of(&self, kind: AnomalyKind) -> usize {
        match kind {
            AnomalyKind::NewEdge => self.anomalies.len(),
            _ => self.scans.values().filter(|a| a.kind == kind).count(),
        }
    }
}
