//! The lab's processes (agents, controller, pod servers): starting them, waiting for them, stopping only those it started.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_api::agent::v1 as pb;

use crate::error::LabError;
use crate::shell::run;
use crate::state::{self, LabState, NodeState};

pub(super) fn spawn(exe: &Path, args: &[&str], netns: Option<&str>, log: &Path) -> Result<i32, LabError> {
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

pub(super) fn alive(pid: Option<i32>) -> bool {
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

pub(super) fn start_agent(lab: &LabState, node: &mut NodeState, exe: &Path) -> Result<(), LabError> {
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
    // The agent dials the controller over the fabric with its node certificate.
    let api = crate::api::prepare(&dir)?;
    let files = crate::api::agent_files(&api, &node.name)?;
    let controller = crate::api::agents_addr().to_string();
    let (ca, cert, key) = (api.ca_file.to_string_lossy(), files.cert.to_string_lossy(), files.key.to_string_lossy());
    let uplink = ["--controller", &controller, "--controller-ca", &ca, "--tls-cert", &cert, "--tls-key", &key];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(uplink);
    args.extend(lab.agent_args.iter().map(String::as_str));
    node.agent_pid = Some(spawn(exe, &args, None, &log)?);
    Ok(())
}

pub(super) async fn wait_agent(
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
pub(super) fn start_controller(lab: &mut LabState, inventory: &Path, exe: &Path) -> Result<(), LabError> {
    if let Some(pid) = lab.controller_pid.take() {
        kill_lab_process(pid);
    }
    // A controller restarted by hand (not the recorded pid) runs in the
    // fabric namespace too, holding the API's port: stop it and wait.
    let fabric_ns = super::fabric_netns(&lab.name);
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
    let fabric = crate::netns::path(&super::fabric_netns(&lab.name)).to_string_lossy().into_owned();
    let mut args: Vec<String> = [
        "controller",
        "--netns",
        &fabric,
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
    let api = api_for(lab, &dir)?;
    // Agents register on the agents port; none is listed.
    for (flag, value) in [
        ("--agent-listen", crate::api::agents_addr().to_string()),
        ("--agent-tls-ca", api.ca_file.to_string_lossy().into_owned()),
        ("--agent-tls-cert", api.cert_file.to_string_lossy().into_owned()),
        ("--agent-tls-key", api.key_file.to_string_lossy().into_owned()),
        ("--revoked-agents", crate::api::revoked_file(&api).to_string_lossy().into_owned()),
    ] {
        args.extend([flag.to_string(), value]);
    }
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
    // The cluster is "lab" unless a --controller-arg names it.
    if !lab.controller_args.iter().any(|a| a == "--cluster" || a.starts_with("--cluster=")) {
        args.extend(["--cluster".to_string(), crate::inventory::CLUSTER.to_string()]);
    }
    args.extend(lab.controller_args.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.controller_pid = Some(spawn(exe, &args, None, &dir.join("controller.log"))?);
    Ok(())
}

/// The lab's API: its files (made once), on the port it had, or a free one.
pub(super) fn api_for(lab: &LabState, dir: &Path) -> Result<crate::api::LabApi, LabError> {
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

/// Kills a recorded lab process, unless its pid now belongs to something else.
pub(super) fn kill_lab_process(pid: i32) {
    if process_alive(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

pub(super) fn kill_netns_processes(ns: &str) {
    if let Ok(out) = run("ip", &["netns", "pids", ns]) {
        for pid in out.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
