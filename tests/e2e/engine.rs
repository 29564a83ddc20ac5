//! End-to-end: the engine core behind the real runtime, store and API.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support;
use crate::support::{TestDir, TestEngine, CATALOG};
use tocsin::engine::Input;
use tocsin::signal::{Signal, SourceKind};

fn alert(labels: &[(&str, &str)]) -> Signal {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Signal::new(SourceKind::Alert, labels, chrono::Utc::now())
}

#[tokio::test]
async fn an_alert_becomes_a_stored_incident_that_survives_a_restart() {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let (status, _) = engine.get("/-/ready").await;
    assert_eq!(status, 200);
    engine
        .running
        .engine()
        .send(Input::Signals(vec![alert(&[
            ("alertname", "StorageDown"),
            ("severity", "critical"),
            ("service", "storage"),
            ("region", "china-east"),
        ])]))
        .await
        .unwrap();
    let (status, list) = engine.get("/api/v1/incidents").await;
    let list = list["incidents"].clone();
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["severity"], 2);
    assert_eq!(list[0]["status"], "triggered");
    assert_eq!(list[0]["customer_count"], 2);
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let (_, list) = engine.get("/api/v1/incidents?status=triggered").await;
    let list = list["incidents"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let (status, acked) = engine
        .post(
            "/api/v1/incidents/1/ack",
            &serde_json::json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["acknowledged_by"], "alice");
    let (status, again) = engine
        .post(
            "/api/v1/incidents/1/ack",
            &serde_json::json!({ "by": "bob" }),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    engine.stop().await;
}

#[tokio::test]
async fn a_reload_reads_the_api_tokens_again() {
    let config = format!("{CATALOG}\nserver: {{ auth: {{ tokens_file: secrets/tokens }} }}\n");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    dir.write("secrets/tokens", "first-token\n");
    let engine = TestEngine::start(&dir).await;
    let list = |token: &'static str| {
        let request = engine
            .http
            .get(format!("{}/api/v1/incidents", engine.url))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(list("first-token").await, 200);
    assert_eq!(list("second-token").await, 401);
    dir.write("secrets/tokens", "# rotated\nsecond-token\n");
    // A reload needs the admin role: the bare token still in force has every role.
    let reload = engine
        .http
        .post(format!("{}/-/reload", engine.url))
        .bearer_auth("first-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);
    assert_eq!(list("second-token").await, 200);
    assert_eq!(
        list("first-token").await,
        401,
        "the old token no longer works"
    );
    engine.stop().await;
}

/// `tocsin run` on the shipped default config and rules, in a fresh folder with no network
/// and no mail server: it serves, creates its store, and Ctrl-C stops it cleanly.
#[tokio::test]
async fn the_default_config_runs_and_ctrl_c_stops_it_cleanly() {
    let root = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::create_dir_all(root.path().join("rules")).unwrap();
    std::fs::copy(
        repo.join("config/tocsin.yaml"),
        root.path().join("config/tocsin.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("rules/default.yaml"),
        root.path().join("rules/default.yaml"),
    )
    .unwrap();
    let port = support::free_port();
    let log = root.path().join("engine.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .arg("run")
        .arg("--config")
        .arg(root.path().join("config/tocsin.yaml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let ready = support::eventually(std::time::Duration::from_secs(20), || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        root.path().join("data/tocsin.db").exists(),
        "the SQLite store is created under data/"
    );
    let list = http
        .get(format!("http://127.0.0.1:{port}/api/v1/incidents"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status().as_u16(), 200);

    // Ctrl-C is SIGINT.
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = support::eventually(std::time::Duration::from_secs(10), || {
        let code = child.try_wait().ok().flatten();
        async move { code }
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let exit = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("did not stop within 10 s:\n{text}")
    });
    assert!(exit.success(), "exit {exit:?}:\n{text}");
    assert!(text.contains("stopped cleanly"), "{text}");
}

/// The store does not hold a key to one row (the engine numbers rule states): if a key ever
/// has two rows, a restarted engine takes the later one and deletes the earlier with its
/// first write, so they never pile up. Rows an earlier version kept in the `leases` table
/// are read once the same way, then deleted: leases now come from the rule states.
#[tokio::test]
async fn a_key_found_in_two_rows_keeps_the_later_after_a_restart() {
    use tocsin::engine::core::Changes;
    use tocsin::rules::RuleState;
    use tocsin::store::Store;

    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let firing = alert(&[
        ("alertname", "DiskFull"),
        ("service", "storage"),
        ("severity", "critical"),
    ]);
    let fingerprint = firing.fingerprint();
    // Firing, as the engine would have left it.
    let state = |row: i64| RuleState {
        row,
        condition: true,
        failures: 1,
        ..RuleState::new(firing.clone().into(), chrono::Utc::now())
    };
    let store = Store::open(&dir.store_url()).await.unwrap();
    store
        .apply(&Changes {
            rule_states: vec![
                ("AlertCritical".into(), fingerprint, state(4)),
                ("AlertCritical".into(), fingerprint, state(9)),
            ],
            ..Changes::default()
        })
        .await
        .unwrap();
    let lease = serde_json::json!({ "expires_at": chrono::Utc::now(), "signal": firing });
    for id in [1, 2] {
        support::execute(
            &dir.store_url(),
            &format!(
                "INSERT INTO leases (id, fingerprint, expires_at, data) \
                 VALUES ({id}, '{fingerprint}', 0, '{lease}')"
            ),
        )
        .await;
    }
    assert_eq!(store.load().await.unwrap().leases.len(), 2);
    store.close().await;

    let engine = TestEngine::start(&dir).await;
    // Any input makes a write, which carries the deletions.
    engine
        .running
        .engine()
        .send(Input::Signals(vec![alert(&[("alertname", "Other")])]))
        .await
        .unwrap();
    engine.stop().await;

    let store = Store::open(&dir.store_url()).await.unwrap();
    let snapshot = store.load().await.unwrap();
    let states: Vec<_> = snapshot
        .rule_states
        .iter()
        .filter(|(_, fp, _)| *fp == fingerprint)
        .map(|(rule, fp, state)| (rule.as_str(), *fp, state.row))
        .collect();
    assert_eq!(states, vec![("AlertCritical", fingerprint, 9)]);
    let rows: Vec<i64> = snapshot.rule_states.iter().map(|(_, _, s)| s.row).collect();
    assert_eq!(
        rows,
        vec![9, 10],
        "row 4 deleted; the new alert's state numbered past the last, never twice"
    );
    assert!(snapshot.leases.is_empty(), "{:?}", snapshot.leases);
    store.close().await;
}

/// A pushed alert's lease is not a row of its own: after a restart it comes back from the
/// signal its rule state keeps. The alert then resolves when its `endsAt` passes, or a full
/// `resolve_timeout` after the restart if that is later, as before; not earlier, not never.
#[tokio::test]
async fn a_pushed_alerts_lease_comes_back_from_its_rule_state_after_a_restart() {
    use tocsin::engine::{Core, Setup};
    use tocsin::store::Store;

    let dir = TestDir::new(
        &format!(
            "{CATALOG}\nsources: {{ resolve_timeout: 5m }}\nincidents: {{ resolve_after: 1m }}\n"
        ),
        &[("default.yaml", &support::default_rules())],
    );
    let setup = || {
        let config = tocsin::config::load(&dir.config_path()).unwrap();
        Setup::new(config, None)
    };
    let metrics = || std::sync::Arc::new(tocsin::metrics::Metrics::new());
    let start: chrono::DateTime<chrono::Utc> = "2026-03-02T10:00:00Z".parse().unwrap();
    let minutes = chrono::Duration::minutes;
    let pushed = |service: &str, ends: chrono::DateTime<chrono::Utc>| {
        serde_json::json!({
            "labels": { "alertname": "Down", "severity": "critical", "service": service,
                        "region": "china-east" },
            "endsAt": ends.to_rfc3339(),
        })
    };
    // Ends in 30 minutes; ends in 1 minute, long before the restart's resolve_timeout.
    let body = serde_json::json!([
        pushed("storage", start + minutes(30)),
        pushed("sqldb", start + minutes(1))
    ]);
    let decoded =
        tocsin::sources::push::decode_alerts(body.to_string().as_bytes(), start, minutes(5))
            .unwrap();
    let mut core = Core::new(setup(), metrics(), start);
    core.handle(Input::Signals(decoded.signals), start);
    assert_eq!(core.open_incidents().count(), 1, "one incident, correlated");

    let store = Store::open(&dir.store_url()).await.unwrap();
    store.apply(&core.take_changes()).await.unwrap();
    let snapshot = store.load().await.unwrap();
    assert!(snapshot.leases.is_empty(), "no lease rows are written");
    store.close().await;
    drop(core);

    // Restarted at 10:10 on the same store: the sqldb alert's end (10:01) is past, so it
    // gets the grace of resolve_timeout (10:15); the storage alert keeps its own (10:30).
    let restarted = start + minutes(10);
    let mut core = Core::new(setup(), metrics(), restarted);
    core.restore(snapshot, restarted);
    let advance = |core: &mut Core, until: chrono::DateTime<chrono::Utc>| {
        while let Some(at) = core.next_wake().filter(|at| *at <= until) {
            core.tick(at);
        }
    };
    let active = |core: &Core| {
        let incident = core.open_incidents().next().expect("the incident is open");
        let mut services: Vec<String> = incident
            .impact_ids
            .iter()
            .filter_map(|id| core.impact(*id))
            .filter(|impact| impact.is_active())
            .filter_map(|impact| impact.service.clone())
            .collect();
        services.sort();
        services
    };
    advance(&mut core, start + minutes(14));
    assert_eq!(active(&core), ["sqldb", "storage"]);
    advance(&mut core, start + minutes(16));
    assert_eq!(active(&core), ["storage"]);
    advance(&mut core, start + minutes(29));
    assert_eq!(active(&core), ["storage"]);
    advance(
        &mut core,
        start + minutes(30) + chrono::Duration::seconds(1),
    );
    assert!(active(&core).is_empty());
    // Every impact clear for resolve_after: the incident resolves.
    advance(&mut core, start + minutes(32));
    assert_eq!(core.open_incidents().filter(|i| i.is_open()).count(), 0);
}

/// Impacts one rule adds to an incident in one batch share a timeline entry that counts
/// them and names each by id; an impact added later gets its own entry, as before.
#[tokio::test]
async fn impacts_added_together_share_one_timeline_entry() {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let pushed = |instance: &str, region: &str| {
        serde_json::json!({ "labels": { "alertname": "StorageDown", "severity": "critical",
            "service": "storage", "region": region, "instance": instance } })
    };
    let (status, body) = engine
        .post(
            "/api/v2/alerts",
            &serde_json::json!([
                pushed("a", "china-east"),
                pushed("b", "china-east"),
                pushed("c", "china-north")
            ]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, list) = engine.get("/api/v1/incidents").await;
    let list = list["incidents"].clone();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let path = format!("/api/v1/incidents/{}", list[0]["id"]);
    let (_, detail) = engine.get(&path).await;
    let impacts: Vec<i64> = detail["impacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(impacts.len(), 3, "{detail}");
    let added = |detail: &serde_json::Value| -> Vec<serde_json::Value> {
        detail["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "impact_added")
            .cloned()
            .collect()
    };
    let entries = added(&detail);
    assert_eq!(entries.len(), 1, "{detail:#}");
    assert_eq!(entries[0]["actor"], "AlertCritical");
    let message = entries[0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("2 impacts added by AlertCritical: ")
            && message.ends_with(" and 1 more"),
        "{message}"
    );
    assert_eq!(
        entries[0]["data"],
        serde_json::json!({ "impacts": impacts[1..] })
    );

    let (status, _) = engine
        .post(
            "/api/v2/alerts",
            &serde_json::json!([pushed("d", "china-north")]),
        )
        .await;
    assert_eq!(status, 200);
    let (_, detail) = engine.get(&path).await;
    let entries = added(&detail);
    assert_eq!(entries.len(), 2, "{detail:#}");
    let message = entries[1]["message"].as_str().unwrap();
    assert!(
        message.starts_with("impact added by AlertCritical: "),
        "{message}"
    );
    let last = detail["impacts"].as_array().unwrap().last().unwrap()["id"].clone();
    assert_eq!(entries[1]["data"], serde_json::json!({ "impact": last }));
    engine.stop().await;
}

/// An impact that joins an incident rewrites the incident's row only when it changes what
/// the row holds (a service, region or customer more, fewer shared labels, a severity): in a
/// storm most impacts join an incident that already names everything they hit. What is
/// stored still says what the engine says, after a restart too.
#[tokio::test]
async fn an_incident_row_is_written_again_only_when_an_impact_changes_it() {
    use tocsin::engine::Core;
    use tocsin::store::Store;

    let (dir, setup, metrics) = core_parts();
    let now = chrono::Utc::now();
    let down = storage_down;
    let store = Store::open(&dir.store_url()).await.unwrap();
    let mut core = Core::new(setup.clone(), metrics.clone(), now);
    let batch = |core: &mut Core, signals: Vec<Signal>| {
        core.handle(Input::Signals(signals), now);
        core.take_changes()
    };

    let opened = batch(&mut core, vec![down("a", "china-east")]);
    assert_eq!(opened.incidents.len(), 1);
    store.apply(&opened).await.unwrap();

    // Another instance: the incident's common labels lose `instance`, its row is written.
    let narrowed = batch(&mut core, vec![down("b", "china-east")]);
    assert_eq!(narrowed.incidents.len(), 1);
    assert_eq!(narrowed.incidents[0].labels.get("instance"), None);
    store.apply(&narrowed).await.unwrap();

    // A third instance, same service and region: the impact is written, the incident not.
    let joined = batch(&mut core, vec![down("c", "china-east")]);
    assert_eq!(joined.impacts.len(), 1);
    assert!(joined.incidents.is_empty(), "{:?}", joined.incidents);
    store.apply(&joined).await.unwrap();

    // A second region: the incident names it now, and is graver for it.
    let grown = batch(&mut core, vec![down("d", "china-north")]);
    assert_eq!(grown.incidents.len(), 1);
    let incident = &grown.incidents[0];
    let regions: Vec<&String> = incident.regions.iter().collect();
    assert_eq!(regions, ["china-east", "china-north"]);
    assert!(
        incident.severity < opened.incidents[0].severity,
        "{incident:?}"
    );
    store.apply(&grown).await.unwrap();

    // The stored incident is the engine's, its four impacts with it.
    let snapshot = store.load().await.unwrap();
    assert_eq!(snapshot.incidents.len(), 1);
    let stored = &snapshot.incidents[0];
    let live = core.open_incidents().next().unwrap();
    assert_eq!(
        serde_json::to_value(stored).unwrap(),
        serde_json::to_value(live).unwrap()
    );
    assert_eq!(stored.impact_ids.len(), 4);
    store.close().await;
}

/// A rule state changed several times in one batch is written once, and one that began and
/// ended in the batch is not written at all (its row is only deleted): the store takes the
/// batch, PostgreSQL included (a multi-row upsert may not name a row twice), and what it
/// loads is what the engine holds.
#[tokio::test]
async fn a_batch_writes_each_changed_rule_state_once() {
    use tocsin::engine::Core;
    use tocsin::signal::SignalState;
    use tocsin::store::Store;

    let (dir, setup, metrics) = core_parts();
    let now = chrono::Utc::now();
    let down = |instance: &str| storage_down(instance, "china-east");
    let mut resolved = down("b");
    resolved.state = SignalState::Resolved;
    let store = Store::open(&dir.store_url()).await.unwrap();
    let mut core = Core::new(setup, metrics, now);
    // "a" opens its impact (its state changes twice: observed, then its impact opened) and
    // comes again; "b" opens and clears within the batch.
    core.handle(
        Input::Signals(vec![down("a"), down("b"), down("a"), resolved]),
        now,
    );
    let changes = core.take_changes();
    assert_eq!(changes.rule_states.len(), 1, "{:?}", changes.rule_states);
    let (rule, _, state) = &changes.rule_states[0];
    assert_eq!(rule, "AlertCritical");
    assert_eq!(state.signal.label("instance"), Some("a"));
    assert_eq!(changes.deleted_rule_states.len(), 1);
    assert_ne!(changes.deleted_rule_states[0], state.row);
    store.apply(&changes).await.unwrap();

    let snapshot = store.load().await.unwrap();
    let stored: Vec<_> = snapshot
        .rule_states
        .iter()
        .map(|(rule, _, state)| {
            (
                rule.clone(),
                state.signal.label("instance").map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [("AlertCritical".to_string(), Some("a".to_string()))]
    );
    store.close().await;
}

/// Each batch says where the impacts and rule states new to the store begin: the first
/// batch at the first ids, each later one after the rows of those before it, and the first
/// of an engine restored from the store after the rows the store holds.
#[tokio::test]
async fn each_batch_says_where_its_new_rows_begin() {
    use tocsin::engine::core::{Changes, FirstNew};
    use tocsin::engine::Core;
    use tocsin::store::Store;

    // Where the rows after those of `changes` begin.
    let after = |changes: &Changes| FirstNew {
        impact: changes.impacts.iter().map(|i| i.id).max().unwrap() + 1,
        rule_state_row: changes.rule_states.iter().map(|s| s.2.row).max().unwrap() + 1,
    };
    let (dir, setup, metrics) = core_parts();
    let now = chrono::Utc::now();
    let store = Store::open(&dir.store_url()).await.unwrap();
    let mut core = Core::new(setup.clone(), metrics.clone(), now);
    core.handle(Input::Signals(vec![storage_down("a", "china-east")]), now);
    let first = core.take_changes();
    let at_the_start = FirstNew {
        impact: 1,
        rule_state_row: 1,
    };
    assert_eq!(first.first_new, Some(at_the_start));
    store.apply(&first).await.unwrap();
    core.handle(Input::Signals(vec![storage_down("b", "china-east")]), now);
    let second = core.take_changes();
    assert_eq!(second.first_new, Some(after(&first)));
    store.apply(&second).await.unwrap();
    drop(core);

    let mut restored = Core::new(setup, metrics, now);
    restored.restore(store.load().await.unwrap(), now);
    restored.handle(Input::Signals(vec![storage_down("c", "china-east")]), now);
    let third = restored.take_changes();
    assert_eq!(third.first_new, Some(after(&second)));
    assert!(!third.impacts.is_empty() && !third.rule_states.is_empty());
    store.apply(&third).await.unwrap();
    assert_eq!(store.load().await.unwrap().rule_states.len(), 3);
    store.close().await;
}

/// A folder with the default rules, and what a core needs to run on them.
fn core_parts() -> (
    TestDir,
    std::sync::Arc<tocsin::engine::Setup>,
    std::sync::Arc<tocsin::metrics::Metrics>,
) {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let config = tocsin::config::load(&dir.config_path()).unwrap();
    let setup = tocsin::engine::Setup::new(config, None);
    (
        dir,
        setup,
        std::sync::Arc::new(tocsin::metrics::Metrics::new()),
    )
}

/// A critical StorageDown alert from one instance in one region.
fn storage_down(instance: &str, region: &str) -> Signal {
    alert(&[
        ("alertname", "StorageDown"),
        ("severity", "critical"),
        ("service", "storage"),
        ("region", region),
        ("instance", instance),
    ])
}

/// An alert that links two incidents merges them: the incident they became lists every
/// impact, and so does the store after a restart (a merge links the impacts it moves).
#[tokio::test]
async fn a_merged_incident_keeps_every_impact_after_a_restart() {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let push = |service: &str, region: &str| {
        let body = serde_json::json!([{ "labels": { "alertname": "Down", "severity": "critical",
            "service": service, "region": region } }]);
        let engine = &engine;
        async move {
            let (status, body) = engine.post("/api/v2/alerts", &body).await;
            assert_eq!(status, 200, "{body}");
        }
    };
    push("storage", "china-east").await;
    push("sqldb", "china-north").await;
    let (_, list) = engine.get("/api/v1/incidents").await;
    let list = list["incidents"].clone();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    // Shares its service with the first incident and its region with the second.
    push("storage", "china-north").await;
    let impacts_of = |detail: &serde_json::Value| -> Vec<i64> {
        detail["impacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    };
    let (_, merged) = engine.get("/api/v1/incidents/2").await;
    assert_eq!(merged["merged_into"], 1, "{merged}");
    let (_, detail) = engine.get("/api/v1/incidents/1").await;
    assert_eq!(impacts_of(&detail), vec![1, 2, 3], "{detail}");
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let (_, detail) = engine.get("/api/v1/incidents/1").await;
    assert_eq!(impacts_of(&detail), vec![1, 2, 3], "{detail}");
    assert_eq!(detail["services"], serde_json::json!(["sqldb", "storage"]));
    let (_, merged) = engine.get("/api/v1/incidents/2").await;
    assert_eq!(impacts_of(&merged), Vec::<i64>::new(), "{merged}");
    engine.stop().await;
}

// ===== signals and the CLI's output ========================================================

/// Every alert pages alice by email (`.eml` files): a push makes a batch that pages.
const PAGED: &str = r#"
store: { url: "sqlite://data/tocsin.db" }
responders:
  - { id: alice, email: alice@example.com }
escalation_policies:
  - name: main
    levels:
      - { after: 0s, notify: [ "responder:alice" ] }
routes:
  - { match: [], policy: main }
notifiers:
  email: { from: tocsin@example.com, file: { dir: data/outbox } }
"#;

/// SIGINT or SIGTERM while the store is still opening (a database that accepts connections
/// and never answers): the engine stops cleanly at once, without waiting out the start.
#[tokio::test]
async fn sigint_or_sigterm_during_start_up_stops_the_engine_cleanly() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db_port = silent.local_addr().unwrap().port();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for signal in ["INT", "TERM"] {
        let dir = TestDir::new(
            &format!("store: {{ url: \"postgres://tocsin@127.0.0.1:{db_port}/tocsin\" }}\n"),
            &[],
        );
        let mut engine = support::EngineProcess::spawn(&dir, support::free_port());
        // Serving /-/healthy, not ready: the store is still opening.
        let url = engine.url.clone();
        let starting = support::eventually(Duration::from_secs(15), || async {
            let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
            (r.status() == 503).then_some(())
        })
        .await;
        assert!(starting.is_some(), "{}", log_of(&engine.log));
        support::send_signal(&engine.child, signal);
        let exit = support::exit_of(&mut engine.child, Duration::from_secs(8)).await;
        let log = log_of(&engine.log);
        let exit = exit.unwrap_or_else(|| panic!("SIG{signal}: still running:\n{log}"));
        assert!(exit.success(), "SIG{signal}: {exit:?}\n{log}");
        assert!(
            log.contains(&format!("SIG{signal} during start-up: stopping"))
                && log.contains("stopped cleanly"),
            "{log}"
        );
        assert!(
            !log.contains("ERROR") && !log.contains("pool timed out"),
            "{log}"
        );
    }
    drop(silent);
}

/// The first SIGTERM drains; a second while the drain waits (here on a SQLite write lock
/// another process holds) stops the engine at once. The lock goes with the process, and
/// nothing the engine paged is lost: the restarted engine has the incident.
#[tokio::test]
async fn a_second_signal_while_the_engine_drains_stops_it_at_once() {
    let dir = TestDir::new(PAGED, &[("default.yaml", &support::default_rules())]);
    let mut engine = support::EngineProcess::spawn(&dir, support::free_port());
    engine.wait_ready().await;
    let database = dir.path().join("data/tocsin.db");
    let holder = rusqlite::Connection::open(&database).unwrap();
    holder.busy_timeout(Duration::from_secs(10)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    // A push whose batch pages and then waits for SQLite's write lock (10 s busy time-out).
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let push = {
        let (http, url) = (http.clone(), engine.url.clone());
        tokio::spawn(async move {
            let body = serde_json::json!([{ "labels": { "alertname": "Down",
                "severity": "critical", "service": "storage", "region": "china-east" } }]);
            let _ = http
                .post(format!("{url}/api/v2/alerts"))
                .json(&body)
                .send()
                .await;
        })
    };
    let outbox = dir.path().join("data/outbox");
    let paged = support::eventually(Duration::from_secs(10), || async {
        let files = std::fs::read_dir(&outbox).ok()?.count();
        (files == 1).then_some(())
    })
    .await;
    assert!(paged.is_some(), "paged:\n{}", log_of(&engine.log));

    support::send_signal(&engine.child, "TERM");
    let draining = support::eventually(Duration::from_secs(5), || async {
        log_of(&engine.log).contains("shutting down").then_some(())
    })
    .await;
    assert!(draining.is_some(), "{}", log_of(&engine.log));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        engine.child.try_wait().unwrap().is_none(),
        "the drain waits for the write lock:\n{}",
        log_of(&engine.log)
    );
    support::send_signal(&engine.child, "TERM");
    let exit = support::exit_of(&mut engine.child, Duration::from_secs(5)).await;
    let log = log_of(&engine.log);
    let exit = exit.unwrap_or_else(|| panic!("still running after a second SIGTERM:\n{log}"));
    assert_eq!(exit.code(), Some(1), "{log}");
    assert!(
        log.contains("tocsin: SIGTERM while shutting down: stopped at once"),
        "{log}"
    );
    assert!(!log.contains("stopped cleanly"), "{log}");
    push.abort();

    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let mut again = support::EngineProcess::spawn(&dir, support::free_port());
    again.wait_ready().await;
    let incidents = support::list_incidents(&http, &again.url).await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
}

/// `tocsin incidents list | head -1` and the like: a command whose output is closed ends
/// without a panic or a backtrace, with the status it would have had.
#[tokio::test]
async fn a_command_whose_output_is_closed_ends_quietly() {
    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    for service in ["storage", "sqldb"] {
        engine
            .running
            .engine()
            .send(Input::Signals(vec![alert(&[
                ("alertname", "Down"),
                ("severity", "critical"),
                ("service", service),
            ])]))
            .await
            .unwrap();
    }
    dir.write(
        "failing_test.yaml",
        r#"
config: config.yaml
tests:
  - name: expects an incident that never opens
    input: []
    expect:
      - { at: 1m, incidents: [ { status: triggered } ] }
"#,
    );
    let failing = dir.path().join("failing_test.yaml");
    let cases: [(&[&str], i32); 2] = [
        (&["incidents", "list", "--url", &engine.url], 0),
        (&["test", failing.to_str().unwrap()], 1),
    ];
    for (args, status) in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        // The reader is gone before the command writes a byte, as `head` once it has a line.
        drop(reader);
        let output = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
                .args(args)
                .stdout(writer)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("ends")
        .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(status), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: quiet, but said:\n{stderr}");
    }
    engine.stop().await;
}

fn log_of(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
