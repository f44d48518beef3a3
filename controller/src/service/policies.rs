//! Policies in force, changes to the controller's objects, and explaining a
//! verdict. A tenant with the admin role may change only NetworkPolicies
//! (and Quarantines) of its own namespaces.

use bulkhead_api::audit::Event;
use bulkhead_api::v1::audit::Outcome;
use bulkhead_api::v1::policies::{
    ChangeRequest, ChangeResult, ExplainQuery, Explanation, PolicyInForce, PolicyQuery, SideDecision,
};
use bulkhead_policy::objects::{Object, parse_documents};

use super::{Op, Service, ServiceError};
use crate::auth::{Principal, Scope};
use crate::policy::state::{ChangeKind, State};
use crate::policy::store::MODE_ANNOTATION;

/// The policies of `s` a principal in `scope` may see.
fn in_force(s: &State, scope: &Scope, namespace: Option<&str>) -> Vec<PolicyInForce> {
    let model = s.model();
    let selected = |ns: &str, sel: &bulkhead_policy::selector::Selector| -> Vec<String> {
        model
            .inventory
            .pods
            .values()
            .filter(|p| p.namespace == ns && scope.contains(&p.namespace) && sel.matches(&p.labels))
            .map(|p| p.key())
            .collect()
    };
    let mut out = Vec::new();
    for np in model.policies.network.values() {
        if !scope.contains(&np.namespace) || namespace.is_some_and(|n| n != np.namespace) {
            continue;
        }
        let oref = bulkhead_policy::objects::ObjectRef {
            kind: "NetworkPolicy".into(),
            namespace: np.namespace.clone(),
            name: np.name.clone(),
        };
        let object = s.object(&oref);
        let mode = match object {
            Some(Object::NetworkPolicy(o)) => {
                o.metadata.annotations.as_ref().and_then(|a| a.get(MODE_ANNOTATION)).and_then(|m| m.parse().ok())
            }
            _ => None,
        };
        out.push(PolicyInForce {
            kind: "NetworkPolicy".into(),
            namespace: Some(np.namespace.clone()),
            name: np.name.clone(),
            tier: None,
            priority: None,
            mode,
            ingress_rules: np.ingress.as_ref().map_or(0, |r| r.len() as u32),
            egress_rules: np.egress.as_ref().map_or(0, |r| r.len() as u32),
            selects: selected(&np.namespace, &np.pod_selector),
            yaml: object.and_then(|o| o.to_yaml().ok()).unwrap_or_default(),
        });
    }
    for cp in model.policies.cluster.values() {
        // A tenant sees the cluster-wide policies that apply to its pods.
        let selects: Vec<String> = model
            .inventory
            .pods
            .values()
            .filter(|p| scope.contains(&p.namespace) && namespace.is_none_or(|n| n == p.namespace))
            .filter(|p| cp.selects(&model.inventory.namespace_labels(&p.namespace), &p.labels))
            .map(|p| p.key())
            .collect();
        if scope.is_tenant() && selects.is_empty() {
            continue;
        }
        if namespace.is_some() && selects.is_empty() {
            continue;
        }
        let (kind, name) = cp.object();
        let oref =
            bulkhead_policy::objects::ObjectRef { kind: kind.into(), namespace: String::new(), name: name.into() };
        out.push(PolicyInForce {
            kind: kind.into(),
            namespace: None,
            name: name.into(),
            tier: Some(format!("{:?}", cp.tier)),
            priority: u32::try_from(cp.priority).ok(),
            mode: None,
            ingress_rules: cp.ingress.len() as u32,
            egress_rules: cp.egress.len() as u32,
            selects,
            yaml: s.object(&oref).and_then(|o| o.to_yaml().ok()).unwrap_or_default(),
        });
    }
    out
}

impl Service {
    /// The policies in force the caller may see.
    pub async fn policies(&self, who: &Principal, q: PolicyQuery) -> Result<Vec<PolicyInForce>, ServiceError> {
        self.authorize(who, Op::Policies, "policies")?;
        let scope = who.scope.clone();
        Ok(self.ctx.with_policy(move |s| Ok(in_force(s, &scope, q.namespace.as_deref()))).await?)
    }

    /// Adds, replaces or deletes the objects of a YAML stream, all or
    /// nothing; each object changed is audited with its before and after,
    /// and a refused change is audited with why.
    pub async fn change(
        &self,
        who: &Principal,
        kind: ChangeKind,
        req: ChangeRequest,
    ) -> Result<ChangeResult, ServiceError> {
        let op = match kind {
            ChangeKind::Apply => Op::Apply,
            ChangeKind::Delete => Op::Delete,
        };
        let source = if req.source.trim().is_empty() { "request".to_string() } else { req.source.clone() };
        self.authorize(who, op, &source)?;
        let objs = match parse_documents(&source, &req.yaml) {
            Ok(o) => o,
            Err(e) => {
                let detail = e.to_string();
                let event = Event {
                    action: &format!("{} rejected", op.name()),
                    target: &source,
                    detail: &detail,
                    ..Default::default()
                };
                self.audited(who, Outcome::Refused, event)?;
                return Err(crate::error::ControllerError::from(e).into());
            }
        };
        if who.scope.is_tenant() {
            for o in &objs {
                let r = o.reference();
                let tenant_kind = matches!(o, Object::NetworkPolicy(_) | Object::Quarantine(_) | Object::Other { .. });
                if !tenant_kind {
                    let why = format!(
                        "{} may not {} {r}: namespaced users change only NetworkPolicies and Quarantines",
                        who.user,
                        op.describe()
                    );
                    return Err(self.refuse(who, op, &r.to_string(), Vec::new(), why));
                }
                if !matches!(o, Object::Other { .. }) {
                    self.in_scope(who, op, &r.to_string(), &r.namespace)?;
                }
            }
        }
        let label = source.clone();
        match self.ctx.with_policy(move |s| s.change(kind, &label, objs)).await {
            Ok(report) => {
                for c in &report.objects {
                    let detail = format!("generation {}, source {source}", report.generation);
                    let target = c.target.to_string();
                    let namespaces =
                        if c.target.namespace.is_empty() { Vec::new() } else { vec![c.target.namespace.clone()] };
                    let event = Event {
                        action: op.name(),
                        target: &target,
                        namespaces,
                        detail: &detail,
                        before: c.before.as_ref().and_then(|o| o.to_yaml().ok()),
                        after: c.after.as_ref().and_then(|o| o.to_yaml().ok()),
                    };
                    self.audited(who, Outcome::Ok, event)?;
                }
                Ok(ChangeResult {
                    generation: report.generation,
                    changed: report.changes.changed,
                    unchanged: report.changes.unchanged,
                    skipped: report.changes.skipped,
                    compile_micros: report.compile_micros,
                })
            }
            Err(e) => {
                let detail = e.to_string();
                let event = Event {
                    action: &format!("{} rejected", op.name()),
                    target: &source,
                    detail: &detail,
                    ..Default::default()
                };
                self.audited(who, Outcome::Refused, event)?;
                Err(e.into())
            }
        }
    }

    /// "Can A reach B:port?", and what decides it. A tenant asks about
    /// connections with an end in its namespaces; what decides the other
    /// end is shown only as that end's namespace.
    pub async fn explain(&self, who: &Principal, q: ExplainQuery) -> Result<Explanation, ServiceError> {
        self.authorize(who, Op::Explain, "explain")?;
        let scope = who.scope.clone();
        let (from, to) = (q.from.clone(), q.to.clone());
        let (ex, ns) = self
            .ctx
            .with_policy(move |s| {
                let ex = s.explain(&from, &to, q.port, q.protocol.as_deref())?;
                let ns = |addr: &str| addr.parse().ok().and_then(|ip| s.namespace_of(ip));
                Ok((ex.clone(), (ns(&ex.from_address), ns(&ex.to_address))))
            })
            .await?;
        if !scope.either(ns.0.as_deref(), ns.1.as_deref()) {
            let why =
                format!("{} may not explain {} -> {}: neither end is in their namespaces", who.user, q.from, q.to);
            return Err(self.refuse(who, Op::Explain, &format!("{} -> {}", q.from, q.to), Vec::new(), why));
        }
        let hide = |side: Option<SideDecision>, end: &Option<String>| {
            side.map(|d| match end {
                Some(n) if !scope.contains(n) => {
                    SideDecision { allowed: d.allowed, decided_by: format!("a policy of namespace {n}") }
                }
                _ => d,
            })
        };
        // The address of an end outside the caller's namespaces is not shown either.
        let address = |a: &str, end: &Option<String>| match end {
            Some(n) if !scope.contains(n) => format!("(a pod of namespace {n})"),
            _ => a.to_string(),
        };
        Ok(Explanation {
            egress: hide(ex.egress.clone(), &ns.0),
            ingress: hide(ex.ingress.clone(), &ns.1),
            from_address: address(&ex.from_address, &ns.0),
            to_address: address(&ex.to_address, &ns.1),
            ..ex
        })
    }
}
