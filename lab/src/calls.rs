//! Traffic a lab pod generates, declared on its Deployment (or Pod):
//! `lab.bulkhead.dev/calls: "svc:port[/proto][@app], svc.ns:port, …"`, where
//! `@app` (`@http`, `@tls`, `@redis`…) makes the call speak that protocol's
//! opening bytes instead of only reading the server's answer. Each target
//! is resolved through the lab DNS from inside the pod, as an application
//! would, and called every `lab.bulkhead.dev/call-interval` (default 1s).
//! Any public microservice topology runs from its manifests plus this.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bulkhead_model::exposure::AppProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::speak;

/// The calls annotation.
pub const CALLS_ANNOTATION: &str = "lab.bulkhead.dev/calls";
/// The interval annotation.
pub const INTERVAL_ANNOTATION: &str = "lab.bulkhead.dev/call-interval";

/// One declared call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Service name as written ("svc", "svc.ns" or a full name).
    pub host: String,
    /// Service port.
    pub port: u16,
    /// UDP instead of TCP.
    pub udp: bool,
    /// The application protocol the call speaks, if any.
    pub speaks: Option<AppProtocol>,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, if self.udp { "UDP" } else { "TCP" })?;
        match self.speaks {
            Some(a) => write!(f, "@{a}"),
            None => Ok(()),
        }
    }
}

/// Parses the calls annotation.
pub fn parse_calls(s: &str) -> Result<Vec<Call>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (item_l4, speaks) = match item.rsplit_once('@') {
            Some((l4, app)) => (l4, Some(app.parse::<AppProtocol>().map_err(|e| format!("{item:?}: {e}"))?)),
            None => (item, None),
        };
        let (host, rest) = item_l4.rsplit_once(':').ok_or_else(|| format!("{item:?}: expected svc:port[/proto]"))?;
        let (port, proto) = rest.split_once('/').unwrap_or((rest, "TCP"));
        let port: u16 =
            port.parse().ok().filter(|p| *p > 0).ok_or_else(|| format!("{item:?}: port must be 1-65535"))?;
        let udp = match proto.to_ascii_uppercase().as_str() {
            "TCP" => false,
            "UDP" => true,
            other => return Err(format!("{item:?}: protocol {other:?} is not TCP or UDP")),
        };
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        if !valid {
            return Err(format!("{item:?}: {host:?} is not a service name"));
        }
        out.push(Call { host: host.to_ascii_lowercase(), port, udp, speaks });
    }
    Ok(out)
}

/// Parses "1s", "500ms", "2m" (at least 10 ms).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("{s:?}: expected e.g. 1s or 500ms"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        other => return Err(format!("{s:?}: unknown unit {other:?}; use ms, s or m")),
    };
    if d < Duration::from_millis(10) {
        return Err(format!("{s:?}: at least 10ms"));
    }
    Ok(d)
}

async fn once(call: &Call, namespace: &str) -> Result<(), String> {
    let timeout = Duration::from_secs(1);
    let ip = crate::dns::resolve(&call.host, namespace, timeout).await.ok_or("name not resolved")?;
    let addr = SocketAddr::new(IpAddr::V4(ip), call.port);
    if call.udp {
        let sock = tokio::net::UdpSocket::bind(("0.0.0.0", 0)).await.map_err(|e| e.to_string())?;
        sock.connect(addr).await.map_err(|e| e.to_string())?;
        let msg = match call.speaks {
            Some(p) => speak::opener(p, &call.host),
            None => b"call\n".to_vec(),
        };
        sock.send(&msg).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        tokio::time::timeout(timeout, sock.recv(&mut buf))
            .await
            .map_err(|_| "no answer")?
            .map_err(|e| e.to_string())?;
    } else {
        let mut s = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out")?
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        // A client-first protocol's opener goes before reading; a server-first one's after the greeting.
        let client_first = call.speaks.filter(|p| !speak::server_first(*p));
        if let Some(p) = client_first {
            s.write_all(&speak::opener(p, &call.host)).await.map_err(|e| e.to_string())?;
        }
        tokio::time::timeout(timeout, s.read(&mut buf)).await.map_err(|_| "no answer")?.map_err(|e| e.to_string())?;
        if let Some(p) = call.speaks.filter(|p| speak::server_first(*p)) {
            s.write_all(&speak::opener(p, &call.host)).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Calls every target at `interval`, forever, logging successes and
/// failures per target every ten seconds.
pub async fn run(calls: Vec<Call>, namespace: String, interval: Duration) {
    for call in calls {
        let namespace = namespace.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed, mut last_error) = (0u64, 0u64, String::new());
            let mut tick = tokio::time::interval(interval);
            let mut report = tokio::time::Instant::now();
            loop {
                tick.tick().await;
                match once(&call, &namespace).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        failed += 1;
                        last_error = e;
                    }
                }
                if report.elapsed() >= Duration::from_secs(10) {
                    println!("calls {call}: ok {ok} failed {failed} {last_error}");
                    report = tokio::time::Instant::now();
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_annotation_and_refuses_nonsense() {
        let c = parse_calls("cart:7070, redis-cart.shop:6379/tcp@redis ,dns.kube-system:53/UDP").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[1],
            Call { host: "redis-cart.shop".into(), port: 6379, udp: false, speaks: Some(AppProtocol::Redis) }
        );
        assert_eq!(c[1].to_string(), "redis-cart.shop:6379/TCP@redis");
        assert!(c[2].udp && c[2].speaks.is_none());
        for bad in ["cart", "cart:0", "cart:70000", "cart:80/icmp", ":80", "a b:80", "a..b:80", "web:80@gopher"] {
            assert!(parse_calls(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("1ms").is_err() && parse_interval("fast").is_err());
    }
}
