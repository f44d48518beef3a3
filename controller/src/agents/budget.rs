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
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admit {
    /// Whether to write this refusal one by one.
    pub write: bool,
    /// Counts of refusals left out earlier, by address, to write now (a
    /// window that closed, or an address forgotten to make room).
    pub unwritten: Vec<(IpAddr, u32)>,
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
        self.windows.lock().map(|mut w| close_expired(&mut w, now)).unwrap_or_default()
    }

    /// Decides for a refusal from `ip` at `now`.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Admit {
        let ip = key(ip);
        let Ok(mut windows) = self.windows.lock() else {
            // A poisoned budget writes everything: never lose a refusal.
            return Admit { write: true, unwritten: Vec::new() };
        };
        let mut unwritten = Vec::new();
        if windows.get(&ip).is_some_and(|w| now.duration_since(w.started) >= WINDOW)
            && let Some(w) = windows.remove(&ip)
            && w.suppressed > 0
        {
            unwritten.push((ip, w.suppressed));
        }
        if !windows.contains_key(&ip) && windows.len() >= MAX_ADDRESSES {
            unwritten.extend(close_expired(&mut windows, now));
            if windows.len() >= MAX_ADDRESSES
                && let Some((&oldest, w)) = windows.iter().min_by_key(|(_, w)| w.started)
            {
                if w.suppressed > 0 {
                    unwritten.push((oldest, w.suppressed));
                }
                windows.remove(&oldest);
            }
        }
        let w = windows.entry(ip).or_insert(Window { started: now, written: 0, suppressed: 0 });
        let write = w.written < self.per_window;
        if write {
            w.written += 1;
        } else {
            w.suppressed += 1;
        }
        Admit { write, unwritten }
    }
}

/// Closes the windows whose time is up and returns their suppressed counts.
fn close_expired(windows: &mut BTreeMap<IpAddr, Window>, now: Instant) -> Vec<(IpAddr, u32)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_budget_is_counted_and_the_count_written_next_window() {
        let budget = RefusalBudget::default();
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t0 = Instant::now();
        for _ in 0..PER_WINDOW {
            assert_eq!(budget.check(a, t0), Admit { write: true, unwritten: vec![] });
        }
        for _ in 0..7 {
            assert_eq!(budget.check(a, t0), Admit { write: false, unwritten: vec![] });
        }
        // Another address has its own budget.
        assert_eq!(budget.check(b, t0), Admit { write: true, unwritten: vec![] });
        // The next window opens with the count of what was left out.
        assert_eq!(budget.check(a, t0 + WINDOW), Admit { write: true, unwritten: vec![(a, 7)] });
        assert_eq!(budget.check(a, t0 + WINDOW), Admit { write: true, unwritten: vec![] });
    }

    #[test]
    fn a_quiet_address_is_written_down_by_the_timer_and_ipv6_counts_by_its_64() {
        let budget = RefusalBudget::new(1);
        let t0 = Instant::now();
        let (one, other): (IpAddr, IpAddr) = (
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, 1).into(),
            std::net::Ipv6Addr::new(0xfd00, 0, 0, 1, 0xdead, 0, 0, 9).into(),
        );
        assert_eq!(budget.check(one, t0), Admit { write: true, unwritten: vec![] });
        assert_eq!(budget.check(other, t0), Admit { write: false, unwritten: vec![] }, "the same /64");
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
            forgotten.extend(budget.check(ip, t0 + Duration::from_millis(u64::from(i))).unwritten);
        }
        assert_eq!(forgotten, vec![(first, 3)]);
    }
}
