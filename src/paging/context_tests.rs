use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::*;
use crate::config::{ClassificationConfig, ImpactKind};
use crate::incident::{lifecycle, Status};
use crate::paging::Channel;
use crate::signal::{Fingerprint, LabelSet, SourceKind};

fn at(seconds: i64) -> DateTime<Utc> {
    // 2026-01-05 09:00:00 UTC
    DateTime::from_timestamp(1_767_603_600 + seconds, 0).unwrap()
}

fn impact(id: i64, kind: ImpactKind, region: &str, customer: &str, started: i64) -> Impact {
    let labels = LabelSet::from(BTreeMap::from([
        ("service".to_string(), "storage".to_string()),
        ("region".to_string(), region.to_string()),
    ]));
    let mut annotations = BTreeMap::from([(
        "description".to_string(),
        format!("5xx above 5% in {region}"),
    )]);
    annotations.insert(
        "runbook_url".into(),
        "https://runbooks.example/storage-down".into(),
    );
    annotations.insert(
        GENERATOR_URL.into(),
        format!("http://prom:9090/graph?region={region}"),
    );
    annotations.insert("dashboard".into(), "javascript:alert(1)".into());
    Impact {
        inhibited_by: None,
        sla_measured: None,
        id,
        incident_id: 7,
        rule: "storage-down".into(),
        fingerprint: Fingerprint(id as u64),
        source: SourceKind::Alert,
        kind,
        sla_breach: kind == ImpactKind::Outage,
        business_impact: None,
        severity_floor: None,
        service: Some("storage".into()),
        region: Some(region.into()),
        customers: [customer.to_string()].into_iter().collect(),
        labels: Arc::new(labels),
        summary: format!("storage down in {region}").into(),
        started_at: at(started),
        cleared_at: None,
        firing_at_resolve: false,
        cri: None,
        annotations: Arc::new(LabelSet::from(annotations)),
    }
}

fn recipient(id: &str) -> Recipient {
    Recipient {
        id: id.into(),
        channel: Channel::Email,
        address: format!("{id}@example.com"),
    }
}

fn paged(who: &str, event: &str, seconds: i64, severity: u8) -> PagedEntry {
    PagedEntry {
        recipient: who.into(),
        channel: "email".into(),
        event: event.into(),
        level: Some(0),
        at: at(seconds),
        severity,
    }
}

fn names(id: &str) -> Option<String> {
    match id {
        "contoso" => Some("Contoso Ltd".into()),
        _ => None,
    }
}

/// Incident #7: an outage in china-east (contoso), then one in china-north (fabrikam):
/// Sev 1 by the Sev table.
fn incident() -> (Incident, Vec<Impact>) {
    let impacts = vec![
        impact(1, ImpactKind::Outage, "china-east", "contoso", 0),
        impact(2, ImpactKind::Outage, "china-north", "fabrikam", 90),
    ];
    let thresholds = ClassificationConfig::default();
    let (mut incident, _) = lifecycle::open(7, &impacts[0], &thresholds, at(0));
    lifecycle::attach(&mut incident, &impacts[1]);
    incident.severity = classify(impacts.iter(), &thresholds).0;
    (incident, impacts)
}

fn build(
    incident: &Incident,
    impacts: &[Impact],
    event: PageEvent,
    who: &str,
    history: &[PagedEntry],
    zone: Tz,
) -> PageContext {
    PageContext::build(Inputs {
        incident,
        impacts: impacts.iter().collect(),
        event,
        recipient: &recipient(who),
        history,
        merged: &[],
        zone,
        customer_name: &names,
        thresholds: &ClassificationConfig::default(),
        incident_url: "http://tocsin/incidents/7".into(),
        ack_url: Some("http://tocsin/ack/signed".into()),
        now: at(120),
    })
}

#[test]
fn a_page_says_what_broke_newest_first_and_why_it_is_this_severity() {
    let (incident, impacts) = incident();
    assert_eq!(incident.severity, 1);
    let c = build(
        &incident,
        &impacts,
        PageEvent::Triggered,
        "alice",
        &[],
        Tz::UTC,
    );
    assert!(c.first_page);
    assert_eq!(c.subject, "[Sev 1] storage down in china-east");
    let summaries: Vec<&str> = c.impacts.iter().map(|i| i.summary.as_str()).collect();
    assert_eq!(
        summaries,
        ["storage down in china-north", "storage down in china-east"]
    );
    assert_eq!(
        c.severity_reason,
        "Sev 1: major impact (outage or SLA breach), hitting 2 customers (Contoso Ltd and \
         fabrikam) in 2 regions (china-east and china-north) of 1 service (storage); decided \
         by rule storage-down (outage, SLA breach)"
    );
    assert_eq!(c.customers, ["Contoso Ltd", "fabrikam"]);
    assert_eq!(
        c.impacts[0].description.as_deref(),
        Some("5xx above 5% in china-north")
    );
    assert_eq!(
        c.impacts[0].generator_url.as_deref(),
        Some("http://prom:9090/graph?region=china-north")
    );
    // One runbook for both impacts; a script "link" is not a link.
    assert_eq!(
        c.runbooks,
        [Link {
            title: "Runbook: storage down in china-north".into(),
            url: "https://runbooks.example/storage-down".into()
        }]
    );
    assert_eq!(c.links.len(), 2, "{:?}", c.links);
    assert!(c.links.iter().all(|l| l.url.starts_with("http://prom")));
    assert_eq!(c.dashboard_url, "http://tocsin/incidents/7");
    assert_eq!(c.ack_url.as_deref(), Some("http://tocsin/ack/signed"));
    assert!(c.paged.is_empty());
    assert_eq!(c.opened_at, "2026-01-05 09:00:00 UTC");
}

#[test]
fn times_are_in_the_recipients_zone_to_the_second_with_the_zone_named() {
    let (incident, impacts) = incident();
    let history = [paged("bob", "triggered", 5, 1)];
    let c = build(
        &incident,
        &impacts,
        PageEvent::Triggered,
        "alice",
        &history,
        Tz::Asia__Shanghai,
    );
    assert_eq!(c.timezone, "Asia/Shanghai");
    assert_eq!(c.opened_at, "2026-01-05 17:00:00 CST (Asia/Shanghai)");
    assert_eq!(
        c.impacts[0].started_at,
        "2026-01-05 17:01:30 CST (Asia/Shanghai)"
    );
    assert_eq!(
        c.paged,
        [PagedLine {
            who: "bob".into(),
            channel: "email".into(),
            event: "triggered".into(),
            at: "2026-01-05 17:00:05 CST (Asia/Shanghai)".into(),
            level: Some(0),
        }]
    );
}

#[test]
fn a_raised_severity_is_news_to_someone_paged_before_and_a_whole_page_to_someone_new() {
    let (incident, impacts) = incident();
    let history = [paged("bob", "triggered", 0, 2)];
    let bob = build(
        &incident,
        &impacts,
        PageEvent::SeverityRaised,
        "bob",
        &history,
        Tz::UTC,
    );
    assert!(!bob.first_page);
    assert_eq!(
        bob.subject,
        "[Sev 1] SEVERITY RAISED: storage down in china-east"
    );
    let changed = bob.what_changed.unwrap();
    assert!(
        changed.starts_with(
            "Severity rose from Sev 2 to Sev 1, raised by the newest impact: storage down in \
             china-north (rule storage-down; storage, china-north)."
        ),
        "{changed}"
    );
    assert!(
        changed.contains("Paged before and not acknowledged: bob (email, 2026-01-05 09:00:00 UTC)"),
        "{changed}"
    );
    // Carol never heard of it: her subject says what the incident is first.
    let carol = build(
        &incident,
        &impacts,
        PageEvent::SeverityRaised,
        "carol",
        &history,
        Tz::UTC,
    );
    assert!(carol.first_page);
    assert_eq!(
        carol.subject,
        "[Sev 1] storage down in china-east (raised from Sev 2)"
    );
    assert!(carol
        .headline
        .starts_with("You are paged for Sev 1 incident #7"));
    assert_eq!(carol.impacts.len(), 2);
    assert_eq!(carol.paged.len(), 1);
}

#[test]
fn an_escalated_page_names_who_did_not_acknowledge() {
    let (incident, impacts) = incident();
    let history = [
        paged("bob", "triggered", 0, 1),
        paged("bob", "triggered", 0, 1),
    ];
    let c = build(
        &incident,
        &impacts,
        PageEvent::Escalated,
        "carol",
        &history,
        Tz::UTC,
    );
    assert_eq!(
        c.what_changed.as_deref(),
        Some("Escalated: paged before and not acknowledged: bob (email, 2026-01-05 09:00:00 UTC).")
    );
    assert_eq!(c.subject, "[Sev 1] storage down in china-east");
}

#[test]
fn a_person_set_severity_is_said_to_be_one() {
    let (mut incident, impacts) = incident();
    incident.severity = 0;
    incident.pinned = true;
    incident.status = Status::Acknowledged;
    incident.acknowledged_by = Some("alice".into());
    incident.acknowledged_at = Some(at(60));
    let c = build(
        &incident,
        &impacts,
        PageEvent::Acknowledged,
        "bob",
        &[paged("bob", "triggered", 0, 1)],
        Tz::UTC,
    );
    assert!(
        c.severity_reason
            .starts_with("Sev 0 set by a person; the impacts alone say Sev 1"),
        "{}",
        c.severity_reason
    );
    assert_eq!(
        c.acknowledged.as_deref(),
        Some("by alice at 2026-01-05 09:01:00 UTC")
    );
    assert_eq!(
        c.subject,
        "[Sev 0] ACKNOWLEDGED: storage down in china-east"
    );
}

#[test]
fn many_impacts_are_counted_past_the_ones_listed() {
    let (incident, _) = incident();
    let impacts: Vec<Impact> = (0..25)
        .map(|i| impact(i, ImpactKind::Outage, "china-east", "contoso", i))
        .collect();
    let c = build(
        &incident,
        &impacts,
        PageEvent::Triggered,
        "alice",
        &[],
        Tz::UTC,
    );
    assert_eq!((c.impacts.len(), c.impacts_total), (MAX_IMPACTS, 25));
    assert_eq!(c.impacts[0].id, 24);
}

#[test]
fn a_merged_page_says_which_incident_merged_into_which_and_what_it_brought() {
    let (incident, impacts) = incident();
    let merged = [MergedNews {
        incident: 9,
        title: "storage down in china-north".into(),
        impacts: vec![2],
    }];
    let c = PageContext::build(Inputs {
        incident: &incident,
        impacts: impacts.iter().collect(),
        event: PageEvent::Merged,
        recipient: &recipient("alice"),
        history: &[paged("alice", "triggered", 0, 1)],
        merged: &merged,
        zone: Tz::UTC,
        customer_name: &names,
        thresholds: &ClassificationConfig::default(),
        incident_url: "http://tocsin/incidents/7".into(),
        ack_url: None,
        now: at(120),
    });
    assert_eq!(
        c.what_changed.as_deref(),
        Some(
            "Incident #9 (storage down in china-north) was merged into #7, bringing 1 impact: \
             storage down in china-north (rule storage-down; storage, china-north)."
        )
    );
    assert_eq!(c.subject, "[Sev 1] MERGED: storage down in china-east");
    // Without news of a merge (a page made by an older version) it says nothing changed.
    let c = build(
        &incident,
        &impacts,
        PageEvent::Merged,
        "alice",
        &[paged("alice", "triggered", 0, 1)],
        Tz::UTC,
    );
    assert_eq!(c.what_changed, None);
}

#[test]
fn a_measured_sla_breach_says_what_was_measured() {
    let mut breached = impact(1, ImpactKind::Degradation, "china-east", "contoso", 0);
    breached.sla_breach = true;
    breached.sla_measured = Some(Box::new(crate::incident::sla::Measurement {
        service: "storage".into(),
        region: "china-east".into(),
        sla: 99.9,
        availability: 0.9921,
        burn_1h: 16.2,
        burn_6h: 7.4,
    }));
    let impacts = vec![breached];
    let thresholds = ClassificationConfig::default();
    let (incident, _) = lifecycle::open(7, &impacts[0], &thresholds, at(0));
    assert_eq!(incident.severity, 2);
    let c = build(
        &incident,
        &impacts,
        PageEvent::Triggered,
        "alice",
        &[],
        Tz::UTC,
    );
    assert_eq!(
        c.severity_reason,
        "Sev 2: SLA breached, hitting 1 customer (Contoso Ltd) in 1 region (china-east) of 1 \
         service (storage); decided by rule storage-down (degradation, below SLA, measured: \
         storage/china-east availability 99.21% over 30d (SLA 99.9%); burn 16.2x over 1h, \
         7.4x over 6h)"
    );
}

#[test]
fn the_incidents_tsg_leads_the_runbooks() {
    let (mut incident, impacts) = incident();
    incident.tsg = Some("https://wiki.example.com/tsg/storage".into());
    let c = build(
        &incident,
        &impacts,
        PageEvent::Triggered,
        "alice",
        &[],
        Tz::UTC,
    );
    let titles: Vec<(&str, &str)> = c
        .runbooks
        .iter()
        .map(|l| (l.title.as_str(), l.url.as_str()))
        .collect();
    assert_eq!(
        titles,
        [
            ("TSG", "https://wiki.example.com/tsg/storage"),
            (
                "Runbook: storage down in china-north",
                "https://runbooks.example/storage-down"
            ),
        ]
    );
}
