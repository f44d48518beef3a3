//! `kill -9` of the agents under continuous traffic opens no gap: allowed
//! connections keep flowing, denied ones stay denied, and the restarted
//! agents adopt the pinned state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bulkhead_lab::probe::{self, Probe};

use crate::support::{Conn, Lab, netpol, pod};

fn pods() -> String {
    [
        pod("x", "a", "a", &["80"]),
        pod("x", "b", "b", &["80", "81"]),
        pod("y", "c", "c", &["80"]),
        netpol("b-from-a", "b", "ingress", &["{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}"]),
    ]
    .concat()
}

#[test]
fn kill_9_of_the_agents_breaks_nothing_and_opens_nothing() {
    let mut lab = Lab::up("kill9", "bridge", 2, &pods());
    let b = SocketAddr::new(lab.ip("x/b", false), 80);
    let mut conns: Vec<Conn> = (0..3).map(|_| Conn::open(lab.netns("x/a"), b)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (state, stop, ok, bad) = (lab.state.clone(), stop.clone(), ok.clone(), bad.clone());
        std::thread::spawn(move || {
            let allowed = Probe { from: "x/a".into(), to: "x/b".into(), ip: b.ip(), port: 80, udp: false, dns: None };
            let denied = [
                Probe { from: "y/c".into(), to: "x/b".into(), ip: b.ip(), port: 80, udp: false, dns: None },
                Probe { from: "x/a".into(), to: "x/b".into(), ip: b.ip(), port: 81, udp: false, dns: None },
            ];
            while !stop.load(Ordering::Relaxed) {
                let mut all = vec![allowed.clone()];
                all.extend(denied.iter().cloned());
                let r = probe::run(&state, &all, Duration::from_millis(1500)).unwrap();
                if r[0].connected && !r[1].connected && !r[2].connected {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                    eprintln!("violation: {r:?}");
                }
            }
        })
    };

    std::thread::sleep(Duration::from_millis(500));
    for n in &lab.state.nodes {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(n.agent_pid.unwrap()), nix::sys::signal::Signal::SIGKILL)
            .unwrap();
    }
    // no agent at all: the pinned programs keep enforcing
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        for c in &mut conns {
            assert!(c.echo(), "established connection broke while the agents were dead");
        }
    }
    // restart (lab up restarts dead agents and re-pushes the same state)
    let cni = lab.state.cni.clone();
    lab.reup(&cni, 2);
    for c in &mut conns {
        assert!(c.echo(), "established connection broke across the agent restart");
    }
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert_eq!(bad.load(Ordering::Relaxed), 0, "some allowed probe failed or some denied probe passed");
    assert!(ok.load(Ordering::Relaxed) >= 3, "too few probe rounds ran");
    let log = std::fs::read_to_string(bulkhead_lab::state::dir(&lab.name).join("agent-n1.log")).unwrap();
    assert!(log.contains("adopted") && log.contains("true"), "the new agent must adopt the pinned state:\n{log}");
}
