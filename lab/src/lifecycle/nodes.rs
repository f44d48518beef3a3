//! The lab's nodes and fabric: namespaces, addresses, the outside, and each node's CNI configuration.

use std::net::IpAddr;
use std::path::Path;

use crate::error::LabError;
use crate::shell::{in_ns, run};
use crate::state::{self, NodeState};

pub(super) const CNI_DIR: &str = "/usr/lib/cni";

pub(crate) fn ns_prefix(lab: &str) -> String {
    format!("bh_{lab}_")
}

/// The network namespace of `lab`'s fabric (its nodes' L2 segment, where the
/// controller and the outside sit too).
pub fn fabric_netns(lab: &str) -> String {
    format!("{}fab", ns_prefix(lab))
}

pub(super) fn node_ip(i: usize) -> IpAddr {
    IpAddr::from([172, 30, 0, i as u8])
}

pub(super) fn check_tools(cni: &str) -> Result<(), LabError> {
    for tool in [cni, "host-local"] {
        let p = Path::new(CNI_DIR).join(tool);
        if !p.exists() {
            return Err(LabError::Invalid(format!(
                "CNI plugin {} is missing: run scripts/install-deps.sh (Debian package containernetworking-plugins)",
                p.display()
            )));
        }
    }
    run("ip", &["-V"]).map(|_| ())
}

pub(super) fn build_node(lab: &str, fabric: &str, i: usize, plan: &crate::cidr::Plan) -> Result<NodeState, LabError> {
    let ns = format!("{}n{i}", ns_prefix(lab));
    if !crate::netns::exists(&ns) {
        run("ip", &["netns", "add", &ns])?;
    }
    in_ns(
        &ns,
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.accept_dad=0",
        ],
    )?;
    run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    let peer = format!("n{i}");
    if run("ip", &["-n", fabric, "link", "show", &peer]).is_err() {
        run("ip", &["-n", fabric, "link", "add", &peer, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    }
    // Everything below is "replace", so a node half-built by a crashed `up` is completed.
    run("ip", &["-n", fabric, "link", "set", &peer, "master", "fab0", "up"])?;
    run("ip", &["-n", &ns, "addr", "replace", &format!("172.30.0.{i}/24"), "dev", "eth0"])?;
    run("ip", &["-n", &ns, "addr", "replace", &format!("fd00:172:30::{i}/64"), "dev", "eth0", "nodad"])?;
    run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    for (j, block) in plan.blocks.iter().filter(|(j, _)| **j != i) {
        run("ip", &["-n", &ns, "route", "replace", &block.to_string(), "via", &format!("172.30.0.{j}")])?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "-6",
                "route",
                "replace",
                &format!("fd00:10:244:{j}::/64"),
                "via",
                &format!("fd00:172:30::{j}"),
            ],
        )?;
    }
    Ok(NodeState {
        index: i,
        name: format!("{lab}_n{i}"),
        netns: ns,
        agent_pid: None,
        socket: state::dir(lab).join(format!("n{i}.sock")),
        pod_cidr_v4: plan.blocks.get(&i).map(|b| b.to_string()).unwrap_or_default(),
        gateway_v4: plan.gateways.get(&i).map(|g| g.to_string()).unwrap_or_default(),
        pod_cidr_v6: format!("fd00:10:244:{i}::/64"),
        node_ip: node_ip(i),
    })
}

/// The lab's "internet": a namespace on the fabric that is no node and no
/// pod, to reach node ports and load balancers from outside the cluster.
pub(super) fn build_outside(lab: &str, fabric: &str) -> Result<(), LabError> {
    let ns = crate::probe::outside_netns(lab);
    if !crate::netns::exists(&ns) {
        run("ip", &["netns", "add", &ns])?;
    }
    run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
    if run("ip", &["-n", fabric, "link", "show", "out"]).is_err() {
        run("ip", &["-n", fabric, "link", "add", "out", "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
    }
    run("ip", &["-n", fabric, "link", "set", "out", "master", "fab0", "up"])?;
    run("ip", &["-n", &ns, "addr", "replace", &format!("{}/24", crate::probe::OUTSIDE_IP), "dev", "eth0"])?;
    run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
    Ok(())
}

pub(super) fn cni_config(lab: &str, cni: &str, node: &NodeState) -> String {
    let ipam = serde_json::json!({
        "type": "host-local",
        "ranges": [[{"subnet": node.pod_cidr_v4, "gateway": node.gateway_v4}], [{"subnet": node.pod_cidr_v6}]],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        "dataDir": state::dir(lab).join("ipam").to_string_lossy(),
    });
    let mut conf = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": format!("bh-{lab}-n{}", node.index),
        "type": cni,
        "ipMasq": false,
        "ipam": ipam,
    });
    if cni == "bridge" {
        conf["bridge"] = "cni0".into();
        conf["isGateway"] = true.into();
        conf["hairpinMode"] = true.into();
    }
    conf.to_string()
}
