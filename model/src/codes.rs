//! Enumerations with a stable numeric code (the eBPF ABI's) and a stable
//! lowercase name (flows, metrics, the CLI and the HTTP API).

use serde::{Deserialize, Serialize};

/// A code or name that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// A numeric code no variant has.
    #[error("unknown {kind} code {code}")]
    UnknownCode {
        /// The enumeration.
        kind: &'static str,
        /// The code seen.
        code: u32,
    },
    /// A name no variant has.
    #[error("unknown {kind} {name:?}; expected one of: {expected}")]
    UnknownName {
        /// The enumeration.
        kind: &'static str,
        /// The name seen.
        name: String,
        /// The valid names, comma-separated.
        expected: &'static str,
    },
}

macro_rules! coded_enum {
    ($(#[$m:meta])* $name:ident : $repr:ty { $($(#[$vm:meta])* $variant:ident = $code:literal => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every variant, in code order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            const NAMES: &'static str = concat!($($text, ", "),+);

            /// The numeric code (the eBPF ABI's).
            pub const fn code(self) -> $repr {
                match self { $(Self::$variant => $code),+ }
            }

            /// The stable lowercase name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl TryFrom<$repr> for $name {
            type Error = CodeError;
            fn try_from(code: $repr) -> Result<Self, CodeError> {
                match code {
                    $($code => Ok(Self::$variant),)+
                    other => Err(CodeError::UnknownCode { kind: stringify!($name), code: u32::from(other) }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = CodeError;
            fn from_str(s: &str) -> Result<Self, CodeError> {
                $(if s.eq_ignore_ascii_case($text) { return Ok(Self::$variant); })+
                Err(CodeError::UnknownName {
                    kind: stringify!($name),
                    name: s.to_string(),
                    expected: Self::NAMES.trim_end_matches(", "),
                })
            }
        }
    };
}
pub(crate) use coded_enum;

coded_enum!(
    /// Relative to the pod: egress is what the pod sends. A flow observed at
    /// the source pod is an egress observation, at the destination an ingress one.
    Direction: u8 {
        /// Traffic arriving at the pod.
        Ingress = 0 => "ingress",
        /// Traffic the pod sends.
        Egress = 1 => "egress",
    }
);

impl Direction {
    /// Both directions.
    pub const BOTH: [Direction; 2] = [Direction::Ingress, Direction::Egress];
}

coded_enum!(
    /// Per endpoint and direction: observe, report would-drops, or drop.
    Mode: u8 {
        /// Observe and report only; never drop.
        Learn = 0 => "learn",
        /// Decide and report would-drops, but forward anyway.
        Audit = 1 => "audit",
        /// Decide and drop.
        Enforce = 2 => "enforce",
    }
);

coded_enum!(
    /// What a policy entry does when it matches.
    Action: u8 {
        /// Let matching traffic through.
        Allow = 1 => "allow",
        /// Drop matching traffic; wins over allow.
        Deny = 2 => "deny",
    }
);

coded_enum!(
    /// What happened to a connection or attempt.
    Verdict: u8 {
        /// Passed on.
        Forwarded = 1 => "forwarded",
        /// Dropped by the dataplane.
        Dropped = 2 => "dropped",
        /// Would have been dropped; forwarded because the endpoint is in audit mode.
        Audit = 3 => "audit",
    }
);

coded_enum!(
    /// Why a flow event was emitted.
    EventType: u8 {
        /// First packet of a connection.
        New = 1 => "new",
        /// A dropped attempt (rate-limited per tuple).
        Denied = 2 => "denied",
        /// FIN/RST seen, or expired by the agent's sweep.
        Closed = 3 => "closed",
        /// Periodic counters of a long-lived connection.
        Counters = 4 => "counters",
        /// A payload sample for type identification, not a connection event.
        Sample = 5 => "sample",
    }
);

coded_enum!(
    /// Why the dataplane forwarded or dropped. Stable codes, never renumbered
    /// or reused: 1..99 are drops (or would-drops in audit), 100.. forwards.
    Reason: u16 {
        /// No reason recorded.
        None = 0 => "none",
        /// An explicit deny entry matched.
        PolicyDeny = 1 => "policy_deny",
        /// The direction is isolated and no allow matched.
        DefaultDeny = 2 => "default_deny",
        /// The endpoint is quarantined.
        Quarantine = 3 => "quarantine",
        /// Truncated or invalid L3/L4 header.
        Malformed = 4 => "malformed",
        /// A non-first fragment whose first fragment was not seen.
        FragUnknown = 5 => "fragment_unknown",
        /// Neither IPv4, IPv6 nor ARP.
        UnsupportedL3 = 6 => "unsupported_l3",
        /// The pod sent with a source address not its own.
        SpoofedSource = 7 => "spoofed_source",
        /// A fragment of a datagram whose first fragment was denied.
        FragDenied = 8 => "fragment_denied",
        /// The source or destination is on the cluster's block list.
        Blocked = 9 => "blocked",
        /// An allow entry matched.
        AllowedByRule = 100 => "allowed_by_rule",
        /// No policy selects the pod in this direction.
        NotIsolated = 101 => "not_isolated",
        /// Part of a connection already tracked in conntrack.
        Established = 102 => "established",
        /// Forwarded because the endpoint is in learn mode.
        LearnMode = 103 => "learn_mode",
        /// IPv6 neighbor discovery, always let through.
        NeighborDiscovery = 104 => "neighbor_discovery",
        /// A later fragment, following its first fragment's verdict.
        FragFollowsFirst = 105 => "fragment_follows_first",
    }
);

coded_enum!(
    /// What an anomaly reports: one new edge at a stable workload, or one
    /// source trying many targets (the new edges it makes fold into it).
    AnomalyKind: u8 {
        /// A connection a stable workload's baseline does not have.
        NewEdge = 1 => "new_edge",
        /// One source trying many ports of one host in a short window, mostly dropped.
        PortScan = 2 => "port_scan",
        /// One source trying many hosts in a short window, mostly dropped.
        HostSweep = 3 => "host_sweep",
    }
);

impl Reason {
    /// Whether the reason explains a drop (or a would-drop in audit).
    pub const fn is_drop(self) -> bool {
        matches!(self.code(), 1..=99)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip_and_unknowns_are_errors() {
        for r in Reason::ALL {
            assert_eq!(Reason::try_from(r.code()), Ok(*r));
            assert_eq!(r.as_str().parse::<Reason>(), Ok(*r));
        }
        assert_eq!(Verdict::try_from(9), Err(CodeError::UnknownCode { kind: "Verdict", code: 9 }));
        let err = "sideways".parse::<Direction>().unwrap_err().to_string();
        assert_eq!(err, "unknown Direction \"sideways\"; expected one of: ingress, egress");
        assert!(Reason::Quarantine.is_drop() && !Reason::Established.is_drop() && !Reason::None.is_drop());
    }
}
