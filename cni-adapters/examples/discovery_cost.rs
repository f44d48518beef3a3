//! What finding pods from their addresses costs, against the baseline of
//! being told each pod's namespace, in one run on the same node: N pods on
//! veths into a throwaway node namespace, resolved both ways from inside
//! it. Prints one JSON document. Needs root.
//!
//! Usage: `cargo run --release -p bulkhead-cni --example discovery_cost -- [PODS] [ROUNDS]`

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bulkhead_cni::{HostInterfaceResolver, NetnsIndex, PodNetwork, VethPeerResolver, discover};

/// The namespaces this run made, deleted on drop (also on panic).
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in self.0.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() { Ok(()) } else { Err(format!("ip {args:?}: {}", String::from_utf8_lossy(&out.stderr))) }
}

fn addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 251, (i / 250) as u8, (i % 250 + 1) as u8)
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let pods: usize = args.next().map_or(Ok(200), |a| a.parse()).map_err(|e| format!("PODS: {e}"))?;
    let rounds: usize = args.next().map_or(Ok(5), |a| a.parse()).map_err(|e| format!("ROUNDS: {e}"))?;
    if pods == 0 || pods > 60_000 || rounds == 0 {
        return Err("PODS must be 1..=60000 and ROUNDS at least 1".into());
    }
    let tag = format!("bhdc{}", std::process::id());
    let node = format!("{tag}-node");
    let mut made = Namespaces(Vec::new());
    made.0.push(node.clone());
    ip(&["netns", "add", &node])?;
    eprintln!("discovery_cost: wiring {pods} pods");
    for i in 0..pods {
        let pod = format!("{tag}-p{i}");
        made.0.push(pod.clone());
        ip(&["netns", "add", &pod])?;
        let host = format!("v{i}");
        ip(&["-n", &node, "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", &pod])?;
        ip(&["-n", &pod, "addr", "add", &format!("{}/16", addr(i)), "dev", "eth0"])?;
        ip(&["-n", &pod, "link", "set", "eth0", "up"])?;
        ip(&["-n", &node, "link", "set", &host, "up"])?;
    }
    let dirs = vec![PathBuf::from("/var/run/netns")];
    let node_path = PathBuf::from(format!("/var/run/netns/{node}"));
    let measured = bulkhead_cni::in_netns(&node_path, || -> Result<_, String> {
        let (mut told, mut found, mut scans, mut one) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            // Baseline: each pod's namespace given, as the annotation did.
            let started = Instant::now();
            for i in 0..pods {
                let pod = PodNetwork {
                    netns: Some(PathBuf::from(format!("/var/run/netns/{tag}-p{i}"))),
                    ip: Some(IpAddr::V4(addr(i))),
                    pod_ifname: "eth0".into(),
                };
                VethPeerResolver.resolve(&pod).map_err(|e| e.to_string())?;
            }
            told.push(started.elapsed());
            // Discovery: one scan per apply, then each pod from its address.
            let started = Instant::now();
            let index = NetnsIndex::scan(&dirs).map_err(|e| e.to_string())?;
            scans.push(started.elapsed());
            for i in 0..pods {
                let pod = PodNetwork { netns: None, ip: None, pod_ifname: "eth0".into() };
                discover(&pod, &[IpAddr::V4(addr(i))], &index).map_err(|e| e.to_string())?;
            }
            found.push(started.elapsed());
            // One new pod: the scan is its whole extra cost.
            let started = Instant::now();
            let index = NetnsIndex::scan(&dirs).map_err(|e| e.to_string())?;
            let pod = PodNetwork { netns: None, ip: None, pod_ifname: "eth0".into() };
            discover(&pod, &[IpAddr::V4(addr(pods / 2))], &index).map_err(|e| e.to_string())?;
            one.push(started.elapsed());
        }
        Ok((median(told), median(found), median(scans), median(one)))
    })
    .map_err(|e| e.to_string())??;
    let (told, found, scan, one) = measured;
    let doc = serde_json::json!({
        "pods": pods,
        "rounds": rounds,
        "told_all_ms": told,
        "discovered_all_ms": found,
        "scan_ms": scan,
        "one_new_pod_ms": one,
        "ratio_all": found / told,
        "per_pod_told_ms": told / pods as f64,
        "per_pod_discovered_ms": found / pods as f64,
    });
    println!("{doc:#}");
    Ok(())
}
