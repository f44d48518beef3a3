//! What the ports pods serve really speak, from the agents' classified
//! payload samples: per workload, L4 protocol and port, how many samples
//! said what, and a few of their fields (server names, methods). Bounded:
//! past `MAX_PORTS` ports new ones are counted, not kept, and each port keeps
//! at most `MAX_VALUES` values of each field.

use std::collections::{BTreeMap, BTreeSet};

use bulkhead_model::exposure::AppProtocol;
use serde::{Deserialize, Serialize};

use crate::Entity;

/// Ports kept; about 1 KiB each at worst.
pub const MAX_PORTS: usize = 100_000;
/// Distinct values kept per field per port.
pub const MAX_VALUES: usize = 8;

/// One classified sample, as the controller reads it off the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSeen {
    /// The workload serving the port.
    pub server: Entity,
    /// IANA L4 protocol number.
    pub protocol: u8,
    /// The port the workload received it on.
    pub port: u16,
    /// What the bytes were; `None` when not recognised.
    pub app: Option<AppProtocol>,
    /// The server sent them, not the client.
    pub from_server: bool,
    /// TLS server name or HTTP Host.
    pub host: String,
    /// TLS ALPN offers.
    pub alpn: Vec<String>,
    /// HTTP method, Redis or memcached command.
    pub method: String,
    /// When, nanoseconds since the epoch.
    pub time_ns: i64,
}

/// What one port's samples of one class said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heard {
    /// Samples from clients.
    pub client_samples: u64,
    /// Samples from the server.
    pub server_samples: u64,
    /// First and last sample, nanoseconds since the epoch.
    pub first_ns: i64,
    /// See `first_ns`.
    pub last_ns: i64,
    /// Server names (TLS SNI) and HTTP hosts asked for.
    pub hosts: BTreeSet<String>,
    /// ALPN protocols offered.
    pub alpn: BTreeSet<String>,
    /// Methods or commands.
    pub methods: BTreeSet<String>,
}

impl Heard {
    /// All samples.
    pub fn samples(&self) -> u64 {
        self.client_samples + self.server_samples
    }
}

/// Per port: by class (`None`: unrecognised bytes).
pub type PortApps = BTreeMap<Option<AppProtocol>, Heard>;

/// The store.
#[derive(Debug, Clone, Default)]
pub struct AppObservations {
    ports: BTreeMap<(Entity, u8, u16), PortApps>,
    /// Samples of ports past `MAX_PORTS`, not kept.
    pub overflow: u64,
}

fn keep(set: &mut BTreeSet<String>, v: &str) {
    if !v.is_empty() && set.len() < MAX_VALUES && !set.contains(v) {
        set.insert(v.to_string());
    }
}

impl AppObservations {
    /// Takes one sample.
    pub fn add(&mut self, s: &AppSeen) {
        let key = (s.server.clone(), s.protocol, s.port);
        if !self.ports.contains_key(&key) && self.ports.len() >= MAX_PORTS {
            self.overflow += 1;
            return;
        }
        let h = self.ports.entry(key).or_default().entry(s.app).or_default();
        if s.from_server {
            h.server_samples += 1;
        } else {
            h.client_samples += 1;
        }
        if h.first_ns == 0 || s.time_ns < h.first_ns {
            h.first_ns = s.time_ns;
        }
        h.last_ns = h.last_ns.max(s.time_ns);
        keep(&mut h.hosts, &s.host);
        keep(&mut h.methods, &s.method);
        for a in &s.alpn {
            keep(&mut h.alpn, a);
        }
    }

    /// What `server`'s `port` was heard speaking, samples at or after `since_ns` only.
    pub fn of(&self, server: &Entity, protocol: u8, port: u16, since_ns: i64) -> PortApps {
        self.ports
            .get(&(server.clone(), protocol, port))
            .map(|apps| apps.iter().filter(|(_, h)| h.last_ns >= since_ns).map(|(a, h)| (*a, h.clone())).collect())
            .unwrap_or_default()
    }

    /// How many ports are kept.
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Whether nothing was heard.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// What the port speaks: the class its server's own bytes said most, since
/// a client's bytes say only what the client hoped for; else the class the
/// clients said most (some servers' first bytes name nothing).
pub fn speaks(apps: &PortApps) -> Option<AppProtocol> {
    apps.iter()
        .filter_map(|(a, h)| a.map(|a| (a, (h.server_samples, h.client_samples))))
        .max_by(|x, y| x.1.cmp(&y.1).then_with(|| y.0.cmp(&x.0)))
        .map(|(a, _)| a)
}

/// Whether traffic classified as `heard` is what a port declaring
/// `declared` should carry. gRPC is HTTP/2 on the wire, and its marker is
/// in compressed headers no sample holds, so the two stand for each other.
pub fn consistent(declared: AppProtocol, heard: AppProtocol) -> bool {
    use AppProtocol::{Grpc, Http2};
    declared == heard || matches!((declared, heard), (Grpc, Http2) | (Http2, Grpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(app: Option<AppProtocol>, from_server: bool, host: &str, t: i64) -> AppSeen {
        AppSeen {
            server: Entity::Workload { namespace: "shop".into(), kind: "Deployment".into(), name: "web".into() },
            protocol: 6,
            port: 8080,
            app,
            from_server,
            host: host.into(),
            alpn: vec!["h2".into()],
            method: "GET".into(),
            time_ns: t,
        }
    }

    #[test]
    fn samples_add_up_per_class_and_the_majority_speaks() {
        let mut o = AppObservations::default();
        o.add(&seen(Some(AppProtocol::Tls), false, "a.shop", 10));
        o.add(&seen(Some(AppProtocol::Tls), true, "", 20));
        o.add(&seen(Some(AppProtocol::Http), false, "b.shop", 30));
        o.add(&seen(None, true, "", 40));
        let w = seen(None, false, "", 0).server;
        let apps = o.of(&w, 6, 8080, 0);
        let tls = &apps[&Some(AppProtocol::Tls)];
        assert_eq!((tls.client_samples, tls.server_samples, tls.first_ns, tls.last_ns), (1, 1, 10, 20));
        assert_eq!(tls.hosts.iter().collect::<Vec<_>>(), vec!["a.shop"]);
        assert_eq!(speaks(&apps), Some(AppProtocol::Tls));
        // The window drops what was last heard before it.
        let later = o.of(&w, 6, 8080, 25);
        assert_eq!(speaks(&later), Some(AppProtocol::Http));
        assert!(o.of(&w, 17, 8080, 0).is_empty());
        assert!(consistent(AppProtocol::Grpc, AppProtocol::Http2));
        // A gRPC client at an HTTP/1 server: the server's bytes say what the port speaks.
        let mut mixed = AppObservations::default();
        for _ in 0..3 {
            mixed.add(&seen(Some(AppProtocol::Http2), false, "", 50));
        }
        mixed.add(&seen(Some(AppProtocol::Http), true, "", 50));
        assert_eq!(speaks(&mixed.of(&w, 6, 8080, 0)), Some(AppProtocol::Http));
        assert!(!consistent(AppProtocol::Http, AppProtocol::Tls));
    }

    #[test]
    fn fields_and_ports_are_bounded() {
        let mut o = AppObservations::default();
        for i in 0..(MAX_VALUES + 5) {
            o.add(&seen(Some(AppProtocol::Http), false, &format!("h{i}.shop"), 1));
        }
        let w = seen(None, false, "", 0).server;
        assert_eq!(o.of(&w, 6, 8080, 0)[&Some(AppProtocol::Http)].hosts.len(), MAX_VALUES);
        let mut s = seen(Some(AppProtocol::Http), false, "", 1);
        for port in 0..MAX_PORTS as u32 + 3 {
            s.port = (port % 65_536) as u16;
            s.protocol = if port < 65_536 { 6 } else { 17 };
            o.add(&s);
        }
        assert_eq!((o.len(), o.overflow), (MAX_PORTS, 3));
    }
}
