//! The controller keeps the last good state in force: a rejected change
//! alters nothing (all or nothing, audited); an agent that was down when a
//! change was made is brought up to date when it returns; and a killed
//! controller leaves enforcement running and comes back with the objects
//! it was given through the API.

use std::time::{Duration, Instant};

use crate::support::{Killed, Lab, OPEN_81_TO_B, try_bulkhead, two_pods_80_of_81};

fn status(lab: &Lab) -> serde_json::Value {
    serde_json::from_str(&lab.bulkhead(&["status", "--lab", &lab.name, "-o", "json"])).unwrap()
}

/// Waits until every node of `lab` enforces the latest generation.
pub fn wait_in_sync(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(lab);
        let nodes = s["nodes"].as_array().unwrap();
        if nodes.len() == lab.state.nodes.len() && nodes.iter().all(|n| n["in_sync"] == true) {
            return;
        }
        assert!(Instant::now() < deadline, "agents not back in sync: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn file(lab: &Lab, name: &str, text: &str) -> String {
    let path = std::env::temp_dir().join(format!("bulkhead-{}-{name}.yaml", lab.name));
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn a_rejected_change_changes_nothing_and_is_audited() {
    let lab = Lab::up("ctl-bad", "bridge", 1, &two_pods_80_of_81());
    assert!(lab.probe("x/a", "x/b", 80, false, false));
    assert!(!lab.probe("x/a", "x/b", 81, false, false));
    let bad = format!(
        "{OPEN_81_TO_B}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: typo, namespace: x}}\nspec:\n  podSelector: {{}}\n  ingress: [{{from: [{{ipBlock: {{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}}}]}}]\n"
    );
    let out = try_bulkhead(&["apply", "--lab", &lab.name, "-f", &file(&lab, "bad", &bad)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an invalid object must fail the apply");
    assert!(err.contains("NetworkPolicy x/typo: spec.ingress[0].from[0].ipBlock.except[0]"), "{err}");
    assert!(!lab.probe("x/a", "x/b", 81, false, false), "the valid object in the same request was not applied either");
    assert!(lab.probe("x/a", "x/b", 80, false, false), "what was enforced still is");
    let s = status(&lab);
    assert!(s["last_error"].as_str().unwrap().contains("ipBlock.except[0]"), "{s}");
    assert_eq!(s["network_policies"], 1);
    let audit = std::fs::read_to_string(bulkhead_lab::state::dir(&lab.name).join("controller/audit.log")).unwrap();
    let rejected = audit.lines().find(|l| l.contains("\"apply rejected\"")).expect("the rejection is audited");
    assert!(rejected.contains("\"peer_uid\":0") && rejected.contains("ipBlock.except"), "{rejected}");
}

#[test]
fn a_returning_agent_is_resynced_and_a_restarted_controller_keeps_its_objects() {
    let lab = Lab::up("ctl-sync", "bridge", 2, &two_pods_80_of_81());
    let dir = bulkhead_lab::state::dir(&lab.name);
    let b_node = lab.state.pod("x/b").unwrap().node;
    let agent_pid = lab.state.nodes[b_node - 1].agent_pid.unwrap();
    let agent = Killed::kill(agent_pid, dir.join(format!("agent-n{b_node}.log")));

    // A change while b's agent is down: accepted, pending on that node.
    lab.bulkhead(&["apply", "--lab", &lab.name, "--no-wait", "-f", &file(&lab, "open81", OPEN_81_TO_B)]);
    std::thread::sleep(Duration::from_millis(500));
    let s = status(&lab);
    let behind: Vec<&serde_json::Value> =
        s["nodes"].as_array().unwrap().iter().filter(|n| n["in_sync"] == false).collect();
    assert_eq!(behind.len(), 1, "exactly b's node is behind: {s}");
    assert!(!lab.probe("x/a", "x/b", 81, false, false), "b's pinned state still enforces the old policy");

    agent.restart();
    wait_in_sync(&lab);
    assert!(lab.probe("x/a", "x/b", 81, false, false), "the returning agent got the change");

    // Controller killed: enforcement stays; restarted, it has the API's object.
    let controller = Killed::kill(lab.state.controller_pid.unwrap(), dir.join("controller.log"));
    assert!(lab.probe("x/a", "x/b", 81, false, false));
    assert!(lab.probe("x/a", "x/b", 80, false, false));
    controller.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !try_bulkhead(&["status", "--lab", &lab.name]).status.success() {
        assert!(Instant::now() < deadline, "controller did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_in_sync(&lab);
    assert_eq!(status(&lab)["network_policies"], 2, "the policy applied through the API survived the restart");
    assert!(lab.probe("x/a", "x/b", 81, false, false));
}
