//! When to try a callback delivery again: exponential backoff with equal jitter, a cap, a
//! maximum number of attempts, and the classification of each attempt's result.
//!
//! Decisions:
//! - The delay after the n-th failed attempt is drawn from `[c/2, c)`, where
//!   `c = min(5 s · 2^(n-1), 1 h)` ("equal jitter"): never less than half the ceiling, so a
//!   receiver that is down is not hammered, and spread out, so many deliveries that failed
//!   together do not come back together.
//! - [`MAX_ATTEMPTS`] = 30 attempts: the ceilings add up to about 20 h (about 15 h on average with
//!   jitter), after which the delivery is abandoned.
//! - 2xx: done. 408, 425, 429 and 5xx, timeouts and connection failures: retry. Any other status
//!   (1xx, 3xx, other 4xx) and a request that cannot be built: give up, since sending the same
//!   request again cannot succeed. Redirects are not followed: a signed POST should not be
//!   replayed against a URL the workflow did not name.
//! - `Retry-After` in seconds is honoured in place of the backoff delay, clamped to
//!   [`MIN_RETRY_AFTER`]..=[`MAX_DELAY`]; the HTTP-date form is ignored (this module has no clock).

use std::time::Duration;

use super::transport::{DeliveryResponse, TransportError, TransportErrorKind};

/// The ceiling of the delay after the first failed attempt.
pub const BASE_DELAY: Duration = Duration::from_secs(5);

/// The largest delay between two attempts.
pub const MAX_DELAY: Duration = Duration::from_secs(60 * 60);

/// The shortest wait a `Retry-After` can ask for (a `Retry-After: 0` would burn every attempt).
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Attempts (the first one included) after which a delivery is abandoned.
pub const MAX_ATTEMPTS: u32 = 30;

/// The ceiling of the delay after `attempt` failed attempts (1 = after the first):
/// 5 s, 10 s, 20 s, ... doubling up to [`MAX_DELAY`]. `attempt` 0 is treated as 1.
pub fn base_delay(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    BASE_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY)
}

/// The delay before the next attempt after `attempt` failed attempts, with equal jitter:
/// `c/2 + jitter · c/2` where `c` = [`base_delay`]`(attempt)` and `jitter` is a uniform random
/// number in `[0, 1)` (values outside are clamped). Monotone in `attempt` for a fixed `jitter`.
pub fn next_attempt_delay(attempt: u32, jitter: f64) -> Duration {
    let ceiling = base_delay(attempt);
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    let half = ceiling / 2;
    half + half.mul_f64(jitter)
}

/// What one attempt's result means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver accepted it.
    Done,
    /// Worth trying again; `after` is the receiver's `Retry-After`, when it sent one.
    Retry { after: Option<Duration> },
    /// Sending it again cannot succeed.
    GiveUp,
}

/// Classifies one attempt (see the module documentation for the table).
pub fn classify(result: &Result<DeliveryResponse, TransportError>) -> Verdict {
    match result {
        Ok(response) => classify_status(response.status, response.retry_after),
        Err(error) => match error.kind {
            TransportErrorKind::Timeout | TransportErrorKind::Connect | TransportErrorKind::Io => {
                Verdict::Retry { after: None }
            }
            TransportErrorKind::InvalidRequest => Verdict::GiveUp,
        },
    }
}

/// Classifies an HTTP status (with its `Retry-After`, if any).
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        408 | 425 | 429 | 500..=599 => Verdict::Retry { after: retry_after },
        _ => Verdict::GiveUp,
    }
}

/// Parses a `Retry-After` header in its delay-seconds form (`120`); `None` for anything else,
/// including the HTTP-date form.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    // More digits than fit a u64 is still "a very long time".
    Some(
        value
            .parse::<u64>()
            .map_or(Duration::MAX, Duration::from_secs),
    )
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered: mark it done.
    Delivered,
    /// Try again after this delay.
    RetryIn(Duration),
    /// Stop trying: the receiver refused it, or [`MAX_ATTEMPTS`] were made.
    Abandon,
}

/// The next step after the `attempts`-th attempt (1 = the first) ended with `result`; `jitter`
/// is a uniform random number in `[0, 1)`.
pub fn next_step(
    attempts: u32,
    result: &Result<DeliveryResponse, TransportError>,
    jitter: f64,
) -> NextStep {
    match classify(result) {
        Verdict::Done => NextStep::Delivered,
        Verdict::GiveUp => NextStep::Abandon,
        Verdict::Retry { .. } if attempts >= MAX_ATTEMPTS => NextStep::Abandon,
        Verdict::Retry { after: Some(after) } => {
            NextStep::RetryIn(after.clamp(MIN_RETRY_AFTER, MAX_DELAY))
        }
        Verdict::Retry { after: None } => NextStep::RetryIn(next_attempt_delay(attempts, jitter)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn response(status: u16, retry_after: Option<Duration>) -> DeliveryResponse {
        DeliveryResponse {
            status,
            retry_after,
        }
    }

    #[test]
    fn base_delays_double_from_five_seconds_up_to_an_hour() {
        let delays: Vec<_> = (1..=12)
            .map(|attempt| base_delay(attempt).as_secs())
            .collect();
        assert_eq!(
            delays,
            [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(base_delay(0), secs(5));
        assert_eq!(base_delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn delays_are_monotone_and_capped_for_any_fixed_jitter() {
        for jitter in [0.0, 0.25, 0.5, 0.999_999] {
            let mut previous = Duration::ZERO;
            for attempt in 0..=200 {
                let delay = next_attempt_delay(attempt, jitter);
                assert!(delay >= previous, "attempt {attempt}, jitter {jitter}");
                assert!(delay <= MAX_DELAY);
                previous = delay;
            }
        }
        assert_eq!(next_attempt_delay(1, 0.0), Duration::from_millis(2500));
        assert_eq!(next_attempt_delay(1, 0.5), Duration::from_millis(3750));
        assert_eq!(next_attempt_delay(100, 0.0), secs(1800));
    }

    #[test]
    fn jitter_stays_within_half_the_ceiling_and_the_ceiling() {
        for attempt in 1..=40 {
            let ceiling = base_delay(attempt);
            for jitter in [0.0, 0.1, 0.5, 0.9, 0.999_999] {
                let delay = next_attempt_delay(attempt, jitter);
                assert!(
                    delay >= ceiling / 2 && delay < ceiling,
                    "{attempt} {jitter}"
                );
            }
            // Out-of-range randomness is clamped, never a panic.
            for jitter in [-1.0, 7.0, f64::NAN, f64::INFINITY] {
                assert!(next_attempt_delay(attempt, jitter) <= ceiling);
            }
        }
    }

    #[test]
    fn the_attempts_span_about_a_day() {
        let ceilings: Duration = (1..MAX_ATTEMPTS).map(base_delay).sum();
        let shortest: Duration = (1..MAX_ATTEMPTS)
            .map(|attempt| next_attempt_delay(attempt, 0.0))
            .sum();
        assert!(ceilings >= secs(18 * 3600) && ceilings <= secs(24 * 3600));
        assert!(shortest >= secs(9 * 3600));
    }

    #[test]
    fn classify_table() {
        let retry = Verdict::Retry { after: None };
        let table = [
            (200, Verdict::Done),
            (201, Verdict::Done),
            (202, Verdict::Done),
            (204, Verdict::Done),
            (299, Verdict::Done),
            (100, Verdict::GiveUp),
            (301, Verdict::GiveUp),
            (302, Verdict::GiveUp),
            (304, Verdict::GiveUp),
            (400, Verdict::GiveUp),
            (401, Verdict::GiveUp),
            (403, Verdict::GiveUp),
            (404, Verdict::GiveUp),
            (405, Verdict::GiveUp),
            (409, Verdict::GiveUp),
            (410, Verdict::GiveUp),
            (413, Verdict::GiveUp),
            (422, Verdict::GiveUp),
            (408, retry),
            (425, retry),
            (429, retry),
            (500, retry),
            (502, retry),
            (503, retry),
            (504, retry),
            (599, retry),
        ];
        for (status, verdict) in table {
            assert_eq!(classify(&Ok(response(status, None))), verdict, "{status}");
        }
        assert_eq!(
            classify(&Ok(response(429, Some(secs(30))))),
            Verdict::Retry {
                after: Some(secs(30))
            }
        );
        // A Retry-After on a success or a refusal changes nothing.
        assert_eq!(classify(&Ok(response(200, Some(secs(30))))), Verdict::Done);
        assert_eq!(
            classify(&Ok(response(404, Some(secs(30))))),
            Verdict::GiveUp
        );

        let error = |kind| Err(TransportError::new(kind, "x"));
        assert_eq!(classify(&error(TransportErrorKind::Timeout)), retry);
        assert_eq!(classify(&error(TransportErrorKind::Connect)), retry);
        assert_eq!(classify(&error(TransportErrorKind::Io)), retry);
        assert_eq!(
            classify(&error(TransportErrorKind::InvalidRequest)),
            Verdict::GiveUp
        );
    }

    #[test]
    fn retry_after_seconds_are_parsed() {
        assert_eq!(parse_retry_after("120"), Some(secs(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(secs(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(Duration::MAX)
        );
        for bad in ["", "-1", "1.5", "Wed, 21 Oct 2015 07:28:00 GMT", "+3"] {
            assert_eq!(parse_retry_after(bad), None, "{bad}");
        }
    }

    #[test]
    fn next_step_honours_retry_after_and_the_attempt_limit() {
        assert_eq!(
            next_step(1, &Ok(response(204, None)), 0.3),
            NextStep::Delivered
        );
        assert_eq!(
            next_step(1, &Ok(response(400, None)), 0.3),
            NextStep::Abandon
        );
        assert_eq!(
            next_step(1, &Ok(response(500, None)), 0.0),
            NextStep::RetryIn(Duration::from_millis(2500))
        );
        assert_eq!(
            next_step(3, &Ok(response(503, Some(secs(90)))), 0.0),
            NextStep::RetryIn(secs(90))
        );
        assert_eq!(
            next_step(3, &Ok(response(429, Some(secs(0)))), 0.0),
            NextStep::RetryIn(MIN_RETRY_AFTER)
        );
        assert_eq!(
            next_step(3, &Ok(response(429, Some(Duration::MAX))), 0.0),
            NextStep::RetryIn(MAX_DELAY)
        );
        let timeout = Err(TransportError::new(TransportErrorKind::Timeout, "10 s"));
        assert!(matches!(
            next_step(MAX_ATTEMPTS - 1, &timeout, 0.0),
            NextStep::RetryIn(_)
        ));
        assert_eq!(next_step(MAX_ATTEMPTS, &timeout, 0.0), NextStep::Abandon);
        assert_eq!(
            next_step(MAX_ATTEMPTS, &Ok(response(200, None)), 0.0),
            NextStep::Delivered
        );
    }
}
