//! `bulkhead install` against the real schemas and the real scanner: the
//! output of several flag sets passes kubernetes-validate (PyPI) in strict
//! mode for the newest Kubernetes it knows, and checkov (PyPI) finds
//! exactly the accepted risks of `deploy/checkov-justified.yaml`, no more.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::support::{Killed, Lab, netpol, pod, try_bulkhead};

/// A directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("bulkhead-install-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tool(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin").join(name);
    assert!(path.exists(), "{} is missing: run scripts/install-deps.sh (it installs {name})", path.display());
    path
}

/// `bulkhead install ARGS`, written to DIR/NAME.yaml.
fn install(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = try_bulkhead(&[&["install"], args].concat());
    assert!(out.status.success(), "install {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn validate(file: &Path) -> (bool, String) {
    let out = Command::new(tool("kubernetes-validate")).args(["--strict", "--quiet"]).arg(file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Failed checkov checks as (check, resource).
fn checkov(file: &Path) -> BTreeSet<(String, String)> {
    let out = Command::new(tool("checkov"))
        .arg("-f")
        .arg(file)
        .args(["--framework", "kubernetes", "-o", "json", "--skip-download", "--quiet"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov's report: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(report["summary"]["passed"].as_u64().unwrap() > 50, "checkov checked little: {}", report["summary"]);
    report["results"]["failed_checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check_id"].as_str().unwrap().to_string(), f["resource"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn install_output_is_valid_for_kubernetes_1_37_in_strict_mode() {
    let dir = Scratch::new("validate");
    let files = [
        install(&dir.0, "defaults", &[]),
        install(&dir.0, "secrets", &["--generate-secrets"]),
        install(
            &dir.0,
            "custom",
            &[
                "--namespace=sec-ops",
                "--cluster=eu-west",
                "--mode=enforce",
                "--image=registry.example/bulkhead@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "--image-pull-policy=Always",
                "--storage-class=fast",
            ],
        ),
        install(&dir.0, "ephemeral", &["--ephemeral-state", "--generate-secrets"]),
        install(&dir.0, "ha", &["--ha", "--generate-secrets", "--storage-class=fast"]),
        install(&dir.0, "ha-ephemeral", &["--ha", "--ephemeral-state"]),
    ];
    let cleanup = try_bulkhead(&["uninstall", "--node-cleanup"]);
    assert!(cleanup.status.success());
    let cleanup_file = dir.0.join("cleanup.yaml");
    std::fs::write(&cleanup_file, &cleanup.stdout).unwrap();
    for f in files.iter().chain([&cleanup_file]) {
        let (ok, text) = validate(f);
        assert!(ok, "{}:\n{text}", f.display());
    }
    // The validator does reject what the API server would: a misspelt field.
    let text = std::fs::read_to_string(&files[0]).unwrap().replace("hostNetwork: true", "hostNetwrk: true");
    let broken = dir.0.join("broken.yaml");
    std::fs::write(&broken, text).unwrap();
    let (ok, text) = validate(&broken);
    assert!(!ok && text.contains("hostNetwrk"), "{text}");
}

#[test]
fn checkov_finds_only_the_justified_risks() {
    let dir = Scratch::new("checkov");
    let file = install(&dir.0, "secrets", &["--generate-secrets"]);
    let mut failed = checkov(&file);
    failed.extend(checkov(&install(&dir.0, "ha", &["--ha", "--generate-secrets"])));
    let cleanup = try_bulkhead(&["uninstall", "--node-cleanup"]);
    assert!(cleanup.status.success());
    let cleanup_file = dir.0.join("cleanup.yaml");
    std::fs::write(&cleanup_file, &cleanup.stdout).unwrap();
    failed.extend(checkov(&cleanup_file));
    let baseline: Vec<serde_json::Value> = serde_yaml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/checkov-justified.yaml"))
            .unwrap(),
    )
    .unwrap();
    let justified: BTreeSet<(String, String)> = baseline
        .iter()
        .map(|e| {
            assert!(e["reason"].as_str().is_some_and(|r| r.len() > 20), "an entry without a reason: {e:?}");
            (e["check"].as_str().unwrap().to_string(), e["resource"].as_str().unwrap().to_string())
        })
        .collect();
    let unjustified: Vec<_> = failed.difference(&justified).collect();
    assert!(unjustified.is_empty(), "checkov findings not in deploy/checkov-justified.yaml: {unjustified:?}");
    let stale: Vec<_> = justified.difference(&failed).collect();
    assert!(stale.is_empty(), "entries of deploy/checkov-justified.yaml that no longer fail: {stale:?}");
    // The justification for image digests and pull policy holds: with both set, those checks pass.
    let pinned = install(
        &dir.0,
        "pinned",
        &[
            "--image=registry.example/bulkhead@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--image-pull-policy=Always",
        ],
    );
    let left: Vec<_> = checkov(&pinned).into_iter().filter(|(c, _)| c == "CKV_K8S_43" || c == "CKV_K8S_15").collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Capability numbers (linux/capability.h) of the names a manifest adds.
fn capability_bit(name: &str) -> u32 {
    match name {
        "NET_ADMIN" => 12,
        "SYS_ADMIN" => 21,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("a capability this test does not know: {other}"),
    }
}

#[test]
fn the_agent_loads_enforces_and_reads_sockets_with_only_the_daemon_sets_capabilities() {
    let out = try_bulkhead(&["install"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let ds = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .find(|o| o["kind"] == "DaemonSet")
        .unwrap();
    let sc = &ds["spec"]["template"]["spec"]["containers"][0]["securityContext"];
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    let add: Vec<String> =
        sc["capabilities"]["add"].as_sequence().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    let bounding =
        format!("-all,{}", add.iter().map(|c| format!("+{}", c.to_lowercase())).collect::<Vec<_>>().join(","));
    let want: u64 = add.iter().map(|c| 1u64 << capability_bit(c)).sum();

    let manifests = [pod("x", "a", "a", &["80"]), pod("x", "b", "b", &["80"])].concat();
    let lab = Lab::up("caps", "bridge", 1, &manifests);
    let node = &lab.state.nodes[0];
    let dir = bulkhead_lab::state::dir(&lab.name);
    let deny = dir.join("caps-deny.yaml");
    std::fs::write(&deny, netpol("deny-b", "b", "ingress", &[])).unwrap();
    lab.bulkhead(&["apply", "-f", deny.to_str().unwrap(), "--lab", &lab.name]);
    assert!(!lab.probe("x/a", "x/b", 80, false, false));
    let killed = Killed::kill(node.agent_pid.unwrap(), dir.join("agent-n1.log"));
    // Without its pins the agent must load and attach everything anew, as
    // on a rebooted node, and enforce the state it saved before any change.
    std::fs::remove_dir_all(Path::new("/sys/fs/bpf/bulkhead").join(&node.name)).unwrap();
    let pid = killed.restart_under(&["setpriv", &format!("--bounding-set={bounding}"), "--inh-caps=-all"]);
    // Read it once setpriv has exec'd the agent.
    let agent = std::fs::canonicalize(env!("CARGO_BIN_EXE_bulkhead")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&agent) {
        assert!(std::time::Instant::now() < deadline, "setpriv did not start the agent");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let eff = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    assert_eq!(u64::from_str_radix(eff, 16).unwrap(), want, "the agent runs with exactly {add:?}");

    // Ready as its readiness probe says, then both pods attached and their
    // sockets read (setns needs SYS_ADMIN).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !Command::new("ip")
        .args(["netns", "exec", &node.netns, "curl", "-sf", "http://127.0.0.1:9965/readyz"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(std::time::Instant::now() < deadline, "the agent is not ready in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    loop {
        let st = lab.status();
        let eps = &st[0].endpoints;
        let read = eps.len() == 2
            && eps
                .iter()
                .all(|e| e.attached && e.listeners_error.is_empty() && e.listeners.iter().any(|l| l.port == 80));
        if read {
            break;
        }
        if std::time::Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("agent-n1.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(25).collect();
            panic!("not attached and read in 30 s: {eps:?}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(!lab.probe("x/a", "x/b", 80, false, false), "the saved state is enforced again at once");
    assert!(lab.probe("x/b", "x/a", 80, false, false));
    let allow = dir.join("caps-allow.yaml");
    std::fs::write(&allow, netpol("deny-b", "b", "ingress", &["{from: [{podSelector: {matchLabels: {app: a}}}]}"]))
        .unwrap();
    lab.bulkhead(&["apply", "-f", allow.to_str().unwrap(), "--lab", &lab.name]);
    assert!(lab.probe("x/a", "x/b", 80, false, false), "a change after the restart is enforced");
}

#[test]
fn node_cleanup_detaches_everything_once_the_agent_is_gone() {
    let manifests = [pod("x", "a", "a", &["80"]), pod("x", "b", "b", &["80"])].concat();
    let lab = Lab::up("cleanup", "bridge", 1, &manifests);
    let node = &lab.state.nodes[0];
    let dir = bulkhead_lab::state::dir(&lab.name);
    let deny = dir.join("cleanup-deny.yaml");
    std::fs::write(&deny, netpol("deny-b", "b", "ingress", &[])).unwrap();
    lab.bulkhead(&["apply", "-f", deny.to_str().unwrap(), "--lab", &lab.name]);
    assert!(!lab.probe("x/a", "x/b", 80, false, false));
    // The agent stopped (the DaemonSet deleted): enforcement stays, fail static.
    let _gone = Killed::kill(node.agent_pid.unwrap(), dir.join("agent-n1.log"));
    assert!(!lab.probe("x/a", "x/b", 80, false, false), "still enforced without the agent");
    let out = try_bulkhead(&["node-cleanup", "--node", &node.name]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Two pods, two hooks each, and the uplink's prefilter.
    assert!(text.contains("5 links detached"), "{text}");
    assert!(!Path::new("/sys/fs/bpf/bulkhead").join(&node.name).exists());
    assert!(lab.probe("x/a", "x/b", 80, false, false), "nothing of Bulkhead is left in the path");
    let again = try_bulkhead(&["node-cleanup", "--node", &node.name]);
    assert!(again.status.success() && String::from_utf8_lossy(&again.stdout).contains("nothing pinned"));
}
