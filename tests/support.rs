//! A lab per test, torn down on drop, plus probing and inspection helpers.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bulkhead_api::agent::v1 as pb;
use bulkhead_lab::LabState;
use bulkhead_lab::probe;

pub const BIN: &str = env!("CARGO_BIN_EXE_bulkhead");
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A running lab; `lab down` on drop.
pub struct Lab {
    pub name: String,
    pub state: LabState,
    manifest: PathBuf,
    /// Extra `lab up` arguments, kept for every re-up.
    extra: Vec<String>,
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run bulkhead")
}

/// Runs `bulkhead ARGS…` and returns its output whatever the exit status.
pub fn try_bulkhead(args: &[&str]) -> Output {
    run(args)
}

/// A lab process (agent or controller) stopped with SIGKILL, remembered so it
/// can be started again exactly as the lab started it.
pub struct Killed {
    argv: Vec<String>,
    log: PathBuf,
}

impl Killed {
    /// Reads the process's command line, then kills it and waits until it is gone.
    pub fn kill(pid: i32, log: PathBuf) -> Killed {
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let argv: Vec<String> =
            raw.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
        for _ in 0..100 {
            if !bulkhead_lab::lifecycle::process_alive(pid) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Killed { argv, log }
    }

    /// Starts it again, detached, appending to its log; `lab down` removes it
    /// with the namespace it runs in.
    pub fn restart(&self) {
        self.restart_under(&[]);
    }

    /// Starts it again under a wrapper command (`prefix` then its argv), and
    /// returns the new process id.
    pub fn restart_under(&self, prefix: &[&str]) -> u32 {
        use std::os::unix::process::CommandExt;
        let log = std::fs::OpenOptions::new().append(true).create(true).open(&self.log).unwrap();
        let argv: Vec<&str> = prefix.iter().copied().chain(self.argv.iter().map(String::as_str)).collect();
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id();
        // Reaped when `lab down` kills it, so it never lingers as a zombie.
        std::thread::spawn(move || child.wait());
        pid
    }
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Lab {
    /// Brings up a lab named after `tag` from `manifests` (YAML text).
    pub fn up(tag: &str, cni: &str, nodes: usize, manifests: &str) -> Lab {
        Lab::up_with(tag, cni, nodes, manifests, &[])
    }

    /// `up` with extra `lab up` arguments (e.g. learning windows).
    pub fn up_with(tag: &str, cni: &str, nodes: usize, manifests: &str, extra: &[&str]) -> Lab {
        let name = format!("t{}{}-{tag}", std::process::id() % 100_000, SEQ.fetch_add(1, Ordering::Relaxed));
        assert!(name.len() <= 20, "lab name {name} too long");
        let manifest = std::env::temp_dir().join(format!("bulkhead-{name}.yaml"));
        std::fs::write(&manifest, manifests).unwrap();
        // Constructed before `up` so a failing `up` is still torn down.
        let extra = extra.iter().map(|a| a.to_string()).collect();
        let mut lab = Lab { name: name.clone(), state: placeholder(&name), manifest, extra };
        lab.reup(cni, nodes);
        lab
    }

    /// Runs `lab up` again (idempotent; restarts dead agents).
    pub fn reup(&mut self, cni: &str, nodes: usize) {
        let m = self.manifest.to_string_lossy().into_owned();
        let n = nodes.to_string();
        let mut args = vec!["lab", "up", "--name", &self.name, "--cni", cni, "--nodes", &n, "-f", &m];
        args.extend(self.extra.iter().map(String::as_str));
        check(run(&args), "lab up");
        self.state = LabState::load(&self.name).unwrap();
    }

    /// Replaces the manifests and runs `lab up` again.
    pub fn apply(&mut self, manifests: &str) {
        std::fs::write(&self.manifest, manifests).unwrap();
        let (cni, nodes) = (self.state.cni.clone(), self.state.nodes.len());
        self.reup(&cni, nodes);
    }

    /// `bulkhead ARGS… --lab NAME` style commands.
    pub fn bulkhead(&self, args: &[&str]) -> String {
        check(run(args), &args.join(" "))
    }

    /// Probes one TCP or UDP port of a pod, a service (by name, through the
    /// cluster DNS) or an IP, IPv4 unless `v6`.
    pub fn probe(&self, from: &str, to: &str, port: u16, udp: bool, v6: bool) -> bool {
        let p = probe::probe_for(&self.state, from, to, port, udp, v6).unwrap();
        probe::run(&self.state, &[p], Duration::from_millis(1000)).unwrap()[0].connected
    }

    pub fn ip(&self, pod: &str, v6: bool) -> IpAddr {
        probe::target_ip(&self.state, pod, v6).unwrap().1
    }

    pub fn netns(&self, pod: &str) -> PathBuf {
        bulkhead_lab::netns::path(&self.state.pod(pod).unwrap().netns)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    /// The key (`ns/name`) of the first pod of `ns` labelled `app=APP`.
    pub fn pod_of(&self, ns: &str, app: &str) -> String {
        let p =
            self.state.pods.iter().find(|p| p.namespace == ns && p.labels.get("app").map(String::as_str) == Some(app));
        p.unwrap_or_else(|| panic!("no pod of {ns}/{app}")).key()
    }

    /// Status of every node's agent; an agent that is starting (after a
    /// restart, on a loaded machine) is asked again for up to 20 s.
    pub fn status(&self) -> Vec<pb::AgentStatus> {
        Self::rt().block_on(async {
            let mut out = Vec::new();
            for n in &self.state.nodes {
                let mut tries = 0;
                let mut c = loop {
                    match bulkhead_api::connect_unix(&n.socket).await {
                        Ok(c) => break c,
                        Err(_) if tries < 80 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        }
                        Err(e) => panic!("agent of {} does not answer on {}: {e}", n.name, n.socket.display()),
                    }
                };
                out.push(c.get_status(pb::StatusRequest {}).await.unwrap().into_inner());
            }
            out
        })
    }

    /// A counter summed over nodes.
    pub fn counter(&self, name: &str) -> u64 {
        self.status().iter().map(|s| s.counters.get(name).copied().unwrap_or(0)).sum()
    }

    /// Recent flows of every node, with their enumerations by name.
    pub fn flows(&self) -> Vec<AgentFlow> {
        Self::rt().block_on(async {
            use tokio_stream::StreamExt;
            let mut out = Vec::new();
            for n in &self.state.nodes {
                let mut c = bulkhead_api::connect_unix(&n.socket).await.unwrap();
                let mut s =
                    c.stream_flows(pb::FlowFilter { follow: false, ..Default::default() }).await.unwrap().into_inner();
                while let Some(b) = s.next().await {
                    out.extend(b.unwrap().flows.into_iter().map(AgentFlow::from));
                }
            }
            out
        })
    }

    /// Waits until a flow matching `pred` shows up (events are asynchronous).
    pub fn wait_flow(&self, what: &str, pred: impl Fn(&AgentFlow) -> bool) -> AgentFlow {
        for _ in 0..50 {
            if let Some(f) = self.flows().into_iter().find(|f| pred(f)) {
                return f;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no flow {what} among:\n{:#?}", self.flows());
    }
}

/// An agent's wire flow with its enumerations decoded to their names
/// ("forwarded", "ingress", "new", "default_deny"), the way tests compare them.
#[derive(Debug, Clone)]
pub struct AgentFlow {
    pub flow: pb::Flow,
    pub verdict: String,
    pub direction: String,
    pub event: String,
    pub drop_reason: String,
}

impl From<pb::Flow> for AgentFlow {
    fn from(flow: pb::Flow) -> Self {
        use bulkhead_api::v1::convert;
        let name = |r: Result<String, convert::ConvertError>| r.unwrap_or_else(|e| format!("undecodable: {e}"));
        Self {
            verdict: name(convert::verdict(flow.verdict, "verdict").map(|v| v.to_string())),
            direction: name(convert::direction(flow.direction, "direction").map(|v| v.to_string())),
            event: name(convert::event_type(flow.event, "event").map(|v| v.to_string())),
            drop_reason: name(convert::reason(flow.drop_reason, "drop_reason").map(|v| v.to_string())),
            flow,
        }
    }
}

impl std::ops::Deref for AgentFlow {
    type Target = pb::Flow;
    fn deref(&self) -> &pb::Flow {
        &self.flow
    }
}

fn placeholder(name: &str) -> LabState {
    LabState {
        name: name.into(),
        cni: String::new(),
        nodes: vec![],
        pods: vec![],
        namespaces: Default::default(),
        namespace_annotations: Default::default(),
        policies: 0,
        pod_cidr: bulkhead_lab::cidr::DEFAULT.into(),
        api: None,
        default_mode: String::new(),
        learn: (0, 0),
        controller_args: vec![],
        agent_args: vec![],
        services: vec![],
        controller_pid: None,
        generation: 0,
        last_endpoint_id: 0,
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = run(&["lab", "down", "--name", &self.name]);
        let _ = std::fs::remove_file(&self.manifest);
        if !out.status.success() {
            eprintln!("lab down {}: {}", self.name, String::from_utf8_lossy(&out.stderr));
        }
        assert!(bulkhead_lab::netns::list(&format!("bh_{}_", self.name)).is_empty() || std::thread::panicking());
    }
}

/// An echo connection held open from inside a pod's namespace.
pub struct Conn {
    stream: TcpStream,
}

impl Conn {
    /// Connects from `netns` to `addr` and reads the server's banner.
    pub fn open(netns: PathBuf, addr: SocketAddr) -> Conn {
        let stream = std::thread::spawn(move || {
            bulkhead_lab::netns::enter(&netns).unwrap();
            TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap()
        })
        .join()
        .unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(2000))).unwrap();
        let mut c = Conn { stream };
        let mut banner = [0u8; 128];
        let n = c.stream.read(&mut banner).unwrap();
        assert!(n > 0);
        c
    }

    /// Sends a few bytes and expects them echoed.
    pub fn echo(&mut self) -> bool {
        if self.stream.write_all(b"ping").is_err() {
            return false;
        }
        let mut buf = [0u8; 4];
        self.stream.read_exact(&mut buf).is_ok() && &buf == b"ping"
    }
}

/// A Deployment of one replica serving `port`, with its Service, calling
/// `calls` ("name:port, name.ns:port", every 300 ms) when not empty.
pub fn deployment(ns: &str, name: &str, port: u16, calls: &str) -> String {
    let calls = if calls.is_empty() {
        String::new()
    } else {
        format!("\n  annotations: {{lab.bulkhead.dev/calls: \"{calls}\", lab.bulkhead.dev/call-interval: 300ms}}")
    };
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}{calls}\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        ports: [{{containerPort: {port}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: {port}}}]\n"
    )
}

/// One Pod document: `namespace/name`, labelled `app: <app>`, serving `ports`
/// ("80" for TCP, "9000/UDP" for UDP).
pub fn pod(namespace: &str, name: &str, app: &str, ports: &[&str]) -> String {
    pod_in_mode(namespace, name, app, ports, None)
}

/// A pod whose enforcement mode is set by annotation (learn, audit or enforce).
pub fn pod_in_mode(namespace: &str, name: &str, app: &str, ports: &[&str], mode: Option<&str>) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| match p.split_once('/') {
            Some((n, proto)) => format!("{{containerPort: {n}, protocol: {proto}}}"),
            None => format!("{{containerPort: {p}}}"),
        })
        .collect();
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {namespace}, labels: {{app: {app}}}, annotations: {{{}}}}}\nspec: {{containers: [{{name: c, ports: [{}]}}]}}\n",
        mode.map(|m| format!("bulkhead.dev/mode: {m}")).unwrap_or_default(),
        ports.join(", ")
    )
}

/// One NetworkPolicy in namespace x selecting `app: <app>` and isolating
/// one direction ("ingress" or "egress"); `rules` are its rules in YAML flow
/// style, e.g. "{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}".
pub fn netpol(name: &str, app: &str, direction: &str, rules: &[&str]) -> String {
    let kind = if direction == "ingress" { "Ingress" } else { "Egress" };
    format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: x}}\nspec:\n  podSelector: {{matchLabels: {{app: {app}}}}}\n  policyTypes: [{kind}]\n  {direction}: [{}]\n",
        rules.join(", ")
    )
}

/// Runs a command inside a pod's namespace.
pub fn exec(lab: &Lab, pod: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["lab", "exec", "--name", &lab.name, pod, "--"];
    args.extend_from_slice(cmd);
    run(&args)
}

/// A client of a lab's HTTPS API, found the way scripts find it
/// (`bulkhead lab status -o json`), trusting the lab's CA.
pub struct Api {
    pub url: String,
    /// The CA the API's certificate chains to.
    pub ca_file: PathBuf,
    dir: PathBuf,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// An answer: the status, the content type and the body (JSON, or a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: serde_json::Value,
    pub text: String,
}

impl Api {
    /// The lab's API, from its documented `lab status -o json` contract.
    pub fn of(lab: &Lab) -> Api {
        let out = lab.bulkhead(&["lab", "status", "--name", &lab.name, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let api = &v["api"];
        let url = api["url"].as_str().unwrap().to_string();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        let ca = std::fs::read(api["ca_file"].as_str().unwrap()).unwrap();
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let ca_file = PathBuf::from(api["ca_file"].as_str().unwrap());
        let dir = ca_file.parent().unwrap().to_path_buf();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Api { url, ca_file, dir, client, rt }
    }

    /// An API served as plain HTTP on loopback (the hub in its tests);
    /// `dir` holds its files.
    pub fn plain(url: &str, dir: &std::path::Path) -> Api {
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Api { url: url.to_string(), ca_file: PathBuf::new(), dir: dir.to_path_buf(), client, rt }
    }

    /// The token of the lab's "admin" or "viewer" file.
    pub fn lab_token(&self, role: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{role}.token"))).unwrap().trim().to_string()
    }

    /// Adds token holders (user, role, namespaces) to the lab's tokens file
    /// and returns their tokens once the controller has reloaded it.
    pub fn add_tokens(&self, holders: &[(&str, bulkhead_model::Role, Option<&[&str]>)]) -> Vec<String> {
        use bulkhead_controller::auth::tokens;
        let path = self.dir.join("tokens.yaml");
        let mut file: tokens::TokenFile = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut out = Vec::new();
        for (user, role, namespaces) in holders {
            let t = tokens::generate().unwrap();
            file.tokens.push(tokens::TokenEntry {
                user: user.to_string(),
                role: *role,
                namespaces: namespaces.map(|n| n.iter().map(|s| s.to_string()).collect()),
                sha256: tokens::hash(&t),
            });
            out.push(t);
        }
        std::fs::write(&path, tokens::TokenFile::to_yaml(&file.tokens).unwrap()).unwrap();
        for _ in 0..100 {
            if self.call("GET", "/api/v1/whoami", Some(&out[0]), None).status == 200 {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the controller did not reload its tokens file");
    }

    /// One request; `body` is sent as JSON.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Answer {
        self.rt.block_on(async {
            let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut r = self.client.request(m, format!("{}{path}", self.url));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            if let Some(b) = body {
                r = r.json(&b);
            }
            let resp = match r.send().await {
                Ok(r) => r,
                // Not listening (a controller restarting): status 0, the error as text.
                Err(e) => {
                    return Answer {
                        status: 0,
                        content_type: String::new(),
                        body: serde_json::Value::Null,
                        text: e.to_string(),
                    };
                }
            };
            let status = resp.status().as_u16();
            let content_type =
                resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            if content_type.starts_with("text/event-stream") {
                // A live stream: the headers are the answer.
                return Answer { status, content_type, body: serde_json::Value::Null, text: String::new() };
            }
            let text = resp.text().await.unwrap();
            let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            Answer { status, content_type, body, text }
        })
    }

    /// A GET with a token that must succeed.
    pub fn get(&self, path: &str, token: &str) -> serde_json::Value {
        let a = self.call("GET", path, Some(token), None);
        assert_eq!(a.status, 200, "GET {path}: {}", a.text);
        a.body
    }
}

impl Api {
    /// Reads a live event stream until `want` appears in it, or `timeout`.
    pub fn stream_until(&self, path: &str, token: &str, want: &str, timeout: Duration) -> String {
        self.rt.block_on(async {
            use futures::StreamExt;
            let resp = self.client.get(format!("{}{path}", self.url)).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "GET {path}");
            let mut body = resp.bytes_stream();
            let mut seen = String::new();
            let deadline = tokio::time::Instant::now() + timeout;
            while !seen.contains(want) {
                match tokio::time::timeout_at(deadline, body.next()).await {
                    Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => break,
                }
            }
            seen
        })
    }
}

/// Two pods of namespace `x`, `a` serving 80 and `b` serving 80 and 81,
/// and a policy letting `a` reach `b` on 80 only.
pub fn two_pods_80_of_81() -> String {
    [
        pod("x", "a", "a", &["80"]),
        pod("x", "b", "b", &["80", "81"]),
        netpol("b-from-a", "b", "ingress", &["{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 80}]}"]),
    ]
    .concat()
}

/// A policy opening `b`'s 81 to `a` (beside [`two_pods_80_of_81`]).
pub const OPEN_81_TO_B: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: b-81-from-a, namespace: x}\nspec:\n  podSelector: {matchLabels: {app: b}}\n  ingress: [{from: [{podSelector: {matchLabels: {app: a}}}], ports: [{port: 81}]}]\n";
