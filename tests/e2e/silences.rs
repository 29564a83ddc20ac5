//! Silences made at run time, through the real binary: the API, the CLI, the real amtool
//! (Debian's prometheus-alertmanager), and two engines on one PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::support;
use crate::support::paging::{Answer, Receiver};
use crate::support::{
    eventually, free_port, get_json, post_json, push_alerts, run_tocsin, EngineProcess, PgDatabase,
    TestDir, CATALOG,
};

/// Every incident pages `oncall` by webhook at once, and again an hour later.
fn config(receiver: &str, store: &str) -> String {
    format!(
        r#"{CATALOG}
{store}
responders:
  - {{ id: oncall, webhook: hook }}
escalation_policies:
  - name: main
    levels:
      - {{ after: 0s, notify: [ "responder:oncall" ] }}
      - {{ after: 1h, notify: [ "responder:oncall" ] }}
routes:
  - {{ match: [], policy: main }}
notifiers:
  webhooks: [ {{ name: hook, url: "{receiver}", timeout: 2s }} ]
  retry: {{ initial_backoff: 200ms, max_backoff: 1s, max_age: 1h }}
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

async fn start(receiver: &Receiver) -> (TestDir, EngineProcess) {
    let dir = TestDir::new(
        &config(&receiver.url, ""),
        &[("default.yaml", &support::default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    (dir, engine)
}

/// Push one critical alert; returns the incident it joined.
async fn push(http: &reqwest::Client, url: &str, labels: &[(&str, &str)]) -> i64 {
    let mut all: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    all.insert("severity".into(), json!("critical"));
    let ends = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    push_alerts(http, url, json!([{ "labels": all, "endsAt": ends }])).await;
    let want: Vec<(String, String)> = labels
        .iter()
        .filter(|(k, _)| *k == "service" || *k == "region")
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    eventually(Duration::from_secs(10), || async {
        let (_, list) = get_json(http, &format!("{url}/api/v1/incidents?status=open")).await;
        list["incidents"].as_array()?.iter().find_map(|i| {
            let names = |key: &str| i[key].as_array().cloned().unwrap_or_default();
            want.iter()
                .all(|(k, v)| names(&format!("{k}s")).contains(&json!(v)))
                .then(|| i["id"].as_i64())
                .flatten()
        })
    })
    .await
    .expect("the push opens or joins an incident")
}

/// The pages of `incident` the receiver got (their events).
fn pages_of(receiver: &Receiver, incident: i64) -> Vec<String> {
    receiver
        .received()
        .iter()
        .filter_map(|r| {
            let payload: Value = serde_json::from_slice(&r.body).ok()?;
            (payload["incident"]["id"].as_i64() == Some(incident))
                .then(|| payload["event"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

async fn timeline(http: &reqwest::Client, url: &str, incident: i64) -> Vec<Value> {
    let (_, detail) = get_json(http, &format!("{url}/api/v1/incidents/{incident}")).await;
    detail["timeline"].as_array().cloned().unwrap_or_default()
}

async fn make(http: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    post_json(http, &format!("{url}/api/v1/silences"), &body).await
}

/// A silence holds the pages of the incidents it matches (the timeline names it), a new
/// impact it does not match pages, and when it ends paging starts; a dry run makes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_holds_pages_until_it_ends_and_an_impact_it_misses_pages() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (_dir, engine) = start(&receiver).await;
    let (http, url) = (http(), engine.url.clone());

    // Paged as usual before any silence.
    let storage = push(
        &http,
        &url,
        &[
            ("alertname", "Down"),
            ("service", "storage"),
            ("region", "china-east"),
        ],
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (!pages_of(&receiver, storage).is_empty()).then_some(())
    })
    .await
    .expect("storage paged");

    // A dry run names the open incidents it would hold, and makes nothing.
    let (status, answer) = make(
        &http,
        &url,
        json!({ "matchers": ["service=\"storage\""], "duration": "1h", "created_by": "alice", "comment": "swap" }),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let storage_silence = answer["id"].as_str().unwrap().to_string();
    let (status, dry) = post_json(
        &http,
        &format!("{url}/api/v1/silences?dry_run=true"),
        &json!({ "matchers": ["region=~\"china-.*\""], "duration": "1h", "created_by": "alice", "comment": "x" }),
    )
    .await;
    assert_eq!(
        (status, dry.clone()),
        (200, json!({ "incidents": [storage] }))
    );
    let (_, list) = get_json(&http, &format!("{url}/api/v1/silences")).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["state"], "active");
    assert_eq!(list[0]["created_by"], "alice");

    // Held: a database alert the silence matches opens an incident that is not paged.
    let (status, slow) = make(
        &http,
        &url,
        json!({ "matchers": ["alertname=\"DbSlow\""], "duration": "1h", "created_by": "bob", "comment": "index rebuild" }),
    )
    .await;
    assert_eq!(status, 201, "{slow}");
    let slow_id = slow["id"].as_str().unwrap();
    let db = push(
        &http,
        &url,
        &[
            ("alertname", "DbSlow"),
            ("service", "sqldb"),
            ("region", "china-north"),
        ],
    )
    .await;
    assert_ne!(db, storage);
    let held = eventually(Duration::from_secs(10), || async {
        timeline(&http, &url, db)
            .await
            .into_iter()
            .find(|e| e["kind"] == "silenced")
    })
    .await
    .expect("the timeline says the silence holds it");
    let message = held["message"].as_str().unwrap();
    assert!(
        message.contains(slow_id) && message.contains("index rebuild"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        pages_of(&receiver, db).is_empty(),
        "a held incident was paged"
    );

    // A new impact of that incident the silence does not match: it pages.
    let joined = push(
        &http,
        &url,
        &[
            ("alertname", "DbDown"),
            ("service", "sqldb"),
            ("region", "china-north"),
        ],
    )
    .await;
    assert_eq!(joined, db, "the second alert joins the incident");
    eventually(Duration::from_secs(10), || async {
        (!pages_of(&receiver, db).is_empty()).then_some(())
    })
    .await
    .expect("an impact the silence misses pages");

    // A short silence: held while it lasts, paged once it ends.
    let (status, short) = make(
        &http,
        &url,
        json!({ "matchers": ["service=\"compute\""], "duration": "4s", "created_by": "carol", "comment": "reboot" }),
    )
    .await;
    assert_eq!(status, 201, "{short}");
    let ends: DateTime<Utc> = short["ends_at"].as_str().unwrap().parse().unwrap();
    let compute = push(
        &http,
        &url,
        &[
            ("alertname", "Down"),
            ("service", "compute"),
            ("region", "china-west"),
        ],
    )
    .await;
    // Not paged while it lasts (looked at until just before its end).
    while Utc::now() < ends - chrono::Duration::milliseconds(700) {
        assert!(
            pages_of(&receiver, compute).is_empty(),
            "paged while the silence held"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(Duration::from_secs(15), || async {
        (!pages_of(&receiver, compute).is_empty()).then_some(())
    })
    .await
    .expect("paged when the silence ends");
    assert!(Utc::now() >= ends, "paged before the silence ended");
    let (_, list) = get_json(&http, &format!("{url}/api/v1/silences?state=expired")).await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], short["id"]);

    // Expire: once; again is a 409; an unknown id a 404.
    let client = http.clone();
    let delete = |id: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let r = client
                .delete(format!("{url}/api/v1/silences/{id}"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, expired) = delete(storage_silence.clone()).await;
    assert_eq!((status, expired["state"].clone()), (200, json!("expired")));
    let (status, again) = delete(storage_silence).await;
    assert_eq!(status, 409, "{again}");
    let (status, _) = delete("no-such-silence".into()).await;
    assert_eq!(status, 404);

    // Bad silences are refused saying why, in the API's words.
    for (body, says) in [
        (
            json!({ "matchers": [], "duration": "1h", "created_by": "a", "comment": "c" }),
            "at least one matcher",
        ),
        (
            json!({ "matchers": ["service=\"x\""], "created_by": "a", "comment": "c" }),
            "`ends_at`",
        ),
        (
            json!({ "matchers": ["service~=\"x\""], "duration": "1h", "created_by": "a", "comment": "c" }),
            "did you mean =~",
        ),
        (
            json!({ "matchers": ["service=\"x\""], "duration": "1h", "created_by": "", "comment": "c" }),
            "`created_by`",
        ),
        (
            json!({ "matchers": ["service=\"x\""], "ends_at": "2020-01-01T00:00:00Z", "created_by": "a", "comment": "c" }),
            "must be after",
        ),
    ] {
        let (status, answer) = make(&http, &url, body.clone()).await;
        assert!(status == 400 || status == 422, "{body} → {status}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body}: {error}");
    }
}

/// A silence whose start is ahead is a maintenance window: pending until then, and it
/// survives a restart of the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_window_ahead_is_pending_and_outlives_a_restart() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (dir, mut engine) = start(&receiver).await;
    let (http, url) = (http(), engine.url.clone());
    let starts = (Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let (status, window) = make(
        &http,
        &url,
        json!({ "matchers": ["region=\"china-east\""], "starts_at": starts, "duration": "2h", "created_by": "alice", "comment": "network work" }),
    )
    .await;
    assert_eq!((status, window["state"].clone()), (201, json!("pending")));
    // Not in force yet: an incident there pages.
    let id = push(
        &http,
        &url,
        &[
            ("alertname", "Down"),
            ("service", "storage"),
            ("region", "china-east"),
        ],
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (!pages_of(&receiver, id).is_empty()).then_some(())
    })
    .await
    .expect("paged before the window");
    engine.kill();
    let mut again = EngineProcess::spawn(&dir, free_port());
    again.wait_ready().await;
    let (_, list) = get_json(&http, &format!("{}/api/v1/silences", again.url)).await;
    assert_eq!(list[0]["id"], window["id"], "{list}");
    assert_eq!(list[0]["state"], "pending");
}

fn amtool(url: &str, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new("/usr/bin/amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(args)
        .output()
        .expect("amtool (Debian package prometheus-alertmanager)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// The real amtool adds, queries (as a table, as ids, as JSON) and expires silences, and
/// what it makes is tocsin's own silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amtool_adds_queries_and_expires_silences() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (_dir, engine) = start(&receiver).await;
    let (http, url) = (http(), engine.url.clone());
    let url2 = url.clone();
    let add = tokio::task::spawn_blocking(move || {
        amtool(
            &url2,
            &[
                "silence",
                "add",
                "alertname=DbSlow",
                "region=~china-.*",
                "--comment=index rebuild",
                "--duration=2h",
                "--author=alice",
            ],
        )
    })
    .await
    .unwrap();
    assert!(add.0, "amtool silence add: {} {}", add.1, add.2);
    let id = add.1.trim().to_string();
    let (status, silence) = get_json(&http, &format!("{url}/api/v1/silences/{id}")).await;
    assert_eq!(status, 200, "{silence}");
    assert_eq!(
        silence["matchers"],
        json!(["alertname=\"DbSlow\"", "region=~\"china-.*\""])
    );
    assert_eq!(silence["created_by"], "alice");
    assert_eq!(silence["comment"], "index rebuild");

    let u = url.clone();
    let (table, ids, as_json, filtered, none) = tokio::task::spawn_blocking(move || {
        (
            amtool(&u, &["silence", "query"]),
            amtool(&u, &["silence", "query", "-q"]),
            amtool(&u, &["silence", "query", "-o", "json"]),
            amtool(&u, &["silence", "query", "-q", "alertname=DbSlow"]),
            amtool(&u, &["silence", "query", "-q", "alertname=Other"]),
        )
    })
    .await
    .unwrap();
    assert!(
        table.0 && table.1.contains(&id) && table.1.contains("alice"),
        "{table:?}"
    );
    assert_eq!(ids.1.trim(), id, "{ids:?}");
    let listed: Value = serde_json::from_str(&as_json.1).expect("amtool prints JSON");
    assert_eq!(listed[0]["id"], json!(id));
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["createdBy"], "alice");
    assert_eq!(filtered.1.trim(), id, "{filtered:?}");
    assert_eq!(none.1.trim(), "", "{none:?}");

    let u = url.clone();
    let i = id.clone();
    let (expire, after, expired, twice) = tokio::task::spawn_blocking(move || {
        (
            amtool(&u, &["silence", "expire", &i]),
            amtool(&u, &["silence", "query", "-q"]),
            amtool(&u, &["silence", "query", "-q", "--expired"]),
            amtool(&u, &["silence", "expire", &i]),
        )
    })
    .await
    .unwrap();
    assert!(expire.0, "amtool silence expire: {expire:?}");
    assert_eq!(after.1.trim(), "", "{after:?}");
    assert_eq!(expired.1.trim(), id, "{expired:?}");
    assert!(!twice.0 && twice.2.contains("already ended"), "{twice:?}");
    let (_, silence) = get_json(&http, &format!("{url}/api/v1/silences/{id}")).await;
    assert_eq!(silence["state"], "expired");
}

/// `tocsin silence add|list|expire` against the API, tables for people and JSON for scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_lists_and_expires_silences() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let (dir, engine) = start(&receiver).await;
    let http = http();
    let id = push(
        &http,
        &engine.url,
        &[
            ("alertname", "Down"),
            ("service", "storage"),
            ("region", "china-east"),
        ],
    )
    .await;
    let cli = |args: Vec<String>| {
        let cwd = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tocsin(&cwd, &args).await
        }
    };
    let base = |words: &[&str]| {
        let mut v: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        v.extend(["--url".to_string(), engine.url.clone()]);
        v
    };
    let (code, out, err) = cli(base(&[
        "silence",
        "add",
        "service=\"storage\"",
        "--duration",
        "1h",
        "--comment",
        "swap",
        "--by",
        "dave",
        "--dry-run",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("it would hold 1 open incident: {id}\n"));
    let (code, out, err) = cli(base(&[
        "silence",
        "add",
        "service=\"storage\"",
        "region=~\"china-.*\"",
        "--duration",
        "1h",
        "--comment",
        "swap",
        "--by",
        "dave",
        "--output",
        "json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(&out).unwrap();
    let silence = made["id"].as_str().unwrap().to_string();
    let (code, out, _) = cli(base(&["silence", "list"])).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("MATCHERS"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&silence) && lines[1].contains("active") && lines[1].contains("dave"),
        "{out}"
    );
    let (code, out, err) = cli(base(&["silence", "expire", &silence])).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("silence {silence} expired at ")),
        "{out}"
    );
    let (code, _, err) = cli(base(&["silence", "expire", &silence])).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("409 conflict") && err.contains("already ended"),
        "{err}"
    );
    let (code, _, err) = cli(base(&[
        "silence",
        "add",
        "service=\"storage\"",
        "--comment",
        "x",
        "--by",
        "d",
    ]))
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("--duration"), "{err}");
}

/// Two engines on one PostgreSQL: a silence made through the follower holds the pages the
/// leader sends, and the follower lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_made_through_a_follower_holds_pages_at_the_leader() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let store = format!("store: {{ url: \"{}\", lease: 3s }}", db.url);
    let rules = support::default_rules();
    let dirs: Vec<TestDir> = (0..2)
        .map(|_| TestDir::new(&config(&receiver.url, &store), &[("default.yaml", &rules)]))
        .collect();
    let mut leader = EngineProcess::spawn(&dirs[0], free_port());
    leader.wait_ready().await;
    let mut follower = EngineProcess::spawn(&dirs[1], free_port());
    follower.wait_ready().await;
    let http = http();
    let (_, ready) = get_json(&http, &format!("{}/-/ready", follower.url)).await;
    assert!(
        ready.as_str().unwrap_or_default().contains("follower"),
        "{ready}"
    );

    let (status, silence) = make(
        &http,
        &follower.url,
        json!({ "matchers": ["service=\"sqldb\""], "duration": "1h", "created_by": "erin", "comment": "failover drill" }),
    )
    .await;
    assert_eq!(status, 201, "{silence}");
    let (_, listed) = get_json(&http, &format!("{}/api/v1/silences", leader.url)).await;
    assert_eq!(listed[0]["id"], silence["id"], "{listed}");

    // The push goes to the leader; the follower's silence holds its page.
    let held = push(
        &http,
        &leader.url,
        &[
            ("alertname", "Down"),
            ("service", "sqldb"),
            ("region", "china-north"),
        ],
    )
    .await;
    let entry = eventually(Duration::from_secs(10), || async {
        timeline(&http, &follower.url, held)
            .await
            .into_iter()
            .find(|e| e["kind"] == "silenced")
    })
    .await
    .expect("held at the leader");
    assert!(entry["message"]
        .as_str()
        .unwrap()
        .contains(silence["id"].as_str().unwrap()));
    // Another service is paged as usual (so the pages do flow).
    let paged = push(
        &http,
        &leader.url,
        &[
            ("alertname", "Down"),
            ("service", "storage"),
            ("region", "china-east"),
        ],
    )
    .await;
    eventually(Duration::from_secs(10), || async {
        (!pages_of(&receiver, paged).is_empty()).then_some(())
    })
    .await
    .expect("the other incident is paged");
    assert!(
        pages_of(&receiver, held).is_empty(),
        "the silenced incident was paged"
    );

    // Expired through the follower: the leader pages it.
    let response = http
        .delete(format!(
            "{}/api/v1/silences/{}",
            follower.url,
            silence["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    eventually(Duration::from_secs(10), || async {
        (!pages_of(&receiver, held).is_empty()).then_some(())
    })
    .await
    .expect("paged once the silence is expired");
    leader.kill();
    follower.kill();
    drop(dirs);
    db.drop_db().await;
}
