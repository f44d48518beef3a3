//! Pods: their namespaces through the real CNI plugins, their servers, and their removal.

use std::net::IpAddr;

use crate::error::LabError;
use crate::manifest;
use crate::shell::{in_ns, run, run_with};
use crate::state::{self, LabState, NodeState, PodState};

use super::UpOptions;
use super::nodes::{CNI_DIR, cni_config, ns_prefix};
use super::processes::{kill_lab_process, kill_netns_processes, spawn};

pub(super) fn cni(
    cmd: &str,
    lab: &str,
    cni: &str,
    node: &NodeState,
    pod_ns: &str,
    container: &str,
    fixed: Option<IpAddr>,
) -> Result<String, LabError> {
    let mut env = vec![
        ("CNI_COMMAND", cmd.to_string()),
        ("CNI_CONTAINERID", container.to_string()),
        ("CNI_NETNS", crate::netns::path(pod_ns).to_string_lossy().into_owned()),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", CNI_DIR.to_string()),
    ];
    if let Some(ip) = fixed {
        env.push(("CNI_ARGS", format!("IgnoreUnknown=1;IP={ip}")));
    }
    let plugin = format!("{CNI_DIR}/{cni}");
    run_with("ip", &["netns", "exec", &node.netns, &plugin], &env, Some(&cni_config(lab, cni, node)))
}

pub(super) fn build_pod(
    lab: &str,
    cni_name: &str,
    node: &NodeState,
    spec: &manifest::PodSpec,
    opts: &UpOptions,
) -> Result<PodState, LabError> {
    let netns = format!("{}p_{}_{}", ns_prefix(lab), spec.namespace, spec.name);
    let container = format!("bh-{lab}-{}-{}", spec.namespace, spec.name);
    if crate::netns::exists(&netns) {
        // left over by a crashed `up`: start the pod afresh
        kill_netns_processes(&netns);
        let _ = cni("DEL", lab, cni_name, node, &netns, &container, None);
        run("ip", &["netns", "del", &netns])?;
    }
    run("ip", &["netns", "add", &netns])?;
    in_ns(&netns, &["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"])?;
    run("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
    let result = cni("ADD", lab, cni_name, node, &netns, &container, spec.fixed_ip)?;
    let parsed: serde_json::Value =
        serde_json::from_str(&result).map_err(|e| LabError::Invalid(format!("CNI result for {}: {e}", spec.name)))?;
    let mut ips: Vec<IpAddr> = parsed["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["address"].as_str())
        .filter_map(|a| a.split('/').next().and_then(|ip| ip.parse().ok()))
        .collect();
    ips.sort_by_key(|ip| ip.is_ipv6());
    if ips.is_empty() {
        return Err(LabError::Invalid(format!(
            "CNI {cni_name} returned no address for {}/{}",
            spec.namespace, spec.name
        )));
    }
    let key = format!("{}/{}", spec.namespace, spec.name);
    let mut server_pid = None;
    let calls = spec.annotations.get(crate::calls::CALLS_ANNOTATION).cloned();
    let served = crate::listens::served(spec).map_err(LabError::Invalid)?;
    if !served.is_empty() || !spec.sctp_ports.is_empty() || calls.is_some() {
        let tcp: Vec<String> = served.iter().filter(|p| !p.udp).map(|p| p.port.to_string()).collect();
        let udp: Vec<String> = served.iter().filter(|p| p.udp).map(|p| p.port.to_string()).collect();
        let ns_path = crate::netns::path(&netns).to_string_lossy().into_owned();
        let log = state::dir(lab).join(format!("pod-{}-{}.log", spec.namespace, spec.name));
        let (t, u) = (tcp.join(","), udp.join(","));
        let sctp = spec.sctp_ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",");
        let speak = crate::speak::for_pod(spec).map_err(LabError::Invalid)?;
        let mut args = vec!["lab", "serve", "--netns", &ns_path, "--name", &key];
        if spec.annotations.get(manifest::ROLE_ANNOTATION).map(String::as_str) == Some("dns") {
            args = vec!["lab", "dns", "--netns", &ns_path, "--lab", lab];
        } else {
            if !t.is_empty() {
                args.extend(["--tcp", &t]);
            }
            if !u.is_empty() {
                args.extend(["--udp", &u]);
            }
            if !sctp.is_empty() {
                args.extend(["--sctp", &sctp]);
            }
            if !speak.is_empty() {
                args.extend(["--speak", &speak]);
            }
            if let Some(c) = &calls {
                args.extend(["--calls", c, "--namespace", &spec.namespace]);
                if let Some(i) = spec.annotations.get(crate::calls::INTERVAL_ANNOTATION) {
                    args.extend(["--call-interval", i]);
                }
            }
        }
        server_pid = Some(spawn(&opts.exe, &args, None, &log)?);
    }
    Ok(PodState {
        namespace: spec.namespace.clone(),
        name: spec.name.clone(),
        labels: spec.labels.clone(),
        node: node.index,
        netns,
        ips,
        ports: spec.ports.clone(),
        server_pid,
        container_id: container,
        endpoint_id: 0,
        annotations: spec.annotations.clone(),
        containers: spec.containers.clone(),
        owner: spec.owner.clone(),
    })
}

pub(super) fn remove_pod(lab: &LabState, p: &PodState) {
    if let Some(pid) = p.server_pid {
        kill_lab_process(pid);
    }
    if let Some(node) = lab.nodes.iter().find(|n| n.index == p.node) {
        let _ = cni("DEL", &lab.name, &lab.cni, node, &p.netns, &p.container_id, None);
    }
    let _ = run("ip", &["netns", "del", &p.netns]);
}
