//! What the dashboard shows, shaped for its templates: plain values, times formatted,
//! nothing left for the template to compute.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::render::{age, opt_time, time};
use crate::engine::Setup;
use crate::incident::{Impact, Incident};
use crate::paging::PageEvent;
use crate::store::OutboxEntry;

/// One incident on the overview.
#[derive(Serialize)]
pub struct Card {
    pub id: i64,
    pub title: String,
    pub severity: u8,
    pub pinned: bool,
    pub status: &'static str,
    pub services: Vec<String>,
    pub regions: Vec<String>,
    pub customers: Vec<String>,
    pub customer_count: usize,
    pub opened_at: String,
    pub age: String,
    pub acknowledged_by: Option<String>,
    pub acknowledged_ago: Option<String>,
    pub respond_by: Option<String>,
    pub queue: Option<String>,
    pub assignee: Option<String>,
    /// Every triage queue it waits in.
    pub queues: Vec<String>,
    /// Its TSG link, and how its TSG action went (`running`, `succeeded`, …).
    pub tsg: Option<String>,
    pub tsg_action: Option<&'static str>,
    pub paged: Vec<Paged>,
    /// Why it is at its severity, as its timeline recorded (see `timeline::severity_reason`).
    pub reason: Option<String>,
    /// Nobody has acknowledged it yet.
    pub can_ack: bool,
}

/// Someone paged for an incident, and how their latest page fared.
#[derive(Serialize, PartialEq, Debug)]
pub struct Paged {
    pub who: String,
    pub channel: &'static str,
    pub delivery: &'static str,
}

/// A responder's display name: "Alice (alice)" when the config names them.
pub fn person(setup: &Setup, id: &str) -> String {
    match setup
        .paging
        .responders
        .get(id)
        .and_then(|r| r.name.as_deref())
    {
        Some(name) if name != id => format!("{name} ({id})"),
        _ => id.to_string(),
    }
}

/// Who was paged about the incident itself (not the ack and resolve notices that follow),
/// once per person and channel, with the delivery state of their latest page (queued,
/// sent, failing, dead).
pub fn paged(setup: &Setup, pages: &[OutboxEntry]) -> Vec<Paged> {
    let mut latest: BTreeMap<(String, &'static str), &'static str> = BTreeMap::new();
    for entry in pages {
        if matches!(
            entry.page.event,
            PageEvent::Acknowledged
                | PageEvent::Resolved
                | PageEvent::ImpactAdded
                | PageEvent::Merged
                | PageEvent::Reopened
                | PageEvent::TsgAction
        ) {
            continue;
        }
        latest.insert(
            (
                entry.page.recipient.id.clone(),
                entry.page.recipient.channel.as_str(),
            ),
            super::timeline::delivery_state(entry),
        );
    }
    latest
        .into_iter()
        .map(|((id, channel), delivery)| Paged {
            who: person(setup, &id),
            channel,
            delivery,
        })
        .collect()
}

pub fn card(setup: &Setup, incident: &Incident, pages: &[OutboxEntry], now: DateTime<Utc>) -> Card {
    Card {
        id: incident.id,
        title: incident.title.to_string(),
        severity: incident.severity,
        pinned: incident.pinned,
        status: incident.status.as_str(),
        services: incident.services.iter().cloned().collect(),
        regions: incident.regions.iter().cloned().collect(),
        customers: incident.customers.iter().cloned().collect(),
        customer_count: incident.customers.len(),
        opened_at: time(incident.opened_at),
        age: age(now, incident.opened_at),
        acknowledged_by: incident.acknowledged_by.clone(),
        acknowledged_ago: incident.acknowledged_at.map(|t| age(now, t)),
        respond_by: opt_time(incident.respond_by),
        queue: incident.queue.clone(),
        assignee: incident.assignee.clone(),
        queues: incident.queues().cloned().collect(),
        tsg: incident.tsg.clone(),
        tsg_action: incident
            .tsg_action
            .as_deref()
            .map(|a| a.outcome.map(|o| o.as_str()).unwrap_or("running")),
        paged: paged(setup, pages),
        reason: None,
        can_ack: incident.status == crate::incident::Status::Triggered,
    }
}

#[derive(Serialize)]
pub struct ImpactRow {
    pub id: i64,
    pub rule: String,
    pub kind: String,
    pub sla_breach: bool,
    /// What was measured when `sla_breach: auto` breached.
    pub sla_measured: Option<String>,
    pub business_impact: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub customers: Vec<String>,
    pub summary: String,
    pub started_at: String,
    pub cleared_at: Option<String>,
    pub active: bool,
    /// Its incident was resolved while its signal still fired (see `Impact`).
    pub firing_at_resolve: bool,
    pub description: Option<String>,
    /// Its annotations that are http(s) links: the runbook first, then the alert's source.
    pub links: Vec<AnnotationLink>,
    /// Its other annotations (not the summary, description or links), by name.
    pub annotations: Vec<(String, String)>,
}

#[derive(Serialize)]
pub struct AnnotationLink {
    pub title: String,
    pub url: String,
}

/// The serde name of an enum value (`data_loss`, `high`), as the API spells it.
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

pub fn impact_row(impact: &Impact) -> ImpactRow {
    ImpactRow {
        id: impact.id,
        rule: impact.rule.to_string(),
        kind: serde_name(&impact.kind),
        sla_breach: impact.sla_breach,
        sla_measured: impact.sla_measured.as_ref().map(|m| m.to_string()),
        business_impact: impact.business_impact.as_ref().map(serde_name),
        service: impact.service.clone(),
        region: impact.region.clone(),
        customers: impact.customers.iter().cloned().collect(),
        summary: impact.summary.to_string(),
        started_at: time(impact.started_at),
        cleared_at: opt_time(impact.cleared_at),
        active: impact.is_active(),
        firing_at_resolve: impact.firing_at_resolve,
        description: impact.annotations.get("description").map(str::to_string),
        links: annotation_links(impact),
        annotations: impact
            .annotations
            .iter()
            .filter(|(k, v)| {
                !matches!(*k, "summary" | "description") && !crate::signal::is_web_link(v)
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// An impact's annotations that are http(s) links, named for a reader.
fn annotation_links(impact: &Impact) -> Vec<AnnotationLink> {
    let mut links: Vec<AnnotationLink> = impact
        .annotations
        .iter()
        .filter(|(_, v)| crate::signal::is_web_link(v))
        .map(|(k, v)| AnnotationLink {
            title: match k {
                "runbook_url" | "runbook" | "tsg_url" => "Runbook".to_string(),
                crate::signal::GENERATOR_URL => "Alert source".to_string(),
                other => other.replace('_', " "),
            },
            url: v.to_string(),
        })
        .collect();
    links.sort_by_key(|l| match l.title.as_str() {
        "Runbook" => 0,
        "Alert source" => 1,
        _ => 2,
    });
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::paging::{Channel, Page, PagePayload, Recipient};
    use crate::store::OutboxStatus;

    fn entry(id: i64, who: &str, event: PageEvent, status: OutboxStatus) -> OutboxEntry {
        let at = DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let incident = Incident {
            id: 1,
            title: "t".into(),
            severity: 2,
            pinned: false,
            status: crate::incident::Status::Triggered,
            impact_ids: vec![],
            labels: Default::default(),
            services: Default::default(),
            regions: Default::default(),
            customers: Default::default(),
            opened_at: at,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            respond_by: None,
            sr_severity: None,
            queue: None,
            other_queues: Vec::new(),
            merged_into: None,
            assignee: None,
            tsg: None,
            tsg_action: None,
            blast: Default::default(),
        };
        OutboxEntry {
            page: Page {
                id,
                delivery_id: format!("d{id}"),
                incident_id: 1,
                case_id: None,
                event,
                recipient: Recipient {
                    id: who.into(),
                    channel: Channel::Email,
                    address: format!("{who}@example.com"),
                },
                level: Some(0),
                payload: PagePayload {
                    version: "1".into(),
                    event,
                    incident: crate::incident::IncidentView::new(&incident, ""),
                    escalation: crate::paging::page::EscalationRef {
                        policy: None,
                        level: Some(0),
                    },
                    recipient: who.into(),
                    ack_url: None,
                    context: None,
                    case: None,
                    tsg_action: None,
                },
                created_at: at + chrono::Duration::seconds(id),
            },
            status,
            attempts: 1,
            next_attempt_at: at,
            delivered_at: None,
            last_error: None,
        }
    }

    #[test]
    fn paged_lists_each_person_once_with_their_latest_page_and_skips_notices() {
        let setup = Setup::new(Config::default(), None);
        let pages = [
            entry(1, "alice", PageEvent::Triggered, OutboxStatus::Failed),
            entry(2, "alice", PageEvent::Escalated, OutboxStatus::Delivered),
            entry(3, "bob", PageEvent::Escalated, OutboxStatus::Pending),
            // Notices that it was acknowledged are not "who was paged".
            entry(4, "carol", PageEvent::Acknowledged, OutboxStatus::Delivered),
        ];
        assert_eq!(
            paged(&setup, &pages),
            vec![
                Paged {
                    who: "alice".into(),
                    channel: "email",
                    delivery: "sent"
                },
                Paged {
                    who: "bob".into(),
                    channel: "email",
                    delivery: "failing"
                },
            ]
        );
    }
}
