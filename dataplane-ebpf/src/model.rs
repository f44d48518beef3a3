//! The shared concepts (`bulkhead-model`) as the kernel sees them. The C
//! header `bulkhead_abi.h` is the kernel side of the ABI; every code below is
//! asserted at compile time to equal its `bulkhead-model` value, so neither
//! side can drift (aya's `-common` crate pattern).

pub use bulkhead_model::{Action, Direction, EventType, Mode, Reason, Verdict, identity, proto};

use crate::abi;

/// Fails the build when a `bulkhead-model` code differs from the ABI header's.
macro_rules! assert_codes {
    ($($model:expr => $abi:path),+ $(,)?) => {
        $(const _: () = assert!($model as u64 == $abi as u64, concat!(stringify!($model), " != ", stringify!($abi)));)+
    };
}

assert_codes!(
    Direction::Ingress.code() => abi::BH_DIR_INGRESS,
    Direction::Egress.code() => abi::BH_DIR_EGRESS,
    Mode::Learn.code() => abi::BH_MODE_LEARN,
    Mode::Audit.code() => abi::BH_MODE_AUDIT,
    Mode::Enforce.code() => abi::BH_MODE_ENFORCE,
    Action::Allow.code() => abi::BH_ACTION_ALLOW,
    Action::Deny.code() => abi::BH_ACTION_DENY,
    Verdict::Forwarded.code() => abi::BH_VERDICT_FORWARDED,
    Verdict::Dropped.code() => abi::BH_VERDICT_DROPPED,
    Verdict::Audit.code() => abi::BH_VERDICT_AUDIT,
    EventType::New.code() => abi::BH_EV_NEW,
    EventType::Denied.code() => abi::BH_EV_DENIED,
    EventType::Closed.code() => abi::BH_EV_CLOSED,
    EventType::Counters.code() => abi::BH_EV_COUNTERS,
    EventType::Sample.code() => abi::BH_EV_SAMPLE,
    Reason::None.code() => abi::BH_REASON_NONE,
    Reason::PolicyDeny.code() => abi::BH_REASON_POLICY_DENY,
    Reason::DefaultDeny.code() => abi::BH_REASON_DEFAULT_DENY,
    Reason::Quarantine.code() => abi::BH_REASON_QUARANTINE,
    Reason::Malformed.code() => abi::BH_REASON_MALFORMED,
    Reason::FragUnknown.code() => abi::BH_REASON_FRAG_UNKNOWN,
    Reason::UnsupportedL3.code() => abi::BH_REASON_UNSUPPORTED_L3,
    Reason::SpoofedSource.code() => abi::BH_REASON_SPOOFED_SOURCE,
    Reason::FragDenied.code() => abi::BH_REASON_FRAG_DENIED,
    Reason::Blocked.code() => abi::BH_REASON_BLOCKED,
    Reason::AllowedByRule.code() => abi::BH_REASON_ALLOWED_BY_RULE,
    Reason::NotIsolated.code() => abi::BH_REASON_NOT_ISOLATED,
    Reason::Established.code() => abi::BH_REASON_ESTABLISHED,
    Reason::LearnMode.code() => abi::BH_REASON_LEARN_MODE,
    Reason::NeighborDiscovery.code() => abi::BH_REASON_NEIGHBOR_DISCOVERY,
    Reason::FragFollowsFirst.code() => abi::BH_REASON_FRAG_FOLLOWS_FIRST,
    identity::ANY => abi::BH_ID_ANY,
    identity::HOST => abi::BH_ID_HOST,
    identity::WORLD => abi::BH_ID_WORLD,
    identity::UNKNOWN => abi::BH_ID_UNKNOWN,
    identity::FIRST_ALLOCATED => abi::BH_ID_FIRST_ALLOCATED,
    bulkhead_model::MAX_ENDPOINT_ID + 1 => abi::BH_MAX_ENDPOINT_ID,
    bulkhead_model::MAX_BLOCKS => abi::BH_MAX_BLOCKS,
);

/// The ABI header has exactly as many reasons as the model: a code added on
/// one side only fails this count (each existing code is checked above).
#[cfg(test)]
mod tests {
    #[test]
    fn every_abi_reason_is_in_the_model() {
        let header = include_str!("../bpf/include/bulkhead_abi.h");
        let body = header.split("enum bh_reason {").nth(1).and_then(|s| s.split("};").next()).unwrap_or_default();
        let abi_reasons = body.lines().filter(|l| l.trim_start().starts_with("BH_REASON_")).count();
        assert_eq!(abi_reasons, super::Reason::ALL.len());
    }
}
