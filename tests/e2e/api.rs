//! The HTTP API: incidents (list, filters, show, actions, notes), queues, on-call, what it
//! answers to bad bodies, paths and methods, and its bearer token, against the real engine on
//! 127.0.0.1 with SQLite in a temporary folder. Ack links, /metrics and the admin plane,
//! reload and the CLI client have modules of their own.

use crate::support::api::*;
use crate::support::TestEngine;
use serde_json::{json, Value};

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
    assert_eq!(list["next"], Value::Null, "one page holds them all");
    let list = list["incidents"].clone();
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
    assert_eq!(
        list["next"],
        sev4.to_string(),
        "the next page starts below the last"
    );
    let (_, list) = engine
        .get(&format!("/api/v1/incidents?limit=2&cursor={sev4}"))
        .await;
    assert_eq!(ids(&list), vec![sev2]);
    assert_eq!(list["next"], Value::Null);

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
        "cursor=abc",
        "from=yesterday",
        "to=2026-13-01T00:00:00Z",
        "colour=red",
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
