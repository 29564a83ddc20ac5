//! The bodies of the shipped webhook `format:`s, each written from the page context: pure,
//! so every attempt sends the same bytes and each is tested against what its product
//! documents as required.

pub mod ntfy;
pub mod pagerduty;
pub mod slack;
pub mod teams;

use crate::config::WebhookFormat;
use crate::paging::PagePayload;

/// What a format needs beyond the page: the secrets and names from the webhook's config.
#[derive(Default)]
pub struct Extras<'a> {
    /// `format: pagerduty`: the routing key.
    pub routing_key: Option<&'a str>,
    /// `format: ntfy`: the topic.
    pub topic: Option<&'a str>,
}

/// The JSON body of `format` for the page; `None` for `tocsin`, whose body is the payload.
pub fn body(
    format: WebhookFormat,
    payload: &PagePayload,
    extras: &Extras<'_>,
) -> Option<serde_json::Value> {
    match format {
        WebhookFormat::Tocsin => None,
        WebhookFormat::Slack => Some(slack::body(payload)),
        WebhookFormat::Teams => Some(teams::body(payload)),
        WebhookFormat::Pagerduty => Some(pagerduty::body(
            payload,
            extras.routing_key.unwrap_or_default(),
        )),
        WebhookFormat::Ntfy => Some(ntfy::body(payload, extras.topic.unwrap_or_default())),
    }
}

/// The ack link a page offers as a button: none on the notice of an acknowledgement or a
/// resolution, where there is nothing left to acknowledge.
pub fn ack_button(payload: &PagePayload) -> Option<&str> {
    match payload.event {
        crate::paging::PageEvent::Acknowledged | crate::paging::PageEvent::Resolved => None,
        _ => payload.ack_url.as_deref(),
    }
}

/// `text` cut to at most `max` characters, with `…` where it was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(crate) mod sample {
    //! A page with everything in it, for the format tests.

    use crate::incident::{IncidentView, Status};
    use crate::paging::context::{ImpactLine, Link, PagedLine};
    use crate::paging::page::EscalationRef;
    use crate::paging::{PageContext, PageEvent, PagePayload};

    pub fn payload(event: PageEvent) -> PagePayload {
        PagePayload {
            case: Default::default(),
            tsg_action: None,
            version: "1".into(),
            event,
            incident: IncidentView {
                tsg: Default::default(),
                tsg_action: None,
                id: 7,
                title: "storage down in china-east".into(),
                severity: 1,
                status: Status::Triggered,
                pinned: false,
                services: vec!["storage".into()],
                regions: vec!["china-east".into(), "china-north".into()],
                customers: vec!["contoso".into(), "fabrikam".into()],
                customer_count: 2,
                labels: Default::default(),
                opened_at: chrono::DateTime::from_timestamp(1_767_603_600, 0).unwrap(),
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                respond_by: None,
                url: "https://tocsin.example/incidents/7".into(),
                queue: None,
                queues: Vec::new(),
                sr_severity: None,
                merged_into: None,
                assignee: None,
            },
            escalation: EscalationRef {
                policy: Some("storage".into()),
                level: Some(0),
            },
            recipient: "alice".into(),
            ack_url: Some("https://tocsin.example/ack/abc.def".into()),
            context: Some(PageContext {
                event: event.as_str().into(),
                first_page: true,
                subject: "[Sev 1] storage down in china-east".into(),
                headline: "You are paged for Sev 1 incident #7.".into(),
                what_changed: None,
                incident_id: 7,
                title: "storage down in china-east".into(),
                severity: 1,
                severity_reason: "Sev 1: major impact on 2 customers <&> across 2 regions".into(),
                status: "triggered".into(),
                services: vec!["storage".into()],
                regions: vec!["china-east".into(), "china-north".into()],
                customers: vec!["Contoso Ltd".into(), "fabrikam".into()],
                impacts: vec![ImpactLine {
                    id: 2,
                    summary: "storage down in china-north".into(),
                    rule: "StorageDown".into(),
                    kind: "outage".into(),
                    service: Some("storage".into()),
                    region: Some("china-north".into()),
                    customers: vec!["fabrikam".into()],
                    started_at: "2026-01-05 17:01:30 CST (Asia/Shanghai)".into(),
                    active: true,
                    description: Some("5xx above 5%".into()),
                    runbook_url: Some("https://runbooks.example/storage".into()),
                    generator_url: Some("http://prom:9090/graph?g0.expr=up".into()),
                }],
                impacts_total: 1,
                runbooks: vec![Link {
                    title: "Runbook: storage down in china-north".into(),
                    url: "https://runbooks.example/storage".into(),
                }],
                links: vec![],
                dashboard_url: "https://tocsin.example/incidents/7".into(),
                ack_url: Some("https://tocsin.example/ack/abc.def".into()),
                paged: vec![PagedLine {
                    who: "bob".into(),
                    channel: "email".into(),
                    event: "triggered".into(),
                    at: "2026-01-05 17:00:05 CST (Asia/Shanghai)".into(),
                    level: Some(0),
                }],
                opened_at: "2026-01-05 17:00:00 CST (Asia/Shanghai)".into(),
                acknowledged: None,
                timezone: "Asia/Shanghai".into(),
                recipient: "alice".into(),
            }),
        }
    }
}
