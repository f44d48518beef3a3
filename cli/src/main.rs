//! `bulkhead`: the node agent, the lab, and flow tooling in one binary.

mod blocks;
mod client;
mod closed_loop;
mod control;
mod exposure;
mod flows;
mod hub;
mod inspect;
mod install;
mod quarantine;
mod review_show;
mod trail;
mod uplink;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    #[command(flatten)]
    target: client::Target,
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
        /// The node's own uplink(s), where the block list's XDP prefilter
        /// drops blocked sources before anything else sees them (repeat for
        /// several). Without it, blocks are enforced at the pods only, where
        /// kube-proxy's SNAT can hide an outside client's address.
        #[arg(long = "prefilter-dev", value_name = "IFNAME")]
        prefilter: Vec<String>,
        /// Flow events per second each initiating address may cost this
        /// node; past it, that source loses its own events (counted, and
        /// carried in its next event), never another pod's.
        #[arg(long, value_name = "N", default_value_t = bulkhead_agent::config::EVENTS_PER_SOURCE, value_parser = clap::value_parser!(u32).range(1..))]
        events_per_source: u32,
        /// Events a quiet source may send at once, above the rate.
        #[arg(long, value_name = "N", default_value_t = bulkhead_agent::config::EVENTS_BURST, value_parser = clap::value_parser!(u32).range(1..))]
        events_burst: u32,
        /// Do not sample the first payload bytes of the connections pods
        /// serve: the exposure report then knows only declared protocols.
        #[arg(long)]
        no_payload_samples: bool,
        /// How often each pod's listening sockets are read from its network
        /// namespace, in seconds (a new pod's within 2 s of attaching); 0
        /// never reads them, and the exposure report then cannot tell open
        /// ports from declared ones.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        listener_scan_interval: u64,
        /// Where pods' network namespace files are (repeatable) [default:
        /// /var/run/netns]. A pod the controller sends without one is found
        /// from its addresses among the namespaces this node's veths lead to.
        #[arg(long = "netns-dir", value_name = "DIR")]
        netns_dirs: Vec<PathBuf>,
        #[command(flatten)]
        uplink: uplink::UplinkArgs,
    },
    /// Build and use a lab cluster of network namespaces on this host.
    Lab {
        #[command(subcommand)]
        command: LabCommand,
    },
    /// Flows stored by the controller, filtered; with --follow, the live stream.
    Flows {
        /// Follow the controller's live stream (with the same filters).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        filters: closed_loop::FlowFilters,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// The service graph learned from flows.
    Graph {
        #[command(flatten)]
        args: closed_loop::GraphArgs,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Every service and workload port: how far it is exposed (internet-facing,
    /// cluster-internal, headless, ExternalName), who the policies in force
    /// let reach it, who did, and the findings.
    Exposure {
        #[command(flatten)]
        args: exposure::ExposureArgs,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// The access trail of a pod for an incident: its connections both ways
    /// over a window, the ones new against its baseline, what the pods it
    /// reached did next, its quarantines and the audit records about it.
    Trail {
        /// "namespace/pod" (a deleted pod's flows stay).
        pod: String,
        /// From: a duration ago (30m, 2h) or an RFC 3339 time.
        #[arg(long, default_value = "30m")]
        since: String,
        /// To [default: now].
        #[arg(long)]
        until: Option<String>,
        /// human, json, yaml, or csv (the connections, for a ticket).
        #[arg(short, long, value_enum, default_value = "human")]
        output: trail::TrailOutput,
    },
    /// Baselines (learning or stable) and anomaly events.
    Baseline {
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Least-privilege NetworkPolicies from the baselines, recorded for
    /// review; `-o yaml` prints them as a List for `kubectl apply -f`.
    Suggest {
        /// Only workloads of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Review suggestions: list, show, approve, reject, apply (audit, then enforce).
    Review {
        #[command(subcommand)]
        command: closed_loop::ReviewCommand,
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: closed_loop::Output,
    },
    /// The controller's inventory and policies, as you may see them.
    Get {
        #[command(subcommand)]
        command: inspect::GetCommand,
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: closed_loop::Output,
    },
    /// The audit log, newest first.
    Audit {
        /// Only this user.
        #[arg(long)]
        user: Option<String>,
        /// Only this action (apply, quarantine, approve, authenticate…).
        #[arg(long)]
        action: Option<String>,
        /// Only records about this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only records newer than this (5m, 2h, or an RFC 3339 time).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Run the controller: compile inventory and policies, keep every agent in sync.
    Controller(Box<control::ControllerArgs>),
    /// Serve one authenticated view across clusters: every member
    /// controller's status, graph, flows, exposure and quarantines, and
    /// quarantines sent to the member that executes them.
    Hub(Box<hub::HubArgs>),
    /// Add or replace objects (policies, pods, namespaces…) through the controller. All or nothing.
    Apply {
        /// YAML files ("-" for stdin).
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Return without waiting for every node to enforce the change.
        #[arg(long)]
        no_wait: bool,
    },
    /// Delete the objects named in the files (kind, namespace and name).
    Delete {
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        #[arg(long)]
        no_wait: bool,
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
    },
    /// Cut a pod, or every pod of a workload (now and later), off the network,
    /// both ways, established connections included. Answers when every agent enforces it.
    Quarantine {
        /// "namespace/pod".
        #[arg(required_unless_present = "workload", conflicts_with = "workload")]
        pod: Option<String>,
        /// "namespace/name" of a workload instead.
        #[arg(long)]
        workload: Option<String>,
        /// Why (required; goes to the audit log).
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Lift a quarantine: its id, or the pod ("namespace/name") it cuts off.
    Release {
        what: String,
        /// Why (required; goes to the audit log).
        #[arg(long, default_value = "")]
        reason: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: closed_loop::Output,
    },
    /// Quarantines, active and past.
    Quarantines {
        #[command(subcommand)]
        command: quarantine::QuarantinesCommand,
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: closed_loop::Output,
    },
    /// Print everything a cluster needs (namespace, CRDs, RBAC, agent
    /// DaemonSet, controller, Services, policies; Secrets if asked), for
    /// `bulkhead install | kubectl apply -f -`.
    Install(Box<install::InstallArgs>),
    /// Print what removes Bulkhead, for `bulkhead uninstall | kubectl delete --ignore-not-found -f -`;
    /// with --node-cleanup, the DaemonSet that then detaches it from every node.
    Uninstall(install::UninstallArgs),
    /// Detach every Bulkhead program from this node and remove its maps
    /// (its pins under /sys/fs/bpf/bulkhead/NODE). Run after the agent
    /// stopped: pods are then protected by the CNI alone.
    NodeCleanup {
        /// Node name.
        #[arg(long, env = "BULKHEAD_NODE")]
        node: String,
        /// Then wait for SIGTERM (the cleanup DaemonSet's pods stay up).
        #[arg(long)]
        wait: bool,
    },
    /// The cluster's block list: IPs and CIDRs dropped both ways on every node, before policy.
    Block {
        #[command(subcommand)]
        command: blocks::BlockCommand,
        #[arg(short, long, value_enum, default_value = "human", global = true)]
        output: closed_loop::Output,
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
    },
    /// Convert retired bulkhead.dev/v1alpha1 ClusterNetworkPolicies to
    /// sig-network's policy.networking.k8s.io/v1alpha2 ClusterNetworkPolicy
    /// (or bulkhead.dev/v1alpha2 BulkheadClusterPolicy where a peer needs it),
    /// printing the whole stream with every other document unchanged.
    /// Needs no controller.
    Migrate {
        /// A YAML file, or - for standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum LabCommand {
    /// Create (or complete) the lab from Kubernetes manifests. Idempotent.
    Up {
        /// Kubernetes YAML (Namespace, Pod, Deployment, Service, NetworkPolicy, ClusterNetworkPolicy, BulkheadClusterPolicy). Repeat.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// The CNI plugin that wires pods: bridge or ptp.
        #[arg(long, default_value = "bridge")]
        cni: String,
        /// Nodes (each a network namespace with its own agent).
        #[arg(long, default_value_t = 1)]
        nodes: usize,
        /// The lab's name (up to 20 lowercase letters, digits and dashes).
        #[arg(long, default_value = "lab")]
        name: String,
        /// Mode of pods without a bulkhead.dev/mode annotation (on the pod or its namespace).
        #[arg(long, default_value = "enforce")]
        mode: String,
        /// The controller's baseline learning window, seconds [default: its own, 3600].
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        learn_window: u64,
        /// The controller's baseline quiet period, seconds [default: its own, 600].
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        learn_quiet: u64,
        /// One more argument for the lab's controller, e.g.
        /// `--controller-arg=--auto-quarantine=port_scan` (repeatable).
        #[arg(long = "controller-arg", value_name = "ARG", allow_hyphen_values = true)]
        controller_args: Vec<String>,
        /// One more argument for every node's agent, e.g.
        /// `--agent-arg=--events-per-source=1000` (repeatable).
        #[arg(long = "agent-arg", value_name = "ARG", allow_hyphen_values = true)]
        agent_args: Vec<String>,
        /// IPv4 pod CIDR, split into one block per node that together cover it; any status.podIP inside it is honoured.
        #[arg(long, default_value = bulkhead_lab::cidr::DEFAULT)]
        pod_cidr: String,
    },
    /// Remove every namespace, link, pin and process of the lab, even after a crash.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Route this lab's pod network and another's to each other (two
    /// clusters; their pod CIDRs must differ, see `up --pod-cidr`).
    Link {
        #[arg(long, default_value = "lab")]
        name: String,
        /// The other lab.
        #[arg(long)]
        to: String,
    },
    /// Probe connectivity: FROM TO:PORT[/PROTO] (FROM: ns/pod, or `outside` for an address outside
    /// the cluster; TO: ns/pod, ns/svc or an IP), or --matrix.
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
    /// Show the lab's nodes, pods and agent status; `-o json` also gives the
    /// API's URL, CA file and token files.
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
    },
    /// Every flow event of the lab's agents (new, denied, closed, counters), straight from them.
    Flows {
        /// Keep following.
        #[arg(long)]
        follow: bool,
        #[arg(long, default_value = "lab")]
        name: String,
        #[arg(short, long, value_enum, default_value = "human")]
        output: Output,
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
        /// SCTP ports, answered from a raw socket (see bulkhead_lab::sctp).
        #[arg(long, value_delimiter = ',')]
        sctp: Vec<u16>,
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
        /// Ports that speak a protocol, "PORT=PROTOCOL,…" (from the pod's
        /// port names and its lab.bulkhead.dev/speaks annotation).
        #[arg(long, default_value = "")]
        speak: String,
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
        Command::Lab {
            command: LabCommand::Serve { netns, tcp, udp, sctp, name, calls, namespace, call_interval, speak },
        } => {
            let plan = bulkhead_lab::server::CallPlan {
                namespace,
                calls: bulkhead_lab::calls::parse_calls(&calls).map_err(|e| anyhow::anyhow!("--calls: {e}"))?,
                interval: bulkhead_lab::calls::parse_interval(&call_interval)
                    .map_err(|e| anyhow::anyhow!("--call-interval: {e}"))?,
            };
            let speak = bulkhead_lab::speak::parse_speaks(&speak).map_err(|e| anyhow::anyhow!("--speak: {e}"))?;
            bulkhead_lab::server::serve(&netns, &bulkhead_lab::server::Ports { tcp, udp, sctp }, &speak, &name, plan)?;
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
        Command::Agent {
            node,
            socket,
            state_dir,
            metrics_addr,
            netns,
            prefilter,
            events_per_source,
            events_burst,
            no_payload_samples,
            listener_scan_interval,
            netns_dirs,
            uplink,
        } => {
            if let Some(ns) = &netns {
                bulkhead_cni::netns::enter(ns)?;
            }
            let mut cfg = AgentConfig::for_node(&node);
            if let Some(s) = socket {
                cfg.socket = s;
            }
            if let Some(d) = state_dir {
                cfg.state_dir = d;
            }
            cfg.metrics_addr = metrics_addr;
            cfg.prefilter = prefilter;
            cfg.events_per_source_s = events_per_source;
            cfg.events_burst = events_burst;
            cfg.payload_samples = !no_payload_samples;
            cfg.listener_scan =
                (listener_scan_interval > 0).then(|| std::time::Duration::from_secs(listener_scan_interval));
            cfg.controller = uplink.uplink()?;
            cfg.netns_dirs = netns_dirs;
            runtime()?.block_on(bulkhead_agent::run(cfg))?;
            Ok(())
        }
        Command::Lab { command } => runtime()?.block_on(lab(command)),
        Command::Flows { follow: true, filters, output } => {
            runtime()?.block_on(closed_loop::follow(&cli.target, filters, output))
        }
        Command::Flows { filters, output, .. } => {
            runtime()?.block_on(closed_loop::stored_flows(&cli.target, filters, output))
        }
        Command::Graph { args, output } => runtime()?.block_on(closed_loop::graph(&cli.target, args, output)),
        Command::Exposure { args, output } => runtime()?.block_on(exposure::show(&cli.target, args, output)),
        Command::Trail { pod, since, until, output } => {
            runtime()?.block_on(trail::show(&cli.target, pod, since, until, output))
        }
        Command::Baseline { output } => runtime()?.block_on(closed_loop::baseline(&cli.target, output)),
        Command::Suggest { namespace, output } => {
            runtime()?.block_on(closed_loop::suggest(&cli.target, namespace, output))
        }
        Command::Review { command, output } => runtime()?.block_on(closed_loop::review(&cli.target, command, output)),
        Command::Get { command, output } => runtime()?.block_on(inspect::get(&cli.target, command, output)),
        Command::Audit { user, action, namespace, since, limit, output } => {
            let q = bulkhead_api::v1::audit::AuditQuery {
                user,
                action,
                outcome: None,
                namespace,
                since,
                limit: Some(limit),
                cursor: None,
            };
            runtime()?.block_on(inspect::audit(&cli.target, q, output))
        }
        Command::Controller(args) => {
            // Bound before entering the lab's namespace, so the API is on the host.
            let api = args.api().map(|c| bulkhead_controller::http::bind(&c)).transpose()?;
            if let Some(ns) = &args.netns {
                bulkhead_cni::netns::enter(ns)?;
            }
            runtime()?.block_on(control::controller(*args, api))
        }
        Command::Hub(args) => {
            let cfg = args.config()?;
            let listener = bulkhead_controller::http::bind(&cfg.api)?;
            runtime()?.block_on(bulkhead_controller::hub::run(cfg, listener))?;
            Ok(())
        }
        Command::Apply { files, no_wait } => runtime()?.block_on(control::change(&cli.target, &files, false, !no_wait)),
        Command::Delete { files, no_wait } => runtime()?.block_on(control::change(&cli.target, &files, true, !no_wait)),
        Command::Policy { command: PolicyCommand::Explain { from, to, output } } => {
            runtime()?.block_on(control::explain(&cli.target, &from, &to, output == Output::Json))
        }
        Command::Policy { command: PolicyCommand::Migrate { file } } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin()).context("reading standard input")?
            } else {
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?
            };
            let (out, converted) = bulkhead_policy::objects::migrate_documents(&file.to_string_lossy(), &text)?;
            print!("{out}");
            eprintln!("{converted} retired ClusterNetworkPolicies converted");
            Ok(())
        }
        Command::Status { output } => runtime()?.block_on(control::status(&cli.target, output == Output::Json)),
        Command::Quarantine { pod, workload, reason, output } => {
            runtime()?.block_on(quarantine::quarantine(&cli.target, pod, workload, reason, output))
        }
        Command::Release { what, reason, output } => {
            runtime()?.block_on(quarantine::release(&cli.target, what, reason, output))
        }
        Command::Quarantines { command: quarantine::QuarantinesCommand::List { namespace, active }, output } => {
            runtime()?.block_on(quarantine::list(&cli.target, namespace, active, output))
        }
        Command::Install(args) => {
            print!("{}", install::install(&args)?);
            Ok(())
        }
        Command::Uninstall(args) => {
            print!("{}", install::uninstall(&args)?);
            Ok(())
        }
        Command::NodeCleanup { node, wait } => {
            let done = bulkhead_agent::cleanup::remove_pins(&node)?;
            if done.existed {
                println!("node {node}: removed {} ({} links detached)", done.path.display(), done.links);
            } else {
                println!("node {node}: nothing pinned at {}", done.path.display());
            }
            if wait {
                runtime()?.block_on(bulkhead_api::listen::shutdown_signal());
            }
            Ok(())
        }
        Command::Block { command, output } => runtime()?.block_on(blocks::run(&cli.target, command, output)),
    }
}

fn exec(command: &[String]) -> std::io::Error {
    use std::os::unix::process::CommandExt;
    let Some((prog, args)) = command.split_first() else {
        return std::io::Error::other("no command");
    };
    std::process::Command::new(prog).args(args).exec()
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
        LabCommand::Up {
            files,
            cni,
            nodes,
            name,
            mode,
            learn_window,
            learn_quiet,
            controller_args,
            agent_args,
            pod_cidr,
        } => {
            let exe = std::env::current_exe().context("locating the bulkhead binary")?;
            let learn = (learn_window, learn_quiet);
            let opts = bulkhead_lab::UpOptions {
                name,
                files,
                cni,
                nodes,
                default_mode: mode,
                exe,
                learn,
                controller_args,
                agent_args,
                pod_cidr,
            };
            let lab = bulkhead_lab::up(&opts).await?;
            for p in &lab.pods {
                let ips: Vec<String> = p.ips.iter().map(|i| i.to_string()).collect();
                println!("{:<30} node {:<2} {}", p.key(), p.node, ips.join(" "));
            }
            if let Some(api) = &lab.api {
                println!("API {}", api.url);
                match bulkhead_controller::http::console::default_dir() {
                    Some(_) => println!("  console        {}/ (sign in with a token below)", api.url),
                    None => println!("  console        not built (make console), so not served"),
                }
                println!("  CA certificate {}", api.ca_file.display());
                println!("  admin token    {}", api.tokens.admin.display());
                println!("  viewer token   {}", api.tokens.viewer.display());
                println!(
                    "  e.g. bulkhead --server {} --ca-file {} --token-file {} status",
                    api.url,
                    api.ca_file.display(),
                    api.tokens.viewer.display()
                );
            }
            Ok(())
        }
        LabCommand::Link { name, to } => {
            let (a, b) = (LabState::load(&name)?, LabState::load(&to)?);
            bulkhead_lab::link::link(&a, &b)?;
            println!("lab {name} and lab {to}: pod networks {} and {} routed to each other", a.pod_cidr, b.pod_cidr);
            Ok(())
        }
        LabCommand::Down { name } => {
            let n = bulkhead_lab::down(&name)?;
            println!("lab {name} down ({n} namespaces removed)");
            Ok(())
        }
        LabCommand::Flows { follow, name, output } => flows::show(&name, follow, output == Output::Json).await,
        LabCommand::Status { name, output: Output::Json } => {
            let lab = LabState::load(&name)?;
            println!("{}", serde_json::to_string(&bulkhead_lab::status::report(&lab).await?)?);
            Ok(())
        }
        LabCommand::Status { name, .. } => {
            let lab = LabState::load(&name)?;
            if let Some(api) = &lab.api {
                println!(
                    "API {} (CA {}, admin token {}, viewer token {})",
                    api.url,
                    api.ca_file.display(),
                    api.tokens.admin.display(),
                    api.tokens.viewer.display()
                );
            }
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
