//! Times in queries: an RFC 3339 timestamp, or a duration ago ("90s", "5m",
//! "2h", "1d", "250ms"). One parser, so the CLI and the server agree.

/// Nanoseconds since the epoch as RFC 3339 (the number itself when out of range).
pub fn rfc3339(ns: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(ns)).map_or_else(|_| ns.to_string(), |t| t.to_string())
}

/// Nanoseconds since the epoch of `s`, relative to `now_ns` for durations.
pub fn parse(s: &str, now_ns: i64) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return i64::try_from(t.as_nanosecond()).map_err(|_| format!("{s:?} is out of range"));
    }
    let ago = duration_ns(s).map_err(|e| match e {
        Duration::NotANumber => {
            format!("{s:?}: expected an RFC 3339 time (2026-01-02T03:04:05Z) or a duration ago such as 30s, 5m, 2h, 1d")
        }
        Duration::Unit(m) => m,
    })?;
    Ok(now_ns.saturating_sub(ago))
}

/// Why a duration did not parse.
enum Duration {
    NotANumber,
    Unit(String),
}

fn duration_ns(s: &str) -> Result<i64, Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().map_err(|_| Duration::NotANumber)?;
    let ns = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        other => return Err(Duration::Unit(format!("{s:?}: unknown unit {other:?}; use ms, s, m, h or d"))),
    };
    Ok(n.saturating_mul(ns))
}

/// A span of time ahead ("90s", "30m", "2h", "7d"), in nanoseconds; never zero.
pub fn span(s: &str) -> Result<i64, String> {
    let s = s.trim();
    match duration_ns(s) {
        Ok(0) => Err(format!("{s:?}: a span must be longer than zero")),
        Ok(n) => Ok(n),
        Err(Duration::NotANumber) => Err(format!("{s:?}: expected a span such as 90s, 30m, 2h, 7d")),
        Err(Duration::Unit(m)) => Err(m),
    }
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
        assert_eq!(super::span("2h"), Ok(7_200_000_000_000));
        assert!(super::span("0s").unwrap_err().contains("longer than zero"));
        assert!(super::span("soon").unwrap_err().contains("expected a span"));
    }
}
