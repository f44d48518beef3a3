//! The access trail of a pod, for an incident: its connections both ways
//! from the flow store (each counted once, whichever ends saw it), marked
//! new when its workload's learned baseline lacks them; the second hop,
//! what each pod it reached did from the moment it was reached; and its
//! quarantines and the audit records that name it. Peers outside a
//! tenant's namespaces show only their namespace.

use std::collections::BTreeMap;

use bulkhead_api::audit::AuditFilter;
use bulkhead_api::v1::audit::AuditEntry;
use bulkhead_api::v1::flows::Side;
use bulkhead_api::v1::graph::Level;
use bulkhead_api::v1::trail::{Trail, TrailConnection, TrailHop, TrailQuery};
use bulkhead_graph::Entity;
use bulkhead_graph::baseline::{Edge, Learner};
use bulkhead_model::{Direction, Verdict, proto};
use bulkhead_policy::quarantine::Target;

use super::{Op, Service, ServiceError, now_ns, time, view};
use crate::auth::{Principal, Scope};
use crate::observation::storage::{FlowFilter, Named, PodEdge};

/// The window when `since` is not given.
const DEFAULT_SINCE: &str = "30m";
/// The longest window one trail covers.
const MAX_WINDOW_NS: i64 = 7 * 86_400_000_000_000;
/// The most peers whose next moves are followed.
const MAX_HOPS: usize = 256;
/// The most audit records scanned for ones that name the pod.
const AUDIT_SCAN: usize = 10_000;

/// One connection group as seen from `me` (a pod key): which way, and the peer.
fn connection(scope: &Scope, learner: &Learner, me: &str, e: &PodEdge) -> TrailConnection {
    let outgoing = e.src_pod == me;
    let (direction, peer, peer_pod) =
        if outgoing { (Direction::Egress, &e.dst, &e.dst_pod) } else { (Direction::Ingress, &e.src, &e.src_pod) };
    let edge = Edge { src: e.src.clone(), dst: e.dst.clone(), protocol: e.protocol, port: e.port };
    let learned =
        learner.edges().get(&edge).is_some_and(|ev| if outgoing { ev.egress_learned } else { ev.ingress_learned });
    TrailConnection {
        direction,
        peer: view::node(scope, Level::Pod, peer, peer_pod),
        protocol: proto::name(e.protocol),
        port: e.port,
        verdict: e.verdict,
        connections: e.connections,
        bytes: e.bytes,
        first_seen_ns: e.first_seen_ns,
        last_seen_ns: e.last_seen_ns,
        new_edge: !learned,
    }
}

/// What the flow store says: the pod's connections, its workload, and each hop.
struct Flows {
    connections: Vec<TrailConnection>,
    workload: Option<Entity>,
    hops: Vec<TrailHop>,
}

impl Service {
    /// The access trail of a pod over a window.
    pub async fn trail(&self, who: &Principal, q: TrailQuery) -> Result<Trail, ServiceError> {
        let target = format!("trail of {}", q.pod);
        self.authorize(who, Op::Trail, &target)?;
        let named = Named::parse(&q.pod).filter(|n| n.namespace.is_some());
        let Some(Named { namespace: Some(ns), name }) = named else {
            return Err(ServiceError::bad("pod", format!("{:?}: expected \"namespace/name\"", q.pod)));
        };
        self.in_scope(who, Op::Trail, &target, &ns)?;
        let now = now_ns();
        let since_ns = time("since", Some(q.since.as_deref().unwrap_or(DEFAULT_SINCE)))?.unwrap_or(now);
        let until_ns = time("until", q.until.as_deref())?.unwrap_or(now);
        if since_ns >= until_ns {
            return Err(ServiceError::bad("since", "the window must start before it ends (since < until)"));
        }
        if until_ns - since_ns > MAX_WINDOW_NS {
            return Err(ServiceError::bad("since", "a trail covers at most 7 days; narrow the window"));
        }
        let pod = format!("{ns}/{name}");
        let scope = who.scope.clone();
        let (me, filter_pod) = (pod.clone(), Named { namespace: Some(ns.clone()), name: name.clone() });
        let flows = self
            .ctx
            .with_observation(move |p| {
                let own = p.pod_edges(&FlowFilter {
                    pod: Some(filter_pod),
                    since_ns: Some(since_ns),
                    until_ns: Some(until_ns),
                    ..Default::default()
                })?;
                // Peers it reached (not only tried): when first.
                let mut reached: BTreeMap<String, i64> = BTreeMap::new();
                for e in own.iter().filter(|e| e.src_pod == me && e.verdict != Verdict::Dropped) {
                    if !e.dst_pod.is_empty() && e.dst_pod != me {
                        let at = reached.entry(e.dst_pod.clone()).or_insert(e.first_seen_ns);
                        *at = (*at).min(e.first_seen_ns);
                    }
                }
                let workload = own.iter().find_map(|e| {
                    if e.src_pod == me {
                        Some(e.src.clone())
                    } else if e.dst_pod == me {
                        Some(e.dst.clone())
                    } else {
                        None
                    }
                });
                let learner = p.learner();
                let mut connections: Vec<TrailConnection> =
                    own.iter().map(|e| connection(&scope, learner, &me, e)).collect();
                connections.sort_by_key(|c| (c.first_seen_ns, c.port));
                let mut hops = Vec::new();
                for (peer, at) in reached.into_iter().take(MAX_HOPS) {
                    let Some(named) = Named::parse(&peer) else { continue };
                    let next = p.pod_edges(&FlowFilter {
                        pod: Some(named),
                        side: Side::Source,
                        since_ns: Some(at),
                        until_ns: Some(until_ns),
                        ..Default::default()
                    })?;
                    let Some(first) = next.iter().find(|e| e.src_pod == peer) else { continue };
                    let via = view::node(&scope, Level::Pod, &first.src, &peer);
                    let mut out: Vec<TrailConnection> = next
                        .iter()
                        .filter(|e| e.src_pod == peer && e.dst_pod != me)
                        .map(|e| connection(&scope, learner, &peer, e))
                        .collect();
                    out.sort_by_key(|c| (c.first_seen_ns, c.port));
                    if !out.is_empty() {
                        hops.push(TrailHop { via, reached_ns: at, connections: out });
                    }
                }
                Ok(Flows { connections, workload, hops })
            })
            .await?;
        let model = self.ctx.desk.view().model.clone();
        let inventory_pod = model.inventory.pods.get(&pod);
        let workload = flows.workload.clone().or_else(|| inventory_pod.map(|p| model.workload_of(p)));
        let quarantines = self.ctx.desk.read(|b| {
            b.all()
                .filter(|r| match &r.target {
                    Target::Pod { namespace, name: n } => *namespace == ns && *n == name,
                    Target::Workload { namespace, name: n } => matches!(&workload,
                        Some(Entity::Workload { namespace: wns, name: wn, .. }) if **wns == *namespace && **wn == *n),
                })
                .map(|r| super::quarantine::document(r, Vec::new(), None))
                .collect::<Vec<_>>()
        })?;
        // What an audit target calls it: "pod shop/web-0", "quarantine 3
        // (workload shop/web)", "block 4 (10.244.0.3/32)".
        let mut names = vec![pod.clone()];
        if let Some(Entity::Workload { namespace, name, .. }) = &workload {
            names.push(format!("{namespace}/{name}"));
        }
        for ip in inventory_pod.into_iter().flat_map(|p| p.ips.iter()) {
            names.extend([ip.to_string(), format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 })]);
        }
        let audit = self.audit_naming(who, names, since_ns, until_ns).await?;
        Ok(Trail {
            pod,
            workload: workload.as_ref().and_then(view::workload_ref),
            since_ns,
            until_ns,
            connections: flows.connections,
            second_hop: flows.hops,
            quarantines,
            audit,
        })
    }

    /// Audit records in the window whose target names the pod (its key,
    /// its workload's, one of its addresses), oldest first, in the caller's scope.
    async fn audit_naming(
        &self,
        who: &Principal,
        names: Vec<String>,
        since_ns: i64,
        until_ns: i64,
    ) -> Result<Vec<AuditEntry>, ServiceError> {
        let filter = AuditFilter {
            namespaces: who.scope.namespaces(),
            since_ms: Some((since_ns / 1_000_000).max(0) as u64),
            ..Default::default()
        };
        let log = self.ctx.audit.clone();
        let (items, _) = tokio::task::spawn_blocking(move || log.read(&filter, None, AUDIT_SCAN))
            .await
            .map_err(|e| ServiceError::Internal(format!("reading the audit log: {e}")))?
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let until_ms = (until_ns / 1_000_000).max(0) as u64;
        let mut out: Vec<AuditEntry> = items
            .into_iter()
            .filter(|e| e.time_unix_ms <= until_ms)
            .filter(|e| e.target.split([' ', '(', ')', ',']).any(|word| names.iter().any(|n| n == word)))
            .collect();
        out.reverse();
        Ok(out)
    }
}
