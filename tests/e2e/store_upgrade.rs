//! A store left by an earlier schema is migrated in place when an engine opens it, with
//! every row kept (the row-id and impact-link migrations, on SQLite and PostgreSQL).

use std::collections::{BTreeMap, BTreeSet};

use crate::store::{impact, incident, t};
use crate::support;
use tocsin::engine::core::{Changes, Lease};
use tocsin::incident::{Impact, Status, TimelineEntry};
use tocsin::rules::RuleState;
use tocsin::signal::{Signal, SourceKind};
use tocsin::store::Store;

/// A store written before rule states and leases had row ids (migrations up to 0003) is
/// migrated in place when a new engine opens it: every row is still there, rule states and
/// leases get row ids in order, new rows are numbered past them, and timeline ids go on
/// past the old ones.
async fn upgrade_from_keyed_rows(url: &str, backend: &str) {
    let old = support::store_of_an_earlier_version(url, backend, 3).await;

    let signal = Signal::new(
        SourceKind::Alert,
        BTreeMap::from([("alertname".into(), "X".into())]),
        t(0),
    );
    let other = Signal::new(
        SourceKind::Alert,
        BTreeMap::from([("alertname".into(), "Y".into())]),
        t(0),
    );
    let (fp, other_fp) = (signal.fingerprint(), other.fingerprint());
    let state = |signal: &Signal| {
        serde_json::to_string(&RuleState::new(signal.clone().into(), t(0))).unwrap()
    };
    let lease = serde_json::to_string(&Lease {
        expires_at: t(600),
        signal: signal.clone().into(),
    })
    .unwrap();
    let open = incident(1, 2, Status::Triggered, None, 0);
    let statements = [
        format!(
            "INSERT INTO rule_states (rule, fingerprint, data) VALUES ('StorageDown', '{fp}', '{}')",
            state(&signal)
        ),
        format!(
            "INSERT INTO rule_states (rule, fingerprint, data) VALUES ('StorageDown', '{other_fp}', '{}')",
            state(&other)
        ),
        format!(
            "INSERT INTO leases (fingerprint, expires_at, data) VALUES ('{fp}', {}, '{lease}')",
            t(600).timestamp_millis()
        ),
        format!(
            "INSERT INTO incidents (id, status, severity, queue, opened_at, data) \
             VALUES (1, 'triggered', 2, NULL, 0, '{}')",
            serde_json::to_string(&open).unwrap()
        ),
        "INSERT INTO timeline (incident_id, at, kind, actor, message, data) \
         VALUES (1, 0, 'opened', 'engine', 'opened', 'null')"
            .to_string(),
    ];
    for sql in statements {
        sqlx::query(&sql).execute(&old).await.unwrap();
    }
    old.close().await;

    let store = Store::open(url).await.expect("open migrates the old store");
    let snapshot = store.load().await.unwrap();
    let states: Vec<_> = snapshot
        .rule_states
        .iter()
        .map(|(rule, fp, state)| (rule.as_str(), *fp, state.row))
        .collect();
    assert_eq!(
        states.iter().map(|s| s.2).collect::<Vec<_>>(),
        vec![1, 2],
        "read in the order of their rows"
    );
    assert_eq!(
        states.iter().map(|s| (s.0, s.1)).collect::<BTreeSet<_>>(),
        BTreeSet::from([("StorageDown", fp), ("StorageDown", other_fp)])
    );
    // Read with their rows for the engine to delete (leases are now kept in rule states).
    assert_eq!(snapshot.leases.len(), 1);
    let (row, lease_fp, lease) = &snapshot.leases[0];
    assert_eq!((*row, *lease_fp), (1, fp));
    assert_eq!(lease.expires_at, t(600));
    assert_eq!(snapshot.next_rule_state_row, 3);
    assert_eq!(snapshot.incidents.len(), 1);

    // The engine goes on writing to the migrated tables by row.
    let other_row = states.iter().find(|s| s.1 == other_fp).unwrap().2;
    let third = Signal::new(
        SourceKind::Alert,
        BTreeMap::from([("alertname".into(), "Z".into())]),
        t(0),
    );
    let changes = Changes {
        rule_states: vec![(
            "StorageDown".into(),
            third.fingerprint(),
            RuleState {
                row: 3,
                ..RuleState::new(third.clone().into(), t(0))
            },
        )],
        deleted_rule_states: vec![other_row],
        timeline: vec![TimelineEntry {
            incident_id: 1,
            at: t(5),
            kind: "note".into(),
            actor: "alice".into(),
            message: "after the upgrade".into(),
            data: serde_json::Value::Null,
        }],
        ..Changes::default()
    };
    store.apply(&changes).await.unwrap();
    let snapshot = store.load().await.unwrap();
    let mut left: Vec<_> = snapshot
        .rule_states
        .iter()
        .map(|(_, fp, state)| (*fp, state.row))
        .collect();
    left.sort_by_key(|s| s.1);
    let fp_row = 3 - other_row;
    assert_eq!(left, vec![(fp, fp_row), (third.fingerprint(), 3)]);
    let timeline = store.timeline_of(1).await.unwrap();
    assert_eq!(
        timeline
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>(),
        vec!["opened", "after the upgrade"],
        "new timeline rows come after the old ones"
    );
    store.close().await;
}

#[tokio::test]
async fn a_store_from_before_row_ids_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    upgrade_from_keyed_rows(&url, "sqlite").await;
    // SQLite keeps no second B-tree beside a table for its key any more: `INTEGER PRIMARY
    // KEY` is the rowid (fewer pages written per commit, see migration 0004).
    let file = rusqlite::Connection::open(dir.path().join("tocsin.db")).unwrap();
    let mut autoindexes: Vec<String> = file
        .prepare("SELECT tbl_name FROM sqlite_master WHERE name LIKE 'sqlite_autoindex_%'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    autoindexes.sort();
    assert_eq!(
        autoindexes,
        vec![
            "_sqlx_migrations",
            "heartbeats",
            "leader_lease",
            "schedule_overrides",
            "silences",
            "source_state",
            "stored_secrets"
        ],
        "tables keyed by name (or by a text id) keep theirs; none of the engine's numbered tables do"
    );

    let db = support::PgDatabase::create().await;
    upgrade_from_keyed_rows(&db.url, "postgres").await;
    db.drop_db().await;
}

/// A store written before incidents' impacts were linked by row (its impacts found through
/// an index on their incident) is migrated in place: each incident's impacts are found as
/// before, a restart loads those of open incidents, and links written after the upgrade
/// (new impacts, a merge) add to the old ones.
async fn upgrade_to_impact_links(url: &str, backend: &str, last_before: i64) {
    let old = support::store_of_an_earlier_version(url, backend, last_before).await;
    let mut statements = Vec::new();
    for (id, status) in [
        (1, Status::Triggered),
        (2, Status::Triggered),
        (3, Status::Resolved),
    ] {
        let mut row = incident(id, 2, status, None, 0);
        row.impact_ids.clear();
        statements.push(format!(
            "INSERT INTO incidents (id, status, severity, queue, opened_at, data) \
             VALUES ({id}, '{}', 2, NULL, 0, '{}')",
            status.as_str(),
            serde_json::to_string(&row).unwrap()
        ));
    }
    for (id, incident_id) in [(11, 1), (12, 2), (13, 1), (14, 3)] {
        statements.push(format!(
            "INSERT INTO impacts (id, incident_id, data) VALUES ({id}, {incident_id}, '{}')",
            serde_json::to_string(&impact(id, incident_id)).unwrap()
        ));
    }
    for sql in statements {
        sqlx::query(&sql).execute(&old).await.unwrap();
    }
    old.close().await;

    let store = Store::open(url).await.expect("open migrates the old store");
    let ids = |impacts: Vec<Impact>| impacts.iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(store.impacts_of(1).await.unwrap()), vec![11, 13]);
    assert_eq!(ids(store.impacts_of(3).await.unwrap()), vec![14]);
    let snapshot = store.load().await.unwrap();
    assert_eq!(
        ids(snapshot.impacts),
        vec![11, 12, 13],
        "the open incidents' impacts"
    );
    let open: BTreeMap<i64, Vec<i64>> = snapshot
        .incidents
        .iter()
        .map(|i| (i.id, i.impact_ids.clone()))
        .collect();
    assert_eq!(open, BTreeMap::from([(1, vec![11, 13]), (2, vec![12])]));

    // After the upgrade: a new impact joins incident 2, then incident 2 merges into 1.
    store
        .apply(&Changes {
            impacts: vec![impact(15, 2)],
            impact_links: vec![(2, vec![15])],
            ..Changes::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(store.impacts_of(2).await.unwrap()), vec![12, 15]);
    let mut merged = incident(2, 2, Status::Resolved, None, 0);
    merged.merged_into = Some(1);
    store
        .apply(&Changes {
            incidents: vec![merged],
            impacts: vec![impact(12, 1), impact(15, 1)],
            impact_links: vec![(1, vec![12, 15])],
            ..Changes::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ids(store.impacts_of(1).await.unwrap()),
        vec![11, 12, 13, 15]
    );
    assert_eq!(
        ids(store.impacts_of(2).await.unwrap()),
        Vec::<i64>::new(),
        "moved on"
    );
    assert_eq!(
        ids(store.load().await.unwrap().impacts),
        vec![11, 12, 13, 15]
    );
    store.close().await;
}

#[tokio::test]
async fn a_store_from_before_impact_links_upgrades_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tocsin.db", dir.path().display());
    upgrade_to_impact_links(&url, "sqlite", 5).await;
    // The index the links replace is gone.
    let file = rusqlite::Connection::open(dir.path().join("tocsin.db")).unwrap();
    let indexes: Vec<String> = file
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'impacts'")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(indexes.is_empty(), "{indexes:?}");

    let db = support::PgDatabase::create().await;
    upgrade_to_impact_links(&db.url, "postgres", 4).await;
    db.drop_db().await;
}
