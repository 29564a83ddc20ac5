//! Time windows: a cron start and a duration in a zone (`business-hours`, `maintenance`).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{CronSpec, Duration, TimeWindowConfig};

#[derive(Clone, Debug)]
pub struct Window {
    pub name: String,
    pub tz: Tz,
    pub start: CronSpec,
    pub duration: Duration,
}

impl Window {
    pub fn new(config: &TimeWindowConfig) -> Self {
        Window {
            name: config.name.clone(),
            tz: config.timezone.0,
            start: config.start.clone(),
            duration: config.duration,
        }
    }

    /// If open at `t`, when this opening ends (later starts that overlap extend it).
    pub fn open_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let last = self.start.last_at_or_before(self.tz, t)?;
        let end = last + self.duration.chrono();
        if end <= t {
            return None;
        }
        Some(self.extend_from(last, end))
    }

    fn extend_from(&self, mut from: DateTime<Utc>, mut end: DateTime<Utc>) -> DateTime<Utc> {
        for _ in 0..1000 {
            match self.start.next_after(self.tz, from) {
                Some(next) if next <= end => {
                    end = end.max(next + self.duration.chrono());
                    from = next;
                }
                _ => break,
            }
        }
        end
    }

    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.open_until(t).is_some()
    }

    /// The next time it opens strictly after `t` (or `t` itself when open).
    pub fn next_open(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            Some(t)
        } else {
            self.start.next_after(self.tz, t)
        }
    }
}

/// Several windows acting as one: open when any is.
#[derive(Clone, Debug, Default)]
pub struct WindowSet<'a> {
    pub windows: Vec<&'a Window>,
}

impl WindowSet<'_> {
    /// No windows means always open.
    pub fn always(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        self.always() || self.windows.iter().any(|w| w.is_open(t))
    }

    /// When the current opening (of the union) ends; None when closed or always open.
    pub fn open_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.always() {
            return None;
        }
        let mut end = self.windows.iter().filter_map(|w| w.open_until(t)).max()?;
        // Back-to-back or overlapping windows keep it open.
        for _ in 0..100 {
            match self.windows.iter().filter_map(|w| w.open_until(end)).max() {
                Some(later) if later > end => end = later,
                _ => break,
            }
        }
        Some(end)
    }

    pub fn next_open(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.is_open(t) {
            return Some(t);
        }
        self.windows.iter().filter_map(|w| w.next_open(t)).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn business_hours() -> Window {
        Window {
            name: "bh".into(),
            tz: "Asia/Shanghai".parse().unwrap(),
            start: "0 0 9 * * Mon-Fri".parse().unwrap(),
            duration: "9h".parse().unwrap(),
        }
    }

    #[test]
    fn business_hours_open_and_close() {
        let w = business_hours();
        // Monday 2026-01-12 10:00 Shanghai = 02:00Z
        assert_eq!(
            w.open_until(utc("2026-01-12T02:00:00Z")),
            Some(utc("2026-01-12T10:00:00Z"))
        );
        // Monday 20:00 Shanghai = 12:00Z: closed, opens Tuesday 09:00 = 01:00Z
        assert!(!w.is_open(utc("2026-01-12T12:00:00Z")));
        assert_eq!(
            w.next_open(utc("2026-01-12T12:00:00Z")),
            Some(utc("2026-01-13T01:00:00Z"))
        );
        // Saturday: opens Monday
        assert_eq!(
            w.next_open(utc("2026-01-17T04:00:00Z")),
            Some(utc("2026-01-19T01:00:00Z"))
        );
    }

    #[test]
    fn union_of_windows() {
        let a = business_hours();
        let b = Window {
            name: "weekend".into(),
            tz: "UTC".parse().unwrap(),
            start: "0 0 0 * * Sat".parse().unwrap(),
            duration: "48h".parse().unwrap(),
        };
        let set = WindowSet {
            windows: vec![&a, &b],
        };
        assert!(set.is_open(utc("2026-01-17T04:00:00Z")));
        assert!(!set.is_open(utc("2026-01-16T12:00:00Z")));
        assert_eq!(
            set.next_open(utc("2026-01-16T12:00:00Z")),
            Some(utc("2026-01-17T00:00:00Z"))
        );
        // Weekend ends Monday 00:00Z; business hours begin 01:00Z.
        assert_eq!(
            set.open_until(utc("2026-01-18T12:00:00Z")),
            Some(utc("2026-01-19T00:00:00Z"))
        );
    }

    #[test]
    fn business_hours_in_new_york_follow_the_wall_clock_across_dst() {
        let w = Window {
            name: "bh".into(),
            tz: "America/New_York".parse().unwrap(),
            start: "0 0 9 * * Mon-Fri".parse().unwrap(),
            duration: "8h".parse().unwrap(),
        };
        // Friday Mar 6 09:00 EST = 14:00Z; the clocks change on Sunday Mar 8; Monday Mar 9
        // opens at 09:00 EDT = 13:00Z.
        assert_eq!(
            w.open_until(utc("2026-03-06T15:00:00Z")),
            Some(utc("2026-03-06T22:00:00Z"))
        );
        assert_eq!(
            w.next_open(utc("2026-03-07T12:00:00Z")),
            Some(utc("2026-03-09T13:00:00Z"))
        );
        assert!(!w.is_open(utc("2026-03-09T12:59:00Z")));
        assert_eq!(
            w.open_until(utc("2026-03-09T13:00:00Z")),
            Some(utc("2026-03-09T21:00:00Z"))
        );
        // Fall back on Sunday Nov 1: Monday Nov 2 opens at 09:00 EST = 14:00Z.
        assert_eq!(
            w.next_open(utc("2026-10-31T12:00:00Z")),
            Some(utc("2026-11-02T14:00:00Z"))
        );
    }

    #[test]
    fn a_window_starting_at_a_missing_or_repeated_time_in_berlin() {
        let w = Window {
            name: "nightly".into(),
            tz: "Europe/Berlin".parse().unwrap(),
            start: "0 30 2 * * *".parse().unwrap(),
            duration: "1h".parse().unwrap(),
        };
        // Mar 29: 02:30 does not exist; the window opens at 03:00 CEST (01:00Z).
        assert!(!w.is_open(utc("2026-03-29T00:59:00Z")));
        assert_eq!(
            w.next_open(utc("2026-03-28T23:00:00Z")),
            Some(utc("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            w.open_until(utc("2026-03-29T01:30:00Z")),
            Some(utc("2026-03-29T02:00:00Z"))
        );
        // Oct 25: 02:30 happens twice; the window opens once, at the first (00:30Z), for
        // its hour.
        assert_eq!(
            w.open_until(utc("2026-10-25T00:45:00Z")),
            Some(utc("2026-10-25T01:30:00Z"))
        );
        assert!(!w.is_open(utc("2026-10-25T01:45:00Z")));
        assert_eq!(
            w.next_open(utc("2026-10-25T01:45:00Z")),
            Some(utc("2026-10-26T01:30:00Z"))
        );
    }
}
