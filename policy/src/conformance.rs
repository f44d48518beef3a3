//! Data-driven policy cases: a step sets labels and the policies in force,
//! then truth tables say which pod reaches which on a port, or single checks
//! name one client, server, protocol and port each (the upstream
//! ClusterNetworkPolicy suite probes pairs, not matrices). The same cases
//! run against the evaluator, the compiled entries and, in the lab, real
//! traffic. Tables use the upstream NetworkPolicy e2e notation: rows are
//! clients, columns servers, `.` connected, `X` blocked.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use crate::ports::Protocol;

/// One case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Short id.
    pub name: String,
    /// Title of the upstream test the facts come from.
    #[serde(default)]
    pub upstream: String,
    /// The namespaces and pods the case runs on.
    #[serde(default)]
    pub model: Model,
    /// Phases, in order.
    pub steps: Vec<Step>,
}

/// The fixtures cases run on, each a file of Namespaces and Pods in
/// tests/conformance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Model {
    /// The NetworkPolicy e2e model: namespaces x, y, z with pods a, b, c.
    #[default]
    Xyz,
    /// The ClusterNetworkPolicy conformance model: four houses, two pods each.
    Houses,
}

impl Model {
    /// The fixture's file name in tests/conformance.
    pub fn file(self) -> &'static str {
        match self {
            Model::Xyz => "model.yaml",
            Model::Houses => "houses.yaml",
        }
    }
}

/// One probe and its expected outcome, written
/// `CLIENT SERVER PROTOCOL/PORT EXPECT` (`.` connects, `X` is blocked).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Check {
    /// Client pod, "namespace/name".
    pub from: String,
    /// Server pod, "namespace/name".
    pub to: String,
    /// Protocol probed.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
    /// Whether the connection must succeed.
    pub connected: bool,
}

impl TryFrom<String> for Check {
    type Error = String;

    fn try_from(line: String) -> Result<Self, String> {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [from, to, target, expect] = parts[..] else {
            return Err(format!("check {line:?}: expected CLIENT SERVER PROTOCOL/PORT EXPECT"));
        };
        let (proto, port) =
            target.split_once('/').ok_or_else(|| format!("check {line:?}: {target:?} is not PROTOCOL/PORT"))?;
        let protocol =
            Protocol::from_name(proto).ok_or_else(|| format!("check {line:?}: unknown protocol {proto:?}"))?;
        let port = port.parse().map_err(|e| format!("check {line:?}: port {port:?}: {e}"))?;
        let connected = match expect {
            "." => true,
            "X" => false,
            other => return Err(format!("check {line:?}: expectation {other:?} is neither . nor X")),
        };
        Ok(Self { from: from.into(), to: to.into(), protocol, port, connected })
    }
}

/// Label changes relative to the model; `None` removes a label.
pub type LabelPatch = BTreeMap<String, BTreeMap<String, Option<String>>>;

/// One phase of a case.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Extra or changed namespace labels, by namespace.
    #[serde(default)]
    pub namespace_labels: LabelPatch,
    /// Extra or changed pod labels, by "namespace/pod".
    #[serde(default)]
    pub pod_labels: LabelPatch,
    /// Every policy in force during the step (NetworkPolicy or
    /// ClusterNetworkPolicy objects), with `${ns/pod}` standing for a pod's
    /// IPv4 address.
    #[serde(default)]
    pub policies: Vec<serde_yaml::Value>,
    /// Truth tables: what to probe and what to expect.
    #[serde(default)]
    pub probes: Vec<ProbeSpec>,
    /// Single probes and what to expect.
    #[serde(default)]
    pub checks: Vec<Check>,
}

/// One probe matrix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Destination port.
    pub port: u16,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The expected table.
    pub expect: String,
}

impl Case {
    /// Parses a case file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let case: Self = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        if let Some(i) = case.steps.iter().position(|s| s.probes.is_empty() && s.checks.is_empty()) {
            return Err(format!("step {i} has neither probes nor checks"));
        }
        Ok(case)
    }
}

impl Step {
    /// The step's policies as one YAML stream, with pod addresses filled in.
    pub fn policies_yaml(&self, ips: &BTreeMap<String, IpAddr>) -> Result<String, String> {
        let mut out = String::new();
        for p in &self.policies {
            let text = serde_yaml::to_string(p).map_err(|e| e.to_string())?;
            out.push_str("---\n");
            out.push_str(&substitute(&text, ips)?);
        }
        Ok(out)
    }
}

/// Replaces `${ns/pod}` with the pod's address.
pub fn substitute(text: &str, ips: &BTreeMap<String, IpAddr>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated ${{ in {text:?}"))?;
        let key = &after[..end];
        let ip = ips.get(key).ok_or_else(|| format!("unknown pod {key:?} in ${{…}}"))?;
        out.push_str(&ip.to_string());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A connectivity truth table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Pods, in row and column order.
    pub pods: Vec<String>,
    /// Whether `pods[row]` reaches `pods[col]`, indexed `[row][col]`.
    pub cells: Vec<Vec<bool>>,
}

impl Table {
    /// Parses the `.`/`X` notation.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut lines =
            text.lines().map(str::split_whitespace).map(|l| l.collect::<Vec<_>>()).filter(|l| !l.is_empty());
        let header = lines.next().ok_or("empty table")?;
        let pods: Vec<String> = header.iter().skip(1).map(|s| s.to_string()).collect();
        let mut cells = Vec::new();
        for (i, row) in lines.enumerate() {
            if row.first().copied() != pods.get(i).map(String::as_str) || row.len() != pods.len() + 1 {
                return Err(format!("row {} ({:?}) does not match the header", i + 1, row.first()));
            }
            let r = row[1..]
                .iter()
                .map(|c| match *c {
                    "." => Ok(true),
                    "X" => Ok(false),
                    other => Err(format!("cell {other:?} is neither . nor X")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            cells.push(r);
        }
        if cells.len() != pods.len() {
            return Err(format!("{} rows for {} columns", cells.len(), pods.len()));
        }
        Ok(Self { pods, cells })
    }

    /// A table filled in by a function of (client, server).
    pub fn build(pods: &[String], mut f: impl FnMut(&str, &str) -> bool) -> Self {
        let cells = pods.iter().map(|a| pods.iter().map(|b| f(a, b)).collect()).collect();
        Self { pods: pods.to_vec(), cells }
    }

    /// Renders the table, one char per cell.
    pub fn render(&self, cell: impl Fn(usize, usize) -> char) -> String {
        let w = self.pods.iter().map(String::len).max().unwrap_or(1).max(1);
        let mut out = format!("{:w$}", "-");
        for p in &self.pods {
            out.push_str(&format!(" {p:w$}"));
        }
        out.push('\n');
        for (i, p) in self.pods.iter().enumerate() {
            out.push_str(&format!("{p:w$}"));
            for j in 0..self.pods.len() {
                out.push_str(&format!(" {:w$}", cell(i, j)));
            }
            out.push('\n');
        }
        out.lines().map(|l| format!("{}\n", l.trim_end())).collect()
    }

    /// `None` when equal; otherwise expected, observed and a comparison
    /// table (`X` marks the cells that differ).
    pub fn diff(&self, observed: &Table) -> Option<String> {
        if self == observed {
            return None;
        }
        if self.pods != observed.pods {
            return Some(format!("different pods: expected {:?}, observed {:?}", self.pods, observed.pods));
        }
        let mark = |b: bool| if b { '.' } else { 'X' };
        let wrong = (0..self.pods.len())
            .flat_map(|i| (0..self.pods.len()).map(move |j| (i, j)))
            .filter(|(i, j)| self.cells[*i][*j] != observed.cells[*i][*j])
            .count();
        Some(format!(
            "{wrong} of {} cells differ\nexpected:\n{}observed:\n{}comparison (X = differs):\n{}",
            self.pods.len() * self.pods.len(),
            self.render(|i, j| mark(self.cells[i][j])),
            observed.render(|i, j| mark(observed.cells[i][j])),
            self.render(|i, j| mark(self.cells[i][j] == observed.cells[i][j])),
        ))
    }
}

/// Applies a label patch to a label map.
pub fn patch_labels(labels: &mut crate::selector::Labels, patch: Option<&BTreeMap<String, Option<String>>>) {
    for (k, v) in patch.into_iter().flatten() {
        match v {
            Some(v) => labels.insert(k.clone(), v.clone()),
            None => labels.remove(k),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_render_and_diff() {
        let t = Table::parse("- a b\na . X\nb . .\n").unwrap();
        assert_eq!(t.cells, vec![vec![true, false], vec![true, true]]);
        let o = Table::build(&t.pods, |_, _| true);
        let d = t.diff(&o).unwrap();
        assert!(d.starts_with("1 of 4 cells differ"), "{d}");
        assert!(d.contains("comparison (X = differs):\n- a b\na . X\nb . .\n"), "{d}");
        assert!(t.diff(&t.clone()).is_none());
        assert!(Table::parse("- a b\na . ?\nb . .").is_err());
        assert!(Table::parse("- a b\nb . .\na . .").is_err());
    }

    #[test]
    fn checks_parse_and_bad_ones_are_named() {
        let c = Check::try_from("a/p-0 b/q-1 SCTP/9003 X".to_string()).unwrap();
        assert_eq!((c.protocol, c.port, c.connected), (Protocol::Sctp, 9003, false));
        for bad in ["a/p b/q TCP/80", "a/p b/q ICMP/1 .", "a/p b/q TCP/x .", "a/p b/q TCP/80 ?"] {
            assert!(Check::try_from(bad.to_string()).unwrap_err().starts_with("check "), "{bad}");
        }
        assert!(Case::parse("name: n\nsteps: [{policies: []}]").unwrap_err().contains("neither probes nor checks"));
    }

    #[test]
    fn substitutes_pod_addresses() {
        let ips = BTreeMap::from([("x/b".to_string(), "10.0.0.7".parse().unwrap())]);
        assert_eq!(substitute("cidr: ${x/b}/32", &ips).unwrap(), "cidr: 10.0.0.7/32");
        assert!(substitute("${y/q}", &ips).is_err());
    }
}
