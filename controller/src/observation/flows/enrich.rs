//! An agent's wire flow into a graph flow record, named with the inventory
//! as it was at flow time. Only connection starts (new connections and
//! denied attempts) become records; closes and counter updates are not
//! connections.

use std::net::IpAddr;

use bulkhead_api::agent::v1 as pb;
use bulkhead_api::v1::convert::{self, ConvertError};
use bulkhead_graph::apps::AppSeen;
use bulkhead_graph::{Entity, FlowRecord, ServiceRef};
use bulkhead_model::{EventType, Verdict};

use super::history::History;

/// Why a wire flow could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrichError {
    /// A field did not parse.
    #[error("flow from node {node}: field {field}: {value:?} is not valid")]
    Field {
        /// Reporting node.
        node: String,
        /// The field.
        field: &'static str,
        /// What it held.
        value: String,
    },
}

fn field<T: std::str::FromStr>(f: &pb::Flow, name: &'static str, v: &str) -> Result<T, EnrichError> {
    v.parse().map_err(|_| EnrichError::Field { node: f.node.clone(), field: name, value: v.to_string() })
}

/// A wire enumeration, decoded once here: unknown or unset values are errors.
fn code<T>(
    f: &pb::Flow,
    decode: fn(i32, &str) -> Result<T, ConvertError>,
    v: i32,
    name: &'static str,
) -> Result<T, EnrichError> {
    decode(v, name).map_err(|_| EnrichError::Field { node: f.node.clone(), field: name, value: v.to_string() })
}

/// The IANA number of the agent's protocol name.
fn protocol(f: &pb::Flow) -> Result<u8, EnrichError> {
    bulkhead_model::proto::parse(&f.protocol).ok_or_else(|| EnrichError::Field {
        node: f.node.clone(),
        field: "protocol",
        value: f.protocol.clone(),
    })
}

/// A payload sample's class, named with the workload serving the port;
/// `None` when `f` is not a sample. Samples are taken at the serving pod, so
/// the destination is that pod's own address and port.
pub fn app_seen(f: &pb::Flow, history: &History) -> Result<Option<AppSeen>, EnrichError> {
    let event = code(f, convert::event_type, f.event, "event")?;
    if event != EventType::Sample {
        return Ok(None);
    }
    let Some(app) = &f.app else {
        return Err(EnrichError::Field { node: f.node.clone(), field: "app", value: "absent".into() });
    };
    let class = match app.protocol {
        Some(v) => Some(code(f, convert::app_protocol, v, "app.protocol")?),
        None => None,
    };
    let dst_ip: IpAddr = field(f, "dst_ip", &f.dst_ip)?;
    let port = u16::try_from(f.dst_port).map_err(|_| EnrichError::Field {
        node: f.node.clone(),
        field: "dst_port",
        value: f.dst_port.to_string(),
    })?;
    let named = match &f.destination {
        Some(w) if !w.pod.is_empty() && !w.namespace.is_empty() => format!("{}/{}", w.namespace, w.pod),
        _ => String::new(),
    };
    let (server, _) = history.entity_named(dst_ip, f.time_unix_nanos, &named);
    let host = if app.sni.is_empty() { app.host.clone() } else { app.sni.clone() };
    Ok(Some(AppSeen {
        server,
        protocol: protocol(f)?,
        port,
        app: class,
        from_server: app.from_server,
        host,
        alpn: app.alpn.clone(),
        method: app.method.clone(),
        time_ns: f.time_unix_nanos,
    }))
}

/// The record for `f`, `None` when it is not a connection start.
pub fn enrich(f: &pb::Flow, history: &History) -> Result<Option<FlowRecord>, EnrichError> {
    let event = code(f, convert::event_type, f.event, "event")?;
    if !matches!(event, EventType::New | EventType::Denied) || f.is_reply {
        return Ok(None);
    }
    let observation = code(f, convert::direction, f.direction, "direction")?;
    let verdict = code(f, convert::verdict, f.verdict, "verdict")?;
    let reason = code(f, convert::reason, f.drop_reason, "drop_reason")?;
    let src_ip: IpAddr = field(f, "src_ip", &f.src_ip)?;
    let dst_ip: IpAddr = field(f, "dst_ip", &f.dst_ip)?;
    let port = |v: u32, name| {
        u16::try_from(v).map_err(|_| EnrichError::Field { node: f.node.clone(), field: name, value: v.to_string() })
    };
    let (src_port, dst_port) = (port(f.src_port, "src_port")?, port(f.dst_port, "dst_port")?);
    let t = f.time_unix_nanos;
    let protocol = protocol(f)?;
    let named = |w: &Option<pb::Workload>| match w {
        Some(w) if !w.pod.is_empty() && !w.namespace.is_empty() => format!("{}/{}", w.namespace, w.pod),
        _ => String::new(),
    };
    let (src, src_pod) = history.entity_named(src_ip, t, &named(&f.source));
    let (dst, dst_pod, service) = match history.service(dst_ip) {
        Some((namespace, name)) => (
            Entity::Service { namespace: namespace.clone(), name: name.clone() },
            String::new(),
            Some(ServiceRef { namespace: namespace.clone(), name: name.clone(), port: dst_port }),
        ),
        None => {
            let (e, pod) = history.entity_named(dst_ip, t, &named(&f.destination));
            (e, pod, None)
        }
    };
    Ok(Some(FlowRecord {
        time_ns: t,
        observation,
        node: f.node.clone(),
        src,
        dst,
        src_ip,
        src_port,
        dst_ip,
        dst_port,
        protocol,
        backend: service.as_ref().and_then(|_| history.backend(dst_ip, protocol, dst_port)),
        service,
        verdict,
        bytes: f.bytes_fwd + f.bytes_rev,
        src_pod,
        dst_pod,
        rule: (!f.rule_name.is_empty()).then(|| f.rule_name.as_str().into()),
        drop_reason: (verdict != Verdict::Forwarded && reason.is_drop()).then_some(reason),
        packets: f.packets_fwd + f.packets_rev,
    }))
}
