//! Which stored or live flows a query wants: validated filters and the
//! caller's scope. `matches` is the meaning; the SQLite store runs the same
//! filters as SQL, and a test holds the two to the same answers.

use bulkhead_api::v1::flows::Side;
use bulkhead_graph::{Entity, FlowRecord};
use bulkhead_model::Verdict;

/// A pod or workload named by a filter: its name, with its namespace when given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The namespace, when the filter said "namespace/name".
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl Named {
    /// Parses "namespace/name" or "name"; `None` when a part is not a
    /// Kubernetes name (so filter values never reach SQL patterns unchecked).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = |p: &str| bulkhead_policy::quarantine::valid_name(p);
        match s.split_once('/') {
            Some((ns, name)) if ok(ns) && ok(name) => Some(Self { namespace: Some(ns.into()), name: name.into() }),
            None if ok(s) => Some(Self { namespace: None, name: s.into() }),
            _ => None,
        }
    }

    fn pod(&self, pod: &str) -> bool {
        match pod.split_once('/') {
            Some((ns, name)) => name == self.name && self.namespace.as_deref().is_none_or(|n| n == ns),
            None => false,
        }
    }

    fn workload(&self, e: &Entity) -> bool {
        matches!(e, Entity::Workload { namespace, name, .. }
            if **name == *self.name && self.namespace.as_deref().is_none_or(|n| n == &**namespace))
    }
}

/// Filters of a flow query; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlowFilter {
    /// An end in this namespace.
    pub namespace: Option<String>,
    /// An end is this pod.
    pub pod: Option<Named>,
    /// An end is this workload.
    pub workload: Option<Named>,
    /// Which end `namespace`, `pod` and `workload` apply to.
    pub side: Side,
    /// Only this verdict.
    pub verdict: Option<Verdict>,
    /// Destination port as observed.
    pub port: Option<u16>,
    /// IANA protocol number.
    pub protocol: Option<u8>,
    /// The deciding rule, exactly.
    pub rule: Option<String>,
    /// From, nanoseconds since the epoch, inclusive.
    pub since_ns: Option<i64>,
    /// To, exclusive.
    pub until_ns: Option<i64>,
    /// A tenant's namespaces: an end must be in one of them.
    pub scope: Option<Vec<String>>,
}

impl FlowFilter {
    /// Whether `f` passes.
    pub fn matches(&self, f: &FlowRecord) -> bool {
        let (src, dst) = match self.side {
            Side::Either => (true, true),
            Side::Source => (true, false),
            Side::Destination => (false, true),
        };
        let end = |check: &dyn Fn(&Entity, &str) -> bool| {
            (src && check(&f.src, &f.src_pod)) || (dst && check(&f.dst, &f.dst_pod))
        };
        self.namespace.as_deref().is_none_or(|ns| end(&|e, _| e.namespace() == Some(ns)))
            && self.pod.as_ref().is_none_or(|p| end(&|_, pod| p.pod(pod)))
            && self.workload.as_ref().is_none_or(|w| end(&|e, _| w.workload(e)))
            && self.verdict.is_none_or(|v| f.verdict == v)
            && self.port.is_none_or(|p| f.dst_port == p)
            && self.protocol.is_none_or(|p| f.protocol == p)
            && self.rule.as_deref().is_none_or(|r| f.rule.as_deref() == Some(r))
            && self.since_ns.is_none_or(|t| f.time_ns >= t)
            && self.until_ns.is_none_or(|t| f.time_ns < t)
            && self.scope.as_ref().is_none_or(|ns| {
                [f.src.namespace(), f.dst.namespace()].into_iter().flatten().any(|n| ns.iter().any(|s| s == n))
            })
    }
}
