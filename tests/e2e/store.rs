//! The store on SQLite and on PostgreSQL alike: what the core writes comes back the same.

use std::collections::{BTreeMap, BTreeSet};

use crate::support;
use chrono::{DateTime, Duration, Utc};
use tocsin::config::ImpactKind;
use tocsin::engine::core::{Changes, FirstNew, HeartbeatState, PagingState};
use tocsin::incident::{Impact, Incident, IncidentView, Status, TimelineEntry};
use tocsin::paging::page::{EscalationRef, PagePayload};
use tocsin::paging::{Channel, Page, PageEvent, Recipient};
use tocsin::rules::RuleState;
use tocsin::signal::{Fingerprint, Signal, SourceKind};
use tocsin::store::{DeliveryWrite, IncidentFilter, OutboxStatus, Store};

pub(crate) fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_571_200 + secs, 0).unwrap()
}

pub(crate) fn incident(
    id: i64,
    severity: u8,
    status: Status,
    queue: Option<&str>,
    opened: i64,
) -> Incident {
    Incident {
        id,
        title: format!("incident {id}").into(),
        severity,
        pinned: false,
        status,
        impact_ids: vec![id * 10],
        labels: std::sync::Arc::new(BTreeMap::from([("service".into(), "storage".into())]).into()),
        services: BTreeSet::from(["storage".into()]).into(),
        regions: BTreeSet::from(["china-east".into()]).into(),
        customers: BTreeSet::from(["contoso".into()]).into(),
        opened_at: t(opened),
        acknowledged_at: None,
        acknowledged_by: None,
        resolved_at: (status == Status::Resolved).then(|| t(opened + 60)),
        resolved_by: None,
        respond_by: None,
        sr_severity: None,
        queue: queue.map(str::to_string),
        other_queues: Vec::new(),
        merged_into: None,
        assignee: None,
        tsg: None,
        tsg_action: None,
        blast: Default::default(),
    }
}

pub(crate) fn impact(id: i64, incident_id: i64) -> Impact {
    Impact {
        id,
        incident_id,
        rule: "StorageDown".into(),
        fingerprint: Fingerprint(id as u64 * 7),
        source: SourceKind::Alert,
        kind: ImpactKind::Outage,
        sla_breach: true,
        business_impact: None,
        severity_floor: None,
        service: Some("storage".into()),
        region: Some("china-east".into()),
        customers: BTreeSet::from(["contoso".into()]).into(),
        labels: Default::default(),
        summary: "storage down".into(),
        started_at: t(0),
        cleared_at: None,
        firing_at_resolve: false,
        annotations: Default::default(),
        cri: None,
        inhibited_by: None,
        sla_measured: None,
    }
}

fn page(id: i64, incident: &Incident) -> Page {
    let recipient = Recipient {
        id: "alice".into(),
        channel: Channel::Webhook,
        address: "chatops".into(),
    };
    Page {
        id,
        delivery_id: format!("delivery-{id}"),
        incident_id: incident.id,
        case_id: None,
        event: PageEvent::Triggered,
        level: Some(0),
        payload: PagePayload {
            version: "1".into(),
            event: PageEvent::Triggered,
            incident: IncidentView::new(incident, "http://127.0.0.1:9470"),
            escalation: EscalationRef {
                policy: Some("storage".into()),
                level: Some(0),
            },
            recipient: "alice".into(),
            ack_url: None,
            context: None,
            case: None,
            tsg_action: None,
        },
        recipient,
        created_at: t(id),
    }
}

/// An incident as the API's reads return it: its impact ids are in the impact rows, not in
/// the incident's (a restart's `load` puts them back, see above).
fn as_read(incident: &Incident) -> Incident {
    Incident {
        impact_ids: Vec::new(),
        ..incident.clone()
    }
}

async fn exercise(store: Store) {
    let open = incident(1, 2, Status::Triggered, None, 0);
    let queued_old = incident(2, 4, Status::Triggered, Some("triage"), 10);
    let queued_new = incident(3, 4, Status::Acknowledged, Some("triage"), 20);
    let closed = incident(4, 1, Status::Resolved, None, 30);
    let signal = Signal::new(
        SourceKind::Alert,
        BTreeMap::from([("alertname".into(), "X".into())]),
        t(0),
    );
    let fp = signal.fingerprint();
    let silence = tocsin::paging::Silence {
        id: "s-1".into(),
        matchers: vec!["service=\"storage\"".parse().unwrap()],
        starts_at: t(0),
        ends_at: t(60),
        created_by: "alice".into(),
        comment: "disk swap".into(),
        updated_at: t(0),
    };
    let cover = tocsin::paging::ScheduleOverride {
        id: "o-1".into(),
        schedule: "primary".into(),
        responder: "bob".into(),
        start: t(10),
        end: t(20),
        created_by: "alice".into(),
        created_at: t(0),
    };
    let cover_2 = tocsin::paging::ScheduleOverride {
        id: "o-2".into(),
        ..cover.clone()
    };
    let changes = Changes {
        incidents: vec![
            open.clone(),
            queued_old.clone(),
            queued_new.clone(),
            closed.clone(),
        ],
        impacts: vec![impact(10, 1), impact(20, 2), impact(30, 3), impact(40, 4)],
        impact_links: vec![(1, vec![10]), (2, vec![20]), (3, vec![30]), (4, vec![40])],
        timeline: vec![
            TimelineEntry {
                incident_id: 1,
                at: t(0),
                kind: "opened".into(),
                actor: "StorageDown".into(),
                message: "opened".into(),
                data: serde_json::json!({"severity": 2}),
            },
            TimelineEntry {
                incident_id: 1,
                at: t(5),
                kind: "note".into(),
                actor: "alice".into(),
                message: "looking".into(),
                data: serde_json::Value::Null,
            },
        ],
        paging: vec![(1, Some(PagingState::default()))],
        rule_states: vec![(
            "StorageDown".into(),
            fp,
            RuleState {
                row: 7,
                ..RuleState::new(signal.clone().into(), t(0))
            },
        )],
        heartbeats: vec![(
            "backup".into(),
            HeartbeatState {
                last_ping: Some(t(3)),
                missed: false,
            },
        )],
        pages: vec![page(1, &open), page(2, &open)],
        inbox: vec![],
        cases: vec![],
        case_timeline: vec![],
        deleted_rule_states: vec![],
        deleted_leases: vec![],
        silences: vec![silence.clone()],
        overrides: vec![
            ("o-1".into(), Some(cover.clone())),
            ("o-2".into(), Some(cover_2.clone())),
        ],
        availability: Some(r#"{"series":[],"indicators":[]}"#.into()),
        first_new: Some(FirstNew {
            impact: 1,
            rule_state_row: 1,
        }),
    };
    store.apply(&changes).await.expect("apply");

    // What a restart reads back: open incidents only, with their impacts and paging.
    let snapshot = store.load().await.expect("load");
    let mut ids: Vec<i64> = snapshot.incidents.iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(snapshot.incidents.iter().find(|i| i.id == 1), Some(&open));
    assert_eq!(snapshot.impacts.len(), 3);
    assert_eq!(snapshot.paging, vec![(1, PagingState::default())]);
    assert_eq!(snapshot.rule_states.len(), 1);
    assert_eq!(snapshot.silences, vec![silence.clone()]);
    assert_eq!(snapshot.overrides, vec![cover.clone(), cover_2.clone()]);
    // An expired silence is written whole; a deleted override is gone.
    let mut expired = silence.clone();
    expired.expire(t(30));
    let later = Changes {
        silences: vec![expired.clone()],
        overrides: vec![("o-2".into(), None)],
        ..Changes::default()
    };
    store.apply(&later).await.expect("apply");
    assert_eq!(store.silence("s-1").await.unwrap(), Some(expired));
    assert_eq!(
        store.overrides(Some("primary")).await.unwrap(),
        vec![cover.clone()]
    );
    assert_eq!(snapshot.rule_states[0].1, fp);
    assert_eq!(snapshot.rule_states[0].2.row, 7);
    assert!(snapshot.leases.is_empty(), "leases are kept in rule states");
    assert_eq!(
        snapshot.next_rule_state_row, 8,
        "new rows are numbered past the last"
    );
    assert_eq!(snapshot.heartbeats[0].1.last_ping, Some(t(3)));
    assert_eq!(
        snapshot.availability.as_deref(),
        Some(r#"{"series":[],"indicators":[]}"#),
        "the services' availability is read back"
    );
    assert_eq!(
        (
            snapshot.next_incident_id,
            snapshot.next_impact_id,
            snapshot.next_page_id
        ),
        (5, 41, 3)
    );

    // API reads.
    let all = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![4, 3, 2, 1],
        "newest first"
    );
    let sev4 = store
        .list_incidents(&IncidentFilter {
            severity: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(sev4.len(), 2);
    let resolved = store
        .list_incidents(&IncidentFilter {
            status: Some(Status::Resolved),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(resolved, vec![as_read(&closed)]);
    let limited = store
        .list_incidents(&IncidentFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let queue = store.queue("triage").await.unwrap();
    assert_eq!(
        queue.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![2, 3],
        "FIFO: oldest first"
    );
    assert_eq!(store.incident(4).await.unwrap(), Some(as_read(&closed)));
    assert_eq!(store.incident(99).await.unwrap(), None);
    let timeline = store.timeline_of(1).await.unwrap();
    assert_eq!(
        timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["opened", "note"]
    );
    assert_eq!(timeline[0].data, serde_json::json!({"severity": 2}));

    // Updates and deletes.
    let mut acked = open.clone();
    acked.status = Status::Acknowledged;
    acked.acknowledged_by = Some("alice".into());
    let changes = Changes {
        incidents: vec![acked.clone()],
        deleted_rule_states: vec![7],
        deleted_leases: vec![3],
        paging: vec![(1, None)],
        ..Changes::default()
    };
    store.apply(&changes).await.unwrap();
    let snapshot = store.load().await.unwrap();
    assert!(
        snapshot.rule_states.is_empty() && snapshot.leases.is_empty() && snapshot.paging.is_empty()
    );
    assert_eq!(store.incident(1).await.unwrap(), Some(as_read(&acked)));

    // The outbox.
    let pending = store.pending_pages(10).await.unwrap();
    assert_eq!(
        pending.iter().map(|p| p.page.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(pending[0].page, page(1, &open));
    store
        .mark_retry(1, 1, t(100), "connection refused")
        .await
        .unwrap();
    store.mark_delivered(2, 1, t(50)).await.unwrap();
    let first = store.page(1).await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.attempts, first.next_attempt_at),
        (OutboxStatus::Pending, 1, t(100))
    );
    assert_eq!(first.last_error.as_deref(), Some("connection refused"));
    let second = store.page(2).await.unwrap().unwrap();
    assert_eq!(
        (second.status, second.delivered_at),
        (OutboxStatus::Delivered, Some(t(50)))
    );
    store.mark_failed(1, 9, "gave up after 1h").await.unwrap();
    assert!(store.pending_pages(10).await.unwrap().is_empty());
    assert_eq!(store.pages_of(1).await.unwrap().len(), 2);
    let _ = Duration::zero();
}

#[tokio::test]
async fn store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/folder/tocsin.db", dir.path().display());
    let store = Store::open(&url)
        .await
        .expect("open creates the file and its folders");
    exercise(store.clone()).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(
        store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
        4
    );
}

/// A SQLite file's batch is reported committed (its pages go out then), then on disk (its
/// inputs are answered then): once committed, readers see it, and the wait for the fsync
/// ends without error. (That the fsync can still be under way at the read is not asserted:
/// it may finish first.)
#[tokio::test]
async fn a_committed_batch_is_read_back_and_then_reported_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let open = incident(7, 2, Status::Triggered, None, 0);
    let changes = Changes {
        incidents: vec![open.clone()],
        pages: vec![page(70, &open)],
        ..Changes::default()
    };
    let durable = store.commit(&changes).await.expect("commit");
    assert_eq!(store.pages_of(7).await.unwrap().len(), 1);
    durable.wait().await.expect("the WAL is fsynced");
    store.close().await;
    // Closing copied the WAL into the database file; a new process reads it from there.
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.pages_of(7).await.unwrap().len(), 1);
    let listed = store.list_incidents(&IncidentFilter::default()).await;
    assert_eq!(listed.unwrap().len(), 1);
}

#[tokio::test]
async fn store_on_postgres() {
    let db = support::PgDatabase::create().await;
    let store = Store::open(&db.url).await.expect("open PostgreSQL");
    exercise(store.clone()).await;
    store.close().await;
    let store = Store::open(&db.url).await.unwrap();
    assert_eq!(
        store
            .list_incidents(&IncidentFilter::default())
            .await
            .unwrap()
            .len(),
        4
    );
    store.close().await;
    db.drop_db().await;
}

async fn lease(store: &Store) {
    // Free: the first engine takes term 1 and keeps it on renewal.
    assert_eq!(
        store.acquire_or_renew("a", "1", 2_000).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.acquire_or_renew("a", "1", 2_000).await.unwrap(),
        Some(1)
    );
    // Held: another engine cannot take it before it runs out, nor another process under
    // the same engine id.
    assert_eq!(store.acquire_or_renew("b", "2", 2_000).await.unwrap(), None);
    assert_eq!(store.acquire_or_renew("a", "3", 2_000).await.unwrap(), None);
    assert_eq!(
        store.lease_holder().await.unwrap(),
        Some(("a".to_string(), 1))
    );
    // Run out: the other engine takes it with a new term (the fencing token).
    assert_eq!(store.acquire_or_renew("a", "1", 1).await.unwrap(), Some(1));
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(store.lease_holder().await.unwrap(), None);
    assert_eq!(
        store.acquire_or_renew("b", "2", 2_000).await.unwrap(),
        Some(2)
    );
    assert_eq!(store.acquire_or_renew("a", "1", 2_000).await.unwrap(), None);
    // Released: taken at once; a release by another process under the same id is not one.
    store.release_lease("b", "9").await.unwrap();
    assert_eq!(store.acquire_or_renew("a", "1", 2_000).await.unwrap(), None);
    store.release_lease("b", "2").await.unwrap();
    assert_eq!(
        store.acquire_or_renew("a", "1", 2_000).await.unwrap(),
        Some(3)
    );
    // Taken back under the same id by a new process, only while it was not renewed since:
    // a new term.
    let row = store.lease_row().await.unwrap().unwrap();
    assert_eq!((row.holder.as_str(), row.instance.as_str()), ("a", "1"));
    assert_eq!(
        store
            .reclaim_lease("a", "4", row.expires_at - 1, 2_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reclaim_lease("b", "4", row.expires_at, 2_000)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .reclaim_lease("a", "4", row.expires_at, 2_000)
            .await
            .unwrap(),
        Some(4)
    );
    assert_eq!(store.acquire_or_renew("a", "1", 2_000).await.unwrap(), None);
    assert_eq!(
        store.acquire_or_renew("a", "4", 2_000).await.unwrap(),
        Some(4)
    );
}

#[tokio::test]
async fn leader_lease_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    lease(&store).await;
    let db = support::PgDatabase::create().await;
    let store = Store::open(&db.url).await.unwrap();
    lease(&store).await;
    store.close().await;
    db.drop_db().await;
}

/// Delivery outcomes are written in order, up to the first whose page has no row yet (the
/// engine has not written it): those before it land; it and those after it wait.
async fn delivery_outcomes_stop_at_a_page_not_yet_stored(store: Store) {
    let open = incident(8, 2, Status::Triggered, None, 0);
    let changes = Changes {
        incidents: vec![open.clone()],
        pages: vec![page(80, &open), page(81, &open)],
        ..Changes::default()
    };
    store.apply(&changes).await.expect("apply");
    let delivered = TimelineEntry {
        incident_id: 8,
        at: t(5),
        kind: "delivered".into(),
        actor: "delivery".into(),
        message: "page 80 delivered".into(),
        data: serde_json::json!({ "page": 80 }),
    };
    let written = store
        .record_deliveries(&[
            DeliveryWrite::Delivered {
                page: 80,
                attempts: 1,
                at: t(5),
            },
            DeliveryWrite::Timeline(delivered),
            DeliveryWrite::Retry {
                page: 99,
                attempts: 1,
                next: t(9),
                error: "connection refused".into(),
            },
            DeliveryWrite::Delivered {
                page: 81,
                attempts: 1,
                at: t(6),
            },
        ])
        .await
        .expect("record");
    assert_eq!(written, 2, "stops before the page without a row");
    let pages = store.pages_of(8).await.unwrap();
    assert_eq!(
        pages
            .iter()
            .map(|p| (p.page.id, p.status, p.delivered_at))
            .collect::<Vec<_>>(),
        vec![
            (80, OutboxStatus::Delivered, Some(t(5))),
            (81, OutboxStatus::Pending, None)
        ]
    );
    let timeline = store.timeline_of(8).await.unwrap();
    assert_eq!(
        timeline.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["delivered"]
    );
    // Delivery timeline entries written on their own land too.
    let mut retried = timeline[0].clone();
    retried.kind = "delivery_attempt".into();
    store.add_timeline(&[retried]).await.expect("add timeline");
    assert_eq!(store.timeline_of(8).await.unwrap().len(), 2);
}

#[tokio::test]
async fn delivery_outcomes_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    let file = Store::open(&url).await.unwrap();
    delivery_outcomes_stop_at_a_page_not_yet_stored(file.clone()).await;
    file.close().await;
    // What the writer connection committed is in the file for the next process.
    let reopened = Store::open(&url).await.unwrap();
    assert_eq!(
        reopened.page(80).await.unwrap().map(|p| p.status),
        Some(OutboxStatus::Delivered)
    );
    reopened.close().await;

    let db = support::PgDatabase::create().await;
    let postgres = Store::open(&db.url).await.expect("open PostgreSQL");
    delivery_outcomes_stop_at_a_page_not_yet_stored(postgres.clone()).await;
    postgres.close().await;
    db.drop_db().await;
}

/// The engine's large batches are serialized and written on the SQLite writer's thread
/// (`Store::submit_shared`), small ones by the caller: both land whole, in order.
#[tokio::test]
async fn large_and_small_engine_batches_land_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    let opened: Vec<Incident> = (1..=40)
        .map(|id| incident(id, 3, Status::Triggered, None, id))
        .collect();
    let large = std::sync::Arc::new(Changes {
        impacts: opened.iter().map(|i| impact(i.id * 10, i.id)).collect(),
        impact_links: opened.iter().map(|i| (i.id, vec![i.id * 10])).collect(),
        pages: opened.iter().map(|i| page(i.id, i)).collect(),
        incidents: opened.clone(),
        ..Changes::default()
    });
    assert!(large.rows() > 100, "a batch the writer thread plans");
    let submitted = store.submit_shared(&large).await.expect("handed over");
    // A small batch after it: it updates a row of the large one, so it must land after.
    let mut acked = opened[0].clone();
    acked.status = Status::Acknowledged;
    let small = std::sync::Arc::new(Changes {
        incidents: vec![acked],
        ..Changes::default()
    });
    let durable = submitted.committed().await.expect("committed");
    let small = store.submit_shared(&small).await.expect("small");
    small.committed().await.unwrap().wait().await.unwrap();
    durable.wait().await.expect("on disk");
    let listed = store
        .list_incidents(&IncidentFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.len(), 40);
    let first = listed.iter().find(|i| i.id == 1).unwrap();
    assert_eq!(first.status, Status::Acknowledged);
    assert_eq!(store.pages_of(40).await.unwrap().len(), 1);
    assert_eq!(store.load().await.unwrap().impacts.len(), 40);
    store.close().await;
}

/// A store that cannot be opened is named in the error without the password of its URL.
#[tokio::test]
async fn the_password_of_a_store_url_is_not_in_its_errors() {
    let port = support::free_port();
    let url = format!("postgres://tocsin:pw-SECRET-5c5c@127.0.0.1:{port}/tocsin");
    let error = match Store::open(&url).await {
        Ok(_) => panic!("nothing listens on {port}"),
        Err(e) => e,
    };
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    assert!(!text.contains("pw-SECRET-5c5c"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
}

/// An engine's batches, each saying where its new rows begin: new impacts and rule states
/// are inserted (plain inserts on PostgreSQL), earlier ones written over. A batch written
/// again after its commit landed (the connection failed before the engine heard) writes its
/// rows over instead of failing. On each backend.
async fn new_rows_then_changes_then_a_batch_written_again(store: Store) {
    let signal = Signal::new(
        SourceKind::Alert,
        BTreeMap::from([("alertname".into(), "X".into())]),
        t(0),
    );
    let state = |row: i64, failures: u32| {
        let state = RuleState {
            row,
            failures,
            ..RuleState::new(signal.clone().into(), t(0))
        };
        ("StorageDown".to_string(), Fingerprint(row as u64), state)
    };
    let open = incident(1, 2, Status::Triggered, None, 0);
    let first = Changes {
        incidents: vec![open],
        impacts: vec![impact(10, 1), impact(20, 1)],
        impact_links: vec![(1, vec![10, 20])],
        rule_states: vec![state(1, 1), state(2, 1)],
        first_new: Some(FirstNew {
            impact: 10,
            rule_state_row: 1,
        }),
        ..Changes::default()
    };
    store.apply(&first).await.expect("the first batch");
    let mut cleared = impact(10, 1);
    cleared.cleared_at = Some(t(30));
    let second = Changes {
        impacts: vec![cleared, impact(30, 1)],
        impact_links: vec![(1, vec![30])],
        rule_states: vec![state(1, 3), state(3, 1)],
        first_new: Some(FirstNew {
            impact: 21,
            rule_state_row: 3,
        }),
        ..Changes::default()
    };
    store.apply(&second).await.expect("the second batch");
    store.apply(&second).await.expect("the second batch again");

    let snapshot = store.load().await.unwrap();
    let mut impacts: Vec<(i64, Option<DateTime<Utc>>)> = snapshot
        .impacts
        .iter()
        .map(|i| (i.id, i.cleared_at))
        .collect();
    impacts.sort();
    assert_eq!(impacts, vec![(10, Some(t(30))), (20, None), (30, None)]);
    let states: Vec<(i64, u32)> = snapshot
        .rule_states
        .iter()
        .map(|(_, _, s)| (s.row, s.failures))
        .collect();
    assert_eq!(states, vec![(1, 3), (2, 1), (3, 1)]);
    assert_eq!(snapshot.next_impact_id, 31);
    assert_eq!(snapshot.next_rule_state_row, 4);
}

#[tokio::test]
async fn new_rows_changed_rows_and_a_batch_written_again_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    let file = Store::open(&url).await.unwrap();
    new_rows_then_changes_then_a_batch_written_again(file.clone()).await;
    file.close().await;

    let db = support::PgDatabase::create().await;
    let postgres = Store::open(&db.url).await.expect("open PostgreSQL");
    new_rows_then_changes_then_a_batch_written_again(postgres.clone()).await;
    postgres.close().await;
    db.drop_db().await;
}
