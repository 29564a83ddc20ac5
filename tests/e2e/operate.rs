//! Operating tocsin live, through the real binary (SQLite, or PostgreSQL with
//! `TOCSIN_TEST_STORE=postgres`): roles per token and the `by` they give, reloads that need
//! the admin role and re-read the tokens, the roles the routes of silences, overrides, cases
//! and backups need, and the audit log and `tocsin audit verify` finding a tampered row.
//! Incidents declared by hand and the incident list are in `operate_incidents.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::operate::{
    error_of, start, storage_outage, ADMIN, BARE, INGEST, RESPONDER, VIEWER,
};
use crate::support::{eventually, run_tocsin, send_signal};

#[path = "operate_incidents.rs"]
mod incidents;

#[tokio::test]
async fn each_role_may_do_its_own_and_gets_403_naming_the_role_for_the_rest() {
    let live = start().await;
    let id = live.declare(storage_outage()).await;
    let ack = format!("/api/v1/incidents/{id}/ack");
    let severity = format!("/api/v1/incidents/{id}/severity");
    let alert = json!([{ "labels": { "alertname": "Probe", "service": "sqldb" } }]);
    // (token, method, path, body, status, the role a 403 names)
    let cases: Vec<(&str, &str, String, Value, u16, &str)> = vec![
        (
            VIEWER,
            "GET",
            "/api/v1/incidents".into(),
            Value::Null,
            200,
            "",
        ),
        (VIEWER, "GET", "/api/v1/audit".into(), Value::Null, 200, ""),
        (VIEWER, "GET", "/api/v1/oncall".into(), Value::Null, 200, ""),
        (VIEWER, "POST", ack.clone(), json!({}), 403, "responder"),
        // A TSG action reports back with a responder's token.
        (
            INGEST,
            "POST",
            format!("/api/v1/incidents/{id}/tsg"),
            json!({ "status": "succeeded" }),
            403,
            "responder",
        ),
        (
            RESPONDER,
            "POST",
            format!("/api/v1/incidents/{id}/tsg"),
            json!({ "status": "succeeded" }),
            409,
            "",
        ),
        (
            VIEWER,
            "POST",
            "/api/v2/alerts".into(),
            alert.clone(),
            403,
            "ingest",
        ),
        (
            VIEWER,
            "POST",
            "/-/reload".into(),
            Value::Null,
            403,
            "admin",
        ),
        (
            INGEST,
            "POST",
            "/api/v2/alerts".into(),
            alert.clone(),
            200,
            "",
        ),
        (
            INGEST,
            "GET",
            "/api/v1/incidents".into(),
            Value::Null,
            403,
            "viewer",
        ),
        (
            INGEST,
            "POST",
            "/api/v1/incidents".into(),
            storage_outage(),
            403,
            "responder",
        ),
        (
            RESPONDER,
            "POST",
            "/api/v2/alerts".into(),
            alert.clone(),
            200,
            "",
        ),
        (
            RESPONDER,
            "POST",
            severity.clone(),
            json!({ "severity": 1 }),
            403,
            "admin",
        ),
        (
            RESPONDER,
            "POST",
            "/-/reload".into(),
            Value::Null,
            403,
            "admin",
        ),
        (
            RESPONDER,
            "POST",
            ack.clone(),
            json!({ "by": "mallory" }),
            200,
            "",
        ),
        (
            ADMIN,
            "POST",
            severity.clone(),
            json!({ "severity": 1 }),
            200,
            "",
        ),
        (ADMIN, "POST", "/-/reload".into(), Value::Null, 200, ""),
        (BARE, "POST", "/-/reload".into(), Value::Null, 200, ""),
    ];
    for (token, method, path, body, expected, role) in cases {
        let (status, answer) = live.call(Some(token), method, &path, body).await;
        assert_eq!(status, expected, "{token} {method} {path}: {answer}");
        if expected == 403 {
            let message = error_of(&answer);
            assert!(
                message.contains(&format!("needs the {role} role")),
                "{token} {method} {path}: {message}"
            );
        }
    }
    for path in ["/api/v1/incidents", "/api/v1/audit"] {
        assert_eq!(live.call(None, "GET", path, Value::Null).await.0, 401);
    }
    assert_eq!(
        live.call(None, "POST", "/-/reload", Value::Null).await.0,
        401
    );

    // `by` is the named token's, whatever the body says; a bare token's caller names itself.
    let (_, incident) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["acknowledged_by"], "rita", "{incident}");
    let (_, detail) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    let opened = &detail["timeline"][0];
    assert_eq!(
        opened["actor"], "rita",
        "the declaration's `by` is ignored: {opened}"
    );
    assert_eq!(opened["data"]["declared"], true);
    let (status, _) = live
        .post(
            ADMIN,
            &severity,
            json!({ "severity": null, "by": "someone" }),
        )
        .await;
    assert_eq!(status, 200);
    let (status, entry) = live
        .post(
            BARE,
            &format!("/api/v1/incidents/{id}/notes"),
            json!({ "by": "nadia", "text": "from a bare token" }),
        )
        .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["actor"], "nadia");
    let (status, answer) = live
        .post(
            BARE,
            &format!("/api/v1/incidents/{id}/notes"),
            json!({ "text": "who?" }),
        )
        .await;
    assert_eq!(status, 422, "a bare token must say who acts: {answer}");
    let (_, detail) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    let actors: Vec<(&str, &str)> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["kind"].as_str().unwrap(), t["actor"].as_str().unwrap()))
        .collect();
    for expected in [
        ("acknowledged", "rita"),
        ("severity_changed", "ada"),
        ("severity_unpinned", "ada"),
        ("note", "nadia"),
    ] {
        assert!(actors.contains(&expected), "{expected:?} not in {actors:?}");
    }
}

#[tokio::test]
async fn a_reload_needs_admin_and_reads_the_tokens_again() {
    let live = start().await;
    assert_eq!(live.get(VIEWER, "/api/v1/incidents").await.0, 200);
    assert_eq!(live.get("n-token-6", "/api/v1/incidents").await.0, 401);
    // vic goes, neo comes, rita becomes a viewer.
    live.dir.write(
        "secrets/tokens",
        &format!("neo viewer n-token-6\nrita viewer {RESPONDER}\nada admin {ADMIN}\n"),
    );
    // Nothing changes until an admin reloads.
    assert_eq!(live.get(VIEWER, "/api/v1/incidents").await.0, 200);
    let (status, answer) = live.post(RESPONDER, "/-/reload", Value::Null).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(live.get(VIEWER, "/api/v1/incidents").await.0, 200);
    let (status, answer) = live.post(ADMIN, "/-/reload", Value::Null).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(live.get("n-token-6", "/api/v1/incidents").await.0, 200);
    assert_eq!(live.get(VIEWER, "/api/v1/incidents").await.0, 401);
    let (status, answer) = live
        .post(RESPONDER, "/api/v1/incidents", storage_outage())
        .await;
    assert_eq!(status, 403, "rita is a viewer now: {answer}");
    assert!(error_of(&answer).contains("needs the responder role"));
    // The reload done is in the audit log, with who asked; the refused one changed nothing.
    let (_, page) = live.get(ADMIN, "/api/v1/audit").await;
    let reloads: Vec<&Value> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "reload")
        .collect();
    assert_eq!(reloads.len(), 1, "only the admin's reload ran: {page}");
    assert_eq!(reloads[0]["actor"], "ada");
    assert_eq!(reloads[0]["detail"], "reloaded");
    // A reload by SIGHUP is audited too, by the signal.
    send_signal(&live.engine.child, "HUP");
    let by_signal = eventually(Duration::from_secs(10), || async {
        let (_, page) = live.get(ADMIN, "/api/v1/audit?limit=1").await;
        (page["entries"][0]["actor"] == "SIGHUP").then(|| page["entries"][0].clone())
    })
    .await
    .expect("the SIGHUP reload is in the audit log");
    assert_eq!(
        (&by_signal["action"], &by_signal["target"]),
        (&json!("reload"), &json!("config"))
    );
}

#[tokio::test]
async fn every_change_is_audited_and_verify_finds_a_tampered_entry() {
    let mut live = start().await;
    let id = live.declare(storage_outage()).await;
    let path = |action: &str| format!("/api/v1/incidents/{id}/{action}");
    let done = [
        live.post(RESPONDER, &path("notes"), json!({ "text": "looking" }))
            .await
            .0,
        live.post(RESPONDER, &path("ack"), json!({})).await.0,
        live.post(
            ADMIN,
            &path("severity"),
            json!({ "severity": 0, "reason": "all writes" }),
        )
        .await
        .0,
        live.post(RESPONDER, &path("assign"), json!({ "responder": "bob" }))
            .await
            .0,
        live.post(
            RESPONDER,
            &path("responders"),
            json!({ "responder": "carol" }),
        )
        .await
        .0,
        live.post(RESPONDER, &path("escalate"), json!({})).await.0,
        live.post(ADMIN, "/-/reload", Value::Null).await.0,
        live.post(RESPONDER, &path("resolve"), json!({ "note": "fixed" }))
            .await
            .0,
    ];
    assert_eq!(done, [201, 200, 200, 200, 200, 200, 200, 200]);
    // A refused action is no change: not audited.
    assert_eq!(
        live.post(VIEWER, &path("notes"), json!({ "text": "x" }))
            .await
            .0,
        403
    );

    let (status, page) = live.get(VIEWER, "/api/v1/audit").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["next"], Value::Null);
    let entries = page["entries"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
                e["target"].as_str().unwrap(),
            )
        })
        .collect();
    let target = format!("incident {id}");
    let t = target.as_str();
    assert_eq!(
        seen,
        vec![
            ("resolve", "rita", t),
            ("reload", "ada", "config"),
            ("escalate", "rita", t),
            ("add_responder", "rita", t),
            ("assign", "rita", t),
            ("severity", "ada", t),
            ("ack", "rita", t),
            ("note", "rita", t),
            ("declare", "rita", t),
        ],
        "newest first"
    );
    assert_eq!(entries[5]["detail"], "pinned to Sev 0: all writes");
    assert_eq!(entries[4]["detail"], "to bob");
    for entry in entries {
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
        assert_eq!(entry["mac"].as_str().unwrap().len(), 64, "{entry}");
        assert!(entry["at"].as_str().unwrap().ends_with('Z'), "{entry}");
    }
    // Cursor paging, three at a time.
    let mut ids = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let (_, page) = live
            .get(VIEWER, &format!("/api/v1/audit?limit=3&cursor={cursor}"))
            .await;
        ids.extend(
            page["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match page["next"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(ids, (1..=9).rev().collect::<Vec<i64>>());
    let (status, answer) = live.get(VIEWER, "/api/v1/audit?cursor=soon").await;
    assert_eq!(status, 400, "{answer}");
    assert!(error_of(&answer).contains("cursor"));

    // The chain holds; one entry edited in the store breaks it there.
    let config = live.dir.config_path();
    let config = config.to_str().unwrap();
    let folder = live.dir.path().to_path_buf();
    let (code, out, err) = run_tocsin(&folder, &["audit", "verify", "--config", config]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "audit log intact: 9 entries, every MAC holds");
    live.stop().await;
    crate::support::execute(
        &live.dir.store_url(),
        "UPDATE audit_log SET actor = 'mallory' WHERE id = 6",
    )
    .await;
    let (code, out, err) = run_tocsin(&folder, &["audit", "verify", "--config", config]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("audit log broken at entry 6: entry 6 does not match its MAC"),
        "{err}"
    );
    // The key is the engine's own, beside the data, for this user only.
    let key = folder.join("data/audit.key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Without it, nothing can be verified (exit 2), and nothing is made.
    std::fs::remove_file(&key).unwrap();
    let (code, _, err) = run_tocsin(&folder, &["audit", "verify", "--config", config]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("audit.key"), "{err}");
    assert!(!key.exists());
}

/// The routes of silences (ours and amtool's), overrides, cases and backups need their roles;
/// what they change is in the audit log under the token's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_overrides_cases_and_backups_need_their_roles_and_are_audited() {
    let live = start().await;
    let ends = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let silence = json!({ "matchers": ["service=\"storage\""], "duration": "2h",
                          "created_by": "someone", "comment": "disk swap" });
    let am_silence = json!({ "matchers": [{ "name": "service", "value": "sqldb",
                                            "isRegex": false, "isEqual": true }],
                             "startsAt": chrono::Utc::now().to_rfc3339(), "endsAt": ends,
                             "createdBy": "someone", "comment": "db move" });
    let start_at = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let override_body = json!({ "responder": "carol", "start": start_at, "end": ends });
    let case = json!({ "customer": "contoso", "service": "storage", "region": "china-east",
                       "sr_severity": "B", "summary": "uploads fail", "by": "someone",
                       "contact": { "name": "Ann", "email": "ann@contoso.example",
                                    "phone": "+1 555 0100" } });
    let on_postgres = crate::support::suite_on_postgres();
    let backup_status = if on_postgres { 409 } else { 200 };
    // (token, method, path, body, status, the role a 403 names)
    let calls: Vec<(&str, &str, &str, Value, u16, &str)> = vec![
        (VIEWER, "GET", "/api/v1/silences", Value::Null, 200, ""),
        (VIEWER, "GET", "/api/v2/silences", Value::Null, 200, ""),
        (
            VIEWER,
            "POST",
            "/api/v1/silences",
            silence.clone(),
            403,
            "responder",
        ),
        (
            VIEWER,
            "POST",
            "/api/v2/silences",
            am_silence.clone(),
            403,
            "responder",
        ),
        (
            INGEST,
            "GET",
            "/api/v1/silences",
            Value::Null,
            403,
            "viewer",
        ),
        (
            RESPONDER,
            "POST",
            "/api/v1/silences",
            silence.clone(),
            201,
            "",
        ),
        (
            RESPONDER,
            "POST",
            "/api/v2/silences",
            am_silence.clone(),
            200,
            "",
        ),
        (
            VIEWER,
            "GET",
            "/api/v1/schedules/primary/overrides",
            Value::Null,
            200,
            "",
        ),
        (
            RESPONDER,
            "POST",
            "/api/v1/schedules/primary/overrides",
            override_body.clone(),
            403,
            "admin",
        ),
        (
            ADMIN,
            "POST",
            "/api/v1/schedules/primary/overrides",
            override_body.clone(),
            201,
            "",
        ),
        (VIEWER, "GET", "/api/v1/cases", Value::Null, 200, ""),
        (
            VIEWER,
            "POST",
            "/api/v1/cases",
            case.clone(),
            403,
            "responder",
        ),
        (RESPONDER, "POST", "/api/v1/cases", case.clone(), 201, ""),
        (
            RESPONDER,
            "POST",
            "/api/v1/admin/backup",
            Value::Null,
            403,
            "admin",
        ),
        // A PostgreSQL store is backed up with pg_dump: 409 saying so, to the admin only.
        (
            ADMIN,
            "POST",
            "/api/v1/admin/backup",
            Value::Null,
            backup_status,
            "",
        ),
    ];
    for (token, method, path, body, expected, role) in calls {
        let (status, answer) = live.call(Some(token), method, path, body).await;
        assert_eq!(status, expected, "{token} {method} {path}: {answer}");
        if expected == 403 {
            let message = error_of(&answer);
            assert!(
                message.contains(&format!("needs the {role} role")),
                "{token} {method} {path}: {message}"
            );
        }
    }
    // The silence is rita's, whatever the body said; another responder's token could not
    // expire it, an admin's can.
    let (_, silences) = live.get(VIEWER, "/api/v1/silences").await;
    let ours = silences
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["comment"] == "disk swap")
        .expect("the silence is listed")
        .clone();
    assert_eq!(ours["created_by"], "rita", "{ours}");
    let id = ours["id"].as_str().unwrap();
    let (status, _) = live
        .call(
            Some(ADMIN),
            "DELETE",
            &format!("/api/v1/silences/{id}"),
            Value::Null,
        )
        .await;
    assert_eq!(status, 200);

    let (_, page) = live.get(ADMIN, "/api/v1/audit?limit=100").await;
    let actions: Vec<(String, String)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or("").to_string(),
                e["actor"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut wanted = vec![
        ("silence_create", "rita"),
        ("override_create", "ada"),
        ("silence_expire", "ada"),
    ];
    if !on_postgres {
        wanted.push(("backup", "ada"));
    }
    for wanted in wanted {
        assert!(
            actions
                .iter()
                .any(|(a, who)| a == wanted.0 && who == wanted.1),
            "{wanted:?} in the audit log: {actions:?}"
        );
    }
    assert_eq!(
        actions
            .iter()
            .filter(|(a, _)| a == "silence_create")
            .count(),
        2,
        "both silences, ours and amtool's: {actions:?}"
    );
    let (code, out, err) = run_tocsin(
        live.dir.path(),
        &["audit", "verify", "--config", "config.yaml"],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
}
