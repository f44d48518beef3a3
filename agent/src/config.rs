//! Agent configuration: where it pins, listens and keeps its state.

use std::net::SocketAddr;
use std::path::PathBuf;

use bulkhead_dataplane::PinLayout;

/// Flow events per second an initiating address may cost a node, by default.
pub const EVENTS_PER_SOURCE: u32 = bulkhead_dataplane::abi::BH_EVENTS_PER_SOURCE;
/// Events a quiet source may send at once, by default.
pub const EVENTS_BURST: u32 = bulkhead_dataplane::abi::BH_EVENTS_BURST;

/// How one agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Node name; names the pin directory and appears in every flow.
    pub node: String,
    /// bpffs directory for this node's programs, maps and links.
    pub pins: PinLayout,
    /// gRPC Unix socket (root-only).
    pub socket: PathBuf,
    /// Prometheus `/metrics` listener, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Directory for the last applied state and the audit log.
    pub state_dir: PathBuf,
    /// How many recent flows to keep for non-following clients.
    pub flow_history: usize,
    /// Periodic counter export interval for long connections, seconds.
    pub report_interval_s: u32,
    /// The node's uplinks that get the block list's XDP prefilter.
    pub prefilter: Vec<String>,
    /// Flow events per second each initiating address may cost the node's
    /// ring, and how many a quiet one may send at once: a flooding source
    /// loses its own events, never another pod's.
    pub events_per_source_s: u32,
    /// See `events_per_source_s`.
    pub events_burst: u32,
    /// Whether the kernel samples the first payload bytes each way of the
    /// connections pods serve, for type identification (bounded per pod;
    /// only the class and a few fields leave the agent).
    pub payload_samples: bool,
    /// How often each pod's listening sockets are read again; `None` never
    /// reads them (the exposure report then cannot tell open from declared).
    pub listener_scan: Option<std::time::Duration>,
    /// The controller to dial over the network (mTLS), besides serving the
    /// Unix socket; `None` waits for a controller on the socket only.
    pub controller: Option<crate::uplink::Uplink>,
    /// Where pods' network namespace files are looked for, to find a pod
    /// from its addresses (empty: `/var/run/netns`).
    pub netns_dirs: Vec<PathBuf>,
}

impl AgentConfig {
    /// Defaults for a node: pins under /sys/fs/bpf/bulkhead/<node>, socket
    /// under /run/bulkhead/<node>, state and audit log under /var/lib/bulkhead/<node>.
    pub fn for_node(node: &str) -> Self {
        Self {
            node: node.to_string(),
            pins: PinLayout::for_node(node),
            socket: PathBuf::from("/run/bulkhead").join(node).join("agent.sock"),
            metrics_addr: None,
            // Persistent: the audit log must survive a reboot.
            state_dir: PathBuf::from("/var/lib/bulkhead").join(node),
            flow_history: 20_000,
            report_interval_s: 10,
            prefilter: Vec::new(),
            events_per_source_s: EVENTS_PER_SOURCE,
            events_burst: EVENTS_BURST,
            payload_samples: true,
            listener_scan: Some(std::time::Duration::from_secs(10)),
            controller: None,
            netns_dirs: Vec::new(),
        }
    }
}
