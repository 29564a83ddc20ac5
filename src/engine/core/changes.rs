//! What changed, for the store, and the gauges that count open incidents.

use std::collections::BTreeMap;

use super::{Changes, Core, FirstNew, PagingState};
use crate::engine::open_counts::OpenCounts;
use crate::incident::{Impact, Incident, TimelineEntry};
use crate::rules::RuleState;
use crate::signal::Fingerprint;

impl Core {
    /// Set the open-incident and queue gauges if anything they count changed since. The
    /// engine loop calls it once a batch and its pages are on their way, and before it
    /// answers the batch's inputs.
    pub fn refresh_gauges(&mut self) {
        if std::mem::take(&mut self.gauges_dirty) {
            self.count_gauges();
        }
    }

    pub(super) fn count_gauges(&self) {
        // Tests run debug builds: there every batch checks the counts against a fresh count.
        debug_assert_eq!(
            self.open_counts.without_empty_queues(),
            OpenCounts::of(self.incidents.values().map(|i| &**i)).without_empty_queues(),
            "the open-incident counts drifted from the incidents"
        );
        let mut queues: BTreeMap<&str, i64> = self.open_counts.queues().collect();
        let configured = crate::paging::queue::configured(&self.setup.config);
        for queue in &configured {
            queues.insert(queue, self.open_counts.in_queue(queue));
        }
        for (severity, count) in self.open_counts.by_severity().iter().enumerate() {
            self.metrics
                .incidents_open
                .with_label_values(&[&severity.to_string()])
                .set(*count);
        }
        for (queue, count) in queues {
            self.metrics
                .triage_queue_length
                .with_label_values(&[queue])
                .set(count);
        }
    }

    /// The ids the core numbers next: what a batch taken now holds is below them.
    pub(super) fn next_first_new(&self) -> FirstNew {
        FirstNew {
            impact: self.next_impact_id,
            rule_state_row: self.next_rule_state_row,
        }
    }

    /// Everything that changed since the last call, ready to be written in one transaction.
    pub fn take_changes(&mut self) -> Changes {
        let mut dirty = std::mem::take(&mut self.dirty);
        let next = self.next_first_new();
        let mut changes = Changes {
            timeline: dirty
                .timeline
                .iter()
                .map(|(incident_id, at, entry)| entry.row(*incident_id, *at))
                .collect::<Vec<TimelineEntry>>(),
            pages: dirty.pages,
            silences: std::mem::take(&mut dirty.silences),
            overrides: std::mem::take(&mut dirty.overrides),
            case_timeline: dirty.case_timeline,
            availability: dirty.availability.then(|| self.availability.to_json()),
            first_new: Some(std::mem::replace(&mut self.first_new, next)),
            ..Changes::default()
        };
        changes.timeline.append(&mut dirty.incident_rows);
        dirty.cases.sort_unstable();
        dirty.cases.dedup();
        for id in &dirty.cases {
            if let Some(case) = self.cases.get(id) {
                changes.cases.push(crate::incident::case::Case::clone(case));
            }
        }
        // Resolved cases leave memory once their final state is written.
        for id in &dirty.closed_cases {
            self.cases.remove(id);
        }
        for id in &dirty.incidents {
            if let Some(incident) = self.incidents.get_mut(id) {
                // Without its impact ids, which the store does not keep in the incident's
                // row: copying them for every batch that touches it grew with the incident.
                let impact_ids = std::mem::take(&mut incident.impact_ids);
                changes.incidents.push(Incident::clone(incident));
                incident.impact_ids = impact_ids;
            }
        }
        for id in &dirty.impacts {
            if let Some(impact) = self.impacts.get(id) {
                changes.impacts.push(Impact::clone(impact));
                // Resolved while it fired, then cleared: it leaves memory once written.
                if !impact.is_active() && !self.incidents.contains_key(&impact.incident_id) {
                    self.impacts.remove(id);
                }
            }
        }
        dirty.linked.sort_unstable();
        dirty.linked.dedup();
        for chunk in dirty.linked.chunk_by(|a, b| a.0 == b.0) {
            let ids = chunk.iter().map(|(_, impact)| *impact).collect();
            changes.impact_links.push((chunk[0].0, ids));
        }
        for id in &dirty.paging {
            let open = self.incidents.get(id).is_some_and(|i| i.is_open());
            // A reopenable incident keeps its paging row: reopened, its escalation goes on.
            let kept = match self.reopenable.get(id) {
                Some(r) if !open => r.paging.as_deref().cloned(),
                _ => None,
            };
            changes.paging.push((
                *id,
                if open {
                    self.paging.get(id).map(|p| PagingState::clone(p))
                } else {
                    kept
                },
            ));
        }
        changes.deleted_rule_states = dirty.deleted_rule_states;
        // In the order of their rows: new rows then go at the end of their table one after
        // the other, where in the order of their keys (hashes) each would land among the
        // batch's earlier rows and split the table's pages. A state's row is its own, so
        // sorting by row also brings a key's repeats together; the keys come mostly in the
        // order their rows were given, which the sort runs through.
        let mut changed: Vec<(&(u32, Fingerprint), &RuleState)> = dirty
            .rule_states
            .iter()
            .filter_map(|key| Some((key, self.rule_states.get(key)?)))
            .collect();
        changed.sort_unstable_by_key(|(_, state)| state.row);
        changed.dedup_by_key(|(_, state)| state.row);
        for ((rule, fingerprint), state) in changed {
            let name = self.rule(*rule).name.to_string();
            changes
                .rule_states
                .push((name, *fingerprint, state.clone()));
        }
        changes.deleted_leases = dirty.deleted_leases;
        for index in &dirty.heartbeats {
            let name = self.setup.config.heartbeats[*index as usize].name.clone();
            changes
                .heartbeats
                .push((name, self.heartbeats[*index as usize].clone()));
        }
        // Resolved incidents leave memory once their final state is written, and so do their
        // impacts but those still firing (see `resolve`).
        for id in dirty.closed {
            if let Some(incident) = self.incidents.remove(&id) {
                for impact in &incident.impact_ids {
                    if self
                        .impacts
                        .get(impact)
                        .is_some_and(|i| i.incident_id == id && !i.is_active())
                    {
                        self.impacts.remove(impact);
                    }
                }
            }
            self.paging.remove(&id);
        }
        changes
    }
}
