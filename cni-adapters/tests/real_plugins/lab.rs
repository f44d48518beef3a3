//! Test fixture: throwaway node/pod namespaces wired by a real CNI plugin.

use std::fs::File;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use bulkhead_cni::{CniError, HostInterface, HostInterfaceResolver, PodNetwork, resolve_auto};
use nix::sched::{CloneFlags, setns};

const CNI_PATH: &str = "/usr/lib/cni";

static COUNTER: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` sets up the /run/netns mount point on first use; parallel
/// first uses can race, so namespace creation is serialised.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

pub fn ip(args: &[&str]) -> String {
    String::from_utf8(run(Command::new("ip").args(args)).stdout).unwrap()
}

/// A plugin invocation that succeeded (or was attempted) and must be undone.
struct Attachment {
    plugin: String,
    config: String,
}

/// Owns every kernel object and file a test creates; dropping it (also on
/// panic) runs CNI DEL and deletes the namespaces and the IPAM data dir.
pub struct Lab {
    pub id: String,
    pub n: u32,
    /// `namespaces[0]` is the node, `namespaces[1]` the pod, then extras.
    namespaces: Vec<String>,
    data_dir: PathBuf,
    attachment: Option<Attachment>,
}

impl Lab {
    pub fn new() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("bhcni-{}-{n}", std::process::id());
        let mut lab = Self {
            data_dir: PathBuf::from(format!("/tmp/{id}-ipam")),
            namespaces: Vec::new(),
            id,
            n,
            attachment: None,
        };
        std::fs::create_dir(&lab.data_dir).unwrap();
        lab.add_netns("node");
        lab.add_netns("pod");
        lab
    }

    pub fn add_netns(&mut self, role: &str) -> String {
        let name = format!("{}-{role}", self.id);
        {
            let _guard = NETNS_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            // Registered before creation: a half-created namespace is still cleaned up.
            self.namespaces.push(name.clone());
            ip(&["netns", "add", &name]);
        }
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    pub fn node(&self) -> &str {
        &self.namespaces[0]
    }

    pub fn pod(&self) -> &str {
        &self.namespaces[1]
    }

    pub fn pod_netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.pod()))
    }

    fn ipam(&self) -> String {
        format!(
            r#"{{"type":"host-local","subnet":"10.250.{}.0/24","dataDir":"{}"}}"#,
            self.n % 250,
            self.data_dir.display()
        )
    }

    /// Runs CNI ADD of `plugin` with the given type-specific config keys.
    pub fn cni_add(&mut self, plugin: &str, extra: &str) {
        let config =
            format!(r#"{{"cniVersion":"1.0.0","name":"{}","type":"{plugin}",{extra}"ipam":{}}}"#, self.id, self.ipam());
        // Recorded first: CNI DEL must also clean up after a failed ADD.
        self.attachment = Some(Attachment { plugin: plugin.to_owned(), config: config.clone() });
        let out = self.cni("ADD", plugin, &config);
        assert!(
            out.status.success(),
            "CNI ADD {plugin} failed: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cni(&self, command: &str, plugin: &str, config: &str) -> Output {
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.node(), &format!("{CNI_PATH}/{plugin}")])
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &self.id)
            .env("CNI_NETNS", self.pod_netns_path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", CNI_PATH)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(mut stdin) = child.stdin.take() {
            // A plugin that dies early closes stdin; its exit status tells why.
            let _ = stdin.write_all(config.as_bytes());
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `f` on a thread inside the node netns, as the agent would.
    pub fn in_node<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let node = File::open(format!("/var/run/netns/{}", self.node())).unwrap();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&node, CloneFlags::CLONE_NEWNET).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    pub fn resolve(&self, resolver: &dyn HostInterfaceResolver, pod: &PodNetwork) -> Result<HostInterface, CniError> {
        self.in_node(|| resolver.resolve(pod))
    }

    pub fn auto(&self, pod: &PodNetwork) -> Result<HostInterface, CniError> {
        self.in_node(|| resolve_auto(pod))
    }

    pub fn by_netns(&self) -> PodNetwork {
        PodNetwork { netns: Some(self.pod_netns_path()), ip: None, pod_ifname: "eth0".to_owned() }
    }

    pub fn by_ip(&self, ip: IpAddr) -> PodNetwork {
        PodNetwork { netns: None, ip: Some(ip), pod_ifname: "eth0".to_owned() }
    }

    /// Ground truth: the single veth of the node netns, from `ip -j` and
    /// cross-checked against sysfs.
    pub fn node_veth(&self) -> (String, u32) {
        let links = parse_links(&ip(&["-n", self.node(), "-j", "link", "show", "type", "veth"]));
        assert_eq!(links.len(), 1, "expected exactly one veth in node netns: {links:?}");
        let (index, name) = links.into_iter().next().unwrap();
        assert_eq!(sys_ifindex(self.node(), &name), index);
        (name, index)
    }

    pub fn pod_ifindex(&self) -> u32 {
        sys_ifindex(self.pod(), "eth0")
    }

    /// Ground truth: the pod's IPv4 address as configured inside the pod.
    pub fn pod_ip(&self) -> IpAddr {
        let json = ip(&["-n", self.pod(), "-j", "-4", "addr", "show", "dev", "eth0"]);
        json_str_after(&json, "\"local\":").parse().unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(att) = self.attachment.take() {
            let out = self.cni("DEL", &att.plugin, &att.config);
            if !out.status.success() {
                eprintln!("{}: CNI DEL {} failed: {}", self.id, att.plugin, String::from_utf8_lossy(&out.stderr));
            }
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn sys_ifindex(netns: &str, ifname: &str) -> u32 {
    let path = format!("/sys/class/net/{ifname}/ifindex");
    let out = run(Command::new("ip").args(["netns", "exec", netns, "cat", &path]));
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

/// Tiny parser for `ip -j link show`: every link object starts with
/// `{"ifindex":N` and has an `"ifname":"..."` (nested objects never do).
fn parse_links(json: &str) -> Vec<(u32, String)> {
    json.split("{\"ifindex\":")
        .skip(1)
        .map(|obj| {
            let digits: String = obj.chars().take_while(char::is_ascii_digit).collect();
            (digits.parse().unwrap(), json_str_after(obj, "\"ifname\":"))
        })
        .collect()
}

/// The string value following `key` (which includes the colon).
fn json_str_after(json: &str, key: &str) -> String {
    let start = json.find(key).unwrap_or_else(|| panic!("{key} not in {json}")) + key.len();
    let rest = json[start..].trim_start().strip_prefix('"').unwrap();
    rest[..rest.find('"').unwrap()].to_owned()
}
