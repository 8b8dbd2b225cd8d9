//! Prometheus-style duration strings in configuration and flags: `15d`,
//! `100y`, `1h30m`, `500ms`. Units: `y` (365 d), `w`, `d`, `h`, `m`, `s`,
//! `ms`; components in descending order, each at most once.

use std::time::Duration;

/// A duration string that does not parse; says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (expected e.g. 15d, 1h30m, 500ms)")]
pub struct DurationError {
    pub input: String,
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("ms", 1),
    ("m", 60_000),
    ("s", 1_000),
];

/// Rank of a unit in the required descending order (`ms` after `s`).
fn rank(unit: &str) -> usize {
    ["y", "w", "d", "h", "m", "s", "ms"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or(usize::MAX)
}

pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError {
        input: input.to_string(),
        reason,
    };
    if input.is_empty() {
        return Err(err("empty"));
    }
    if input == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = input;
    let mut total: u64 = 0;
    let mut last_rank = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(err("expected a number"));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| err("number too large"))?;
        rest = &rest[digits..];
        let (unit, ms) = UNITS
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .ok_or_else(|| err("missing or unknown unit"))?;
        let r = rank(unit);
        if last_rank.is_some_and(|l| r <= l) {
            return Err(err("units must be in descending order, each once"));
        }
        last_rank = Some(r);
        rest = &rest[unit.len()..];
        total = n
            .checked_mul(*ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| err("too large"))?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for unit in ["y", "w", "d", "h", "m", "s", "ms"] {
        let size = UNITS.iter().find(|(u, _)| *u == unit).map_or(1, |u| u.1);
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// serde adapter: `#[serde(with = "crate::config::duration::serde_duration")]`.
pub mod serde_duration {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        assert_eq!(
            parse_duration("15d").unwrap(),
            Duration::from_secs(15 * 86_400)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("1m500ms").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(
            parse_duration("100y").unwrap(),
            Duration::from_secs(100 * 365 * 86_400)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "1m1h",
            "1s1s",
            "-5m",
            "99999999999999999999y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_duration("5x").unwrap_err().to_string();
        assert!(e.contains("\"5x\"") && e.contains("unit"), "{e}");
    }

    #[test]
    fn format_roundtrips() {
        for s in ["15d", "1h30m", "500ms", "1y2w3d4h5m6s7ms", "0s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{s}");
        }
    }
}
