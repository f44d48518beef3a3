//! The lab's cluster DNS: a server the kube-dns pod runs (UDP and TCP 53),
//! answering `<service>.<namespace>.svc.cluster.local` with the service's
//! ClusterIP from the lab's state, and the resolver the probes use from
//! inside a pod, so name lookups are real traffic that policies must allow.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use crate::error::LabError;
use crate::state::LabState;

/// The cluster's DNS domain.
pub const DOMAIN: &str = "svc.cluster.local";

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// Encodes a query for an A record.
pub fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, one question
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&TYPE_A.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// The question of a message: (name, type, end offset), or `None` if malformed.
fn question(msg: &[u8]) -> Option<(String, u16, usize)> {
    if msg.len() < 12 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *msg.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 || labels.len() > 32 {
            return None;
        }
        labels.push(std::str::from_utf8(msg.get(i..i + len)?).ok()?.to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]);
    // QCLASS must be there too: the answer copies the whole question.
    msg.get(i + 2..i + 4)?;
    Some((labels.join("."), qtype, i + 4))
}

/// The answer to a query, given a lookup of names to addresses (several for
/// a headless service: one per ready pod); `None` for messages that are not
/// a single well-formed question (dropped).
pub fn answer(msg: &[u8], lookup: impl Fn(&str) -> Option<Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    let (name, qtype, end) = question(msg)?;
    let found = lookup(&name);
    let mut r = Vec::with_capacity(end + 16);
    r.extend_from_slice(&msg[..2]);
    let rcode = if found.is_some() { 0 } else { 3 };
    r.extend_from_slice(&[0x85, 0x80 | rcode]); // QR, AA, RD, RA
    // A UDP answer stays under 512 bytes: at most 28 records of 16 bytes after the question.
    let ips: Vec<Ipv4Addr> =
        if qtype == TYPE_A { found.unwrap_or_default().into_iter().take(28).collect() } else { Vec::new() };
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&msg[12..end]);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 12]);
        r.extend_from_slice(&TYPE_A.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&5u32.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

/// The A record in a response to `id`, if any.
pub fn parse_answer(id: u16, msg: &[u8]) -> Option<Ipv4Addr> {
    if msg.len() < 12 || msg[..2] != id.to_be_bytes() || msg[3] & 0x0f != 0 {
        return None;
    }
    let (_, _, end) = question(msg)?;
    let ans = msg.get(end..)?;
    // name pointer (2), type (2), class (2), ttl (4), length (2), address (4)
    (ans.len() >= 16 && ans[2..4] == TYPE_A.to_be_bytes() && ans[10..12] == 4u16.to_be_bytes())
        .then(|| Ipv4Addr::new(ans[12], ans[13], ans[14], ans[15]))
}

/// Looks a service name up in the lab: "svc.ns.svc.cluster.local". A
/// headless service answers with the addresses of the pods it selects.
pub fn lookup(lab: &LabState, name: &str) -> Option<Vec<Ipv4Addr>> {
    let rest = name.strip_suffix(&format!(".{DOMAIN}"))?;
    let (svc, ns) = rest.split_once('.')?;
    let s = lab.services.iter().find(|s| s.name == svc && s.namespace == ns)?;
    if !s.headless {
        return Some(vec![s.cluster_ip]);
    }
    Some(crate::services::selected(lab, s).iter().filter_map(|p| crate::services::ipv4(p)).collect())
}

/// Resolves `name` from inside the current network namespace, over UDP, as a
/// pod's resolver would: the short forms "svc" and "svc.ns" are completed
/// with the pod's namespace and the cluster domain.
pub async fn resolve(name: &str, pod_namespace: &str, timeout: Duration) -> Option<Ipv4Addr> {
    let fqdn = match name.matches('.').count() {
        0 => format!("{name}.{pod_namespace}.{DOMAIN}"),
        1 => format!("{name}.{DOMAIN}"),
        _ => name.to_string(),
    };
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await.ok()?;
    sock.connect(SocketAddr::new(IpAddr::V4(crate::services::DNS_IP), 53)).await.ok()?;
    let id = (std::process::id() as u16) ^ (fqdn.len() as u16).rotate_left(7);
    sock.send(&query(id, &fqdn)).await.ok()?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(timeout, sock.recv(&mut buf)).await.ok()?.ok()?;
    parse_answer(id, &buf[..n])
}

/// Serves DNS for the lab from inside `netns`. Call before any other thread exists.
pub fn serve(netns: &Path, lab: &str) -> Result<(), LabError> {
    let rt = crate::netns::runtime_in(netns)?;
    let lab = lab.to_string();
    rt.block_on(async move {
        let io = |source| LabError::Io { action: "binding DNS port 53", path: netns.to_path_buf(), source };
        let udp = tokio::net::UdpSocket::bind(("::", 53)).await.map_err(io)?;
        let tcp = tokio::net::TcpListener::bind(("::", 53)).await.map_err(io)?;
        let lab_tcp = lab.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = tcp.accept().await {
                let lab = lab_tcp.clone();
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while s.read_exact(&mut len).await.is_ok() {
                        let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut msg).await.is_err() {
                            return;
                        }
                        let state = LabState::load(&lab).ok();
                        let Some(r) = answer(&msg, |n| state.as_ref().and_then(|l| lookup(l, n))) else { return };
                        let mut out = (r.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&r);
                        if s.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut buf = [0u8; 512];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else { continue };
            let state = LabState::load(&lab).ok();
            if let Some(r) = answer(&buf[..n], |name| state.as_ref().and_then(|l| lookup(l, name))) {
                let _ = udp.send_to(&r, peer).await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_known_names_and_refuses_the_rest() {
        let ip = Ipv4Addr::new(10, 96, 1, 7);
        let look = |n: &str| (n == "db.shop.svc.cluster.local").then(|| vec![ip]);
        let r = answer(&query(7, "db.shop.svc.cluster.local"), look).unwrap();
        assert_eq!(parse_answer(7, &r), Some(ip));
        let r = answer(&query(8, "nope.shop.svc.cluster.local"), look).unwrap();
        assert_eq!(r[3] & 0x0f, 3, "NXDOMAIN");
        assert_eq!(parse_answer(8, &r), None);
        assert!(answer(&[1, 2, 3], look).is_none(), "garbage is dropped");
        let mut truncated = query(9, "db.shop.svc.cluster.local");
        truncated.truncate(20);
        assert!(answer(&truncated, look).is_none());
        let mut no_class = query(10, "db.shop.svc.cluster.local");
        no_class.truncate(no_class.len() - 2);
        assert!(answer(&no_class, look).is_none(), "a question cut after its type is dropped, not a panic");
    }
}
