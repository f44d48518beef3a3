//! `bulkhead`: the node agent, the lab, and flow tooling in one binary.

mod closed_loop;
mod control;
mod flows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bulkhead_agent::AgentConfig;
use bulkhead_api::agent::v1 as pb;
use bulkhead_lab::LabState;
use bulkhead_lab::probe;
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "bulkhead",
    version,
    about = "Network microsegmentation for Kubernetes: eBPF enforcement, flows, quarantine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Output {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the node agent (one per node; needs root, bpffs and BTF).
    Agent {
        /// Node name; pins go to /sys/fs/bpf/bulkhead/<node>.
        #[arg(long, env = "BULKHEAD_NODE")]
        node: String,
        /// gRPC Unix socket [default: /run/bulkhead/<node>/agent.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Where the last applied state and the audit log live [default: /var/lib/bulkhead/<node>].
        #[arg(long)]
        state_dir: Option<PathBuf>,
        /// Serve Prometheus metrics on this address.
        #[arg(long)]
        metrics_addr: Option<SocketAddr>,
        /// Run in this network namespace (the lab's nodes); entered before
        /// anything starts, so the host's bpffs stays visible.
        #[arg(long)]
        netns: Option<PathBuf>,
    },
    /// Build and use a lab cluster of network namespaces on this host.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Flows stored by the controller, filtered; with --follow, live flows
    /// from every agent of a lab instead.
    Flows {
        /// Stream live flows from the lab's agents (no filters).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        filters: closed_loop::FlowFilters,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// The service graph learned from flows.
    Graph {
        /// Only edges touching this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Instead: everything this workload ("namespace/name") can reach,
        /// directly or transitively, under the policies in force.
        #[arg(long)]
        blast_radius: Option<String>,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// Baselines (learning or stable) and anomaly events.
    Baseline {
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// Least-privilege NetworkPolicies from the baselines, recorded for review.
    Suggest {
        /// Only workloads of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// Review suggestions: list, show, approve, reject, apply (audit, then enforce).
    Review {
        #[command(subcommand)]
        command: closed_loop::ReviewCommand,
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: closed_loop::Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// Run the controller: compile inventory and policies, keep every agent in sync.
    Controller(control::ControllerArgs),
    /// Add or replace objects (policies, pods, namespaces…) through the controller. All or nothing.
    Apply {
        /// YAML files ("-" for stdin).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Return without waiting for every node to enforce the change.
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: control::Target,
    },
    /// Delete the objects named in the files (kind, namespace and name).
    Delete {
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        no_wait: bool,
        #[command(flatten)]
        target: control::Target,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// The controller's generation, inventory and each node's sync state.
    Status {
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
        #[command(flatten)]
        target: control::Target,
    },
    /// Cut a pod off the network, both ways, established connections included.
    Quarantine {
        /// "namespace/pod".
        pod: String,
        #[arg(long, default_value = "lab")]
        lab: String,
        /// Why (goes to the audit log).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a quarantine.
    Release {
        pod: String,
        #[arg(long, default_value = "lab")]
        lab: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Is FROM -> TO:PORT[/PROTO] allowed, and which rule or default decided it?
    /// FROM and TO are namespace/pod, namespace/service (TO only) or an IP;
    /// leave out :PORT for ICMP.
    Explain {
        from: String,
        to: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
        #[command(flatten)]
        target: control::Target,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create (or complete) the lab from Kubernetes manifests. Idempotent.
    Up {
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value = "bridge")]
        cni: String,
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        #[arg(long, default_value = "lab")]
        name: String,
        /// Mode of pods without a bulkhead.dev/mode annotation (on the pod or its namespace).
        #[arg(long, default_value = "enforce")]
        mode: String,
        /// The controller's baseline learning window, seconds [default: its own, 3600].
        #[arg(long, default_value_t = 0)]
        learn_window: u64,
        /// The controller's baseline quiet period, seconds [default: its own, 600].
        #[arg(long, default_value_t = 0)]
        learn_quiet: u64,
    },
    /// Remove every namespace, link, pin and process of the lab, even after a crash.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Probe connectivity: FROM TO:PORT[/PROTO] (TO: ns/pod, ns/svc or an IP), or --matrix.
    Probe {
        from: Option<String>,
        to: Option<String>,
        #[arg(long)]
        matrix: bool,
        #[arg(long, value_delimiter = ',', default_value = "80")]
        ports: Vec<u16>,
        #[arg(long, value_delimiter = ',', default_value = "TCP")]
        protocols: Vec<String>,
        /// Probe IPv6 addresses.
        #[arg(short = '6', long)]
        ipv6: bool,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Run a command inside a pod's network namespace.
    Exec {
        pod: String,
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the lab's nodes, pods and agent status.
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// (internal) The cluster DNS server the lab's kube-dns pod runs.
    #[command(hide = true)]
    Dns {
        #[arg(long)]
        netns: PathBuf,
        #[arg(long)]
        lab: String,
    },
    /// (internal) The server a lab pod runs.
    #[command(hide = true)]
    Serve {
        #[arg(long)]
        netns: PathBuf,
        #[arg(long, value_delimiter = ',')]
        tcp: Vec<u16>,
        #[arg(long, value_delimiter = ',')]
        udp: Vec<u16>,
        #[arg(long)]
        name: String,
        /// Calls to make (the lab.bulkhead.dev/calls annotation).
        #[arg(long, default_value = "")]
        calls: String,
        /// The pod's namespace, for short service names.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// Interval between calls to each target.
        #[arg(long, default_value = "1s")]
        call_interval: String,
    },
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,netlink_packet_route=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        // These two enter a namespace: they must run before any other thread exists.
        Command::Lab { command: LabCommand::Serve { netns, tcp, udp, name, calls, namespace, call_interval } } => {
            let plan = bulkhead_lab::server::CallPlan {
                namespace,
                calls: bulkhead_lab::calls::parse_calls(&calls).map_err(|e| anyhow::anyhow!("--calls: {e}"))?,
                interval: bulkhead_lab::calls::parse_interval(&call_interval)
                    .map_err(|e| anyhow::anyhow!("--call-interval: {e}"))?,
            };
            bulkhead_lab::server::serve(&netns, &tcp, &udp, &name, plan)?;
            Ok(())
        }
        Command::Lab { command: LabCommand::Dns { netns, lab } } => {
            bulkhead_lab::dns::serve(&netns, &lab)?;
            Ok(())
        }
        Command::Lab { command: LabCommand::Exec { pod, name, command } } => {
            let lab = LabState::load(&name)?;
            let p = lab.pod(&pod)?;
            bulkhead_lab::netns::enter(&bulkhead_lab::netns::path(&p.netns))?;
            let err = exec(&command);
            bail!("running {:?} in {}: {err}", command, p.key())
        }
        Command::Agent { node, socket, state_dir, metrics_addr, netns } => {
            if let Some(ns) = &netns {
                bulkhead_lab::netns::enter(ns)?;
            }
            let mut cfg = AgentConfig::for_node(&node);
            if let Some(s) = socket {
                cfg.socket = s;
            }
            if let Some(d) = state_dir {
                cfg.state_dir = d;
            }
            cfg.metrics_addr = metrics_addr;
            runtime()?.block_on(bulkhead_agent::run(cfg))?;
            Ok(())
        }
        Command::Lab { command } => runtime()?.block_on(lab(command)),
        Command::Flows { follow: true, output, target, .. } => {
            runtime()?.block_on(flows::show(&target.lab, true, output == closed_loop::Output::Json))
        }
        Command::Flows { filters, output, target, .. } => {
            runtime()?.block_on(closed_loop::stored_flows(&target, filters, output))
        }
        Command::Graph { namespace, blast_radius, output, target } => {
            runtime()?.block_on(closed_loop::graph(&target, namespace, blast_radius, output))
        }
        Command::Baseline { output, target } => runtime()?.block_on(closed_loop::baseline(&target, output)),
        Command::Suggest { namespace, output, target } => {
            runtime()?.block_on(closed_loop::suggest(&target, namespace, output))
        }
        Command::Review { command, output, target } => {
            runtime()?.block_on(closed_loop::review(&target, command, output))
        }
        Command::Controller(args) => {
            if let Some(ns) = &args.netns {
                bulkhead_lab::netns::enter(ns)?;
            }
            runtime()?.block_on(control::controller(args))
        }
        Command::Apply { files, no_wait, target } => {
            runtime()?.block_on(control::change(&target, &files, false, !no_wait))
        }
        Command::Delete { files, no_wait, target } => {
            runtime()?.block_on(control::change(&target, &files, true, !no_wait))
        }
        Command::Policy { command: PolicyCommand::Explain { from, to, output, target } } => {
            runtime()?.block_on(control::explain(&target, &from, &to, output == Output::Json))
        }
        Command::Status { output, target } => runtime()?.block_on(control::status(&target, output == Output::Json)),
        Command::Quarantine { pod, lab, reason } => runtime()?.block_on(quarantine(&lab, &pod, &reason, true)),
        Command::Release { pod, lab, reason } => runtime()?.block_on(quarantine(&lab, &pod, &reason, false)),
    }
}

fn exec(command: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = command.split_first() else {
        return std::io::Error::other("no command");
    };
    std::process::Command::new(prog).args(args).exec()
}

fn actor() -> String {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "root".into())
}

async fn quarantine(lab: &str, pod: &str, reason: &str, on: bool) -> Result<()> {
    let state = LabState::load(lab)?;
    let key = state.pod(pod)?.key();
    let mut client = bulkhead_lab::lifecycle::agent_for(&state, &key).await?;
    let req = pb::QuarantineRequest { pod: key.clone(), actor: actor(), reason: reason.into(), ..Default::default() };
    let started = Instant::now();
    let r = if on { client.quarantine(req).await } else { client.release(req).await }
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?
        .into_inner();
    if on {
        println!(
            "{key} quarantined (endpoint {}): enforced in {} µs, round trip {} ms",
            r.endpoint_id,
            r.took_micros,
            started.elapsed().as_millis()
        );
    } else if r.quarantined {
        println!("{key}: released by you, but the desired state still quarantines it");
    } else {
        println!("{key} released");
    }
    Ok(())
}

fn parse_target(to: &str) -> Result<(String, u16, bool)> {
    let (rest, udp) = match to.rsplit_once('/') {
        Some((r, p)) if p.eq_ignore_ascii_case("udp") => (r, true),
        Some((r, p)) if p.eq_ignore_ascii_case("tcp") => (r, false),
        _ => (to, false),
    };
    let (target, port) = rest.rsplit_once(':').with_context(|| format!("{to:?}: expected TARGET:PORT[/PROTO]"))?;
    let port: u16 = port.parse().with_context(|| format!("{to:?}: port {port:?} is not a number"))?;
    Ok((target.to_string(), port, udp))
}

async fn lab(command: LabCommand) -> Result<()> {
    match command {
        LabCommand::Up { files, cni, nodes, name, mode, learn_window, learn_quiet } => {
            let exe = std::env::current_exe().context("locating the bulkhead binary")?;
            let learn = (learn_window, learn_quiet);
            let opts = bulkhead_lab::UpOptions { name, files, cni, nodes, default_mode: mode, exe, learn };
            let lab = bulkhead_lab::up(&opts).await?;
            for p in &lab.pods {
                let ips: Vec<String> = p.ips.iter().map(|i| i.to_string()).collect();
                println!("{:<30} node {:<2} {}", p.key(), p.node, ips.join(" "));
            }
            Ok(())
        }
        LabCommand::Down { name } => {
            let n = bulkhead_lab::down(&name)?;
            println!("lab {name} down ({n} namespaces removed)");
            Ok(())
        }
        LabCommand::Status { name } => {
            let lab = LabState::load(&name)?;
            for node in &lab.nodes {
                let mut c = bulkhead_api::connect_unix(&node.socket).await?;
                let s = c
                    .get_status(pb::StatusRequest {})
                    .await
                    .map_err(|s| anyhow::anyhow!("{}", s.message()))?
                    .into_inner();
                println!(
                    "node {} generation {} policy {} ipcache {} events_lost {}",
                    s.node, s.generation, s.policy_entries, s.ipcache_entries, s.events_lost
                );
                for e in s.endpoints {
                    let state = if e.quarantined {
                        "QUARANTINED"
                    } else if e.attached {
                        "attached"
                    } else {
                        "NOT PROTECTED"
                    };
                    println!("  {:<30} {:<12} {} {}", e.pod, state, e.ifname, e.error);
                }
            }
            Ok(())
        }
        LabCommand::Probe { from, to, matrix, ports, protocols, ipv6, timeout_ms, name, output } => {
            let lab = LabState::load(&name)?;
            let timeout = Duration::from_millis(timeout_ms);
            let probes = if matrix {
                let mut udp = Vec::new();
                for p in &protocols {
                    match p.to_ascii_uppercase().as_str() {
                        "TCP" => udp.push(false),
                        "UDP" => udp.push(true),
                        other => bail!("--protocols: {other} is not TCP or UDP"),
                    }
                }
                probe::matrix(&lab, &ports, &udp, ipv6)?
            } else {
                let (Some(from), Some(to)) = (from, to) else {
                    bail!("usage: bulkhead lab probe FROM TO:PORT[/PROTO] (or --matrix)")
                };
                let (target, port, udp) = parse_target(&to)?;
                vec![probe::probe_for(&lab, &from, &target, port, udp, ipv6)?]
            };
            let results = tokio::task::spawn_blocking(move || probe::run(&lab, &probes, timeout)).await??;
            for r in &results {
                match output {
                    Output::Json => println!("{}", serde_json::to_string(r)?),
                    Output::Human => println!(
                        "{} -> {}:{}/{} {}",
                        r.from,
                        r.to,
                        r.port,
                        r.protocol,
                        if r.connected { "connected" } else { "blocked" }
                    ),
                }
            }
            Ok(())
        }
        LabCommand::Exec { .. } | LabCommand::Serve { .. } | LabCommand::Dns { .. } => unreachable_command(),
    }
}

fn unreachable_command() -> Result<()> {
    bail!("internal: this command is dispatched before the runtime starts")
}
