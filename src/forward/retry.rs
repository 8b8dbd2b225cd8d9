//! What to do with a remote-write response, and how long to wait before the
//! next attempt. Pure functions of their inputs (status, headers, the time
//! `now`), so the policy is tested without a server or a clock.
//!
//! Policy (Prometheus's): 2xx delivered; 429 and 5xx and network errors
//! retried with exponential backoff from `min` doubling to `max`, a
//! `Retry-After` header (seconds or HTTP date) taking precedence (capped at
//! [`MAX_RETRY_AFTER`]); every other status (4xx) rejects the batch for
//! good: retrying a malformed or refused batch would block the queue.

use std::time::{Duration, SystemTime};

/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The decision for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again after the backoff (or `retry_after` when the target said).
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Drop the batch: the target will never accept it.
    Reject {
        reason: String,
    },
}

/// Classifies an HTTP response. `body` is the start of the response body
/// (for the message); `retry_after` the raw header.
pub fn classify(status: u16, retry_after: Option<&str>, body: &str, now: SystemTime) -> Verdict {
    let body = body.trim();
    let reason = if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    };
    match status {
        200..=299 => Verdict::Delivered,
        429 | 500..=599 => Verdict::Retry {
            reason,
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => Verdict::Reject { reason },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date (a date in the past means
/// now). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let d = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// Exponential backoff between attempts of one batch.
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { next: min, max }
    }

    /// The wait before the next attempt; doubles the following one.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        retry_after.unwrap_or(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classes() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(classify(204, None, "", now), Verdict::Delivered);
        assert_eq!(classify(200, None, "ok", now), Verdict::Delivered);
        assert_eq!(
            classify(503, None, " down \n", now),
            Verdict::Retry {
                reason: "HTTP 503: down".into(),
                retry_after: None
            }
        );
        assert_eq!(
            classify(429, Some("7"), "", now),
            Verdict::Retry {
                reason: "HTTP 429".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(400, Some("7"), "bad label", now),
            Verdict::Reject {
                reason: "HTTP 400: bad label".into()
            }
        );
        assert!(matches!(
            classify(404, None, "", now),
            Verdict::Reject { .. }
        ));
        assert!(matches!(
            classify(302, None, "", now),
            Verdict::Reject { .. }
        ));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        // Wed, 21 Oct 2015 07:28:00 GMT is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_retry_after_wins() {
        let mut b = Backoff::new(Duration::from_millis(30), Duration::from_millis(200));
        let got: Vec<u128> = (0..5).map(|_| b.next_delay(None).as_millis()).collect();
        assert_eq!(got, vec![30, 60, 120, 200, 200]);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
