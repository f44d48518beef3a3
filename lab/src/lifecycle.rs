//! `lab up` and `lab down`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_api::agent::v1 as pb;

use crate::error::LabError;
use crate::manifest::{self, valid_name};
use crate::shell::{in_ns, run, run_with};
use crate::state::{self, LabState, NodeState, PodState};

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

const CNI_DIR: &str = "/usr/lib/cni";

fn ns_prefix(lab: &str) -> String {
    format!("bh_{lab}_")
}

fn node_ip(i: usize) -> IpAddr {
    IpAddr::from([172, 30, 0, i as u8])
}

fn progress(msg: &str) {
    eprintln!("lab: {msg}");
}

fn check_tools(cni: &str) -> Result<(), LabError> {
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

fn build_node(lab: &str, fabric: &str, i: usize, plan: &crate::cidr::Plan) -> Result<NodeState, LabError> {
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
fn build_outside(lab: &str, fabric: &str) -> Result<(), LabError> {
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

fn cni_config(lab: &str, cni: &str, node: &NodeState) -> String {
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

fn cni(
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

fn spawn(exe: &Path, args: &[&str], netns: Option<&str>, log: &Path) -> Result<i32, LabError> {
    let file = std::fs::File::create(log).map_err(|source| LabError::Io {
        action: "creating log",
        path: log.to_path_buf(),
        source,
    })?;
    let err =
        file.try_clone().map_err(|source| LabError::Io { action: "creating log", path: log.to_path_buf(), source })?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args).stdin(Stdio::null()).stdout(file).stderr(err).process_group(0);
    let child = cmd.spawn().map_err(|e| LabError::Command {
        command: format!("{} {}", exe.display(), args.join(" ")),
        message: e.to_string(),
    })?;
    Ok(child.id() as i32)
}

fn alive(pid: Option<i32>) -> bool {
    pid.is_some_and(process_alive)
}

/// Whether `pid` is a running (not zombie) bulkhead process. Lab processes are
/// not our children once `lab up` exits, so a killed one may linger as a zombie.
pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("X");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !matches!(state, "Z" | "X") && String::from_utf8_lossy(&cmdline).contains("bulkhead")
}

fn build_pod(
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
    if !served.is_empty() || calls.is_some() {
        let tcp: Vec<String> = served.iter().filter(|p| !p.udp).map(|p| p.port.to_string()).collect();
        let udp: Vec<String> = served.iter().filter(|p| p.udp).map(|p| p.port.to_string()).collect();
        let ns_path = crate::netns::path(&netns).to_string_lossy().into_owned();
        let log = state::dir(lab).join(format!("pod-{}-{}.log", spec.namespace, spec.name));
        let (t, u) = (tcp.join(","), udp.join(","));
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

fn start_agent(lab: &LabState, node: &mut NodeState, exe: &Path) -> Result<(), LabError> {
    if alive(node.agent_pid) {
        return Ok(());
    }
    let dir = state::dir(&lab.name);
    let state_dir = dir.join(format!("agent-n{}", node.index));
    let log = dir.join(format!("agent-n{}.log", node.index));
    let (sock, sd) = (node.socket.to_string_lossy().into_owned(), state_dir.to_string_lossy().into_owned());
    let ns = crate::netns::path(&node.netns).to_string_lossy().into_owned();
    let args = [
        "agent",
        "--node",
        &node.name,
        "--netns",
        &ns,
        "--socket",
        &sock,
        "--state-dir",
        &sd,
        "--metrics-addr",
        "127.0.0.1:9965",
        // The node's uplink to the fabric: where the block list's prefilter goes.
        "--prefilter-dev",
        "eth0",
    ];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(lab.agent_args.iter().map(String::as_str));
    node.agent_pid = Some(spawn(exe, &args, None, &log)?);
    Ok(())
}

async fn wait_agent(
    node: &NodeState,
) -> Result<bulkhead_api::agent::v1::agent_client::AgentClient<tonic::transport::Channel>, LabError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match bulkhead_api::connect_unix(&node.socket).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => {
                return Err(LabError::Agent {
                    node: node.name.clone(),
                    message: format!("did not come up within 30 s: {e} (see agent-n{}.log)", node.index),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// (Re)starts the lab's controller on the lab's inventory, in the fabric
/// namespace so `lab down` finds it even without the state file.
fn start_controller(lab: &mut LabState, inventory: &Path, exe: &Path) -> Result<(), LabError> {
    if let Some(pid) = lab.controller_pid.take() {
        kill_lab_process(pid);
    }
    // A controller restarted by hand (not the recorded pid) runs in the
    // fabric namespace too, holding the API's port: stop it and wait.
    let fabric_ns = format!("{}fab", ns_prefix(&lab.name));
    let stale: Vec<i32> = run("ip", &["netns", "pids", &fabric_ns])
        .map(|out| out.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    for pid in &stale {
        kill_lab_process(*pid);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while stale.iter().any(|p| process_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = state::dir(&lab.name);
    // The manifests are the lab's truth: the controller starts from them alone.
    let state_dir = dir.join("controller");
    let _ = std::fs::remove_file(state_dir.join("objects.yaml"));
    let socket = lab.controller_socket();
    let _ = std::fs::remove_file(&socket);
    let fabric = crate::netns::path(&format!("{}fab", ns_prefix(&lab.name))).to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "controller",
        "--netns",
        &fabric,
        "--cluster",
        crate::inventory::CLUSTER,
        "--manifests",
        &inventory.to_string_lossy(),
        "--mode",
        &lab.default_mode,
        "--state-dir",
        &state_dir.to_string_lossy(),
        "--socket",
        &socket.to_string_lossy(),
        "--metrics-addr",
        "127.0.0.1:9966",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    for n in &lab.nodes {
        args.push("--agent".into());
        args.push(format!("{}={}", n.name, n.socket.display()));
    }
    let api = api_for(lab, &dir)?;
    let _ = std::fs::remove_file(&api.addr_file);
    let addr = api.url.trim_start_matches("https://").to_string();
    for (flag, value) in [
        ("--api-addr", addr),
        ("--api-addr-file", api.addr_file.to_string_lossy().into_owned()),
        ("--api-tls-cert", api.cert_file.to_string_lossy().into_owned()),
        ("--api-tls-key", api.key_file.to_string_lossy().into_owned()),
        ("--tokens-file", api.tokens_file.to_string_lossy().into_owned()),
    ] {
        args.extend([flag.to_string(), value]);
    }
    lab.api = Some(api);
    if lab.learn.0 > 0 {
        args.extend(["--learn-window".into(), lab.learn.0.to_string()]);
    }
    if lab.learn.1 > 0 {
        args.extend(["--learn-quiet".into(), lab.learn.1.to_string()]);
    }
    args.extend(lab.controller_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.controller_pid = Some(spawn(exe, &args, None, &dir.join("controller.log"))?);
    Ok(())
}

/// The lab's API: its files (made once), on the port it had, or a free one.
fn api_for(lab: &LabState, dir: &Path) -> Result<crate::api::LabApi, LabError> {
    let mut api = crate::api::prepare(dir)?;
    api.url = match lab.api.as_ref().map(|a| a.url.clone()).filter(|u| !u.is_empty()) {
        Some(url) => url,
        None => {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| LabError::Io {
                action: "finding a free port for the API",
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?;
            let port = probe.local_addr().map(|a| a.port()).map_err(|source| LabError::Io {
                action: "finding a free port for the API",
                path: PathBuf::from("127.0.0.1:0"),
                source,
            })?;
            format!("https://127.0.0.1:{port}")
        }
    };
    Ok(api)
}

/// Waits until the controller's API listens (it writes its URL once it does).
pub async fn wait_api(lab: &LabState, timeout: Duration) -> Result<(), LabError> {
    let Some(api) = &lab.api else { return Ok(()) };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(url) = std::fs::read_to_string(&api.addr_file)
            && url.trim() == api.url
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(LabError::Controller(format!("the API did not listen on {} within {timeout:?} (see controller.log)", api.url)))
}

/// Waits until every agent enforces the controller's current generation; a
/// pod left unprotected is an error. The controller may still be starting
/// (or replacing a previous one's socket), so failures retry until the deadline.
pub async fn wait_synced(lab: &LabState, timeout: Duration) -> Result<u64, LabError> {
    let deadline = Instant::now() + timeout;
    let socket = lab.controller_socket();
    let mut last = String::from("not reachable yet");
    while Instant::now() < deadline {
        let status = match bulkhead_api::connect_controller(&socket).await {
            Ok(mut c) => {
                c.status(bulkhead_api::controller::v1::StatusRequest {}).await.map_err(|s| s.message().to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match status {
            Ok(s) => {
                let s = s.into_inner();
                let behind: Vec<String> = s
                    .nodes
                    .iter()
                    .filter(|n| n.applied_generation != s.generation || !n.error.is_empty())
                    .map(|n| format!("{}: {}", n.node, if n.error.is_empty() { "behind" } else { &n.error }))
                    .collect();
                if s.nodes.len() == lab.nodes.len() && behind.is_empty() {
                    return Ok(s.generation);
                }
                last = if behind.is_empty() { "agents not reported yet".into() } else { behind.join("; ") };
            }
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(LabError::Controller(format!("not in sync after {timeout:?}: {last} (see controller.log)")))
}

/// Connects to the agent of the node hosting `pod`.
pub async fn agent_for(
    lab: &LabState,
    pod: &str,
) -> Result<pb::agent_client::AgentClient<tonic::transport::Channel>, LabError> {
    let p = lab.pod(pod)?;
    let node = lab.nodes.iter().find(|n| n.index == p.node).ok_or_else(|| LabError::UnknownPod(pod.into()))?;
    wait_agent(node).await
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

    let fabric = format!("{}fab", ns_prefix(&opts.name));
    if !crate::netns::exists(&fabric) {
        run("ip", &["netns", "add", &fabric])?;
        run("ip", &["-n", &fabric, "link", "add", "fab0", "type", "bridge"])?;
        run("ip", &["-n", &fabric, "link", "set", "fab0", "up"])?;
    }
    // The controller runs here: its metrics and its webhooks' loopback receivers need lo.
    run("ip", &["-n", &fabric, "link", "set", "lo", "up"])?;
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

/// Kills a recorded lab process, unless its pid now belongs to something else.
fn kill_lab_process(pid: i32) {
    if process_alive(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

fn remove_pod(lab: &LabState, p: &PodState) {
    if let Some(pid) = p.server_pid {
        kill_lab_process(pid);
    }
    if let Some(node) = lab.nodes.iter().find(|n| n.index == p.node) {
        let _ = cni("DEL", &lab.name, &lab.cni, node, &p.netns, &p.container_id, None);
    }
    let _ = run("ip", &["netns", "del", &p.netns]);
}

fn kill_netns_processes(ns: &str) {
    if let Ok(out) = run("ip", &["netns", "pids", ns]) {
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
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
