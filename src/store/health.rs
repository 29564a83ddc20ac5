//! Whether the store takes writes: one shared flag that the engine loop and the delivery
//! worker set, and `/-/ready` reads.
//!
//! While the store refuses writes (a full disk, a read-only file, a database that went away)
//! the engine runs from memory: it keeps deciding and paging, keeps what it could not write,
//! and writes it all once the store takes writes again. This flag is how the rest of the
//! engine hears of that, and the one place that logs it: one error when writes start to
//! fail, a reminder at most every [`REMINDER`], and one line when they work again, however
//! many writes failed in between.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tracing::Level;

/// A store that stays broken is mentioned again this often (as a warning).
pub const REMINDER: Duration = Duration::from_secs(600);

#[derive(Clone, Default)]
pub struct StoreHealth {
    inner: Arc<Mutex<State>>,
    /// A SQLite file: a failed write also says what the file system says of it.
    database: Option<Arc<std::path::Path>>,
}

#[derive(Default)]
struct State {
    failing: Option<Failing>,
    /// When the last "cannot be written" error was logged: a store that flaps between
    /// working and failing gets one error per [`REMINDER`], warnings in between.
    last_error: Option<tokio::time::Instant>,
}

struct Failing {
    since: DateTime<Utc>,
    reason: String,
    /// Failed writes since `since`.
    failures: u64,
    last_logged: tokio::time::Instant,
}

impl StoreHealth {
    pub fn new() -> Self {
        Self::default()
    }

    /// The health of `store`'s writes: for a SQLite file, the reason of a failed write is
    /// followed by the file system's word on the file (read-only, no permission), which
    /// SQLite's own message ("disk I/O error") does not give.
    pub fn of(store: &super::Store) -> Self {
        StoreHealth {
            database: store
                .sqlite
                .as_ref()
                .and_then(|sqlite| sqlite.lock.as_ref())
                .map(|lock| Arc::from(lock.database.as_path())),
            ..Self::default()
        }
    }

    /// A write failed (`what` was being written). Logs an error the first time only, then a
    /// warning at most every [`REMINDER`]; returns the level it logged at (None: debug only).
    pub fn write_failed(&self, what: &str, error: &dyn std::fmt::Display) -> Option<Level> {
        let reason = match self
            .database
            .as_deref()
            .and_then(super::sqlite::lock::why_unwritable)
        {
            Some(file) => format!("{error}; {file}"),
            None => error.to_string(),
        };
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        let State {
            failing,
            last_error,
        } = &mut *state;
        match failing.as_mut() {
            None => {
                const MESSAGE: &str = "the store cannot be written: running from memory until \
                     it can. Pages still go out, /-/ready answers 503, API writes answer 503, \
                     and everything not written is kept and written once the store takes \
                     writes again (it is lost if the engine stops first)";
                let level = if last_error.is_none_or(|at| now - at >= REMINDER) {
                    *last_error = Some(now);
                    tracing::error!(error = %reason, while_writing = what, "{MESSAGE}");
                    Level::ERROR
                } else {
                    tracing::warn!(error = %reason, while_writing = what, "{MESSAGE}");
                    Level::WARN
                };
                *failing = Some(Failing {
                    since: Utc::now(),
                    reason,
                    failures: 1,
                    last_logged: now,
                });
                Some(level)
            }
            Some(failing) => {
                failing.failures += 1;
                failing.reason = reason;
                if now - failing.last_logged >= REMINDER {
                    failing.last_logged = now;
                    tracing::warn!(
                        error = %failing.reason,
                        since = %failing.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                        failed_writes = failing.failures,
                        "the store still cannot be written; running from memory"
                    );
                    Some(Level::WARN)
                } else {
                    tracing::debug!(error = %failing.reason, while_writing = what, "store write failed again");
                    None
                }
            }
        }
    }

    /// A write went through: the store takes writes (again). Returns whether it said so
    /// (once, after failures).
    pub fn write_succeeded(&self) -> bool {
        let mut state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(failing) = state.failing.take() else {
            return false;
        };
        {
            let seconds = (Utc::now() - failing.since).num_milliseconds().max(0) as f64 / 1000.0;
            tracing::info!(
                failed_writes = failing.failures,
                "the store takes writes again after {seconds:.1}s; what was kept in memory is \
                 being written"
            );
        }
        true
    }

    /// Why the store is not taking writes, or None when it is.
    pub fn problem(&self) -> Option<String> {
        let state = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        state.failing.as_ref().map(|f| {
            format!(
                "the store cannot be written since {} ({} failed writes): {}",
                f.since.to_rfc3339_opts(SecondsFormat::Secs, true),
                f.failures,
                f.reason
            )
        })
    }

    pub fn is_failing(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .failing
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_until_a_write_succeeds() {
        let health = StoreHealth::new();
        assert!(health.problem().is_none());
        health.write_failed("a batch", &"disk full");
        health.write_failed("a batch", &"database or disk is full");
        let problem = health.problem().unwrap();
        assert!(problem.contains("2 failed writes"), "{problem}");
        assert!(problem.contains("database or disk is full"), "{problem}");
        assert!(health.clone().is_failing(), "clones share the flag");
        health.write_succeeded();
        assert!(health.problem().is_none());
    }

    /// On tokio's paused clock: one error when writes start failing, then quiet, a warning
    /// every REMINDER while they keep failing, and one line when they work again.
    #[tokio::test(start_paused = true)]
    async fn one_error_then_a_reminder_every_ten_minutes_then_one_line() {
        let health = StoreHealth::new();
        // Twenty minutes of writes failing every second: what each failure logged.
        let mut logged = Vec::new();
        for second in 0..1200 {
            if let Some(level) = health.write_failed("a batch", &"database or disk is full") {
                logged.push((second, level));
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert_eq!(logged, [(0, Level::ERROR), (600, Level::WARN)]);
        assert!(health.problem().unwrap().contains("1200 failed writes"));
        assert_eq!(
            health.write_failed("a batch", &"database or disk is full"),
            Some(Level::WARN),
            "the next reminder, ten minutes after the last"
        );
        assert!(health.write_succeeded(), "one line when writes work again");
        assert!(!health.write_succeeded(), "and only one");
    }
}
