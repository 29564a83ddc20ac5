//! Incidents by hand, through the real binary: declared (paged to webhook receivers),
//! escalated, given responders and assigned, and the incident list paged with a cursor and
//! filters over the whole history.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::operate::{error_of, start, storage_outage, Live, INGEST, RESPONDER, VIEWER};
use crate::support::run_tocsin;

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
