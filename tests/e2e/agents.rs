//! Agents reach the controller over TCP with mTLS, as on a real cluster:
//! the lab's agents dial the agents port from their node namespaces. A
//! stranger's certificate is refused and audited; a revoked node is cut off
//! at once and keeps enforcing its last state, and is re-admitted when the
//! revocation is lifted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bulkhead_api::tunnel::tls;
use bulkhead_controller::auth::pki::Ca;

use crate::support::{Lab, OPEN_81_TO_B, two_pods_80_of_81};

/// A directory of the test's own, removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nodes(lab: &Lab) -> Vec<serde_json::Value> {
    let s: serde_json::Value =
        serde_json::from_str(&lab.bulkhead(&["status", "--lab", &lab.name, "-o", "json"])).unwrap();
    s["nodes"].as_array().unwrap().clone()
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn audit(lab: &Lab) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(bulkhead_lab::state::dir(&lab.name).join("controller/audit.log")).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Dials the agents port from the lab's outside namespace with `cert` and
/// `key`, and says whether the controller kept the connection open.
fn stranger_dials(lab: &Lab, ca: &Path, cert: &Path, key: &Path) -> bool {
    let netns = bulkhead_lab::netns::path(&bulkhead_lab::probe::outside_netns(&lab.name));
    let (ca, cert, key) = (ca.to_path_buf(), cert.to_path_buf(), key.to_path_buf());
    std::thread::spawn(move || {
        bulkhead_cni::netns::enter(&netns).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use tokio::io::AsyncReadExt;
            let connector = tls::connector(&ca, &cert, &key).unwrap();
            let addr = bulkhead_lab::api::agents_addr().to_string();
            let name = bulkhead_lab::api::CONTROLLER_IP.to_string();
            let Ok(mut io) = tls::dial(&connector, &addr, &name).await else { return false };
            // TLS 1.3 finishes the client's side first; a refusal then closes it.
            let mut buf = [0u8; 64];
            match tokio::time::timeout(Duration::from_secs(3), io.read(&mut buf)).await {
                Err(_) => true,
                Ok(Ok(n)) => n > 0,
                Ok(Err(_)) => false,
            }
        })
    })
    .join()
    .unwrap()
}

#[test]
fn strangers_are_refused_and_a_revoked_node_is_cut_off_until_readmitted() {
    let lab = Lab::up("agt-tls", "bridge", 2, &two_pods_80_of_81());
    let dir = bulkhead_lab::state::dir(&lab.name);
    let api = bulkhead_lab::api::prepare(&dir).unwrap();
    assert!(nodes(&lab).iter().all(|n| n["in_sync"] == true), "both agents registered over TCP: {:?}", nodes(&lab));
    let connected: Vec<_> = audit(&lab).into_iter().filter(|r| r["action"] == "agent-connected").collect();
    assert_eq!(connected.len(), 2, "{connected:?}");
    assert!(connected.iter().all(|r| r["source"].as_str().unwrap().starts_with("172.30.0.")), "{connected:?}");
    // The agent audits what the controller applied through the tunnel it dialed.
    let agent_audit = std::fs::read_to_string(dir.join("agent-n1/audit.log")).unwrap();
    assert!(agent_audit.contains("(mTLS)"), "{agent_audit}");

    // Strangers: a certificate of another CA naming a real node, and the
    // controller's own server certificate presented as a client's.
    let scratch = Scratch(std::env::temp_dir().join(format!("bh-agt-tls-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let node1 = lab.state.nodes[0].name.clone();
    let rogue = Ca::generate("rogue CA").unwrap().agent(&node1).unwrap();
    let (rogue_cert, rogue_key) = (scratch.0.join("rogue.pem"), scratch.0.join("rogue.key"));
    std::fs::write(&rogue_cert, &rogue.cert).unwrap();
    std::fs::write(&rogue_key, &rogue.key).unwrap();
    assert!(!stranger_dials(&lab, &api.ca_file, &rogue_cert, &rogue_key), "another CA's agent was admitted");
    assert!(!stranger_dials(&lab, &api.ca_file, &api.cert_file, &api.key_file), "a server certificate was admitted");
    let refused = || -> Vec<serde_json::Value> {
        audit(&lab)
            .into_iter()
            .filter(|r| r["action"] == "agent-refused" && r["outcome"] == "refused")
            .filter(|r| r["source"].as_str().unwrap().starts_with(&format!("{}:", bulkhead_lab::probe::OUTSIDE_IP)))
            .collect()
    };
    // The dialer sees the refusal before the controller has written it down.
    wait("both strangers audited", Duration::from_secs(5), || refused().len() >= 2);
    assert_eq!(refused().len(), 2, "each stranger is audited once: {:?}", refused());
    // A valid agent certificate of the lab's CA still gets in (a new node registering).
    let newcomer = bulkhead_lab::api::agent_files(&api, "newcomer").unwrap();
    assert!(stranger_dials(&lab, &api.ca_file, &newcomer.cert, &newcomer.key), "a node of the lab's CA was refused");
    assert!(nodes(&lab).iter().any(|n| n["in_sync"] == true && n["node"] == node1), "the real agent kept its place");
    // Gone again, and named by no Node object: it leaves the status, not a stale "not in sync".
    wait("the newcomer out of the status", Duration::from_secs(15), || {
        nodes(&lab).iter().all(|n| n["node"] != "newcomer")
    });

    // Revoke b's node: its connection is cut, and the change made meanwhile
    // reaches a's node only; b's pinned state keeps enforcing.
    let b_node = lab.state.nodes[lab.state.pod("x/b").unwrap().node - 1].name.clone();
    let revoked = bulkhead_lab::api::revoked_file(&api);
    let before = std::fs::read_to_string(&revoked).unwrap();
    std::fs::write(&revoked, format!("{before}{b_node}\n")).unwrap();
    wait("the revoked node cut", Duration::from_secs(5), || {
        audit(&lab).iter().any(|r| r["action"] == "agent-revoked" && r["target"] == format!("node {b_node}"))
    });
    let path = scratch.0.join("open81.yaml");
    std::fs::write(&path, OPEN_81_TO_B).unwrap();
    lab.bulkhead(&["apply", "--lab", &lab.name, "--no-wait", "-f", &path.to_string_lossy()]);
    wait("only the revoked node behind", Duration::from_secs(10), || {
        let n = nodes(&lab);
        n.iter().any(|n| n["node"] == b_node && n["in_sync"] == false)
            && n.iter().all(|n| n["node"] == b_node || n["node"] == "newcomer" || n["in_sync"] == true)
    });
    assert!(!lab.probe("x/a", "x/b", 81, false, false), "the revoked node still enforces its last state");
    assert!(lab.probe("x/a", "x/b", 80, false, false), "and still allows what it allowed");
    wait("the revoked agent's redial refused", Duration::from_secs(10), || {
        audit(&lab).iter().any(|r| {
            r["action"] == "agent-refused"
                && r["target"] == format!("node {b_node}")
                && r["detail"].as_str().unwrap().contains("revoked")
        })
    });

    // Lifted: the agent's next dial is admitted and it catches up.
    std::fs::write(&revoked, before).unwrap();
    wait("the re-admitted node in sync", Duration::from_secs(20), || {
        nodes(&lab).iter().any(|n| n["node"] == b_node && n["in_sync"] == true)
    });
    assert!(lab.probe("x/a", "x/b", 81, false, false), "the re-admitted node got the change");
}
