//! Quarantine cuts a pod off both ways, established connections included,
//! is audited, and is lifted cleanly.

use std::net::SocketAddr;

use crate::support::{Conn, Lab, pod};

fn pods() -> String {
    [pod("x", "a", "a", &["80"]), pod("x", "victim", "v", &["80"])].concat()
}

#[test]
fn quarantine_cuts_both_directions_including_established_connections() {
    let mut lab = Lab::up("quar", "bridge", 2, &pods());
    let mut conn = Conn::open(lab.netns("x/a"), SocketAddr::new(lab.ip("x/victim", false), 80));
    assert!(conn.echo(), "connection works before quarantine");
    assert!(lab.probe("x/victim", "x/a", 80, false, false));

    let out = lab.bulkhead(&["quarantine", "--lab", &lab.name, "x/victim", "--reason", "e2e: suspected compromise"]);
    assert!(out.contains("quarantined"), "{out}");

    assert!(!conn.echo(), "the established connection must be cut");
    assert!(!lab.probe("x/a", "x/victim", 80, false, false), "nothing reaches the victim");
    assert!(!lab.probe("x/victim", "x/a", 80, false, false), "the victim reaches nothing");
    assert!(!lab.probe("x/victim", "x/a", 80, false, true), "not over IPv6 either");
    let status = lab.status();
    let ep = status.iter().flat_map(|s| &s.endpoints).find(|e| e.pod == "x/victim").unwrap();
    assert!(ep.quarantined);
    assert!(lab.counter("drops_quarantine") > 0);
    lab.wait_flow("quarantine drop", |f| f.drop_reason == "quarantine");

    // the audit log says who, what and when
    let node = lab.state.pod("x/victim").unwrap().node;
    let log =
        std::fs::read_to_string(bulkhead_lab::state::dir(&lab.name).join(format!("agent-n{node}/audit.log"))).unwrap();
    assert!(
        log.contains("\"action\":\"quarantine\"")
            && log.contains("x/victim")
            && log.contains("suspected compromise")
            && log.contains("\"peer_uid\":0"),
        "{log}"
    );

    // an agent crash and restart keeps the quarantine (it lives in the pinned map)
    for n in &lab.state.nodes {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(n.agent_pid.unwrap()), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
    }
    let (cni, nodes) = (lab.state.cni.clone(), lab.state.nodes.len());
    lab.reup(&cni, nodes);
    assert!(!lab.probe("x/a", "x/victim", 80, false, false), "still cut off after the agents restarted");
    let ep = lab.status().into_iter().flat_map(|s| s.endpoints).find(|e| e.pod == "x/victim").unwrap();
    assert!(ep.quarantined, "the restarted agent knows the quarantine");

    lab.bulkhead(&["release", "--lab", &lab.name, "x/victim", "--reason", "e2e: cleared"]);
    assert!(lab.probe("x/a", "x/victim", 80, false, false), "released");
    assert!(lab.probe("x/victim", "x/a", 80, false, false), "released");
}
