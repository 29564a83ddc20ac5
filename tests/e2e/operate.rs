//! Operating tocsin live, through the real binary (SQLite, or PostgreSQL with
//! `TOCSIN_TEST_STORE=postgres`): roles per token and the `by` they give, reloads that need
//! the admin role and re-read the tokens, the audit log and `tocsin audit verify` finding a
//! tampered row, incidents declared by hand (paged to webhook receivers), escalated,
//! given responders and assigned, and the incident list paged with a cursor and filters.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::operate::{
    error_of, start, storage_outage, Live, ADMIN, BARE, INGEST, RESPONDER, VIEWER,
};
use crate::support::{eventually, run_tocsin, send_signal};

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

#[tokio::test]
async fn a_declared_incident_is_paged_escalated_joined_and_assigned() {
    let live = start().await;
    let (status, incident) = live
        .post(RESPONDER, "/api/v1/incidents", storage_outage())
        .await;
    assert_eq!(status, 201, "{incident}");
    let id = incident["id"].as_i64().unwrap();
    // Two regions, contoso and fabrikam (the catalog's), outages: Sev 1, not pinned.
    assert_eq!(incident["severity"], 1, "{incident}");
    assert_eq!(incident["pinned"], false);
    assert_eq!(incident["title"], "Storage writes fail");
    assert_eq!(incident["customers"], json!(["contoso", "fabrikam"]));
    let (_, detail) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    let impacts = detail["impacts"].as_array().unwrap();
    assert_eq!(impacts.len(), 2, "one manual impact per service and region");
    assert!(impacts
        .iter()
        .all(|i| i["source"] == "manual" && i["cleared_at"].is_null()));
    live.paged("alice", id, "triggered").await;
    assert!(
        live.events("bob", id).is_empty(),
        "bob's level is an hour away"
    );

    // A new alert on the same service and region opens an incident of its own.
    let (status, _) = live
        .post(
            INGEST,
            "/api/v2/alerts",
            json!([{ "labels": { "alertname": "StorageDown", "severity": "critical",
                                 "service": "storage", "region": "china-east" } }]),
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = live.get(VIEWER, "/api/v1/incidents").await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 2, "{list}");
    let (_, detail) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        detail["impacts"].as_array().unwrap().len(),
        2,
        "nothing joined it"
    );

    // Escalate: bob now; then no level is left.
    let escalate = format!("/api/v1/incidents/{id}/escalate");
    let (status, answer) = live.post(RESPONDER, &escalate, json!({})).await;
    assert_eq!(status, 200, "{answer}");
    live.paged("bob", id, "escalated").await;
    let (status, answer) = live.post(RESPONDER, &escalate, json!({})).await;
    assert_eq!(status, 409, "{answer}");
    assert!(error_of(&answer).contains("no level is left"), "{answer}");

    // carol joins: paged now, then hears of the ack.
    let responders = format!("/api/v1/incidents/{id}/responders");
    let (status, answer) = live
        .post(RESPONDER, &responders, json!({ "responder": "carol" }))
        .await;
    assert_eq!(status, 200, "{answer}");
    live.paged("carol", id, "responder_added").await;
    let (status, answer) = live
        .post(RESPONDER, &responders, json!({ "responder": "zed" }))
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(error_of(&answer).contains("alice, bob, carol"), "{answer}");
    let (status, _) = live
        .post(RESPONDER, &format!("/api/v1/incidents/{id}/ack"), json!({}))
        .await;
    assert_eq!(status, 200);
    live.paged("carol", id, "acknowledged").await;

    // Assign to bob: the assignee, paged with event `assigned`.
    let (status, assigned) = live
        .post(
            RESPONDER,
            &format!("/api/v1/incidents/{id}/assign"),
            json!({ "responder": "bob" }),
        )
        .await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["assignee"], "bob");
    live.paged("bob", id, "assigned").await;
    let (_, shown) = live.get(VIEWER, &format!("/api/v1/incidents/{id}")).await;
    assert_eq!(shown["assignee"], "bob");

    // A given severity is pinned; Sev 4 waits in the triage queue, unpaged.
    let (status, queued) = live
        .post(
            RESPONDER,
            "/api/v1/incidents",
            json!({ "title": "Batch slow", "severity": 4, "services": ["sqldb"] }),
        )
        .await;
    assert_eq!(status, 201, "{queued}");
    assert_eq!(
        (queued["severity"].as_i64(), queued["pinned"].as_bool()),
        (Some(4), Some(true))
    );
    assert_eq!(queued["queue"], "triage");
    let (status, answer) = live
        .post(
            RESPONDER,
            &format!("/api/v1/incidents/{}/escalate", queued["id"]),
            json!({}),
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    // Bad declarations say which field and what it takes.
    for (body, field) in [
        (json!({ "title": "", "services": ["storage"] }), "title"),
        (json!({ "title": "x" }), "services"),
        (
            json!({ "title": "x", "services": ["storage"], "severity": 9 }),
            "severity",
        ),
        (json!({ "title": "x", "services": ["a b"] }), "services"),
    ] {
        let (status, answer) = live.post(RESPONDER, "/api/v1/incidents", body).await;
        assert_eq!(status, 422, "{answer}");
        assert!(error_of(&answer).contains(field), "{answer}");
    }
    let (status, answer) = live
        .post(
            RESPONDER,
            "/api/v1/incidents",
            json!({ "title": "x", "colour": 1 }),
        )
        .await;
    assert_eq!(status, 400, "{answer}");
}

#[tokio::test]
async fn the_list_pages_over_the_whole_history_with_filters() {
    let live = start().await;
    let services = ["storage", "sqldb"];
    let regions = ["china-east", "china-north"];
    let mut declared = Vec::new();
    let mut middle = None;
    for n in 0..130 {
        if n == 65 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            middle = Some(chrono::Utc::now());
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        // Sev 4: queued, no page; customers given, so the catalog adds none.
        let id = live
            .declare(json!({
                "title": format!("Trouble number {n}"), "severity": 4,
                "services": [services[n % 2]], "regions": [regions[(n / 2) % 2]],
                "customers": [format!("customer-{}", n % 5)],
            }))
            .await;
        declared.push(id);
    }
    let middle = middle
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for id in declared.iter().step_by(10) {
        let (status, _) = live
            .post(
                RESPONDER,
                &format!("/api/v1/incidents/{id}/resolve"),
                json!({}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = live
        .post(
            RESPONDER,
            &format!("/api/v1/incidents/{}/notes", declared[7]),
            json!({ "text": "The Fabrikam ticket is 4242" }),
        )
        .await;
    assert_eq!(status, 201);

    /// Every id of the list with `query`, page by page (`limit` a page).
    async fn all(live: &Live, query: &str, limit: usize) -> Vec<i64> {
        let mut ids = Vec::new();
        let mut cursor = String::new();
        for _ in 0..200 {
            let (status, page) = live
                .get(
                    VIEWER,
                    &format!("/api/v1/incidents?{query}&limit={limit}&cursor={cursor}"),
                )
                .await;
            assert_eq!(status, 200, "{query}: {page}");
            let incidents = page["incidents"].as_array().unwrap();
            assert!(incidents.len() <= limit);
            ids.extend(incidents.iter().map(|i| i["id"].as_i64().unwrap()));
            match page["next"].as_str() {
                Some(next) => cursor = next.to_string(),
                None => return ids,
            }
        }
        panic!("more than 200 pages for {query}");
    }
    let newest_first: Vec<i64> = declared.iter().rev().copied().collect();
    assert_eq!(
        all(&live, "", 40).await,
        newest_first,
        "every incident, once each"
    );
    let (_, first) = live.get(VIEWER, "/api/v1/incidents").await;
    assert_eq!(
        first["incidents"].as_array().unwrap().len(),
        100,
        "100 a page by default"
    );
    assert_eq!(first["next"], declared[30].to_string());

    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<i64> {
        (0..130)
            .rev()
            .filter(|n| keep(*n))
            .map(|n| declared[n])
            .collect()
    };
    let cases: Vec<(String, Vec<i64>)> = vec![
        ("service=sqldb".into(), expect(&|n| n % 2 == 1)),
        ("region=china-north".into(), expect(&|n| (n / 2) % 2 == 1)),
        ("customer=customer-3".into(), expect(&|n| n % 5 == 3)),
        (
            "service=storage&region=china-east".into(),
            expect(&|n| n % 4 == 0),
        ),
        ("status=resolved".into(), expect(&|n| n % 10 == 0)),
        ("status=open&service=sqldb".into(), expect(&|n| n % 2 == 1)),
        (
            "q=number%2012".into(),
            expect(&|n| n == 12 || (120..130).contains(&n)),
        ),
        ("q=FABRIKAM%20TICKET".into(), expect(&|n| n == 7)),
        ("q=service".into(), Vec::new()),
        ("q=storage&status=resolved".into(), expect(&|n| n % 10 == 0)),
        (format!("to={middle}"), expect(&|n| n < 65)),
        (
            format!("from={middle}&service=sqldb"),
            expect(&|n| n >= 65 && n % 2 == 1),
        ),
        ("severity=4".into(), expect(&|_| true)),
        ("severity=3".into(), Vec::new()),
    ];
    for (query, expected) in cases {
        assert_eq!(all(&live, &query, 7).await, expected, "{query}");
    }
    for (query, parameter) in [
        ("status=over", "status"),
        ("severity=5", "severity"),
        ("from=monday", "from"),
        ("to=2026-02-30T00:00:00Z", "to"),
        ("cursor=-3", "cursor"),
        ("limit=0", "limit"),
        ("sort=id", "sort"),
    ] {
        let (status, answer) = live
            .get(VIEWER, &format!("/api/v1/incidents?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert!(error_of(&answer).contains(parameter), "{query}: {answer}");
    }

    // The CLI reads the same pages.
    let folder = live.dir.path().to_path_buf();
    let url = live.engine.url.clone();
    let (code, out, err) = run_tocsin(
        &folder,
        &[
            "incidents",
            "list",
            "--url",
            &url,
            "--token",
            VIEWER,
            "--service",
            "sqldb",
            "--limit",
            "3",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(lines[1].starts_with(&declared[129].to_string()), "{out}");
    assert_eq!(lines[4], format!("more: --cursor {}", declared[125]));
    let (code, out, err) = run_tocsin(
        &folder,
        &[
            "incidents",
            "declare",
            "--url",
            &url,
            "--token",
            RESPONDER,
            "--title",
            "Payments down",
            "--service",
            "sqldb",
            "--region",
            "china-east",
            "--by",
            "x",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let incident: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(incident["title"], "Payments down");
    let (_, detail) = live
        .get(VIEWER, &format!("/api/v1/incidents/{}", incident["id"]))
        .await;
    assert_eq!(detail["timeline"][0]["actor"], "rita");
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
