//! Messages that are not about one incident: a test page, and the notice a responder gets
//! when their shift begins. They travel as pages (the same email and webhook body) whose
//! `incident` is a stand-in with id 0 saying what the message is.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::page::{EscalationRef, PageEvent, PagePayload};
use crate::incident::{IncidentView, Status};

/// An incident of the open ones a responder inherits: id, severity, title.
#[derive(Clone, Debug, PartialEq)]
pub struct Inherited {
    pub id: i64,
    pub severity: u8,
    pub title: String,
}

fn stand_in(
    title: String,
    labels: BTreeMap<String, String>,
    external_url: &str,
    now: DateTime<Utc>,
) -> IncidentView {
    IncidentView {
        tsg: Default::default(),
        tsg_action: None,
        id: 0,
        title,
        severity: 4,
        status: Status::Triggered,
        pinned: false,
        services: Vec::new(),
        regions: Vec::new(),
        customers: Vec::new(),
        customer_count: 0,
        labels,
        opened_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: None,
        respond_by: None,
        url: format!("{external_url}/"),
        queue: None,
        queues: Vec::new(),
        sr_severity: None,
        merged_into: None,
        assignee: None,
    }
}

/// A test page for `responder`.
pub fn test_page(responder: &str, external_url: &str, now: DateTime<Utc>) -> PagePayload {
    let labels = BTreeMap::from([("tocsin_notice".to_string(), "test".to_string())]);
    PagePayload {
        case: Default::default(),
        tsg_action: None,
        version: "1".into(),
        event: PageEvent::Test,
        incident: stand_in(
            format!("Test page for {responder}: no action needed"),
            labels,
            external_url,
            now,
        ),
        escalation: EscalationRef {
            policy: None,
            level: None,
        },
        recipient: responder.to_string(),
        ack_url: None,
        context: None,
    }
}

/// The notice of a shift in `schedule` that `responder` holds until `until`, naming the
/// open incidents they inherit (in the title and the `open_incidents` label).
pub fn shift_started(
    schedule: &str,
    responder: &str,
    until: Option<DateTime<Utc>>,
    inherited: &[Inherited],
    external_url: &str,
    now: DateTime<Utc>,
) -> PagePayload {
    let end = until.map_or_else(|| "further notice".to_string(), |t| t.to_rfc3339());
    let open = match inherited.len() {
        0 => "no open incidents".to_string(),
        1 => "1 open incident".to_string(),
        n => format!("{n} open incidents"),
    };
    let list: Vec<String> = inherited
        .iter()
        .map(|i| format!("#{} (Sev {}) {}", i.id, i.severity, i.title))
        .collect();
    let title = if list.is_empty() {
        format!("You are on call in {schedule} until {end}; {open}")
    } else {
        format!(
            "You are on call in {schedule} until {end}; you inherit {open}: {}",
            list.join("; ")
        )
    };
    let ids: Vec<String> = inherited.iter().map(|i| i.id.to_string()).collect();
    let mut labels = BTreeMap::from([
        ("tocsin_notice".to_string(), "shift_started".to_string()),
        ("schedule".to_string(), schedule.to_string()),
        ("open_incidents".to_string(), ids.join(",")),
    ]);
    if let Some(t) = until {
        labels.insert("shift_ends_at".to_string(), t.to_rfc3339());
    }
    PagePayload {
        case: Default::default(),
        tsg_action: None,
        version: "1".into(),
        event: PageEvent::ShiftStarted,
        incident: stand_in(title, labels, external_url, now),
        escalation: EscalationRef {
            policy: None,
            level: None,
        },
        recipient: responder.to_string(),
        ack_url: None,
        context: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_shift_notice_names_the_schedule_its_end_and_what_is_open() {
        let inherited = [
            Inherited {
                id: 3,
                severity: 1,
                title: "storage down".into(),
            },
            Inherited {
                id: 7,
                severity: 2,
                title: "sqldb slow".into(),
            },
        ];
        let until = at("2026-01-12T09:00:00Z");
        let p = shift_started("primary", "bob", Some(until), &inherited, "http://t", until);
        assert_eq!(p.event, PageEvent::ShiftStarted);
        assert_eq!(
            p.incident.title,
            "You are on call in primary until 2026-01-12T09:00:00+00:00; you inherit 2 open \
             incidents: #3 (Sev 1) storage down; #7 (Sev 2) sqldb slow"
        );
        assert_eq!(p.incident.labels["open_incidents"], "3,7");
        assert_eq!(p.incident.labels["schedule"], "primary");
        let none = shift_started("primary", "bob", None, &[], "http://t", until);
        assert_eq!(
            none.incident.title,
            "You are on call in primary until further notice; no open incidents"
        );
    }

    #[test]
    fn a_test_page_says_no_action_is_needed() {
        let p = test_page("alice", "http://t", at("2026-01-12T09:00:00Z"));
        assert_eq!(p.event, PageEvent::Test);
        assert_eq!(p.incident.title, "Test page for alice: no action needed");
        assert_eq!(p.recipient, "alice");
    }
}
