//! Port scans and host sweeps: one source address trying many ports of one
//! host, or many hosts, within a short window, mostly dropped. Only
//! attempts on edges the baseline has not learned reach the detector, so a
//! monitoring agent scraping many hosts on learned edges is no sweep. Once a
//! source is scanning, its attempts count into its one anomaly until it has
//! been quiet for a while: a flood over every port is one anomaly whose
//! counts grow, not one edge per port. State is bounded: per source, the
//! attempts of one window (capped), and a bounded number of sources.

use std::collections::VecDeque;
use std::net::IpAddr;

use bulkhead_model::{AnomalyKind, Verdict};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::flow::{Entity, FlowRecord};

/// When a source counts as scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScanConfig {
    /// The sliding window attempts are counted in, nanoseconds.
    pub window_ns: i64,
    /// Distinct ports of one host within the window that make a port scan.
    pub ports: u32,
    /// Distinct hosts within the window that make a host sweep.
    pub hosts: u32,
    /// The least share of the window's attempts, in percent, that policy
    /// dropped (or would have, in audit). 0 counts a scan whatever the verdicts.
    pub dropped_percent: u8,
    /// A scan ends after this long without an attempt; a later burst is a new anomaly.
    pub quiet_ns: i64,
    /// Sources tracked at once. A new source beyond it is not tracked, and counted.
    pub max_sources: usize,
    /// Distinct ports between two entities the graph and the baselines keep
    /// apart; every further port is counted on one scan edge
    /// ([`crate::EdgeKey::folded`]).
    pub edge_ports: usize,
}

impl Default for ScanConfig {
    /// 50 ports of one host, or 50 hosts, in 5 s, at least half dropped.
    fn default() -> Self {
        Self {
            window_ns: 5_000_000_000,
            ports: 50,
            hosts: 50,
            dropped_percent: 50,
            quiet_ns: 60_000_000_000,
            max_sources: 65_536,
            edge_ports: 64,
        }
    }
}

impl ScanConfig {
    /// Attempts kept per source: enough to see either threshold crossed.
    fn cap(&self) -> usize {
        (self.ports.max(self.hosts) as usize).saturating_mul(4).clamp(256, 65_536)
    }
}

/// Ports a scan's summary lists.
pub const SAMPLE: usize = 32;

/// What the detector saw when a source crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// Port scan or host sweep.
    pub kind: AnomalyKind,
    /// The window's first attempt.
    pub first_ns: i64,
    /// Distinct ports seen in the window (any host).
    pub ports: u32,
    /// Distinct hosts seen in the window.
    pub hosts: u32,
    /// The window's lowest ports, ascending (at most [`SAMPLE`]).
    pub sample_ports: Vec<u16>,
    /// Attempts in the window.
    pub attempts: u32,
    /// Of which dropped.
    pub dropped: u32,
    /// The window's edges (destination, protocol, delivered port), which
    /// the learner must not keep as learned.
    pub edges: Vec<(Entity, u8, u16)>,
}

/// What one attempt is to the detector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Not (yet) part of a scan.
    Normal,
    /// This attempt made its source a scanner.
    Detected(Detection),
    /// Its source is scanning already, as anomaly `anomaly`; the distinct
    /// ports and hosts of the scan so far.
    Scanning {
        /// The scan's anomaly.
        anomaly: u64,
        /// Distinct ports so far.
        ports: u32,
        /// Distinct hosts so far.
        hosts: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Target {
    ip: IpAddr,
    port: u16,
    protocol: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attempt {
    time_ns: i64,
    target: Target,
    dropped: bool,
    dst: Entity,
    delivered: u16,
}

/// A source's ongoing scan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Episode {
    anomaly: u64,
    ports: FxHashSet<u16>,
    hosts: FxHashSet<IpAddr>,
}

/// Hosts an episode remembers; beyond them it counts no more new ones.
const EPISODE_HOSTS: usize = 65_536;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tracker {
    attempts: VecDeque<Attempt>,
    /// Attempts per target in the window.
    targets: FxHashMap<Target, u32>,
    /// Distinct ports per host in the window.
    hosts: FxHashMap<IpAddr, u32>,
    dropped: u32,
    last_ns: i64,
    episode: Option<Episode>,
}

impl Tracker {
    fn push(&mut self, a: Attempt) {
        let n = self.targets.entry(a.target).or_default();
        *n += 1;
        if *n == 1 {
            *self.hosts.entry(a.target.ip).or_default() += 1;
        }
        if a.dropped {
            self.dropped += 1;
        }
        self.attempts.push_back(a);
    }

    fn pop(&mut self) {
        let Some(a) = self.attempts.pop_front() else { return };
        if a.dropped {
            self.dropped -= 1;
        }
        if let Some(n) = self.targets.get_mut(&a.target) {
            *n -= 1;
            if *n == 0 {
                self.targets.remove(&a.target);
                if let Some(p) = self.hosts.get_mut(&a.target.ip) {
                    *p -= 1;
                    if *p == 0 {
                        self.hosts.remove(&a.target.ip);
                    }
                }
            }
        }
    }

    fn clear(&mut self) {
        self.attempts.clear();
        self.targets.clear();
        self.hosts.clear();
        self.dropped = 0;
    }
}

/// Scan detection state of every tracked source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanDetector {
    config: ScanConfig,
    sources: FxHashMap<IpAddr, Tracker>,
    untracked: u64,
}

impl ScanDetector {
    /// A detector with `config`'s thresholds.
    pub fn new(config: ScanConfig) -> Self {
        Self { config, ..Default::default() }
    }

    /// New thresholds; ongoing scans continue.
    pub fn set_config(&mut self, config: ScanConfig) {
        self.config = config;
    }

    /// Takes one attempt on an edge the baseline has not learned (`delivered`
    /// is the port it was delivered to, behind a service).
    pub fn observe(&mut self, r: &FlowRecord, delivered: u16) -> Step {
        let cfg = self.config;
        if !self.sources.contains_key(&r.src_ip) {
            if self.sources.len() >= cfg.max_sources {
                self.untracked += 1;
                return Step::Normal;
            }
            self.sources.insert(r.src_ip, Tracker::default());
        }
        let Some(t) = self.sources.get_mut(&r.src_ip) else { return Step::Normal };
        t.last_ns = t.last_ns.max(r.time_ns);
        if let Some(e) = &mut t.episode {
            e.ports.insert(r.dst_port);
            if e.hosts.len() < EPISODE_HOSTS {
                e.hosts.insert(r.dst_ip);
            }
            return Step::Scanning { anomaly: e.anomaly, ports: e.ports.len() as u32, hosts: e.hosts.len() as u32 };
        }
        let dropped = r.verdict != Verdict::Forwarded || r.drop_reason.is_some_and(|d| d.is_drop());
        let target = Target { ip: r.dst_ip, port: r.dst_port, protocol: r.protocol };
        t.push(Attempt { time_ns: r.time_ns, target, dropped, dst: r.dst.clone(), delivered });
        let horizon = t.last_ns - cfg.window_ns;
        while t.attempts.front().is_some_and(|a| a.time_ns < horizon) || t.attempts.len() > cfg.cap() {
            t.pop();
        }
        let attempts = t.attempts.len() as u32;
        let hosts = t.hosts.len() as u32;
        if u64::from(t.dropped) * 100 < u64::from(cfg.dropped_percent) * u64::from(attempts) {
            return Step::Normal;
        }
        // Many ports of one host need at least that many distinct targets.
        let port_scan = t.targets.len() >= cfg.ports as usize && t.hosts.values().any(|n| *n >= cfg.ports);
        let kind = if port_scan {
            AnomalyKind::PortScan
        } else if hosts >= cfg.hosts {
            AnomalyKind::HostSweep
        } else {
            return Step::Normal;
        };
        let ports: FxHashSet<u16> = t.targets.keys().map(|k| k.port).collect();
        let seen_hosts: FxHashSet<IpAddr> = t.targets.keys().map(|k| k.ip).collect();
        let mut edges: Vec<(Entity, u8, u16)> =
            t.attempts.iter().map(|a| (a.dst.clone(), a.target.protocol, a.delivered)).collect();
        edges.sort();
        edges.dedup();
        let mut sample_ports: Vec<u16> = ports.iter().copied().collect();
        sample_ports.sort_unstable();
        sample_ports.truncate(SAMPLE);
        let d = Detection {
            kind,
            sample_ports,
            first_ns: t.attempts.iter().map(|a| a.time_ns).min().unwrap_or(r.time_ns),
            ports: ports.len() as u32,
            hosts,
            attempts,
            dropped: t.dropped,
            edges,
        };
        t.clear();
        t.episode = Some(Episode { anomaly: 0, ports, hosts: seen_hosts });
        Step::Detected(d)
    }

    /// Names the anomaly of the scan `src` just started.
    pub fn attach(&mut self, src: IpAddr, anomaly: u64) {
        if let Some(e) = self.sources.get_mut(&src).and_then(|t| t.episode.as_mut()) {
            e.anomaly = anomaly;
        }
    }

    /// Forgets sources idle for a window, and ends scans quiet for the
    /// quiet period.
    pub fn tick(&mut self, now_ns: i64) {
        let cfg = self.config;
        self.sources.retain(|_, t| match t.episode {
            Some(_) => now_ns - t.last_ns < cfg.quiet_ns,
            None => now_ns - t.last_ns < cfg.window_ns,
        });
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Attempts of sources that could not be tracked (the table was full).
    pub fn untracked(&self) -> u64 {
        self.untracked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_model::{Direction, Reason};

    const MS: i64 = 1_000_000;

    fn attempt(src: &str, dst: &str, port: u16, t: i64, verdict: Verdict) -> FlowRecord {
        let host = Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: dst.into() };
        FlowRecord {
            time_ns: t,
            observation: Direction::Egress,
            node: "n1".into(),
            src: Entity::Workload { namespace: "x".into(), kind: "Deployment".into(), name: "scanner".into() },
            dst: host,
            src_ip: src.parse().unwrap(),
            src_port: 40000,
            dst_ip: dst.parse().unwrap(),
            dst_port: port,
            protocol: 6,
            service: None,
            verdict,
            bytes: 0,
            src_pod: String::new(),
            dst_pod: String::new(),
            backend: None,
            rule: None,
            drop_reason: (verdict == Verdict::Dropped).then_some(Reason::DefaultDeny),
            packets: 0,
        }
    }

    fn cfg() -> ScanConfig {
        ScanConfig { window_ns: 2_000 * MS, ports: 20, hosts: 10, ..Default::default() }
    }

    #[test]
    fn a_hundred_ports_in_two_seconds_is_one_scan() {
        let mut d = ScanDetector::new(cfg());
        let mut detected = Vec::new();
        for p in 0..100u16 {
            match d.observe(&attempt("10.0.0.1", "10.0.0.2", 1000 + p, i64::from(p) * 15 * MS, Verdict::Dropped), p) {
                Step::Detected(x) => {
                    detected.push(x);
                    d.attach("10.0.0.1".parse().unwrap(), 7);
                }
                Step::Scanning { anomaly, ports, hosts } => {
                    assert_eq!((anomaly, hosts), (7, 1));
                    assert_eq!(ports, u32::from(p) + 1);
                }
                Step::Normal => assert!(p < 19, "port {p}"),
            }
        }
        assert_eq!(detected.len(), 1);
        let x = &detected[0];
        assert_eq!((x.kind, x.ports, x.hosts, x.attempts, x.dropped), (AnomalyKind::PortScan, 20, 1, 20, 20));
        assert_eq!(x.edges.len(), 20);
        // Quiet for the quiet period: the scan is over, and a new burst is a new one.
        d.tick(100 * 15 * MS + cfg().quiet_ns);
        assert_eq!(d.tracked(), 0);
        let later = 100 * 15 * MS + cfg().quiet_ns + MS;
        assert!(matches!(d.observe(&attempt("10.0.0.1", "10.0.0.2", 1, later, Verdict::Dropped), 1), Step::Normal));
    }

    #[test]
    fn slow_scans_allowed_traffic_and_sweeps_are_told_apart() {
        // 100 ports at one per 200 ms: never 20 in a 2 s window.
        let mut d = ScanDetector::new(cfg());
        for p in 0..100u16 {
            let r = attempt("10.0.0.1", "10.0.0.2", p, i64::from(p) * 200 * MS, Verdict::Dropped);
            assert_eq!(d.observe(&r, p), Step::Normal);
        }
        // Fast but all forwarded: not "mostly dropped".
        let mut d = ScanDetector::new(cfg());
        for p in 0..100u16 {
            let r = attempt("10.0.0.1", "10.0.0.2", p, i64::from(p) * MS, Verdict::Forwarded);
            assert_eq!(d.observe(&r, p), Step::Normal);
        }
        // The same with the dropped share at 0: a scan.
        let mut d = ScanDetector::new(ScanConfig { dropped_percent: 0, ..cfg() });
        let hits = (0..100u16)
            .filter(|p| {
                let r = attempt("10.0.0.1", "10.0.0.2", *p, i64::from(*p) * MS, Verdict::Forwarded);
                matches!(d.observe(&r, *p), Step::Detected(_))
            })
            .count();
        assert_eq!(hits, 1);
        // Ten hosts on one port: a sweep.
        let mut d = ScanDetector::new(cfg());
        let kinds: Vec<AnomalyKind> = (1..=10u8)
            .filter_map(|h| {
                let r = attempt("10.0.0.1", &format!("10.0.1.{h}"), 22, i64::from(h) * MS, Verdict::Dropped);
                match d.observe(&r, 22) {
                    Step::Detected(x) => Some(x.kind),
                    _ => None,
                }
            })
            .collect();
        assert_eq!(kinds, vec![AnomalyKind::HostSweep]);
    }

    #[test]
    fn state_is_bounded() {
        let mut d = ScanDetector::new(ScanConfig { max_sources: 3, ..cfg() });
        for s in 1..=5u8 {
            d.observe(&attempt(&format!("10.0.0.{s}"), "10.0.0.200", 1, MS, Verdict::Dropped), 1);
        }
        assert_eq!((d.tracked(), d.untracked()), (3, 2));
        // One source, one target, a million repeats: the window is capped.
        let mut d = ScanDetector::new(cfg());
        for i in 0..1_000_000i64 {
            d.observe(&attempt("10.0.0.1", "10.0.0.2", 80, i, Verdict::Dropped), 80);
        }
        let t = d.sources.values().next().unwrap();
        assert_eq!(t.attempts.len(), cfg().cap());
        assert_eq!((t.targets.len(), t.hosts.len()), (1, 1));
    }
}
