//! The node: loaded programs, their maps, and what they should enforce.
//!
//! All enforcement changes go through here, under one lock, so the order
//! guarantees of `transition` hold across concurrent callers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_api::agent::v1 as pb;
use bulkhead_dataplane::abi;
use bulkhead_dataplane::maps::EndpointEntry;
use bulkhead_dataplane::table::PolicyTable;
use bulkhead_dataplane::transition::{self, KernelState};
use bulkhead_dataplane::{Dataplane, Maps};
use ipnetwork::{IpNetwork, Ipv4Network};
use prost::Message;

use crate::config::AgentConfig;
use crate::desired::DesiredState;
use crate::endpoints::{self, Attachment};
use crate::error::AgentError;
use crate::flows::Enricher;
use crate::quarantine::{Quarantines, Roster};
use bulkhead_api::audit::AuditLog;
use bulkhead_api::audit::Caller;

/// What an apply did.
#[derive(Debug, Clone, Default)]
pub struct ApplyReport {
    /// Generation that was applied.
    pub generation: u64,
    /// Endpoints whose programs are attached.
    pub attached: u32,
    /// Endpoints with a problem: (endpoint id, "namespace/pod", error).
    pub problems: Vec<(u32, String, String)>,
    /// Kernel map writes performed.
    pub map_writes: u32,
    /// Wall time the apply took.
    pub took: Duration,
}

/// One node's dataplane and state.
pub struct Node {
    cfg: AgentConfig,
    dataplane: Dataplane,
    maps: Maps,
    desired: DesiredState,
    attachments: BTreeMap<u32, Attachment>,
    /// The namespace files found for pods the controller sent without one.
    found_netns: BTreeMap<u32, std::path::PathBuf>,
    quarantines: Arc<Quarantines>,
    audit: AuditLog,
    enricher: Arc<Enricher>,
    /// When the sweep last looked for expired blocks (wall ns).
    blocks_checked_ns: i64,
    /// Each pod's listening sockets, read by the scan loop.
    listeners: Arc<crate::listeners::Book>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").field("node", &self.cfg.node).finish_non_exhaustive()
    }
}

/// What quarantine needs to know of a state and its attachments.
fn roster(state: &DesiredState, attachments: &BTreeMap<u32, Attachment>) -> Roster {
    Roster {
        names: state.endpoints.iter().map(|e| (e.name(), e.endpoint_id)).collect(),
        attached: attachments
            .iter()
            .filter(|(_, a)| matches!(a, Attachment::Attached { .. }))
            .map(|(id, _)| *id)
            .collect(),
        desired: state.quarantined.clone(),
    }
}

fn state_path(cfg: &AgentConfig) -> PathBuf {
    cfg.state_dir.join("desired.pb")
}

impl Node {
    /// Loads or adopts the node's dataplane. Pinned links are swapped to the
    /// new programs atomically; enforcement never stops.
    pub fn start(cfg: AgentConfig) -> Result<Self, AgentError> {
        std::fs::create_dir_all(&cfg.state_dir).map_err(|source| AgentError::Io {
            action: "creating state dir",
            path: cfg.state_dir.clone(),
            source,
        })?;
        let adopted = cfg.pins.exists();
        let mut dataplane = Dataplane::load(&cfg.pins)?;
        let mut maps = Maps::open(&cfg.pins)?;
        let mut config = maps.config()?;
        config.report_interval_s = cfg.report_interval_s;
        config.events_per_source_s = cfg.events_per_source_s;
        config.events_burst = cfg.events_burst;
        if cfg.payload_samples {
            config.flags &= !abi::BH_CFG_F_SAMPLES_DISABLED;
        } else {
            config.flags |= abi::BH_CFG_F_SAMPLES_DISABLED;
        }
        maps.set_config(config)?;

        let mut saved = None;
        let desired = match std::fs::read(state_path(&cfg)) {
            Ok(bytes) => {
                match pb::DesiredState::decode(bytes.as_slice()).map(|w| (w.clone(), DesiredState::try_from(w))) {
                    Ok((wire, Ok(s))) => {
                        saved = Some(wire);
                        s
                    }
                    _ => {
                        let path = state_path(&cfg);
                        tracing::warn!(path = %path.display(), "saved desired state unreadable; enforcement continues from the maps until a new state arrives");
                        DesiredState::default()
                    }
                }
            }
            Err(_) => DesiredState::default(),
        };

        // Re-adopt every pinned link: swap in the freshly loaded programs, or drop pins of vanished interfaces.
        let ifaces = endpoints::interfaces().map_err(|source| AgentError::Io {
            action: "listing interfaces",
            path: "/proc/self/ns/net".into(),
            source,
        })?;
        let kernel_eps: BTreeMap<u32, EndpointEntry> = maps.endpoints()?.into_iter().map(|e| (e.ifindex, e)).collect();
        let mut attachments = BTreeMap::new();
        for ifindex in dataplane.attached_ifindexes()? {
            match ifaces.get(&ifindex) {
                Some(name) => {
                    // One bad interface must not keep the agent (and quarantine) down:
                    // its pinned link keeps enforcing with the previous program.
                    if let Err(e) = dataplane.attach(name, ifindex) {
                        tracing::error!(ifname = %name, error = %e, "could not adopt pinned link; previous program stays");
                    }
                    if let Some(e) = kernel_eps.get(&ifindex) {
                        attachments.insert(e.endpoint_id, Attachment::Attached { ifindex, ifname: name.clone() });
                    }
                }
                None => {
                    dataplane.detach(ifindex)?;
                    maps.remove_endpoint(ifindex)?;
                }
            }
        }
        Self::sync_prefilter(&cfg, &mut dataplane)?;
        // The block list's map is pinned and survives the restart; this lifts
        // what expired while no agent ran.
        crate::blocks::sync(&mut maps, &desired.blocks, wall_ns())?;
        let candidates =
            kernel_eps.values().map(|e| e.endpoint_id).chain(desired.endpoints.iter().map(|e| e.endpoint_id));
        let quarantined: BTreeSet<u32> = maps.quarantined(candidates)?.into_iter().collect();
        let found = quarantined.difference(&desired.quarantined).copied().collect();
        let audit = AuditLog::new(&cfg.state_dir.join("audit.log"));
        tracing::info!(node = %cfg.node, adopted, endpoints = attachments.len(), "dataplane ready");
        let enricher = Arc::new(Enricher::new(&cfg.node, &desired));
        let quarantines = Arc::new(Quarantines::new(
            &cfg.pins,
            audit.clone(),
            found,
            desired.generation,
            roster(&desired, &attachments),
        )?);
        let blocks_checked_ns = wall_ns();
        let mut node = Self {
            cfg,
            dataplane,
            maps,
            desired,
            attachments,
            found_netns: BTreeMap::new(),
            quarantines,
            audit,
            enricher,
            blocks_checked_ns,
            listeners: Arc::default(),
        };
        // Pods of the saved state that no pinned link covers (a rebooted
        // node: bpffs is empty, the state directory is not) are attached
        // and enforced now, not when the controller next changes something.
        if let Some(wire) = saved
            && node.attachments.len() < node.desired.endpoints.len()
        {
            match node.apply(wire) {
                Ok(r) => tracing::info!(
                    generation = r.generation,
                    attached = r.attached,
                    problems = r.problems.len(),
                    "saved desired state applied to pods without a pinned link"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "saved desired state could not be applied; waiting for the controller")
                }
            }
        }
        Ok(node)
    }

    /// The enrichment tables for the current state.
    pub fn enricher(&self) -> Arc<Enricher> {
        self.enricher.clone()
    }

    /// Where the scan loop records what pods listen on.
    pub fn listeners(&self) -> Arc<crate::listeners::Book> {
        self.listeners.clone()
    }

    /// The attached pods whose sockets the scan loop reads: endpoint id,
    /// network namespace (if known) and "namespace/pod".
    pub fn scan_targets(&self) -> Vec<(u32, Option<std::path::PathBuf>, String)> {
        self.desired
            .endpoints
            .iter()
            .filter(|e| matches!(self.attachments.get(&e.endpoint_id), Some(Attachment::Attached { .. })))
            .map(|e| {
                (e.endpoint_id, e.netns.clone().or_else(|| self.found_netns.get(&e.endpoint_id).cloned()), e.name())
            })
            .collect()
    }

    /// The maps (sweeps and metrics read them).
    pub fn maps(&self) -> &Maps {
        &self.maps
    }

    /// Mutable maps, for the conntrack sweep.
    pub fn maps_mut(&mut self) -> &mut Maps {
        &mut self.maps
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.cfg.node
    }

    /// Validates and applies a whole desired state. On error nothing changed,
    /// except attachments of new pods, which pass traffic until their entry exists.
    pub fn apply(&mut self, wire: pb::DesiredState) -> Result<ApplyReport, AgentError> {
        let started = Instant::now();
        let new = DesiredState::try_from(wire.clone())?;
        if new.generation < self.desired.generation {
            return Err(AgentError::StaleGeneration { got: new.generation, applied: self.desired.generation });
        }
        if self.enforces(&new) {
            return self.renumber(new, &wire, started);
        }
        let ifaces = endpoints::interfaces().map_err(|source| AgentError::Io {
            action: "listing interfaces",
            path: "/proc/self/ns/net".into(),
            source,
        })?;
        let table = PolicyTable::build(&new.policy)?;
        let ranges = table.endpoints_with_ranges();
        let mut report = ApplyReport { generation: new.generation, ..Default::default() };

        // Find and attach every pod first: an attached interface without an endpoint entry passes traffic.
        let mut attachments = BTreeMap::new();
        let mut wanted = KernelState { table, ..Default::default() };
        let mut used_ifindex = BTreeSet::new();
        let mut finder = endpoints::Finder::new(&self.cfg.netns_dirs);
        let mut found_netns = BTreeMap::new();
        for spec in &new.endpoints {
            // Unchanged pod whose interface is still there: nothing to find or attach again.
            let known = self.desired.endpoints.iter().find(|e| e.endpoint_id == spec.endpoint_id);
            let unchanged =
                known.is_some_and(|k| k.netns == spec.netns && k.ips == spec.ips && k.pod_ifname == spec.pod_ifname);
            let reuse = match self.attachments.get(&spec.endpoint_id) {
                Some(Attachment::Attached { ifindex, ifname })
                    if unchanged && ifaces.get(ifindex) == Some(ifname) && self.dataplane.is_attached(*ifindex) =>
                {
                    Some((*ifindex, ifname.clone()))
                }
                _ => None,
            };
            let found = match reuse {
                Some((ifindex, ifname)) => {
                    // Its namespace, for reading its sockets: known from an
                    // earlier apply, or found again once after a restart.
                    let netns = match self.found_netns.get(&spec.endpoint_id) {
                        Some(n) => Some(n.clone()),
                        None if spec.netns.is_none() => {
                            finder.resolve(spec).ok().filter(|d| d.iface.ifindex == ifindex).and_then(|d| d.netns)
                        }
                        None => None,
                    };
                    if let Some(n) = netns {
                        found_netns.insert(spec.endpoint_id, n);
                    }
                    Ok((ifindex, ifname, false))
                }
                None => finder.resolve(spec).map(|d| {
                    if let (None, Some(n)) = (&spec.netns, d.netns) {
                        found_netns.insert(spec.endpoint_id, n);
                    }
                    (d.iface.ifindex, d.iface.ifname, true)
                }),
            };
            let attachment = match found {
                Ok((ifindex, ifname, _)) if !used_ifindex.insert(ifindex) => {
                    Attachment::Failed { error: format!("interface {ifname} already belongs to another endpoint") }
                }
                Ok((ifindex, ifname, false)) => Attachment::Attached { ifindex, ifname },
                Ok((ifindex, ifname, true)) => match self.dataplane.attach(&ifname, ifindex) {
                    Ok(()) => Attachment::Attached { ifindex, ifname },
                    Err(e) => Attachment::Failed { error: e.to_string() },
                },
                // A pod that was protected stays protected while its interface is still there.
                Err(e) => match self.attachments.get(&spec.endpoint_id) {
                    Some(Attachment::Attached { ifindex, ifname })
                        if ifaces.get(ifindex) == Some(ifname) && used_ifindex.insert(*ifindex) =>
                    {
                        let kept = format!("{e}; kept the previous interface {ifname}");
                        report.problems.push((spec.endpoint_id, spec.name(), kept));
                        Attachment::Attached { ifindex: *ifindex, ifname: ifname.clone() }
                    }
                    _ => Attachment::Failed { error: e },
                },
            };
            match &attachment {
                Attachment::Attached { ifindex, .. } => {
                    report.attached += 1;
                    let (ipv4, ipv6) = endpoints::first_addrs(&spec.ips);
                    wanted.endpoints.insert(
                        *ifindex,
                        EndpointEntry {
                            ifindex: *ifindex,
                            endpoint_id: spec.endpoint_id,
                            identity: spec.identity,
                            mode: spec.mode,
                            isolated: spec.isolated,
                            ipv4,
                            ipv6,
                            has_ranges: ranges.contains(&spec.endpoint_id),
                        },
                    );
                }
                Attachment::Failed { error } => {
                    tracing::warn!(pod = %spec.name(), %error, "endpoint NOT protected");
                    report.problems.push((spec.endpoint_id, spec.name(), error.clone()));
                }
            }
            attachments.insert(spec.endpoint_id, attachment);
        }

        let current = KernelState {
            endpoints: self.maps.endpoints()?.into_iter().map(|e| (e.ifindex, e)).collect(),
            table: self.maps.policy()?,
        };
        let ops = transition::plan(&current, &wanted)?;

        // Quarantines first: they only ever cut.
        let mut candidates = self.known_ids();
        candidates.extend(new.endpoints.iter().map(|e| e.endpoint_id));
        report.map_writes += self.quarantines.cut_before_apply(&new.quarantined, &candidates, new.generation)?;
        report.map_writes += crate::blocks::sync(&mut self.maps, &new.blocks, wall_ns())?.writes();

        let old_nets: BTreeMap<IpNetwork, u32> = self.maps.ipcache()?.into_iter().collect();
        let mut new_nets: BTreeMap<IpNetwork, u32> = new.ipcache.iter().map(|i| (i.net, i.identity)).collect();
        // IPv4 lives at ::ffff:0:0/96 in the trie: without this guard an IPv6
        // prefix such as ::/0 would also give its identity to every IPv4 address.
        new_nets.entry(IpNetwork::V4(Ipv4Network::from(Ipv4Addr::UNSPECIFIED))).or_insert(abi::BH_ID_WORLD);
        for (net, id) in &new_nets {
            if old_nets.get(net) != Some(id) {
                self.maps.put_ipcache(net, *id)?;
                report.map_writes += 1;
            }
        }
        for op in &ops {
            transition::apply(&mut self.maps, op)?;
            report.map_writes += 1;
        }
        for net in old_nets.keys().filter(|n| !new_nets.contains_key(n)) {
            self.maps.remove_ipcache(net)?;
            report.map_writes += 1;
        }
        report.map_writes +=
            self.quarantines.settle_after_apply(roster(&new, &attachments), &candidates, new.generation)?;

        // Interfaces no pod owns any more.
        for (ifindex, _) in current.endpoints.iter().filter(|(i, _)| !wanted.endpoints.contains_key(i)) {
            self.dataplane.detach(*ifindex)?;
        }

        self.desired = new;
        self.attachments = attachments;
        self.found_netns = found_netns;
        self.refresh_xdp()?;
        self.enricher = Arc::new(Enricher::new(&self.cfg.node, &self.desired));
        self.save(&wire)?;
        report.took = started.elapsed();
        tracing::info!(
            generation = report.generation,
            attached = report.attached,
            problems = report.problems.len(),
            writes = report.map_writes,
            took_us = report.took.as_micros() as u64,
            "desired state applied"
        );
        Ok(report)
    }

    /// Whether `new` asks for exactly what is enforced but perhaps for other
    /// quarantines, every pod still attached through the interface it had:
    /// then only quarantine entries need writing (a change elsewhere in the
    /// cluster, or a quarantine, renumbers every node's state).
    /// Each interface is looked up by index, not listed: a listing waits
    /// for the kernel's RTNL lock, which attaching XDP elsewhere holds.
    fn enforces(&self, new: &DesiredState) -> bool {
        let d = &self.desired;
        d.generation != 0
            && new.endpoints == d.endpoints
            && new.policy == d.policy
            && new.ipcache == d.ipcache
            && new.identities == d.identities
            && new.rule_names == d.rule_names
            && self.attachments.len() == new.endpoints.len()
            && new.endpoints.iter().all(|e| match self.attachments.get(&e.endpoint_id) {
                Some(Attachment::Attached { ifindex, ifname }) => {
                    endpoints::name_of(*ifindex).as_ref() == Some(ifname) && self.dataplane.is_attached(*ifindex)
                }
                _ => false,
            })
    }

    /// Takes `new` where it differs from what is enforced only in its
    /// generation, the endpoints it quarantines and its block list: those are cut and lifted
    /// exactly as a full apply would, and nothing else is read or written.
    fn renumber(
        &mut self,
        new: DesiredState,
        wire: &pb::DesiredState,
        started: Instant,
    ) -> Result<ApplyReport, AgentError> {
        let mut candidates = self.known_ids();
        candidates.extend(new.endpoints.iter().map(|e| e.endpoint_id));
        let mut writes = self.quarantines.cut_before_apply(&new.quarantined, &candidates, new.generation)?;
        writes += self.quarantines.settle_after_apply(roster(&new, &self.attachments), &candidates, new.generation)?;
        writes += crate::blocks::sync(&mut self.maps, &new.blocks, wall_ns())?.writes();
        if writes > 0 {
            self.refresh_xdp()?;
        }
        let generation = new.generation;
        self.desired = new;
        self.save(wire)?;
        let report = ApplyReport {
            generation,
            attached: self.desired.endpoints.len() as u32,
            map_writes: writes,
            took: started.elapsed(),
            ..Default::default()
        };
        tracing::info!(
            generation = report.generation,
            writes,
            took_us = report.took.as_micros() as u64,
            "desired state renumbered (only quarantines and blocks can change)"
        );
        Ok(report)
    }

    /// Lifts the blocks that have expired since the last look (the sweep
    /// calls it); reads the map only when one has.
    pub fn sync_blocks(&mut self) -> Result<crate::blocks::Synced, AgentError> {
        let now = wall_ns();
        let since = std::mem::replace(&mut self.blocks_checked_ns, now);
        if !self.desired.blocks.iter().any(|b| b.expires_ns.is_some_and(|t| t > since && t <= now)) {
            return Ok(crate::blocks::Synced::default());
        }
        crate::blocks::sync(&mut self.maps, &self.desired.blocks, now)
    }

    /// Attaches the prefilter to every configured uplink and takes it off
    /// uplinks no longer configured. A missing uplink is an error: the
    /// operator asked for protection the node cannot give.
    fn sync_prefilter(cfg: &AgentConfig, dataplane: &mut Dataplane) -> Result<(), AgentError> {
        let ifaces = endpoints::interfaces().map_err(|source| AgentError::Io {
            action: "listing interfaces",
            path: "/proc/self/ns/net".into(),
            source,
        })?;
        let mut wanted = BTreeSet::new();
        for name in &cfg.prefilter {
            let Some((ifindex, _)) = ifaces.iter().find(|(_, n)| *n == name) else {
                return Err(AgentError::invalid("--prefilter-dev", format!("no interface {name:?} on this node")));
            };
            dataplane.attach_prefilter(*ifindex)?;
            wanted.insert(*ifindex);
            tracing::info!(ifname = %name, ifindex, "block-list prefilter attached");
        }
        for ifindex in dataplane.prefilter_ifindexes()? {
            if !wanted.contains(&ifindex) {
                dataplane.detach_prefilter(ifindex)?;
                tracing::info!(ifindex, "block-list prefilter removed: its uplink is no longer configured");
            }
        }
        Ok(())
    }

    /// Keeps the applied state for the next start.
    fn save(&self, wire: &pb::DesiredState) -> Result<(), AgentError> {
        let path = state_path(&self.cfg);
        let tmp = path.with_extension("pb.tmp");
        std::fs::write(&tmp, wire.encode_to_vec())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| AgentError::Io { action: "saving desired state", path, source })
    }

    /// XDP fast drop is attached exactly while an endpoint is quarantined.
    fn sync_xdp(&mut self, attachments: &BTreeMap<u32, Attachment>, quarantined: &BTreeSet<u32>) {
        for (id, a) in attachments {
            if let Attachment::Attached { ifindex, .. } = a {
                let r = if quarantined.contains(id) {
                    self.dataplane.attach_xdp(*ifindex)
                } else {
                    self.dataplane.detach_xdp(*ifindex)
                };
                if let Err(e) = r {
                    tracing::warn!(endpoint = id, error = %e, "XDP fast drop not changed; TC still enforces the quarantine");
                }
            }
        }
    }

    /// Every endpoint id this node knows of (desired, attached, or quarantined by API).
    fn known_ids(&self) -> BTreeSet<u32> {
        let mut ids: BTreeSet<u32> = self.desired.endpoints.iter().map(|e| e.endpoint_id).collect();
        ids.extend(self.attachments.keys());
        ids.extend(self.quarantines.api_quarantined());
        ids
    }

    /// Re-reads which endpoints are quarantined and attaches or removes XDP to match.
    pub fn refresh_xdp(&mut self) -> Result<(), AgentError> {
        let q: BTreeSet<u32> = self.maps.quarantined(self.attachments.keys().copied())?.into_iter().collect();
        let attachments = self.attachments.clone();
        self.sync_xdp(&attachments, &q);
        Ok(())
    }

    /// The node's quarantines, usable without the node lock.
    pub fn quarantines(&self) -> Arc<Quarantines> {
        self.quarantines.clone()
    }

    /// Records an apply of the desired state: who pushed which generation.
    pub fn audit_apply(&self, caller: &Caller, report: &ApplyReport) -> Result<(), AgentError> {
        let detail = format!(
            "generation {}: {} endpoints attached, {} problems, {} map writes",
            report.generation,
            report.attached,
            report.problems.len(),
            report.map_writes
        );
        self.audit.record_by(caller, "apply", &self.cfg.node, &detail)?;
        Ok(())
    }

    /// Everything the status RPC reports.
    pub fn status(&self) -> Result<pb::AgentStatus, AgentError> {
        let stats = self.maps.stats()?;
        let quarantined: BTreeSet<u32> = self.maps.quarantined(self.known_ids())?.into_iter().collect();
        let mut counters = BTreeMap::new();
        let names = [
            (abi::BH_STAT_PKTS_FORWARDED, "packets_forwarded"),
            (abi::BH_STAT_PKTS_DROPPED, "packets_dropped"),
            (abi::BH_STAT_PKTS_AUDIT, "packets_audit"),
            (abi::BH_STAT_CT_NEW, "connections_new"),
            (abi::BH_STAT_EVENTS_SENT, "events_sent"),
            (abi::BH_STAT_EVENTS_LOST, "events_lost"),
            (abi::BH_STAT_EVENTS_RATELIMITED, "events_over_source_budget"),
            (abi::BH_STAT_SAMPLES_SENT, "samples_sent"),
            (abi::BH_STAT_SAMPLES_OVER_BUDGET, "samples_over_budget"),
            (abi::BH_STAT_SAMPLES_LOST, "samples_lost"),
            (abi::BH_STAT_SAMPLES_DISABLED, "samples_disabled"),
            (abi::BH_STAT_FRAGMENTS, "fragments"),
            (abi::BH_STAT_XDP_QUARANTINE_DROPS, "xdp_quarantine_drops"),
            (abi::BH_STAT_PREFILTER_DROPS, "prefilter_drops"),
        ];
        for (idx, name) in names {
            counters.insert(name.to_string(), stats.get(idx));
        }
        for reason in bulkhead_dataplane::Reason::ALL {
            let n = stats.drops_for(*reason);
            if n > 0 {
                counters.insert(format!("drops_{}", reason.as_str()), n);
            }
        }
        let endpoints = self
            .desired
            .endpoints
            .iter()
            .map(|e| {
                let (ifname, ifindex, attached, error) = match self.attachments.get(&e.endpoint_id) {
                    Some(Attachment::Attached { ifindex, ifname }) => (ifname.clone(), *ifindex, true, String::new()),
                    Some(Attachment::Failed { error }) => (String::new(), 0, false, error.clone()),
                    None => (String::new(), 0, false, "not attached yet".into()),
                };
                let scan = self.listeners.get(e.endpoint_id).unwrap_or_default();
                pb::EndpointStatus {
                    endpoint_id: e.endpoint_id,
                    pod: e.name(),
                    ifname,
                    ifindex,
                    attached,
                    quarantined: quarantined.contains(&e.endpoint_id),
                    error,
                    listeners: scan.listeners.iter().map(pb::Listener::from).collect(),
                    listeners_scanned_ns: scan.scanned_ns,
                    listeners_error: scan.error,
                }
            })
            .collect();
        let policy = self.maps.policy()?;
        Ok(pb::AgentStatus {
            node: self.cfg.node.clone(),
            generation: self.desired.generation,
            endpoints,
            events_lost: stats.get(abi::BH_STAT_EVENTS_LOST),
            counters: counters.into_iter().collect(),
            flows_lost: 0,
            policy_entries: policy.len() as u32,
            ipcache_entries: self.maps.ipcache()?.len() as u32,
        })
    }

    /// Forgets endpoints whose interface vanished (the pod was deleted): their
    /// links died with the interface; the pins and map entries go too.
    pub fn reap_vanished(&mut self) -> Result<Vec<u32>, AgentError> {
        let ifaces = endpoints::interfaces().map_err(|source| AgentError::Io {
            action: "listing interfaces",
            path: "/proc/self/ns/net".into(),
            source,
        })?;
        let mut gone = Vec::new();
        for (id, a) in &mut self.attachments {
            if let Attachment::Attached { ifindex, ifname } = a
                && ifaces.get(ifindex) != Some(ifname)
            {
                self.dataplane.detach(*ifindex)?;
                self.maps.remove_endpoint(*ifindex)?;
                tracing::info!(endpoint = id, ifname = %ifname, "interface gone; detached");
                gone.push(*id);
                *a = Attachment::Failed { error: format!("interface {ifname} disappeared (pod deleted?)") };
            }
        }
        Ok(gone)
    }

    /// Endpoint ids currently in the kernel.
    pub fn live_endpoint_ids(&self) -> BTreeSet<u32> {
        self.attachments.iter().filter(|(_, a)| matches!(a, Attachment::Attached { .. })).map(|(id, _)| *id).collect()
    }
}

/// Wall-clock now, nanoseconds since the epoch (block expiry is wall time).
pub(crate) fn wall_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
