//! Retrying calls the server refused for now (429, 503).

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// How refused calls are retried: exponential backoff with jitter, never
/// sooner than the server's `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: never retry).
    pub max_retries: u32,
    /// First backoff; it doubles with every retry.
    pub base_delay: Duration,
    /// Longest single wait, whatever the server asks.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// Never retry: every refusal is returned at once.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `attempt + 1`.
    pub(crate) fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay);
        // Full jitter spreads clients that were refused together.
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        match retry_after {
            Some(asked) => asked.max(jittered).min(self.max_delay),
            None => jittered,
        }
    }
}

/// `Retry-After` in seconds (Ward never sends the date form).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_at_least_what_the_server_asks_and_at_most_the_cap() {
        let policy = RetryPolicy::default();
        let asked = Duration::from_secs(2);
        assert!(policy.delay(0, Some(asked)) >= asked);
        assert!(policy.delay(0, Some(Duration::from_secs(3600))) <= policy.max_delay);
        for attempt in 0..40 {
            let wait = policy.delay(attempt, None);
            assert!(wait <= policy.max_delay, "attempt {attempt}: {wait:?}");
            assert!(wait >= policy.base_delay / 2);
        }
        // Backoff grows.
        assert!(policy.delay(5, None) > policy.delay(0, None));
    }

    #[test]
    fn reads_retry_after_in_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }
}
