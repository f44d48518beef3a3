//! `lab up` and `lab down`: the order in which nodes, pods and processes
//! come up, and everything removed again.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::LabError;
use crate::manifest::{self, valid_name};
use crate::shell::run;
use crate::state::{self, LabState};

mod nodes;
mod pods;
mod processes;

pub use nodes::fabric_netns;
pub(crate) use nodes::ns_prefix;
use nodes::{build_node, build_outside, check_tools};
use pods::{build_pod, remove_pod};
pub use processes::{agent_for, process_alive, wait_api, wait_synced};
use processes::{alive, kill_lab_process, kill_netns_processes, start_agent, start_controller};

/// Options of `lab up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Name of the lab; prefixes its namespaces and runtime files.
    pub name: String,
    /// Manifest files to build the lab from.
    pub files: Vec<PathBuf>,
    /// "bridge" or "ptp".
    pub cni: String,
    /// Number of nodes to create.
    pub nodes: usize,
    /// Mode of pods without a bulkhead.dev/mode annotation: learn, audit or enforce.
    pub default_mode: String,
    /// The bulkhead binary to run agents and pod servers with.
    pub exe: PathBuf,
    /// The controller's learning window and quiet period, seconds (0: its defaults).
    pub learn: (u64, u64),
    /// More arguments for the controller (scan thresholds, response rules, webhooks).
    pub controller_args: Vec<String>,
    /// More arguments for every node's agent (event budgets).
    pub agent_args: Vec<String>,
    /// The IPv4 pod CIDR, cut into a /24 per node (default 10.244.0.0/16).
    pub pod_cidr: String,
}

fn progress(msg: &str) {
    eprintln!("lab: {msg}");
}

/// Builds (or completes) the lab and returns its state once every agent enforces.
pub async fn up(opts: &UpOptions) -> Result<LabState, LabError> {
    if !valid_name(&opts.name) || opts.name.len() > 20 {
        return Err(LabError::Invalid(format!(
            "lab name {:?}: use up to 20 lowercase letters, digits and dashes",
            opts.name
        )));
    }
    if !["bridge", "ptp"].contains(&opts.cni.as_str()) {
        return Err(LabError::Invalid(format!("--cni {}: the lab supports bridge and ptp", opts.cni)));
    }
    if opts.nodes == 0 || opts.nodes > 16 {
        return Err(LabError::Invalid("--nodes must be 1..16".into()));
    }
    check_tools(&opts.cni)?;
    let manifests = manifest::load(&opts.files)?;
    let pod_cidr = crate::cidr::parse(&opts.pod_cidr)?;
    let fixed: BTreeSet<std::net::Ipv4Addr> = manifests
        .pods
        .iter()
        .filter_map(|p| match p.fixed_ip {
            Some(IpAddr::V4(ip)) => Some(ip),
            _ => None,
        })
        .collect();
    let plan = crate::cidr::plan(pod_cidr, opts.nodes, &fixed);
    let existing = LabState::load(&opts.name).ok();
    if let Some(s) = &existing
        && (s.cni != opts.cni || s.nodes.len() != opts.nodes || s.pod_cidr != pod_cidr.to_string())
    {
        return Err(LabError::Invalid(format!(
            "lab {} is up with --cni {} --nodes {} --pod-cidr {}; run `bulkhead lab down` first",
            s.name,
            s.cni,
            s.nodes.len(),
            s.pod_cidr
        )));
    }
    let dir = state::dir(&opts.name);
    std::fs::create_dir_all(dir.join("ipam")).map_err(|source| LabError::Io {
        action: "creating lab dir",
        path: dir.clone(),
        source,
    })?;

    let fabric = fabric_netns(&opts.name);
    if !crate::netns::exists(&fabric) {
        run("ip", &["netns", "add", &fabric])?;
        run("ip", &["-n", &fabric, "link", "add", "fab0", "type", "bridge"])?;
        run("ip", &["-n", &fabric, "link", "set", "fab0", "up"])?;
    }
    // The controller runs here: its metrics and its webhooks' loopback receivers need lo.
    run("ip", &["-n", &fabric, "link", "set", "lo", "up"])?;
    // ...and its agents port, which every node's agent dials over the fabric.
    let controller_ip = format!("{}/24", crate::api::CONTROLLER_IP);
    run("ip", &["-n", &fabric, "addr", "replace", &controller_ip, "dev", "fab0"])?;
    build_outside(&opts.name, &fabric)?;
    let mut lab = LabState {
        name: opts.name.clone(),
        cni: opts.cni.clone(),
        nodes: Vec::new(),
        pods: Vec::new(),
        namespaces: manifests.namespaces.values().map(|n| (n.name.clone(), n.labels.clone())).collect(),
        namespace_annotations: manifests.namespaces.values().map(|n| (n.name.clone(), n.annotations.clone())).collect(),
        policies: manifests.policies.len(),
        services: manifests.services.clone(),
        default_mode: opts.default_mode.clone(),
        learn: opts.learn,
        controller_args: opts.controller_args.clone(),
        agent_args: opts.agent_args.clone(),
        controller_pid: existing.as_ref().and_then(|s| s.controller_pid),
        generation: existing.as_ref().map_or(1, |s| s.generation + 1),
        last_endpoint_id: existing.as_ref().map_or(0, |s| s.last_endpoint_id),
        pod_cidr: pod_cidr.to_string(),
        api: existing.as_ref().and_then(|s| s.api.clone()),
    };
    for i in 1..=opts.nodes {
        progress(&format!("node {i}/{}", opts.nodes));
        let mut n = build_node(&opts.name, &fabric, i, &plan)?;
        if let Some(old) = existing.as_ref().and_then(|s| s.nodes.iter().find(|o| o.index == i)) {
            n.agent_pid = old.agent_pid;
        }
        lab.nodes.push(n);
    }
    // Agents first, so every pod is protected from the moment the state is pushed.
    let shell = LabState { nodes: Vec::new(), ..lab.clone() };
    for n in &mut lab.nodes {
        start_agent(&shell, n, &opts.exe)?;
    }
    lab.save()?;

    let wanted: BTreeSet<String> = manifests.pods.iter().map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    if let Some(old) = &existing {
        for p in old.pods.iter().filter(|p| !wanted.contains(&p.key())) {
            progress(&format!("removing pod {}", p.key()));
            remove_pod(old, p);
        }
    }
    let total = manifests.pods.len();
    let mut next_endpoint_id = existing
        .as_ref()
        .map_or(0, |s| s.pods.iter().map(|p| p.endpoint_id).max().unwrap_or(0).max(s.last_endpoint_id));
    for (i, spec) in manifests.pods.iter().enumerate() {
        let key = format!("{}/{}", spec.namespace, spec.name);
        let prior = existing.as_ref().and_then(|s| s.pods.iter().find(|p| p.key() == key));
        if let Some(p) =
            prior.filter(|p| crate::netns::exists(&p.netns) && p.labels == spec.labels && p.ports == spec.ports)
        {
            let mut p = p.clone();
            if !p.ports.is_empty() && !alive(p.server_pid) {
                remove_pod(existing.as_ref().unwrap_or(&lab), &p);
            } else {
                p.labels = spec.labels.clone();
                p.annotations = spec.annotations.clone();
                p.containers = spec.containers.clone();
                p.owner = spec.owner.clone();
                if p.endpoint_id == 0 {
                    next_endpoint_id += 1;
                    p.endpoint_id = next_endpoint_id;
                }
                lab.pods.push(p);
                continue;
            }
        } else if let Some(p) = prior {
            remove_pod(existing.as_ref().unwrap_or(&lab), p);
        }
        let node_idx = match spec.fixed_ip {
            Some(IpAddr::V4(ip)) => crate::cidr::node_of(&plan, ip).ok_or_else(|| {
                LabError::Invalid(format!(
                    "pod {key}: status.podIP {ip} is outside the pod CIDR {pod_cidr} (--pod-cidr)"
                ))
            })?,
            Some(ip) => {
                return Err(LabError::Invalid(format!(
                    "pod {key}: status.podIP {ip}: only IPv4 addresses can be asked for (inside --pod-cidr {pod_cidr})"
                )));
            }
            None => i % opts.nodes + 1,
        };
        let node = lab
            .nodes
            .iter()
            .find(|n| n.index == node_idx)
            .cloned()
            .ok_or_else(|| LabError::Invalid(format!("no node {node_idx}")))?;
        progress(&format!("pod {}/{total} {key} on node {node_idx}", i + 1));
        let mut pod = build_pod(&opts.name, &opts.cni, &node, spec, opts)?;
        next_endpoint_id += 1;
        pod.endpoint_id = next_endpoint_id;
        lab.pods.push(pod);
        lab.last_endpoint_id = next_endpoint_id;
        lab.save()?;
    }
    let previous = existing.as_ref().map(|s| s.services.clone()).unwrap_or_default();
    crate::services::allocate(&mut lab.services, &previous)?;
    crate::services::place_load_balancers(&mut lab);
    lab.save()?;
    if !lab.services.is_empty() {
        progress(&format!("programming {} services (nftables DNAT, as kube-proxy)", lab.services.len()));
    }
    crate::services::program(&lab)?;
    progress("starting the controller on the lab's inventory");
    let inventory = crate::inventory::write(&lab, &manifests.policies)?;
    start_controller(&mut lab, &inventory, &opts.exe)?;
    lab.save()?;
    let generation = wait_synced(&lab, Duration::from_secs(60)).await?;
    wait_api(&lab, Duration::from_secs(30)).await?;
    progress(&format!(
        "up: {} nodes, {} pods, {} policies, enforced at generation {generation}",
        lab.nodes.len(),
        lab.pods.len(),
        lab.policies
    ));
    Ok(lab)
}

/// Removes everything the lab made, with or without its state file (after a crash).
pub fn down(lab: &str) -> Result<usize, LabError> {
    if !valid_name(lab) {
        return Err(LabError::Invalid(format!("lab name {lab:?}")));
    }
    let mut removed = 0;
    if let Ok(s) = LabState::load(lab) {
        let pids = s.nodes.iter().filter_map(|n| n.agent_pid).chain(s.pods.iter().filter_map(|p| p.server_pid));
        for pid in pids.chain(s.controller_pid) {
            kill_lab_process(pid);
        }
    }
    let prefix = ns_prefix(lab);
    let namespaces = crate::netns::list(&prefix);
    for ns in &namespaces {
        kill_netns_processes(ns);
    }
    for ns in &namespaces {
        if run("ip", &["netns", "del", ns]).is_ok() {
            removed += 1;
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/bpf/bulkhead") {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("{lab}_n")) {
                std::fs::remove_dir_all(e.path()).map_err(|source| LabError::Io {
                    action: "removing pins",
                    path: e.path(),
                    source,
                })?;
            }
        }
    }
    let dir = state::dir(lab);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(LabError::Io { action: "removing lab dir", path: dir, source });
        }
    }
    Ok(removed)
}
