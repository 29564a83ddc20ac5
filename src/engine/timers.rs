//! A timer wheel keyed by what the timer is for: the earliest deadline is found in O(log n),
//! and setting a key again moves its timer (as mini-redis purges expirations).

use std::collections::BTreeSet;

// Looked up per signal, as the core's maps (see there).
use foldhash::HashMap;

use chrono::{DateTime, Utc};

use crate::signal::Fingerprint;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A rule's `for:` or `clear_for:` for one signal key (rule index, fingerprint).
    Rule(u32, Fingerprint),
    /// A heartbeat is missed (heartbeat index).
    Heartbeat(u32),
    /// Every impact has been clear for `resolve_after`.
    AutoResolve(i64),
    /// The escalation's next level, window change or ack lapse.
    Escalation(i64),
    /// A CRI's initial-response deadline.
    RespondBy(i64),
    /// An update to those paged, held by `notifiers.update_interval`, falls due.
    Update(i64),
    /// A resolved incident can no longer be reopened (`incidents.reopen_within`).
    ReopenEnds(i64),
    /// The next shift change in some schedule (its holder gets a notice).
    ShiftStart,
    /// A support case's response deadline or next update (case id).
    Case(i64),
    /// The next waiting step of a paged person's notification rules.
    Step(i64),
    /// The next minute of the services' availability (indicator minutes, burn checks).
    Availability,
    /// An incident's TSG action did not report back in time.
    TsgAction(i64),
}

/// Kept as nanoseconds since the epoch: 8 bytes where a `DateTime<Utc>` takes 12 and pads
/// each entry to 32 (two entries per open incident, and there may be 100,000 open).
/// Times past 2262 (none are set) would fire at the end of that range.
pub(super) type Nanos = i64;

pub(super) fn nanos(at: DateTime<Utc>) -> Nanos {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

pub(super) fn time(at: Nanos) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(at)
}

#[derive(Default, Debug)]
pub struct Timers {
    by_time: BTreeSet<(Nanos, TimerKey)>,
    by_key: HashMap<TimerKey, Nanos>,
}

impl Timers {
    pub fn set(&mut self, key: TimerKey, at: DateTime<Utc>) {
        let at = nanos(at);
        if let Some(old) = self.by_key.insert(key, at) {
            if old == at {
                return;
            }
            self.by_time.remove(&(old, key));
        }
        self.by_time.insert((at, key));
    }

    pub fn set_or_cancel(&mut self, key: TimerKey, at: Option<DateTime<Utc>>) {
        match at {
            Some(at) => self.set(key, at),
            None => self.cancel(key),
        }
    }

    pub fn cancel(&mut self, key: TimerKey) {
        if let Some(old) = self.by_key.remove(&key) {
            self.by_time.remove(&(old, key));
        }
    }

    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.peek().map(|(at, _)| at)
    }

    /// The earliest timer, left in place.
    pub fn peek(&self) -> Option<(DateTime<Utc>, TimerKey)> {
        self.by_time.first().map(|(at, key)| (time(*at), *key))
    }

    /// Remove and return the earliest timer due at or before `now`.
    pub fn pop_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, TimerKey)> {
        let (at, key) = *self.by_time.first()?;
        if at > nanos(now) {
            return None;
        }
        self.by_time.remove(&(at, key));
        self.by_key.remove(&key);
        Some((time(at), key))
    }

    pub fn clear(&mut self) {
        self.by_time.clear();
        self.by_key.clear();
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_reset_moves() {
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let mut timers = Timers::default();
        timers.set(TimerKey::AutoResolve(1), t(30));
        timers.set(TimerKey::AutoResolve(2), t(10));
        timers.set(TimerKey::AutoResolve(1), t(5));
        assert_eq!(timers.next(), Some(t(5)));
        assert_eq!(timers.pop_due(t(4)), None);
        assert_eq!(
            timers.pop_due(t(20)),
            Some((t(5), TimerKey::AutoResolve(1)))
        );
        assert_eq!(
            timers.pop_due(t(20)),
            Some((t(10), TimerKey::AutoResolve(2)))
        );
        assert!(timers.is_empty());
    }
}
