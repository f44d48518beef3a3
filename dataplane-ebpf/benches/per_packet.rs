//! Per-packet cost of the real programs through BPF_PROG_TEST_RUN, at 10,
//! 1 000, 10 000 and 100 000 policy entries with 100 000 ipcache entries,
//! compared in one run. Prints JSON (one object) on stdout.
//!
//! - established: an ACK of a tracked, allowed connection (one conntrack hit);
//! - new_denied: a SYN decided by policy every time (all lookups, then drop);
//! - new_allowed: SYNs of distinct connections (policy, conntrack insert).
//!
//! The block list is measured the same way: 1 000 policy entries with none
//! and with 10 000 blocked prefixes, on the pods' TC programs and on the
//! uplink's XDP prefilter (a packet it passes).
//!
//! Payload sampling is measured as a pair too, 1 000 policy entries with
//! sampling on (the default) and off, adding two packets to the pod: a data
//! segment of an established connection it serves (sampled once, before the
//! measurement) and new UDP datagrams with a payload (each one a sample, or
//! a counted skip once the pod's sample budget is spent).
//!
//! Flow events are disabled during measurement so a full ring cannot distort it.
//! Run: `cargo bench -p bulkhead-dataplane --bench per_packet` (as root).
//! Sizes are measured interleaved, round by round, against a same-run floor
//! (a program doing one hash lookup), because this machine is shared and noisy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};

use bulkhead_dataplane::abi;
use bulkhead_dataplane::maps::EndpointEntry;
use bulkhead_dataplane::model::{Action, Direction, Mode, proto};
use bulkhead_dataplane::packet::{self, tcp};
use bulkhead_dataplane::table::{PolicyEntry, PolicyTable};
use bulkhead_dataplane::testrun::{Hook, TC_DROP, TC_PASS, TEST_IFINDEX, TestBed, XDP_PASS};
use bulkhead_dataplane::transition::{self, KernelState};

const EP: u32 = 1;
const POD: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);
const REPEAT: u32 = 1_000_000;
const BLOCKS: usize = 10_000;

/// Blocked prefixes, none covering the bench's own addresses: /32s and /24s
/// spread over 100.64.0.0/10, so the trie branches as a real list would.
fn block_list(bed: &mut TestBed, blocks: usize) {
    for i in 0..blocks as u32 {
        // 100.64.0.0 + i * 256 stays below 100.103/16, inside the /10, for i < 10 000.
        let (addr, len) = if i % 4 == 0 { (0x6440_0000 + (i << 8), 24) } else { (0x6440_0000 + i * 37, 32) };
        let net = ipnetwork::IpNetwork::new(IpAddr::V4(Ipv4Addr::from(addr)), len).unwrap();
        bed.maps.put_block(&net, i + 1).unwrap();
    }
}

fn setup(entries: usize, blocks: usize, sampling: bool) -> TestBed {
    let mut bed = TestBed::new("bench").expect("load programs (root, bpffs)");
    let mut cfg = bed.maps.config().unwrap();
    cfg.flags |= abi::BH_CFG_F_EVENTS_DISABLED;
    if !sampling {
        cfg.flags |= abi::BH_CFG_F_SAMPLES_DISABLED;
    }
    bed.maps.set_config(cfg).unwrap();
    // 100 000 ipcache entries: /32s across 10.1.0.0/16 .. plus the pods
    for i in 0..100_000u32 {
        let a = Ipv4Addr::from(0x0a01_0000 + i);
        bed.maps.put_ipcache(&ipnetwork::IpNetwork::new(IpAddr::V4(a), 32).unwrap(), 1000 + (i % 5000)).unwrap();
    }
    bed.maps.put_ipcache(&"10.0.0.1/32".parse().unwrap(), 300).unwrap();
    bed.maps.put_ipcache(&"10.0.0.2/32".parse().unwrap(), 301).unwrap();
    bed.maps.put_ipcache(&"10.0.0.3/32".parse().unwrap(), 302).unwrap();
    // `entries` policy entries: the one that matters plus filler on other endpoints, peers and ports
    let mut rules = vec![PolicyEntry {
        endpoint_id: EP,
        identity: 301,
        direction: Direction::Egress,
        protocol: proto::TCP,
        port: 80,
        end_port: 0,
        action: Action::Allow,
        rule_id: 1,
    }];
    // what the pod serves: TCP 6379 and UDP 53 from the peer
    for (protocol, port, rule_id) in [(proto::TCP, 6379, 2), (proto::UDP, 53, 3)] {
        rules.push(PolicyEntry {
            endpoint_id: EP,
            identity: 301,
            direction: Direction::Ingress,
            protocol,
            port,
            end_port: 0,
            action: Action::Allow,
            rule_id,
        });
    }
    for i in 1..entries as u32 {
        rules.push(PolicyEntry {
            endpoint_id: 2 + i % 1000,
            identity: 1000 + (i / 1000) % 5000,
            direction: if i % 2 == 0 { Direction::Egress } else { Direction::Ingress },
            protocol: proto::TCP,
            port: 1 + (i % 60000) as u16,
            end_port: 0,
            action: Action::Allow,
            rule_id: i + 1,
        });
    }
    let table = PolicyTable::build(&rules).unwrap();
    let mut new = KernelState { table, ..Default::default() };
    new.endpoints.insert(
        TEST_IFINDEX,
        EndpointEntry {
            ifindex: TEST_IFINDEX,
            endpoint_id: EP,
            identity: 300,
            mode: [Mode::Enforce, Mode::Enforce],
            isolated: [true, true],
            ipv4: Some(POD),
            ipv6: None,
            has_ranges: false,
        },
    );
    for op in transition::plan(&KernelState::default(), &new).unwrap() {
        transition::apply(&mut bed.maps, &op).unwrap();
    }
    block_list(&mut bed, blocks);
    bed
}

fn ns(bed: &mut TestBed, pkt: &[u8], want: u32, repeat: u32) -> f64 {
    run_ns(bed, Hook::FromPod, pkt, want, repeat)
}

fn run_ns(bed: &mut TestBed, hook: Hook, pkt: &[u8], want: u32, repeat: u32) -> f64 {
    let r = bed.run(hook, pkt, repeat).unwrap();
    assert_eq!(r.retval, want, "unexpected verdict while benchmarking");
    r.per_run.as_nanos() as f64
}

/// One bed per size, with an established connection ready.
struct Case {
    bed: TestBed,
    blocks: usize,
    sampling: bool,
    served_est: Vec<f64>,
    served_new_total: f64,
    prefilter: Vec<f64>,
    est: Vec<f64>,
    denied: Vec<f64>,
    new_total: f64,
    new_runs: u32,
}

const ROUNDS: usize = 7;
const NEW_PER_ROUND: u32 = 3_000;

fn measure_all(sizes: &[(usize, usize, bool)]) -> Vec<serde_json::Value> {
    let (pod, peer, stranger) = (IpAddr::V4(POD), IpAddr::V4(PEER), IpAddr::V4(STRANGER));
    let ack = packet::tcp(pod, peer, 40000, 80, tcp::ACK);
    let request = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    let served_l4 = packet::L4::Tcp { sport: 50000, dport: 6379, flags: tcp::ACK };
    let served_data = packet::frame_with_payload(peer, pod, served_l4, packet::Frag::None, request);
    let syn_denied = packet::tcp(pod, stranger, 40000, 80, tcp::SYN);
    let mut cases: Vec<Case> = sizes
        .iter()
        .map(|&(s, blocks, sampling)| {
            eprintln!("per_packet: loading {s} policy entries, {blocks} blocked prefixes, sampling {sampling}…");
            let mut bed = setup(s, blocks, sampling);
            assert_eq!(
                bed.run(Hook::FromPod, &packet::tcp(pod, peer, 40000, 80, tcp::SYN), 1).unwrap().retval,
                TC_PASS
            );
            // the served connection: its SYN, then its first data (the sample)
            assert_eq!(
                bed.run(Hook::ToPod, &packet::tcp(peer, pod, 50000, 6379, tcp::SYN), 1).unwrap().retval,
                TC_PASS
            );
            assert_eq!(bed.run(Hook::ToPod, &served_data, 1).unwrap().retval, TC_PASS);
            Case {
                bed,
                blocks,
                sampling,
                served_est: Vec::new(),
                served_new_total: 0.0,
                prefilter: Vec::new(),
                est: Vec::new(),
                denied: Vec::new(),
                new_total: 0.0,
                new_runs: 0,
            }
        })
        .collect();
    // Interleave the sizes round by round, so drift on a shared machine hits them all alike.
    for round in 0..ROUNDS {
        eprintln!("per_packet: round {}/{ROUNDS}", round + 1);
        for c in &mut cases {
            c.est.push(ns(&mut c.bed, &ack, TC_PASS, REPEAT));
            c.denied.push(ns(&mut c.bed, &syn_denied, TC_DROP, REPEAT));
            c.prefilter.push(run_ns(&mut c.bed, Hook::Prefilter, &ack, XDP_PASS, REPEAT));
            c.served_est.push(run_ns(&mut c.bed, Hook::ToPod, &served_data, TC_PASS, REPEAT));
            for i in 0..NEW_PER_ROUND {
                let port = 1024 + (round as u32 * NEW_PER_ROUND + i) % 60_000;
                let syn = packet::tcp(pod, peer, port as u16, 80, tcp::SYN);
                c.new_total += ns(&mut c.bed, &syn, TC_PASS, 1);
                let l4 = packet::L4::Udp { sport: port as u16, dport: 53 };
                let query = packet::frame_with_payload(peer, pod, l4, packet::Frag::None, &[0x42; 40]);
                c.served_new_total += run_ns(&mut c.bed, Hook::ToPod, &query, TC_PASS, 1);
                c.new_runs += 1;
            }
        }
    }
    cases
        .into_iter()
        .map(|mut c| {
            c.est.sort_by(f64::total_cmp);
            c.denied.sort_by(f64::total_cmp);
            c.prefilter.sort_by(f64::total_cmp);
            c.served_est.sort_by(f64::total_cmp);
            let samples = c.bed.maps.stats().unwrap();
            serde_json::json!({
                "payload_sampling": c.sampling,
                "served_established_ns": c.served_est[ROUNDS / 2],
                "served_new_udp_ns": c.served_new_total / f64::from(c.new_runs),
                "samples_sent": samples.get(abi::BH_STAT_SAMPLES_SENT),
                "samples_skipped": samples.get(abi::BH_STAT_SAMPLES_OVER_BUDGET)
                    + samples.get(abi::BH_STAT_SAMPLES_LOST)
                    + samples.get(abi::BH_STAT_SAMPLES_DISABLED),
                "policy_entries": c.bed.maps.policy().unwrap().len(),
                "blocked_prefixes": c.blocks,
                "prefilter_pass_ns": c.prefilter[ROUNDS / 2],
                "ipcache_entries": c.bed.maps.ipcache().unwrap().len(),
                "established_ns": c.est[ROUNDS / 2],
                "new_denied_ns": c.denied[ROUNDS / 2],
                "new_allowed_ns": c.new_total / f64::from(c.new_runs),
            })
        })
        .collect()
}

/// The same established packet through a program that does one hash lookup.
fn floor_ns() -> f64 {
    use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
    let mut ebpf = aya::Ebpf::load(bulkhead_dataplane::objects::BENCH_FLOOR).unwrap();
    let prog: &mut SchedClassifier = ebpf.program_mut("bh_bench_floor_prog").unwrap().try_into().unwrap();
    prog.load().unwrap();
    let pkt = packet::tcp(IpAddr::V4(POD), IpAddr::V4(PEER), 40000, 80, tcp::ACK);
    let mut runs: Vec<f64> = (0..5)
        .map(|_| {
            let mut o = TestRunOptions::new();
            o.data_in = Some(&pkt);
            o.repeat = REPEAT;
            prog.test_run(o).unwrap().duration.as_nanos() as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` would pass nothing useful either way.
    // BENCH_SIZES=10,100000 narrows the run while investigating.
    let policy_sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 1_000, 10_000, 100_000]);
    // The block-list pair: 1 000 policy entries with none and with 10 000 blocked prefixes.
    let mut sizes: Vec<(usize, usize, bool)> = policy_sizes.iter().map(|s| (*s, 0, true)).collect();
    sizes.extend([(1_000, 0, true), (1_000, BLOCKS, true), (1_000, 0, true), (1_000, 0, false)]);
    let all = measure_all(&sizes);
    let (rows, rest) = all.split_at(policy_sizes.len());
    let (pair, sampling) = rest.split_at(2);
    let sampling_ratio = |k: &str| sampling[0][k].as_f64().unwrap() / sampling[1][k].as_f64().unwrap();
    let floor = floor_ns();
    let last = rows.len() - 1;
    let ratio = |k: &str| rows[last][k].as_f64().unwrap() / rows[0][k].as_f64().unwrap();
    let block_ratio = |k: &str| pair[1][k].as_f64().unwrap() / pair[0][k].as_f64().unwrap();
    let out = serde_json::json!({
        "benchmark": "per_packet",
        "method": "BPF_PROG_TEST_RUN; sizes interleaved over 7 rounds; median of 7 x 1e6 repeats (established, new_denied); mean of 21000 single runs of distinct connections (new_allowed); flow events disabled",
        "rows": rows,
        "floor_one_lookup_program_ns": floor,
        "established_over_floor_ns": rows[0]["established_ns"].as_f64().unwrap() - floor,
        "ratio_100k_over_10": {
            "established": ratio("established_ns"),
            "new_denied": ratio("new_denied_ns"),
            "new_allowed": ratio("new_allowed_ns"),
        },
        "block_list": pair,
        "ratio_10k_blocked_over_none": {
            "established": block_ratio("established_ns"),
            "new_denied": block_ratio("new_denied_ns"),
            "new_allowed": block_ratio("new_allowed_ns"),
            "prefilter_pass": block_ratio("prefilter_pass_ns"),
        },
        "payload_sampling": sampling,
        "ratio_sampling_on_over_off": {
            "established": sampling_ratio("established_ns"),
            "served_established": sampling_ratio("served_established_ns"),
            "new_allowed": sampling_ratio("new_allowed_ns"),
            "served_new_udp": sampling_ratio("served_new_udp_ns"),
        },
        "targets": {"ratio_max": 1.2, "established_ns_max": 100},
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
