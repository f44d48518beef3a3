//! From kernel events to enriched, Hubble-style flow records, fanned out to
//! every client. Nothing is dropped silently: kernel ring losses and slow
//! clients are both counted and reported in each batch.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::flow::v1 as flow_pb;
use bulkhead_api::ring::{Read, SeqRing};
use bulkhead_dataplane::FlowEvent;
use bulkhead_dataplane::flow::PayloadSample;
use bulkhead_dataplane::model::{Direction, proto};
use ipnetwork::IpNetwork;
use tokio::sync::watch;

use crate::classify::{Sample, Sender, Transport, classify};
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
            event: flow_pb::EventType::from(ev.event).into(),
            src_ip: ev.src_ip.to_string(),
            src_port: u32::from(ev.src_port),
            dst_ip: ev.dst_ip.to_string(),
            dst_port: u32::from(ev.dst_port),
            protocol: proto::name(ev.protocol),
            source: Some(self.workload(ev.src_identity, ev.src_ip, src_local)),
            destination: Some(self.workload(ev.dst_identity, ev.dst_ip, dst_local)),
            direction: flow_pb::Direction::from(ev.direction).into(),
            verdict: flow_pb::Verdict::from(ev.verdict).into(),
            drop_reason: if matches!(ev.verdict, bulkhead_dataplane::Verdict::Forwarded) {
                flow_pb::Reason::None.into()
            } else {
                flow_pb::Reason::from(ev.reason).into()
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
            suppressed: ev.suppressed,
            app: ev.sample.as_ref().map(|s| app_sample(ev, s)),
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

/// Classifies a payload sample; only the class and its fields go on.
fn app_sample(ev: &FlowEvent, s: &PayloadSample) -> pb::AppSample {
    let sender = if ev.is_reply { Sender::Server } else { Sender::Client };
    let transport = if ev.protocol == proto::UDP { Transport::Udp } else { Transport::Tcp };
    let sample = Sample {
        sender,
        transport,
        head: &s.head,
        ext: s.tls_ext.as_ref().map(|(at, bytes)| (*at, bytes.as_slice())),
        payload_len: s.payload_len,
    };
    let class = classify(&sample);
    pb::AppSample {
        protocol: class.protocol.map(|p| flow_pb::AppProtocol::from(p).into()),
        from_server: ev.is_reply,
        sni: class.sni,
        alpn: class.alpn,
        host: class.host,
        method: class.method,
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
    ring: SeqRing<pb::Flow>,
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

impl FlowHub {
    /// A hub keeping `capacity` recent flows.
    pub fn new(capacity: usize) -> Self {
        let epoch = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self {
            ring: SeqRing::new(capacity),
            epoch,
            client_lost: AtomicU64::new(0),
            kernel_lost: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            published: AtomicU64::new(0),
        }
    }

    /// Publishes one flow.
    pub fn publish(&self, flow: pb::Flow) {
        self.ring.publish(flow);
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Up to `max` flows after sequence number `after` (0: from the oldest).
    pub fn read_after(&self, after: u64, max: usize) -> Read<pb::Flow> {
        self.ring.read_after(after, max)
    }

    /// Sequence number of the oldest buffered flow (flows before it of this
    /// run have left the buffer).
    pub fn first_seq(&self) -> u64 {
        self.ring.first_seq()
    }

    /// Changes whenever a flow is published (carries the last sequence number).
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.ring.watch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_numbers_flows_and_counts_publications() {
        let hub = FlowHub::new(2);
        for p in 1..=3 {
            hub.publish(pb::Flow { dst_port: p, ..Default::default() });
        }
        let r = hub.read_after(0, 10);
        assert_eq!(r.items.iter().map(|f| f.dst_port).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!((hub.first_seq(), hub.published.load(Ordering::Relaxed)), (2, 3));
    }
}
