//! Allow and deny by identity, port, port range and CIDR; conntrack replies;
//! audit and learn modes; IPv6; cross-node; under both bridge and ptp.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::{Lab, netpol, pod, pod_in_mode};

/// a (client, node 1), b (server, node 2), c (other namespace, node 1).
fn pods() -> String {
    let b = ["80", "81", "8080", "8081", "8082", "9000/UDP", "9001/UDP"];
    [pod("x", "a", "a", &["80"]), pod("x", "b", "b", &b), pod("y", "c", "c", &["80"])].concat()
}

fn rules() -> String {
    [
        netpol("b-from-a", "b", "ingress", &["{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}, {port: 8080, endPort: 8081}, {protocol: UDP, port: 9000}]}"]),
        netpol("a-to-b-only", "a", "egress", &["{to: [{podSelector: {matchLabels: {app: b}}}]}"]),
        netpol("a-no-ingress", "a", "ingress", &[]),
    ].concat()
}

fn identity_port_range_and_replies(cni: &str) {
    let lab = Lab::up(&format!("pol-{cni}"), cni, 2, &format!("{}{}", pods(), rules()));
    let b = "x/b";
    assert_ne!(
        lab.state.pod("x/a").unwrap().node,
        lab.state.pod(b).unwrap().node,
        "a and b must be on different nodes"
    );

    // identity + port, port range, and the ports around it
    for (port, want) in [(80, true), (81, false), (8080, true), (8081, true), (8082, false)] {
        assert_eq!(lab.probe("x/a", b, port, false, false), want, "a -> b:{port}/TCP over {cni}");
    }
    // UDP by port
    assert!(lab.probe("x/a", b, 9000, true, false), "a -> b:9000/UDP");
    assert!(!lab.probe("x/a", b, 9001, true, false), "a -> b:9001/UDP");
    // another identity is denied
    assert!(!lab.probe("y/c", b, 80, false, false), "c -> b:80");
    // a's egress is isolated to b, and its ingress admits nobody: the replies
    // above came back through conntrack, and c cannot reach a
    assert!(!lab.probe("x/a", "y/c", 80, false, false), "a -> c:80 (egress isolated)");
    assert!(!lab.probe("y/c", "x/a", 80, false, false), "c -> a:80 (ingress isolated)");
    // IPv6, same rules
    assert!(lab.probe("x/a", b, 80, false, true), "a -> b:80 over IPv6");
    assert!(!lab.probe("x/a", b, 81, false, true), "a -> b:81 over IPv6");
    assert!(!lab.probe("y/c", b, 80, false, true), "c -> b:80 over IPv6");

    // every decision is a flow naming workloads, rule and reason
    let allowed = lab.wait_flow("a->b:8081 allowed at b", |f| {
        f.dst_port == 8081 && f.verdict == "forwarded" && f.direction == "ingress" && f.event == "new"
    });
    assert_eq!(allowed.rule_name, "x/b-from-a#0");
    assert_eq!(allowed.source.as_ref().unwrap().pod, "a");
    assert_eq!(allowed.destination.as_ref().unwrap().labels.get("app").map(String::as_str), Some("b"));
    let denied = lab.wait_flow("c->b denied", |f| {
        f.dst_port == 80 && f.verdict == "dropped" && f.source.as_ref().is_some_and(|s| s.pod == "c")
    });
    assert_eq!(denied.drop_reason, "default_deny");
    assert_eq!(denied.event, "denied");
    let closed =
        lab.wait_flow("a->b:80 closed with counters", |f| f.event == "closed" && f.dst_port == 80 && f.packets_rev > 0);
    assert!(closed.bytes_fwd > 0 && closed.bytes_rev > 0);
}

#[test]
fn identity_port_range_and_replies_on_bridge() {
    identity_port_range_and_replies("bridge");
}

#[test]
fn identity_port_range_and_replies_on_ptp() {
    identity_port_range_and_replies("ptp");
}

fn cidr_pods() -> String {
    [
        pod("x", "web", "web", &["80", "81"]),
        netpol(
            "web-from-partner",
            "web",
            "ingress",
            &["{from: [{ipBlock: {cidr: 172.30.0.192/26}}], ports: [{port: 80}]}"],
        ),
    ]
    .concat()
}

/// A host outside the cluster, on the lab fabric, removed on drop.
struct External {
    netns: String,
}

impl External {
    fn attach(lab: &Lab, last_octet: u8) -> External {
        let netns = format!("bh_{}_ext{last_octet}", lab.name);
        let fabric = bulkhead_lab::lifecycle::fabric_netns(&lab.name);
        let ext = External { netns: netns.clone() };
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let port = format!("x{last_octet}");
        ip(&["netns", "add", &netns]);
        ip(&["-n", &fabric, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &netns]);
        ip(&["-n", &fabric, "link", "set", &port, "master", "fab0", "up"]);
        ip(&["-n", &netns, "addr", "add", &format!("172.30.0.{last_octet}/24"), "dev", "eth0"]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "route", "add", "10.244.0.0/16", "via", "172.30.0.1"]);
        ext
    }

    fn connects(&self, addr: SocketAddr) -> bool {
        let path = bulkhead_lab::netns::path(&self.netns);
        std::thread::spawn(move || {
            bulkhead_lab::netns::enter(&path).unwrap();
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(800)).is_ok()
        })
        .join()
        .unwrap()
    }
}

impl Drop for External {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

#[test]
fn cidr_rules_match_addresses_outside_the_cluster() {
    let lab = Lab::up("cidr", "bridge", 1, &cidr_pods());
    let web = lab.ip("x/web", false);
    let partner = External::attach(&lab, 200);
    let stranger = External::attach(&lab, 100);
    assert!(partner.connects(SocketAddr::new(web, 80)), "partner inside 172.30.0.192/26 -> web:80");
    assert!(!partner.connects(SocketAddr::new(web, 81)), "partner -> web:81 (port not allowed)");
    assert!(!stranger.connects(SocketAddr::new(web, 80)), "stranger outside the CIDR -> web:80");
    let f =
        lab.wait_flow("partner flow", |f| f.src_ip == "172.30.0.200" && f.dst_port == 80 && f.verdict == "forwarded");
    assert_eq!(f.rule_name, "x/web-from-partner#0");
    let source = f.source.as_ref().unwrap();
    assert!(source.identity >= 256 && source.pod.is_empty(), "an identity of the partner CIDR: {source:?}");
}

fn modes() -> String {
    [
        pod("x", "a", "a", &["80"]),
        pod_in_mode("x", "b", "b", &["80"], Some("audit")),
        pod_in_mode("x", "l", "l", &["80"], Some("learn")),
        netpol("b-from-nobody", "b", "ingress", &["{from: [{podSelector: {matchLabels: {app: nobody}}}]}"]),
    ]
    .concat()
}

#[test]
fn audit_mode_forwards_and_reports_would_drop_and_learn_mode_observes() {
    let lab = Lab::up("modes", "bridge", 1, &modes());
    assert!(lab.probe("x/a", "x/b", 80, false, false), "audit mode forwards");
    let f = lab.wait_flow("audit flow", |f| f.verdict == "audit" && f.dst_port == 80);
    assert_eq!(f.drop_reason, "default_deny");
    assert_eq!(f.destination.as_ref().unwrap().pod, "b");
    // l is in learn mode: observed without a decision
    assert!(lab.probe("x/a", "x/l", 80, false, false));
    let f = lab.wait_flow("learn flow", |f| {
        f.destination.as_ref().is_some_and(|d| d.pod == "l") && f.direction == "ingress" && f.event == "new"
    });
    assert_eq!(f.verdict, "forwarded");
    assert!(lab.counter("packets_audit") > 0);
}

#[test]
fn metrics_are_served_on_each_node() {
    let lab = Lab::up("metrics", "bridge", 1, &modes());
    assert!(lab.probe("x/a", "x/b", 80, false, false));
    let node = &lab.state.nodes[0].netns;
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", node, "curl", "-sf", "http://127.0.0.1:9965/metrics"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("bulkhead_datapath_packets_total{"), "{text}");
    assert!(text.contains("bulkhead_flow_events_total{") && text.contains("outcome=\"lost\""), "{text}");
    assert!(text.contains("bulkhead_state_apply_total{result=\"ok\"} 1"), "{text}");
    assert!(text.contains("bulkhead_endpoints{") && text.trim_end().ends_with("# EOF"), "{text}");
    // The probes a DaemonSet's kubelet asks: the agent and the controller
    // (in the fabric) are alive and ready, and say nothing more.
    let fabric = bulkhead_lab::lifecycle::fabric_netns(&lab.name);
    for (ns, url) in [(node, "http://127.0.0.1:9965"), (&fabric, "http://127.0.0.1:9966")] {
        for (path, want) in [("/healthz", "ok"), ("/readyz", "")] {
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", ns, "curl", "-sf", &format!("{url}{path}")])
                .output()
                .unwrap();
            let body = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{url}{path}: {}", String::from_utf8_lossy(&out.stderr));
            assert!(body.starts_with(want) && body.len() < 16, "{url}{path}: {body}");
        }
    }
}

fn change_before() -> String {
    [
        pod("x", "a", "a", &["80"]),
        pod("x", "b", "b", &["80", "81"]),
        netpol(
            "b-from-a",
            "b",
            "ingress",
            &["{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: PORT}]}"],
        ),
    ]
    .concat()
}

#[test]
fn a_policy_change_keeps_established_connections_and_applies_to_new_ones() {
    let mut lab = Lab::up("change", "bridge", 2, &change_before().replace("PORT", "80"));
    let mut conn = crate::support::Conn::open(lab.netns("x/a"), SocketAddr::new(lab.ip("x/b", false), 80));
    assert!(conn.echo());
    assert!(!lab.probe("x/a", "x/b", 81, false, false));
    let before = lab.status().iter().map(|s| s.generation).max().unwrap();
    lab.apply(&change_before().replace("PORT", "81"));
    assert!(conn.echo(), "the connection admitted by the old policy keeps flowing");
    assert!(!lab.probe("x/a", "x/b", 80, false, false), "new connections follow the new policy");
    assert!(lab.probe("x/a", "x/b", 81, false, false), "new connections follow the new policy");
    let after: Vec<u64> = lab.status().iter().map(|s| s.generation).collect();
    assert!(after.iter().all(|g| *g > before), "every node moved past generation {before}: {after:?}");
}
