//! The one retry policy of every HTTP client in strata (registries and
//! Debian repositories): bounded attempts, exponential backoff,
//! `Retry-After`, and the stall timeout that turns a silent peer into a
//! retryable error.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::{Error, Result};

/// The longest `Retry-After` strata honours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Default stall timeout: this long with no byte moving fails the attempt.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// How requests are retried and when a connection counts as stalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, including the first (at least 1).
    pub attempts: u32,
    /// First backoff delay; doubles each retry up to `max_delay`.
    pub backoff: Duration,
    /// The longest backoff delay.
    pub max_delay: Duration,
    /// A connection that moves no byte for this long is dropped and the
    /// attempt retried (downloads resume with a Range request).
    pub stall: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            backoff: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            stall: DEFAULT_STALL,
        }
    }
}

/// What one attempt came to.
pub enum Step<T> {
    /// Final: return it.
    Done(T),
    /// Worth another attempt (after the given delay, else the backoff); it
    /// is returned as it is when no attempt is left.
    Retry(T, Option<Duration>),
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.backoff.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `op` (given the attempt number, from 1) until it is done or the
    /// attempts are used up.
    pub fn run<T>(&self, mut op: impl FnMut(u32) -> Step<T>) -> T {
        let mut attempt = 1;
        loop {
            match op(attempt) {
                Step::Done(t) => return t,
                Step::Retry(t, _) if attempt >= self.attempts.max(1) => return t,
                Step::Retry(_, after) => {
                    std::thread::sleep(after.unwrap_or_else(|| self.delay(attempt)));
                    attempt += 1;
                }
            }
        }
    }

    /// The same policy with another number of attempts.
    pub fn with_attempts(self, attempts: u32) -> Self {
        RetryPolicy { attempts, ..self }
    }

    /// Sends the request `build` makes (once per attempt) and retries on
    /// connection errors, stalls, 408, 429 and 5xx. Any other answer is
    /// returned whatever its status; a final transport error becomes
    /// [`Error::Connect`] naming `host` and `what`.
    pub fn send(
        &self,
        host: &str,
        what: &str,
        build: impl Fn() -> Result<RequestBuilder>,
    ) -> Result<Response> {
        self.run(|_| match build() {
            Err(e) => Step::Done(Err(e)),
            Ok(req) => classify(req.send().map_err(Failure::from)).into_result(host, what, self),
        })
    }
}

/// Why an attempt got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The HTTP stack failed (connection, TLS, timeout, body).
    Transport(reqwest::Error),
    /// No byte moved for the stall timeout.
    Stalled,
    /// strata refused to go on (a downgrading or endless redirect).
    Refused(String),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Self {
        Failure::Transport(e)
    }
}

impl Failure {
    /// Worth another attempt.
    pub fn transient(&self) -> bool {
        match self {
            Failure::Transport(e) => transient(e),
            Failure::Stalled => true,
            Failure::Refused(_) => false,
        }
    }

    /// As [`Error::Connect`] naming `host` and `what`.
    pub fn into_error(self, host: &str, what: &str, policy: &RetryPolicy) -> Error {
        let detail = match self {
            Failure::Transport(e) if e.is_timeout() => format!(
                "{what}: {} (nothing arrived for {} s: the stall timeout)",
                error_chain(&e),
                policy.stall.as_secs_f64()
            ),
            Failure::Transport(e) => format!("{what}: {}", error_chain(&e)),
            Failure::Stalled => format!(
                "{what}: no byte moved for {} s (the stall timeout)",
                policy.stall.as_secs_f64()
            ),
            Failure::Refused(why) => format!("{what}: {why}"),
        };
        Error::Connect {
            host: host.to_string(),
            detail,
        }
    }
}

impl<T> Step<std::result::Result<T, Failure>> {
    /// Converts the failure of either outcome into [`Error::Connect`].
    pub fn into_result(self, host: &str, what: &str, policy: &RetryPolicy) -> Step<Result<T>> {
        let conv =
            |r: std::result::Result<T, Failure>| r.map_err(|e| e.into_error(host, what, policy));
        match self {
            Step::Done(r) => Step::Done(conv(r)),
            Step::Retry(r, d) => Step::Retry(conv(r), d),
        }
    }
}

/// Something with an HTTP status, to classify.
pub trait Answered {
    /// The status.
    fn status_code(&self) -> StatusCode;
    /// The headers.
    fn header_map(&self) -> &HeaderMap;
}

impl Answered for Response {
    fn status_code(&self) -> StatusCode {
        self.status()
    }
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

/// Retry on transient transport errors and on retryable statuses
/// (honouring `Retry-After`); everything else is final.
pub fn classify<T: Answered>(
    outcome: std::result::Result<T, Failure>,
) -> Step<std::result::Result<T, Failure>> {
    match &outcome {
        Ok(r) if retryable_status(r.status_code()) => {
            let after = retry_after(r.header_map());
            Step::Retry(outcome, after)
        }
        Err(e) if e.transient() => Step::Retry(outcome, None),
        _ => Step::Done(outcome),
    }
}

/// 408, 429 and 5xx are worth retrying.
pub fn retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Connection refused or reset, a timeout (a stall), a request that could
/// not be sent, a body cut short.
pub fn transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// `Retry-After` in seconds (capped at 30 s).
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    h.get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// A body read that failed, as [`Error::Connect`] naming `host` and
/// `what`; a timeout says it was the stall timeout.
pub fn body_error(host: &str, what: &str, e: &std::io::Error, policy: &RetryPolicy) -> Error {
    let mut detail = format!("{what}: {}", error_chain(e));
    let mut timed_out = e.kind() == std::io::ErrorKind::TimedOut;
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(inner) = src {
        timed_out |= inner
            .downcast_ref::<reqwest::Error>()
            .is_some_and(|r| r.is_timeout());
        src = inner.source();
    }
    if timed_out {
        detail.push_str(&format!(
            " (nothing arrived for {} s: the stall timeout)",
            policy.stall.as_secs_f64()
        ));
    }
    Error::Connect {
        host: host.to_string(),
        detail,
    }
}

/// Formats an error with its sources (reqwest hides the interesting part).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            backoff: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            stall: Duration::from_secs(1),
        }
    }

    #[test]
    fn retries_are_bounded_and_return_the_last_outcome() {
        let calls = Cell::new(0);
        let out = quick(3).run(|n| {
            calls.set(calls.get() + 1);
            Step::Retry(n, None)
        });
        assert_eq!((calls.get(), out), (3, 3));
        let out = quick(5).run(|n| {
            if n == 2 {
                Step::Done(n)
            } else {
                Step::Retry(n, None)
            }
        });
        assert_eq!(out, 2);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            backoff: Duration::from_millis(200),
            max_delay: Duration::from_secs(1),
            ..Default::default()
        };
        let d: Vec<u128> = (1..6).map(|a| p.delay(a).as_millis()).collect();
        assert_eq!(d, [200, 400, 800, 1000, 1000]);
        assert_eq!(p.delay(1000), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [200, 201, 202, 400, 401, 403, 404, 405, 413, 416] {
            assert!(!retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
