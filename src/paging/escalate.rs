//! One incident's escalation: which level is paged when, on a clock that may pause outside
//! the route's time windows. Pure: the engine asks it what to page at `now`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::page::PageEvent;
use super::window::WindowSet;
use crate::config::{Duration, EscalationPolicyConfig};

/// The policy as it was when paging began; a reload does not rewrite a running escalation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySnapshot {
    pub name: String,
    pub levels: Vec<LevelSnapshot>,
    pub repeat: u32,
    pub repeat_after: Duration,
    pub ack_timeout: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelSnapshot {
    pub after: Duration,
    pub notify: Vec<String>,
}

impl PolicySnapshot {
    pub fn new(config: &EscalationPolicyConfig) -> Self {
        let longest = config
            .levels
            .iter()
            .map(|l| l.after)
            .max()
            .unwrap_or_default();
        PolicySnapshot {
            name: config.name.clone(),
            levels: config
                .levels
                .iter()
                .map(|l| LevelSnapshot {
                    after: l.after,
                    notify: l.notify.clone(),
                })
                .collect(),
            repeat: config.repeat,
            // Run the levels again after the longest gap between levels (5m if all are 0s).
            repeat_after: config.repeat_after.unwrap_or(if longest.is_zero() {
                Duration::from_secs(300)
            } else {
                longest
            }),
            ack_timeout: config.ack_timeout,
        }
    }
}

/// A level to page now, and with which event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LevelPage {
    pub level: usize,
    pub event: PageEvent,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Escalation {
    /// Shared by every escalation that started under the same config.
    pub policy: Arc<PolicySnapshot>,
    /// Windows outside which the escalation's clock is paused.
    pub active_during: Vec<String>,
    /// The first page's event: `triggered`, or `severity_raised` after a re-route.
    pub first_event: PageEvent,
    pub next_level: usize,
    pub round: u32,
    /// When `next_level` is due; None when exhausted, acknowledged or paused.
    pub due: Option<DateTime<Utc>>,
    /// Time left until the next level while the window is closed.
    pub paused_remaining_ms: Option<i64>,
    pub last_paged_level: Option<usize>,
    pub levels_paged: u32,
    pub acked: bool,
    pub ack_lapses_at: Option<DateTime<Utc>>,
}

impl Escalation {
    pub fn start(
        policy: Arc<PolicySnapshot>,
        active_during: Vec<String>,
        first_event: PageEvent,
        now: DateTime<Utc>,
    ) -> Self {
        let first_after = policy.levels.first().map(|l| l.after).unwrap_or_default();
        Escalation {
            policy,
            active_during,
            first_event,
            next_level: 0,
            round: 0,
            due: Some(now + first_after.chrono()),
            paused_remaining_ms: None,
            last_paged_level: None,
            levels_paged: 0,
            acked: false,
            ack_lapses_at: None,
        }
    }

    /// An escalation that begins while the incident is acknowledged (a rise in severity):
    /// its first level counts as paged at `now`, and the later ones wait for the
    /// acknowledgement made at `acked_at` to lapse by this policy's `ack_timeout`.
    pub fn start_acknowledged(
        policy: Arc<PolicySnapshot>,
        active_during: Vec<String>,
        now: DateTime<Utc>,
        acked_at: DateTime<Utc>,
    ) -> Self {
        let mut escalation =
            Escalation::start(policy, active_during, PageEvent::SeverityRaised, now);
        escalation.last_paged_level = Some(0);
        escalation.levels_paged = 1;
        escalation.schedule_after(0, now);
        escalation.acknowledge(acked_at);
        escalation
    }

    /// The incident reopened at `now` after it resolved at `resolved_at`: escalation goes on
    /// from the level it had reached, with the wait that was left at the resolve, and an
    /// acknowledgement (which ended with the resolve) no longer holds.
    pub fn resume(&mut self, resolved_at: DateTime<Utc>, now: DateTime<Utc>) {
        self.acked = false;
        self.ack_lapses_at = None;
        if let Some(due) = self.due {
            self.due = Some(now + (due - resolved_at).max(chrono::Duration::zero()));
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused_remaining_ms.is_some()
    }

    /// Page whatever is due at `now`.
    pub fn advance(&mut self, now: DateTime<Utc>, windows: &WindowSet) -> Vec<LevelPage> {
        let mut out = Vec::new();
        if self.acked {
            return out;
        }
        if let Some(remaining) = self.paused_remaining_ms {
            if !windows.is_open(now) {
                return out;
            }
            self.due = Some(now + chrono::Duration::milliseconds(remaining));
            self.paused_remaining_ms = None;
        }
        let bound = self.policy.levels.len() * (self.policy.repeat as usize + 1) + 1;
        for _ in 0..bound {
            let Some(due) = self.due else { break };
            if !windows.is_open(now) {
                // The window closed: keep what was left of the wait for when it opens again.
                self.paused_remaining_ms = Some((due - now).num_milliseconds().max(0));
                self.due = None;
                break;
            }
            if due > now {
                break;
            }
            let level = self.next_level;
            let event = if self.levels_paged == 0 {
                self.first_event
            } else {
                PageEvent::Escalated
            };
            out.push(LevelPage { level, event });
            self.last_paged_level = Some(level);
            self.levels_paged += 1;
            self.schedule_after(level, now);
        }
        out
    }

    /// Set the next level due after `level` was paged at `now`.
    fn schedule_after(&mut self, level: usize, now: DateTime<Utc>) {
        let next = level + 1;
        if next < self.policy.levels.len() {
            self.next_level = next;
            self.due = Some(now + self.policy.levels[next].after.chrono());
        } else if self.round < self.policy.repeat {
            self.round += 1;
            self.next_level = 0;
            self.due = Some(now + self.policy.repeat_after.chrono());
        } else {
            self.due = None;
        }
    }

    /// When the engine should look at this escalation again.
    pub fn wake_at(&self, now: DateTime<Utc>, windows: &WindowSet) -> Option<DateTime<Utc>> {
        if self.acked {
            return self.ack_lapses_at;
        }
        if self.paused_remaining_ms.is_some() {
            return windows.next_open(now).map(|t| t.max(now));
        }
        let due = self.due?;
        match windows.open_until(now) {
            Some(closes) if closes < due => Some(closes),
            _ => Some(due),
        }
    }

    pub fn acknowledge(&mut self, now: DateTime<Utc>) {
        self.acked = true;
        self.ack_lapses_at = self.policy.ack_timeout.map(|d| now + d.chrono());
    }

    /// The ack lapsed: page the last level again and carry on from there.
    pub fn lapse(&mut self, now: DateTime<Utc>, windows: &WindowSet) -> Vec<LevelPage> {
        self.acked = false;
        self.ack_lapses_at = None;
        self.paused_remaining_ms = None;
        self.next_level = self.last_paged_level.unwrap_or(0);
        self.due = Some(now);
        self.advance(now, windows)
    }

    /// A page of the last level could not be delivered: go on to the next level now (or,
    /// outside the route's windows, as soon as they open).
    pub fn hurry(&mut self, now: DateTime<Utc>) {
        if self.acked {
            return;
        }
        if self.due.is_some_and(|due| due > now) {
            self.due = Some(now);
        }
        // A page given up after the window closed: the wait left for the next level is
        // over too, so it is paged when the window opens, not a full delay later.
        if self.paused_remaining_ms.is_some() {
            self.paused_remaining_ms = Some(0);
        }
    }

    /// A person escalates now: the level after the last one paged (the first when none
    /// was) is paged at once, even while acknowledged or outside the route's windows, and
    /// escalation goes on from it. `None` when the policy has no such level.
    pub fn escalate_now(&mut self, now: DateTime<Utc>) -> Option<usize> {
        let level = self.last_paged_level.map_or(0, |l| l + 1);
        if level >= self.policy.levels.len() {
            return None;
        }
        self.paused_remaining_ms = None;
        self.last_paged_level = Some(level);
        self.levels_paged += 1;
        self.schedule_after(level, now);
        Some(level)
    }

    /// The level paged now and the one after it (for `response_breached`).
    pub fn current_and_next(&self) -> Vec<usize> {
        let current = self.last_paged_level.unwrap_or(0);
        let mut levels = vec![current];
        if current + 1 < self.policy.levels.len() {
            levels.push(current + 1);
        }
        levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::window::Window;

    fn t(mins: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_571_200 + mins * 60, 0).unwrap() // 2026-01-05T00:00Z, a Monday
    }

    fn policy(repeat: u32) -> Arc<PolicySnapshot> {
        Arc::new(PolicySnapshot {
            name: "p".into(),
            levels: vec![
                LevelSnapshot {
                    after: Duration::ZERO,
                    notify: vec!["responder:a".into()],
                },
                LevelSnapshot {
                    after: Duration::from_secs(900),
                    notify: vec!["responder:b".into()],
                },
            ],
            repeat,
            repeat_after: Duration::from_secs(900),
            ack_timeout: Some(Duration::from_secs(1800)),
        })
    }

    fn always() -> WindowSet<'static> {
        WindowSet::default()
    }

    #[test]
    fn levels_then_repeat_then_done() {
        let mut e = Escalation::start(policy(1), vec![], PageEvent::Triggered, t(0));
        assert_eq!(
            e.advance(t(0), &always()),
            vec![LevelPage {
                level: 0,
                event: PageEvent::Triggered
            }]
        );
        assert_eq!(e.wake_at(t(0), &always()), Some(t(15)));
        assert_eq!(e.advance(t(14), &always()), vec![]);
        assert_eq!(
            e.advance(t(15), &always()),
            vec![LevelPage {
                level: 1,
                event: PageEvent::Escalated
            }]
        );
        assert_eq!(
            e.advance(t(30), &always()),
            vec![LevelPage {
                level: 0,
                event: PageEvent::Escalated
            }]
        );
        assert_eq!(
            e.advance(t(45), &always()),
            vec![LevelPage {
                level: 1,
                event: PageEvent::Escalated
            }]
        );
        assert_eq!(e.wake_at(t(45), &always()), None);
    }

    #[test]
    fn ack_stops_and_lapse_resumes() {
        let mut e = Escalation::start(policy(0), vec![], PageEvent::Triggered, t(0));
        e.advance(t(0), &always());
        e.acknowledge(t(5));
        assert_eq!(e.advance(t(20), &always()), vec![]);
        assert_eq!(e.wake_at(t(20), &always()), Some(t(35)));
        assert_eq!(
            e.lapse(t(35), &always()),
            vec![LevelPage {
                level: 0,
                event: PageEvent::Escalated
            }]
        );
        assert_eq!(e.wake_at(t(35), &always()), Some(t(50)));
    }

    #[test]
    fn paused_outside_window() {
        // Window 09:00-10:00 UTC daily.
        let w = Window {
            name: "w".into(),
            tz: "UTC".parse().unwrap(),
            start: "0 0 9 * * *".parse().unwrap(),
            duration: Duration::from_secs(3600),
        };
        let set = WindowSet { windows: vec![&w] };
        // Opened at 08:00: nothing until 09:00.
        let mut e = Escalation::start(policy(0), vec!["w".into()], PageEvent::Triggered, t(8 * 60));
        assert_eq!(e.advance(t(8 * 60), &set), vec![]);
        assert_eq!(e.wake_at(t(8 * 60), &set), Some(t(9 * 60)));
        assert_eq!(e.advance(t(9 * 60), &set).len(), 1);
        // Level 1 is due 09:15.
        assert_eq!(e.wake_at(t(9 * 60), &set), Some(t(9 * 60 + 15)));

        // Opened 09:50: level 0 at once, level 1 due 10:05 but the window closes at 10:00,
        // leaving 5 minutes for tomorrow 09:05.
        let mut e = Escalation::start(
            policy(0),
            vec!["w".into()],
            PageEvent::Triggered,
            t(9 * 60 + 50),
        );
        assert_eq!(e.advance(t(9 * 60 + 50), &set).len(), 1);
        assert_eq!(e.wake_at(t(9 * 60 + 50), &set), Some(t(10 * 60)));
        assert_eq!(e.advance(t(10 * 60), &set), vec![]);
        assert_eq!(e.wake_at(t(10 * 60), &set), Some(t(33 * 60)));
        assert_eq!(e.advance(t(33 * 60), &set), vec![]);
        assert_eq!(e.wake_at(t(33 * 60), &set), Some(t(33 * 60 + 5)));
        assert_eq!(
            e.advance(t(33 * 60 + 5), &set),
            vec![LevelPage {
                level: 1,
                event: PageEvent::Escalated
            }]
        );
    }

    fn daily_nine_to_ten() -> Window {
        Window {
            name: "w".into(),
            tz: "UTC".parse().unwrap(),
            start: "0 0 9 * * *".parse().unwrap(),
            duration: Duration::from_secs(3600),
        }
    }

    #[test]
    fn a_lost_page_moves_on_to_the_next_level() {
        let mut e = Escalation::start(policy(0), vec![], PageEvent::Triggered, t(0));
        e.advance(t(0), &always());
        // Level 0's page was given up at 2m: level 1 now, not at 15m.
        e.hurry(t(2));
        assert_eq!(
            e.advance(t(2), &always()),
            vec![LevelPage {
                level: 1,
                event: PageEvent::Escalated
            }]
        );
        // Acknowledged: a late failure does not page anyone.
        let mut e = Escalation::start(policy(0), vec![], PageEvent::Triggered, t(0));
        e.advance(t(0), &always());
        e.acknowledge(t(1));
        e.hurry(t(2));
        assert_eq!(e.advance(t(2), &always()), vec![]);
    }

    #[test]
    fn a_page_lost_while_the_window_is_closed_pages_the_next_level_when_it_opens() {
        let w = daily_nine_to_ten();
        let set = WindowSet { windows: vec![&w] };
        // Level 0 at 09:55; the window closes at 10:00 with 10 of level 1's 15 minutes left.
        let mut e = Escalation::start(
            policy(0),
            vec!["w".into()],
            PageEvent::Triggered,
            t(9 * 60 + 55),
        );
        assert_eq!(e.advance(t(9 * 60 + 55), &set).len(), 1);
        assert_eq!(e.advance(t(10 * 60), &set), vec![]);
        assert!(e.is_paused());
        // Level 0's page is given up at 10:30 (after its retries): level 1 is paged the
        // moment the window opens again, not 10 minutes after.
        e.hurry(t(10 * 60 + 30));
        assert_eq!(e.advance(t(10 * 60 + 30), &set), vec![]);
        assert_eq!(e.wake_at(t(10 * 60 + 30), &set), Some(t(33 * 60)));
        assert_eq!(
            e.advance(t(33 * 60), &set),
            vec![LevelPage {
                level: 1,
                event: PageEvent::Escalated
            }]
        );
    }

    #[test]
    fn an_ack_given_while_paused_lapses_into_the_pause() {
        let w = daily_nine_to_ten();
        let set = WindowSet { windows: vec![&w] };
        // Opened at 08:00 (closed), acknowledged at 08:10, the ack lapses at 08:40: still
        // closed, so the first page waits for 09:00.
        let mut e = Escalation::start(policy(0), vec!["w".into()], PageEvent::Triggered, t(8 * 60));
        assert_eq!(e.advance(t(8 * 60), &set), vec![]);
        e.acknowledge(t(8 * 60 + 10));
        assert_eq!(e.wake_at(t(8 * 60 + 10), &set), Some(t(8 * 60 + 40)));
        assert_eq!(e.lapse(t(8 * 60 + 40), &set), vec![]);
        assert_eq!(e.wake_at(t(8 * 60 + 40), &set), Some(t(9 * 60)));
        assert_eq!(
            e.advance(t(9 * 60), &set),
            vec![LevelPage {
                level: 0,
                event: PageEvent::Triggered
            }]
        );
    }
}
