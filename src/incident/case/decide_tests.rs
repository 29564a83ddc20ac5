use chrono::{Duration, TimeZone};

use super::*;
use crate::incident::case::{CaseEscalation, CaseStatus};
use crate::signal::Contact;

fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap() + Duration::minutes(minutes)
}

fn case(sr: &str) -> Case {
    Case {
        id: 1,
        customer: "contoso".into(),
        service: "storage".into(),
        region: "china-east".into(),
        sr_severity: sr.into(),
        summary: "uploads fail".into(),
        contact: Contact::default(),
        status: CaseStatus::Open,
        opened_by: "sam".into(),
        opened_at: at(0),
        owner: "sam".into(),
        taken_at: None,
        respond_by: at(120),
        responded_at: None,
        responded_by: None,
        deadline_met_at: None,
        response_breached: false,
        deadline_on_incident: false,
        last_update_at: None,
        missed_intervals: 0,
        customer_exit_at: None,
        policy: None,
        incident_id: None,
        resolved_at: None,
        resolved_by: None,
        resolution: None,
        escalation: None,
        acknowledged_at: None,
        acknowledged_by: None,
    }
}

#[test]
fn a_page_escalates_when_due_until_someone_takes_it_up() {
    let cadence = SrEngagementConfig::default();
    let mut c = case("A");
    c.escalation = Some(CaseEscalation {
        event: "triggered".into(),
        level: 0,
        next_at: at(30),
    });
    assert_eq!(next_wake(&c, &cadence), Some(at(30)));
    assert_eq!(escalation_due(&c, at(29)), None);
    assert_eq!(escalation_due(&c, at(30)), Some(1));
    // A response is taking it up.
    updated(&mut c, "erin", at(20));
    assert_eq!(escalation_due(&c, at(30)), None);
    assert_eq!(next_wake(&c, &cadence), Some(at(80)));
    // A resolved case escalates no more.
    c.escalation = Some(CaseEscalation {
        event: "engagement_missed".into(),
        level: 1,
        next_at: at(40),
    });
    c.status = CaseStatus::Resolved;
    assert_eq!(escalation_due(&c, at(50)), None);
}

#[test]
fn an_unanswered_case_breaches_its_deadline_once() {
    let cadence = SrEngagementConfig::default();
    let mut c = case("A");
    assert_eq!(next_wake(&c, &cadence), Some(at(120)));
    assert_eq!(fire(&mut c, &cadence, at(119)), None);
    assert_eq!(
        fire(&mut c, &cadence, at(120)),
        Some(Fired::ResponseBreached)
    );
    assert_eq!(
        fire(&mut c, &cadence, at(500)),
        None,
        "a deadline breaches once"
    );
    assert_eq!(next_wake(&c, &cadence), None);
}

#[test]
fn a_response_meets_the_deadline_and_starts_the_cadence() {
    let cadence = SrEngagementConfig::default();
    let mut c = case("A");
    assert!(updated(&mut c, "sam", at(30)));
    assert_eq!(c.responded_by.as_deref(), Some("sam"));
    // SR A: an update every hour, around the clock.
    assert_eq!(next_wake(&c, &cadence), Some(at(90)));
    assert_eq!(fire(&mut c, &cadence, at(90)), Some(Fired::EngagementDue));
    assert_eq!(next_wake(&c, &cadence), Some(at(150)));
    assert_eq!(
        fire(&mut c, &cadence, at(150)),
        Some(Fired::EngagementMissed)
    );
    assert_eq!(next_wake(&c, &cadence), None, "escalated once, then waits");
    assert!(
        !updated(&mut c, "sam", at(200)),
        "the deadline was met already"
    );
    assert_eq!(c.responded_at, Some(at(30)), "the first response stays");
    assert_eq!(next_wake(&c, &cadence), Some(at(260)));
}

#[test]
fn sr_b_stops_when_the_customer_exits_and_sr_c_needs_only_its_response() {
    let cadence = SrEngagementConfig::default();
    let mut b = case("B");
    updated(&mut b, "sam", at(10));
    assert_eq!(next_wake(&b, &cadence), Some(at(250)));
    b.customer_exit_at = Some(at(20));
    assert_eq!(next_wake(&b, &cadence), None);
    let mut a = case("A");
    updated(&mut a, "sam", at(10));
    a.customer_exit_at = Some(at(20));
    assert_eq!(
        next_wake(&a, &cadence),
        Some(at(70)),
        "SR A works until resolved"
    );
    let mut c = case("C");
    updated(&mut c, "sam", at(10));
    assert_eq!(next_wake(&c, &cadence), None);
}

#[test]
fn an_incident_deadline_or_an_ack_leaves_the_case_timer_quiet() {
    let cadence = SrEngagementConfig::default();
    let mut c = case("B");
    c.deadline_on_incident = true;
    assert_eq!(next_wake(&c, &cadence), None);
    let mut c = case("B");
    assert!(meet_deadline(&mut c, at(5)));
    assert!(!meet_deadline(&mut c, at(6)));
    assert_eq!(
        next_wake(&c, &cadence),
        None,
        "no cadence before a response"
    );
    c.status = CaseStatus::Resolved;
    updated(&mut c, "sam", at(7));
    assert_eq!(
        next_wake(&c, &cadence),
        None,
        "a resolved case needs nothing"
    );
}
