//! How many failed handshakes one address may write to the audit log: a
//! port scanner or a misconfigured node must not fill the disk with synced
//! lines. Past the budget, refusals are counted, and the count is written
//! as one line when the window closes (a timer looks every few seconds).
//! Nothing goes unrecorded; only the detail of each refusal beyond the
//! budget is lost. IPv6 addresses count by their /64.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusals written per address per window.
pub const PER_WINDOW: u32 = 5;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; the stalest are forgotten first (their
/// suppressed counts are reported before they go).
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    written: u32,
    suppressed: u32,
}

/// What to do with one refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; first write the count of refusals suppressed earlier, if any.
    Write {
        /// Refusals from this address left out of the log in its last window.
        suppressed_before: u32,
    },
    /// Count it only.
    Suppress,
}

/// Per-address windows.
#[derive(Debug)]
pub struct RefusalBudget {
    per_window: u32,
    windows: Mutex<BTreeMap<IpAddr, Window>>,
}

impl Default for RefusalBudget {
    fn default() -> Self {
        Self::new(PER_WINDOW)
    }
}

/// The key of an address: IPv6 by its /64, which one host can fill with
/// addresses of its own.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(seg[0], seg[1], seg[2], seg[3], 0, 0, 0, 0))
        }
    }
}

impl RefusalBudget {
    /// At most `per_window` per address per window.
    pub fn new(per_window: u32) -> Self {
        Self { per_window, windows: Mutex::new(BTreeMap::new()) }
    }

    /// The counts of windows whose time is up, which are then closed: run
    /// on a timer, so an address that went quiet is still written down.
    pub fn expired(&self, now: Instant) -> Vec<(IpAddr, u32)> {
        let Ok(mut windows) = self.windows.lock() else { return Vec::new() };
        let mut out = Vec::new();
        windows.retain(|a, w| {
            let done = now.duration_since(w.started) >= WINDOW;
            if done && w.suppressed > 0 {
                out.push((*a, w.suppressed));
            }
            !done
        });
        out
    }

    /// Decides for a refusal from `ip` at `now`; also returns counts of
    /// addresses forgotten to make room, which the caller writes down.
    pub fn check(&self, ip: IpAddr, now: Instant) -> (Verdict, Vec<(IpAddr, u32)>) {
        let ip = key(ip);
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned budget writes everything: never lose a refusal.
            return (Verdict::Write { suppressed_before: 0 }, Vec::new());
        };
        let mut forgotten = Vec::new();
        if !windows.contains_key(&ip) && windows.len() >= MAX_ADDRESSES {
            windows.retain(|a, w| {
                let stale = now.duration_since(w.started) >= WINDOW;
                if stale && w.suppressed > 0 {
                    forgotten.push((*a, w.suppressed));
                }
                !stale
            });
            if windows.len() >= MAX_ADDRESSES
                && let Some((&oldest, w)) = windows.iter().min_by_key(|(_, w)| w.started)
            {
                if w.suppressed > 0 {
                    forgotten.push((oldest, w.suppressed));
                }
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(ip).or_insert(Window { started: now, written: 0, suppressed: 0 });
        let mut suppressed_before = 0;
        if now.duration_since(w.started) >= WINDOW {
            suppressed_before = w.suppressed;
            *w = Window { started: now, written: 0, suppressed: 0 };
        }
        if w.written < self.per_window {
            w.written += 1;
            (Verdict::Write { suppressed_before }, forgotten)
        } else {
            w.suppressed += 1;
            (Verdict::Suppress, forgotten)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_budget_is_counted_and_the_count_written_next_window() {
        let budget = RefusalBudget::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..PER_WINDOW {
            assert_eq!(budget.check(a, t0).0, Verdict::Write { suppressed_before: 0 });
        }
        for _ in 0..7 {
            assert_eq!(budget.check(a, t0).0, Verdict::Suppress);
        }
        // Another address has its own budget.
        assert_eq!(budget.check(b, t0).0, Verdict::Write { suppressed_before: 0 });
        // The next window opens with the count of what was left out.
        assert_eq!(budget.check(a, t0 + WINDOW).0, Verdict::Write { suppressed_before: 7 });
        assert_eq!(budget.check(a, t0 + WINDOW).0, Verdict::Write { suppressed_before: 0 });
    }

    #[test]
    fn a_quiet_address_is_written_down_by_the_timer_and_ipv6_counts_by_its_64() {
        let budget = RefusalBudget::new(1);
        let t0 = Instant::now();
        let (one, other): (IpAddr, IpAddr) = (
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 1).into(),
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 1, 0xdead, 0, 0, 9).into(),
        );
        assert_eq!(budget.check(one, t0).0, Verdict::Write { suppressed_before: 0 });
        assert_eq!(budget.check(other, t0).0, Verdict::Suppress, "the same /64");
        assert!(budget.expired(t0).is_empty());
        let net: IpAddr = std::net::Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 0).into();
        assert_eq!(budget.expired(t0 + WINDOW), vec![(net, 1)]);
        assert!(budget.expired(t0 + WINDOW).is_empty(), "written once");
    }

    #[test]
    fn forgetting_an_address_to_make_room_reports_its_count() {
        let budget = RefusalBudget::default();
        let t0 = Instant::now();
        let first = IpAddr::from([10, 1, 0, 0]);
        for _ in 0..PER_WINDOW + 3 {
            budget.check(first, t0);
        }
        let mut forgotten = Vec::new();
        for i in 1..=MAX_ADDRESSES as u32 {
            let ip = IpAddr::from((0x0a02_0000u32 + i).to_be_bytes());
            forgotten.extend(budget.check(ip, t0 + Duration::from_millis(u64::from(i))).1);
        }
        assert_eq!(forgotten, vec![(first, 3)]);
    }
}
