//! `lab up` is idempotent; `lab down` leaves nothing behind, even after a crash.

use crate::support::{Lab, pod};

const PODS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: z, labels: {tier: gold}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: z}
spec:
  replicas: 3
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
---
apiVersion: v1
kind: Pod
metadata: {name: fixed, namespace: z, labels: {app: fixed}}
spec: {containers: [{name: c, ports: [{containerPort: 80}]}]}
status: {podIP: 10.244.1.77}
"#;

#[test]
fn up_is_idempotent_and_down_removes_everything() {
    let mut lab = Lab::up("life", "ptp", 2, PODS);
    assert_eq!(lab.state.pods.len(), 4);
    assert_eq!(lab.ip("z/fixed", false).to_string(), "10.244.1.77");
    assert_eq!(lab.state.namespaces["z"].get("kubernetes.io/metadata.name").map(String::as_str), Some("z"));
    let before = lab.state.pods.clone();
    lab.reup("ptp", 2);
    assert_eq!(lab.state.pods, before, "a second up changes nothing");
    assert!(lab.probe("z/web-0", "z/web-1", 80, false, false), "cross-node pod to pod");

    // simulate a crash: lose the state file, then down must still find everything
    let name = lab.name.clone();
    std::fs::remove_file(bulkhead_lab::state::dir(&name).join("state.json")).unwrap();
    lab.bulkhead(&["lab", "down", "--name", &name]);
    assert!(bulkhead_lab::netns::list(&format!("bh_{name}_")).is_empty(), "namespaces left");
    let pins = std::fs::read_dir("/sys/fs/bpf/bulkhead")
        .map(|d| d.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(&format!("{name}_n"))))
        .unwrap_or(false);
    assert!(!pins, "pins left");
    for n in &lab.state.nodes {
        let alive = bulkhead_lab::lifecycle::process_alive(n.agent_pid.unwrap());
        assert!(!alive, "agent of {} still running", n.name);
    }
}

#[test]
fn malformed_manifests_are_rejected_with_file_and_field() {
    let bad = std::env::temp_dir().join(format!("bulkhead-bad-{}.yaml", std::process::id()));
    std::fs::write(&bad, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, ports: [{containerPort: 70000}]}]}\n").unwrap();
    let out = std::process::Command::new(crate::support::BIN)
        .args(["lab", "up", "--name", &format!("bad{}", std::process::id() % 10000), "-f", &bad.to_string_lossy()])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&bad);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("document 0") && err.contains("containerPort"), "{err}");
}

fn two() -> String {
    [pod("x", "a", "a", &["80"]), pod("x", "gone", "gone", &["80"])].concat()
}

#[test]
fn a_deleted_pod_is_detached_and_its_pins_removed() {
    let lab = Lab::up("reap", "bridge", 1, &two());
    let ep = lab.status()[0].endpoints.iter().find(|e| e.pod == "x/gone").cloned().unwrap();
    assert!(ep.attached);
    let links = std::path::PathBuf::from(format!("/sys/fs/bpf/bulkhead/{}_n1/links", lab.name));
    let pin = links.join(format!("{}-tc-from-pod", ep.ifindex));
    assert!(pin.exists());
    // the pod goes away: its process, its namespace, and with them the veth pair
    let pod = lab.state.pod("x/gone").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pod.server_pid.unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let out = std::process::Command::new("ip").args(["netns", "del", &pod.netns]).output().unwrap();
    assert!(out.status.success());
    let mut detached = false;
    for _ in 0..50 {
        let ep = lab.status()[0].endpoints.iter().find(|e| e.pod == "x/gone").cloned().unwrap();
        if !ep.attached && !pin.exists() {
            assert!(ep.error.contains("disappeared"), "{}", ep.error);
            detached = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(detached, "the agent must notice the pod is gone and drop its links");
    assert!(lab.probe("x/a", "x/a", 80, false, false));
}

#[test]
fn an_unchanged_state_is_renumbered_without_map_writes_and_a_vanished_pod_is_still_noticed() {
    use bulkhead_api::agent::v1 as pb;
    use prost::Message;
    let lab = Lab::up("renum", "bridge", 1, &two());
    let saved = bulkhead_lab::state::dir(&lab.name).join("agent-n1/desired.pb");
    let mut state = pb::DesiredState::decode(&*std::fs::read(&saved).unwrap()).unwrap();
    // Far ahead of the controller's numbering, so its own pushes cannot interleave.
    state.generation += 1_000_000_000_000;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut agent = rt.block_on(bulkhead_lab::lifecycle::agent_for(&lab.state, "x/a")).unwrap();
    let r = rt.block_on(agent.apply_state(state.clone())).unwrap().into_inner();
    assert_eq!((r.generation, r.endpoints_attached, r.map_writes), (state.generation, 2, 0), "{r:?}");
    assert!(r.problems.is_empty(), "{r:?}");
    let st = rt.block_on(agent.get_status(pb::StatusRequest {})).unwrap().into_inner();
    assert_eq!(st.generation, state.generation);
    assert!(lab.probe("x/a", "x/gone", 80, false, false), "still enforced as before");

    // The same state again, but a pod's interface went away behind the agent's back.
    let pod = lab.state.pod("x/gone").unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pod.server_pid.unwrap()), nix::sys::signal::Signal::SIGKILL)
        .unwrap();
    let out = std::process::Command::new("ip").args(["netns", "del", &pod.netns]).output().unwrap();
    assert!(out.status.success());
    // The kernel tears a namespace down asynchronously: push until its veth is gone.
    let mut last = None;
    for _ in 0..50 {
        state.generation += 1;
        let r = rt.block_on(agent.apply_state(state.clone())).unwrap().into_inner();
        if r.endpoints_attached == 1 {
            last = Some(r);
            break;
        }
        assert_eq!((r.endpoints_attached, r.map_writes), (2, 0), "{r:?}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = last.expect("the vanished pod's interface must stop counting as attached");
    assert!(r.problems.iter().any(|p| p.pod == "x/gone"), "the vanished pod is reported: {r:?}");
}

#[test]
fn any_pod_cidr_and_any_address_inside_it_including_the_first_one() {
    // k3s' range; a pod asks for .1 of node 1's slice (the gateway moves off
    // it) and one for a slice no node owns by default (it is served anyway).
    let manifests = [
        pod("k", "a", "a", &["80"]).replace("spec:", "status: {podIP: 10.42.1.1}\nspec:"),
        pod("k", "b", "b", &["80"]).replace("spec:", "status: {podIP: 10.42.7.9}\nspec:"),
        pod("k", "c", "c", &["80"]),
    ]
    .concat();
    let lab = Lab::up_with("cidr", "bridge", 2, &manifests, &["--pod-cidr", "10.42.0.0/16"]);
    assert_eq!(lab.ip("k/a", false).to_string(), "10.42.1.1");
    assert_eq!(lab.ip("k/b", false).to_string(), "10.42.7.9");
    assert!(lab.ip("k/c", false).to_string().starts_with("10.42."), "{}", lab.ip("k/c", false));
    for (from, to) in [("k/a", "k/b"), ("k/b", "k/c"), ("k/c", "k/a")] {
        assert!(lab.probe(from, to, 80, false, false), "{from} -> {to}");
    }
    // Outside the CIDR: refused, naming the pod and the CIDR.
    let outside = pod("k", "d", "d", &["80"]).replace("spec:", "status: {podIP: 10.244.1.5}\nspec:");
    let file = std::env::temp_dir().join(format!("bulkhead-{}-outside.yaml", lab.name));
    std::fs::write(&file, outside).unwrap();
    let f = file.to_string_lossy().into_owned();
    let name = format!("{}x", lab.name);
    let out = crate::support::try_bulkhead(&["lab", "up", "--name", &name, "--pod-cidr", "10.42.0.0/16", "-f", &f]);
    let _ = crate::support::try_bulkhead(&["lab", "down", "--name", &name]);
    let _ = std::fs::remove_file(&file);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("k/d") && err.contains("outside the pod CIDR 10.42.0.0/16"), "{err}");
}
