//! Pacing calls to banks: a per-institution rate (banks throttle per
//! third party) and retries with exponential backoff and jitter for a bank
//! that is briefly down.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use paycore_bank_connector::ConnectorError;
use rand::Rng;
use tokio::time::Instant;

/// Spaces the calls to each institution at least `1 / per_second` apart.
/// Keeps one instant per institution of the connector's catalogue (a fixed,
/// small set).
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    /// `per_second` 0: no limit.
    pub(crate) fn new(per_second: u32) -> Self {
        Self {
            interval: (per_second > 0).then(|| Duration::from_secs(1) / per_second),
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for the institution's next free slot and takes it.
    pub(crate) async fn wait(&self, institution: &str) {
        let Some(interval) = self.interval else { return };
        let at = {
            let now = Instant::now();
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = next.entry(institution.to_owned()).or_insert(now);
            let at = (*slot).max(now);
            *slot = at + interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How a call to a bank that is down is tried again.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// Tries after the first.
    pub retries: u32,
    /// The wait before the first retry; each next one doubles, up to `max`.
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            retries: 4,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before retry `attempt` (0-based): doubled each time, with
    /// "full jitter" (a random part of it), so the jobs a bank outage
    /// stopped do not all come back at once.
    fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max);
        let half = ceiling / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Runs `call` until it succeeds, fails for good, or the bank stayed
    /// down for every retry (then its last error). Rate limits are not
    /// retried here: the bank said when, and the connection waits for it.
    pub(crate) async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ConnectorError>>,
    {
        let mut attempt = 0;
        loop {
            match call().await {
                Err(error @ (ConnectorError::BankUnavailable { .. } | ConnectorError::Transport(_)))
                    if attempt < self.retries =>
                {
                    tracing::debug!(target: "paycore::aggregation", %attempt, error = %crate::error::connector_text(&error), "bank down, retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bank_down_a_few_times_is_retried_then_given_up() {
        let backoff = Backoff {
            retries: 3,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let calls = AtomicU32::new(0);
        let answer = backoff
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 2 {
                    Err(ConnectorError::Transport("refused".into()))
                } else {
                    Ok(n)
                }
            })
            .await;
        assert_eq!(answer, Ok(2));
        calls.store(0, Ordering::SeqCst);
        let answer: Result<(), _> = backoff
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ConnectorError::BankUnavailable { retry_after: None })
            })
            .await;
        assert!(matches!(answer, Err(ConnectorError::BankUnavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "the first try and 3 retries");
        let limited: Result<(), _> = backoff
            .run(|| async {
                Err(ConnectorError::RateLimited {
                    retry_after: time::OffsetDateTime::UNIX_EPOCH,
                })
            })
            .await;
        assert!(matches!(limited, Err(ConnectorError::RateLimited { .. })));
    }

    #[test]
    fn backoff_doubles_up_to_its_ceiling() {
        let backoff = Backoff {
            retries: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..10 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow(attempt)).min(Duration::from_secs(1));
            let delay = backoff.delay(attempt);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "{attempt}: {delay:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_to_one_institution_are_spaced() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..5 {
            limiter.wait("bank_a").await;
        }
        limiter.wait("bank_b").await;
        // 5 calls at 10 a second: the fifth 400 ms after the first.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
