//! When to try an undelivered page again: exponential backoff with jitter, `Retry-After`
//! honoured, never past the page's `max_age`.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::RetryConfig;

/// The wait after the `failures`-th failed attempt (1 for the first), before jitter:
/// `initial_backoff × 2^(failures−1)`, at most `max_backoff`.
pub fn ceiling(retry: &RetryConfig, failures: u32) -> Duration {
    let initial = retry.initial_backoff.std();
    let max = retry.max_backoff.std().max(initial);
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(31));
    initial.saturating_mul(factor).min(max)
}

/// The wait after the `failures`-th failed attempt: uniform between `initial_backoff` and
/// [`ceiling`] (`unit` in 0..=1 picks where). Jitter spreads the retries of many pages that
/// failed together (one receiver down) so they do not all come back at the same instant.
pub fn backoff(retry: &RetryConfig, failures: u32, unit: f64) -> Duration {
    let low = retry.initial_backoff.std();
    let high = ceiling(retry, failures);
    let span = high.saturating_sub(low);
    low + span.mul_f64(unit.clamp(0.0, 1.0))
}

/// A random jitter sample for [`backoff`].
pub fn jitter() -> f64 {
    rand::random::<f64>()
}

/// When to attempt again after a failure at `now`: the backoff, or the receiver's
/// `Retry-After` when that is longer. A wait that would run past `created_at + max_age` is cut
/// to that moment, so the page gets one last attempt before it is given up.
pub fn next_attempt(
    retry: &RetryConfig,
    failures: u32,
    retry_after: Option<Duration>,
    created_at: DateTime<Utc>,
    now: DateTime<Utc>,
    unit: f64,
) -> DateTime<Utc> {
    let backoff = backoff(retry, failures, unit);
    let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
    // Saturating: a receiver may ask for `Retry-After: 99999999999999`, a config may keep
    // pages for a million years; either would overflow DateTime and panic the worker.
    let next = later(now, wait);
    let deadline = later(created_at, retry.max_age.std());
    let earliest = later(now, backoff);
    if next > deadline {
        deadline.max(earliest)
    } else {
        next
    }
}

/// `at + wait`, or the end of time when that is past it.
fn later(at: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| at.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Has the page been undelivered for `max_age` or longer?
pub fn expired(retry: &RetryConfig, created_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - created_at >= retry.max_age.chrono()
}

/// A `Retry-After` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is RFC 2822 with zone GMT.
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as ConfigDuration;

    fn retry() -> RetryConfig {
        RetryConfig {
            initial_backoff: ConfigDuration::from_secs(1),
            max_backoff: ConfigDuration::from_secs(60),
            max_age: ConfigDuration::from_secs(3600),
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_571_200 + secs, 0).unwrap()
    }

    #[test]
    fn doubles_up_to_the_maximum() {
        let r = retry();
        let ceilings: Vec<u64> = (1..=8).map(|n| ceiling(&r, n).as_secs()).collect();
        assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(ceiling(&r, 1000), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_between_initial_and_ceiling() {
        let r = retry();
        assert_eq!(backoff(&r, 4, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(&r, 4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(&r, 4, 0.5), Duration::from_millis(4500));
        for _ in 0..1000 {
            let d = backoff(&r, 6, jitter());
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(32),
                "{d:?}"
            );
        }
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let r = retry();
        let next = next_attempt(&r, 1, Some(Duration::from_secs(30)), t(0), t(10), 0.0);
        assert_eq!(next, t(40));
        // A shorter Retry-After does not shorten the backoff.
        let next = next_attempt(&r, 5, Some(Duration::from_secs(0)), t(0), t(10), 1.0);
        assert_eq!(next, t(26));
    }

    #[test]
    fn never_waits_past_max_age() {
        let r = retry();
        // Asked to come back in a day; the page is given up after an hour, so the last
        // attempt is at the hour.
        let next = next_attempt(&r, 1, Some(Duration::from_secs(86_400)), t(0), t(100), 0.0);
        assert_eq!(next, t(3600));
        assert!(!expired(&r, t(0), t(3599)));
        assert!(expired(&r, t(0), t(3600)));
    }

    /// A receiver may answer `Retry-After: 99999999999999` (or a config may set a max_age of
    /// a million years): the arithmetic must saturate, not panic the delivery worker.
    #[test]
    fn huge_waits_do_not_overflow() {
        let r = retry();
        for asked in [10_000_000_000_000, u64::MAX / 2, u64::MAX] {
            let next = next_attempt(&r, 1, Some(Duration::from_secs(asked)), t(0), t(10), 0.0);
            assert_eq!(next, t(3600), "Retry-After: {asked}");
        }
        let forever = RetryConfig {
            max_age: ConfigDuration::from_millis(u64::MAX),
            ..retry()
        };
        let next = next_attempt(
            &forever,
            1,
            Some(Duration::from_secs(u64::MAX)),
            t(0),
            t(10),
            0.0,
        );
        assert!(next > t(10));
        assert!(!expired(&forever, t(0), t(10)));
    }

    #[test]
    fn parses_both_retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 1 ", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        // A date in the past means "now".
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
