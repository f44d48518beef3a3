//! Probing connectivity from inside pods. Each source pod gets a thread that
//! enters its namespace; all its probes run concurrently with a short timeout,
//! so a full matrix takes about one timeout, not one per probe.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Serialize;

use crate::error::LabError;
use crate::state::LabState;

/// One probe to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// Source pod, as "namespace/name".
    pub from: String,
    /// Target, as "namespace/name" or the IP as given.
    pub to: String,
    /// Address to connect to.
    pub ip: IpAddr,
    /// Port to connect to.
    pub port: u16,
    /// Probe over UDP instead of TCP.
    pub udp: bool,
    /// A service name ("svc.ns") to resolve through the cluster DNS from
    /// inside the source pod first; `ip` is then only what it should resolve to.
    pub dns: Option<String>,
}

/// One probe's outcome, in the JSON shape `lab probe -o json` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeResult {
    /// Source pod, as "namespace/name".
    pub from: String,
    /// Target, as "namespace/name" or the IP as given.
    pub to: String,
    /// Port probed.
    pub port: u16,
    /// "TCP" or "UDP".
    pub protocol: &'static str,
    /// Whether the connection succeeded within the timeout.
    pub connected: bool,
}

/// The source name of probes from outside the cluster.
pub const OUTSIDE: &str = "outside";
/// The outside namespace's address on the lab fabric: no node's, no pod's.
pub const OUTSIDE_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(172, 30, 0, 250);

/// The outside namespace of lab `lab`.
pub fn outside_netns(lab: &str) -> String {
    format!("bh_{lab}_out")
}

async fn one(p: &Probe, timeout: Duration) -> bool {
    let ip = match &p.dns {
        None => p.ip,
        Some(name) => {
            let ns = p.from.split('/').next().unwrap_or_default();
            match crate::dns::resolve(name, ns, timeout).await {
                Some(ip) => IpAddr::V4(ip),
                None => return false,
            }
        }
    };
    let addr = SocketAddr::new(ip, p.port);
    if p.udp {
        let bind: SocketAddr =
            if p.ip.is_ipv4() { "0.0.0.0:0".parse().unwrap_or(addr) } else { "[::]:0".parse().unwrap_or(addr) };
        let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
            return false;
        };
        if sock.connect(addr).await.is_err() || sock.send(b"bulkhead-probe").await.is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(timeout, sock.recv(&mut buf)).await, Ok(Ok(n)) if n > 0)
    } else {
        use tokio::io::AsyncReadExt;
        let Ok(Ok(mut s)) = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await else {
            return false;
        };
        let mut buf = [0u8; 64];
        matches!(tokio::time::timeout(timeout, s.read(&mut buf)).await, Ok(Ok(n)) if n > 0)
    }
}

/// Runs every probe; results come back in input order.
pub fn run(lab: &LabState, probes: &[Probe], timeout: Duration) -> Result<Vec<ProbeResult>, LabError> {
    let mut by_source: BTreeMap<String, Vec<(usize, Probe)>> = BTreeMap::new();
    for (i, p) in probes.iter().enumerate() {
        by_source.entry(p.from.clone()).or_default().push((i, p.clone()));
    }
    let mut handles = Vec::new();
    for (from, list) in by_source {
        let netns = if from == OUTSIDE {
            crate::netns::path(&outside_netns(&lab.name))
        } else {
            crate::netns::path(&lab.pod(&from)?.netns)
        };
        handles.push(std::thread::spawn(move || -> Result<Vec<(usize, bool)>, LabError> {
            let rt = crate::netns::runtime_in(&netns)?;
            Ok(rt.block_on(async {
                let futs = list.iter().map(|(i, p)| async move { (*i, one(p, timeout).await) });
                futures::future::join_all(futs).await
            }))
        }));
    }
    let mut out: Vec<Option<bool>> = vec![None; probes.len()];
    for h in handles {
        let results = h.join().map_err(|_| LabError::Invalid("a probe thread panicked".into()))??;
        for (i, ok) in results {
            out[i] = Some(ok);
        }
    }
    Ok(probes
        .iter()
        .zip(out)
        .map(|(p, ok)| ProbeResult {
            from: p.from.clone(),
            to: p.to.clone(),
            port: p.port,
            protocol: if p.udp { "UDP" } else { "TCP" },
            connected: ok.unwrap_or(false),
        })
        .collect())
}

/// One probe from a pod to "ns/pod", "ns/svc" (resolved through the
/// cluster DNS from inside the pod) or an IP.
/// `from` may be `outside`: an address outside the cluster, on the lab's
/// fabric, for node ports and load balancers.
pub fn probe_for(lab: &LabState, from: &str, to: &str, port: u16, udp: bool, v6: bool) -> Result<Probe, LabError> {
    if from == OUTSIDE {
        let ip: IpAddr = to.parse().map_err(|_| {
            LabError::Invalid(format!(
                "from outside, probe an address (a node's, or a load balancer's), not {to:?}: outside clients have no cluster DNS"
            ))
        })?;
        return Ok(Probe { from: OUTSIDE.into(), to: to.to_string(), ip, port, udp, dns: None });
    }
    let from = lab.pod(from)?.key();
    if lab.pod(to).is_err()
        && let Some(svc) = lab.services.iter().find(|s| s.key() == to)
    {
        if v6 {
            return Err(LabError::Invalid(format!("service {to} has no IPv6 ClusterIP (the lab's services are IPv4)")));
        }
        let dns = Some(format!("{}.{}", svc.name, svc.namespace));
        return Ok(Probe { from, to: svc.key(), ip: IpAddr::V4(svc.cluster_ip), port, udp, dns });
    }
    let (to, ip) = target_ip(lab, to, v6)?;
    Ok(Probe { from, to, ip, port, udp, dns: None })
}

/// Resolves "ns/pod" (or an IP) to the address to probe, preferring IPv4 unless `v6`.
pub fn target_ip(lab: &LabState, to: &str, v6: bool) -> Result<(String, IpAddr), LabError> {
    if let Ok(ip) = to.parse::<IpAddr>() {
        return Ok((to.to_string(), ip));
    }
    let pod = lab.pod(to)?;
    let ip =
        pod.ips.iter().find(|ip| ip.is_ipv6() == v6).copied().ok_or_else(|| {
            LabError::Invalid(format!("pod {} has no IPv{} address", pod.key(), if v6 { 6 } else { 4 }))
        })?;
    Ok((pod.key(), ip))
}

/// Every ordered pod pair × ports × protocols.
pub fn matrix(lab: &LabState, ports: &[u16], udp: &[bool], v6: bool) -> Result<Vec<Probe>, LabError> {
    let mut out = Vec::new();
    for from in &lab.pods {
        for to in &lab.pods {
            let (to_key, ip) = target_ip(lab, &to.key(), v6)?;
            for port in ports {
                for u in udp {
                    out.push(Probe { from: from.key(), to: to_key.clone(), ip, port: *port, udp: *u, dns: None });
                }
            }
        }
    }
    Ok(out)
}

/// Sends `flows` one-byte UDP datagrams from inside the namespace at `netns`
/// to `target`, each a new flow to the dataplane: 64 sockets (64 source
/// ports) times every destination port, as an attacker floods a pod. A
/// datagram the socket buffer refused is not counted. Returns how many were sent.
pub fn udp_flood(netns: &std::path::Path, target: IpAddr, flows: u64) -> Result<u64, LabError> {
    let netns = netns.to_path_buf();
    let sender = std::thread::spawn(move || -> Result<u64, LabError> {
        crate::netns::enter(&netns)?;
        let io = |source| LabError::Io { action: "opening a flood socket", path: netns.clone(), source };
        let sockets =
            (0..64).map(|_| std::net::UdpSocket::bind("0.0.0.0:0").map_err(io)).collect::<Result<Vec<_>, _>>()?;
        let mut sent = 0u64;
        for port in (1..=u16::MAX).cycle() {
            for s in &sockets {
                if sent == flows {
                    return Ok(sent);
                }
                if s.send_to(b"x", SocketAddr::new(target, port)).is_ok() {
                    sent += 1;
                }
            }
        }
        Ok(sent)
    });
    sender.join().map_err(|_| LabError::Invalid("the flood thread panicked".into()))?
}

/// SCTP probes, `(source pod, address, port)` each: an INIT from inside the
/// source pod, connected when the matching INIT ACK comes back within
/// `timeout` (see `sctp`). Results come back in input order.
pub fn run_sctp(lab: &LabState, probes: &[(String, IpAddr, u16)], timeout: Duration) -> Result<Vec<bool>, LabError> {
    let mut by_source: BTreeMap<String, Vec<(usize, IpAddr, u16)>> = BTreeMap::new();
    for (i, (from, ip, port)) in probes.iter().enumerate() {
        by_source.entry(from.clone()).or_default().push((i, *ip, *port));
    }
    let mut handles = Vec::new();
    for (from, list) in by_source {
        let netns = crate::netns::path(&lab.pod(&from)?.netns);
        handles.push(std::thread::spawn(move || -> Result<Vec<(usize, bool)>, LabError> {
            crate::netns::enter(&netns)?;
            let targets: Vec<(IpAddr, u16)> = list.iter().map(|(_, ip, port)| (*ip, *port)).collect();
            let ok = crate::sctp::probe(&targets, timeout)?;
            Ok(list.iter().map(|(i, _, _)| *i).zip(ok).collect())
        }));
    }
    let mut out = vec![false; probes.len()];
    for h in handles {
        for (i, ok) in h.join().map_err(|_| LabError::Invalid("an SCTP probe thread panicked".into()))?? {
            out[i] = ok;
        }
    }
    Ok(out)
}
