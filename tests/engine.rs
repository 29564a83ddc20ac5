//! End-to-end: the engine core behind the real runtime, store and API.

mod support;

use std::collections::BTreeMap;

use support::{TestDir, TestEngine, CATALOG};
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
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["severity"], 2);
    assert_eq!(list[0]["status"], "triggered");
    assert_eq!(list[0]["customer_count"], 2);
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let (_, list) = engine.get("/api/v1/incidents?status=triggered").await;
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
    let (status, body) = engine.post("/-/reload", &serde_json::json!({})).await;
    assert_eq!(status, 200, "{body}");
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

/// The store does not hold a key to one row (the engine numbers rule states and leases): if
/// a key ever has two rows, a restarted engine takes the later one and deletes the earlier
/// with its first write, so they never pile up.
#[tokio::test]
async fn a_key_found_in_two_rows_keeps_the_later_after_a_restart() {
    use tocsin::engine::core::{Changes, Lease};
    use tocsin::store::Store;

    let dir = TestDir::new(CATALOG, &[("default.yaml", &support::default_rules())]);
    let firing = alert(&[("alertname", "DiskFull"), ("service", "storage")]);
    let fingerprint = firing.fingerprint();
    let lease = |row: i64, minutes: i64| Lease {
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(minutes),
        signal: firing.clone().into(),
        row,
    };
    let store = Store::open(&dir.store_url()).await.unwrap();
    store
        .apply(&Changes {
            leases: vec![(fingerprint, lease(4, 30)), (fingerprint, lease(9, 60))],
            ..Changes::default()
        })
        .await
        .unwrap();
    store.close().await;

    let engine = TestEngine::start(&dir).await;
    // Any input makes a write, which carries the deletion.
    engine
        .running
        .engine()
        .send(Input::Signals(vec![alert(&[("alertname", "Other")])]))
        .await
        .unwrap();
    engine.stop().await;

    let store = Store::open(&dir.store_url()).await.unwrap();
    let snapshot = store.load().await.unwrap();
    let leases: Vec<_> = snapshot
        .leases
        .iter()
        .map(|(fp, lease)| (*fp, lease.row))
        .collect();
    assert_eq!(leases, vec![(fingerprint, 9)]);
    assert_eq!(snapshot.next_lease_row, 10, "rows are never numbered twice");
    store.close().await;
}
