//! `format: pagerduty`: PagerDuty Events API v2 (developer.pagerduty.com, "Send an Alert
//! Event"). A page that asks for a response triggers (again: PagerDuty updates the alert of
//! the same `dedup_key`), an acknowledgement acknowledges and a resolution resolves, all
//! with `dedup_key` `tocsin-<incident id>`.
//!
//! Required: `routing_key`, `event_action`; for `trigger` also `payload.summary` (at most
//! 1024 characters), `payload.source` and `payload.severity` (critical, error, warning or
//! info); `dedup_key` (at most 255 characters) for acknowledge and resolve.

use serde_json::{json, Value};

use super::clip;
use crate::paging::{PageEvent, PagePayload};

/// PagerDuty's severity for a Sev.
pub fn severity(sev: u8) -> &'static str {
    match sev {
        0 | 1 => "critical",
        2 => "error",
        3 => "warning",
        _ => "info",
    }
}

pub fn dedup_key(incident: i64) -> String {
    format!("tocsin-{incident}")
}

pub fn body(payload: &PagePayload, routing_key: &str) -> Value {
    let page = payload.context();
    let dedup_key = dedup_key(payload.incident.id);
    let action = match payload.event {
        PageEvent::Acknowledged => "acknowledge",
        PageEvent::Resolved => "resolve",
        _ => "trigger",
    };
    if action != "trigger" {
        return json!({
            "routing_key": routing_key,
            "event_action": action,
            "dedup_key": dedup_key,
        });
    }
    let mut links =
        vec![json!({ "href": page.dashboard_url, "text": "Open the incident in tocsin" })];
    if let Some(ack) = &payload.ack_url {
        links.push(json!({ "href": ack, "text": "Acknowledge in tocsin" }));
    }
    for link in page.runbooks.iter().chain(page.links.iter()) {
        links.push(json!({ "href": link.url, "text": link.title }));
    }
    let impacts: Vec<Value> = page
        .impacts
        .iter()
        .map(|i| {
            json!({
                "summary": i.summary,
                "kind": i.kind,
                "service": i.service,
                "region": i.region,
                "customers": i.customers,
                "started_at": i.started_at,
                "active": i.active,
                "description": i.description,
                "runbook_url": i.runbook_url,
                "generator_url": i.generator_url,
            })
        })
        .collect();
    let paged: Vec<String> = page
        .paged
        .iter()
        .map(|p| format!("{} by {} at {} ({})", p.who, p.channel, p.at, p.event))
        .collect();
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": clip(&page.subject, 1024),
            "source": "tocsin",
            "severity": severity(page.severity),
            "timestamp": payload.incident.opened_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "component": page.services.join(", "),
            "group": page.regions.join(", "),
            "class": page.impacts.first().map(|i| i.kind.clone()).unwrap_or_default(),
            "custom_details": {
                "incident": page.incident_id,
                "event": page.event,
                "headline": page.headline,
                "what_changed": page.what_changed,
                "why_this_severity": page.severity_reason,
                "status": page.status,
                "customers": page.customers,
                "regions": page.regions,
                "services": page.services,
                "opened_at": page.opened_at,
                "impacts": impacts,
                "impacts_total": page.impacts_total,
                "also_paged": paged,
                "timezone": page.timezone,
            },
        },
        "links": links,
        "client": "tocsin",
        "client_url": page.dashboard_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::notify::format::sample::payload;

    /// What the Events API v2 requires of an event.
    pub fn assert_valid_event(body: &Value) {
        assert!(body["routing_key"].as_str().is_some_and(|k| !k.is_empty()));
        let action = body["event_action"].as_str().unwrap();
        assert!(["trigger", "acknowledge", "resolve"].contains(&action));
        let dedup = body["dedup_key"].as_str().unwrap();
        assert!(!dedup.is_empty() && dedup.len() <= 255);
        if action == "trigger" {
            let summary = body["payload"]["summary"].as_str().unwrap();
            assert!(!summary.is_empty() && summary.chars().count() <= 1024);
            assert!(body["payload"]["source"]
                .as_str()
                .is_some_and(|s| !s.is_empty()));
            let severity = body["payload"]["severity"].as_str().unwrap();
            assert!(["critical", "error", "warning", "info"].contains(&severity));
            assert!(chrono::DateTime::parse_from_rfc3339(
                body["payload"]["timestamp"].as_str().unwrap()
            )
            .is_ok());
            for link in body["links"].as_array().unwrap() {
                assert!(link["href"].as_str().unwrap().starts_with("http"));
            }
        }
    }

    #[test]
    fn a_page_triggers_and_an_ack_and_a_resolve_follow_with_the_same_dedup_key() {
        let trigger = body(&payload(PageEvent::Triggered), "R0UT1NG");
        assert_valid_event(&trigger);
        assert_eq!(trigger["event_action"], "trigger");
        assert_eq!(trigger["dedup_key"], "tocsin-7");
        assert_eq!(trigger["payload"]["severity"], "critical");
        assert_eq!(
            trigger["payload"]["summary"],
            "[Sev 1] storage down in china-east"
        );
        assert_eq!(trigger["payload"]["component"], "storage");
        assert_eq!(
            trigger["links"][1]["href"],
            "https://tocsin.example/ack/abc.def"
        );
        assert_eq!(
            trigger["payload"]["custom_details"]["impacts"][0]["runbook_url"],
            "https://runbooks.example/storage"
        );
        for (event, action) in [
            (PageEvent::Acknowledged, "acknowledge"),
            (PageEvent::Resolved, "resolve"),
            (PageEvent::SeverityRaised, "trigger"),
            (PageEvent::Escalated, "trigger"),
        ] {
            let b = body(&payload(event), "R0UT1NG");
            assert_valid_event(&b);
            assert_eq!(
                (b["event_action"].as_str(), b["dedup_key"].as_str()),
                (Some(action), Some("tocsin-7"))
            );
        }
        assert_eq!(
            [0, 1, 2, 3, 4].map(severity),
            ["critical", "critical", "error", "warning", "info"]
        );
    }
}
