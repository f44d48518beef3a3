//! Policies in force, changes to the controller's objects, and explaining a
//! verdict.

use super::enums::mode;
use super::{ConvertError, optional, optional_enum, optional_port, port};
use crate::controller::v1 as pb;
use crate::v1::policies::{
    ChangeRequest, ChangeResult, ExplainQuery, Explanation, PolicyInForce, PolicyQuery, SideDecision,
};

impl From<PolicyInForce> for pb::PolicyInForce {
    fn from(p: PolicyInForce) -> Self {
        Self {
            kind: p.kind,
            namespace: p.namespace,
            name: p.name,
            tier: p.tier,
            priority: p.priority,
            mode: p.mode.map(|m| pb::Mode::from(m) as i32),
            ingress_rules: p.ingress_rules,
            egress_rules: p.egress_rules,
            selects: p.selects,
            yaml: p.yaml,
        }
    }
}

impl TryFrom<pb::PolicyInForce> for PolicyInForce {
    type Error = ConvertError;
    fn try_from(p: pb::PolicyInForce) -> Result<Self, ConvertError> {
        Ok(Self {
            kind: p.kind,
            namespace: p.namespace,
            name: p.name,
            tier: p.tier,
            priority: p.priority,
            mode: optional_enum(p.mode, "mode", mode)?,
            ingress_rules: p.ingress_rules,
            egress_rules: p.egress_rules,
            selects: p.selects,
            yaml: p.yaml,
        })
    }
}

impl From<PolicyQuery> for pb::PolicyQuery {
    fn from(q: PolicyQuery) -> Self {
        Self { namespace: q.namespace }
    }
}

impl TryFrom<pb::PolicyQuery> for PolicyQuery {
    type Error = ConvertError;
    fn try_from(q: pb::PolicyQuery) -> Result<Self, ConvertError> {
        Ok(Self { namespace: q.namespace })
    }
}

impl From<ChangeRequest> for pb::ChangeRequest {
    fn from(r: ChangeRequest) -> Self {
        Self { yaml: r.yaml, source: r.source }
    }
}

impl TryFrom<pb::ChangeRequest> for ChangeRequest {
    type Error = ConvertError;
    fn try_from(r: pb::ChangeRequest) -> Result<Self, ConvertError> {
        Ok(Self { yaml: r.yaml, source: r.source })
    }
}

impl From<ChangeResult> for pb::ChangeResult {
    fn from(r: ChangeResult) -> Self {
        Self {
            generation: r.generation,
            changed: r.changed,
            unchanged: r.unchanged,
            skipped: r.skipped,
            compile_micros: r.compile_micros,
        }
    }
}

impl TryFrom<pb::ChangeResult> for ChangeResult {
    type Error = ConvertError;
    fn try_from(r: pb::ChangeResult) -> Result<Self, ConvertError> {
        Ok(Self {
            generation: r.generation,
            changed: r.changed,
            unchanged: r.unchanged,
            skipped: r.skipped,
            compile_micros: r.compile_micros,
        })
    }
}

impl From<ExplainQuery> for pb::ExplainQuery {
    fn from(q: ExplainQuery) -> Self {
        Self { from: q.from, to: q.to, port: q.port.map(u32::from), protocol: q.protocol }
    }
}

impl TryFrom<pb::ExplainQuery> for ExplainQuery {
    type Error = ConvertError;
    fn try_from(q: pb::ExplainQuery) -> Result<Self, ConvertError> {
        Ok(Self { from: q.from, to: q.to, port: optional_port(q.port, "port")?, protocol: q.protocol })
    }
}

impl From<SideDecision> for pb::SideDecision {
    fn from(d: SideDecision) -> Self {
        Self { allowed: d.allowed, decided_by: d.decided_by }
    }
}

impl TryFrom<pb::SideDecision> for SideDecision {
    type Error = ConvertError;
    fn try_from(d: pb::SideDecision) -> Result<Self, ConvertError> {
        Ok(Self { allowed: d.allowed, decided_by: d.decided_by })
    }
}

impl From<Explanation> for pb::Explanation {
    fn from(e: Explanation) -> Self {
        Self {
            allowed: e.allowed,
            from_address: e.from_address,
            to_address: e.to_address,
            port: u32::from(e.port),
            protocol: e.protocol,
            egress: e.egress.map(Into::into),
            ingress: e.ingress.map(Into::into),
        }
    }
}

impl TryFrom<pb::Explanation> for Explanation {
    type Error = ConvertError;
    fn try_from(e: pb::Explanation) -> Result<Self, ConvertError> {
        Ok(Self {
            allowed: e.allowed,
            from_address: e.from_address,
            to_address: e.to_address,
            port: port(e.port, "port")?,
            protocol: e.protocol,
            egress: optional(e.egress, "egress")?,
            ingress: optional(e.ingress, "ingress")?,
        })
    }
}

items!(pb::PolicyInForceList, PolicyInForce);

#[cfg(test)]
mod tests {
    use bulkhead_model::Mode;

    use super::*;

    #[test]
    fn policy_documents_round_trip() -> Result<(), ConvertError> {
        let policies = vec![
            PolicyInForce {
                kind: "NetworkPolicy".into(),
                namespace: Some("shop".into()),
                name: "web".into(),
                tier: None,
                priority: None,
                mode: Some(Mode::Audit),
                ingress_rules: 2,
                egress_rules: 0,
                selects: vec!["shop/web-1".into()],
                yaml: "kind: NetworkPolicy\n".into(),
            },
            PolicyInForce {
                kind: "ClusterNetworkPolicy".into(),
                namespace: None,
                name: "baseline".into(),
                tier: Some("Baseline".into()),
                priority: Some(10),
                mode: None,
                ingress_rules: 1,
                egress_rules: 1,
                selects: vec![],
                yaml: String::new(),
            },
        ];
        assert_eq!(Vec::<PolicyInForce>::try_from(pb::PolicyInForceList::from(policies.clone()))?, policies);
        let q = PolicyQuery { namespace: Some("shop".into()) };
        assert_eq!(PolicyQuery::try_from(pb::PolicyQuery::from(q.clone()))?, q);
        Ok(())
    }

    #[test]
    fn changes_and_explanations_round_trip() -> Result<(), ConvertError> {
        let change = ChangeRequest { yaml: "kind: Namespace\n".into(), source: "ns.yaml".into() };
        assert_eq!(ChangeRequest::try_from(pb::ChangeRequest::from(change.clone()))?, change);
        let result = ChangeResult {
            generation: 42,
            changed: vec!["NetworkPolicy shop/web".into()],
            unchanged: vec!["Namespace shop".into()],
            skipped: vec!["apps/v1 Deployment".into()],
            compile_micros: 150,
        };
        assert_eq!(ChangeResult::try_from(pb::ChangeResult::from(result.clone()))?, result);
        for q in [
            ExplainQuery { from: "shop/web-1".into(), to: "192.0.2.1".into(), port: Some(443), protocol: None },
            ExplainQuery { from: "10.0.0.1".into(), to: "shop/db".into(), port: None, protocol: Some("ICMP".into()) },
        ] {
            assert_eq!(ExplainQuery::try_from(pb::ExplainQuery::from(q.clone()))?, q);
        }
        let explanation = Explanation {
            allowed: false,
            from_address: "10.0.0.5".into(),
            to_address: "10.0.0.6".into(),
            port: 5432,
            protocol: "TCP".into(),
            egress: Some(SideDecision { allowed: true, decided_by: "not isolated".into() }),
            ingress: Some(SideDecision { allowed: false, decided_by: "default deny (isolated by shop/db)".into() }),
        };
        assert_eq!(Explanation::try_from(pb::Explanation::from(explanation.clone()))?, explanation);
        let outside = Explanation { egress: None, ingress: None, ..explanation };
        assert_eq!(Explanation::try_from(pb::Explanation::from(outside.clone()))?, outside);
        Ok(())
    }

    #[test]
    fn an_out_of_range_port_is_refused() {
        let q = pb::ExplainQuery { from: "a".into(), to: "b".into(), port: Some(65_536), protocol: None };
        assert_eq!(ExplainQuery::try_from(q).err().map(|e| e.field), Some("port".to_string()));
    }
}
