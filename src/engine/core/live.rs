//! Silences and on-call overrides made at run time: kept beside the config's paging, and
//! merged with it into what the paging decisions see.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Core, Reply};
use crate::paging::{ScheduleOverride, Silence};

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

    pub(super) fn put_override(&mut self, o: ScheduleOverride, now: DateTime<Utc>) -> Reply {
        self.overrides.retain(|x| x.id != o.id);
        self.overrides.push(o.clone());
        self.dirty.overrides.push((o.id.clone(), Some(o)));
        self.rebuild_live(now);
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
        Reply::Done
    }
}
