//! Pages about support cases: to the levels of the case's policy or to its owner, with a
//! signed ack link, and the escalation that follows them; and updates emailed to the
//! customer.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::cases::Target;
use super::Core;
use crate::incident::case::{Case, CaseEscalation, CasePayload};
use crate::incident::{IncidentView, Status};
use crate::paging::page::EscalationRef;
use crate::paging::{Channel, Page, PageEvent, PagePayload, Recipient};

impl Core {
    /// Page about case `id`: its policy's levels, or its owner.
    pub(super) fn page_case(
        &mut self,
        id: i64,
        event: PageEvent,
        target: Target,
        now: DateTime<Utc>,
    ) {
        let setup = Arc::clone(&self.setup);
        let Some(case) = self.cases.get(&id) else {
            return;
        };
        let policy = case
            .policy
            .as_ref()
            .and_then(|name| setup.paging.policies.get(name));
        let last_level = match &target {
            Target::Levels(levels) => levels.iter().max().copied(),
            Target::Owner => None,
        };
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
        // The policy's next level follows on its timer unless someone takes the page up.
        let next = last_level.and_then(|level| {
            let after = policy?.levels.get(level + 1)?.after;
            Some(CaseEscalation {
                event: event.as_str().to_string(),
                level,
                next_at: now + after.chrono(),
            })
        });
        if let (Some(next), Some(case)) = (next, self.cases.get_mut(&id)) {
            case.escalation = Some(next);
        }
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
        self.count_page(crate::paging::page::CASE_RULE, &recipient, event, now);
        let ack_url = self
            .setup
            .ack_signer
            .as_ref()
            .filter(|_| event.calls_to_act())
            .map(|signer| {
                let expires = now + self.setup.config.server.ack_link_ttl.chrono();
                format!(
                    "{}/ack/{}",
                    self.setup.external_url,
                    signer.sign_case(case_id, &recipient.id, expires)
                )
            });
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
                ack_url,
                case: Some(Box::new(case)),
                tsg_action: None,
            },
            recipient,
            created_at: now,
        });
    }

    /// An update to the customer's case owner, by email: the update's text and the case id.
    pub(super) fn notify_customer(&mut self, case: &Case, text: &str, now: DateTime<Utc>) {
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
