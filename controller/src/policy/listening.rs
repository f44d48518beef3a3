//! The listening sockets an agent read from its pods, as the exposure
//! report takes them. Entries the agent should never send (another
//! protocol, an address that does not parse) are dropped with a warning,
//! never guessed at.

use std::net::IpAddr;

use bulkhead_api::agent::v1 as agent_pb;
use bulkhead_graph::exposure::{PodSockets, Sockets};
use bulkhead_policy::ports::Protocol;

/// The pods of `status` whose sockets were read, by "namespace/pod".
pub fn from_status(node: &str, status: &agent_pb::AgentStatus) -> Sockets {
    let mut out = Sockets::new();
    for e in status.endpoints.iter().filter(|e| e.listeners_scanned_ns > 0) {
        let mut s = PodSockets { read_ns: e.listeners_scanned_ns, ..PodSockets::default() };
        for l in &e.listeners {
            let protocol = u8::try_from(l.protocol).ok().and_then(Protocol::from_number);
            let (Some(protocol), Ok(addr), Ok(port)) = (protocol, l.address.parse::<IpAddr>(), u16::try_from(l.port))
            else {
                tracing::warn!(node, pod = %e.pod, listener = ?l, "agent reported a listener that does not parse");
                continue;
            };
            let loopback = match addr {
                IpAddr::V4(a) => a.is_loopback(),
                IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
            };
            if loopback {
                s.loopback.insert((protocol, port));
            } else {
                s.open.insert((protocol, port));
            }
        }
        // A port open on some address is open, whatever else binds loopback.
        s.loopback.retain(|p| !s.open.contains(p));
        out.insert(e.pod.clone(), s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_and_pod_addresses_are_open_loopback_is_apart_and_junk_is_dropped() {
        let l = |protocol, address: &str, port| agent_pb::Listener { protocol, address: address.into(), port };
        let status = agent_pb::AgentStatus {
            endpoints: vec![
                agent_pb::EndpointStatus {
                    pod: "shop/web-0".into(),
                    listeners_scanned_ns: 5,
                    listeners: vec![
                        l(6, "0.0.0.0", 8080),
                        l(6, "::1", 9090),
                        l(17, "::ffff:127.0.0.1", 53),
                        l(6, "127.0.0.1", 8080),
                        l(6, "10.0.0.1", 7000),
                        l(1, "0.0.0.0", 1),
                        l(6, "nonsense", 2),
                        l(6, "0.0.0.0", 70_000),
                    ],
                    ..Default::default()
                },
                agent_pb::EndpointStatus { pod: "shop/unread".into(), ..Default::default() },
            ],
            ..Default::default()
        };
        let s = from_status("n1", &status);
        assert_eq!(s.keys().collect::<Vec<_>>(), vec!["shop/web-0"]);
        let web = &s["shop/web-0"];
        assert_eq!(web.read_ns, 5);
        assert_eq!(web.open.iter().copied().collect::<Vec<_>>(), vec![(Protocol::Tcp, 7000), (Protocol::Tcp, 8080)]);
        assert_eq!(web.loopback.iter().copied().collect::<Vec<_>>(), vec![(Protocol::Tcp, 9090), (Protocol::Udp, 53)]);
    }
}
