//! On-call schedules: participants take turns at each cron handoff counted from `start`;
//! overrides put someone else on call for a while.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::config::{CronSpec, ScheduleConfig};

#[derive(Clone, Debug)]
pub struct Rotation {
    pub name: String,
    pub tz: Tz,
    pub handoff: CronSpec,
    pub start: DateTime<Utc>,
    pub participants: Vec<String>,
    pub overrides: Vec<Override>,
}

#[derive(Clone, Debug)]
pub struct Override {
    pub responder: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// An override made at run time (`POST /api/v1/schedules/{name}/overrides`), as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleOverride {
    pub id: String,
    pub schedule: String,
    pub responder: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl ScheduleOverride {
    pub fn as_override(&self) -> Override {
        Override {
            responder: self.responder.clone(),
            from: self.start,
            to: self.end,
        }
    }
}

/// Who is on call, and for how long.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnCall {
    pub schedule: String,
    pub responder: String,
    pub since: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// Handoff counting is bounded; a schedule with handoffs every second for years is refused
/// here rather than hanging the engine.
const MAX_HANDOFFS: usize = 2_000_000;

impl Rotation {
    pub fn new(config: &ScheduleConfig) -> Self {
        Rotation {
            name: config.name.clone(),
            tz: config.timezone.0,
            handoff: config.handoff.clone(),
            start: config.start.with_timezone(&Utc),
            participants: config.participants.clone(),
            overrides: config
                .overrides
                .iter()
                .map(|o| Override {
                    responder: o.responder.clone(),
                    from: o.start.with_timezone(&Utc),
                    to: o.end.with_timezone(&Utc),
                })
                .collect(),
        }
    }

    /// The regular rotation at `t`: (participant index, since, until).
    fn rotation_at(
        &self,
        t: DateTime<Utc>,
    ) -> Option<(usize, DateTime<Utc>, Option<DateTime<Utc>>)> {
        if self.participants.is_empty() || t < self.start {
            return None;
        }
        let mut handoffs = 0usize;
        let mut since = self.start;
        let mut cursor = self.start;
        loop {
            match self.handoff.next_after(self.tz, cursor) {
                Some(next) if next <= t => {
                    handoffs += 1;
                    since = next;
                    cursor = next;
                    if handoffs > MAX_HANDOFFS {
                        return None;
                    }
                }
                other => return Some((handoffs % self.participants.len(), since, other)),
            }
        }
    }

    /// Who is on call at `t`, overrides first (the last listed wins when they overlap).
    pub fn on_call(&self, t: DateTime<Utc>) -> Option<OnCall> {
        if let Some(o) = self
            .overrides
            .iter()
            .rev()
            .find(|o| o.from <= t && t < o.to)
        {
            return Some(OnCall {
                schedule: self.name.clone(),
                responder: o.responder.clone(),
                since: o.from,
                until: Some(o.to),
            });
        }
        let (index, since, until) = self.rotation_at(t)?;
        // An override that starts later cuts this turn short; one that just ended starts it.
        let next_override = self
            .overrides
            .iter()
            .map(|o| o.from)
            .filter(|from| *from > t)
            .min();
        let until = match (until, next_override) {
            (Some(u), Some(o)) => Some(u.min(o)),
            (u, o) => u.or(o),
        };
        let since = self
            .overrides
            .iter()
            .map(|o| o.to)
            .filter(|to| *to <= t && *to > since)
            .max()
            .unwrap_or(since);
        Some(OnCall {
            schedule: self.name.clone(),
            responder: self.participants[index].clone(),
            since,
            until,
        })
    }
}

impl Rotation {
    /// The next moment strictly after `t` when who is on call may change: the rotation's
    /// start, a handoff, or an override's start or end.
    pub fn next_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut next = self
            .handoff
            .next_after(self.tz, t.max(self.start))
            .filter(|_| !self.participants.is_empty());
        let mut consider = |at: DateTime<Utc>| {
            if at > t && next.is_none_or(|n| at < n) {
                next = Some(at);
            }
        };
        if !self.participants.is_empty() {
            consider(self.start);
        }
        for o in &self.overrides {
            consider(o.from);
            consider(o.to);
        }
        next
    }

    /// Every turn on call that overlaps `[from, to)`, in order (the first may have begun
    /// before `from`); a turn without an end is the last. Bounded to 10000.
    pub fn shifts_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<OnCall> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..10_000 {
            match self.on_call(t) {
                Some(shift) => {
                    let end = shift.until;
                    out.push(shift);
                    match end {
                        Some(end) if end < to => t = end,
                        _ => break,
                    }
                }
                None => match self.next_change(t) {
                    Some(next) if next < to => t = next,
                    _ => break,
                },
            }
        }
        out
    }

    /// The shifts that begin in `(from, to]`, in order: each time someone else (or someone,
    /// after nobody) comes on call. Bounded to 1000.
    pub fn shifts_beginning(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<OnCall> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..1000 {
            let Some(at) = self.next_change(t).filter(|at| *at <= to) else {
                break;
            };
            if let Some(now) = self.on_call(at) {
                let before = self.on_call(at - chrono::Duration::milliseconds(1));
                if before.map(|b| b.responder) != Some(now.responder.clone()) {
                    out.push(now);
                }
            }
            t = at;
        }
        out
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

    fn weekly() -> Rotation {
        Rotation {
            name: "storage-primary".into(),
            tz: "Asia/Shanghai".parse().unwrap(),
            handoff: "0 0 9 * * Mon".parse().unwrap(),
            start: utc("2026-01-05T09:00:00+08:00"),
            participants: vec!["alice".into(), "bob".into()],
            overrides: vec![],
        }
    }

    #[test]
    fn weekly_rotation_takes_turns() {
        let r = weekly();
        let at = |t| r.on_call(utc(t)).unwrap().responder;
        assert_eq!(at("2026-01-05T09:00:00+08:00"), "alice");
        assert_eq!(at("2026-01-12T08:59:59+08:00"), "alice");
        assert_eq!(at("2026-01-12T09:00:00+08:00"), "bob");
        assert_eq!(at("2026-01-19T09:00:00+08:00"), "alice");
        assert!(r.on_call(utc("2026-01-01T00:00:00Z")).is_none());
        let oc = r.on_call(utc("2026-01-13T00:00:00Z")).unwrap();
        assert_eq!(oc.since, utc("2026-01-12T09:00:00+08:00"));
        assert_eq!(oc.until, Some(utc("2026-01-19T09:00:00+08:00")));
    }

    #[test]
    fn override_inside_a_turn() {
        let mut r = weekly();
        r.overrides.push(Override {
            responder: "carol".into(),
            from: utc("2026-01-07T18:00:00+08:00"),
            to: utc("2026-01-08T09:00:00+08:00"),
        });
        let before = r.on_call(utc("2026-01-07T12:00:00+08:00")).unwrap();
        assert_eq!(before.responder, "alice");
        assert_eq!(before.until, Some(utc("2026-01-07T18:00:00+08:00")));
        let during = r.on_call(utc("2026-01-07T20:00:00+08:00")).unwrap();
        assert_eq!(during.responder, "carol");
        let after = r.on_call(utc("2026-01-08T10:00:00+08:00")).unwrap();
        assert_eq!(after.responder, "alice");
        assert_eq!(after.since, utc("2026-01-08T09:00:00+08:00"));
    }

    #[test]
    fn shifts_begin_at_handoffs_and_overrides_and_not_when_the_same_person_stays() {
        let mut r = weekly();
        r.overrides.push(Override {
            responder: "carol".into(),
            from: utc("2026-01-07T18:00:00+08:00"),
            to: utc("2026-01-08T09:00:00+08:00"),
        });
        // alice covers her own turn's last hours: no new shift for her.
        r.overrides.push(Override {
            responder: "alice".into(),
            from: utc("2026-01-09T00:00:00+08:00"),
            to: utc("2026-01-10T00:00:00+08:00"),
        });
        let shifts = r.shifts_beginning(
            utc("2026-01-05T00:00:00Z"),
            utc("2026-01-19T09:00:00+08:00"),
        );
        let got: Vec<(String, DateTime<Utc>)> =
            shifts.into_iter().map(|s| (s.responder, s.since)).collect();
        assert_eq!(
            got,
            vec![
                ("alice".to_string(), utc("2026-01-05T09:00:00+08:00")),
                ("carol".to_string(), utc("2026-01-07T18:00:00+08:00")),
                ("alice".to_string(), utc("2026-01-08T09:00:00+08:00")),
                ("bob".to_string(), utc("2026-01-12T09:00:00+08:00")),
                ("alice".to_string(), utc("2026-01-19T09:00:00+08:00")),
            ]
        );
        assert_eq!(
            r.next_change(utc("2026-01-12T09:00:00+08:00")),
            Some(utc("2026-01-19T09:00:00+08:00"))
        );
    }

    // ----- daylight saving time --------------------------------------------------------
    // 2026: the US springs forward on Mar 8 (02:00 EST -> 03:00 EDT) and falls back on Nov 1
    // (02:00 EDT -> 01:00 EST); the EU on Mar 29 (02:00 CET -> 03:00 CEST, at 01:00Z) and
    // Oct 25 (03:00 CEST -> 02:00 CET, at 01:00Z).

    fn rotation(tz: &str, handoff: &str, start: &str, participants: &[&str]) -> Rotation {
        Rotation {
            name: "r".into(),
            tz: tz.parse().unwrap(),
            handoff: handoff.parse().unwrap(),
            start: utc(start),
            participants: participants.iter().map(|p| p.to_string()).collect(),
            overrides: vec![],
        }
    }

    /// (responder, since, until) at `t`.
    fn turn(r: &Rotation, t: &str) -> (String, DateTime<Utc>, Option<DateTime<Utc>>) {
        let oc = r.on_call(utc(t)).unwrap();
        (oc.responder, oc.since, oc.until)
    }

    /// The local wall-clock time of `t` in `tz`, as "HH:MM".
    fn wall(tz: &str, t: DateTime<Utc>) -> String {
        let tz: Tz = tz.parse().unwrap();
        t.with_timezone(&tz).format("%H:%M").to_string()
    }

    #[test]
    fn new_york_daily_handoff_stays_at_nine_across_spring_forward() {
        let r = rotation(
            "America/New_York",
            "0 0 9 * * *",
            "2026-03-05T09:00:00-05:00",
            &["ann", "ben", "cat"],
        );
        // Mar 7 09:00 EST = 14:00Z (cat's turn); Mar 8 09:00 EDT = 13:00Z: only 23 hours later.
        assert_eq!(
            turn(&r, "2026-03-08T12:59:00Z"),
            (
                "cat".into(),
                utc("2026-03-07T14:00:00Z"),
                Some(utc("2026-03-08T13:00:00Z"))
            )
        );
        assert_eq!(
            turn(&r, "2026-03-08T13:00:00Z"),
            (
                "ann".into(),
                utc("2026-03-08T13:00:00Z"),
                Some(utc("2026-03-09T13:00:00Z"))
            )
        );
        // Every handoff of the week is at 09:00 on the wall clock.
        let mut t = utc("2026-03-05T15:00:00Z");
        for _ in 0..7 {
            let oc = r.on_call(t).unwrap();
            assert_eq!(wall("America/New_York", oc.since), "09:00", "{oc:?}");
            assert_eq!(
                wall("America/New_York", oc.until.unwrap()),
                "09:00",
                "{oc:?}"
            );
            t = oc.until.unwrap();
        }
    }

    #[test]
    fn new_york_handoff_at_a_time_that_does_not_exist_happens_when_the_clock_resumes() {
        // 02:30 does not exist on Mar 8: that handoff happens at 03:00 EDT (07:00Z).
        let r = rotation(
            "America/New_York",
            "0 30 2 * * *",
            "2026-03-06T02:30:00-05:00",
            &["ann", "ben"],
        );
        assert_eq!(turn(&r, "2026-03-06T12:00:00Z").0, "ann");
        assert_eq!(
            turn(&r, "2026-03-08T06:59:00Z"),
            (
                "ben".into(),
                utc("2026-03-07T07:30:00Z"),
                Some(utc("2026-03-08T07:00:00Z"))
            )
        );
        assert_eq!(
            turn(&r, "2026-03-08T07:00:00Z"),
            (
                "ann".into(),
                utc("2026-03-08T07:00:00Z"),
                // Back at 02:30, now EDT.
                Some(utc("2026-03-09T06:30:00Z"))
            )
        );
        assert_eq!(turn(&r, "2026-03-09T06:30:00Z").0, "ben");
    }

    #[test]
    fn new_york_handoff_at_a_time_that_exists_twice_happens_once() {
        // 01:30 happens twice on Nov 1: 05:30Z (EDT) and 06:30Z (EST). One handoff, the first.
        let r = rotation(
            "America/New_York",
            "0 30 1 * * *",
            "2026-10-30T01:30:00-04:00",
            &["ann", "ben"],
        );
        assert_eq!(turn(&r, "2026-10-31T12:00:00Z").0, "ben");
        let first = turn(&r, "2026-11-01T05:30:00Z");
        assert_eq!(
            first,
            (
                "ann".into(),
                utc("2026-11-01T05:30:00Z"),
                // The second 01:30 passes the pager to nobody: ann keeps it for 25 hours.
                Some(utc("2026-11-02T06:30:00Z"))
            )
        );
        assert_eq!(turn(&r, "2026-11-01T06:45:00Z"), first);
        assert_eq!(turn(&r, "2026-11-02T06:30:00Z").0, "ben");
    }

    #[test]
    fn new_york_daily_handoff_stays_at_nine_across_fall_back() {
        let r = rotation(
            "America/New_York",
            "0 0 9 * * *",
            "2026-10-30T09:00:00-04:00",
            &["ann", "ben"],
        );
        // Oct 31 09:00 EDT = 13:00Z; Nov 1 09:00 EST = 14:00Z: a 25-hour turn.
        assert_eq!(
            turn(&r, "2026-11-01T12:00:00Z"),
            (
                "ben".into(),
                utc("2026-10-31T13:00:00Z"),
                Some(utc("2026-11-01T14:00:00Z"))
            )
        );
        assert_eq!(turn(&r, "2026-11-01T14:00:00Z").0, "ann");
    }

    #[test]
    fn berlin_daily_handoff_stays_at_nine_across_both_changes() {
        let r = rotation(
            "Europe/Berlin",
            "0 0 9 * * *",
            "2026-03-27T09:00:00+01:00",
            &["ann", "ben"],
        );
        // Mar 28 09:00 CET = 08:00Z; Mar 29 09:00 CEST = 07:00Z.
        assert_eq!(
            turn(&r, "2026-03-29T06:59:00Z"),
            (
                "ben".into(),
                utc("2026-03-28T08:00:00Z"),
                Some(utc("2026-03-29T07:00:00Z"))
            )
        );
        assert_eq!(turn(&r, "2026-03-29T07:00:00Z").0, "ann");
        // Oct 24 09:00 CEST = 07:00Z; Oct 25 09:00 CET = 08:00Z.
        let before = turn(&r, "2026-10-25T07:30:00Z");
        assert_eq!(before.1, utc("2026-10-24T07:00:00Z"));
        assert_eq!(before.2, Some(utc("2026-10-25T08:00:00Z")));
        let after = turn(&r, "2026-10-25T08:00:00Z");
        assert_eq!(after.1, utc("2026-10-25T08:00:00Z"));
        assert_ne!(before.0, after.0, "the handoff passes the pager on");
        // 214 daily turns from Mar 27 to Oct 26: ann and ben alternate without a skip.
        let mut t = utc("2026-03-27T12:00:00Z");
        let mut who = Vec::new();
        while t < utc("2026-10-26T12:00:00Z") {
            let oc = r.on_call(t).unwrap();
            assert_eq!(wall("Europe/Berlin", oc.since), "09:00", "{oc:?}");
            who.push(oc.responder);
            t = oc.until.unwrap();
        }
        assert_eq!(who.len(), 214);
        assert!(who.windows(2).all(|w| w[0] != w[1]), "{who:?}");
    }

    #[test]
    fn berlin_handoffs_at_missing_and_repeated_times() {
        let r = rotation(
            "Europe/Berlin",
            "0 30 2 * * *",
            "2026-03-27T02:30:00+01:00",
            &["ann", "ben"],
        );
        // Mar 29: 02:30 does not exist; the handoff is at 03:00 CEST = 01:00Z.
        assert_eq!(
            turn(&r, "2026-03-29T00:59:00Z"),
            (
                "ben".into(),
                utc("2026-03-28T01:30:00Z"),
                Some(utc("2026-03-29T01:00:00Z"))
            )
        );
        assert_eq!(turn(&r, "2026-03-29T01:00:00Z").0, "ann");
        assert_eq!(
            turn(&r, "2026-03-30T00:30:00Z").1,
            utc("2026-03-30T00:30:00Z")
        );
        // Oct 25: 02:30 happens at 00:30Z (CEST) and again at 01:30Z (CET); one handoff.
        let first = turn(&r, "2026-10-25T00:30:00Z");
        assert_eq!(first.1, utc("2026-10-25T00:30:00Z"));
        assert_eq!(first.2, Some(utc("2026-10-26T01:30:00Z")));
        assert_eq!(turn(&r, "2026-10-25T01:45:00Z"), first);
        assert_ne!(turn(&r, "2026-10-26T01:30:00Z").0, first.0);
    }

    #[test]
    fn override_across_the_spring_forward_gap() {
        let mut r = rotation(
            "America/New_York",
            "0 0 9 * * *",
            "2026-03-05T09:00:00-05:00",
            &["ann", "ben", "cat"],
        );
        // carol covers 01:00 EST to 04:00 EDT: two hours of real time across the gap.
        r.overrides.push(Override {
            responder: "carol".into(),
            from: utc("2026-03-08T01:00:00-05:00"),
            to: utc("2026-03-08T04:00:00-04:00"),
        });
        assert_eq!(
            turn(&r, "2026-03-08T05:00:00Z"),
            (
                "cat".into(),
                utc("2026-03-07T14:00:00Z"),
                Some(utc("2026-03-08T06:00:00Z"))
            )
        );
        assert_eq!(
            turn(&r, "2026-03-08T07:30:00Z"),
            (
                "carol".into(),
                utc("2026-03-08T06:00:00Z"),
                Some(utc("2026-03-08T08:00:00Z"))
            )
        );
        assert_eq!(
            turn(&r, "2026-03-08T08:00:00Z"),
            (
                "cat".into(),
                utc("2026-03-08T08:00:00Z"),
                Some(utc("2026-03-08T13:00:00Z"))
            )
        );
        // The override does not shift the rotation: ann takes over at 09:00 EDT as planned.
        assert_eq!(turn(&r, "2026-03-08T13:00:00Z").0, "ann");
    }
}
