//! Who is paged when, on tokio's paused clock, asserting on the outbox and the timeline:
//! levels and their repeats, acks and their timeout, a severity rise, business hours, the
//! sev4 queue, a customer's respond-by deadline, and silences.

use crate::support::paging::{alert, cri, utc, FrozenEngine};
use crate::support::CATALOG;
use tocsin::engine::Input;

use super::MONDAY_MORNING;

/// Responders reached by email (written to `.eml` files, so delivery needs no network and
/// never retries), a policy per kind of incident, and routes like those of the example in
/// docs/configuration.md.
const PAGING: &str = r#"
server: { external_url: "http://tocsin.test" }
responders:
  - { id: alice, email: alice@example.com }
  - { id: bob, email: bob@example.com }
  - { id: carol, email: carol@example.com }
  - { id: dave, email: dave@example.com }
  - { id: erin, email: erin@example.com }
time_windows:
  - { name: business-hours, timezone: Asia/Shanghai, start: "0 0 9 * * Mon-Fri", duration: 9h }
  - { name: maintenance, timezone: UTC, start: "0 0 2 * * Sun", duration: 2h }
escalation_policies:
  - name: standard
    repeat: 1
    ack_timeout: 30m
    levels:
      - { after: 0s, notify: [ "responder:alice" ] }
      - { after: 15m, notify: [ "responder:bob" ] }
  - name: major
    levels:
      - { after: 0s, notify: [ "responder:carol" ] }
      - { after: 5m, notify: [ "responder:dave" ] }
  - name: customer
    levels:
      - { after: 0s, notify: [ "responder:erin" ] }
      - { after: 3h, notify: [ "responder:dave" ] }
routes:
  - { match: [ 'sr_severity="A"' ], policy: customer }
  - { match: [ 'severity=~"0|1"' ], policy: major }
  - { match: [ 'severity="2"' ], policy: standard }
  - { match: [ 'severity="3"' ], policy: standard, active_during: [business-hours] }
  - { match: [ 'severity="4"' ], queue: storage-triage }
silences:
  - { match: [ 'service="batch"' ], window: maintenance, comment: "batch runs in maintenance" }
notifiers:
  email: { from: tocsin@example.com, file: { dir: outbox } }
  retry: { initial_backoff: 1h, max_backoff: 1h, max_age: 7d }
"#;

fn paged_config() -> String {
    format!("{CATALOG}{PAGING}")
}

fn page(event: &str, who: &str, level: usize, minute: i64) -> (String, String, Option<usize>, i64) {
    (event.to_string(), who.to_string(), Some(level), minute)
}

#[tokio::test(start_paused = true)]
async fn level_0_at_once_level_1_after_its_delay_then_the_levels_repeat() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 2);
    assert_eq!(
        e.page_list(id).await,
        vec![page("triggered", "alice", 0, 0)]
    );

    e.advance_minutes(14).await;
    assert_eq!(
        e.page_list(id).await.len(),
        1,
        "level 1 is not due before 15m"
    );
    e.advance_minutes(1).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("escalated", "bob", 1, 15)
        ]
    );
    // repeat: 1 runs the levels once more (after the longest delay), then stops.
    e.advance_minutes(105).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("escalated", "bob", 1, 15),
            page("escalated", "alice", 0, 30),
            page("escalated", "bob", 1, 45),
        ]
    );
    let pages = e.pages(id).await;
    assert!(pages
        .iter()
        .all(|p| p.page.payload.escalation.policy.as_deref() == Some("standard")));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_ack_stops_escalation_until_ack_timeout_lapses_it_and_resolve_tells_everyone() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    e.advance_minutes(5).await;
    e.send(Input::Ack {
        incident_id: id,
        by: "alice".into(),
    })
    .await;
    // Bob's level (due at 15m) is not paged while the ack holds (30m, until 35m).
    e.advance_minutes(29).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("acknowledged", "alice", 0, 5)
        ]
    );
    // At 35m the ack lapses: the last level is paged again, and escalation goes on.
    e.advance_minutes(1).await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.status.as_str(), "triggered");
    assert!(e
        .timeline_kinds(id)
        .await
        .contains(&"ack_lapsed".to_string()));
    e.advance_minutes(15).await;
    e.advance_minutes(5).await;
    e.send(Input::Resolve {
        incident_id: id,
        by: "bob".into(),
        note: Some("fixed".into()),
    })
    .await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            page("acknowledged", "alice", 0, 5),
            page("escalated", "alice", 0, 35),
            page("escalated", "bob", 1, 50),
            page("resolved", "alice", 1, 55),
            page("resolved", "bob", 1, 55),
        ]
    );
    // Resolved: nothing more, ever.
    e.advance_minutes(60).await;
    assert_eq!(e.page_list(id).await.len(), 6);
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_severity_rise_reroutes_and_starts_the_new_policy_at_level_0() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    e.advance_minutes(5).await;
    // A second region: two customers in two regions with an outage is Sev 1.
    let same = e
        .signal(alert(
            "critical",
            "storage",
            "china-north",
            "storage down north",
            start,
        ))
        .await;
    assert_eq!(same, id, "the impact joins the incident");
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 1);
    e.advance_minutes(25).await;
    e.send(Input::Resolve {
        incident_id: id,
        by: "carol".into(),
        note: None,
    })
    .await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 0),
            // The major policy from its first level; the standard policy's level 1 (bob at
            // 15m) never comes. Alice, paged already and not on the major policy's first
            // level, hears of the impact that joined.
            page("severity_raised", "carol", 0, 5),
            page("impact_added", "alice", 0, 5),
            page("escalated", "dave", 1, 10),
            page("resolved", "alice", 1, 30),
            page("resolved", "carol", 1, 30),
            page("resolved", "dave", 1, 30),
        ]
    );
    let policies: Vec<Option<String>> = e
        .pages(id)
        .await
        .iter()
        .map(|p| p.page.payload.escalation.policy.clone())
        .collect();
    assert_eq!(policies[0].as_deref(), Some("standard"));
    assert_eq!(policies[1].as_deref(), Some("major"));
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_sev3_incident_opened_at_night_pages_when_business_hours_begin() {
    // Monday 22:00 in Shanghai; business hours open Tuesday 09:00 (01:00Z).
    let start = utc("2026-03-02T14:00:00Z");
    let e = FrozenEngine::start(&paged_config(), start).await;
    let id = e
        .signal(alert(
            "warning",
            "storage",
            "china-east",
            "storage slow",
            start,
        ))
        .await;
    let incident = e
        .engine
        .running
        .state
        .store
        .incident(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(incident.severity, 3);
    assert!(e.timeline_kinds(id).await.contains(&"paused".to_string()));
    e.advance_to(utc("2026-03-03T00:59:00Z")).await;
    assert_eq!(e.page_list(id).await, vec![], "nobody is paged at night");
    e.advance_to(utc("2026-03-03T01:00:00Z")).await;
    assert_eq!(
        e.page_list(id).await,
        vec![page("triggered", "alice", 0, 660)]
    );
    // The escalation's clock runs from the opening of the window.
    e.advance_to(utc("2026-03-03T01:15:00Z")).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "alice", 0, 660),
            page("escalated", "bob", 1, 675)
        ]
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn sev4_incidents_page_nobody_and_wait_in_their_queue_oldest_first() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let first = e
        .signal(alert(
            "info",
            "storage",
            "china-east",
            "storage log noise",
            start,
        ))
        .await;
    e.advance_minutes(1).await;
    let second = e
        .signal(alert(
            "info",
            "sqldb",
            "china-north",
            "sqldb log noise",
            start,
        ))
        .await;
    assert_ne!(first, second);
    e.advance_minutes(120).await;
    for id in [first, second] {
        let incident = e
            .engine
            .running
            .state
            .store
            .incident(id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(incident.severity, 4);
        assert_eq!(e.page_list(id).await, vec![], "Sev 4 pages nobody");
        assert!(e.timeline_kinds(id).await.contains(&"queued".to_string()));
    }
    let queue: Vec<i64> = e
        .engine
        .running
        .state
        .store
        .queue("storage-triage")
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(queue, vec![first, second]);
    let metrics = e.engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_triage_queue_length{queue=\"storage-triage\"} 2"),
        "{metrics}"
    );
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_cri_not_acknowledged_by_respond_by_pages_the_current_and_next_level() {
    let start = utc(MONDAY_MORNING);
    let e = FrozenEngine::start(&paged_config(), start).await;
    let respond_by = start + chrono::Duration::hours(2);
    let id = e.signal(cri("contoso", "A", start, respond_by)).await;
    e.advance_minutes(119).await;
    assert_eq!(e.page_list(id).await, vec![page("triggered", "erin", 0, 0)]);
    let breaches = "tocsin_sr_response_breaches_total{sr_severity=\"A\"} 1";
    assert!(!e.engine.running.metrics.render().contains(breaches));
    e.advance_minutes(1).await;
    assert_eq!(
        e.page_list(id).await,
        vec![
            page("triggered", "erin", 0, 0),
            page("response_breached", "erin", 0, 120),
            page("response_breached", "dave", 1, 120),
        ]
    );
    assert!(e
        .timeline_kinds(id)
        .await
        .contains(&"response_breached".to_string()));
    // Once, not at every tick; and the escalation itself goes on at its own time.
    e.advance_minutes(60).await;
    assert_eq!(
        e.page_list(id).await[3..],
        [page("escalated", "dave", 1, 180)]
    );
    let metrics = e.engine.running.metrics.render();
    assert!(metrics.contains(breaches), "{metrics}");
    e.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silence_records_but_does_not_page_inside_its_window() {
    // Sunday 02:30 UTC, inside the maintenance window (02:00-04:00).
    let start = utc("2026-03-01T02:30:00Z");
    let e = FrozenEngine::start(&paged_config(), start).await;
    let silenced = e
        .signal(alert(
            "critical",
            "batch",
            "local",
            "batch job failing",
            start,
        ))
        .await;
    // Shares neither service nor region with the batch incident, so it is another one.
    let other = e
        .signal(alert(
            "critical",
            "storage",
            "china-north",
            "storage down",
            start,
        ))
        .await;
    assert_ne!(silenced, other);
    assert_eq!(
        e.page_list(other).await,
        vec![page("triggered", "alice", 0, 0)]
    );
    assert_eq!(e.page_list(silenced).await, vec![]);
    assert!(e
        .timeline_kinds(silenced)
        .await
        .contains(&"silenced".to_string()));
    e.advance_to(utc("2026-03-01T03:59:00Z")).await;
    assert_eq!(
        e.page_list(silenced).await,
        vec![],
        "silent inside the window"
    );
    // The window closes at 04:00: the incident is still open, so paging starts.
    e.advance_to(utc("2026-03-01T04:00:00Z")).await;
    assert_eq!(
        e.page_list(silenced).await,
        vec![page("triggered", "alice", 0, 90)]
    );
    e.stop().await;
}
