//! Reopening: an incident that resolved on its own stays reopenable for
//! `incidents.reopen_within`; a new impact that correlates with it reopens it (see
//! `lifecycle::reopenable` and `correlate::reopens`) instead of opening a new one.

use chrono::{DateTime, Utc};

use super::{Core, Reopenable};
use crate::engine::open_counts::Counted;
use crate::engine::timers::TimerKey;
use crate::incident::{correlate, lifecycle, Impact, Incident};
use crate::paging::{PageEvent, PagingState};

impl Core {
    /// The `correlation.by` (label, value) pairs of these impacts.
    fn by_labels<'a>(&self, impacts: impl Iterator<Item = &'a Impact>) -> Vec<(String, String)> {
        let by = &self.setup.config.correlation.by;
        let mut labels: Vec<(String, String)> = impacts
            .filter(|i| !self.setup.rules.is_separate(&i.rule))
            .flat_map(|impact| {
                by.iter().filter_map(|name| {
                    let value = impact.labels.get(name).filter(|v| !v.is_empty())?;
                    Some((name.clone(), value.to_string()))
                })
            })
            .collect();
        labels.sort();
        labels.dedup();
        labels
    }

    /// Keep an incident that just resolved on its own, with its paging, so that a new
    /// impact within `incidents.reopen_within` reopens it.
    pub(super) fn keep_reopenable(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let labels = self.by_labels(
            incident
                .impact_ids
                .iter()
                .filter_map(|id| self.impacts.get(id).map(|i| &**i)),
        );
        let paging = self.paging.get(&incident_id).cloned();
        let incident = incident.clone();
        self.add_reopenable(incident, paging, labels, now);
    }

    fn add_reopenable(
        &mut self,
        incident: Box<Incident>,
        paging: Option<Box<PagingState>>,
        labels: Vec<(String, String)>,
        now: DateTime<Utc>,
    ) {
        let within = self.setup.config.incidents.reopen_within.chrono();
        if labels.is_empty() || !lifecycle::reopenable(&incident, now, within) {
            return;
        }
        let id = incident.id;
        if let Some(at) = incident.resolved_at {
            self.timers.set(TimerKey::ReopenEnds(id), at + within);
        }
        for (name, value) in &labels {
            let ids = self
                .reopen_index
                .entry(super::incidents::key_of(name, value))
                .or_default();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        self.reopenable.insert(
            id,
            Reopenable {
                incident,
                paging,
                labels,
            },
        );
    }

    /// After a restart: the incidents the store says resolved on their own lately.
    pub(super) fn restore_reopenable(
        &mut self,
        recent: Vec<(Incident, Option<PagingState>, Vec<Impact>)>,
        now: DateTime<Utc>,
    ) {
        for (incident, paging, impacts) in recent {
            let labels = self.by_labels(impacts.iter());
            self.add_reopenable(Box::new(incident), paging.map(Box::new), labels, now);
        }
    }

    /// The window to reopen the incident closed: it leaves memory, and its paging row the
    /// store.
    pub(super) fn reopen_ends(&mut self, incident_id: i64) {
        let Some(gone) = self.reopenable.remove(&incident_id) else {
            return;
        };
        self.unindex_reopenable(incident_id, &gone.labels);
        self.dirty.paging.insert(incident_id);
    }

    fn unindex_reopenable(&mut self, incident_id: i64, labels: &[(String, String)]) {
        for (name, value) in labels {
            let key = super::incidents::key_of(name, value);
            if let Some(ids) = self.reopen_index.get_mut(&key) {
                ids.retain(|id| *id != incident_id);
                if ids.is_empty() {
                    self.reopen_index.remove(&key);
                }
            }
        }
    }

    /// The recently resolved incident `impact` reopens, if any.
    pub(super) fn reopen_candidate(&self, impact: &Impact, now: DateTime<Utc>) -> Option<i64> {
        if self.reopenable.is_empty() {
            return None;
        }
        let within = self.setup.config.incidents.reopen_within.chrono();
        let mut ids: Vec<i64> = self
            .correlation_keys(impact)
            .iter()
            .filter_map(|key| self.reopen_index.get(key))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let candidates = ids.iter().filter_map(|id| {
            let r = self.reopenable.get(id)?;
            lifecycle::reopenable(&r.incident, now, within).then_some((*id, &r.labels[..]))
        });
        correlate::reopens(impact, candidates, &self.setup.config.correlation.by)
    }

    /// Reopen incident `incident_id` for `impact`: triggered again, escalation going on
    /// from the level it had reached, and those paged told (`reopened`, batched).
    pub(super) fn reopen(&mut self, incident_id: i64, impact: Impact, now: DateTime<Utc>) {
        let Some(Reopenable {
            mut incident,
            paging,
            labels,
        }) = self.reopenable.remove(&incident_id)
        else {
            return;
        };
        self.unindex_reopenable(incident_id, &labels);
        self.timers.cancel(TimerKey::ReopenEnds(incident_id));
        let resolved_at = incident.resolved_at.unwrap_or(now);
        let entry = lifecycle::reopen(&mut incident, &impact.rule, &impact.summary);
        self.open_counts.changed(None, Counted::of(&incident));
        self.metrics.incident_reopens_total.inc();
        self.dirty.closed.remove(&incident_id);
        self.dirty.incidents.insert(incident_id);
        self.dirty.paging.insert(incident_id);
        self.incidents.insert(incident_id, incident);
        if let Some(mut paging) = paging {
            if let Some(escalation) = paging.escalation.as_mut() {
                escalation.resume(resolved_at, now);
            }
            self.paging.insert(incident_id, paging);
        }
        self.timeline(incident_id, now, entry);
        self.gauges_dirty = true;
        let rule = impact.rule.to_string();
        self.attach(incident_id, impact, now);
        self.note_update(incident_id, PageEvent::Reopened);
        match &mut self.deferred_reclassify {
            Some(pending) => {
                pending.entry(incident_id).or_insert(rule);
            }
            None => self.reclassify(incident_id, now, &rule),
        }
        self.schedule_respond_by(incident_id);
        self.schedule_escalation(incident_id, now);
    }
}
