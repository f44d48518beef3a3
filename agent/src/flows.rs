//! From kernel events to enriched, Hubble-style flow records, fanned out to
//! every client. Nothing is dropped silently: kernel ring losses and slow
//! clients are both counted and reported in each batch.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use bulkhead_api::agent::v1 as pb;
use bulkhead_dataplane::FlowEvent;
use bulkhead_dataplane::model::{Direction, proto};
use ipnetwork::IpNetwork;
use tokio::sync::watch;

use crate::desired::DesiredState;

/// Lookup tables that name the workloads in a flow, rebuilt on every apply.
#[derive(Debug, Default)]
pub struct Enricher {
    node: String,
    identities: BTreeMap<u32, (String, BTreeMap<String, String>)>,
    pods: BTreeMap<IpAddr, (String, String)>,
    nets: Vec<(IpNetwork, u32)>,
    endpoints: BTreeMap<u32, (String, String)>,
    rules: BTreeMap<u32, String>,
}

impl Enricher {
    /// Tables for `state` on `node`.
    pub fn new(node: &str, state: &DesiredState) -> Self {
        let mut pods = BTreeMap::new();
        for i in &state.ipcache {
            if !i.pod.is_empty() && (i.net.prefix() == 32 || i.net.prefix() == 128) {
                pods.insert(i.net.ip(), (i.namespace.clone(), i.pod.clone()));
            }
        }
        for e in &state.endpoints {
            for ip in &e.ips {
                pods.insert(*ip, (e.namespace.clone(), e.pod.clone()));
            }
        }
        Self {
            node: node.to_string(),
            identities: state.identities.iter().map(|(id, i)| (*id, (i.namespace.clone(), i.labels.clone()))).collect(),
            pods,
            nets: state.ipcache.iter().map(|i| (i.net, i.identity)).collect(),
            endpoints: state.endpoints.iter().map(|e| (e.endpoint_id, (e.namespace.clone(), e.pod.clone()))).collect(),
            rules: state.rule_names.clone(),
        }
    }

    fn workload(&self, identity: u32, ip: IpAddr, local_endpoint: Option<u32>) -> pb::Workload {
        let (namespace, pod) = local_endpoint
            .and_then(|id| self.endpoints.get(&id))
            .or_else(|| self.pods.get(&ip))
            .cloned()
            .unwrap_or_default();
        let (ns_from_id, labels) = self.identities.get(&identity).cloned().unwrap_or_default();
        pb::Workload {
            identity,
            namespace: if namespace.is_empty() { ns_from_id } else { namespace },
            pod,
            labels: labels.into_iter().collect(),
        }
    }

    /// Builds the wire record of one event.
    pub fn flow(&self, ev: &FlowEvent) -> pb::Flow {
        let local = Some(ev.endpoint_id);
        let (src_local, dst_local) = match ev.direction {
            Direction::Egress => (local, None),
            Direction::Ingress => (None, local),
        };
        pb::Flow {
            time_unix_nanos: ev.time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0),
            node: self.node.clone(),
            event: ev.event.as_str().into(),
            src_ip: ev.src_ip.to_string(),
            src_port: u32::from(ev.src_port),
            dst_ip: ev.dst_ip.to_string(),
            dst_port: u32::from(ev.dst_port),
            protocol: proto::name(ev.protocol),
            source: Some(self.workload(ev.src_identity, ev.src_ip, src_local)),
            destination: Some(self.workload(ev.dst_identity, ev.dst_ip, dst_local)),
            direction: ev.direction.as_str().into(),
            verdict: ev.verdict.as_str().into(),
            drop_reason: if matches!(ev.verdict, bulkhead_dataplane::Verdict::Forwarded) {
                String::new()
            } else {
                ev.reason.as_str().into()
            },
            rule_id: ev.rule_id,
            rule_name: self.rules.get(&ev.rule_id).cloned().unwrap_or_default(),
            packets_fwd: ev.packets_fwd,
            bytes_fwd: ev.bytes_fwd,
            packets_rev: ev.packets_rev,
            bytes_rev: ev.bytes_rev,
            tcp_flags: u32::from(ev.tcp_flags),
            is_reply: ev.is_reply,
            ifindex: ev.ifindex,
        }
    }

    /// Identity of an address by longest prefix (used for userspace-made events).
    pub fn identity_of(&self, ip: IpAddr) -> u32 {
        self.nets
            .iter()
            .filter(|(n, _)| n.contains(ip))
            .max_by_key(|(n, _)| n.prefix())
            .map(|(_, id)| *id)
            .unwrap_or(bulkhead_dataplane::abi::BH_ID_WORLD)
    }
}

/// The agent's flow buffer: every flow numbered, the most recent kept.
/// Readers (the controller, `bulkhead flows`) each hold a cursor and read at
/// their own pace, so a slow reader never slows the dataplane; what leaves
/// the buffer before a reader gets it is counted as lost for that reader.
/// A reconnecting reader resumes after its cursor and gets what was
/// buffered meanwhile.
#[derive(Debug)]
pub struct FlowHub {
    ring: Mutex<Ring>,
    capacity: usize,
    latest: watch::Sender<u64>,
    /// Identifies this agent run: sequence numbers restart with it.
    pub epoch: u64,
    /// Flows a reader missed because they left the buffer first.
    pub client_lost: AtomicU64,
    /// Kernel events lost to a full ring (mirrors `BH_STAT_EVENTS_LOST`).
    pub kernel_lost: AtomicU64,
    /// Records the agent could not decode.
    pub undecodable: AtomicU64,
    /// Flows published since start.
    pub published: AtomicU64,
}

#[derive(Debug, Default)]
struct Ring {
    flows: VecDeque<Arc<pb::Flow>>,
    /// Sequence number of `flows[0]`.
    first_seq: u64,
}

/// What one read returned.
#[derive(Debug, Default)]
pub struct Read {
    /// Flows after the cursor, in order.
    pub flows: Vec<Arc<pb::Flow>>,
    /// Flows after the cursor that already left the buffer.
    pub skipped: u64,
    /// The new cursor.
    pub last_seq: u64,
}

impl FlowHub {
    /// A hub keeping `capacity` recent flows.
    pub fn new(capacity: usize) -> Self {
        let epoch = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self {
            ring: Mutex::new(Ring { flows: VecDeque::with_capacity(capacity.min(65_536)), first_seq: 1 }),
            capacity: capacity.max(1),
            latest: watch::channel(0).0,
            epoch,
            client_lost: AtomicU64::new(0),
            kernel_lost: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    /// Publishes one flow.
    pub fn publish(&self, flow: pb::Flow) {
        let Ok(mut r) = self.ring.lock() else { return };
        if r.flows.len() >= self.capacity {
            r.flows.pop_front();
            r.first_seq += 1;
        }
        r.flows.push_back(Arc::new(flow));
        let last = r.first_seq + r.flows.len() as u64 - 1;
        drop(r);
        self.published.fetch_add(1, Ordering::Relaxed);
        self.latest.send_replace(last);
    }

    /// Up to `max` flows after sequence number `after` (0: from the oldest).
    pub fn read_after(&self, after: u64, max: usize) -> Read {
        let Ok(r) = self.ring.lock() else { return Read { last_seq: after, ..Default::default() } };
        let start = after.saturating_add(1).max(r.first_seq);
        let skipped = if after == 0 { 0 } else { start.saturating_sub(after.saturating_add(1)) };
        let from = (start - r.first_seq) as usize;
        let flows: Vec<Arc<pb::Flow>> = r.flows.iter().skip(from).take(max).cloned().collect();
        let last_seq = if flows.is_empty() { start - 1 } else { start + flows.len() as u64 - 1 };
        Read { flows, skipped, last_seq: last_seq.max(after) }
    }

    /// Sequence number of the oldest buffered flow (flows before it of this
    /// run have left the buffer).
    pub fn first_seq(&self) -> u64 {
        self.ring.lock().map(|r| r.first_seq).unwrap_or(1)
    }

    /// Changes whenever a flow is published (carries the last sequence number).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(port: u32) -> pb::Flow {
        pb::Flow { dst_port: port, ..Default::default() }
    }

    #[test]
    fn readers_resume_after_their_cursor_and_count_what_left_the_buffer() {
        let hub = FlowHub::new(4);
        for p in 1..=3 {
            hub.publish(flow(p));
        }
        let r = hub.read_after(0, 10);
        assert_eq!((r.flows.len(), r.skipped, r.last_seq), (3, 0, 3));
        let r = hub.read_after(1, 1);
        assert_eq!((r.flows[0].dst_port, r.last_seq), (2, 2));
        // A reader at 3 goes away; 5 more flows arrive, the buffer keeps 4.
        for p in 4..=8 {
            hub.publish(flow(p));
        }
        let r = hub.read_after(3, 10);
        assert_eq!(r.skipped, 1, "flow 4 left the buffer before the reader came back");
        assert_eq!(r.flows.iter().map(|f| f.dst_port).collect::<Vec<_>>(), vec![5, 6, 7, 8]);
        assert_eq!(r.last_seq, 8);
        let r = hub.read_after(8, 10);
        assert!(r.flows.is_empty() && r.skipped == 0 && r.last_seq == 8);
    }
}
