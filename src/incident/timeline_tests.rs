use chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

fn at(minutes: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_571_200 + minutes * 60, 0).unwrap()
}

fn resolved(by: &str, note: Option<&str>, still_firing: &[(i64, &str)]) -> (String, Value) {
    let entry = Entry::Resolved {
        by: by.into(),
        note: note.map(str::to_string),
        still_firing: still_firing
            .iter()
            .map(|(id, s)| (*id, s.to_string()))
            .collect(),
    };
    (entry.message(), entry.data())
}

#[test]
fn a_resolve_with_nothing_firing_says_who_and_why() {
    let (message, data) = resolved("carol", Some("failover done"), &[]);
    assert_eq!(message, "resolved by carol: failover done");
    assert_eq!(data, json!({ "note": "failover done" }));
    let (message, data) = resolved("carol", Some(""), &[]);
    assert_eq!(message, "resolved by carol");
    assert_eq!(data, json!({ "note": "" }));
    assert_eq!(resolved("tocsin", None, &[]).0, "resolved by tocsin");
}

#[test]
fn a_resolve_names_what_still_fires() {
    let (message, data) = resolved("carol", None, &[(3, "storage down in east")]);
    assert_eq!(
        message,
        "resolved by carol; still firing at resolve: storage down in east (impact 3) \
         (its next firing observation opens a new incident)"
    );
    assert_eq!(data, json!({ "note": null, "still_firing": [3] }));
    let many: Vec<(i64, &str)> = (1..=5).map(|id| (id, "down")).collect();
    let (message, data) = resolved("carol", Some("restarted"), &many);
    assert_eq!(
        message,
        "resolved by carol: restarted; still firing at resolve: down (impact 1), \
         down (impact 2), down (impact 3) and 2 more (their next firing observations \
         open a new incident)"
    );
    assert_eq!(data["still_firing"], json!([1, 2, 3, 4, 5]));
}

/// Each kind of entry as its row reads: kind, actor, message and data.
#[test]
fn every_entry_renders_as_its_row() {
    let cases: Vec<(Entry, &str, &str, &str, Value)> = vec![
        (
            Entry::Opened {
                rule: "disk".into(),
                severity: 2,
                reason: "SLA breached".into(),
                summary: "disk full".into(),
            },
            "opened",
            "disk",
            "opened at Sev 2 (SLA breached): disk full",
            json!({ "severity": 2 }),
        ),
        (
            Entry::ImpactAdded {
                rule: "disk".into(),
                first: "disk full (storage, east)".into(),
                impacts: vec![4],
            },
            "impact_added",
            "disk",
            "impact added by disk: disk full (storage, east)",
            json!({ "impact": 4 }),
        ),
        (
            Entry::ImpactAdded {
                rule: "disk".into(),
                first: "disk full (storage)".into(),
                impacts: vec![4, 5, 6],
            },
            "impact_added",
            "disk",
            "3 impacts added by disk: disk full (storage) and 2 more",
            json!({ "impacts": [4, 5, 6] }),
        ),
        (
            Entry::ImpactCleared {
                rule: "disk".into(),
                impact: 4,
                summary: "disk full".into(),
                cause: ClearCause::ConditionStopped {
                    rule: "disk".into(),
                },
            },
            "impact_cleared",
            "disk",
            "impact cleared (rule disk condition stopped): disk full",
            json!({ "impact": 4 }),
        ),
        (
            Entry::ImpactCleared {
                rule: "disk".into(),
                impact: 4,
                summary: "disk full".into(),
                cause: ClearCause::RuleRemoved {
                    rule: "disk".into(),
                },
            },
            "impact_cleared",
            "disk",
            "impact cleared (rule disk removed by a reload): disk full",
            json!({ "impact": 4 }),
        ),
        (
            Entry::MergedInto { into: 3 },
            "merged",
            TOCSIN,
            "merged into incident 3",
            json!({ "into": 3 }),
        ),
        (
            Entry::MergedFrom {
                from: 5,
                impacts: vec![8, 9],
            },
            "merged",
            TOCSIN,
            "incident 5 merged into this one",
            json!({ "from": 5, "impacts": [8, 9] }),
        ),
        (
            Entry::SeverityRaised {
                cause: "disk".into(),
                from: 4,
                to: 2,
                reason: "SLA breached".into(),
            },
            "severity_changed",
            "disk",
            "severity raised from Sev 4 to Sev 2 (SLA breached)",
            json!({ "from": 4, "to": 2 }),
        ),
        (
            Entry::SeverityHeldPinned {
                cause: "disk".into(),
                computed: 1,
                reason: "why".into(),
                pinned: 3,
            },
            "severity_pinned",
            "disk",
            "impacts now say Sev 1 (why); severity stays pinned at Sev 3",
            json!({ "computed": 1 }),
        ),
        (
            Entry::SeveritySet {
                by: "bob".into(),
                from: 4,
                to: 1,
                reason: Some("customers call".into()),
            },
            "severity_changed",
            "bob",
            "severity set from Sev 4 to Sev 1 and pinned by bob: customers call",
            json!({ "from": 4, "to": 1, "pinned": true, "reason": "customers call" }),
        ),
        (
            Entry::SeverityUnpinned {
                by: "bob".into(),
                reason: Some(String::new()),
            },
            "severity_unpinned",
            "bob",
            "severity unpinned by bob",
            Value::Null,
        ),
        (
            Entry::Acknowledged { by: "ann".into() },
            "acknowledged",
            "ann",
            "acknowledged by ann",
            Value::Null,
        ),
        (
            Entry::AckKept { by: "ann".into() },
            "ack_kept",
            TOCSIN,
            "severity rose; acknowledgement by ann kept: later levels wait for it to lapse",
            Value::Null,
        ),
        (
            Entry::AckLapsed { by: "ann".into() },
            "ack_lapsed",
            TOCSIN,
            "acknowledgement by ann lapsed: escalation resumes",
            Value::Null,
        ),
        (
            Entry::Note {
                by: "ann".into(),
                text: "looking".into(),
            },
            "note",
            "ann",
            "looking",
            Value::Null,
        ),
        (
            Entry::Unrouted { severity: 3 },
            "unrouted",
            TOCSIN,
            "no route matches Sev 3: recorded, not paged",
            Value::Null,
        ),
        (
            Entry::UnknownPolicy {
                route: 1,
                policy: "gone".into(),
            },
            "unrouted",
            TOCSIN,
            "route 1 names unknown policy gone",
            Value::Null,
        ),
        (
            Entry::Queued {
                route: 2,
                queue: "triage".into(),
            },
            "queued",
            TOCSIN,
            "route 2 put it in triage queue triage: no page",
            json!({ "queue": "triage" }),
        ),
        (
            Entry::Routed {
                route: 0,
                policy: "storage".into(),
            },
            "routed",
            TOCSIN,
            "route 0 → escalation policy storage",
            json!({ "route": 0, "policy": "storage" }),
        ),
        (
            Entry::Silenced {
                silence: 0,
                comment: Some("upgrade".into()),
                until: Some(at(30)),
            },
            "silenced",
            TOCSIN,
            "silenced by silence 0 (upgrade) until 2026-01-05T00:30:00+00:00: recorded, not paged",
            json!({ "silence": 0 }),
        ),
        (
            Entry::Paused {
                windows: "office".into(),
                until: None,
            },
            "paused",
            TOCSIN,
            "outside office: paging waits until never",
            Value::Null,
        ),
        (
            Entry::PagedLevel {
                event: "triggered",
                level: 0,
                policy: "storage".into(),
                reached: vec![],
            },
            "paged",
            TOCSIN,
            "triggered: level 0 of storage → nobody",
            json!({ "event": "triggered", "level": 0, "policy": "storage" }),
        ),
        (
            Entry::Notified {
                event: "resolved",
                recipients: vec!["ann (email)".into(), "bob (webhook)".into()],
            },
            "paged",
            TOCSIN,
            "resolved sent to ann (email), bob (webhook)",
            json!({ "event": "resolved" }),
        ),
        (
            Entry::PageSkipped {
                level: 1,
                target: "schedule:x".into(),
                why: "nobody is on call".into(),
            },
            "page_skipped",
            TOCSIN,
            "level 1 target schedule:x: nobody is on call",
            Value::Null,
        ),
        (
            Entry::BreachUnpaged,
            "page_skipped",
            TOCSIN,
            "response_breached: no escalation policy to notify",
            Value::Null,
        ),
        (
            Entry::ResponseBreached {
                sr_severity: "A".into(),
                respond_by: Some(at(0)),
            },
            "response_breached",
            TOCSIN,
            "SR A initial response due 2026-01-05T00:00:00+00:00 breached: not acknowledged",
            json!({ "sr_severity": "A" }),
        ),
        (
            Entry::DeliveryFailed {
                recipient: "ann".into(),
                level: Some(0),
                reason: "refused".into(),
            },
            "delivery_failed",
            TOCSIN,
            "page to ann given up: refused",
            json!({ "recipient": "ann", "level": 0 }),
        ),
    ];
    for (entry, kind, actor, message, data) in cases {
        let row = entry.row(7, at(1));
        assert_eq!(
            (
                row.incident_id,
                row.at,
                &*row.kind,
                &*row.actor,
                &*row.message,
                &row.data
            ),
            (7, at(1), kind, actor, message, &data),
            "{entry:?}"
        );
    }
}
