//! The API's edges, against the real binary: a pushed alert that ends before it starts is
//! answered as a real Alertmanager answers it, a 405 says in its body what its `Allow`
//! header says, every field of every body of the wrong type is named in the API's words,
//! and the `process_*` metrics are what /proc says of the process.

use std::collections::BTreeSet;

use crate::support;
use crate::support::reliability::{free_port, http, Proc};
use crate::support::sources::Peer;
use crate::support::TestDir;
use chrono::{Duration as Span, SecondsFormat, Utc};
use serde_json::{json, Value};

/// Many requests from one address.
const NO_LIMIT: &str = "server: { rate_limit: { per_client: 100000, burst: 100000 } }\n";

/// The real binary on the default rules.
async fn engine(dir: &TestDir) -> Proc {
    let mut engine = Proc::start(
        &dir.config_path(),
        free_port(),
        &dir.path().join("engine.log"),
        &[],
    );
    engine.wait_ready().await;
    engine
}

fn test_dir() -> TestDir {
    TestDir::new(
        &format!("{NO_LIMIT}{}", support::CATALOG),
        &[("default.yaml", &support::default_rules())],
    )
}

fn time(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn post(url: &str, body: &Value) -> (u16, Value) {
    let answer = http().post(url).json(body).send().await.expect("POST");
    let status = answer.status().as_u16();
    let text = answer.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn an_alert_that_ends_before_it_starts_is_refused_as_alertmanager_refuses_it() {
    let mut alertmanager = Peer::alertmanager(
        "route: { receiver: none }\nreceivers: [ { name: none } ]\n",
        free_port(),
    );
    alertmanager.wait_ready().await;
    let dir = test_dir();
    let engine = engine(&dir).await;
    let now = Utc::now();
    let batch = json!([
        { "labels": { "alertname": "DiskFull", "severity": "critical", "service": "storage",
                      "region": "china-east" },
          "startsAt": time(now - Span::minutes(1)) },
        { "labels": { "alertname": "Backwards", "severity": "critical", "service": "sqldb",
                      "region": "china-north" },
          "startsAt": time(now - Span::minutes(1)), "endsAt": time(now - Span::minutes(2)) },
    ]);

    // Alertmanager: 400 for the batch, naming the problem; the valid alert is taken.
    let (status, answer) = post(&format!("{}/api/v2/alerts", alertmanager.url), &batch).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer
            .to_string()
            .contains("start time must be before end time"),
        "{answer}"
    );
    let (_, kept) = post_get(&format!("{}/api/v2/alerts", alertmanager.url)).await;
    let names: Vec<&str> = kept
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["labels"]["alertname"].as_str())
        .collect();
    assert_eq!(names, ["DiskFull"], "{kept}");

    // tocsin: the same status and reason, naming the alert; the valid one is taken.
    let (status, answer) = engine.post_json("/api/v2/alerts", &batch).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["accepted"], 1, "{answer}");
    assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
    let reason = answer["rejected"][0]["error"].as_str().unwrap_or_default();
    assert!(
        reason.contains("start time must be before end time") && reason.contains("endsAt"),
        "{answer}"
    );
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("alert 1: endsAt"),
        "{answer}"
    );
    let (status, incidents) = engine.get_json("/api/v1/incidents").await;
    assert_eq!(status, 200);
    let incidents = incidents["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let (_, incident) = engine
        .get_json(&format!("/api/v1/incidents/{}", incidents[0]["id"]))
        .await;
    let impacts = incident["impacts"].to_string();
    assert!(
        impacts.contains("DiskFull") && !impacts.contains("Backwards"),
        "{incident:#}"
    );
}

async fn post_get(url: &str) -> (u16, Value) {
    let answer = http().get(url).send().await.expect("GET");
    (
        answer.status().as_u16(),
        answer.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_405_lists_the_methods_of_its_allow_header_in_its_body() {
    let dir = test_dir();
    let engine = engine(&dir).await;
    for (method, path) in [
        ("GET", "/api/v2/alerts"),
        ("PUT", "/api/v1/alertmanager"),
        ("GET", "/api/v1/cri"),
        ("DELETE", "/api/v1/heartbeats/backup"),
        ("DELETE", "/api/v1/incidents"),
        ("GET", "/api/v1/incidents/1/ack"),
        ("PATCH", "/api/v1/incidents/1/severity"),
        ("POST", "/api/v1/oncall"),
        ("POST", "/api/v1/queues/triage"),
        ("GET", "/-/reload"),
        ("POST", "/metrics"),
        ("DELETE", "/ack/some-token"),
        ("PUT", "/incidents/1/notes"),
        ("DELETE", "/login"),
    ] {
        let answer = http()
            .request(method.parse().unwrap(), format!("{}{path}", engine.url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 405, "{method} {path}");
        let allow: BTreeSet<String> = answer
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        assert!(!allow.is_empty(), "{method} {path}");
        let body: Value = answer.json().await.unwrap();
        let listed: BTreeSet<String> = body["allowed"]
            .as_array()
            .unwrap_or_else(|| panic!("{method} {path}: {body}"))
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        assert_eq!(listed, allow, "{method} {path}: {body}");
        let error = body["error"].as_str().unwrap();
        for m in &allow {
            assert!(error.contains(m.as_str()), "{method} {path}: {error}");
        }
    }
}

/// Words of ours a client must never see in an error.
const OURS: [&str; 16] = [
    "struct",
    "enum ",
    "Body",
    "Alert ",
    "PostableAlert",
    "LabelSet",
    "Option",
    "i64",
    "u8",
    "u16",
    "u32",
    "usize",
    "f64",
    "`",
    "sequence",
    "invalid type",
];

/// A value of another type than `value`.
fn wrong(value: &Value) -> Value {
    match value {
        Value::String(_) => json!(5),
        _ => json!("text"),
    }
}

/// Every leaf and object field of `body` (inside arrays: of their first item), as a path.
fn fields(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.push(path.clone());
                fields(child, &path, out);
            }
        }
        Value::Array(items) => {
            if let Some(first) = items.first() {
                fields(first, &format!("{prefix}[0]"), out);
            }
        }
        _ => {}
    }
}

/// `body` with the field at `path` (`a.b`, `alerts[0].status`) made the wrong type.
fn with_wrong(body: &Value, path: &str) -> Value {
    let mut body = body.clone();
    let pointer: String = path
        .replace("[0]", ".0")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{s}"))
        .collect();
    let target = body.pointer_mut(&pointer).unwrap();
    *target = wrong(target);
    body
}

#[tokio::test]
async fn every_field_of_the_wrong_type_is_named_with_what_it_takes() {
    let dir = test_dir();
    let engine = engine(&dir).await;
    let alert = json!({
        "labels": { "alertname": "DiskFull", "service": "storage" },
        "annotations": { "summary": "disk full" },
        "startsAt": "2026-01-05T09:00:00Z", "endsAt": "2026-01-05T10:00:00Z",
    });
    let mut webhook_alert = alert.clone();
    webhook_alert["status"] = json!("firing");
    // (endpoint, a body it takes, where a bad field is reported: the item of a batch or the
    // body, and the prefix of the field's path there).
    let bodies = [
        ("/api/v2/alerts", json!([alert]), "[0]"),
        (
            "/api/v1/alertmanager",
            json!({ "version": "4", "alerts": [webhook_alert] }),
            "alerts[0]",
        ),
        (
            "/api/v1/cri",
            json!({ "customer": "contoso", "service": "storage", "region": "china-east",
                    "sr_severity": "A", "summary": "cannot write", "kind": "outage",
                    "contact": { "name": "Pat", "email": "pat@example.com",
                                 "phone": "+1 555 0100" } }),
            "",
        ),
        ("/api/v1/incidents/1/ack", json!({ "by": "alice" }), ""),
        (
            "/api/v1/incidents/1/resolve",
            json!({ "by": "alice", "note": "fixed" }),
            "",
        ),
        (
            "/api/v1/incidents/1/severity",
            json!({ "severity": 1, "by": "alice", "reason": "bigger" }),
            "",
        ),
        (
            "/api/v1/incidents/1/notes",
            json!({ "by": "alice", "text": "looking" }),
            "",
        ),
    ];
    let mut checked = 0;
    for (path, body, item) in &bodies {
        let mut paths = Vec::new();
        fields(body, "", &mut paths);
        for field in paths {
            let bad = with_wrong(body, &field);
            let (status, answer) = engine.post_json(path, &bad).await;
            let case = format!("{path} with {field} of the wrong type");
            assert_eq!(status, 400, "{case}: {answer}");
            // In a batch the item is named by its index and the field within it.
            let (error, named) = match field.strip_prefix(item) {
                Some(inner) if !item.is_empty() => (
                    answer["rejected"][0]["error"].as_str().unwrap_or_default(),
                    inner.trim_start_matches('.').to_string(),
                ),
                _ => (answer["error"].as_str().unwrap_or_default(), field.clone()),
            };
            assert!(!error.is_empty(), "{case}: {answer}");
            if !named.is_empty() {
                assert!(
                    error.contains(&format!("field {named:?}")),
                    "{case}: the field is not named: {error}"
                );
            }
            assert!(error.contains("expected "), "{case}: {error}");
            for word in OURS {
                assert!(!error.contains(word), "{case}: {word:?} in {error}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} fields");
    assert!(engine.log_text().matches("panicked").count() == 0);
}

/// (utime + stime) in seconds, and the start in seconds since the epoch, of `pid`.
fn proc_stat(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields from the third on: the command name before them may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks = |i: usize| fields[i].parse::<f64>().unwrap();
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    ((ticks(11) + ticks(12)) / tick, boot + ticks(19) / tick)
}

#[tokio::test]
async fn process_metrics_are_what_proc_says_to_the_tick() {
    let dir = test_dir();
    let mut engine = engine(&dir).await;
    let pid = engine.child.as_ref().unwrap().id();
    // Work for the engine: a few hundred alerts.
    let alerts: Vec<Value> = (0..300)
        .map(|i| json!({ "labels": { "alertname": format!("A{i}"), "service": "storage" } }))
        .collect();
    for _ in 0..3 {
        let (status, _) = engine.post_json("/api/v2/alerts", &json!(alerts)).await;
        assert_eq!(status, 200);
    }
    let (before, start) = proc_stat(pid);
    let cpu = engine.metric("process_cpu_seconds_total").await;
    let (after, _) = proc_stat(pid);
    assert!(
        before <= cpu && cpu <= after,
        "process_cpu_seconds_total {cpu}: /proc says {before} before the scrape, {after} after"
    );
    assert!(before > 0.0, "the engine used some CPU");
    assert_eq!(engine.metric("process_start_time_seconds").await, start);
    let rss = engine.metric("process_resident_memory_bytes").await;
    assert!(rss > 1e6, "{rss}");
    assert!(engine.metric("process_open_fds").await > 0.0);
    assert!(engine.metric("process_threads").await >= 1.0);
    assert!(engine.alive());
}

/// The dashboard's forms take only text fields: what can be wrong with them is the encoding
/// and a field given twice.
#[tokio::test]
async fn dashboard_forms_are_refused_in_the_apis_words() {
    let dir = test_dir();
    let engine = engine(&dir).await;
    for (path, content_type, body, status, says) in [
        (
            "/incidents/1/ack",
            "application/json",
            "{\"by\": \"alice\"}",
            415,
            "a form is sent as application/x-www-form-urlencoded",
        ),
        (
            "/incidents/1/ack",
            "application/x-www-form-urlencoded",
            "by=alice&by=bob",
            422,
            "invalid form: field \"by\" is given twice",
        ),
        (
            "/incidents/1/severity",
            "application/x-www-form-urlencoded",
            "severity=1&by=alice&severity=2",
            422,
            "invalid form: field \"severity\" is given twice",
        ),
        (
            "/login",
            "text/plain",
            "token=x",
            415,
            "a form is sent as application/x-www-form-urlencoded",
        ),
    ] {
        let answer = http()
            .post(format!("{}{path}", engine.url))
            .header("content-type", content_type)
            .header("origin", &engine.url)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{path} {body}");
        let error: Value = answer.json().await.unwrap();
        let error = error["error"].as_str().unwrap_or_default();
        assert_eq!(error, says, "{path} {body}");
        for word in OURS {
            assert!(!error.contains(word), "{path}: {word:?} in {error}");
        }
    }
}
