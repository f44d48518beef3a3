//! The words of exposure discovery: how far a port is exposed, what exposes
//! it, the application protocols Bulkhead recognises, and the findings it
//! reports. The agent's classifier, the controller, the API and the console
//! all use these names.

use serde::{Deserialize, Serialize};

use crate::codes::{CodeError, coded_enum};

coded_enum!(
    /// How far a port is exposed, the widest first.
    ExposureClass: u8 {
        /// Reachable from outside the cluster: a LoadBalancer, NodePort,
        /// external IP, host port or host-network pod, or the backend of an
        /// Ingress or Gateway route.
        InternetFacing = 0 => "internet_facing",
        /// A ClusterIP service or a pod port: reachable from inside the cluster.
        ClusterInternal = 1 => "cluster_internal",
        /// A headless service: clients reach the pods directly by DNS.
        Headless = 2 => "headless",
        /// An ExternalName service: a DNS alias, nothing in the cluster serves it.
        ExternalName = 3 => "external_name",
    }
);

coded_enum!(
    /// What makes a port reachable from outside the cluster.
    Exposer: u8 {
        /// A LoadBalancer service's ingress address.
        LoadBalancer = 0 => "load_balancer",
        /// A NodePort on every node.
        NodePort = 1 => "node_port",
        /// A service's `externalIPs`.
        ExternalIp = 2 => "external_ip",
        /// A container's `hostPort`.
        HostPort = 3 => "host_port",
        /// A pod on the host network (no pod policy applies to it).
        HostNetwork = 4 => "host_network",
        /// A backend of an Ingress.
        Ingress = 5 => "ingress",
        /// A backend of a Gateway API route (HTTPRoute, GRPCRoute).
        Route = 6 => "route",
    }
);

coded_enum!(
    /// The application protocols recognised from a port's declaration (and,
    /// from observed traffic, by the agent's classifier).
    AppProtocol: u8 {
        /// HTTP/1.x.
        Http = 1 => "http",
        /// HTTP/2 in clear text (h2c).
        Http2 = 2 => "http2",
        /// gRPC (HTTP/2 with application/grpc).
        Grpc = 3 => "grpc",
        /// TLS (HTTPS and anything else inside it).
        Tls = 4 => "tls",
        /// DNS.
        Dns = 5 => "dns",
        /// Redis (RESP).
        Redis = 6 => "redis",
        /// MySQL or MariaDB.
        Mysql = 7 => "mysql",
        /// PostgreSQL.
        Postgres = 8 => "postgres",
        /// MongoDB.
        Mongodb = 9 => "mongodb",
        /// Apache Kafka.
        Kafka = 10 => "kafka",
        /// AMQP (RabbitMQ…).
        Amqp = 11 => "amqp",
        /// memcached.
        Memcached = 12 => "memcached",
        /// SSH.
        Ssh = 13 => "ssh",
    }
);

coded_enum!(
    /// What an exposure finding reports.
    FindingKind: u8 {
        /// A database-class port reachable from the world or from every namespace.
        DatabaseExposed = 0 => "database_exposed",
        /// A port reachable from namespaces of another tenant.
        CrossTenant = 1 => "cross_tenant",
        /// Sources a policy allows that never connected in the window: where to tighten.
        UnusedPath = 2 => "unused_path",
        /// Traffic to a port no container declares.
        Undeclared = 3 => "undeclared",
        /// An internet-facing port that no ingress policy selects.
        NoPolicy = 4 => "no_policy",
        /// A port whose traffic is another protocol than it declares.
        ProtocolMismatch = 5 => "protocol_mismatch",
        /// A pod listens on a port no container declares.
        ListeningUndeclared = 6 => "listening_undeclared",
        /// A declared (or service-targeted) port some of its pods do not listen on.
        NotListening = 7 => "not_listening",
    }
);

/// Names that hint at a protocol, as `appProtocol` values or as the parts
/// of a port name (`http-web`, `tcp-redis`, `grpc`…), the Istio convention.
const HINTS: &[(&str, AppProtocol)] = &[
    ("http", AppProtocol::Http),
    ("http1", AppProtocol::Http),
    ("web", AppProtocol::Http),
    ("h2c", AppProtocol::Http2),
    ("http2", AppProtocol::Http2),
    ("kubernetes.io/h2c", AppProtocol::Http2),
    ("grpc", AppProtocol::Grpc),
    ("grpc-web", AppProtocol::Grpc),
    ("https", AppProtocol::Tls),
    ("tls", AppProtocol::Tls),
    ("kubernetes.io/wss", AppProtocol::Tls),
    ("kubernetes.io/ws", AppProtocol::Http),
    ("dns", AppProtocol::Dns),
    ("redis", AppProtocol::Redis),
    ("mysql", AppProtocol::Mysql),
    ("mariadb", AppProtocol::Mysql),
    ("postgres", AppProtocol::Postgres),
    ("postgresql", AppProtocol::Postgres),
    ("pg", AppProtocol::Postgres),
    ("mongo", AppProtocol::Mongodb),
    ("mongodb", AppProtocol::Mongodb),
    ("kafka", AppProtocol::Kafka),
    ("amqp", AppProtocol::Amqp),
    ("rabbitmq", AppProtocol::Amqp),
    ("memcache", AppProtocol::Memcached),
    ("memcached", AppProtocol::Memcached),
    ("ssh", AppProtocol::Ssh),
];

/// The IANA-registered (or de facto) ports of the protocols, the last resort
/// of a hint when a port is neither named nor classified.
const WELL_KNOWN: &[(u16, AppProtocol)] = &[
    (22, AppProtocol::Ssh),
    (53, AppProtocol::Dns),
    (80, AppProtocol::Http),
    (443, AppProtocol::Tls),
    (3306, AppProtocol::Mysql),
    (5432, AppProtocol::Postgres),
    (5672, AppProtocol::Amqp),
    (6379, AppProtocol::Redis),
    (9092, AppProtocol::Kafka),
    (11211, AppProtocol::Memcached),
    (27017, AppProtocol::Mongodb),
];

impl AppProtocol {
    /// Whether a port speaking it holds data an attacker wants: these are
    /// never meant to be reachable from everywhere.
    pub const fn is_database(self) -> bool {
        matches!(self, Self::Redis | Self::Mysql | Self::Postgres | Self::Mongodb | Self::Memcached)
    }

    /// The protocol a declaration hints at: `appProtocol` first, then each
    /// `-`-separated part of the port name. `None` when neither says.
    pub fn hinted(port_name: &str, app_protocol: Option<&str>) -> Option<Self> {
        let lookup = |s: &str| HINTS.iter().find(|(n, _)| n.eq_ignore_ascii_case(s)).map(|(_, p)| *p);
        if let Some(p) = app_protocol.and_then(lookup) {
            return Some(p);
        }
        lookup(port_name).or_else(|| port_name.split('-').find_map(lookup))
    }

    /// The protocol usually served on `port`, if it is one of the well-known ones.
    pub fn well_known(port: u16) -> Option<Self> {
        WELL_KNOWN.iter().find(|(p, _)| *p == port).map(|(_, a)| *a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_read_app_protocol_before_the_port_name() {
        assert_eq!(AppProtocol::hinted("tcp-redis", None), Some(AppProtocol::Redis));
        assert_eq!(AppProtocol::hinted("http-web", None), Some(AppProtocol::Http));
        assert_eq!(AppProtocol::hinted("http", Some("kubernetes.io/h2c")), Some(AppProtocol::Http2));
        assert_eq!(AppProtocol::hinted("metrics", None), None);
        assert_eq!(AppProtocol::hinted("", Some("postgresql")), Some(AppProtocol::Postgres));
        assert!(AppProtocol::Redis.is_database() && !AppProtocol::Http.is_database());
        assert_eq!(AppProtocol::well_known(6379), Some(AppProtocol::Redis));
        assert_eq!("internet_facing".parse::<ExposureClass>().unwrap(), ExposureClass::InternetFacing);
    }
}
