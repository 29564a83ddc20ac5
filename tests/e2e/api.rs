//! The HTTP API, ack links, /metrics and the admin plane, reload (API and SIGHUP), and the
//! CLI client, against the real engine (in-process or the real binary) on 127.0.0.1 with
//! SQLite in a temporary folder, and a real Prometheus.

use std::time::Duration;

use crate::support::api::*;
use crate::support::{eventually, free_port, EngineProcess, TestEngine};
use serde_json::{json, Value};
use tocsin::paging::AckSigner;

/// POST raw bytes (not necessarily JSON) with an optional bearer token.
async fn post_bytes(engine: &TestEngine, path: &str, body: Vec<u8>) -> (u16, Value) {
    let response = engine
        .http
        .post(format!("{}{path}", engine.url))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn request(
    engine: &TestEngine,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = engine.http.request(method, format!("{}{path}", engine.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect()
}

/// A Sev 2, a Sev 4 (queued) and a Sev 3, opened in that order: ids 1, 2, 3.
async fn three_incidents(engine: &TestEngine) -> (i64, i64, i64) {
    let sev2 = send(engine, vec![storage_east()]).await[0];
    let sev4 = send(engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let sev3 = send(
        engine,
        vec![alert(&[
            ("alertname", "BatchSlow"),
            ("severity", "warning"),
            ("service", "batch"),
        ])],
    )
    .await[0];
    (sev2, sev4, sev3)
}

// ----- incidents ------------------------------------------------------------------------

#[tokio::test]
async fn list_is_newest_first_and_filters_by_status_severity_and_limit() {
    let (_dir, engine) = engine(false).await;
    let (sev2, sev4, sev3) = three_incidents(&engine).await;
    let (status, list) = engine.get("/api/v1/incidents").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), vec![sev3, sev4, sev2]);
    let severities: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["severity"].as_i64().unwrap())
        .collect();
    assert_eq!(severities, vec![3, 4, 2]);
    // The incident object of docs/api.md, every field present.
    for field in [
        "id",
        "title",
        "severity",
        "status",
        "pinned",
        "services",
        "regions",
        "customers",
        "customer_count",
        "labels",
        "opened_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "respond_by",
        "url",
    ] {
        assert!(list[0].get(field).is_some(), "no {field} in {}", list[0]);
    }

    let (_, list) = engine.get("/api/v1/incidents?severity=4").await;
    assert_eq!(ids(&list), vec![sev4]);
    let (_, list) = engine.get("/api/v1/incidents?limit=2").await;
    assert_eq!(ids(&list), vec![sev3, sev4]);

    engine
        .post(
            &format!("/api/v1/incidents/{sev2}/ack"),
            &json!({ "by": "alice" }),
        )
        .await;
    engine
        .post(
            &format!("/api/v1/incidents/{sev3}/resolve"),
            &json!({ "by": "bob" }),
        )
        .await;
    let (_, list) = engine.get("/api/v1/incidents?status=acknowledged").await;
    assert_eq!(ids(&list), vec![sev2]);
    let (_, list) = engine.get("/api/v1/incidents?status=triggered").await;
    assert_eq!(ids(&list), vec![sev4]);
    let (_, list) = engine.get("/api/v1/incidents?status=resolved").await;
    assert_eq!(ids(&list), vec![sev3]);
    let (_, list) = engine.get("/api/v1/incidents?status=open").await;
    assert_eq!(ids(&list), vec![sev4, sev2]);
    let (_, list) = engine.get("/api/v1/incidents?status=open&severity=2").await;
    assert_eq!(ids(&list), vec![sev2]);
    engine.stop().await;
}

#[tokio::test]
async fn bad_filter_values_are_400() {
    let (_dir, engine) = engine(false).await;
    for query in [
        "status=bogus",
        "severity=7",
        "severity=-1",
        "severity=high",
        "limit=0",
        "limit=abc",
        "limit=100000",
        "status=open&status=resolved",
    ] {
        let (status, body) = engine.get(&format!("/api/v1/incidents?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(!error_of(&body).is_empty());
    }
    let (status, body) = engine.get("/api/v1/oncall?at=yesterday").await;
    assert_eq!(status, 400, "{body}");
    assert!(error_of(&body).contains("RFC 3339"));
    engine.stop().await;
}

#[tokio::test]
async fn show_returns_the_incident_with_impacts_and_timeline() {
    let (_dir, engine) = engine(false).await;
    let id = open_sev1(&engine).await;
    let (status, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["id"], id);
    assert_eq!(detail["regions"], json!(["china-east", "china-north"]));
    assert_eq!(detail["customers"], json!(["contoso", "fabrikam"]));
    assert_eq!(detail["customer_count"], 2);
    let impacts = detail["impacts"].as_array().unwrap();
    assert_eq!(impacts.len(), 2, "{detail}");
    assert!(impacts.iter().all(|m| m["rule"] == "AlertCritical"));
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "opened", "{kinds:?}");
    assert!(kinds.contains(&"impact_added"), "{kinds:?}");
    assert!(kinds.contains(&"paged"), "{kinds:?}");

    for (path, status) in [
        ("/api/v1/incidents/999", 404),
        ("/api/v1/incidents/abc", 404),
        ("/api/v1/incidents/%FF", 400),
    ] {
        let (got, body) = engine.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        error_of(&body);
    }
    engine.stop().await;
}

#[tokio::test]
async fn actions_record_by_and_answer_409_when_the_state_forbids_them() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let path = |action: &str| format!("/api/v1/incidents/{id}/{action}");

    let (status, acked) = engine.post(&path("ack"), &json!({ "by": "alice" })).await;
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["status"], "acknowledged");
    assert_eq!(acked["acknowledged_by"], "alice");
    assert!(acked["acknowledged_at"].is_string());
    let (status, body) = engine.post(&path("ack"), &json!({ "by": "bob" })).await;
    assert_eq!(status, 409, "{body}");
    assert!(error_of(&body).contains("already acknowledged by alice"));

    let (status, raised) = engine
        .post(
            &path("severity"),
            &json!({ "severity": 1, "by": "bob", "reason": "two regions soon" }),
        )
        .await;
    assert_eq!(status, 200, "{raised}");
    assert_eq!(
        (raised["severity"].as_i64(), raised["pinned"].as_bool()),
        (Some(1), Some(true))
    );
    let (status, unpinned) = engine
        .post(&path("severity"), &json!({ "severity": null, "by": "bob" }))
        .await;
    assert_eq!(status, 200, "{unpinned}");
    assert_eq!(unpinned["pinned"], false);

    let (status, resolved) = engine
        .post(
            &path("resolve"),
            &json!({ "by": "carol", "note": "failover done" }),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string());

    for (action, body) in [
        ("resolve", json!({ "by": "carol" })),
        ("ack", json!({ "by": "alice" })),
        ("severity", json!({ "severity": 0, "by": "bob" })),
        ("notes", json!({ "by": "bob", "text": "late" })),
    ] {
        let (status, answer) = engine.post(&path(action), &body).await;
        assert_eq!(status, 409, "{action} on a resolved incident: {answer}");
        assert!(error_of(&answer).contains("resolved"));
    }

    // Who did what is in the timeline.
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    let actors: Vec<(String, String)> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().into(),
                t["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("acknowledged", "alice"),
        ("severity_changed", "bob"),
        ("severity_unpinned", "bob"),
        ("resolved", "carol"),
    ] {
        assert!(
            actors.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} not in {actors:?}"
        );
    }
    let resolved_entry = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "resolved")
        .unwrap();
    assert!(resolved_entry["message"]
        .as_str()
        .unwrap()
        .contains("failover done"));

    for (action, body) in [
        ("ack", json!({ "by": "x" })),
        ("resolve", json!({ "by": "x" })),
        ("severity", json!({ "severity": 1, "by": "x" })),
        ("notes", json!({ "by": "x", "text": "t" })),
    ] {
        let (status, answer) = engine
            .post(&format!("/api/v1/incidents/999/{action}"), &body)
            .await;
        assert_eq!(status, 404, "{action}: {answer}");
        assert!(error_of(&answer).contains("999"));
    }
    engine.stop().await;
}

#[tokio::test]
async fn well_formed_bodies_with_invalid_values_are_422() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let path = |action: &str| format!("/api/v1/incidents/{id}/{action}");
    let long = "x".repeat(257);
    let huge_note = "n".repeat(64 * 1024 + 1);
    for (action, body) in [
        ("ack", json!({ "by": "" })),
        ("ack", json!({ "by": "   " })),
        ("ack", json!({ "by": long })),
        ("resolve", json!({ "by": "" })),
        ("severity", json!({ "severity": 7, "by": "bob" })),
        ("severity", json!({ "severity": -1, "by": "bob" })),
        ("severity", json!({ "severity": 1, "by": "" })),
        ("notes", json!({ "by": "bob", "text": "" })),
        ("notes", json!({ "by": "bob", "text": huge_note })),
    ] {
        let (status, answer) = engine.post(&path(action), &body).await;
        assert_eq!(status, 422, "{action}: {answer}");
        error_of(&answer);
    }
    // Nothing happened.
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "triggered");
    assert_eq!(incident["severity"], 2);
    engine.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_what_the_endpoint_takes_are_400() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let ack = format!("/api/v1/incidents/{id}/ack");
    let severity = format!("/api/v1/incidents/{id}/severity");
    let notes = format!("/api/v1/incidents/{id}/notes");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (&ack, b"by=alice".to_vec(), "JSON"),
        (&ack, b"".to_vec(), "JSON"),
        (&ack, b"{\"by\": 5}".to_vec(), "JSON"),
        (&ack, b"{\"by\": \"alice\", \"extra\": 1}".to_vec(), "JSON"),
        (&ack, b"[\"alice\"]".to_vec(), "JSON"),
        (&ack, vec![b'{', 0xff, 0xfe, b'}'], "UTF-8"),
        (&severity, b"{\"by\": \"bob\"}".to_vec(), "severity"),
        (
            &severity,
            b"{\"severity\": \"1\", \"by\": \"bob\"}".to_vec(),
            "JSON",
        ),
        (
            &severity,
            b"{\"severity\": 1.5, \"by\": \"bob\"}".to_vec(),
            "JSON",
        ),
        (&notes, b"{\"by\": \"bob\"}".to_vec(), "text"),
    ];
    for (path, body, mentions) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let (status, answer) = post_bytes(&engine, path, body).await;
        assert_eq!(status, 400, "{path} {shown:?}: {answer}");
        let message = error_of(&answer);
        assert!(message.contains(mentions), "{path} {shown:?}: {message}");
    }
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "triggered");
    engine.stop().await;
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413_in_json() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let addr = engine.running.addr;
    let path = format!("/api/v1/incidents/{id}/notes");
    let over = tocsin::api::MAX_BODY + 1;

    // Announced by Content-Length: refused before it is read.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {over}\r\nConnection: close\r\n\r\n"
    );
    let (status, head_text, body) = raw_request(addr, &head, vec![vec![b' '; over]]).await;
    assert_eq!(status, 413, "{head_text}\n{body}");
    assert!(
        head_text
            .to_lowercase()
            .contains("content-type: application/json"),
        "{head_text}"
    );
    let answer: Value = serde_json::from_str(&body).expect("JSON body");
    assert!(error_of(&answer).contains("1 MiB"), "{answer}");

    // Chunked, no length announced: cut off while it streams in.
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let chunk = 64 * 1024;
    let mut chunks: Vec<Vec<u8>> = (0..over / chunk + 1)
        .map(|_| {
            let mut c = format!("{chunk:x}\r\n").into_bytes();
            c.extend(std::iter::repeat_n(b' ', chunk));
            c.extend(b"\r\n");
            c
        })
        .collect();
    chunks.push(b"0\r\n\r\n".to_vec());
    let (status, head_text, body) = raw_request(addr, &head, chunks).await;
    assert_eq!(status, 413, "{head_text}\n{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON body");
    error_of(&answer);

    // Just under the limit is read (and judged on its content: not a note).
    let mut at_limit = b"{\"by\":\"bob\",\"text\":\"".to_vec();
    at_limit.resize(tocsin::api::MAX_BODY - 2, b'a');
    at_limit.extend(b"\"}");
    assert_eq!(at_limit.len(), tocsin::api::MAX_BODY);
    let (status, answer) = post_bytes(&engine, &path, at_limit).await;
    assert_eq!(
        status, 422,
        "a 1 MiB note is over the 64 KiB note limit: {answer}"
    );

    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert!(!detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "note"));
    engine.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_json_errors() {
    let (_dir, engine) = engine(false).await;
    for (method, path, status) in [
        (reqwest::Method::GET, "/nope", 404),
        (reqwest::Method::POST, "/nope", 404),
        (reqwest::Method::GET, "/api/v1/nope", 404),
        (reqwest::Method::POST, "/api/v1/incidents/1/nope", 404),
        (reqwest::Method::GET, "/api/v2/incidents", 404),
        (reqwest::Method::DELETE, "/api/v1/incidents", 405),
        (reqwest::Method::GET, "/api/v1/incidents/1/ack", 405),
        (reqwest::Method::POST, "/api/v1/oncall", 405),
        (reqwest::Method::GET, "/-/reload", 405),
        (reqwest::Method::POST, "/metrics", 405),
    ] {
        let response = engine
            .http
            .request(method.clone(), format!("{}{path}", engine.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        let message = error_of(&body);
        if status == 405 {
            assert!(message.contains("allowed"), "{message}");
        }
    }
    engine.stop().await;
}

#[tokio::test]
async fn notes_join_the_timeline() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let (status, entry) = engine
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            &json!({ "by": "dana", "text": "failing over to china-north" }),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["kind"], "note");
    assert_eq!(entry["actor"], "dana");
    assert_eq!(entry["message"], "failing over to china-north");
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    let notes: Vec<&Value> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{detail}");
    assert_eq!(notes[0]["message"], "failing over to china-north");
    assert_eq!(detail["status"], "triggered", "a note does not acknowledge");
    engine.stop().await;
}

#[tokio::test]
async fn queues_hold_their_open_incidents_oldest_first() {
    let (_dir, engine) = engine(false).await;
    let first = send(&engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let second = send(&engine, vec![minor("search", "IndexStale")]).await[0];
    let paged = send(&engine, vec![storage_east()]).await[0];
    let (status, queue) = engine.get("/api/v1/queues/triage").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(ids(&queue), vec![first, second], "oldest first, Sev 4 only");
    assert!(queue.as_array().unwrap().iter().all(|i| i["severity"] == 4));
    assert!(!ids(&queue).contains(&paged));
    let metrics = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&metrics, "tocsin_triage_queue_length{queue=\"triage\"}"),
        Some(2.0)
    );

    engine
        .post(
            &format!("/api/v1/incidents/{first}/resolve"),
            &json!({ "by": "erin" }),
        )
        .await;
    let (_, queue) = engine.get("/api/v1/queues/triage").await;
    assert_eq!(ids(&queue), vec![second]);

    let (status, body) = engine.get("/api/v1/queues/nope").await;
    assert_eq!(status, 404, "{body}");
    assert!(error_of(&body).contains("nope"));
    engine.stop().await;
}

#[tokio::test]
async fn oncall_names_who_holds_each_schedule() {
    let (_dir, engine) = engine(false).await;
    let (status, first_week) = engine.get("/api/v1/oncall?at=2020-01-07T00:00:00Z").await;
    assert_eq!(status, 200, "{first_week}");
    assert_eq!(
        first_week,
        json!([{ "schedule": "primary", "responder": "alice",
                 "since": "2020-01-06T09:00:00Z", "until": "2020-01-13T09:00:00Z" }])
    );
    let (_, second_week) = engine
        .get("/api/v1/oncall?at=2020-01-14T10:00:00%2B08:00")
        .await;
    assert_eq!(second_week[0]["responder"], "bob", "{second_week}");
    let (_, before) = engine.get("/api/v1/oncall?at=2019-01-01T00:00:00Z").await;
    assert_eq!(
        before,
        json!([{ "schedule": "primary", "responder": null, "since": null, "until": null }])
    );

    let (_, now) = engine.get("/api/v1/oncall").await;
    let responder = now[0]["responder"].as_str().unwrap();
    assert!(["alice", "bob"].contains(&responder), "{now}");
    let since: chrono::DateTime<chrono::Utc> = now[0]["since"].as_str().unwrap().parse().unwrap();
    let until: chrono::DateTime<chrono::Utc> = now[0]["until"].as_str().unwrap().parse().unwrap();
    let t = chrono::Utc::now();
    assert!(since <= t && t < until, "{now}");
    assert_eq!(until - since, chrono::Duration::weeks(1));
    engine.stop().await;
}

#[tokio::test]
async fn api_auth_needs_a_valid_bearer_token_everywhere_under_api() {
    let (_dir, engine) = engine(true).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;
    let calls: Vec<(reqwest::Method, String, Option<Value>)> = vec![
        (get.clone(), "/api/v1/incidents".into(), None),
        (get.clone(), format!("/api/v1/incidents/{id}"), None),
        (get.clone(), "/api/v1/queues/triage".into(), None),
        (get.clone(), "/api/v1/oncall".into(), None),
        (
            post.clone(),
            format!("/api/v1/incidents/{id}/notes"),
            Some(json!({ "by": "x", "text": "t" })),
        ),
        (
            post.clone(),
            format!("/api/v1/incidents/{id}/severity"),
            Some(json!({ "severity": 1, "by": "x" })),
        ),
        (
            post.clone(),
            format!("/api/v1/incidents/{id}/ack"),
            Some(json!({ "by": "x" })),
        ),
    ];
    for (method, path, body) in &calls {
        for token in [
            None,
            Some("wrong"),
            Some("s3cret-token-but-longer"),
            Some(""),
        ] {
            let (status, answer) =
                request(&engine, method.clone(), path, token, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert!(error_of(&answer).contains("token"));
        }
    }
    // Nothing happened without a token.
    let (status, incident) = request(
        &engine,
        get.clone(),
        &format!("/api/v1/incidents/{id}"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{incident}");
    assert_eq!(incident["status"], "triggered");
    assert_eq!(incident["severity"], 2);
    // With it, everything works (the ack last: it changes the state).
    for (method, path, body) in &calls {
        let (status, answer) =
            request(&engine, method.clone(), path, Some(TOKEN), body.clone()).await;
        assert!(
            status == 200 || status == 201,
            "{method} {path}: {status} {answer}"
        );
    }
    // The admin plane stays open to Prometheus and probes.
    for path in ["/metrics", "/-/healthy", "/-/ready"] {
        let (status, _) = engine.get(path).await;
        assert_eq!(status, 200, "{path}");
    }
    // The token never appears in what the engine says.
    let metrics = metrics_text(&engine.http, &engine.url).await;
    assert!(!metrics.contains(TOKEN));
    engine.stop().await;
}

// ----- ack links --------------------------------------------------------------------------

fn signer() -> AckSigner {
    // The key file's content without its trailing newline, as the engine reads it.
    AckSigner::new(ACK_KEY.as_bytes())
}

async fn get_html(engine: &TestEngine, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = plain_http()
        .get(format!("{}{path}", engine.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post_html(engine: &TestEngine, path: &str) -> (u16, String) {
    let response = plain_http()
        .post(format!("{}{path}", engine.url))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Timeline entries other than page deliveries (those arrive on their own schedule).
async fn timeline_len(engine: &TestEngine, id: i64) -> usize {
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["kind"].as_str().unwrap_or("").starts_with("deliver"))
        .count()
}

#[tokio::test]
async fn ack_link_get_shows_a_confirm_page_and_never_acknowledges() {
    let (_dir, engine) = engine(false).await;
    let id = open_sev1(&engine).await;
    // The link exactly as the page carries it.
    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    let page = &pages.first().expect("the incident was paged").page;
    let recipient = page.recipient.id.clone();
    let ack_url = page
        .payload
        .ack_url
        .clone()
        .expect("pages carry an ack link");
    let token = ack_url.split("/ack/").nth(1).unwrap().to_string();
    let before = timeline_len(&engine, id).await;

    let (status, headers, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        headers["referrer-policy"], "same-origin",
        "the token must not leak to other sites"
    );
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("form-action 'self'"));
    assert!(
        html.contains("StorageDown") || html.contains(&format!("#{id}")),
        "{html}"
    );
    assert!(html.contains("Sev 1"), "{html}");
    assert!(html.contains(&recipient), "the recipient is named: {html}");
    // The confirm button posts back to the same link (minijinja writes `/` as `&#x2f;`).
    assert!(
        html.contains("<form method=\"post\"") && html.contains(&token),
        "{html}"
    );
    // Mail scanners fetch (and HEAD) links more than once.
    for _ in 0..3 {
        let (status, _, _) = get_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 200);
        let head = plain_http()
            .head(format!("{}/ack/{token}", engine.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
    }
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident["status"], "triggered",
        "a GET must never acknowledge"
    );
    assert_eq!(incident["acknowledged_by"], Value::Null);
    assert_eq!(timeline_len(&engine, id).await, before);

    // The form's POST does, as the link's recipient.
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Acknowledged"), "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], recipient.as_str());
    engine.stop().await;
}

#[tokio::test]
async fn ack_link_post_acknowledges_as_its_recipient_once() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let token = signer().sign(id, "bob", chrono::Utc::now() + chrono::Duration::hours(1));
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], "bob");
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert!(detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "acknowledged" && t["actor"] == "bob"));

    // Used again, or opened after: the page says it is done already (409).
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("already acknowledged by bob"), "{html}");
    let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");

    // And for a resolved incident too.
    engine
        .post(
            &format!("/api/v1/incidents/{id}/resolve"),
            &json!({ "by": "carol" }),
        )
        .await;
    let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("already resolved by carol"), "{html}");
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["acknowledged_by"], "bob");
    assert_eq!(incident["status"], "resolved");
    engine.stop().await;
}

#[tokio::test]
async fn forged_expired_and_moved_ack_links_are_403_and_change_nothing() {
    let (_dir, engine) = engine(false).await;
    let first = send(&engine, vec![storage_east()]).await[0];
    let second = send(&engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    let good = signer().sign(first, "alice", soon);
    let other = signer().sign(second, "alice", soon);
    let mallory = signer().sign(first, "mallory", soon);
    let (good_body, good_sig) = good.split_once('.').unwrap();
    let (other_body, _) = other.split_once('.').unwrap();
    let (mallory_body, _) = mallory.split_once('.').unwrap();
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let forged: Vec<(&str, String)> = vec![
        ("signature changed", flipped),
        (
            "other key",
            AckSigner::new(b"not the key").sign(first, "alice", soon),
        ),
        (
            "moved to another incident",
            format!("{other_body}.{good_sig}"),
        ),
        (
            "moved to another recipient",
            format!("{mallory_body}.{good_sig}"),
        ),
        (
            "expired",
            signer().sign(
                first,
                "alice",
                chrono::Utc::now() - chrono::Duration::minutes(1),
            ),
        ),
        ("no signature", good_body.to_string()),
        ("garbage", "garbage".to_string()),
        ("empty signature", format!("{good_body}.")),
        ("not base64", "!!!.???".to_string()),
    ];
    let before = (
        timeline_len(&engine, first).await,
        timeline_len(&engine, second).await,
    );
    for (what, token) in &forged {
        let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 403, "GET {what}: {html}");
        let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 403, "POST {what}: {html}");
        assert!(
            html.contains("not valid") || html.contains("expired"),
            "{what}: {html}"
        );
    }
    for id in [first, second] {
        let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(incident["status"], "triggered", "incident {id}");
        assert_eq!(incident["acknowledged_by"], Value::Null);
    }
    assert_eq!(
        (
            timeline_len(&engine, first).await,
            timeline_len(&engine, second).await
        ),
        before
    );
    // The genuine link still works.
    let (status, _) = post_html(&engine, &format!("/ack/{good}")).await;
    assert_eq!(status, 200);
    engine.stop().await;
}

// ----- metrics and the admin plane ------------------------------------------------------

#[tokio::test]
async fn metrics_expose_every_design_metric() {
    let (_dir, engine) = engine(false).await;
    open_sev1(&engine).await;
    let response = engine
        .http
        .get(format!("{}/metrics", engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = response.text().await.unwrap();
    // probe_success and probe_duration_seconds are per-probe gauges the probe runner sets
    // after a probe's first run (a 0 before would read as a failing probe); this engine has
    // no probes configured.
    for name in [
        "incidents_open",
        "incidents_total",
        "incident_severity_changes_total",
        "pages_total",
        "page_delivery_seconds",
        "escalations_total",
        "time_to_acknowledge_seconds",
        "time_to_resolve_seconds",
        "signals_total",
        "rule_evaluation_failures_total",
        "sr_response_breaches_total",
        "triage_queue_length",
        "probe_schedule_lag_seconds",
        "config_last_reload_successful",
        "config_last_reload_success_timestamp_seconds",
        "leader",
    ] {
        assert!(
            text.contains(&format!("# TYPE tocsin_{name} ")),
            "tocsin_{name} missing"
        );
    }
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} missing");
    }
    for (series, value) in [
        ("tocsin_incidents_open{severity=\"1\"}", 1.0),
        ("tocsin_incidents_open{severity=\"0\"}", 0.0),
        ("tocsin_incidents_open{severity=\"2\"}", 0.0),
        ("tocsin_incidents_total{severity=\"2\"}", 1.0),
        ("tocsin_signals_total{source=\"alert\"}", 2.0),
        ("tocsin_leader", 1.0),
        ("tocsin_config_last_reload_successful", 1.0),
        (
            "tocsin_pages_total{channel=\"email\",outcome=\"failed\"}",
            0.0,
        ),
        // Paged at Sev 2, then re-routed from level 0 when it rose to Sev 1.
        ("tocsin_escalations_total{policy=\"default\"}", 2.0),
        ("tocsin_triage_queue_length{queue=\"triage\"}", 0.0),
    ] {
        assert_eq!(metric(&text, series), Some(value), "{series}");
    }
    assert!(metric(&text, "tocsin_config_last_reload_success_timestamp_seconds").unwrap() > 1.7e9);
    engine.stop().await;
}

#[tokio::test]
async fn open_incident_gauges_are_right_after_a_restart() {
    let dir = test_dir(false);
    let engine = TestEngine::start(&dir).await;
    open_sev1(&engine).await;
    send(&engine, vec![minor("sqldb", "ReplicaLag")]).await;
    engine.stop().await;

    let engine = TestEngine::start(&dir).await;
    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"1\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"4\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&text, "tocsin_incidents_open{severity=\"2\"}"),
        Some(0.0)
    );
    assert_eq!(
        metric(&text, "tocsin_triage_queue_length{queue=\"triage\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&text, "tocsin_leader"), Some(1.0));
    engine.stop().await;
}

#[tokio::test]
async fn healthy_and_ready_answer_once_started() {
    let (_dir, engine) = engine(false).await;
    let (status, body) = engine.get("/-/healthy").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = engine.get("/-/ready").await;
    assert_eq!(status, 200, "{body}");
    engine.stop().await;
}

#[tokio::test]
async fn ready_is_503_while_the_store_is_not_open() {
    // A "PostgreSQL" that accepts connections and never answers: the store cannot open.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let db_port = silent.local_addr().unwrap().port();
    let dir = test_dir(false);
    dir.write(
        "config.yaml",
        &format!(
            "{}\nstore: {{ url: \"postgres://tocsin@127.0.0.1:{db_port}/tocsin\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
            config_yaml(false, ROUTES)
        ),
    );
    let engine = EngineProcess::spawn(&dir, free_port());
    let http = plain_http();
    let url = engine.url.clone();
    let ready = eventually(Duration::from_secs(30), || async {
        let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
        Some(r.status().as_u16())
    })
    .await;
    assert_eq!(
        ready,
        Some(503),
        "log:\n{}",
        std::fs::read_to_string(&engine.log).unwrap_or_default()
    );
    let healthy = http.get(format!("{url}/-/healthy")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let api = http
        .get(format!("{url}/api/v1/incidents"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 503);
    let body: Value = api.json().await.unwrap();
    assert!(error_of(&body).contains("starting"));
    let wrong = http.post(format!("{url}/-/healthy")).send().await.unwrap();
    assert_eq!(wrong.status(), 405);
    error_of(&wrong.json().await.unwrap());
    drop(silent);
}

#[tokio::test]
async fn prometheus_scrapes_incidents_open_during_a_sev1() {
    let (dir, engine) = engine(false).await;
    let target = engine.running.addr.to_string();
    let prometheus = crate::support::peers::Prometheus::scraping(dir.path(), &target).await;
    let query = "tocsin_incidents_open{severity=\"1\"}";
    let value_is = |want: f64| {
        let prometheus = &prometheus;
        async move {
            eventually(Duration::from_secs(60), || async {
                let result = prometheus.query(query).await;
                (result.len() == 1 && result[0].1 == want).then_some(result)
            })
            .await
        }
    };
    let before = value_is(0.0).await;
    assert!(
        before.is_some(),
        "Prometheus never scraped tocsin:\n{}",
        prometheus.process.logs()
    );

    let id = open_sev1(&engine).await;
    let during = value_is(1.0)
        .await
        .expect("tocsin_incidents_open{severity=\"1\"} = 1 through Prometheus");
    assert_eq!(during[0].0["job"], "tocsin");
    assert_eq!(during[0].0["instance"], target.as_str());

    engine
        .post(
            &format!("/api/v1/incidents/{id}/resolve"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert!(value_is(0.0).await.is_some(), "back to 0 once resolved");
    drop(prometheus);
    engine.stop().await;
}

// ----- reload -----------------------------------------------------------------------------

/// A route that sends Sev 4 `reports` incidents to their own queue, and a rule that makes a
/// DiskFull alert at least Sev 2.
fn reloaded_routes() -> String {
    format!(
        "\nroutes:\n  - {{ match: [ 'service=\"reports\"', 'severity=\"4\"' ], queue: reports-triage }}\n{}",
        ROUTES.trim_start().trim_start_matches("routes:\n")
    )
}

const DISK_RULE: &str = r#"
groups:
  - name: disks
    rules:
      - name: DiskFull
        match: [ 'source="alert"', 'alertname="DiskFull"' ]
        impact: { kind: other, business_impact: low, severity: 2 }
        summary: "disk full on {{ labels.host }}"
"#;

fn disk_full(service: &str) -> tocsin::signal::Signal {
    alert(&[
        ("alertname", "DiskFull"),
        ("host", "db7"),
        ("service", service),
    ])
}

async fn severity_of(engine: &TestEngine, id: i64) -> i64 {
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    incident["severity"].as_i64().unwrap()
}

#[tokio::test]
async fn a_good_reload_changes_behaviour() {
    let (dir, engine) = engine(false).await;
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 404);
    let before = send(&engine, vec![disk_full("disk-a")]).await[0];
    assert_eq!(severity_of(&engine, before).await, 4);

    dir.write(
        "config.yaml",
        &format!(
            "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
            config_yaml(false, &reloaded_routes()),
            dir.store_url()
        ),
    );
    dir.write("rules/disks.yaml", DISK_RULE);
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");

    let (status, queue) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(ids(&queue), Vec::<i64>::new());
    let report = send(&engine, vec![minor("reports", "ReportLate")]).await[0];
    let (_, queue) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(ids(&queue), vec![report], "the new route took it");
    let (_, triage) = engine.get("/api/v1/queues/triage").await;
    assert!(!ids(&triage).contains(&report));
    let after = send(&engine, vec![disk_full("disk-b")]).await[0];
    assert_ne!(after, before);
    assert_eq!(
        severity_of(&engine, after).await,
        2,
        "the new rule took effect"
    );

    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "tocsin_rule_evaluation_failures_total{rule=\"DiskFull\"}"
        ),
        Some(0.0),
        "series of the new rule are there"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_bad_reload_is_refused_whole_and_the_old_config_keeps_running() {
    let (dir, engine) = engine(false).await;
    let good = format!(
        "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
        config_yaml(false, &reloaded_routes()),
        dir.store_url()
    );
    // A good new route and a good new rule, each next to one mistake: none of it may take
    // effect. First an unknown key in config.yaml, then a rule file with a typo.
    dir.write("rules/disks.yaml", DISK_RULE);
    dir.write("config.yaml", &format!("{good}routez: []\n"));
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 500, "{body}");
    let why = error_of(&body);
    assert!(why.contains("old config still running"), "{why}");
    assert!(
        why.contains("config.yaml:") && why.contains("routez"),
        "file:line:column and key: {why}"
    );

    dir.write("config.yaml", &good);
    dir.write(
        "rules/broken.yaml",
        "groups:\n  - name: x\n    rules:\n      - name: Y\n        mach: []\n",
    );
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 500, "{body}");
    let why = error_of(&body);
    assert!(
        why.contains("broken.yaml:5:") && why.contains("mach"),
        "file:line:column: {why}"
    );

    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(0.0)
    );
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 404, "the new route is not in force");
    let id = send(&engine, vec![disk_full("disk-a")]).await[0];
    assert_eq!(
        severity_of(&engine, id).await,
        4,
        "the new rule is not in force"
    );
    let report = send(&engine, vec![minor("reports", "ReportLate")]).await[0];
    let (_, triage) = engine.get("/api/v1/queues/triage").await;
    assert!(ids(&triage).contains(&report), "the old routes still work");

    // Fixed: the next reload succeeds and the gauge says so.
    std::fs::remove_file(dir.path().join("rules/broken.yaml")).unwrap();
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(1.0)
    );
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 200);
    engine.stop().await;
}

fn hangup(process: &EngineProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &process.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn sighup_reloads_the_real_binary_and_refuses_a_bad_config() {
    let dir = test_dir(false);
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = plain_http();
    let url = engine.url.clone();
    let reload_ok = |want: f64| {
        let (http, url) = (&http, &url);
        async move {
            eventually(Duration::from_secs(20), || async {
                let text = metrics_text(http, url).await;
                (metric(&text, "tocsin_config_last_reload_successful") == Some(want)).then_some(())
            })
            .await
        }
    };
    let status_of = |path: &'static str| {
        let (http, url) = (&http, &url);
        async move {
            http.get(format!("{url}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let good = format!(
        "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
        config_yaml(false, &reloaded_routes()),
        dir.store_url()
    );
    dir.write("config.yaml", &format!("{good}bogus_section: 1\n"));
    hangup(&engine);
    assert!(
        reload_ok(0.0).await.is_some(),
        "log:\n{}",
        std::fs::read_to_string(&engine.log).unwrap()
    );
    assert!(
        engine.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the engine"
    );
    assert_eq!(status_of("/-/healthy").await, 200);
    assert_eq!(status_of("/api/v1/queues/triage").await, 200);
    assert_eq!(
        status_of("/api/v1/queues/reports-triage").await,
        404,
        "old config runs on"
    );
    let log = std::fs::read_to_string(&engine.log).unwrap();
    assert!(log.contains("bogus_section"), "the log says why:\n{log}");

    dir.write("config.yaml", &good);
    hangup(&engine);
    assert!(reload_ok(1.0).await.is_some());
    assert_eq!(
        status_of("/api/v1/queues/reports-triage").await,
        200,
        "new config in force"
    );
    engine.kill();
}

// ----- the CLI client ---------------------------------------------------------------------

/// Run the real binary; (exit code, stdout, stderr).
async fn cli(args: &[&str]) -> (i32, String, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args(args)
            .env_remove("TOCSIN_URL")
            .env_remove("TOCSIN_TOKEN")
            .env("USER", "cli-user")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the CLI finishes within 60 s")
    .expect("the CLI runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test]
async fn cli_lists_shows_and_acts_on_incidents() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let queued = send(&engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let url = engine.url.as_str();
    let sid = id.to_string();

    let (code, out, err) = cli(&["incidents", "list", "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["ID", "SEV", "STATUS", "SERVICES", "TITLE"]);
    let newest: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &newest[..5],
        [
            queued.to_string().as_str(),
            "Sev",
            "4",
            "triggered",
            "sqldb"
        ]
    );
    let oldest: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        &oldest[..5],
        [sid.as_str(), "Sev", "2", "triggered", "storage"]
    );

    let (code, out, _) = cli(&[
        "incidents",
        "list",
        "--url",
        url,
        "--severity",
        "2",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).expect("--output json is JSON");
    assert_eq!(ids(&list), vec![id]);

    let (code, out, err) = cli(&["incidents", "show", &sid, "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Severity     Sev 2"), "{out}");
    assert!(out.contains("Customers    contoso,fabrikam (2)"), "{out}");
    assert!(
        out.contains("Impacts (1)") && out.contains("outage"),
        "{out}"
    );
    assert!(
        out.contains("Timeline (") && out.contains("opened"),
        "{out}"
    );
    let (code, out, _) = cli(&["incidents", "show", &sid, "--url", url, "-o", "json"]).await;
    assert_eq!(code, 0);
    let detail: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["impacts"].as_array().unwrap().len(), 1);

    let (code, out, err) = cli(&["incidents", "ack", &sid, "--url", url, "--by", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("acknowledged") && out.contains("alice"),
        "{out}"
    );
    let (code, _, err) = cli(&["incidents", "ack", &sid, "--url", url, "--by", "alice"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("409") && err.contains("already acknowledged"),
        "{err}"
    );

    let (code, out, err) = cli(&[
        "incidents",
        "severity",
        &sid,
        "3",
        "--url",
        url,
        "--by",
        "bob",
        "--reason",
        "contained",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Sev 3"), "{out}");
    let (code, out, _) = cli(&[
        "incidents",
        "severity",
        &sid,
        "--unpin",
        "--url",
        url,
        "--by",
        "bob",
        "-o",
        "json",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["pinned"],
        false
    );
    let (code, _, err) = cli(&[
        "incidents",
        "severity",
        &sid,
        "7",
        "--url",
        url,
        "--by",
        "bob",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("422"), "{err}");

    let (code, out, err) = cli(&[
        "incidents",
        "resolve",
        &sid,
        "--url",
        url,
        "--by",
        "carol",
        "--note",
        "fixed",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resolved"), "{out}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "resolved");
    // Each action is recorded with the `--by` it was given. (Unpinning raised it back to
    // Sev 2, and a rise clears an acknowledgement, so the timeline is where alice's ack is.)
    let acts: Vec<(String, String)> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().into(),
                t["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    for expected in [
        ("acknowledged", "alice"),
        ("severity_changed", "bob"),
        ("severity_unpinned", "bob"),
        ("resolved", "carol"),
    ] {
        assert!(
            acts.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {acts:?}"
        );
    }
    let (code, _, err) = cli(&["incidents", "resolve", &sid, "--url", url, "--by", "carol"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("409"), "{err}");

    // `by` defaults to $USER.
    let (code, _, err) = cli(&["incidents", "ack", &queued.to_string(), "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{queued}")).await;
    assert_eq!(incident["acknowledged_by"], "cli-user");
    engine.stop().await;
}

#[tokio::test]
async fn cli_fails_clearly_on_401_404_and_no_engine() {
    let (_dir, engine) = engine(true).await;
    let id = send(&engine, vec![storage_east()]).await[0].to_string();
    let url = engine.url.as_str();

    let (code, out, err) = cli(&["incidents", "list", "--url", url]).await;
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("401") && err.contains("--token"), "{err}");
    let (code, _, err) = cli(&[
        "incidents",
        "ack",
        &id,
        "--url",
        url,
        "--token",
        "wrong",
        "--by",
        "x",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("401") && err.contains("refused"), "{err}");
    assert!(!err.contains("wrong"), "the token is not echoed: {err}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident.get("status"),
        None,
        "401 without token: {incident}"
    );

    let (code, out, err) = cli(&["incidents", "list", "--url", url, "--token", TOKEN]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("storage"), "{out}");

    let (code, _, err) = cli(&["incidents", "show", "999", "--url", url, "--token", TOKEN]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404") && err.contains("no incident 999"),
        "{err}"
    );

    let closed = format!("http://127.0.0.1:{}", free_port());
    let (code, _, err) = cli(&["incidents", "list", "--url", &closed]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach") && err.to_lowercase().contains("refused"),
        "{err}"
    );
    engine.stop().await;
}
