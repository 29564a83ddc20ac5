//! TSGs: the engine follows the incident's troubleshooting guide (its opening rule's, else
//! its services'), calls the TSG's action when the incident opens, and applies what the
//! action reports back or its time-out: a queued incident joins its triage queues only if
//! the action fails (the decision is `paging::tsg::queue_gate`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Core, Reply};
use crate::engine::timers::TimerKey;
use crate::incident::tsg_action::TsgStep;
use crate::incident::{Entry, TsgAction, TsgOutcome};
use crate::paging::decide::{self, Routing};
use crate::paging::page::TsgCall;
use crate::paging::{Channel, PageEvent, Recipient};

impl Core {
    /// The rule of the impact that opened the incident (its first), by its index.
    pub(super) fn opening_rule(&self, incident_id: i64) -> Option<u32> {
        let incident = self.incidents.get(&incident_id)?;
        let first = incident.impact_ids.iter().min()?;
        self.rule_index(&self.impacts.get(first)?.rule)
    }

    /// Set the incident's TSG link, and call its TSG's action the first time the incident
    /// routes.
    pub(super) fn follow_tsg(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let rule = self
            .opening_rule(incident_id)
            .map(|index| &setup.rules.rules[index as usize])
            .and_then(|r| Some((&*r.name, r.tsg.as_ref()?)));
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return;
        };
        let services: Vec<String> = incident.services.iter().cloned().collect();
        let chosen = crate::paging::tsg::choose(rule, &setup.config.catalog, &services);
        let url = chosen.as_ref().map(|c| c.tsg.url.clone());
        if incident.tsg != url {
            incident.tsg = url;
            self.dirty.incidents.insert(incident_id);
        }
        let Some(chosen) = chosen else {
            return;
        };
        let Some(action) = &chosen.tsg.action else {
            return;
        };
        if incident.tsg_action.is_some() {
            return;
        }
        let deadline = now + action.timeout.chrono();
        incident.tsg_action = Some(Box::new(TsgAction {
            webhook: action.webhook.clone(),
            url: chosen.tsg.url.clone(),
            from: chosen.from.clone(),
            called_at: now,
            deadline,
            outcome: None,
            note: None,
            reported_by: None,
            reported_at: None,
            waited: false,
        }));
        self.dirty.incidents.insert(incident_id);
        self.timers.set(TimerKey::TsgAction(incident_id), deadline);
        let recipient = Recipient {
            id: format!("webhook:{}", action.webhook),
            channel: Channel::Webhook,
            address: action.webhook.clone(),
        };
        if let Some(mut page) = self.build_page(
            incident_id,
            recipient,
            PageEvent::TsgAction,
            None,
            None,
            now,
        ) {
            page.payload.tsg_action = Some(Box::new(TsgCall {
                url: chosen.tsg.url.clone(),
                from: chosen.from.clone(),
                report_url: format!("{}/api/v1/incidents/{incident_id}/tsg", setup.external_url),
                deadline,
            }));
            self.dirty.pages.push(page);
        }
        let step = TsgStep::Called {
            webhook: action.webhook.clone(),
            url: chosen.tsg.url.clone(),
            from: chosen.from,
            deadline,
        };
        self.timeline(incident_id, now, Entry::Tsg(step));
    }

    /// Whether the incident's wait for its TSG action is in its timeline already (and note
    /// that it is from now).
    pub(super) fn tsg_wait_noted(&mut self, incident_id: i64) -> bool {
        let Some(action) = self
            .incidents
            .get_mut(&incident_id)
            .and_then(|i| i.tsg_action.as_deref_mut())
        else {
            return true;
        };
        let noted = std::mem::replace(&mut action.waited, true);
        if !noted {
            self.dirty.incidents.insert(incident_id);
        }
        noted
    }

    /// The TSG action reports how its mitigation went.
    pub(super) fn tsg_report(
        &mut self,
        incident_id: i64,
        outcome: TsgOutcome,
        note: Option<String>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return Reply::NotFound(format!("no open incident {incident_id}"));
        };
        let Some(action) = incident.tsg_action.as_deref() else {
            return Reply::Conflict(format!(
                "incident {incident_id} has no TSG action: tocsin called none for it"
            ));
        };
        if let Some(done) = action.outcome {
            return Reply::Conflict(format!(
                "the TSG action of incident {incident_id} already ended: {}",
                done.as_str()
            ));
        }
        self.tsg_ended(incident_id, outcome, note.clone(), by, now);
        let step = TsgStep::Reported {
            outcome,
            note,
            by: by.to_string(),
        };
        self.timeline(incident_id, now, Entry::Tsg(step));
        self.requeue(incident_id, now);
        Reply::Done
    }

    /// The TSG action's deadline passed: without a report, it counts as failed.
    pub(super) fn tsg_timed_out(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(action) = self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.tsg_action.as_deref())
            .filter(|a| a.is_pending())
        else {
            return;
        };
        let step = TsgStep::TimedOut {
            webhook: action.webhook.clone(),
            deadline: action.deadline,
        };
        self.tsg_ended(incident_id, TsgOutcome::TimedOut, None, super::TOCSIN, now);
        self.timeline(incident_id, now, Entry::Tsg(step));
        self.requeue(incident_id, now);
    }

    /// The action's call was given up after its retries: the action cannot run, so it
    /// counts as failed now rather than at its deadline.
    pub(super) fn tsg_call_lost(&mut self, incident_id: i64, now: DateTime<Utc>) {
        if !self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.tsg_action.as_deref())
            .is_some_and(|a| a.is_pending())
        {
            return;
        }
        let note = Some("its webhook could not be called".to_string());
        self.tsg_ended(
            incident_id,
            TsgOutcome::Failed,
            note.clone(),
            super::TOCSIN,
            now,
        );
        let step = TsgStep::Reported {
            outcome: TsgOutcome::Failed,
            note,
            by: super::TOCSIN.to_string(),
        };
        self.timeline(incident_id, now, Entry::Tsg(step));
        self.requeue(incident_id, now);
    }

    fn tsg_ended(
        &mut self,
        incident_id: i64,
        outcome: TsgOutcome,
        note: Option<String>,
        by: &str,
        now: DateTime<Utc>,
    ) {
        self.timers.cancel(TimerKey::TsgAction(incident_id));
        if let Some(action) = self
            .incidents
            .get_mut(&incident_id)
            .and_then(|i| i.tsg_action.as_deref_mut())
        {
            action.outcome = Some(outcome);
            action.note = note;
            action.reported_by = Some(by.to_string());
            action.reported_at = Some(now);
            self.dirty.incidents.insert(incident_id);
        }
    }

    /// Route a queued (or waiting) incident again: after its TSG action ended, it joins its
    /// queues if the action failed; after impacts joined, the queues of the services they
    /// hit too.
    pub(super) fn requeue(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let routing = decide::route(
            &self.live_paging,
            &incident.labels,
            incident.severity,
            incident.queue.as_deref(),
            PageEvent::Triggered,
            now,
        );
        if let Routing::Queued { route, queue, .. } = routing {
            self.enqueue(incident_id, route, &queue, now);
        }
    }

    /// The time-out of the incident's TSG action, while it runs (after a restart too).
    pub(super) fn schedule_tsg_action(&mut self, incident_id: i64) {
        let deadline = self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.tsg_action.as_deref())
            .filter(|a| a.is_pending())
            .map(|a| a.deadline);
        self.timers
            .set_or_cancel(TimerKey::TsgAction(incident_id), deadline);
    }
}
