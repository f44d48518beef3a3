//! Typed views of the ABI's enums, so the rest of the code never handles raw codes.

use serde::{Deserialize, Serialize};

use crate::abi;
use crate::error::DataplaneError;

macro_rules! abi_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $variant:ident = $code:path => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// The code the eBPF side uses.
            pub const fn code(self) -> $repr {
                match self { $(Self::$variant => $code as $repr),+ }
            }
            /// The stable, lowercase name used in flows, metrics and the CLI.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            /// Every variant, for metrics and documentation.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl TryFrom<$repr> for $name {
            type Error = DataplaneError;
            fn try_from(code: $repr) -> Result<Self, DataplaneError> {
                $(if code == $code as $repr { return Ok(Self::$variant); })+
                Err(DataplaneError::UnknownCode { kind: stringify!($name), code: u32::from(code) })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = DataplaneError;
            fn from_str(s: &str) -> Result<Self, DataplaneError> {
                $(if s.eq_ignore_ascii_case($text) { return Ok(Self::$variant); })+
                Err(DataplaneError::UnknownName { kind: stringify!($name), name: s.to_string() })
            }
        }
    };
}

abi_enum!(
    /// Relative to the pod: egress is what the pod sends.
    Direction: u8 {
        /// Traffic arriving at the pod.
        Ingress = abi::BH_DIR_INGRESS => "ingress",
        /// Traffic the pod sends.
        Egress = abi::BH_DIR_EGRESS => "egress",
    }
);

abi_enum!(
    /// Per endpoint and direction: observe, report would-drops, or drop.
    Mode: u8 {
        /// Observe and report only; never drop.
        Learn = abi::BH_MODE_LEARN => "learn",
        /// Decide and report would-drops, but forward anyway.
        Audit = abi::BH_MODE_AUDIT => "audit",
        /// Decide and drop.
        Enforce = abi::BH_MODE_ENFORCE => "enforce",
    }
);

abi_enum!(
    /// What a policy entry does when it matches.
    Action: u8 {
        /// Let matching traffic through.
        Allow = abi::BH_ACTION_ALLOW => "allow",
        /// Drop matching traffic; wins over allow.
        Deny = abi::BH_ACTION_DENY => "deny",
    }
);

abi_enum!(
    /// What happened to a connection or attempt.
    Verdict: u8 {
        /// Passed on.
        Forwarded = abi::BH_VERDICT_FORWARDED => "forwarded",
        /// Dropped by the dataplane.
        Dropped = abi::BH_VERDICT_DROPPED => "dropped",
        /// Would have been dropped; forwarded because the endpoint is in audit mode.
        Audit = abi::BH_VERDICT_AUDIT => "audit",
    }
);

abi_enum!(
    /// Why a flow event was emitted.
    EventType: u8 {
        /// First packet of a connection.
        New = abi::BH_EV_NEW => "new",
        /// A dropped attempt (rate-limited per tuple).
        Denied = abi::BH_EV_DENIED => "denied",
        /// FIN/RST seen, or expired by the agent's sweep.
        Closed = abi::BH_EV_CLOSED => "closed",
        /// Periodic counters of a long-lived connection.
        Counters = abi::BH_EV_COUNTERS => "counters",
    }
);

abi_enum!(
    /// Stable reason codes; see `enum bh_reason` in the ABI header.
    Reason: u16 {
        /// No reason recorded.
        None = abi::BH_REASON_NONE => "none",
        /// An explicit deny entry matched.
        PolicyDeny = abi::BH_REASON_POLICY_DENY => "policy_deny",
        /// The direction is isolated and no allow matched.
        DefaultDeny = abi::BH_REASON_DEFAULT_DENY => "default_deny",
        /// The endpoint is quarantined.
        Quarantine = abi::BH_REASON_QUARANTINE => "quarantine",
        /// Truncated or invalid L3/L4 header.
        Malformed = abi::BH_REASON_MALFORMED => "malformed",
        /// A non-first fragment whose first fragment was not seen.
        FragUnknown = abi::BH_REASON_FRAG_UNKNOWN => "fragment_unknown",
        /// Neither IPv4, IPv6 nor ARP.
        UnsupportedL3 = abi::BH_REASON_UNSUPPORTED_L3 => "unsupported_l3",
        /// The pod sent with a source address not its own.
        SpoofedSource = abi::BH_REASON_SPOOFED_SOURCE => "spoofed_source",
        /// A fragment of a datagram whose first fragment was denied.
        FragDenied = abi::BH_REASON_FRAG_DENIED => "fragment_denied",
        /// An allow entry matched.
        AllowedByRule = abi::BH_REASON_ALLOWED_BY_RULE => "allowed_by_rule",
        /// No policy selects the pod in this direction.
        NotIsolated = abi::BH_REASON_NOT_ISOLATED => "not_isolated",
        /// Part of a connection already tracked in conntrack.
        Established = abi::BH_REASON_ESTABLISHED => "established",
        /// Forwarded because the endpoint is in learn mode.
        LearnMode = abi::BH_REASON_LEARN_MODE => "learn_mode",
        /// IPv6 neighbor discovery, always let through.
        NeighborDiscovery = abi::BH_REASON_NEIGHBOR_DISCOVERY => "neighbor_discovery",
        /// A later fragment, following its first fragment's verdict.
        FragFollowsFirst = abi::BH_REASON_FRAG_FOLLOWS_FIRST => "fragment_follows_first",
    }
);

/// IANA protocol numbers the dataplane distinguishes; 0 is "any" in policy keys.
pub mod proto {
    /// Any protocol (policy wildcard).
    pub const ANY: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// SCTP.
    pub const SCTP: u8 = 132;

    /// The name used in flows and the CLI.
    pub fn name(p: u8) -> String {
        match p {
            ANY => "ANY".into(),
            ICMP => "ICMP".into(),
            TCP => "TCP".into(),
            UDP => "UDP".into(),
            ICMPV6 => "ICMPv6".into(),
            SCTP => "SCTP".into(),
            other => other.to_string(),
        }
    }
}
