//! Retry in place of idempotent requests, small and bounded.
//!
//! The orchestrator already retries whole syncs with jittered backoff (and honours
//! `Retry-After` between them), so the adapters must not double that. This layer only absorbs
//! the blips that would otherwise fail a whole sync for nothing:
//!
//! - a connection that could not be made (refused, reset while connecting): the request never
//!   reached the server, so trying again is safe for any request. Timeouts are not retried
//!   (that would double the wait of a read that already took the whole timeout);
//! - a 429 whose `Retry-After` is short ([`RetryPolicy::max_retry_after`]): waited out exactly.
//!   A longer or missing one is the orchestrator's to honour.
//!
//! Everything else (5xx, 408, 4xx, a broken body) is returned at once. Adapters wrap only
//! requests that are safe to repeat: reads (pulls, record reads, the clock, health). Pushes are
//! idempotent by op id in our protocol, but they are left to the orchestrator, as before.
//!
//! Delays come from [`backon`]'s exponential backoff with jitter; [`RetryPolicy::jitter_seed`]
//! fixes the random source for tests.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::error::{Error, Result};

/// How a request is retried in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included (1: no retry).
    pub attempts: usize,
    /// Backoff before the first retry (then doubling, up to `max_delay`), plus jitter.
    pub min_delay: Duration,
    /// Longest backoff delay.
    pub max_delay: Duration,
    /// A 429 is retried in place only when its `Retry-After` is at most this long.
    pub max_retry_after: Duration,
    /// Seed of the jitter's random source (`None`: random); tests fix it.
    pub jitter_seed: Option<u64>,
}

/// The policy of reads: one retry, 100 to 200 ms later (or after a `Retry-After` of up to 1 s).
pub(crate) const READS: RetryPolicy = RetryPolicy {
    attempts: 2,
    min_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(400),
    max_retry_after: Duration::from_secs(1),
    jitter_seed: None,
};

/// A connection that could not be made (nothing was sent, so any request may be retried).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn refused_connection(e: &reqwest::Error) -> bool {
    e.is_connect()
}

/// `fetch` does not tell a refused connection from other network failures: no in-place retry.
#[cfg(target_arch = "wasm32")]
pub(crate) fn refused_connection(_: &reqwest::Error) -> bool {
    false
}

impl RetryPolicy {
    /// Whether `e` is worth another attempt in place.
    pub(crate) fn retries(&self, e: &Error) -> bool {
        match e {
            Error::RateLimited {
                retry_after: Some(d),
                ..
            } => *d <= self.max_retry_after,
            Error::Unavailable {
                source: Some(src), ..
            } => src
                .downcast_ref::<reqwest::Error>()
                .is_some_and(|r| refused_connection(r) && !r.is_timeout()),
            _ => false,
        }
    }

    /// Runs `request` until it succeeds, fails with an error not worth retrying, or has used
    /// its attempts; returns the last result.
    pub(crate) async fn run<R, F, Fut>(&self, request: F) -> Result<R>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<R>>,
    {
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter();
        if let Some(seed) = self.jitter_seed {
            backoff = backoff.with_jitter_seed(seed);
        }
        request
            .retry(backoff)
            .when(|e| self.retries(e))
            // Honour Retry-After exactly; `None` (attempts used up) stops.
            .adjust(|e, delay| {
                delay.map(|d| match e {
                    Error::RateLimited {
                        retry_after: Some(r),
                        ..
                    } => *r,
                    _ => d,
                })
            })
            .notify(|e, delay| tracing::debug!(error = %e, ?delay, "retrying a read in place"))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const TEST: RetryPolicy = RetryPolicy {
        jitter_seed: Some(7),
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        ..READS
    };

    fn limited(secs_ms: u64) -> Error {
        Error::RateLimited {
            backend: "t",
            retry_after: Some(Duration::from_millis(secs_ms)),
        }
    }

    async fn connect_error() -> Error {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = reqwest::get(format!("http://{addr}")).await.unwrap_err();
        Error::Unavailable {
            backend: "t",
            message: e.to_string(),
            source: Some(std::sync::Arc::new(e)),
        }
    }

    /// Runs `TEST` over answers taken in order; returns the result and the calls made.
    async fn over(answers: Vec<Result<u8>>) -> (Result<u8>, usize) {
        let calls = AtomicUsize::new(0);
        let answers = std::sync::Mutex::new(answers.into_iter());
        let r = TEST
            .run(|| {
                calls.fetch_add(1, Ordering::SeqCst);
                let next = answers.lock().unwrap().next().expect("an answer");
                async move { next }
            })
            .await;
        (r, calls.into_inner())
    }

    #[tokio::test]
    async fn connect_errors_are_retried_once() {
        let (r, n) = over(vec![Err(connect_error().await), Ok(1)]).await;
        assert_eq!((r.unwrap(), n), (1, 2));
        let (r, n) = over(vec![Err(connect_error().await), Err(connect_error().await)]).await;
        assert!(matches!(r, Err(Error::Unavailable { .. })));
        assert_eq!(n, 2, "bounded");
    }

    #[tokio::test]
    async fn a_short_retry_after_is_waited_out() {
        let started = std::time::Instant::now();
        let (r, n) = over(vec![Err(limited(150)), Ok(1)]).await;
        assert_eq!((r.unwrap(), n), (1, 2));
        assert!(started.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn everything_else_is_returned_at_once() {
        let others = [
            limited(5_000),
            Error::RateLimited {
                backend: "t",
                retry_after: None,
            },
            Error::Unavailable {
                backend: "t",
                message: "503".into(),
                source: None,
            },
            Error::Unauthorized {
                backend: "t",
                message: "no".into(),
            },
            Error::Rejected {
                backend: "t",
                status: Some(400),
                message: "no".into(),
            },
        ];
        for e in others {
            let (r, n) = over(vec![Err(e), Ok(1)]).await;
            assert!(r.is_err());
            assert_eq!(n, 1);
        }
    }

    #[test]
    fn reads_retry_once() {
        assert_eq!(READS.attempts, 2);
        assert_eq!(TEST.attempts, 2);
    }
}
