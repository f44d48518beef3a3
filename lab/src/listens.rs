//! Which ports a lab pod's server really opens: the declared container
//! ports, plus what `lab.bulkhead.dev/listens` adds (a debug port nobody
//! declared), minus what `lab.bulkhead.dev/closed` removes (a declared port
//! the process never binds). That is how a lab builds the two kinds of
//! mismatch the exposure report finds from the pods' socket tables.

use crate::manifest::{PodSpec, PortSpec};

/// Ports served though not declared: "tcp/6060, udp/5000".
pub const LISTENS_ANNOTATION: &str = "lab.bulkhead.dev/listens";
/// Declared ports not served: "tcp/8081".
pub const CLOSED_ANNOTATION: &str = "lab.bulkhead.dev/closed";

fn parse(annotation: &str, s: &str) -> Result<Vec<PortSpec>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(|item| {
            let bad = || format!("{annotation}: {item:?}: expected tcp/PORT or udp/PORT");
            let (proto, port) = item.split_once('/').ok_or_else(bad)?;
            let udp = match proto.to_ascii_lowercase().as_str() {
                "tcp" => false,
                "udp" => true,
                _ => return Err(bad()),
            };
            let port = port.trim().parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
            Ok(PortSpec { port, udp })
        })
        .collect()
}

/// The ports `spec`'s server opens.
pub fn served(spec: &PodSpec) -> Result<Vec<PortSpec>, String> {
    let get = |a: &str| -> Result<Vec<PortSpec>, String> {
        let ctx = |e: String| format!("{}/{}: {e}", spec.namespace, spec.name);
        spec.annotations.get(a).map_or(Ok(Vec::new()), |s| parse(a, s).map_err(ctx))
    };
    let (extra, closed) = (get(LISTENS_ANNOTATION)?, get(CLOSED_ANNOTATION)?);
    let mut out: Vec<PortSpec> = spec.ports.iter().filter(|p| !closed.contains(p)).copied().collect();
    out.extend(extra.into_iter().filter(|p| !spec.ports.contains(p)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listens_adds_and_closed_removes_and_bad_items_are_named() {
        assert_eq!(
            parse(LISTENS_ANNOTATION, "tcp/6060, UDP/5000").unwrap(),
            vec![PortSpec { port: 6060, udp: false }, PortSpec { port: 5000, udp: true }]
        );
        for bad in ["6060", "sctp/1", "tcp/0", "tcp/x"] {
            assert!(parse(CLOSED_ANNOTATION, bad).unwrap_err().contains(bad), "{bad}");
        }
    }
}
