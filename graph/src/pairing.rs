//! Pairing the two ends of a connection. A connection is usually observed
//! twice, at the source's egress and at the destination's ingress; it must
//! be counted once. The ingress side is authoritative about the destination
//! (the backend workload and the target port behind a ClusterIP), so an
//! egress observation addressed to a service waits, up to a window, for its
//! ingress twin before it is counted against the bare service; an ingress
//! observation from a pod waits a few seconds for its egress twin, which
//! knows the service the pod addressed. This module decides what is a
//! connection and emits it; the graph only stores and queries.

use std::borrow::Cow;
use std::net::IpAddr;

use bulkhead_model::{Direction, Verdict};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::flow::{Entity, FlowRecord};
use crate::service_graph::EdgeKey;

/// How long a pod-to-pod connection seen at its destination waits for its
/// source's observation (which names the service it addressed).
pub const PAIR_NS: i64 = 5_000_000_000;

/// Source address, source port and protocol: what both ends of a connection
/// agree on even when the destination address was translated.
type ConnKey = (IpAddr, u16, u8);

/// A connection to count: the record (its `dst` is where it went) and the
/// edge it belongs to.
pub type Connection<'a> = (Cow<'a, FlowRecord>, EdgeKey);

/// Counts of what pairing did, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct IngestStats {
    /// Records received.
    pub records: u64,
    /// Connections counted.
    pub counted: u64,
    /// Records recognised as the other end of a connection already counted.
    pub duplicates: u64,
    /// Service-addressed connections counted without their ingress twin,
    /// against the bare service.
    pub unresolved: u64,
    /// Service-addressed connections without their ingress twin, counted
    /// against the service's only backend workload.
    pub inferred: u64,
}

/// The pairing state machine.
#[derive(Debug, Clone)]
pub struct Pairing {
    counted: FxHashMap<ConnKey, (i64, Direction)>,
    pending: FxHashMap<ConnKey, (i64, FlowRecord)>,
    pending_ingress: FxHashMap<ConnKey, (i64, FlowRecord)>,
    window_ns: i64,
    stats: IngestStats,
}

impl Default for Pairing {
    fn default() -> Self {
        Self::new(30_000_000_000)
    }
}

impl Pairing {
    /// Pairs the two ends of a connection within `window_ns`.
    pub fn new(window_ns: i64) -> Self {
        Self {
            counted: FxHashMap::default(),
            pending: FxHashMap::default(),
            pending_ingress: FxHashMap::default(),
            window_ns,
            stats: IngestStats::default(),
        }
    }

    /// What pairing did so far.
    pub fn stats(&self) -> IngestStats {
        self.stats
    }

    /// Emits `r` as a connection on `key`. With `twin_expected` (the other
    /// end has not been seen but may still report), the connection is
    /// remembered so that end is recognised as a duplicate.
    fn emit<'a>(&mut self, r: Cow<'a, FlowRecord>, key: EdgeKey, twin_expected: Option<i64>) -> Connection<'a> {
        if let Some(arrival) = twin_expected {
            self.counted.insert((r.src_ip, r.src_port, r.protocol), (arrival, r.observation));
        }
        self.stats.counted += 1;
        (r, key)
    }

    /// Whether `r` is the other end of a connection counted alone; the
    /// pairing is used up, so a later connection reusing the source port is
    /// a new connection.
    fn twin_of_counted(&mut self, key: &ConnKey, r: &FlowRecord, arrival: i64) -> bool {
        let twin = self
            .counted
            .get(key)
            .is_some_and(|(t, obs)| *obs != r.observation && (arrival - t).abs() <= self.window_ns);
        if twin {
            self.counted.remove(key);
        }
        twin
    }

    /// `observe_at` with the record's own time as its arrival (replays, tests).
    pub fn observe<'a>(&mut self, r: &'a FlowRecord) -> Option<Connection<'a>> {
        self.observe_at(r, r.time_ns)
    }

    /// Takes one observation that arrived at `arrival_ns`. Returns the
    /// connection counted because of it: this record, or its ingress twin
    /// that was waiting; `None` when it was the second end of a connection
    /// already counted, or waits for its twin. Waits are measured in arrival
    /// time, so a backlog replayed after an outage pairs as well as live
    /// traffic.
    pub fn observe_at<'a>(&mut self, r: &'a FlowRecord, arrival_ns: i64) -> Option<Connection<'a>> {
        self.stats.records += 1;
        let key = (r.src_ip, r.src_port, r.protocol);
        let from_pod = matches!(r.src, Entity::Workload { .. });
        match r.observation {
            Direction::Ingress => {
                let twin = self.pending.remove(&key).map(|(_, t)| t);
                if twin.is_none()
                    && (self.pending_ingress.contains_key(&key) || self.twin_of_counted(&key, r, arrival_ns))
                {
                    self.stats.duplicates += 1;
                    return None;
                }
                if twin.is_none() && r.service.is_none() && from_pod {
                    // A pod's connection: its egress end says which service it
                    // addressed; wait for it briefly.
                    self.pending_ingress.insert(key, (arrival_ns, r.clone()));
                    return None;
                }
                if twin.is_some() {
                    self.stats.duplicates += 1;
                }
                // The destination is authoritative: backend, target port, verdict.
                let paired = twin.is_some();
                let service = r.service.clone().or_else(|| twin.and_then(|t| t.service));
                let k = EdgeKey { protocol: r.protocol, port: r.dst_port, service };
                Some(self.emit(Cow::Borrowed(r), k, (!paired && from_pod).then_some(arrival_ns)))
            }
            Direction::Egress => {
                if let Some((_, mut ing)) = self.pending_ingress.remove(&key) {
                    self.stats.duplicates += 1;
                    ing.service = r.service.clone();
                    let k = EdgeKey { protocol: ing.protocol, port: ing.dst_port, service: ing.service.clone() };
                    return Some(self.emit(Cow::Owned(ing), k, None));
                }
                if self.pending.contains_key(&key) || self.twin_of_counted(&key, r, arrival_ns) {
                    self.stats.duplicates += 1;
                    return None;
                }
                // Toward a pod or a service, the destination's end will say
                // what really happened (its policy may drop what the source
                // let out): wait for it. What the source dropped, or sent
                // out of the cluster, is known now.
                let twin_to_come = matches!(r.dst, Entity::Service { .. } | Entity::Workload { .. });
                if twin_to_come && r.verdict != Verdict::Dropped {
                    self.pending.insert(key, (arrival_ns, r.clone()));
                    None
                } else {
                    let k = EdgeKey { protocol: r.protocol, port: r.dst_port, service: r.service.clone() };
                    Some(self.emit(Cow::Borrowed(r), k, None))
                }
            }
        }
    }

    /// Emits connections whose twin did not come in time (in arrival time):
    /// egress toward a pod (as seen, after the pairing delay) or a service
    /// (against its only backend workload if it has one, else the bare
    /// service, after the window), and pod-to-pod ingress (as seen, after the
    /// pairing delay); forgets old pairings. In flow time order.
    pub fn flush(&mut self, now_ns: i64) -> Vec<(FlowRecord, EdgeKey)> {
        let mut out = Vec::new();
        let pair = PAIR_NS.min(self.window_ns);
        let waited: Vec<ConnKey> =
            self.pending_ingress.iter().filter(|(_, (t, _))| now_ns - t > pair).map(|(k, _)| *k).collect();
        for k in waited {
            if let Some((t, r)) = self.pending_ingress.remove(&k) {
                let key = EdgeKey { protocol: r.protocol, port: r.dst_port, service: None };
                let (r, key) = self.emit(Cow::Owned(r), key, Some(t));
                out.push((r.into_owned(), key));
            }
        }
        let window = self.window_ns;
        let expired: Vec<ConnKey> = self
            .pending
            .iter()
            .filter(|(_, (t, r))| now_ns - t > if matches!(r.dst, Entity::Service { .. }) { window } else { pair })
            .map(|(k, _)| *k)
            .collect();
        for k in expired {
            let Some((t, mut r)) = self.pending.remove(&k) else { continue };
            let key = if !matches!(r.dst, Entity::Service { .. }) {
                EdgeKey { protocol: r.protocol, port: r.dst_port, service: None }
            } else if let Some((backend, port)) = r.backend.take() {
                // The service has one backend workload: that is where it went.
                r.dst = backend;
                r.dst_port = port;
                self.stats.inferred += 1;
                EdgeKey { protocol: r.protocol, port, service: r.service.clone() }
            } else {
                self.stats.unresolved += 1;
                EdgeKey { protocol: r.protocol, port: r.dst_port, service: r.service.clone() }
            };
            let (r, key) = self.emit(Cow::Owned(r), key, Some(t));
            out.push((r.into_owned(), key));
        }
        out.sort_by_key(|(r, _)| r.time_ns);
        self.counted.retain(|_, (t, _)| now_ns - *t <= window);
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::flow::ServiceRef;
    use crate::service_graph::ServiceGraph;

    /// Pairing feeding a graph, as the controller's pipeline does.
    #[derive(Default)]
    pub(crate) struct Paired {
        pairing: Pairing,
        graph: ServiceGraph,
    }

    impl std::ops::Deref for Paired {
        type Target = ServiceGraph;
        fn deref(&self) -> &ServiceGraph {
            &self.graph
        }
    }

    impl Paired {
        pub(crate) fn ingest<'a>(&mut self, r: &'a FlowRecord) -> Option<Connection<'a>> {
            self.ingest_at(r, r.time_ns)
        }

        pub(crate) fn ingest_at<'a>(&mut self, r: &'a FlowRecord, arrival: i64) -> Option<Connection<'a>> {
            let c = self.pairing.observe_at(r, arrival)?;
            self.graph.add(&c.0, &c.1);
            Some(c)
        }

        pub(crate) fn flush(&mut self, now: i64) -> Vec<(FlowRecord, EdgeKey)> {
            let out = self.pairing.flush(now);
            for (r, k) in &out {
                self.graph.add(r, k);
            }
            out
        }

        pub(crate) fn stats(&self) -> IngestStats {
            self.pairing.stats()
        }
    }

    pub(crate) fn w(ns: &str, name: &str) -> Entity {
        Entity::Workload { namespace: ns.into(), kind: "Deployment".into(), name: name.into() }
    }

    pub(crate) fn rec(obs: Direction, src: &Entity, dst: &Entity, sport: u16, dport: u16, t: i64) -> FlowRecord {
        FlowRecord {
            time_ns: t,
            observation: obs,
            node: "n1".into(),
            src: src.clone(),
            dst: dst.clone(),
            src_ip: "10.0.0.1".parse().unwrap(),
            src_port: sport,
            dst_ip: "10.0.0.2".parse().unwrap(),
            dst_port: dport,
            protocol: 6,
            service: None,
            verdict: Verdict::Forwarded,
            bytes: 100,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: None,
            packets: 0,
        }
    }

    #[test]
    fn a_connection_seen_at_both_ends_counts_once_in_either_order() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        for order in [[Direction::Egress, Direction::Ingress], [Direction::Ingress, Direction::Egress]] {
            let mut g = Paired::default();
            for (i, obs) in order.iter().enumerate() {
                g.ingest(&rec(*obs, &a, &b, 40000, 80, 1_000 + i as i64));
            }
            g.ingest(&rec(Direction::Egress, &a, &b, 40001, 80, 2_000));
            assert_eq!(g.edges()[0].3.connections, 1, "an egress toward a pod waits for its destination's end");
            assert_eq!(g.flush(2_000 + PAIR_NS + 1).len(), 1);
            let edges = g.edges();
            assert_eq!(edges.len(), 1);
            assert_eq!(edges[0].3.connections, 2, "two connections, four observations minus duplicates");
            assert_eq!(g.stats().duplicates, 1);
        }
    }

    #[test]
    fn the_destination_end_decides_the_verdict_whichever_end_arrives_first() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        for egress_first in [true, false] {
            let mut g = Paired::default();
            let out = rec(Direction::Egress, &a, &b, 40000, 5432, 1_000);
            let mut denied = rec(Direction::Ingress, &a, &b, 40000, 5432, 1_001);
            denied.verdict = Verdict::Dropped;
            let counted = if egress_first {
                assert!(g.ingest(&out).is_none());
                g.ingest(&denied).map(|(r, _)| r.into_owned())
            } else {
                assert!(g.ingest(&denied).is_none());
                g.ingest(&out).map(|(r, _)| r.into_owned())
            };
            assert_eq!(counted.map(|r| r.verdict), Some(Verdict::Dropped));
            assert_eq!((g.edges()[0].3.connections, g.edges()[0].3.dropped), (1, 1));
        }
    }

    #[test]
    fn a_replayed_backlog_pairs_by_arrival_not_flow_time() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        let mut g = Paired::default();
        // Flows from an hour ago, replayed after an outage, one end per flush.
        let hour = 3_600_000_000_000;
        let now = 10 * hour;
        assert!(g.ingest_at(&rec(Direction::Egress, &a, &b, 40000, 80, now - hour), now).is_none());
        assert!(g.flush(now + 1_000_000_000).is_empty(), "not expired: it arrived a second ago");
        assert!(
            g.ingest_at(&rec(Direction::Ingress, &a, &b, 40000, 80, now - hour + 5), now + 1_000_000_000).is_some()
        );
        g.flush(now + 60_000_000_000);
        assert_eq!(g.edges()[0].3.connections, 1);
    }

    #[test]
    fn a_source_port_reused_after_both_ends_reported_is_a_new_connection() {
        let (a, b) = (w("x", "a"), w("x", "b"));
        let mut g = Paired::default();
        for t in [1_000, 2_000, 3_000] {
            g.ingest(&rec(Direction::Egress, &a, &b, 40000, 80, t));
            g.ingest(&rec(Direction::Ingress, &a, &b, 40000, 80, t + 10));
        }
        assert_eq!(g.edges()[0].3.connections, 3, "three connections from one reused source port");
        assert_eq!(g.stats().duplicates, 3);
    }

    #[test]
    fn a_service_connection_lands_on_its_backend_with_the_service_on_the_edge() {
        let (a, backend) = (w("x", "a"), w("x", "web"));
        let svc = Entity::Service { namespace: "x".into(), name: "web".into() };
        let sref = ServiceRef { namespace: "x".into(), name: "web".into(), port: 80 };
        let mut g = Paired::default();
        let mut out = rec(Direction::Egress, &a, &svc, 40000, 80, 1_000);
        out.service = Some(sref.clone());
        g.ingest(&out);
        assert!(g.edges().is_empty(), "waits for the ingress side");
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40000, 8080, 1_500));
        let edges = g.edges();
        assert_eq!(edges.len(), 1);
        assert_eq!((&edges[0].1, edges[0].2.port, &edges[0].2.service), (&backend, 8080, &Some(sref.clone())));
        assert!(!g.entities().contains(&svc), "no bare service node when the backend was seen");

        // Seen at the destination first: waits for the source's side, which
        // names the service.
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40100, 8080, 1_600));
        assert_eq!(g.edges()[0].3.connections, 1, "the ingress end waits for its twin");
        let mut late = rec(Direction::Egress, &a, &svc, 40100, 80, 1_700);
        late.service = Some(sref.clone());
        let (counted, key) = g.ingest(&late).unwrap();
        assert_eq!((&counted.dst, key.port, &key.service), (&backend, 8080, &Some(sref.clone())));
        assert_eq!(g.edges()[0].3.connections, 2);
        // A pod's ingress whose twin never comes is counted after the pairing delay.
        g.ingest(&rec(Direction::Ingress, &a, &backend, 40200, 8080, 1_800));
        assert_eq!(g.flush(1_800 + PAIR_NS + 1).len(), 1);
        assert_eq!(g.edges().iter().map(|e| e.3.connections).sum::<u64>(), 3);

        // Dropped at the source, or never answered: counted against the service.
        let mut dropped = rec(Direction::Egress, &a, &svc, 40001, 80, 2_000);
        dropped.service = Some(sref.clone());
        dropped.verdict = Verdict::Dropped;
        g.ingest(&dropped);
        let mut lonely = rec(Direction::Egress, &a, &svc, 40002, 80, 3_000);
        lonely.service = Some(sref.clone());
        g.ingest(&lonely);
        g.flush(3_000 + 31_000_000_000);
        // The backend never reported, but the service has one backend workload.
        let mut hinted = rec(Direction::Egress, &a, &svc, 40003, 80, 3_000);
        hinted.service = Some(sref.clone());
        hinted.backend = Some((backend.clone(), 8080));
        g.ingest(&hinted);
        let counted = g.flush(3_000 + 31_000_000_000);
        assert_eq!((&counted[0].0.dst, counted[0].1.port), (&backend, 8080));
        assert_eq!(g.stats().inferred, 1);
        let to_svc: Vec<_> = g.edges().into_iter().filter(|e| e.1 == svc).collect();
        assert_eq!(g.stats().records, 8);
        assert_eq!(to_svc.len(), 1);
        assert_eq!((to_svc[0].3.connections, to_svc[0].3.dropped), (2, 1));
        assert_eq!(g.stats().unresolved, 1);
    }
}
