//! One engine per SQLite store: a second engine on a file an engine uses is refused at once,
//! by whatever path it reaches the file, and the first runs on untouched; an engine that
//! was SIGKILLed never blocks its own restart; read-only commands never take the lock; a
//! generated ack-link key of an earlier version keeps its links working.
//!
//! Real binaries on a real SQLite file; pages are written as `.eml` files.

use std::path::Path;
use std::time::Duration;

use crate::support;
use crate::support::{
    eventually, free_port, list_incidents, push_alerts, run_tocsin, EngineProcess, TestDir, CATALOG,
};
use serde_json::json;
use tocsin::paging::AckSigner;
use tocsin::store::Store;

/// Every alert pages alice by email, written to `data/outbox/`.
fn config() -> String {
    format!(
        r#"{CATALOG}
store: {{ url: "sqlite://data/tocsin.db" }}
rule_files: [ "rules/*.yaml" ]
correlation: {{ by: [service], window: 15m }}
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: data/outbox }} }}
"#
    )
}

fn engine_dir() -> TestDir {
    TestDir::new(&config(), &[("default.yaml", &support::default_rules())])
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

/// An outage of `service`, storage in china-east and the others in china-north: two
/// services down in one region within minutes would be one regional incident.
async fn push(http: &reqwest::Client, url: &str, service: &str) {
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let region = if service == "storage" {
        "china-east"
    } else {
        "china-north"
    };
    let body = json!([{ "labels": { "alertname": "Down", "severity": "critical",
                                    "service": service, "region": region },
                        "endsAt": ends }]);
    push_alerts(http, url, body).await;
}

/// The `.eml` files written so far.
fn emails(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("data/outbox"))
        .map(|files| files.count())
        .unwrap_or(0)
}

/// Wait until `dir`'s engine has written `n` pages.
async fn wait_emails(dir: &Path, n: usize) {
    eventually(Duration::from_secs(15), || async {
        (emails(dir) >= n).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("{n} pages written; {} found", emails(dir)));
    assert_eq!(emails(dir), n);
}

fn log_of(engine: &EngineProcess) -> String {
    std::fs::read_to_string(&engine.log).unwrap_or_default()
}

/// `tocsin run --config CONFIG --listen LISTEN` in `cwd` is refused: exit status 1 and one
/// line naming the store's file and the engine that holds it.
async fn refused(cwd: &Path, config: &str, listen: &str, database: &Path, holder: &EngineProcess) {
    let started = tokio::time::Instant::now();
    let (code, stdout, stderr) =
        run_tocsin(cwd, &["run", "--config", config, "--listen", listen]).await;
    let took = started.elapsed();
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line:\n{stderr}");
    let line = lines[0];
    let port = holder.url.rsplit(':').next().unwrap();
    for needle in [
        format!("store {} is in use by another engine", database.display()),
        format!("pid {} on host ", holder.child.id()),
        format!("listening on 127.0.0.1:{port}"),
        "one engine per SQLite store".to_string(),
    ] {
        assert!(line.contains(&needle), "{needle:?} not in: {line}");
    }
    // The promise is 1 s; this bound only catches a refusal that waited on something.
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
}

#[tokio::test]
async fn a_second_engine_on_a_sqlite_file_in_use_is_refused_and_the_first_runs_on() {
    let dir = engine_dir();
    let mut first = EngineProcess::spawn(&dir, free_port());
    first.wait_ready().await;
    let http = http();
    push(&http, &first.url, "storage").await;
    wait_emails(dir.path(), 1).await;
    let database = dir.path().join("data/tocsin.db").canonicalize().unwrap();

    // The same config, relative to another working directory, on another port and on the
    // first engine's own (the store is the reason given, not the port).
    refused(dir.path(), "config.yaml", "127.0.0.1:0", &database, &first).await;
    let first_port = first.url.trim_start_matches("http://").to_string();
    refused(dir.path(), "config.yaml", &first_port, &database, &first).await;
    // A symlink to the file, from another folder.
    let other = engine_dir();
    std::os::unix::fs::symlink(&database, other.path().join("link.db")).unwrap();
    let linked = config().replace("sqlite://data/tocsin.db", "sqlite://link.db");
    other.write("config.yaml", &linked);
    let other_config = other.config_path();
    let other_config = other_config.to_str().unwrap();
    refused(
        Path::new("/"),
        other_config,
        "127.0.0.1:0",
        &database,
        &first,
    )
    .await;
    // A relative path that walks out and back in.
    let name = dir.path().file_name().unwrap().to_str().unwrap();
    let walked = config().replace(
        "sqlite://data/tocsin.db",
        &format!("sqlite://../{name}/data/../data/tocsin.db"),
    );
    other.write("config.yaml", &walked);
    refused(
        other.path(),
        "config.yaml",
        "127.0.0.1:0",
        &database,
        &first,
    )
    .await;

    // The first engine is untouched: it serves, keeps its state and pages.
    let ready = http
        .get(format!("{}/-/ready", first.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    push(&http, &first.url, "sqldb").await;
    wait_emails(dir.path(), 2).await;
    let incidents = list_incidents(&http, &first.url).await;
    let ids: Vec<i64> = incidents.iter().filter_map(|i| i["id"].as_i64()).collect();
    assert_eq!(ids, vec![1, 2], "{incidents:?}");
    let log = log_of(&first);
    assert!(
        !log.contains("ERROR") && !log.contains("WARN"),
        "the first engine heard nothing of the others:\n{log}"
    );
    // A generated ack-link key lives in the store, not in a file per engine.
    assert!(!dir.path().join("data/ack-link.key").exists());
}

/// `tocsin check`, `test`, `replay` and the API client run beside an engine, on its config
/// and store, and leave it alone.
#[tokio::test]
async fn read_only_commands_never_take_the_lock() {
    let dir = engine_dir();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = http();
    push(&http, &engine.url, "storage").await;
    dir.write(
        "signals.jsonl",
        r#"{"at": "2026-01-05T02:00:00Z", "source": "alert", "labels": {"alertname": "Down", "severity": "critical", "service": "storage", "region": "china-east"}}
"#,
    );
    dir.write(
        "rules_test.yaml",
        r#"
config: config.yaml
tests:
  - name: an alert opens an incident
    input:
      - { at: 0s, source: alert, labels: { alertname: Down, severity: critical, service: storage, region: china-east } }
    expect:
      - { at: 1m, incidents: [ { status: triggered } ] }
"#,
    );
    let config = dir.config_path();
    let config = config.to_str().unwrap();
    let signals = dir.path().join("signals.jsonl");
    let test_file = dir.path().join("rules_test.yaml");
    let commands: Vec<Vec<&str>> = vec![
        vec!["check", "--config", config],
        vec!["test", test_file.to_str().unwrap()],
        vec!["replay", "--config", config, signals.to_str().unwrap()],
        vec!["incidents", "list", "--url", &engine.url],
    ];
    for args in &commands {
        let (code, stdout, stderr) = run_tocsin(dir.path(), args).await;
        assert_eq!(code, 0, "tocsin {args:?}:\n{stdout}\n{stderr}");
        assert!(!stderr.contains("in use"), "tocsin {args:?}: {stderr}");
    }
    // The engine still holds its store: another engine is still refused.
    let database = dir.path().join("data/tocsin.db").canonicalize().unwrap();
    refused(dir.path(), "config.yaml", "127.0.0.1:0", &database, &engine).await;
    assert_eq!(list_incidents(&http, &engine.url).await.len(), 1);
}

#[tokio::test]
async fn an_engine_killed_on_its_store_restarts_on_it_at_once() {
    let dir = engine_dir();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = http();
    push(&http, &engine.url, "storage").await;
    wait_emails(dir.path(), 1).await;
    // SIGKILL: no clean stop, the lock goes with the process.
    engine.kill();
    let mut again = EngineProcess::spawn(&dir, free_port());
    again.wait_ready().await;
    let incidents = list_incidents(&http, &again.url).await;
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let log = log_of(&again);
    assert!(!log.contains("in use"), "{log}");
    // The side file names the new engine.
    let holder = std::fs::read_to_string(dir.path().join("data/tocsin.db-engine")).unwrap();
    assert!(
        holder.contains(&format!("\"pid\":{}", again.child.id())),
        "{holder}"
    );
}

/// An ack link signed with the key an earlier version generated in `data/ack-link.key`.
fn link_signed_with(key: &str, incident: i64) -> String {
    let token = AckSigner::new(key.as_bytes()).sign(
        incident,
        "alice",
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    format!("/ack/{token}")
}

async fn acknowledged_by_link(http: &reqwest::Client, url: &str, path: &str, incident: i64) {
    let response = http.post(format!("{url}{path}")).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{text}");
    let incident: serde_json::Value = http
        .get(format!("{url}/api/v1/incidents/{incident}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(incident["status"], "acknowledged", "{incident}");
    assert_eq!(incident["acknowledged_by"], "alice", "{incident}");
}

/// A store an earlier version left, with the ack-link key it generated in a file: after the
/// upgrade, links signed with that key are accepted, the engine signs new links with it (it
/// became the store's key), and it keeps working once the file is gone.
#[tokio::test]
async fn an_ack_link_key_generated_by_an_earlier_version_keeps_its_links_working() {
    let dir = engine_dir();
    let database = dir.path().join("data/tocsin.db");
    std::fs::create_dir_all(database.parent().unwrap()).unwrap();
    let url = format!("sqlite://{}", database.display());
    // The earlier version's last migration was 0006; it kept its key as hex in a file.
    support::store_of_an_earlier_version(&url, "sqlite", 6)
        .await
        .close()
        .await;
    let key = hex::encode([7u8; 32]);
    dir.write("data/ack-link.key", &format!("{key}\n"));

    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = http();
    push(&http, &engine.url, "storage").await;
    wait_emails(dir.path(), 1).await;
    acknowledged_by_link(&http, &engine.url, &link_signed_with(&key, 1), 1).await;
    engine.kill();

    // The page it sent carries a link signed with the same key.
    let store = Store::open(&url).await.unwrap();
    let pages = store.pages_of(1).await.unwrap();
    let sent = pages[0].page.payload.ack_url.clone().expect("an ack link");
    let token = sent.rsplit('/').next().unwrap();
    let claim = AckSigner::new(key.as_bytes())
        .verify(token, chrono::Utc::now())
        .expect("signed with the earlier key");
    assert_eq!(claim.incident_id, 1);
    store.close().await;

    // Without the file: the key is the store's now.
    std::fs::remove_file(dir.path().join("data/ack-link.key")).unwrap();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    push(&http, &engine.url, "sqldb").await;
    // Incident 1's page and its acknowledgement (sent before the kill or after the
    // restart), incident 2's page.
    wait_emails(dir.path(), 3).await;
    acknowledged_by_link(&http, &engine.url, &link_signed_with(&key, 2), 2).await;
    assert!(
        !dir.path().join("data/ack-link.key").exists(),
        "no key file is written again"
    );
}
