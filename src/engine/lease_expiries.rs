//! When pushed alerts' leases run out: for each instant, the fingerprints whose lease was set
//! to end then, in the order they were set.
//!
//! Not in [`Timers`](super::timers::Timers): a push of new alerts sets thousands of leases,
//! mostly to a few instants (a sender stamps one `endsAt` on a whole batch). In `Timers` each
//! would be an insert at a random place among the timers of its instant, which are ordered
//! by key, and an entry in a hash map; here it is an append to its instant's list.
//!
//! A lease that moves or ends is not looked for: its old entry stays, and is skipped when its
//! instant comes, since the core's lease says when it ends now. Stale entries go all at once
//! when they outnumber the leases (see [`LeaseExpiries::needs_rebuild`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::timers::{nanos, time, Nanos};
use crate::signal::Fingerprint;

/// Stale entries tolerated beyond one per lease before a rebuild: a few leases moved often
/// do not rebuild the whole list each time.
const SLACK: usize = 1024;

#[derive(Default, Debug)]
pub struct LeaseExpiries {
    by_time: BTreeMap<Nanos, Vec<Fingerprint>>,
    /// Entries in `by_time`, stale ones included.
    entries: usize,
}

impl LeaseExpiries {
    /// The lease of `fingerprint` now ends at `at` (an entry it had before goes stale).
    pub fn add(&mut self, fingerprint: Fingerprint, at: DateTime<Utc>) {
        self.by_time.entry(nanos(at)).or_default().push(fingerprint);
        self.entries += 1;
    }

    /// The earliest instant with an entry (it may hold only stale ones).
    pub fn next(&self) -> Option<DateTime<Utc>> {
        self.by_time.keys().next().map(|at| time(*at))
    }

    /// Remove the earliest instant at or before `now` and return it with its fingerprints,
    /// in the order of their keys and each once (as timers of one instant fire).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> Option<(DateTime<Utc>, Vec<Fingerprint>)> {
        let first = self.by_time.first_entry()?;
        if *first.key() > nanos(now) {
            return None;
        }
        let (at, mut fingerprints) = first.remove_entry();
        self.entries -= fingerprints.len();
        fingerprints.sort_unstable();
        fingerprints.dedup();
        Some((time(at), fingerprints))
    }

    /// Do stale entries outnumber `leases` live ones (plus some slack)?
    pub fn needs_rebuild(&self, leases: usize) -> bool {
        self.entries > 2 * leases + SLACK
    }

    /// Start again from the leases as they are: one entry each.
    pub fn rebuild(&mut self, leases: impl Iterator<Item = (Fingerprint, DateTime<Utc>)>) {
        self.by_time.clear();
        self.entries = 0;
        for (fingerprint, at) in leases {
            self.add(fingerprint, at);
        }
    }

    /// Does the entry for an instant taken with [`take_due`](Self::take_due) still stand for
    /// a lease that ends at `ends`? (Times are kept to the nanosecond, as timers are.)
    pub fn is_current(taken_at: DateTime<Utc>, ends: DateTime<Utc>) -> bool {
        nanos(taken_at) == nanos(ends)
    }

    pub fn entries(&self) -> usize {
        self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn instants_come_earliest_first_with_their_fingerprints_sorted_once_each() {
        let mut expiries = LeaseExpiries::default();
        expiries.add(Fingerprint(9), t(20));
        expiries.add(Fingerprint(3), t(10));
        expiries.add(Fingerprint(7), t(10));
        expiries.add(Fingerprint(3), t(10));
        assert_eq!(expiries.next(), Some(t(10)));
        assert_eq!(expiries.take_due(t(9)), None);
        assert_eq!(
            expiries.take_due(t(30)),
            Some((t(10), vec![Fingerprint(3), Fingerprint(7)]))
        );
        assert_eq!(expiries.entries(), 1);
        assert_eq!(
            expiries.take_due(t(30)),
            Some((t(20), vec![Fingerprint(9)]))
        );
        assert_eq!(expiries.take_due(t(30)), None);
        assert_eq!(expiries.next(), None);
    }

    #[test]
    fn a_rebuild_keeps_one_entry_per_lease() {
        let mut expiries = LeaseExpiries::default();
        for i in 0..3000 {
            // One lease moved 3,000 times: every entry but the last is stale.
            expiries.add(Fingerprint(1), t(i));
        }
        assert!(expiries.needs_rebuild(1));
        assert!(!expiries.needs_rebuild(1500));
        expiries.rebuild([(Fingerprint(1), t(2999))].into_iter());
        assert_eq!(expiries.entries(), 1);
        assert_eq!(expiries.next(), Some(t(2999)));
    }

    #[test]
    fn an_entry_is_current_only_for_the_instant_its_lease_ends() {
        let at = DateTime::from_timestamp(100, 123_456_789).unwrap();
        assert!(LeaseExpiries::is_current(at, at));
        assert!(!LeaseExpiries::is_current(at, t(100)));
    }
}
