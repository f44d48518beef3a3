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
    BridgeResolver, CniError, Discovered, HostInterface, HostInterfaceKind, NetnsIndex, PeerMismatch, PodNetwork,
    PtpResolver, VethPeerResolver, discover,
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

    // Found by its address alone, it is reported the same way.
    let pod_ip = lab.pod_ip();
    let err = discover_in(&lab, vec![PathBuf::from("/var/run/netns")], vec![pod_ip]).unwrap_err();
    assert!(matches!(err, CniError::Unsupported { kind: "macvlan", .. }), "{err:?}");
    assert!(err.to_string().contains(lab.pod()), "{err}");
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

/// Discovery, as the agent runs it inside the node netns.
fn discover_in(lab: &Lab, dirs: Vec<PathBuf>, ips: Vec<IpAddr>) -> Result<(Discovered, usize), CniError> {
    lab.in_node(move || {
        let index = NetnsIndex::scan(&dirs)?;
        let pod = PodNetwork { netns: None, ip: None, pod_ifname: "eth0".to_owned() };
        discover(&pod, &ips, &index).map(|d| (d, index.scanned))
    })
}

#[test]
fn pods_are_found_from_their_addresses_alone_on_bridge_and_ptp() {
    let run = PathBuf::from("/var/run/netns");
    for (plugin, extra, kind) in [
        ("bridge", r#""bridge":"bhbr1","isGateway":true,"#, HostInterfaceKind::VethOnBridge),
        ("ptp", r#""ipMasq":false,"#, HostInterfaceKind::RoutedVeth),
    ] {
        let mut lab = Lab::new();
        lab.cni_add(plugin, extra);
        let (veth, veth_index) = lab.node_veth();
        let pod_ip = lab.pod_ip();
        // A namespace elsewhere with the same address (another node, another
        // lab on this host) is never a candidate: no veth of this node leads there.
        let twin = lab.add_netns("twin");
        let elsewhere = lab.add_netns("elsewhere");
        ip(&["-n", &elsewhere, "link", "add", "t0", "type", "veth", "peer", "name", "eth0", "netns", &twin]);
        ip(&["-n", &twin, "addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"]);
        ip(&["-n", &twin, "link", "set", "eth0", "up"]);

        let (found, scanned) = discover_in(&lab, vec![run.clone()], vec![pod_ip]).unwrap();
        assert_eq!(scanned, 1, "{plugin}: only the node's own pod is read");
        assert_eq!(found.netns, Some(lab.pod_netns_path()), "{plugin}");

        // A pod of this node that puts the address on its loopback (or any
        // link but its veth to the node) is no candidate for it.
        let impostor = lab.add_netns("impostor");
        ip(&["-n", lab.node(), "link", "add", "i0", "type", "veth", "peer", "name", "eth0", "netns", &impostor]);
        ip(&["-n", &impostor, "addr", "add", &format!("{pod_ip}/32"), "dev", "lo"]);
        ip(&["-n", &impostor, "link", "set", "eth0", "up"]);
        let (found, scanned) = discover_in(&lab, vec![run.clone()], vec![pod_ip]).unwrap();
        assert_eq!(scanned, 2, "{plugin}: the impostor is read");
        assert_eq!(
            (found.iface.ifname.as_str(), found.iface.ifindex, found.iface.kind),
            (veth.as_str(), veth_index, kind)
        );
        assert_eq!(found.netns, Some(lab.pod_netns_path()), "{plugin}");

        // Without the namespace files, only a routed pod can still be found (by its host route).
        let empty = PathBuf::from(format!("/tmp/{}-no-netns", lab.id));
        std::fs::create_dir_all(&empty).unwrap();
        let without = discover_in(&lab, vec![empty.clone()], vec![pod_ip]);
        let _ = std::fs::remove_dir(&empty);
        match plugin {
            "ptp" => {
                let (found, _) = without.unwrap();
                assert_eq!((found.iface.ifindex, found.netns), (veth_index, None));
            }
            _ => {
                let err = without.unwrap_err();
                assert!(matches!(err, CniError::NotDiscovered { .. }), "{err:?}");
                assert!(
                    err.to_string().contains(&pod_ip.to_string()) && err.to_string().contains("no host route"),
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn two_pods_of_a_node_with_one_address_are_refused_not_guessed() {
    let mut lab = Lab::new();
    lab.cni_add("bridge", r#""bridge":"bhbr2","isGateway":true,"#);
    let pod_ip = lab.pod_ip();
    let clone = lab.add_netns("clone");
    ip(&["-n", lab.node(), "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", &clone]);
    ip(&["-n", &clone, "addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"]);
    ip(&["-n", &clone, "link", "set", "eth0", "up"]);
    ip(&["-n", lab.node(), "link", "set", "c0", "up"]);
    let err = discover_in(&lab, vec![PathBuf::from("/var/run/netns")], vec![pod_ip]).unwrap_err();
    assert!(matches!(&err, CniError::AmbiguousPod { netns, .. } if netns.len() == 2), "{err:?}");
    assert!(err.to_string().contains(&clone), "{err}");
}
