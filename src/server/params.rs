//! Parsing of Prometheus HTTP API parameters: timestamps (RFC 3339 or Unix
//! seconds with fractions), durations/steps (`15s`, `1m` or float seconds),
//! and `match[]` selectors. Errors name the parameter and the bad value.

use crate::calendar::{civil_from_days, days_from_civil};
use tidemark_query::LabelMatcher;

use super::error::ApiError;

/// A timestamp parameter in milliseconds.
pub(crate) fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
    {
        return Ok((secs * 1000.0).round() as i64);
    }
    parse_rfc3339(s).ok_or_else(|| {
        ApiError::bad_data(format!(
            "invalid parameter {name:?}: cannot parse {s:?} to a valid timestamp"
        ))
    })
}

/// A duration parameter (`step`, `timeout`) in milliseconds.
pub(super) fn parse_duration_ms(name: &str, s: &str) -> Result<i64, ApiError> {
    let bad = || {
        ApiError::bad_data(format!(
            "invalid parameter {name:?}: cannot parse {s:?} to a valid duration"
        ))
    };
    if let Ok(secs) = s.parse::<f64>() {
        if !(0.0..=9.2e15).contains(&secs) {
            return Err(bad());
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    crate::config::duration::parse_duration(s)
        .map(|d| d.as_millis() as i64)
        .map_err(|_| bad())
}

/// `match[]` values as selectors (each a vector selector).
pub(super) fn parse_matches(values: &[String]) -> Result<Vec<Vec<LabelMatcher>>, ApiError> {
    values
        .iter()
        .map(|m| {
            let expr = tidemark_query::parse(m)
                .map_err(|e| ApiError::bad_data(format!("invalid match[] {m:?}: {e}")))?;
            match expr {
                tidemark_query::ast::Expr::VectorSelector(sel) => Ok(sel.matchers),
                _ => Err(ApiError::bad_data(format!(
                    "invalid match[] {m:?}: expected a series selector"
                ))),
            }
        })
        .collect()
}

/// Minimal RFC 3339 (`2023-11-14T00:00:00Z`, fractional seconds, `±hh:mm`
/// offsets), into Unix milliseconds.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(frac.len());
        if digits == 0 {
            return None;
        }
        let ms_digits: String = frac[..digits]
            .chars()
            .chain("000".chars())
            .take(3)
            .collect();
        millis = ms_digits.parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_min * 60;
    Some(secs * 1000 + millis)
}

/// A Unix time in ms as RFC 3339 in UTC, the way Go marshals a
/// `time.Time` (fraction with trailing zeros trimmed, none when zero):
/// `2026-11-27T06:35:12.5Z`.
pub(super) fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    if millis != 0 {
        let frac = format!("{millis:03}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("time", "1699920000").unwrap(), 1_699_920_000_000);
        assert_eq!(
            parse_time("time", "1699920000.5").unwrap(),
            1_699_920_000_500
        );
        assert_eq!(
            parse_time("time", "2023-11-14T00:00:00Z").unwrap(),
            1_699_920_000_000
        );
        assert_eq!(
            parse_time("time", "2023-11-14T01:00:00.25+01:00").unwrap(),
            1_699_920_000_250
        );
        assert_eq!(parse_time("time", "1970-01-01T00:00:00Z").unwrap(), 0);
        let e = parse_time("start", "yesterday").unwrap_err();
        assert!(e.message.contains("\"start\"") && e.message.contains("yesterday"));
        assert_eq!(parse_duration_ms("step", "15").unwrap(), 15_000);
        assert_eq!(parse_duration_ms("step", "0.5").unwrap(), 500);
        assert_eq!(parse_duration_ms("step", "1m").unwrap(), 60_000);
        assert!(parse_duration_ms("step", "-1").is_err());
        assert!(parse_duration_ms("step", "abc").is_err());
    }

    #[test]
    fn rfc3339_output_round_trips() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_699_920_000_250), "2023-11-14T00:00:00.25Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        for ms in [0, 951_782_400_123, 1_709_164_800_000, 4_102_444_799_999] {
            assert_eq!(parse_time("t", &format_rfc3339(ms)).unwrap(), ms);
        }
    }
}
