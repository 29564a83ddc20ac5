//! Paging: the engine applies what `paging::decide` says (who is paged when) to its
//! state, timeline, pages and timers.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Core;
use crate::engine::open_counts::Counted;
use crate::engine::timers::TimerKey;
use crate::incident::tsg_action::TsgStep;
use crate::incident::{lifecycle, Entry, Status};
use crate::paging::decide::{self, Routing, Step, Update};
use crate::paging::escalate::Escalation;
use crate::paging::tsg::QueueGate;
use crate::paging::{silence, LevelPage, PageEvent, Recipient};

impl Core {
    /// Route the incident and start its escalation (or queue it, or record it unrouted).
    pub(super) fn start_paging(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
        let live = Arc::clone(&self.live_paging);
        let setup = Arc::clone(&self.setup);
        // Its TSG first: the TSG's action starts before a route can queue the incident.
        self.follow_tsg(incident_id, now);
        let rule_tsg = self
            .opening_rule(incident_id)
            .map(|index| &setup.rules.rules[index as usize])
            .and_then(|r| Some((&*r.name, r.tsg.as_ref()?)));
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let severity = incident.severity;
        let services: Vec<String> = incident.services.iter().cloned().collect();
        let routing = decide::route(
            &live,
            &incident.labels,
            severity,
            incident.queue.as_deref(),
            event,
            now,
        );
        let paging = self.paging.entry(incident_id).or_default();
        paging.escalation = None;
        paging.pause_noted = false;
        self.dirty.paging.insert(incident_id);
        self.timers.cancel(TimerKey::Escalation(incident_id));
        match routing {
            Routing::Unrouted => {
                self.set_queues(incident_id, Vec::new());
                self.timeline(incident_id, now, Entry::Unrouted { severity });
            }
            Routing::Queued { route, queue, .. } => self.enqueue(incident_id, route, &queue, now),
            Routing::UnknownPolicy { route, policy } => {
                self.set_queues(incident_id, Vec::new());
                self.timeline(incident_id, now, Entry::UnknownPolicy { route, policy });
            }
            Routing::Escalate {
                route,
                policy,
                mut escalation,
            } => {
                self.set_queues(incident_id, Vec::new());
                self.timeline(incident_id, now, Entry::Routed { route, policy });
                let at_once = crate::paging::tsg::pages_at_once(
                    rule_tsg,
                    &setup.config.catalog,
                    &services,
                    severity,
                );
                if let Some(from) = at_once.filter(|_| !escalation.active_during.is_empty()) {
                    escalation.active_during.clear();
                    self.dirty
                        .incident_rows
                        .push(crate::incident::TimelineEntry {
                            incident_id,
                            at: now,
                            kind: "tsg_escalates_immediately".into(),
                            actor: crate::incident::timeline::TOCSIN.into(),
                            message: format!(
                                "the TSG of {from} says escalate immediately: paged outside \
                                 the route's time windows too"
                            ),
                            data: serde_json::json!({ "from": from }),
                        });
                }
                if let Some(p) = self.paging.get_mut(&incident_id) {
                    p.escalation = Some(escalation);
                }
                self.drive_escalation(incident_id, now);
            }
        }
    }

    /// A route says `queue`: the incident joins that queue (with `queue: component`, the
    /// queue of each service it hits), unless someone took it from its queue already or its
    /// TSG action has not failed (see [`crate::paging::tsg::queue_gate`]).
    pub(super) fn enqueue(
        &mut self,
        incident_id: i64,
        route: usize,
        queue: &str,
        now: DateTime<Utc>,
    ) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if incident.assignee.is_some() {
            return;
        }
        let services: Vec<String> = incident.services.iter().cloned().collect();
        match crate::paging::tsg::queue_gate(incident.tsg_action.as_deref()) {
            QueueGate::Join => {}
            QueueGate::Wait { webhook } => {
                self.set_queues(incident_id, Vec::new());
                if !self.tsg_wait_noted(incident_id) {
                    self.timeline(incident_id, now, Entry::Tsg(TsgStep::Waiting { webhook }));
                }
                return;
            }
            QueueGate::Succeeded => {
                self.set_queues(incident_id, Vec::new());
                return;
            }
        }
        let queues = crate::paging::queue::resolve(queue, &services, &self.setup.config.catalog);
        let joined: Vec<String> = queues
            .iter()
            .filter(|q| !incident.in_queue(q))
            .cloned()
            .collect();
        self.set_queues(incident_id, queues);
        for queue in joined {
            self.timeline(incident_id, now, Entry::Queued { route, queue });
        }
    }

    /// Triage queues are worked FIFO: the oldest unassigned incident of `queue` goes to
    /// `by`, and leaves every queue.
    pub(super) fn take_from_queue(
        &mut self,
        queue: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> super::Reply {
        let oldest = self
            .incidents
            .values()
            .filter(|i| i.in_queue(queue) && i.assignee.is_none())
            .min_by_key(|i| (i.opened_at, i.id))
            .map(|i| i.id);
        let Some(incident_id) = oldest else {
            return super::Reply::Conflict(format!("queue {queue:?} is empty"));
        };
        let waited = self
            .incidents
            .get(&incident_id)
            .map(|i| (now - i.opened_at).num_seconds())
            .unwrap_or_default();
        self.set_queues(incident_id, Vec::new());
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            incident.assignee = Some(by.to_string());
        }
        self.dirty.incidents.insert(incident_id);
        self.dirty
            .incident_rows
            .push(crate::incident::TimelineEntry {
                incident_id,
                at: now,
                kind: "taken".into(),
                actor: by.to_string(),
                message: format!("{by} took it from triage queue {queue} after {waited}s"),
                data: serde_json::json!({ "queue": queue, "waited_seconds": waited }),
            });
        super::Reply::Incident(incident_id)
    }

    /// A person lowered the severity: nobody new is paged; a queue or no route stops paging.
    pub(super) fn severity_lowered(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if decide::reroute_after_lowering(&self.live_paging, &incident.labels, incident.severity) {
            self.start_paging(incident_id, PageEvent::Triggered, now);
        }
    }

    /// The incident waits in `queues` (none: in no queue); the first is its `queue`.
    pub(super) fn set_queues(&mut self, incident_id: i64, mut queues: Vec<String>) {
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            let queue = (!queues.is_empty()).then(|| queues.remove(0));
            if incident.queue != queue || incident.other_queues != queues {
                let before = Counted::of(incident);
                incident.queue = queue;
                incident.other_queues = queues;
                self.open_counts.changed(before, Counted::of(incident));
                self.dirty.incidents.insert(incident_id);
                self.gauges_dirty = true;
            }
        }
    }

    /// Page whatever is due for the incident and set its next timer.
    pub(super) fn drive_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let live = Arc::clone(&self.live_paging);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if !incident.is_open() {
            return;
        }
        let (labels, severity, status) =
            (incident.labels.clone(), incident.severity, incident.status);
        // Only worked out while run-time silences exist: most engines have none.
        let targets = if live.live_silences.is_empty() {
            Vec::new()
        } else {
            let impacts = &self.impacts;
            silence::targets(
                incident,
                incident
                    .impact_ids
                    .iter()
                    .filter_map(|id| impacts.get(id).map(|i| &**i)),
            )
        };
        let Some(paging) = self.paging.get_mut(&incident_id) else {
            return;
        };
        let acknowledged = status == Status::Acknowledged;
        let Some(step) = decide::step(
            paging,
            &live,
            &labels,
            severity,
            acknowledged,
            &targets,
            now,
        ) else {
            return;
        };
        match step {
            Step::AckLapsed { pages } => {
                self.dirty.paging.insert(incident_id);
                if let Some(incident) = self.incidents.get_mut(&incident_id) {
                    let entry = lifecycle::ack_lapsed(incident);
                    self.dirty.incidents.insert(incident_id);
                    self.timeline(incident_id, now, entry);
                }
                self.schedule_respond_by(incident_id);
                self.page_levels(incident_id, pages, now);
                self.schedule_escalation(incident_id, now);
            }
            Step::HeldByAck => self.schedule_escalation(incident_id, now),
            Step::Silenced {
                silence,
                comment,
                until,
                first,
            } => {
                self.dirty.paging.insert(incident_id);
                if first {
                    let entry = Entry::Silenced {
                        silence,
                        comment,
                        until,
                    };
                    self.timeline(incident_id, now, entry);
                }
                self.timers
                    .set_or_cancel(TimerKey::Escalation(incident_id), until);
            }
            Step::Held {
                silence,
                created_by,
                comment,
                until,
                first,
            } => {
                self.dirty.paging.insert(incident_id);
                if first {
                    let entry = Entry::Held {
                        silence,
                        created_by,
                        comment,
                        until,
                    };
                    self.timeline(incident_id, now, entry);
                }
                self.timers
                    .set_or_cancel(TimerKey::Escalation(incident_id), Some(until));
            }
            Step::Advance { pages, paused } => {
                self.dirty.paging.insert(incident_id);
                if let Some(pause) = paused {
                    let entry = Entry::Paused {
                        windows: pause.windows,
                        until: pause.until,
                    };
                    self.timeline(incident_id, now, entry);
                }
                self.page_levels(incident_id, pages, now);
                self.schedule_escalation(incident_id, now);
            }
        }
    }

    pub(super) fn schedule_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let incident = self
            .incidents
            .get(&incident_id)
            .map(|i| (&*i.labels, i.severity));
        let wake = self
            .paging
            .get(&incident_id)
            .and_then(|p| decide::wake_at(p, &self.live_paging, incident, now));
        self.timers
            .set_or_cancel(TimerKey::Escalation(incident_id), wake);
    }

    pub(super) fn page_levels(
        &mut self,
        incident_id: i64,
        pages: Vec<LevelPage>,
        now: DateTime<Utc>,
    ) {
        for page in pages {
            self.page_level(incident_id, page.level, page.event, now);
        }
    }

    /// Page every target of one level.
    pub(super) fn page_level(
        &mut self,
        incident_id: i64,
        level: usize,
        event: PageEvent,
        now: DateTime<Utc>,
    ) {
        let Some(pages) = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.escalation.as_ref())
            .and_then(|e| decide::level(&self.live_paging, e, level, now))
        else {
            return;
        };
        self.metrics
            .escalations_total
            .with_label_values(&[&pages.policy])
            .inc();
        let mut recipients = pages.recipients;
        // Nobody is paged about their own change of severity.
        if let Some(by) = &self.raised_by {
            recipients.retain(|r| &r.id != by);
        }
        let policy = Some(pages.policy.as_str());
        let reached = self.reach(incident_id, recipients, event, policy, Some(level), now);
        let reached = reached.iter().map(named).collect();
        for (target, why) in pages.skipped {
            self.timeline(incident_id, now, Entry::PageSkipped { level, target, why });
        }
        let entry = Entry::PagedLevel {
            event: event.as_str(),
            level,
            policy: pages.policy,
            reached,
        };
        self.timeline(incident_id, now, entry);
    }

    /// Tell everyone paged so far (ack and resolve notices).
    pub(super) fn notify_paged(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
        let Some(notice) = self
            .paging
            .get(&incident_id)
            .and_then(|p| decide::notice(p))
        else {
            return;
        };
        let names = notice.recipients.iter().map(named).collect();
        for recipient in notice.recipients {
            let policy = notice.policy.as_deref();
            self.create_page(incident_id, recipient, event, policy, notice.level, now);
        }
        let entry = Entry::Notified {
            event: event.as_str(),
            recipients: names,
        };
        self.timeline(incident_id, now, entry);
    }

    /// Note a change those paged about the incident hear of once the input is handled: a
    /// merge outweighs a reopen, which outweighs a new impact.
    pub(super) fn note_update(&mut self, incident_id: i64, event: PageEvent) {
        let rank = |e: &PageEvent| match e {
            PageEvent::Merged => 2,
            PageEvent::Reopened => 1,
            _ => 0,
        };
        let slot = self.updates.entry(incident_id).or_insert(event);
        if rank(&event) > rank(slot) {
            *slot = event;
        }
    }

    /// Tell those paged about the changes of this input (see [`decide::update`]). Anyone
    /// paged about the incident in this same batch has just had a page that says it all.
    pub(super) fn send_updates(&mut self, now: DateTime<Utc>) {
        let interval = self.setup.config.notifiers.update_interval.chrono();
        for (incident_id, event) in std::mem::take(&mut self.updates) {
            if !self
                .incidents
                .get(&incident_id)
                .is_some_and(|i| i.is_open())
            {
                continue;
            }
            let Some(paging) = self.paging.get_mut(&incident_id) else {
                continue;
            };
            let decision = decide::update(paging, event, interval, now);
            self.apply_update(incident_id, decision, now);
        }
    }

    /// A held update falls due.
    pub(super) fn held_update_due(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let interval = self.setup.config.notifiers.update_interval.chrono();
        if !self
            .incidents
            .get(&incident_id)
            .is_some_and(|i| i.is_open())
        {
            return;
        }
        let Some(paging) = self.paging.get_mut(&incident_id) else {
            return;
        };
        let decision = decide::held_update(paging, interval, now);
        self.apply_update(incident_id, decision, now);
    }

    fn apply_update(&mut self, incident_id: i64, decision: Update, now: DateTime<Utc>) {
        // Told now (or nobody to tell): the merges are news no more once this is done.
        let told = !matches!(decision, Update::Held { .. });
        self.apply_decided_update(incident_id, decision, now);
        if told {
            if let Some(paging) = self.paging.get_mut(&incident_id) {
                if !paging.merged.is_empty() {
                    paging.merged.clear();
                    self.dirty.paging.insert(incident_id);
                }
            }
        }
    }

    fn apply_decided_update(&mut self, incident_id: i64, decision: Update, now: DateTime<Utc>) {
        match decision {
            Update::Nobody => {}
            Update::Held { until } => {
                self.dirty.paging.insert(incident_id);
                self.timers.set(TimerKey::Update(incident_id), until);
            }
            Update::Send { event, notice } => {
                self.dirty.paging.insert(incident_id);
                self.timers.cancel(TimerKey::Update(incident_id));
                let (at, paged) = &self.just_paged;
                let just_paged = |r: &Recipient| {
                    *at == now && paged.get(&incident_id).is_some_and(|p| p.contains(r))
                };
                let Some(notice) = notice.without(just_paged) else {
                    return;
                };
                let names = notice.recipients.iter().map(named).collect();
                for recipient in notice.recipients {
                    let policy = notice.policy.as_deref();
                    self.create_page(incident_id, recipient, event, policy, notice.level, now);
                }
                let entry = Entry::Notified {
                    event: event.as_str(),
                    recipients: names,
                };
                self.timeline(incident_id, now, entry);
            }
        }
    }

    /// The timer of the incident's held update (after a restart).
    pub(super) fn schedule_update(&mut self, incident_id: i64) {
        let interval = self.setup.config.notifiers.update_interval.chrono();
        let due = self
            .paging
            .get(&incident_id)
            .and_then(|p| decide::update_due(p, interval));
        self.timers
            .set_or_cancel(TimerKey::Update(incident_id), due);
    }

    /// The severity rose while the incident is acknowledged: the acknowledgement holds. The
    /// acknowledger hears of it, the new policy's first level pages whoever it reaches that
    /// was not paged yet, and its later levels wait for the acknowledgement to lapse.
    /// False when the new route does not escalate (paging then starts over as it says).
    pub(super) fn raise_acknowledged(&mut self, incident_id: i64, now: DateTime<Utc>) -> bool {
        let setup = Arc::clone(&self.setup);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return false;
        };
        let (Some(acked_by), Some(acked_at)) =
            (incident.acknowledged_by.clone(), incident.acknowledged_at)
        else {
            return false;
        };
        let routing = decide::route(
            &setup.paging,
            &incident.labels,
            incident.severity,
            incident.queue.as_deref(),
            PageEvent::SeverityRaised,
            now,
        );
        let Routing::Escalate {
            route,
            policy,
            escalation,
        } = routing
        else {
            return false;
        };
        let escalation = Escalation::start_acknowledged(
            escalation.policy,
            escalation.active_during,
            now,
            acked_at,
        );
        let level0 = decide::level(&setup.paging, &escalation, 0, now);
        self.set_queues(incident_id, Vec::new());
        self.timeline(incident_id, now, Entry::Routed { route, policy });
        let paging = self.paging.entry(incident_id).or_default();
        let acknowledger: Vec<Recipient> = match paging
            .paged
            .iter()
            .filter(|r| r.id == acked_by)
            .cloned()
            .collect::<Vec<_>>()
        {
            found if !found.is_empty() => found,
            _ => setup
                .paging
                .recipients(&format!("responder:{acked_by}"), now)
                .unwrap_or_default(),
        };
        let (level0_recipients, skipped, policy_name) = match level0 {
            Some(l) => (l.recipients, l.skipped, l.policy),
            None => (Vec::new(), Vec::new(), escalation.policy.name.clone()),
        };
        let recipients = decide::raised_while_acknowledged(
            level0_recipients,
            &paging.paged,
            acknowledger,
            self.raised_by.as_deref(),
        );
        paging.escalation = Some(escalation);
        paging.pause_noted = false;
        self.dirty.paging.insert(incident_id);
        let policy = Some(policy_name.as_str());
        let event = PageEvent::SeverityRaised;
        let reached = self.reach(incident_id, recipients, event, policy, Some(0), now);
        let reached = reached.iter().map(named).collect();
        for (target, why) in skipped {
            self.timeline(
                incident_id,
                now,
                Entry::PageSkipped {
                    level: 0,
                    target,
                    why,
                },
            );
        }
        let entry = Entry::PagedLevel {
            event: PageEvent::SeverityRaised.as_str(),
            level: 0,
            policy: policy_name,
            reached,
        };
        self.timeline(incident_id, now, entry);
        self.schedule_escalation(incident_id, now);
        true
    }

    /// A customer report's response deadline passed unacknowledged: page the current
    /// level and the next.
    pub(super) fn respond_by_due(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if incident.status != Status::Triggered {
            return;
        }
        let sr = incident.sr_severity.clone().unwrap_or_else(|| "-".into());
        let respond_by = incident.respond_by;
        let paging = self.paging.entry(incident_id).or_default();
        let Some(levels) = decide::response_breached(paging) else {
            return;
        };
        self.dirty.paging.insert(incident_id);
        self.metrics
            .sr_response_breaches_total
            .with_label_values(&[&sr])
            .inc();
        let entry = Entry::ResponseBreached {
            sr_severity: sr,
            respond_by,
        };
        self.timeline(incident_id, now, entry);
        if levels.is_empty() {
            self.timeline(incident_id, now, Entry::BreachUnpaged);
        }
        for level in levels {
            self.page_level(incident_id, level, PageEvent::ResponseBreached, now);
        }
    }

    /// A page of `level` was given up after its retries.
    pub(super) fn delivery_failed(
        &mut self,
        incident_id: i64,
        level: Option<usize>,
        now: DateTime<Utc>,
    ) {
        if !self.incidents.contains_key(&incident_id) {
            return;
        }
        let hurried = self
            .paging
            .get_mut(&incident_id)
            .is_some_and(|p| decide::delivery_given_up(p, level, now));
        if hurried {
            self.drive_escalation(incident_id, now);
        }
    }
}

/// A recipient as the timeline names it: "id (channel)".
fn named(recipient: &Recipient) -> String {
    format!("{} ({})", recipient.id, recipient.channel.as_str())
}
