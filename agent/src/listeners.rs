//! The sockets each pod listens on, read from the pod's own network
//! namespace: the exposure report then tells ports that are open but not
//! declared (a debug port, a forgotten admin listener) from ports declared
//! but not open. Only the protocol, address and port leave the agent.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_api::agent::v1 as pb;
use bulkhead_dataplane::model::proto;

use crate::error::AgentError;
use crate::node::Node;

/// The kernel's TCP_LISTEN state, as /proc/net/tcp prints it.
const TCP_LISTEN: u8 = 0x0a;
/// TCP_CLOSE: an unconnected UDP socket (one that receives from anyone).
const UDP_UNCONNECTED: u8 = 0x07;

/// One listening TCP socket or bound, unconnected UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    /// IP protocol number.
    pub protocol: u8,
    /// The bound address; unspecified for every address.
    pub addr: IpAddr,
    /// The port.
    pub port: u16,
}

impl From<&Listener> for pb::Listener {
    fn from(l: &Listener) -> Self {
        Self { protocol: u32::from(l.protocol), address: l.addr.to_string(), port: u32::from(l.port) }
    }
}

/// The last read of one pod's sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// When it was read, nanoseconds since the epoch; 0 before the first read.
    pub scanned_ns: i64,
    /// What it listens on, from the last read that worked.
    pub listeners: Vec<Listener>,
    /// Why the last read failed, if it did.
    pub error: String,
}

/// Every pod's last read, by endpoint id; written by the scan loop, read by
/// the status call.
#[derive(Debug, Default)]
pub struct Book {
    scans: Mutex<BTreeMap<u32, Scan>>,
}

impl Book {
    /// The last read of `endpoint_id`, if any.
    pub fn get(&self, endpoint_id: u32) -> Option<Scan> {
        self.scans.lock().ok().and_then(|m| m.get(&endpoint_id).cloned())
    }

    fn due(&self, live: &[(u32, Option<PathBuf>, String)], every_ns: i64, now: i64) -> Vec<u32> {
        let Ok(mut m) = self.scans.lock() else { return Vec::new() };
        let ids: BTreeSet<u32> = live.iter().map(|(id, _, _)| *id).collect();
        m.retain(|id, _| ids.contains(id));
        ids.into_iter().filter(|id| m.get(id).is_none_or(|s| now - s.scanned_ns >= every_ns)).collect()
    }

    fn record(&self, endpoint_id: u32, now: i64, read: Result<Vec<Listener>, String>) {
        let Ok(mut m) = self.scans.lock() else { return };
        let e = m.entry(endpoint_id).or_default();
        e.scanned_ns = now;
        match read {
            Ok(l) => {
                e.listeners = l;
                e.error.clear();
            }
            Err(error) => e.error = error,
        }
    }
}

fn word(hex: &str) -> Option<[u8; 4]> {
    // The kernel prints each 32-bit word of the address as a native-endian integer.
    u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes)
}

fn address(hex: &str) -> Option<IpAddr> {
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn endpoint(field: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = field.split_once(':')?;
    Some((address(a)?, u16::from_str_radix(p, 16).ok()?))
}

/// The listening sockets of one /proc/net/{tcp,tcp6,udp,udp6} table. A line
/// that does not parse is an error naming it: a silently short list would
/// read as "declared but not open".
pub fn parse(table: &str, protocol: u8) -> Result<Vec<Listener>, String> {
    let mut out = Vec::new();
    for (n, line) in table.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let bad = || format!("line {}: cannot read {line:?}", n + 1);
        let (Some(local), Some(remote), Some(state)) = (fields.get(1), fields.get(2), fields.get(3)) else {
            return Err(bad());
        };
        let (addr, port) = endpoint(local).ok_or_else(bad)?;
        let (_, remote_port) = endpoint(remote).ok_or_else(bad)?;
        let state = u8::from_str_radix(state, 16).map_err(|_| bad())?;
        let listening = if protocol == proto::TCP {
            state == TCP_LISTEN
        } else {
            state == UDP_UNCONNECTED && remote_port == 0 && port != 0
        };
        if listening {
            out.push(Listener { protocol, addr, port });
        }
    }
    Ok(out)
}

/// The namespace's ephemeral port range, from which unconnected UDP client
/// sockets (a resolver's query socket) get their ports.
fn ephemeral() -> Result<std::ops::RangeInclusive<u16>, String> {
    let path = "/proc/sys/net/ipv4/ip_local_port_range";
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {path}: {e}"))?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Ok(lo..=hi),
        _ => Err(format!("{path}: cannot read {text:?}")),
    }
}

/// Reads the tables of the calling thread's network namespace. UDP sockets
/// on an ephemeral port are taken for clients, not servers: an unconnected
/// client socket looks like a listener in the table.
fn read_tables() -> Result<Vec<Listener>, String> {
    let ephemeral = ephemeral()?;
    let mut out = BTreeSet::new();
    for (file, protocol) in [("tcp", proto::TCP), ("tcp6", proto::TCP), ("udp", proto::UDP), ("udp6", proto::UDP)] {
        // thread-self: the namespace of this thread, which entered the pod's.
        let path = Path::new("/proc/thread-self/net").join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // No IPv6 in this namespace: nothing listens on it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && file.ends_with('6') => continue,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let found = parse(&text, protocol).map_err(|e| format!("{}: {e}", path.display()))?;
        out.extend(found.into_iter().filter(|l| l.protocol != proto::UDP || !ephemeral.contains(&l.port)));
    }
    Ok(out.into_iter().collect())
}

/// The listening sockets of the network namespace at `netns`.
pub fn scan(pod: &str, netns: &Path) -> Result<Vec<Listener>, AgentError> {
    bulkhead_cni::in_netns(netns, read_tables)
        .map_err(|source| AgentError::PodNetns { pod: pod.to_string(), source: Box::new(source) })?
        .map_err(|message| AgentError::Listeners { pod: pod.to_string(), message })
}

/// Reads every attached pod's sockets when its last read is `every` old,
/// and a new pod's within a couple of seconds of its attaching.
pub async fn run(node: Arc<Mutex<Node>>, book: Arc<Book>, every: Duration) {
    let every_ns = i64::try_from(every.as_nanos()).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(every.min(Duration::from_secs(2)));
    loop {
        tick.tick().await;
        let Ok(live) = node.lock().map(|n| n.scan_targets()) else { return };
        let now = crate::node::wall_ns();
        let due = book.due(&live, every_ns, now);
        let work: Vec<_> = live.into_iter().filter(|(id, _, _)| due.contains(id)).collect();
        let b = book.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for (id, netns, pod) in work {
                let read = match &netns {
                    Some(ns) => scan(&pod, ns).map_err(|e| e.to_string()),
                    None => Err(format!("{pod}: its network namespace is not known to the agent")),
                };
                if let Err(e) = &read {
                    tracing::debug!(pod = %pod, error = %e, "reading listening sockets");
                }
                b.record(id, crate::node::wall_ns(), read);
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    #[test]
    #[cfg(target_endian = "little")]
    fn reads_listening_tcp_and_unconnected_udp() {
        let tcp = format!(
            "{HEAD}   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n   1: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1\n   2: 0A00000A:1F90 0B00000A:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1\n"
        );
        let l = parse(&tcp, proto::TCP).unwrap();
        assert_eq!(
            l,
            vec![
                Listener { protocol: proto::TCP, addr: "0.0.0.0".parse().unwrap(), port: 8080 },
                Listener { protocol: proto::TCP, addr: "127.0.0.1".parse().unwrap(), port: 9090 },
            ]
        );
        let udp6 = format!(
            "{HEAD}  10: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2\n  11: 00000000000000000000000000000000:C350 00000000000000000000000001000000:0035 01 00000000:00000000 00:00000000 00000000     0        0 5 2\n"
        );
        let l = parse(&udp6, proto::UDP).unwrap();
        assert_eq!(l, vec![Listener { protocol: proto::UDP, addr: "::1".parse().unwrap(), port: 53 }]);
    }

    #[test]
    fn a_line_that_does_not_parse_is_an_error() {
        let bad = format!("{HEAD}   0: 0000:1F90 00000000:0000 0A\n");
        assert!(parse(&bad, proto::TCP).unwrap_err().contains("line 2"));
        assert!(parse(&format!("{HEAD}   0: 00000000:1F90\n"), proto::TCP).is_err());
        assert_eq!(parse(HEAD, proto::TCP).unwrap(), vec![]);
    }

    #[test]
    fn due_reads_new_pods_and_old_reads_and_forgets_gone_ones() {
        let b = Book::default();
        let live = vec![(1, None, "a/x".to_string()), (2, None, "a/y".to_string())];
        assert_eq!(b.due(&live, 10, 100), vec![1, 2]);
        b.record(1, 100, Ok(vec![]));
        b.record(2, 105, Err("gone".into()));
        assert_eq!(b.due(&live, 10, 108), Vec::<u32>::new());
        assert_eq!(b.due(&live, 10, 112), vec![1]);
        assert_eq!(b.due(&live[1..], 10, 112), Vec::<u32>::new());
        assert!(b.get(1).is_none());
        assert_eq!(b.get(2).unwrap().error, "gone");
    }
}
