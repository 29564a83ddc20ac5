//! `tocsin backup` and `tocsin restore`: a backup taken through a running engine under load,
//! restored into a new folder, holds every incident, timeline entry and undelivered page of
//! its moment; after the restore no page delivered before the backup goes again, and one
//! delivered after it goes again only under its own `X-Tocsin-Delivery` id.
//!
//! Real binaries on real SQLite files, a real webhook receiver.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    default_rules, eventually, free_port, push_alerts, run_tocsin, send_signal, EngineProcess,
    TestDir, CATALOG,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

/// Each alert (a distinct `instance`) opens an incident that pages the receiver.
fn config(receiver: &str) -> String {
    format!(
        r#"{CATALOG}
store: {{ url: "sqlite://data/tocsin.db" }}
rule_files: [ "rules/*.yaml" ]
correlation: {{ by: [instance], window: 15m }}
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{receiver}", timeout: 2s }} ]
  retry: {{ initial_backoff: 100ms, max_backoff: 300ms, max_age: 1h }}
"#
    )
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn push_down(http: &reqwest::Client, url: &str, n: usize) {
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!([{ "labels": { "alertname": "Down", "severity": "critical",
                                    "service": "storage", "region": "china-east",
                                    "instance": format!("i-{n}") },
                        "endsAt": ends }]);
    push_alerts(http, url, body).await;
}

/// A webhook receiver that takes pages (200) while open and refuses them (503) while
/// closed, keeping the delivery id of every page it took.
struct Receiver {
    url: String,
    open: Arc<AtomicBool>,
    taken: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

type ReceiverState = (Arc<AtomicBool>, Arc<std::sync::Mutex<Vec<String>>>);

async fn take_page(State((open, taken)): State<ReceiverState>, headers: HeaderMap) -> StatusCode {
    if !open.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let id = headers
        .get("X-Tocsin-Delivery")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    taken.lock().unwrap().push(id);
    StatusCode::OK
}

impl Receiver {
    async fn start() -> Receiver {
        let open = Arc::new(AtomicBool::new(true));
        let taken = Arc::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take_page))
            .with_state((Arc::clone(&open), Arc::clone(&taken)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            open,
            taken,
            task,
        }
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The delivery ids the receiver has taken so far, in order.
fn delivered(receiver: &Receiver) -> Vec<String> {
    receiver.taken.lock().unwrap().clone()
}

/// What a store file holds: incident ids, timeline entries per incident (kind, text) and
/// the delivery ids of its pages with their status.
struct Held {
    incidents: BTreeSet<i64>,
    timelines: BTreeMap<i64, Vec<(String, String)>>,
    pages: BTreeMap<String, String>,
}

fn held(path: &Path) -> Held {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut incidents = BTreeSet::new();
    let mut statement = conn.prepare("SELECT id FROM incidents").unwrap();
    for id in statement.query_map([], |r| r.get::<_, i64>(0)).unwrap() {
        incidents.insert(id.unwrap());
    }
    let mut timelines: BTreeMap<i64, Vec<(String, String)>> = BTreeMap::new();
    let mut statement = conn
        .prepare("SELECT incident_id, kind, message FROM timeline ORDER BY id")
        .unwrap();
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (incident, kind, text) = row.unwrap();
        timelines.entry(incident).or_default().push((kind, text));
    }
    let mut pages = BTreeMap::new();
    let mut statement = conn
        .prepare("SELECT delivery_id, status FROM outbox")
        .unwrap();
    for row in statement
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (id, status) = row.unwrap();
        pages.insert(id, status);
    }
    Held {
        incidents,
        timelines,
        pages,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_everything_and_no_delivered_page_goes_again() {
    let receiver = Receiver::start().await;
    let dir = TestDir::new(
        &config(&receiver.url),
        &[("default.yaml", &default_rules())],
    );
    let http = http();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;

    // Load: a new alert, and so a new incident and page, every 20 ms until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let pushed = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, pushed, http, url) = (
            Arc::clone(&stop),
            Arc::clone(&pushed),
            http.clone(),
            engine.url.clone(),
        );
        tokio::spawn(async move {
            for n in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                push_down(&http, &url, n).await;
                pushed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // The first pages are taken; then the receiver refuses pages, so that some are still
    // waiting for a retry when the backup is taken.
    eventually(Duration::from_secs(20), || async {
        (delivered(&receiver).len() >= 20).then_some(())
    })
    .await
    .expect("20 pages taken");
    receiver.set_open(false);
    let pushed_when_closed = pushed.load(Ordering::Relaxed);
    eventually(Duration::from_secs(20), || async {
        (pushed.load(Ordering::Relaxed) >= pushed_when_closed + 20).then_some(())
    })
    .await
    .expect("20 alerts pushed while the receiver refuses pages");

    let before_backup: BTreeSet<String> = delivered(&receiver).into_iter().collect();
    let out = dir.path().join("tocsin-backup.db");
    let (code, stdout, stderr) = run_tocsin(
        dir.path(),
        &[
            "backup",
            "--config",
            "config.yaml",
            "--url",
            &engine.url,
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(code, 0, "backup: {stdout}{stderr}");
    assert!(stdout.contains("backed up the store"), "{stdout}");
    let pushed_at_backup = pushed.load(Ordering::Relaxed);

    // The load goes on past the backup, then the engine stops.
    eventually(Duration::from_secs(20), || async {
        (pushed.load(Ordering::Relaxed) >= pushed_at_backup + 20).then_some(())
    })
    .await
    .expect("20 alerts pushed after the backup");
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    send_signal(&engine.child, "TERM");
    crate::support::exit_of(&mut engine.child, Duration::from_secs(15))
        .await
        .expect("the engine stops on SIGTERM");

    let backup = held(&out);
    assert!(
        backup.incidents.len() >= 30,
        "the backup holds the incidents opened before it: {}",
        backup.incidents.len()
    );
    let waiting: Vec<&String> = backup
        .pages
        .iter()
        .filter(|(_, status)| status.as_str() != "delivered")
        .map(|(id, _)| id)
        .collect();
    assert!(
        !waiting.is_empty(),
        "some pages were still waiting at the moment of the backup"
    );

    // Restore into a new folder and start on it, paging the same receiver.
    let restored = TestDir::new(
        &config(&receiver.url),
        &[("default.yaml", &default_rules())],
    );
    let (code, stdout, stderr) = run_tocsin(
        restored.path(),
        &["restore", "--config", "config.yaml", out.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "restore: {stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{} incidents", backup.incidents.len())),
        "{stdout}"
    );
    let received_before_restart = delivered(&receiver).len();
    receiver.set_open(true);
    let mut engine = EngineProcess::spawn(&restored, free_port());
    engine.wait_ready().await;

    // Every page that was waiting at the backup reaches the receiver.
    eventually(Duration::from_secs(30), || async {
        let now: BTreeSet<String> = delivered(&receiver).into_iter().collect();
        waiting.iter().all(|id| now.contains(*id)).then_some(())
    })
    .await
    .expect("every page waiting at the backup is delivered after the restore");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: Vec<String> = delivered(&receiver)[received_before_restart..].to_vec();
    for id in &again {
        assert!(
            !before_backup.contains(id),
            "page {id}, delivered before the backup, went again after the restore"
        );
        assert!(
            backup.pages.contains_key(id),
            "page {id} after the restore is not a page of the backup"
        );
    }

    // Every incident and timeline entry of the backup is in the restored engine.
    for id in &backup.incidents {
        let (status, body) =
            crate::support::get_json(&http, &format!("{}/api/v1/incidents/{id}", engine.url)).await;
        assert_eq!(status, 200, "incident {id} after the restore: {body}");
        let timeline = body["timeline"].as_array().expect("a timeline");
        let kept = &backup.timelines[id];
        assert!(timeline.len() >= kept.len(), "incident {id}: {body}");
        for (entry, (kind, text)) in timeline.iter().zip(kept) {
            assert_eq!(entry["kind"], kind.as_str(), "incident {id}");
            assert_eq!(entry["message"], text.as_str(), "incident {id}");
        }
    }
    let now = held(&restored.path().join("data/tocsin.db"));
    assert!(now.incidents.is_superset(&backup.incidents));
    engine.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_a_running_store_a_full_one_and_a_file_that_is_no_backup() {
    let receiver = Receiver::start().await;
    let dir = TestDir::new(
        &config(&receiver.url),
        &[("default.yaml", &default_rules())],
    );
    let http = http();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    push_down(&http, &engine.url, 1).await;
    let out = dir.path().join("copy.db");
    let path = out.to_str().unwrap();
    let backup = ["backup", "--url", &engine.url, path];
    let (code, stdout, stderr) = run_tocsin(dir.path(), &backup).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    // A second backup never overwrites a file.
    let (code, _, stderr) = run_tocsin(dir.path(), &backup).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("exists"), "{stderr}");

    // The engine holds its store: restore names it and changes nothing.
    let restore = ["restore", "--config", "config.yaml", "--replace", path];
    let (code, _, stderr) = run_tocsin(dir.path(), &restore).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("in use by another engine"), "{stderr}");
    assert!(stderr.contains("stop that engine"), "{stderr}");
    send_signal(&engine.child, "TERM");
    crate::support::exit_of(&mut engine.child, Duration::from_secs(15))
        .await
        .expect("the engine stops");

    // A store that holds incidents is replaced only when asked.
    let (code, _, stderr) =
        run_tocsin(dir.path(), &["restore", "--config", "config.yaml", path]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("holds a store already (1 incident)"),
        "{stderr}"
    );
    assert!(stderr.contains("--replace"), "{stderr}");
    let (code, stdout, stderr) = run_tocsin(dir.path(), &restore).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("1 incident,"), "{stdout}");

    // Files that are not backups.
    dir.write(
        "notes.txt",
        "not a database at all, but long enough to be read as one....",
    );
    for (file, says) in [
        ("notes.txt", "not a SQLite database"),
        ("missing.db", "no such file"),
    ] {
        let (code, _, stderr) = run_tocsin(
            dir.path(),
            &["restore", "--config", "config.yaml", "--replace", file],
        )
        .await;
        assert_eq!(code, 1, "{file}");
        assert!(
            stderr.contains(file) && stderr.contains(says),
            "{file}: {stderr}"
        );
    }
    // The restored store starts and holds its incident.
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let incidents = crate::support::list_incidents(&http, &engine.url).await;
    assert_eq!(incidents.len(), 1);
    engine.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_store_points_to_pg_dump_and_pg_restore() {
    let database = crate::support::PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let text = config(&receiver.url).replace("sqlite://data/tocsin.db", &database.url);
    let dir = TestDir::new(&text, &[("default.yaml", &default_rules())]);
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let (code, _, stderr) =
        run_tocsin(dir.path(), &["backup", "--url", &engine.url, "copy.db"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("409") && stderr.contains("pg_dump"),
        "{stderr}"
    );
    assert!(!dir.path().join("copy.db").exists());
    engine.kill();
    dir.write("copy.db", "");
    let (code, _, stderr) = run_tocsin(
        dir.path(),
        &["restore", "--config", "config.yaml", "copy.db"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("pg_restore"), "{stderr}");
    database.drop_db().await;
}
