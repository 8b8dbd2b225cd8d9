//! Wall-clock helpers for the notifier: RFC 3339 formatting of Unix
//! milliseconds (the HTTP contract's response format, always with
//! milliseconds) and the UTC calendar fields recurring silences need.
//!
//! Invariant: pure functions of their arguments; nothing here reads the
//! clock except [`now_ms`], which only the production driver calls.

/// Unix ms → `2026-11-27T07:14:12.345Z`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = crate::calendar::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// Go's zero `time.Time` as Alertmanager marshals an unset `endsAt`.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Day of week of a day count since 1970-01-01: 0 = Monday .. 6 = Sunday.
pub fn weekday_of_day(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    (days + 3).rem_euclid(7) as u32
}

/// Wall-clock time in Unix milliseconds (production driver only).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_weekdays() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_795_763_652_345),
            "2026-11-27T07:14:12.345Z"
        );
        assert_eq!(weekday_of_day(0), 3); // Thursday
        // 2026-11-27 is a Friday.
        assert_eq!(weekday_of_day(1_795_763_652_345 / 86_400_000), 4);
    }
}
