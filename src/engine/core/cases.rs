//! Support cases: the engine keeps the open ones and one timer each, applies what
//! `incident::case::decide` says is due, pages through `case_routes:`, and links a case to
//! the incident of its CRI.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{Core, Reply};
use crate::config::matcher::all_match;
use crate::engine::timers::TimerKey;
use crate::incident::case::decide::{self, Fired};
use crate::incident::case::{Case, CaseEntry, CasePayload, CaseStatus, OpenCase};
use crate::incident::{IncidentView, Status, TimelineEntry};
use crate::paging::page::EscalationRef;
use crate::paging::{Channel, Page, PageEvent, PagePayload, Recipient};
use crate::signal::{CriDetails, Signal};

/// Something done to a case (`Input::Case`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum CaseInput {
    /// Support opens a case.
    Open {
        case: OpenCase,
    },
    /// A customer report (`POST /api/v1/cri`): its signal enters the rules and the case it
    /// makes is linked to the incident it opens or joins; the deadline is the incident's.
    Cri {
        signal: Box<Signal>,
    },
    Take {
        id: i64,
        by: String,
    },
    Respond {
        id: i64,
        by: String,
        text: String,
    },
    Update {
        id: i64,
        by: String,
        text: String,
        notify_customer: bool,
    },
    CustomerExit {
        id: i64,
        by: String,
        note: Option<String>,
    },
    Resolve {
        id: i64,
        by: String,
        note: Option<String>,
    },
    /// Support needs engineering: a CRI from the case.
    Escalate {
        id: i64,
        by: String,
        kind: Option<String>,
    },
}

/// Who a case page goes to.
enum Target {
    /// These levels of the case's policy.
    Levels(Vec<usize>),
    /// The case's owner when a responder of that id is configured, else level 0.
    Owner,
}

impl Core {
    pub(super) fn handle_case(&mut self, input: CaseInput, now: DateTime<Utc>) -> Reply {
        match input {
            CaseInput::Open { case } => {
                let id = self.open_case(case, None, None, now);
                self.case_reply(id)
            }
            CaseInput::Cri { signal } => {
                let Some(cri) = signal.cri.clone() else {
                    return Reply::Conflict("a customer report lost its details".into());
                };
                let open = OpenCase {
                    customer: signal.label("customer").unwrap_or_default().to_string(),
                    service: signal.label("service").unwrap_or_default().to_string(),
                    region: signal.label("region").unwrap_or_default().to_string(),
                    sr_severity: cri.sr_severity.clone(),
                    summary: signal
                        .annotations
                        .get("summary")
                        .map(str::to_string)
                        .unwrap_or_default(),
                    contact: cri.contact.clone(),
                    by: "cri".to_string(),
                };
                let incident = self.signals_in(vec![*signal], now);
                let id = self.open_case(open, incident, Some(cri.respond_by), now);
                self.case_reply(id)
            }
            CaseInput::Take { id, by } => self.with_case(id, now, |core, case| {
                let before = std::mem::replace(&mut case.owner, by.clone());
                case.taken_at = Some(now);
                let message = format!("{by} took the case (owner was {before})");
                core.case_timeline(id, now, "taken", &by, message, json!({ "from": before }));
                Ok(())
            }),
            CaseInput::Respond { id, by, text } => {
                let reply = self.with_case(id, now, |core, case| {
                    if let Some(at) = case.responded_at {
                        return Err(format!(
                            "case {id} was responded to at {}: post an update instead",
                            at.to_rfc3339()
                        ));
                    }
                    let met = decide::updated(case, &by, now);
                    let late = now > case.respond_by;
                    core.case_timeline(
                        id,
                        now,
                        "responded",
                        &by,
                        text.clone(),
                        json!({ "within_deadline": !late }),
                    );
                    core.metrics
                        .sr_first_response_seconds
                        .with_label_values(&[&case.sr_severity])
                        .observe((now - case.opened_at).num_milliseconds() as f64 / 1000.0);
                    if met {
                        core.incident_deadline_met(case, &by, now);
                    }
                    Ok(())
                });
                reply
            }
            CaseInput::Update {
                id,
                by,
                text,
                notify_customer,
            } => self.with_case(id, now, |core, case| {
                if case.responded_at.is_none() {
                    return Err(format!(
                        "case {id} has no first response yet: respond first"
                    ));
                }
                decide::updated(case, &by, now);
                core.case_timeline(
                    id,
                    now,
                    "update",
                    &by,
                    text.clone(),
                    json!({ "notify_customer": notify_customer }),
                );
                if notify_customer {
                    core.notify_customer(case, &text, now);
                }
                Ok(())
            }),
            CaseInput::CustomerExit { id, by, note } => self.with_case(id, now, |core, case| {
                match case.sr_severity.as_str() {
                    "B" => {}
                    "A" => {
                        return Err(format!(
                            "case {id} is SR A: it is worked continuously until resolved"
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "case {id} is SR {}: it has no continuous work to exit",
                            case.sr_severity
                        ))
                    }
                }
                if case.customer_exit_at.is_some() {
                    return Err(format!("the customer of case {id} has exited already"));
                }
                case.customer_exit_at = Some(now);
                let message = note.unwrap_or_else(|| "the customer asked to exit".into());
                core.case_timeline(id, now, "customer_exit", &by, message, json!({}));
                Ok(())
            }),
            CaseInput::Resolve { id, by, note } => self.with_case(id, now, |core, case| {
                case.status = CaseStatus::Resolved;
                case.resolved_at = Some(now);
                case.resolved_by = Some(by.clone());
                case.resolution = note.clone();
                let message = note.unwrap_or_else(|| "resolved".into());
                core.case_timeline(id, now, "resolved", &by, message, json!({}));
                core.dirty.closed_cases.push(id);
                Ok(())
            }),
            CaseInput::Escalate { id, by, kind } => self.escalate_case(id, by, kind, now),
        }
    }

    /// Signals in, as `Input::Signals` takes them: the first incident they opened or joined.
    fn signals_in(&mut self, signals: Vec<Signal>, now: DateTime<Utc>) -> Option<i64> {
        match self.handle(super::Input::Signals(signals), now) {
            Reply::Signals(incidents) => incidents.into_iter().flatten().next(),
            _ => None,
        }
    }

    fn open_case(
        &mut self,
        open: OpenCase,
        incident_id: Option<i64>,
        respond_by: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> i64 {
        let id = self.next_case_id;
        self.next_case_id += 1;
        let deadline = self
            .setup
            .config
            .sr_response
            .deadline(&open.sr_severity)
            .unwrap_or_default();
        let mut case = Case {
            id,
            customer: open.customer,
            service: open.service,
            region: open.region,
            sr_severity: open.sr_severity,
            summary: open.summary,
            contact: open.contact,
            status: CaseStatus::Open,
            opened_by: open.by.clone(),
            opened_at: now,
            owner: open.by.clone(),
            taken_at: None,
            respond_by: respond_by.unwrap_or(now + deadline.chrono()),
            responded_at: None,
            responded_by: None,
            deadline_met_at: None,
            response_breached: false,
            deadline_on_incident: incident_id.is_some(),
            last_update_at: None,
            missed_intervals: 0,
            customer_exit_at: None,
            policy: None,
            incident_id,
            resolved_at: None,
            resolved_by: None,
            resolution: None,
        };
        let labels = case.labels();
        let route = self
            .setup
            .config
            .case_routes
            .iter()
            .position(|r| all_match(&r.matchers, &labels));
        case.policy = route.and_then(|i| self.setup.config.case_routes[i].policy.clone());
        self.metrics
            .cases_opened_total
            .with_label_values(&[&case.sr_severity])
            .inc();
        let message = format!(
            "SR {} case for {} ({} in {}), respond by {}",
            case.sr_severity,
            case.customer,
            case.service,
            case.region,
            case.respond_by.to_rfc3339()
        );
        let data = json!({ "route": route, "policy": case.policy, "incident_id": incident_id });
        self.case_timeline(id, now, "opened", &open.by, message, data);
        if let Some(incident_id) = incident_id {
            self.link_incident(&case, incident_id, &open.by, now);
            // A report that joins an incident already acknowledged is answered by that ack.
            let acknowledged = self
                .incidents
                .get(&incident_id)
                .is_some_and(|i| i.status == Status::Acknowledged);
            if acknowledged && decide::meet_deadline(&mut case, now) {
                let message = format!("incident {incident_id} is acknowledged already");
                let data = json!({ "incident_id": incident_id, "deadline_met": true });
                self.case_timeline(id, now, "incident_acknowledged", "tocsin", message, data);
            }
        }
        self.cases.insert(id, Box::new(case));
        self.dirty.cases.push(id);
        self.page_case(id, PageEvent::Triggered, Target::Levels(vec![0]), now);
        self.schedule_case(id);
        id
    }

    /// Run `change` on open case `id`, then write it and set its timer again. An `Err` is
    /// a conflict, said in the API's words.
    fn with_case(
        &mut self,
        id: i64,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut Core, &mut Case) -> Result<(), String>,
    ) -> Reply {
        let Some(mut case) = self.cases.remove(&id) else {
            return Reply::NotFound(format!("case {id} is not open"));
        };
        let result = change(self, &mut case);
        let _ = now;
        self.cases.insert(id, case);
        match result {
            Ok(()) => {
                self.dirty.cases.push(id);
                self.schedule_case(id);
                self.case_reply(id)
            }
            Err(why) => Reply::Conflict(why),
        }
    }

    fn case_reply(&self, id: i64) -> Reply {
        match self.cases.get(&id) {
            Some(case) => Reply::Case(case.clone()),
            None => Reply::NotFound(format!("case {id} is not open")),
        }
    }

    pub(super) fn schedule_case(&mut self, id: i64) {
        let at = self
            .cases
            .get(&id)
            .and_then(|c| decide::next_wake(c, &self.setup.config.sr_engagement));
        self.timers.set_or_cancel(TimerKey::Case(id), at);
    }

    /// A case's timer ran out: page what is due.
    pub(super) fn case_due(&mut self, id: i64, now: DateTime<Utc>) {
        let cadence = self.setup.config.sr_engagement;
        let Some(case) = self.cases.get_mut(&id) else {
            return;
        };
        let fired = decide::fire(case, &cadence, now);
        let sr = case.sr_severity.clone();
        let (respond_by, owner) = (case.respond_by, case.owner.clone());
        self.dirty.cases.push(id);
        match fired {
            None => {}
            Some(Fired::ResponseBreached) => {
                self.metrics
                    .sr_response_breaches_total
                    .with_label_values(&[&sr])
                    .inc();
                let message = format!(
                    "no first response by the SR {sr} deadline {}",
                    respond_by.to_rfc3339()
                );
                self.case_timeline(id, now, "response_breached", "tocsin", message, json!({}));
                let target = Target::Levels(vec![0, 1]);
                self.page_case(id, PageEvent::ResponseBreached, target, now);
            }
            Some(Fired::EngagementDue) => {
                let message = format!("an update is due (SR {sr}): {owner} paged");
                self.case_timeline(id, now, "engagement_due", "tocsin", message, json!({}));
                self.page_case(id, PageEvent::EngagementDue, Target::Owner, now);
            }
            Some(Fired::EngagementMissed) => {
                self.metrics
                    .sr_engagement_missed_total
                    .with_label_values(&[&sr])
                    .inc();
                let message = format!("two update intervals missed (SR {sr}): escalated");
                self.case_timeline(id, now, "engagement_missed", "tocsin", message, json!({}));
                let target = Target::Levels(vec![0, 1]);
                self.page_case(id, PageEvent::EngagementMissed, target, now);
            }
        }
        self.schedule_case(id);
    }

    fn escalate_case(
        &mut self,
        id: i64,
        by: String,
        kind: Option<String>,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(case) = self.cases.get(&id) else {
            return Reply::NotFound(format!("case {id} is not open"));
        };
        if let Some(incident_id) = case.incident_id {
            return Reply::Conflict(format!(
                "case {id} is escalated already, to incident {incident_id}"
            ));
        }
        let mut labels = case.labels();
        if let Some(kind) = kind {
            labels.insert("kind".into(), kind);
        }
        let details = CriDetails {
            id: format!("case-{id}"),
            sr_severity: case.sr_severity.clone(),
            contact: case.contact.clone(),
            received_at: now,
            respond_by: case.respond_by,
        };
        let signal = Signal::customer_report(labels, Some(case.summary.clone()), details);
        let Some(incident_id) = self.signals_in(vec![signal], now) else {
            return Reply::Conflict(format!(
                "case {id}'s CRI opened no incident: no rule or default took it"
            ));
        };
        // The deadline stays the case's: the incident's own would breach it a second time.
        if let Some(paging) = self.paging.get_mut(&incident_id) {
            paging.response_breached = true;
        } else {
            self.paging
                .entry(incident_id)
                .or_default()
                .response_breached = true;
        }
        self.dirty.paging.insert(incident_id);
        self.timers.cancel(TimerKey::RespondBy(incident_id));
        self.with_case(id, now, |core, case| {
            case.incident_id = Some(incident_id);
            let message = format!("escalated to a CRI: incident {incident_id}");
            let data = json!({ "incident_id": incident_id });
            core.case_timeline(id, now, "escalated", &by, message, data);
            core.link_incident(case, incident_id, &by, now);
            Ok(())
        })
    }

    /// The incident's timeline names the case.
    fn link_incident(&mut self, case: &Case, incident_id: i64, by: &str, now: DateTime<Utc>) {
        self.dirty.incident_rows.push(TimelineEntry {
            incident_id,
            at: now,
            kind: "case_linked".into(),
            actor: by.to_string(),
            message: format!(
                "support case {} (SR {}, {}) is linked",
                case.id, case.sr_severity, case.customer
            ),
            data: json!({ "case_id": case.id }),
        });
    }

    /// A case linked to an incident that owns the deadline was responded to: the incident's
    /// deadline is met.
    fn incident_deadline_met(&mut self, case: &Case, by: &str, now: DateTime<Utc>) {
        let Some(incident_id) = case.incident_id.filter(|_| case.deadline_on_incident) else {
            return;
        };
        if !self.incidents.contains_key(&incident_id) {
            return;
        }
        self.paging
            .entry(incident_id)
            .or_default()
            .response_breached = true;
        self.dirty.paging.insert(incident_id);
        self.timers.cancel(TimerKey::RespondBy(incident_id));
        self.dirty.incident_rows.push(TimelineEntry {
            incident_id,
            at: now,
            kind: "case_responded".into(),
            actor: by.to_string(),
            message: format!("support case {} responded: the deadline is met", case.id),
            data: json!({ "case_id": case.id }),
        });
    }

    /// An incident was acknowledged: it meets the deadline of the cases linked to it.
    pub(super) fn cases_incident_acknowledged(
        &mut self,
        incident_id: i64,
        by: &str,
        now: DateTime<Utc>,
    ) {
        for id in self.cases_of(incident_id) {
            let _ = self.with_case(id, now, |core, case| {
                let met = decide::meet_deadline(case, now);
                let message = format!("incident {incident_id} acknowledged by {by}");
                let data = json!({ "incident_id": incident_id, "deadline_met": met });
                core.case_timeline(id, now, "incident_acknowledged", by, message, data);
                Ok(())
            });
        }
    }

    /// An incident was resolved: its cases say so, and stay open (only a person resolves a
    /// case).
    pub(super) fn cases_incident_resolved(&mut self, incident_id: i64, now: DateTime<Utc>) {
        for id in self.cases_of(incident_id) {
            let _ = self.with_case(id, now, |core, case| {
                let _ = case;
                let message = format!("incident {incident_id} resolved");
                let data = json!({ "incident_id": incident_id });
                core.case_timeline(id, now, "incident_resolved", "tocsin", message, data);
                Ok(())
            });
        }
    }

    fn cases_of(&self, incident_id: i64) -> Vec<i64> {
        let mut ids: Vec<i64> = self
            .cases
            .values()
            .filter(|c| c.incident_id == Some(incident_id))
            .map(|c| c.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn case_timeline(
        &mut self,
        case_id: i64,
        at: DateTime<Utc>,
        kind: &str,
        actor: &str,
        message: String,
        data: serde_json::Value,
    ) {
        self.dirty.case_timeline.push(CaseEntry {
            case_id,
            at,
            kind: kind.to_string(),
            actor: actor.to_string(),
            message,
            data,
        });
    }

    /// Page about case `id`: its policy's levels, or its owner.
    fn page_case(&mut self, id: i64, event: PageEvent, target: Target, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let Some(case) = self.cases.get(&id) else {
            return;
        };
        let policy = case
            .policy
            .as_ref()
            .and_then(|name| setup.paging.policies.get(name));
        let mut targets: Vec<(Option<usize>, String)> = Vec::new();
        if let Target::Owner = target {
            if setup.paging.responders.contains_key(&case.owner) {
                targets.push((None, format!("responder:{}", case.owner)));
            }
        }
        let levels = match target {
            Target::Levels(levels) => levels,
            Target::Owner if targets.is_empty() => vec![0],
            Target::Owner => Vec::new(),
        };
        if let Some(policy) = policy {
            for level in levels {
                for notify in policy
                    .levels
                    .get(level)
                    .map(|l| &l.notify[..])
                    .unwrap_or(&[])
                {
                    targets.push((Some(level), notify.clone()));
                }
            }
        }
        if targets.is_empty() {
            let message = format!("{event}: no case route pages this case");
            self.case_timeline(id, now, "unrouted", "tocsin", message, json!({}));
            return;
        }
        let policy_name = case.policy.clone();
        let payload = CasePayload::new(case, &setup.external_url);
        let view = case_incident_view(case, &setup.external_url);
        let mut reached = Vec::new();
        let mut skipped = Vec::new();
        for (level, target) in targets {
            match setup.paging.recipients(&target, now) {
                Ok(recipients) => {
                    for recipient in recipients {
                        if reached
                            .iter()
                            .any(|(_, r): &(Option<usize>, Recipient)| *r == recipient)
                        {
                            continue;
                        }
                        reached.push((level, recipient));
                    }
                }
                Err(why) => skipped.push(json!({ "target": target, "why": why })),
            }
        }
        let mut names = Vec::new();
        for (level, recipient) in reached {
            names.push(format!("{} ({})", recipient.id, recipient.channel.as_str()));
            let escalation = EscalationRef {
                policy: policy_name.clone(),
                level,
            };
            self.push_case_page(
                id,
                event,
                recipient,
                escalation,
                view.clone(),
                payload.clone(),
                now,
            );
        }
        let message = format!("{event}: paged {}", names.join(", "));
        let data = json!({ "event": event.as_str(), "reached": names, "skipped": skipped });
        self.case_timeline(id, now, "paged", "tocsin", message, data);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_case_page(
        &mut self,
        case_id: i64,
        event: PageEvent,
        recipient: Recipient,
        escalation: EscalationRef,
        incident: IncidentView,
        case: CasePayload,
        now: DateTime<Utc>,
    ) {
        let id = self.next_page_id;
        self.next_page_id += 1;
        let level = escalation.level;
        self.dirty.pages.push(Page {
            id,
            delivery_id: uuid::Uuid::new_v4().to_string(),
            incident_id: 0,
            case_id: Some(case_id),
            event,
            level,
            payload: PagePayload {
                context: Default::default(),
                version: "1".into(),
                event,
                incident,
                escalation,
                recipient: recipient.id.clone(),
                ack_url: None,
                case: Some(Box::new(case)),
                tsg_action: None,
            },
            recipient,
            created_at: now,
        });
    }

    /// An update to the customer's case owner, by email: the update's text and the case id.
    fn notify_customer(&mut self, case: &Case, text: &str, now: DateTime<Utc>) {
        let Some(email) = case.contact.email.clone() else {
            let message = "the customer's case owner has no email: not sent".to_string();
            self.case_timeline(
                case.id,
                now,
                "customer_not_notified",
                "tocsin",
                message,
                json!({}),
            );
            return;
        };
        let external = self.setup.external_url.clone();
        let mut payload = CasePayload::new(case, &external);
        payload.text = Some(text.to_string());
        let recipient = Recipient {
            id: format!("customer:{}", case.customer),
            channel: Channel::Email,
            address: email.clone(),
        };
        let escalation = EscalationRef {
            policy: None,
            level: None,
        };
        let view = case_incident_view(case, &external);
        self.push_case_page(
            case.id,
            PageEvent::CustomerUpdate,
            recipient,
            escalation,
            view,
            payload,
            now,
        );
        let message = format!("update sent to {email}");
        self.case_timeline(
            case.id,
            now,
            "customer_notified",
            "tocsin",
            message,
            json!({ "email": email }),
        );
    }
}

/// The `incident` of a case page: the case's own facts, id 0 unless it has an incident.
fn case_incident_view(case: &Case, external_url: &str) -> IncidentView {
    let id = case.incident_id.unwrap_or(0);
    IncidentView {
        id,
        title: format!(
            "Case #{}: SR {} {} {} {}",
            case.id, case.sr_severity, case.customer, case.service, case.region
        ),
        severity: 4,
        status: Status::Triggered,
        pinned: false,
        services: vec![case.service.clone()],
        regions: vec![case.region.clone()],
        customers: vec![case.customer.clone()],
        customer_count: 1,
        labels: case.labels(),
        opened_at: case.opened_at,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        respond_by: Some(case.respond_by),
        url: format!("{external_url}/api/v1/cases/{}", case.id),
        queue: None,
        queues: Vec::new(),
        sr_severity: Some(case.sr_severity.clone()),
        merged_into: None,
        assignee: None,
        tsg: None,
        tsg_action: None,
    }
}
