//! Traffic a lab pod generates, declared on its Deployment (or Pod):
//! `lab.bulkhead.dev/calls: "svc:port[/proto], svc.ns:port, …"`. Each target
//! is resolved through the lab DNS from inside the pod, as an application
//! would, and called every `lab.bulkhead.dev/call-interval` (default 1s).
//! Any public microservice topology runs from its manifests plus this.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}/{}", self.host, self.port, if self.udp { "UDP" } else { "TCP" })
    }
}

/// Parses the calls annotation.
pub fn parse_calls(s: &str) -> Result<Vec<Call>, String> {
    let mut out = Vec::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (host, rest) = item.rsplit_once(':').ok_or_else(|| format!("{item:?}: expected svc:port[/proto]"))?;
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
        out.push(Call { host: host.to_ascii_lowercase(), port, udp });
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
        sock.send(b"call\n").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        tokio::time::timeout(timeout, sock.recv(&mut buf))
            .await
            .map_err(|_| "no answer")?
            .map_err(|e| e.to_string())?;
    } else {
        use tokio::io::AsyncReadExt;
        let mut s = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out")?
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 64];
        tokio::time::timeout(timeout, s.read(&mut buf)).await.map_err(|_| "no answer")?.map_err(|e| e.to_string())?;
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
        let c = parse_calls("cart:7070, redis-cart.shop:6379/tcp ,dns.kube-system:53/UDP").unwrap();
        assert_eq!(c.len(), 3);
        assert_eq!(c[1], Call { host: "redis-cart.shop".into(), port: 6379, udp: false });
        assert!(c[2].udp);
        for bad in ["cart", "cart:0", "cart:70000", "cart:80/icmp", ":80", "a b:80", "a..b:80"] {
            assert!(parse_calls(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_interval("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_interval("2").unwrap(), Duration::from_secs(2));
        assert!(parse_interval("1ms").is_err() && parse_interval("fast").is_err());
    }
}
