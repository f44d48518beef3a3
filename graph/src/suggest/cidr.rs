//! The smallest set of CIDR blocks covering exactly a set of addresses:
//! nothing that was not observed is allowed, and runs of neighbours collapse
//! into one block.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnetwork::IpNetwork;

/// Exact cover of `addrs`, IPv4 blocks first, each family in address order.
pub fn exact_cover(addrs: &BTreeSet<IpAddr>) -> Vec<IpNetwork> {
    let v4: Vec<u128> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) => Some(u128::from(u32::from(*v))),
            IpAddr::V6(_) => None,
        })
        .collect();
    let v6: Vec<u128> = addrs
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v) => Some(u128::from(*v)),
            IpAddr::V4(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for (values, bits) in [(v4, 32u32), (v6, 128u32)] {
        for (start, len) in runs(&values) {
            for (base, prefix) in blocks(start, len, bits) {
                let ip =
                    if bits == 32 { IpAddr::V4(Ipv4Addr::from(base as u32)) } else { IpAddr::V6(Ipv6Addr::from(base)) };
                if let Ok(n) = IpNetwork::new(ip, prefix as u8) {
                    out.push(n);
                }
            }
        }
    }
    out
}

/// Maximal runs of consecutive values, as (first, count). `values` is sorted.
fn runs(values: &[u128]) -> Vec<(u128, u128)> {
    let mut out: Vec<(u128, u128)> = Vec::new();
    for &v in values {
        match out.last_mut() {
            Some((start, len)) if *start + *len == v => *len += 1,
            _ => out.push((v, 1)),
        }
    }
    out
}

/// The aligned blocks tiling `count` addresses from `start`, largest first
/// at each step: the minimum number of CIDRs for one contiguous range.
fn blocks(mut start: u128, mut count: u128, bits: u32) -> Vec<(u128, u32)> {
    let mut out = Vec::new();
    while count > 0 {
        let align = if start == 0 { bits } else { start.trailing_zeros().min(bits) };
        let fit = 127 - count.leading_zeros();
        let size_log = align.min(fit);
        out.push((start, bits - size_log));
        let size = 1u128 << size_log;
        count -= size;
        if count == 0 {
            break;
        }
        start += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(a: &[&str]) -> BTreeSet<IpAddr> {
        a.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn strs(v: Vec<IpNetwork>) -> Vec<String> {
        v.into_iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn covers_exactly_with_the_fewest_blocks() {
        assert_eq!(strs(exact_cover(&set(&["192.0.2.7"]))), ["192.0.2.7/32"]);
        assert_eq!(strs(exact_cover(&set(&["192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7"]))), ["192.0.2.4/30"]);
        // 5..=8 is not one aligned block: 5/32, 6/31, 8/32.
        let v = exact_cover(&set(&["192.0.2.5", "192.0.2.6", "192.0.2.7", "192.0.2.8"]));
        assert_eq!(strs(v), ["192.0.2.5/32", "192.0.2.6/31", "192.0.2.8/32"]);
        assert_eq!(strs(exact_cover(&set(&["2001:db8::1", "192.0.2.1"]))), ["192.0.2.1/32", "2001:db8::1/128"]);
        assert_eq!(strs(exact_cover(&set(&["0.0.0.0", "0.0.0.1"]))), ["0.0.0.0/31"]);
        assert_eq!(strs(exact_cover(&set(&["255.255.255.255"]))), ["255.255.255.255/32"]);
        let top =
            exact_cover(&set(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]));
        assert_eq!(strs(top), ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"]);
        assert!(exact_cover(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn the_cover_contains_every_address_and_nothing_else() {
        // Every subset of a /28, as a bitmask: cover equals the set.
        for mask in [0x0001u32, 0x8001, 0x00ff, 0x7ffe, 0xffff, 0x5555, 0x0ff0, 0x1234] {
            let addrs: BTreeSet<IpAddr> = (0..16u32)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i)))
                .collect();
            let cover = exact_cover(&addrs);
            for i in 0..32u32 {
                let a = IpAddr::V4(Ipv4Addr::from(0xc000_0200 + i));
                assert_eq!(cover.iter().any(|n| n.contains(a)), addrs.contains(&a), "mask {mask:#x} address {a}");
            }
        }
    }
}
