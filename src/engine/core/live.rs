//! Silences and on-call overrides made at run time: kept beside the config's paging, and
//! merged with it into what the paging decisions see.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Core, Reply};
use crate::engine::timers::TimerKey;
use crate::paging::notice::{self, Inherited};
use crate::paging::{decide, Page, ScheduleOverride, Silence};

impl Core {
    /// Merge the config's paging with the run-time silences (those not ended) and overrides.
    pub(super) fn rebuild_live(&mut self, now: DateTime<Utc>) {
        self.silences.retain(|s| s.ends_at > now);
        self.live_paging = Arc::new(self.setup.paging.with_live(&self.silences, &self.overrides));
    }

    pub(super) fn put_silence(&mut self, silence: Silence, now: DateTime<Utc>) -> Reply {
        self.silences.retain(|s| s.id != silence.id);
        self.silences.push(silence.clone());
        self.dirty.silences.push(silence);
        self.rebuild_live(now);
        // Incidents it holds from now are held at their next step; none is paged meanwhile
        // that the step would not page anyway.
        self.recheck_held(now);
        Reply::Done
    }

    pub(super) fn expire_silence(&mut self, id: &str, now: DateTime<Utc>) -> Reply {
        let Some(silence) = self.silences.iter_mut().find(|s| s.id == id) else {
            return Reply::NotFound(format!("no silence {id} in force"));
        };
        silence.expire(now);
        self.dirty.silences.push(silence.clone());
        self.rebuild_live(now);
        let held: Vec<i64> = self
            .paging
            .iter()
            .filter(|(_, p)| p.held_by.as_deref() == Some(id))
            .map(|(id, _)| *id)
            .collect();
        for incident_id in held {
            self.drive_escalation(incident_id, now);
        }
        Reply::Done
    }

    /// Step again each incident a run-time silence holds: one that took an impact the
    /// silence does not match pages now.
    pub(super) fn recheck_held(&mut self, now: DateTime<Utc>) {
        let held: BTreeSet<i64> = self
            .paging
            .iter()
            .filter(|(_, p)| p.held_by.is_some())
            .map(|(id, _)| *id)
            .collect();
        for incident_id in held {
            self.drive_escalation(incident_id, now);
        }
    }

    /// As [`Core::recheck_held`], for the incidents that took impacts since the changes
    /// were last taken (a batch of signals): no scan of every open incident per batch.
    pub(super) fn recheck_linked(&mut self, now: DateTime<Utc>) {
        if self.silences.is_empty() {
            return;
        }
        let linked: BTreeSet<i64> = self.dirty.linked.iter().map(|(id, _)| *id).collect();
        for incident_id in linked {
            let held = self
                .paging
                .get(&incident_id)
                .is_some_and(|p| p.held_by.is_some());
            if held {
                self.drive_escalation(incident_id, now);
            }
        }
    }

    pub(super) fn put_override(&mut self, o: ScheduleOverride, now: DateTime<Utc>) -> Reply {
        self.overrides.retain(|x| x.id != o.id);
        self.overrides.push(o.clone());
        self.dirty.overrides.push((o.id.clone(), Some(o)));
        self.rebuild_live(now);
        self.arm_shift_timer(now);
        Reply::Done
    }

    pub(super) fn delete_override(&mut self, id: &str, now: DateTime<Utc>) -> Reply {
        let before = self.overrides.len();
        self.overrides.retain(|x| x.id != id);
        if self.overrides.len() == before {
            return Reply::NotFound(format!("no override {id}"));
        }
        self.dirty.overrides.push((id.to_string(), None));
        self.rebuild_live(now);
        self.arm_shift_timer(now);
        Reply::Done
    }

    /// Wake at the next shift change of any schedule.
    pub(super) fn arm_shift_timer(&mut self, now: DateTime<Utc>) {
        let at = self
            .live_paging
            .next_shift_change(now.max(self.shifts_noted_until));
        self.timers.set_or_cancel(TimerKey::ShiftStart, at);
    }

    /// Each shift that began since the last look: its holder gets one notice over each of
    /// their channels, naming the schedule, the shift's end and the open incidents whose
    /// escalation pages that schedule.
    pub(super) fn shifts_due(&mut self, now: DateTime<Utc>) {
        let live = Arc::clone(&self.live_paging);
        let shifts = live.shifts_beginning(self.shifts_noted_until, now);
        self.shifts_noted_until = now;
        for shift in shifts {
            let mut inherited: Vec<Inherited> = self
                .paging
                .iter()
                .filter(|(_, p)| decide::pages_schedule(p, &shift.schedule))
                .filter_map(|(id, _)| self.incidents.get(id))
                .filter(|i| i.is_open())
                .map(|i| Inherited {
                    id: i.id,
                    severity: i.severity,
                    title: i.title.to_string(),
                })
                .collect();
            inherited.sort_by_key(|i| i.id);
            for recipient in live.channels_of(&shift.responder).unwrap_or_default() {
                let payload = notice::shift_started(
                    &shift.schedule,
                    &shift.responder,
                    shift.until,
                    &inherited,
                    &self.setup.external_url,
                    now,
                );
                let id = self.next_page_id;
                self.next_page_id += 1;
                self.dirty.pages.push(Page {
                    case_id: Default::default(),
                    id,
                    delivery_id: uuid::Uuid::new_v4().to_string(),
                    incident_id: 0,
                    event: payload.event,
                    recipient,
                    level: None,
                    payload,
                    created_at: now,
                });
            }
        }
        self.arm_shift_timer(now);
    }
}
