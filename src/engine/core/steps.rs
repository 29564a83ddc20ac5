//! Per-person notification rules: the engine applies what `paging::steps` says to a
//! page's recipients, keeps the steps that wait with the incident's paging (stored, so a
//! restart or a takeover resumes them) and pages each when it falls due, unless the
//! incident was acknowledged or resolved meanwhile.

use chrono::{DateTime, Utc};

use super::Core;
use crate::engine::timers::TimerKey;
use crate::incident::{Entry, Status};
use crate::paging::decide;
use crate::paging::steps::{self, PageOf};
use crate::paging::{PageEvent, Recipient};

impl Core {
    /// Page `recipients` as their notification rules say: those due now are paged (and
    /// returned), the others wait for their step.
    pub(super) fn reach(
        &mut self,
        incident_id: i64,
        recipients: Vec<Recipient>,
        event: PageEvent,
        policy: Option<&str>,
        level: Option<usize>,
        now: DateTime<Utc>,
    ) -> Vec<Recipient> {
        let acknowledged = self
            .incidents
            .get(&incident_id)
            .is_some_and(|i| i.status == Status::Acknowledged);
        let page = PageOf {
            event,
            policy,
            level,
            acknowledged,
        };
        let plan = steps::plan(&self.live_paging, recipients, &page, now);
        for recipient in &plan.now {
            let recipient = recipient.clone();
            self.create_page(incident_id, recipient, event, policy, level, now);
        }
        if !plan.later.is_empty() {
            let mut waiting: Vec<(String, Vec<String>)> = Vec::new();
            for step in &plan.later {
                let said = format!("{} after {}", steps::via_of(&step.recipient), step.after);
                match waiting.iter_mut().find(|(id, _)| *id == step.recipient.id) {
                    Some((_, said_before)) => said_before.push(said),
                    None => waiting.push((step.recipient.id.clone(), vec![said])),
                }
            }
            for (responder, steps) in waiting {
                self.timeline(incident_id, now, Entry::StepsWaiting { responder, steps });
            }
        }
        let waiting = self
            .paging
            .get(&incident_id)
            .is_some_and(|p| !p.steps.is_empty());
        if !plan.later.is_empty() || waiting {
            let paging = self.paging.entry(incident_id).or_default();
            steps::keep(paging, plan.later, &plan.now);
            self.dirty.paging.insert(incident_id);
            self.schedule_steps(incident_id);
        }
        plan.now
    }

    /// The steps due now: each is paged while the incident is still unacknowledged.
    pub(super) fn steps_due(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let live = std::sync::Arc::clone(&self.live_paging);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let triggered = incident.is_open() && incident.status == Status::Triggered;
        // A silence holds the steps as it holds the escalation: they go when it ends.
        let held = if !triggered {
            None
        } else {
            let targets = if live.live_silences.is_empty() {
                Vec::new()
            } else {
                let impacts = &self.impacts;
                crate::paging::silence::targets(
                    incident,
                    incident
                        .impact_ids
                        .iter()
                        .filter_map(|id| impacts.get(id).map(|i| &**i)),
                )
            };
            decide::held_until(&live, &incident.labels, incident.severity, &targets, now)
        };
        let Some(paging) = self.paging.get_mut(&incident_id) else {
            return;
        };
        let mut due = steps::due(paging, now);
        if due.is_empty() {
            self.schedule_steps(incident_id);
            return;
        }
        self.dirty.paging.insert(incident_id);
        if let Some(until) = held {
            // Until its end (a silence without a known end drops them: the escalation
            // pages when it resumes).
            if let Some(until) = until.filter(|u| *u > now) {
                for step in &mut due {
                    step.at = until;
                }
                paging.steps.extend(due);
                paging.steps.sort_by_key(|s| s.at);
            }
            self.schedule_steps(incident_id);
            return;
        }
        if triggered {
            for step in due {
                let reached = format!(
                    "{} ({})",
                    step.recipient.id,
                    step.recipient.channel.as_str()
                );
                let entry = Entry::StepPaged {
                    event: step.event.as_str(),
                    reached,
                    after: step.after.to_string(),
                };
                self.create_page(
                    incident_id,
                    step.recipient,
                    step.event,
                    step.policy.as_deref(),
                    step.level,
                    now,
                );
                self.timeline(incident_id, now, entry);
            }
        }
        self.schedule_steps(incident_id);
    }

    /// The timer of the incident's next waiting step.
    pub(super) fn schedule_steps(&mut self, incident_id: i64) {
        let due = self
            .paging
            .get(&incident_id)
            .and_then(|p| steps::next_due(p));
        self.timers.set_or_cancel(TimerKey::Step(incident_id), due);
    }

    /// The incident was acknowledged, resolved or merged: its waiting steps go.
    pub(super) fn drop_steps(&mut self, incident_id: i64) {
        self.timers.cancel(TimerKey::Step(incident_id));
        if let Some(paging) = self.paging.get_mut(&incident_id) {
            if !paging.steps.is_empty() {
                paging.steps.clear();
                self.dirty.paging.insert(incident_id);
            }
        }
    }
}
