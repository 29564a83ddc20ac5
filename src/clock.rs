//! Wall-clock time for every stage that reads "now" (the engine, sources, delivery, the API).
//! It follows tokio's clock, so a test on a paused runtime moves the engine's "now" (and
//! every escalation, `for:` and schedule) without sleeping.

use chrono::{DateTime, Utc};

#[derive(Clone, Debug)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// A wall time that advances with tokio's clock from a fixed start (tests).
    Tokio {
        start: DateTime<Utc>,
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock reading `start` now and moving with tokio's (possibly paused) time.
    pub fn tokio_at(start: DateTime<Utc>) -> Self {
        Clock::Tokio {
            start,
            origin: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { start, origin } => {
                let elapsed = tokio::time::Instant::now() - *origin;
                *start + chrono::Duration::from_std(elapsed).unwrap_or_default()
            }
        }
    }

    /// Sleep until `deadline` on this clock; forever when there is none.
    pub async fn sleep_until(&self, deadline: Option<DateTime<Utc>>) {
        match deadline {
            None => std::future::pending().await,
            Some(at) => {
                let wait = (at - self.now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
        }
    }
}
