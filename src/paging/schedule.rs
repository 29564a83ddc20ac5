//! On-call schedules: participants take turns at each cron handoff counted from `start`;
//! overrides put someone else on call for a while.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

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
                    from: o.from.with_timezone(&Utc),
                    to: o.to.with_timezone(&Utc),
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
}
