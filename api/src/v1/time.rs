//! Times in queries: an RFC 3339 timestamp, or a duration ago ("90s", "5m",
//! "2h", "1d", "250ms"). One parser, so the CLI and the server agree.

/// Nanoseconds since the epoch of `s`, relative to `now_ns` for durations.
pub fn parse(s: &str, now_ns: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).map_err(|_| format!("{s:?} is out of range"));
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| {
        format!("{s:?}: expected an RFC 3339 time (2026-01-02T03:04:05Z) or a duration ago such as 30s, 5m, 2h, 1d")
    })?;
    let ns = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => return Err(format!("{s:?}: unknown unit {other:?}; use ms, s, m, h or d")),
    };
    Ok(now_ns.saturating_sub(n.saturating_mul(ns)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_and_timestamps() {
        let now = 10_000_000_000_000;
        assert_eq!(super::parse("5m", now), Ok(now - 300_000_000_000));
        assert_eq!(super::parse("250ms", now), Ok(now - 250_000_000));
        assert_eq!(super::parse("1970-01-01T00:00:01Z", now), Ok(1_000_000_000));
        assert!(super::parse("5 minutes", now).unwrap_err().contains("unknown unit"));
        assert!(super::parse("soon", now).unwrap_err().contains("RFC 3339"));
    }
}
