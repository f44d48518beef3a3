//! End-to-end tests against the real CNI reference plugins.
//!
//! Each test builds a throwaway "node" netns and "pod" netns, lets the real
//! plugin from /usr/lib/cni wire the pod (its host side lands in the node
//! netns), runs the resolvers from inside the node netns, and compares the
//! answer with what `ip`/sysfs report independently. Needs root.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "real_plugins/lab.rs"]
mod lab;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use bulkhead_cni::{
    BridgeResolver, CniError, HostInterface, HostInterfaceKind, PeerMismatch, PodNetwork, PtpResolver, VethPeerResolver,
};
use lab::{Lab, ip};

#[test]
fn bridge_plugin_is_veth_on_bridge() {
    let mut lab = Lab::new();
    lab.cni_add("bridge", r#""bridge":"bhbr0","isGateway":true,"#);
    let (veth, veth_index) = lab.node_veth();
    let expected = HostInterface {
        ifname: veth.clone(),
        ifindex: veth_index,
        kind: HostInterfaceKind::VethOnBridge,
        pod_ifindex: Some(lab.pod_ifindex()),
    };

    assert_eq!(lab.resolve(&VethPeerResolver, &lab.by_netns()).unwrap(), expected);
    assert_eq!(lab.resolve(&BridgeResolver, &lab.by_netns()).unwrap(), expected);
    assert_eq!(lab.auto(&lab.by_netns()).unwrap(), expected);
    let pod_ip = lab.pod_ip();
    let with_ip = PodNetwork { ip: Some(pod_ip), ..lab.by_netns() };
    assert_eq!(lab.auto(&with_ip).unwrap(), expected);

    // The ptp resolver must refuse a bridge port rather than return it.
    let err = lab.resolve(&PtpResolver, &lab.by_netns()).unwrap_err();
    assert!(matches!(err, CniError::WrongKind { found: HostInterfaceKind::VethOnBridge, .. }), "{err:?}");
    assert!(err.to_string().contains(&veth), "{err}");

    // A bridge port has no host route: IP-only lookups fail and say so.
    let err = lab.resolve(&PtpResolver, &lab.by_ip(pod_ip)).unwrap_err();
    assert!(matches!(err, CniError::NoHostRoute { ip } if ip == pod_ip), "{err:?}");
    assert!(err.to_string().contains(&pod_ip.to_string()), "{err}");
    let err = lab.resolve(&BridgeResolver, &lab.by_ip(pod_ip)).unwrap_err();
    assert!(matches!(err, CniError::MissingPodInfo { resolver: "bridge", .. }), "{err:?}");

    // A wrong pod interface name is reported with the name and the netns.
    let wrong = PodNetwork { pod_ifname: "eth9".to_owned(), ..lab.by_netns() };
    let err = lab.auto(&wrong).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CniError::InterfaceNotFound { .. }), "{err:?}");
    assert!(msg.contains("eth9") && msg.contains(lab.pod()), "{msg}");
}

#[test]
fn ptp_plugin_is_routed_veth_by_netns_and_by_ip() {
    let mut lab = Lab::new();
    lab.cni_add("ptp", r#""ipMasq":false,"#);
    let (veth, veth_index) = lab.node_veth();
    let expected = HostInterface {
        ifname: veth,
        ifindex: veth_index,
        kind: HostInterfaceKind::RoutedVeth,
        pod_ifindex: Some(lab.pod_ifindex()),
    };
    let pod_ip = lab.pod_ip();

    // Without an IP the pod's own addresses are used to find the route.
    assert_eq!(lab.resolve(&VethPeerResolver, &lab.by_netns()).unwrap(), expected);
    assert_eq!(lab.resolve(&PtpResolver, &lab.by_netns()).unwrap(), expected);
    assert_eq!(lab.auto(&lab.by_netns()).unwrap(), expected);

    // IP only: follow the node's /32 route.
    assert_eq!(lab.resolve(&PtpResolver, &lab.by_ip(pod_ip)).unwrap(), expected);
    assert_eq!(lab.auto(&lab.by_ip(pod_ip)).unwrap(), expected);

    // Both: still the same answer.
    let both = PodNetwork { ip: Some(pod_ip), ..lab.by_netns() };
    assert_eq!(lab.resolve(&PtpResolver, &both).unwrap(), expected);

    let err = lab.resolve(&BridgeResolver, &lab.by_netns()).unwrap_err();
    assert!(matches!(err, CniError::WrongKind { found: HostInterfaceKind::RoutedVeth, .. }), "{err:?}");

    // An IP nobody routes gives a clear error naming the IP.
    let stray: IpAddr = format!("10.250.{}.199", lab.n % 250).parse().unwrap();
    let err = lab.resolve(&PtpResolver, &lab.by_ip(stray)).unwrap_err();
    assert!(err.to_string().contains("10.250.") && err.to_string().contains(".199"), "{err}");
}

#[test]
fn macvlan_plugin_is_unsupported() {
    let mut lab = Lab::new();
    // macvlan needs an Ethernet parent. A dummy is the natural choice, but
    // some kernels (CONFIG_DUMMY=n) lack it; one end of a veth pair works too.
    let dummy = Command::new("ip").args(["-n", lab.node(), "link", "add", "dummy0", "type", "dummy"]).output().unwrap();
    if !dummy.status.success() {
        ip(&["-n", lab.node(), "link", "add", "dummy0", "type", "veth", "peer", "name", "dummy0p"]);
        ip(&["-n", lab.node(), "link", "set", "dummy0p", "up"]);
    }
    ip(&["-n", lab.node(), "link", "set", "dummy0", "up"]);
    lab.cni_add("macvlan", r#""master":"dummy0","#);

    let err = lab.auto(&lab.by_netns()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CniError::Unsupported { kind: "macvlan", .. }), "{err:?}");
    assert!(msg.contains("cgroup") && msg.contains(lab.pod()) && msg.contains("eth0"), "{msg}");

    let err = lab.resolve(&VethPeerResolver, &lab.by_netns()).unwrap_err();
    assert!(matches!(err, CniError::Unsupported { kind: "macvlan", .. }), "{err:?}");
}

#[test]
fn plain_veth_without_bridge_or_route_is_veth() {
    let lab = Lab::new();
    ip(&["-n", lab.node(), "link", "add", "bhv0", "type", "veth", "peer", "name", "eth0", "netns", lab.pod()]);
    let (veth, veth_index) = lab.node_veth();
    assert_eq!(veth, "bhv0");

    let got = lab.auto(&lab.by_netns()).unwrap();
    assert_eq!(
        got,
        HostInterface {
            ifname: veth,
            ifindex: veth_index,
            kind: HostInterfaceKind::Veth,
            pod_ifindex: Some(lab.pod_ifindex()),
        }
    );
    assert!(matches!(
        lab.resolve(&PtpResolver, &lab.by_netns()),
        Err(CniError::WrongKind { found: HostInterfaceKind::Veth, .. })
    ));
}

#[test]
fn veth_whose_peer_is_elsewhere_is_not_taken_for_the_pod() {
    // The pod's eth0 (ifindex 5) pairs with x0 (ifindex 5) in a third netns,
    // while the node holds an unrelated veth n0 (ifindex 5) whose peer is
    // also ifindex 5 -- in yet another netns. Index checks alone would accept
    // n0; the namespace-id check must not.
    let mut lab = Lab::new();
    let other = lab.add_netns("other");
    let decoy = lab.add_netns("decoy");
    ip(&[
        "-n",
        &other,
        "link",
        "add",
        "x0",
        "index",
        "5",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "index",
        "5",
        "netns",
        lab.pod(),
    ]);
    ip(&[
        "-n",
        lab.node(),
        "link",
        "add",
        "n0",
        "index",
        "5",
        "type",
        "veth",
        "peer",
        "name",
        "p0",
        "index",
        "5",
        "netns",
        &decoy,
    ]);

    let err = lab.auto(&lab.by_netns()).unwrap_err();
    assert!(
        matches!(&err, CniError::PeerMismatch { host_ifname, mismatch: PeerMismatch::Namespace { .. }, .. } if host_ifname == "n0"),
        "{err:?}"
    );
    assert!(err.to_string().contains(lab.pod()), "{err}");
}

#[test]
fn missing_or_bogus_netns_paths_are_clear_errors() {
    let lab = Lab::new();
    let missing = PathBuf::from(format!("/var/run/netns/{}-does-not-exist", lab.id));
    let pod = PodNetwork { netns: Some(missing.clone()), ..PodNetwork::default() };
    let err = lab.auto(&pod).unwrap_err();
    assert!(matches!(&err, CniError::NetnsOpen { netns, .. } if *netns == missing), "{err:?}");
    assert!(err.to_string().contains(&missing.display().to_string()), "{err}");

    // A file that exists but is not a network namespace.
    let bogus = PathBuf::from("/proc/version");
    let pod = PodNetwork { netns: Some(bogus), ..PodNetwork::default() };
    let err = lab.auto(&pod).unwrap_err();
    assert!(matches!(err, CniError::NetnsEnter { .. }), "{err:?}");
    assert!(err.to_string().contains("/proc/version"), "{err}");

    // Nothing to go on at all.
    let err = lab.auto(&PodNetwork::default()).unwrap_err();
    assert!(matches!(err, CniError::MissingPodInfo { .. }), "{err:?}");
}
