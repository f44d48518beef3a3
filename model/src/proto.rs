//! IANA protocol numbers Bulkhead distinguishes, and their names in flows,
//! the CLI and the API. 0 is "any protocol" in policy keys.

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

const NAMED: [(u8, &str); 6] =
    [(ANY, "ANY"), (ICMP, "ICMP"), (TCP, "TCP"), (UDP, "UDP"), (ICMPV6, "ICMPv6"), (SCTP, "SCTP")];

/// The name of a protocol number (its decimal number when it has no name).
pub fn name(p: u8) -> String {
    NAMED.iter().find(|(n, _)| *n == p).map_or_else(|| p.to_string(), |(_, s)| (*s).to_string())
}

/// The number of a protocol name (any case) or decimal number.
pub fn parse(s: &str) -> Option<u8> {
    NAMED.iter().find(|(_, n)| n.eq_ignore_ascii_case(s)).map(|(p, _)| *p).or_else(|| s.parse().ok())
}

/// Whether the protocol has ports (policy rules with ports apply to it).
pub const fn has_ports(p: u8) -> bool {
    matches!(p, TCP | UDP | SCTP)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_numbers_round_trip() {
        for p in [0, 1, 6, 17, 58, 132, 47] {
            assert_eq!(super::parse(&super::name(p)), Some(p));
        }
        assert_eq!(super::parse("udp"), Some(17));
        assert_eq!(super::parse("nope"), None);
    }
}
