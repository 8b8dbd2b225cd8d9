//! Delivery with retries: exponential backoff from `initial_backoff`,
//! doubling, capped at `max_backoff`, at most `max_attempts` in all;
//! permanent errors are not retried.
//!
//! Invariant: the wait between attempts goes through the `sleep` the
//! caller passes (tokio's in production, a recorder in tests), so the
//! policy is tested without sleeping.

use std::future::Future;
use std::time::Duration;

use crate::notify::channel::{Channel, ChannelError, Notification};
use crate::notify::config::RetryConfig;

/// The wait after failed attempt `attempt` (1-based).
pub fn backoff(retry: &RetryConfig, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1))
        .unwrap_or(u32::MAX);
    retry
        .initial_backoff
        .checked_mul(factor)
        .unwrap_or(retry.max_backoff)
        .min(retry.max_backoff)
}

/// Sends `n` through `ch`, retrying per `retry`; returns the number of
/// attempts and the last error if every attempt failed.
pub async fn send_with_retry<S, F>(
    ch: &dyn Channel,
    n: &Notification,
    retry: &RetryConfig,
    sleep: S,
) -> (u32, Result<(), ChannelError>)
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match ch.send(n).await {
            Ok(()) => return (attempt, Ok(())),
            Err(e) if !e.is_retryable() || attempt >= retry.max_attempts => {
                return (attempt, Err(e));
            }
            Err(_) => sleep(backoff(retry, attempt)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::notify::channel::SendFuture;

    struct Flaky {
        fail_first: u32,
        permanent: bool,
        calls: AtomicU32,
    }

    impl Channel for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }
        fn send<'a>(&'a self, _: &'a Notification) -> SendFuture<'a> {
            Box::pin(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                match (n <= self.fail_first, self.permanent) {
                    (false, _) => Ok(()),
                    (true, false) => Err(ChannelError::Retryable(format!("503 #{n}"))),
                    (true, true) => Err(ChannelError::Permanent("400".into())),
                }
            })
        }
    }

    fn n() -> Notification {
        Notification::new("r", "k", Default::default(), "", Vec::new())
    }

    fn run(ch: &Flaky, retry: &RetryConfig) -> (u32, Result<(), ChannelError>, Vec<Duration>) {
        let waits = Mutex::new(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (a, r) = rt.block_on(send_with_retry(ch, &n(), retry, |d| {
            waits.lock().unwrap().push(d);
            std::future::ready(())
        }));
        (a, r, waits.into_inner().unwrap())
    }

    #[test]
    fn retries_with_capped_exponential_backoff() {
        let retry = RetryConfig {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            max_attempts: 5,
        };
        let s = Duration::from_secs;
        let ch = Flaky {
            fail_first: 3,
            permanent: false,
            calls: AtomicU32::new(0),
        };
        let (attempts, r, waits) = run(&ch, &retry);
        assert_eq!((attempts, r), (4, Ok(())));
        assert_eq!(waits, [s(1), s(2), s(4)]);
        let ch = Flaky {
            fail_first: 99,
            permanent: false,
            calls: AtomicU32::new(0),
        };
        let (attempts, r, waits) = run(&ch, &retry);
        assert_eq!(attempts, 5);
        assert_eq!(r.unwrap_err().to_string(), "503 #5");
        assert_eq!(waits, [s(1), s(2), s(4), s(5)]);
        let ch = Flaky {
            fail_first: 99,
            permanent: true,
            calls: AtomicU32::new(0),
        };
        let (attempts, r, waits) = run(&ch, &retry);
        assert_eq!((attempts, waits.len()), (1, 0));
        assert!(!r.unwrap_err().is_retryable());
    }
}
