//! Enumerations between their protobuf values and the documents' (the
//! model's shared ones and the API's own). A document's enumeration becomes
//! its protobuf enumeration with `From`; a message's `i32` becomes a
//! document's value through the decoder named after it, which refuses "not
//! set" (the zero value, where the enumeration has one) and unknown values.

use bulkhead_model::exposure::{AppProtocol, Exposer, ExposureClass, FindingKind};
use bulkhead_model::{AnomalyKind, Direction, EventType, Mode, Reason, Role, Verdict};

use super::ConvertError;
use crate::controller::v1 as pb;
use crate::flow::v1 as flow_pb;
use crate::v1::audit::Outcome;
use crate::v1::baselines::Phase;
use crate::v1::blocks::BlockState;
use crate::v1::flows::{PeerKind, Side};
use crate::v1::graph::{Level, NodeKind};
use crate::v1::quarantine::{QuarantineState, TargetKind};
use crate::v1::review::ReviewStatus;

/// One enumeration both ways: `From<document>` for the protobuf type, and a
/// decoder from the wire's `i32`. Both matches are exhaustive, so a value
/// added on one side and not the other does not compile.
macro_rules! enum_map {
    (
        $(#[$doc:meta])*
        $decode:ident: $rust:ty => $pb:ty $(, unset $un:ident)? { $($rv:ident => $pv:ident),+ $(,)? }
    ) => {
        impl From<$rust> for $pb {
            fn from(value: $rust) -> Self {
                type R = $rust;
                match value {
                    $(R::$rv => Self::$pv,)+
                }
            }
        }

        $(#[$doc])*
        pub fn $decode(value: i32, field: &str) -> Result<$rust, ConvertError> {
            type R = $rust;
            type P = $pb;
            match P::try_from(value) {
                $(Ok(P::$pv) => Ok(R::$rv),)+
                $(Ok(P::$un) => Err(ConvertError::new(field, "not set")),)?
                Err(_) => Err(ConvertError::new(field, format!("unknown value {value}"))),
            }
        }
    };
}

enum_map! {
    /// A flow's verdict.
    verdict: Verdict => flow_pb::Verdict, unset Unspecified {
        Forwarded => Forwarded,
        Dropped => Dropped,
        Audit => Audit,
    }
}

enum_map! {
    /// Why a flow was forwarded or dropped (zero is the model's "none", a value).
    reason: Reason => flow_pb::Reason {
        None => None,
        PolicyDeny => PolicyDeny,
        DefaultDeny => DefaultDeny,
        Quarantine => Quarantine,
        Malformed => Malformed,
        FragUnknown => FragmentUnknown,
        UnsupportedL3 => UnsupportedL3,
        SpoofedSource => SpoofedSource,
        FragDenied => FragmentDenied,
        Blocked => Blocked,
        AllowedByRule => AllowedByRule,
        NotIsolated => NotIsolated,
        Established => Established,
        LearnMode => LearnMode,
        NeighborDiscovery => NeighborDiscovery,
        FragFollowsFirst => FragmentFollowsFirst,
    }
}

enum_map! {
    /// Why a flow event was emitted (the agent's flows).
    event_type: EventType => flow_pb::EventType, unset Unspecified {
        New => New,
        Denied => Denied,
        Closed => Closed,
        Counters => Counters,
        Sample => Sample,
    }
}

enum_map! {
    /// What an anomaly reports.
    anomaly_kind: AnomalyKind => pb::AnomalyKind, unset Unspecified {
        NewEdge => NewEdge,
        PortScan => PortScan,
        HostSweep => HostSweep,
    }
}

enum_map! {
    /// Ingress or egress, relative to the pod.
    direction: Direction => flow_pb::Direction, unset Unspecified {
        Ingress => Ingress,
        Egress => Egress,
    }
}

enum_map! {
    /// Learn, audit or enforce.
    mode: Mode => pb::Mode, unset Unspecified {
        Learn => Learn,
        Audit => Audit,
        Enforce => Enforce,
    }
}

enum_map! {
    /// A caller's role.
    role: Role => pb::Role, unset Unspecified {
        Viewer => Viewer,
        Responder => Responder,
        Reviewer => Reviewer,
        Admin => Admin,
    }
}

enum_map! {
    /// What an end of a flow is.
    peer_kind: PeerKind => pb::PeerKind, unset Unspecified {
        Workload => Workload,
        Service => Service,
        World => World,
        Host => Host,
        Namespace => Namespace,
    }
}

enum_map! {
    /// Which end of a flow a filter applies to.
    side: Side => pb::Side, unset Unspecified {
        Either => Either,
        Source => Source,
        Destination => Destination,
    }
}

enum_map! {
    /// The graph's level.
    level: Level => pb::Level, unset Unspecified {
        Namespace => Namespace,
        Workload => Workload,
        Pod => Pod,
    }
}

enum_map! {
    /// What a graph node is.
    node_kind: NodeKind => pb::NodeKind, unset Unspecified {
        Namespace => Namespace,
        Workload => Workload,
        Pod => Pod,
        Service => Service,
        World => World,
        Host => Host,
    }
}

enum_map! {
    /// Where a baseline stands.
    phase: Phase => pb::Phase, unset Unspecified {
        Learning => Learning,
        Stable => Stable,
    }
}

enum_map! {
    /// Where a suggestion stands.
    review_status: ReviewStatus => pb::ReviewStatus, unset Unspecified {
        Pending => Pending,
        Approved => Approved,
        Rejected => Rejected,
        Audit => Audit,
        Enforced => Enforced,
        Superseded => Superseded,
    }
}

enum_map! {
    /// What a quarantine targets.
    target_kind: TargetKind => pb::TargetKind, unset Unspecified {
        Pod => Pod,
        Workload => Workload,
    }
}

enum_map! {
    /// Where a quarantine stands.
    quarantine_state: QuarantineState => pb::QuarantineState, unset Unspecified {
        Active => Active,
        Released => Released,
        Ended => Ended,
    }
}

enum_map! {
    /// Where a block stands.
    block_state: BlockState => pb::BlockState, unset Unspecified {
        Active => Active,
        Lifted => Lifted,
        Expired => Expired,
    }
}

enum_map! {
    /// Whether an audited action happened.
    outcome: Outcome => pb::Outcome, unset Unspecified {
        Ok => Ok,
        Refused => Refused,
        Failed => Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value of every enumeration survives the trip, and the
    /// protobuf numbers of the model's coded enumerations are its codes.
    #[test]
    fn every_value_round_trips() -> Result<(), ConvertError> {
        for v in Verdict::ALL {
            let wire = flow_pb::Verdict::from(*v) as i32;
            assert_eq!(wire, i32::from(v.code()));
            assert_eq!(verdict(wire, "verdict")?, *v);
        }
        for r in Reason::ALL {
            let wire = flow_pb::Reason::from(*r) as i32;
            assert_eq!(wire, i32::from(r.code()));
            assert_eq!(reason(wire, "reason")?, *r);
        }
        for e in EventType::ALL {
            let wire = flow_pb::EventType::from(*e) as i32;
            assert_eq!(wire, i32::from(e.code()));
            assert_eq!(event_type(wire, "event")?, *e);
        }
        for d in Direction::ALL {
            assert_eq!(direction(flow_pb::Direction::from(*d) as i32, "direction")?, *d);
        }
        for m in Mode::ALL {
            assert_eq!(mode(pb::Mode::from(*m) as i32, "mode")?, *m);
        }
        for r in Role::ALL {
            assert_eq!(role(pb::Role::from(r) as i32, "role")?, r);
        }
        for k in [PeerKind::Workload, PeerKind::Service, PeerKind::World, PeerKind::Host, PeerKind::Namespace] {
            assert_eq!(peer_kind(pb::PeerKind::from(k) as i32, "kind")?, k);
        }
        for s in [Side::Either, Side::Source, Side::Destination] {
            assert_eq!(side(pb::Side::from(s) as i32, "side")?, s);
        }
        for l in [Level::Namespace, Level::Workload, Level::Pod] {
            assert_eq!(level(pb::Level::from(l) as i32, "level")?, l);
        }
        for k in
            [NodeKind::Namespace, NodeKind::Workload, NodeKind::Pod, NodeKind::Service, NodeKind::World, NodeKind::Host]
        {
            assert_eq!(node_kind(pb::NodeKind::from(k) as i32, "kind")?, k);
        }
        for p in [Phase::Learning, Phase::Stable] {
            assert_eq!(phase(pb::Phase::from(p) as i32, "phase")?, p);
        }
        for s in [
            ReviewStatus::Pending,
            ReviewStatus::Approved,
            ReviewStatus::Rejected,
            ReviewStatus::Audit,
            ReviewStatus::Enforced,
            ReviewStatus::Superseded,
        ] {
            assert_eq!(review_status(pb::ReviewStatus::from(s) as i32, "status")?, s);
        }
        for k in [TargetKind::Pod, TargetKind::Workload] {
            assert_eq!(target_kind(pb::TargetKind::from(k) as i32, "kind")?, k);
        }
        for s in [QuarantineState::Active, QuarantineState::Released, QuarantineState::Ended] {
            assert_eq!(quarantine_state(pb::QuarantineState::from(s) as i32, "state")?, s);
        }
        for s in [BlockState::Active, BlockState::Lifted, BlockState::Expired] {
            assert_eq!(block_state(pb::BlockState::from(s) as i32, "state")?, s);
        }
        for o in [Outcome::Ok, Outcome::Refused, Outcome::Failed] {
            assert_eq!(outcome(pb::Outcome::from(o) as i32, "outcome")?, o);
        }
        Ok(())
    }

    #[test]
    fn unset_and_unknown_values_are_refused() {
        assert_eq!(verdict(0, "verdict"), Err(ConvertError::new("verdict", "not set")));
        assert_eq!(verdict(9, "verdict"), Err(ConvertError::new("verdict", "unknown value 9")));
        assert_eq!(reason(0, "drop_reason"), Ok(Reason::None));
        assert_eq!(reason(99, "drop_reason").map_err(|e| e.field), Err("drop_reason".to_string()));
        assert_eq!(mode(0, "mode").map_err(|e| e.message), Err("not set".to_string()));
    }
}

enum_map! {
    /// How far a port is exposed.
    exposure_class: ExposureClass => pb::ExposureClass, unset Unspecified {
        InternetFacing => InternetFacing,
        ClusterInternal => ClusterInternal,
        Headless => Headless,
        ExternalName => ExternalName,
    }
}

enum_map! {
    /// What exposes a port outside the cluster.
    exposer: Exposer => pb::Exposer, unset Unspecified {
        LoadBalancer => LoadBalancer,
        NodePort => NodePort,
        ExternalIp => ExternalIp,
        HostPort => HostPort,
        HostNetwork => HostNetwork,
        Ingress => Ingress,
        Route => Route,
    }
}

enum_map! {
    /// An application protocol.
    app_protocol: AppProtocol => flow_pb::AppProtocol, unset Unspecified {
        Http => Http,
        Http2 => Http2,
        Grpc => Grpc,
        Tls => Tls,
        Dns => Dns,
        Redis => Redis,
        Mysql => Mysql,
        Postgres => Postgres,
        Mongodb => Mongodb,
        Kafka => Kafka,
        Amqp => Amqp,
        Memcached => Memcached,
        Ssh => Ssh,
    }
}

enum_map! {
    /// What an exposure finding reports.
    finding_kind: FindingKind => pb::FindingKind, unset Unspecified {
        DatabaseExposed => DatabaseExposed,
        CrossTenant => CrossTenant,
        UnusedPath => UnusedPath,
        Undeclared => Undeclared,
        NoPolicy => NoPolicy,
        ProtocolMismatch => ProtocolMismatch,
        ListeningUndeclared => ListeningUndeclared,
        NotListening => NotListening,
    }
}
