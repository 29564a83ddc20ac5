//! `store.retention`: resolved incidents that resolved longer ago than it are removed in the
//! background, with their timelines and pages; open incidents and recent ones stay.
//!
//! The engine runs on a frozen clock that the test moves by days.

use std::time::Duration;

use tocsin::engine::Input;

use crate::support::paging::{alert, utc, FrozenEngine};
use crate::support::CATALOG;

fn config(store_url: &str) -> String {
    format!(
        r#"{CATALOG}
store: {{ url: "{store_url}", retention: 1d }}
correlation: {{ by: [service], window: 1m }}
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: outbox }} }}
"#
    )
}

/// Move the frozen clock by `hours`, an hour at a time, letting the engine and the pruner
/// run at each step.
async fn pass_hours(e: &FrozenEngine, hours: u32) {
    for _ in 0..hours {
        e.settle().await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        e.barrier().await;
        // The pruner's batches run on the store in real time.
        tokio::task::yield_now().await;
    }
}

async fn resolve(e: &FrozenEngine, id: i64) {
    e.send(Input::Resolve {
        incident_id: id,
        by: "alice".into(),
        note: None,
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn resolved_incidents_past_retention_go_with_their_timeline_and_pages() {
    prune_on("sqlite://data/tocsin.db").await;
}

#[tokio::test(start_paused = true)]
async fn resolved_incidents_past_retention_go_on_postgresql_too() {
    let database = crate::support::PgDatabase::create().await;
    prune_on(&database.url).await;
    database.drop_db().await;
}

async fn prune_on(store_url: &str) {
    let start = utc("2026-03-02T09:00:00Z");
    let e = FrozenEngine::start(&config(store_url), start).await;
    let old = e
        .signal(alert("critical", "storage", "china-east", "disk", start))
        .await;
    let open = e
        .signal(alert("critical", "sqldb", "china-north", "down", start))
        .await;
    assert_ne!(old, open, "two incidents");
    e.advance_minutes(10).await;
    resolve(&e, old).await;
    // Half a day later: everything stays.
    pass_hours(&e, 12).await;
    let store = &e.engine.running.state.store;
    assert!(store.incident(old).await.unwrap().is_some());
    assert_eq!(e.engine.running.metrics.store_pruned_rows_total.get(), 0);
    let now = e.clock.now();
    let recent = e
        .signal(alert("critical", "storage", "china-east", "disk", now))
        .await;
    resolve(&e, recent).await;
    e.settle().await;
    let timeline = store.timeline_of(old).await.unwrap().len();
    let pages = e.pages(old).await.len();
    assert!(
        timeline >= 3 && pages >= 2,
        "{timeline} entries, {pages} pages"
    );

    // A day after `old` resolved, and a walk of the pruner (one incident a step, a walk
    // every 10 minutes) later: it is gone with its timeline and pages; the open one and the
    // recent one stay.
    pass_hours(&e, 14).await;
    let mut gone = false;
    for _ in 0..100 {
        if store.incident(old).await.unwrap().is_none() {
            gone = true;
            break;
        }
        // A minute at a time: the pruner's next step, or within ten its next walk.
        tokio::time::advance(Duration::from_secs(60)).await;
        e.barrier().await;
        tokio::task::yield_now().await;
    }
    assert!(gone, "the incident resolved over a day ago is removed");
    assert!(store.timeline_of(old).await.unwrap().is_empty());
    assert!(e.pages(old).await.is_empty());
    let (status, _) = e.engine.get(&format!("/api/v1/incidents/{old}")).await;
    assert_eq!(status, 404);
    for kept in [open, recent] {
        let (status, body) = e.engine.get(&format!("/api/v1/incidents/{kept}")).await;
        assert_eq!(status, 200, "incident {kept} stays: {body}");
        assert!(!store.timeline_of(kept).await.unwrap().is_empty());
    }
    let pruned = e.engine.running.metrics.store_pruned_rows_total.get();
    assert!(
        pruned >= (timeline + pages + 2) as u64,
        "tocsin_store_pruned_rows_total {pruned}: {timeline} timeline entries, {pages} pages, \
         the impact and the incident"
    );
    e.stop().await;
}
