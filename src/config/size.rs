//! Byte sizes in configuration: `0`, `512MB`, `50GiB`, `1TB`. Units: `B`,
//! decimal `KB MB GB TB` (10^3…) and binary `KiB MiB GiB TiB` (2^10…),
//! case-insensitive for the letters after the number.

/// A size string that does not parse; says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (expected e.g. 0, 500MB, 50GiB)")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

const UNITS: [(&str, u64); 9] = [
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if digits == 0 {
        return Err(err("expected a number"));
    }
    let n: u64 = s[..digits].parse().map_err(|_| err("number too large"))?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    if unit.is_empty() {
        return Ok(n);
    }
    let mult = UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|u| u.1)
        .ok_or_else(|| err("unknown unit"))?;
    n.checked_mul(mult).ok_or_else(|| err("number too large"))
}

/// serde adapter: sizes as strings (or plain integers of bytes).
pub mod serde_size {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(n),
            Raw::Text(s) => super::parse_size(&s).map_err(serde::de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("512MB"), Ok(512_000_000));
        assert_eq!(parse_size("50GiB"), Ok(50 << 30));
        assert_eq!(parse_size("2 tb"), Ok(2_000_000_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("5XB").unwrap_err().reason, "unknown unit");
        assert_eq!(parse_size("GB").unwrap_err().reason, "expected a number");
        assert!(parse_size("99999999TiB").is_err());
    }
}
