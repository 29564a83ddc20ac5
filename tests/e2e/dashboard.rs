//! The dashboard: server-rendered pages read over HTTP, and a real headless Chromium (driven
//! through chromedriver) acknowledging an incident with the page's own button.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;

use crate::support;
use crate::support::api::*;
use crate::support::peers::ChromeDriver;
use crate::support::webdriver::Browser;
use crate::support::{eventually, TestEngine};
use futures::FutureExt;
use serde_json::{json, Value};
use tocsin::signal::Signal;

#[path = "dashboard_pages.rs"]
mod pages;

fn with_summary(mut signal: Signal, summary: &str) -> Signal {
    std::sync::Arc::make_mut(&mut signal.annotations)
        .insert("summary".to_string(), summary.to_string());
    signal
}

/// Where test artifacts go: `target/test-artifacts/` (or under $CARGO_TARGET_DIR).
fn artifacts() -> PathBuf {
    let target = option_env!("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn page(engine: &TestEngine, path: &str, cookie: Option<&str>) -> (u16, String, String) {
    let mut request = plain_http().get(format!("{}{path}", engine.url));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

async fn form(
    engine: &TestEngine,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut request = plain_http()
        .post(format!("{}{path}", engine.url))
        .form(fields);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, location, response.text().await.unwrap())
}

async fn incident(engine: &TestEngine, id: i64) -> Value {
    let (status, body) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn browser_acknowledges_an_incident_through_the_dashboard() {
    let (dir, engine) = engine(false).await;
    let ids = send(
        &engine,
        vec![
            with_summary(storage_east(), "Storage unavailable in china-east"),
            with_summary(storage_north(), "Storage unavailable in china-north"),
        ],
    )
    .await;
    let id = ids[0];
    send(
        &engine,
        vec![with_summary(
            minor("sqldb", "ReplicaLag"),
            "Replica lag above 30 s",
        )],
    )
    .await;
    let paged: Vec<String> = engine
        .running
        .state
        .store
        .pages_of(id)
        .await
        .unwrap()
        .iter()
        .map(|p| p.page.recipient.id.clone())
        .collect();
    assert!(!paged.is_empty());

    let driver = ChromeDriver::start(dir.path()).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver.url, profile.path(), 1280, 1100).await;
    let scenario = AssertUnwindSafe(async {
        // The overview: the Sev 1 with who it hits, who was paged, and nobody's ack yet.
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        let card = browser.text(&format!("#incident-{id}")).await.unwrap();
        for expected in [
            "Storage unavailable in china-east",
            "Sev 1",
            "triggered",
            "contoso, fabrikam (2)",
            "china-east, china-north",
            "storage",
            "not yet",
            &paged[0],
        ] {
            assert!(
                card.contains(expected),
                "{expected:?} not on the card:\n{card}"
            );
        }
        let sev1 = browser.text("#sev1").await.unwrap();
        assert!(sev1.starts_with("Sev 1"), "{sev1}");
        let queue = browser.text("#queues").await.unwrap();
        assert!(queue.contains("Replica lag above 30 s"), "{queue}");
        let oncall = browser.text("#oncall").await.unwrap();
        assert!(oncall.contains("primary"), "{oncall}");
        assert_eq!(
            browser.attribute("body", "data-refresh").await.unwrap(),
            "15"
        );

        // Open it, and acknowledge with the page's button.
        browser
            .click(&format!("#incident-{id} h3 a"))
            .await
            .unwrap();
        let opened = eventually(Duration::from_secs(20), || async {
            let url = browser.current_url().await.ok()?;
            url.ends_with(&format!("/incidents/{id}")).then_some(url)
        })
        .await;
        assert!(opened.is_some(), "the incident page did not open");
        assert_eq!(browser.text("#status").await.unwrap(), "triggered");
        let timeline = browser.text("#timeline").await.unwrap();
        assert!(
            timeline.contains("opened") && timeline.contains("page"),
            "{timeline}"
        );
        // The name is asked once, at the top of the page; then the button acts under it.
        browser.type_into("#your-name", "alice").await.unwrap();
        browser.click("#save-name").await.unwrap();
        let named = eventually(Duration::from_secs(20), || async {
            browser
                .text("#who-name")
                .await
                .ok()
                .filter(|n| n == "alice")
        })
        .await;
        assert!(named.is_some(), "the page did not take the name");
        browser.click("#ack-button").await.unwrap();
        let status = eventually(Duration::from_secs(20), || async {
            let status = browser.text("#status").await.ok()?;
            (status == "acknowledged").then_some(status)
        })
        .await;
        if status.is_none() {
            let url = browser.current_url().await.unwrap_or_default();
            let body = browser.text("body").await.unwrap_or_default();
            let api = incident(&engine, id).await;
            panic!("the page never showed the ack; at {url}:\n{body}\nAPI: {api}");
        }
        let acked = browser.text("#acknowledged-by").await.unwrap();
        assert!(acked.starts_with("alice at "), "{acked}");
        let timeline = browser.text("#timeline").await.unwrap();
        assert!(timeline.contains("acknowledged by alice"), "{timeline}");
        assert!(
            browser.find("#ack-button").await.is_err(),
            "no Acknowledge button once acknowledged"
        );
        browser
            .screenshot(&artifacts().join("dashboard-incident.png"))
            .await
            .unwrap();

        // The overview says so too; keep a picture of it, wide and phone-sized.
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        let card = browser.text(&format!("#incident-{id}")).await.unwrap();
        assert!(
            card.contains("acknowledged") && card.contains("alice"),
            "{card}"
        );
        browser
            .screenshot(&artifacts().join("dashboard.png"))
            .await
            .unwrap();
        browser.set_window(412, 915).await.unwrap();
        browser
            .screenshot(&artifacts().join("dashboard-phone.png"))
            .await
            .unwrap();
    })
    .catch_unwind()
    .await;
    browser.quit().await;
    drop(driver);
    if let Err(panic) = scenario {
        std::panic::resume_unwind(panic);
    }

    // And the API agrees.
    let incident = incident(&engine, id).await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], "alice");
    let png = std::fs::read(artifacts().join("dashboard.png")).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot"
    );
    engine.stop().await;
}

#[tokio::test]
async fn overview_groups_by_severity_with_queues_and_who_is_on_call() {
    let (_dir, engine) = engine(false).await;
    let queued = send(
        &engine,
        vec![with_summary(minor("sqldb", "Lag"), "replica lag")],
    )
    .await[0];
    let sev2 = send(
        &engine,
        vec![with_summary(storage_east(), "storage down east")],
    )
    .await[0];
    let sev0 = send(
        &engine,
        vec![with_summary(
            alert(&[
                ("alertname", "Corruption"),
                ("severity", "critical"),
                ("service", "ledger"),
                ("region", "europe-west"),
            ]),
            "pages corrupted",
        )],
    )
    .await[0];
    let (_, pinned) = engine
        .post(
            &format!("/api/v1/incidents/{sev0}/severity"),
            &json!({ "severity": 0, "by": "bob" }),
        )
        .await;
    assert_eq!(pinned["severity"], 0);
    engine
        .post(
            &format!("/api/v1/incidents/{sev2}/ack"),
            &json!({ "by": "dana" }),
        )
        .await;

    let (status, _, html) = page(&engine, "/", None).await;
    assert_eq!(status, 200, "{html}");
    let at = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not on the page:\n{html}"))
    };
    // Sev 0 first, then Sev 2, then Sev 4; then the queues; then who is on call.
    assert!(at("id=\"sev0\"") < at("id=\"sev2\""));
    assert!(at("id=\"sev2\"") < at("id=\"sev4\""));
    assert!(at("id=\"sev4\"") < at("id=\"queues\""));
    assert!(at("id=\"queues\"") < at("id=\"oncall\""));
    assert!(at("pages corrupted") < at("storage down east"));
    assert!(at(&format!("id=\"incident-{sev0}\"")) < at(&format!("id=\"incident-{sev2}\"")));
    // Who acknowledged, who was paged (from the outbox), age.
    let card = &html[at(&format!("id=\"incident-{sev2}\""))..];
    let card = &card[..card.find("</article>").unwrap()];
    assert!(card.contains("dana"), "{card}");
    assert!(card.contains("contoso, fabrikam (2)"), "{card}");
    assert!(card.contains("ago"), "{card}");
    let paged: Vec<String> = engine
        .running
        .state
        .store
        .pages_of(sev2)
        .await
        .unwrap()
        .iter()
        .map(|p| p.page.recipient.id.clone())
        .collect();
    assert!(
        // Delivery state as it is when the page renders: pending, or already written out.
        card.contains(&paged[0])
            && (card.contains("email, queued") || card.contains("email, sent")),
        "{card}"
    );
    // The queue, and who holds the pager now.
    let queues = &html[at("id=\"queues\"")..at("id=\"oncall\"")];
    assert!(
        queues.contains("triage") && queues.contains(&format!("#{queued} replica lag")),
        "{queues}"
    );
    let oncall = &html[at("id=\"oncall\"")..];
    let (_, now) = engine.get("/api/v1/oncall").await;
    let holder = now[0]["responder"].as_str().unwrap();
    let shown = if holder == "alice" {
        "Alice (alice)"
    } else {
        "bob"
    };
    assert!(oncall.contains(shown), "{oncall}");
    // It refreshes itself.
    assert!(html.contains("data-refresh=\"15\"") && html.contains("/static/dashboard.js"));
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"15\">"),
        "noscript fallback"
    );
    let (status, _, js) = page(&engine, "/static/dashboard.js", None).await;
    assert_eq!(status, 200);
    assert!(js.contains("location.reload()"));

    // Resolved incidents leave the overview.
    engine
        .post(
            &format!("/api/v1/incidents/{sev0}/resolve"),
            &json!({ "by": "bob" }),
        )
        .await;
    let (_, _, html) = page(&engine, "/", None).await;
    assert!(!html.contains("pages corrupted"));
    assert!(!html.contains("id=\"sev0\""));
    engine.stop().await;
}

#[tokio::test]
async fn alert_text_is_escaped_everywhere() {
    let (_dir, engine) = engine(false).await;
    let evil = "<script>alert(\"pwned\")</script>";
    let id = send(
        &engine,
        vec![with_summary(
            alert(&[
                ("alertname", "X"),
                ("severity", "critical"),
                ("service", "<img src=x onerror=alert(1)>"),
            ]),
            evil,
        )],
    )
    .await[0];
    for path in ["/".to_string(), format!("/incidents/{id}")] {
        let (status, _, html) = page(&engine, &path, None).await;
        assert_eq!(status, 200);
        assert!(!html.contains("<script>alert"), "{path}: {html}");
        assert!(!html.contains("<img src=x"), "{path}: {html}");
        assert!(
            html.contains("&lt;script&gt;alert(&quot;pwned&quot;)"),
            "{path}: {html}"
        );
    }
    let token = tocsin::paging::AckSigner::new(ACK_KEY.as_bytes()).sign(
        id,
        "<b>mallory</b>",
        chrono::Utc::now() + chrono::Duration::hours(1),
    );
    let (status, _, html) = page(&engine, &format!("/ack/{token}"), None).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("<script>alert") && !html.contains("<b>mallory"),
        "{html}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn incident_page_shows_fields_impacts_and_the_whole_timeline() {
    let (_dir, engine) = engine(false).await;
    let id = open_sev1(&engine).await;
    engine
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            &json!({ "by": "erin", "text": "rolling back build 4711" }),
        )
        .await;
    // The delivery worker writes the pages out (file transport); the page shows that.
    let store = engine.running.state.store.clone();
    let delivered = support::eventually(std::time::Duration::from_secs(10), || {
        let store = store.clone();
        async move {
            let pages = store.pages_of(id).await.ok()?;
            (!pages.is_empty()
                && pages
                    .iter()
                    .all(|p| p.status == tocsin::store::OutboxStatus::Delivered))
            .then_some(())
        }
    })
    .await;
    assert!(delivered.is_some(), "pages were delivered");
    let (status, _, html) = page(&engine, &format!("/incidents/{id}"), None).await;
    assert_eq!(status, 200, "{html}");
    for expected in [
        "id=\"status\">triggered<",
        "Sev 1",
        "contoso, fabrikam (2)",
        "china-east, china-north",
        "AlertCritical",
        "outage, SLA breach",
        // The timeline: opening, impacts, severity changes, pages and their delivery, notes.
        "opened at Sev 2",
        "impact_added",
        "severity_raised",
        "triggered page to",
        "state-sent\">sent<",
        "rolling back build 4711",
        "id=\"ack-button\"",
        "id=\"resolve-button\"",
    ] {
        assert!(
            html.contains(expected),
            "{expected:?} not on the page:\n{html}"
        );
    }
    let (status, _, html) = page(&engine, "/incidents/999", None).await;
    assert_eq!(status, 404, "{html}");
    assert!(html.contains("no incident 999"));
    engine.stop().await;
}

#[tokio::test]
async fn page_forms_act_record_by_and_redirect_back() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let back = format!("/incidents/{id}");
    let same_site = [("origin", engine.url.as_str())];

    let (status, location, _) = form(
        &engine,
        &format!("{back}/ack"),
        &[("by", "alice")],
        &same_site,
    )
    .await;
    assert_eq!((status, location.as_str()), (303, back.as_str()));
    assert_eq!(incident(&engine, id).await["acknowledged_by"], "alice");
    // The name is remembered: the page says who acts, and asks no name in its forms.
    let (_, _, html) = page(&engine, &back, Some("tocsin_by=alice")).await;
    assert!(html.contains("id=\"who-name\">alice<"), "{html}");
    assert!(!html.contains("name=\"by\""), "{html}");

    let (status, _, html) = form(&engine, &format!("{back}/ack"), &[("by", "bob")], &[]).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("already acknowledged by alice"), "{html}");
    let (status, _, html) = form(&engine, &format!("{back}/ack"), &[("by", " ")], &[]).await;
    assert_eq!(status, 422, "{html}");

    let (status, _, _) = form(
        &engine,
        &format!("{back}/notes"),
        &[("by", "erin"), ("text", "looking at the disks")],
        &[],
    )
    .await;
    assert_eq!(status, 303);
    let (status, _, _) = form(
        &engine,
        &format!("{back}/severity"),
        &[
            ("by", "bob"),
            ("severity", "3"),
            ("reason", "one region, contained"),
        ],
        &[],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(incident(&engine, id).await["severity"], 3);
    let (status, _, html) = form(
        &engine,
        &format!("{back}/severity"),
        &[("by", "bob"), ("severity", "9")],
        &[],
    )
    .await;
    assert_eq!(status, 422, "{html}");

    // A form posted from another site is refused and changes nothing.
    for cross_site in [
        [("origin", "http://evil.example"), ("x-unused", "")],
        [
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://evil.example"),
        ],
        [
            ("sec-fetch-site", "same-site"),
            ("origin", "http://127.0.0.1:1"),
        ],
    ] {
        let (status, _, html) = form(
            &engine,
            &format!("{back}/resolve"),
            &[("by", "mallory")],
            &cross_site,
        )
        .await;
        assert_eq!(status, 403, "{cross_site:?}: {html}");
    }
    assert_eq!(incident(&engine, id).await["status"], "acknowledged");

    let (status, location, _) = form(
        &engine,
        &format!("{back}/resolve"),
        &[("by", "carol"), ("note", "disks replaced")],
        &same_site,
    )
    .await;
    assert_eq!((status, location.as_str()), (303, back.as_str()));
    let detail = incident(&engine, id).await;
    assert_eq!(detail["status"], "resolved");
    let acts: Vec<(String, String)> = detail["timeline"]
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
        ("note", "erin"),
        ("severity_changed", "bob"),
        ("resolved", "carol"),
    ] {
        assert!(
            acts.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {acts:?}"
        );
    }
    assert!(!acts.iter().any(|(_, actor)| actor == "mallory"));
    let (status, _, html) =
        form(&engine, &format!("{back}/resolve"), &[("by", "carol")], &[]).await;
    assert_eq!(status, 409, "{html}");
    let (_, _, html) = page(&engine, &back, None).await;
    assert!(!html.contains("id=\"ack-button\"") && !html.contains("id=\"resolve-button\""));
    engine.stop().await;
}

#[tokio::test]
async fn with_api_auth_the_dashboard_needs_a_sign_in() {
    let (_dir, engine) = engine(true).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let back = format!("/incidents/{id}");

    let (status, location, _) = page(&engine, "/", None).await;
    assert_eq!((status, location.as_str()), (303, "/login?next=/"));
    let (status, location, _) = page(&engine, &back, None).await;
    assert_eq!(status, 303);
    assert_eq!(location, format!("/login?next=/incidents/{id}"));
    let (status, location, _) =
        form(&engine, &format!("{back}/ack"), &[("by", "mallory")], &[]).await;
    assert_eq!(
        status, 303,
        "an action without a session goes to the sign-in"
    );
    assert!(location.starts_with("/login"));
    let (_, _, html) = page(&engine, "/login?next=/incidents/1", None).await;
    assert!(html.contains("type=\"password\""), "{html}");

    let (status, _, html) =
        form(&engine, "/login", &[("token", "wrong"), ("next", "/")], &[]).await;
    assert_eq!(status, 401, "{html}");
    assert!(html.contains("not accepted"));
    let response = plain_http()
        .post(format!("{}/login", engine.url))
        .form(&[("token", TOKEN), ("next", &back)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], back.as_str());
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie is not the token: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let (status, _, html) = page(&engine, "/", Some(&cookie)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!("id=\"incident-{id}\"")));
    // An open redirect is not on offer.
    let (_, location, _) = form(
        &engine,
        "/login",
        &[("token", TOKEN), ("next", "//evil.example/")],
        &[],
    )
    .await;
    assert_eq!(location, "/");
    // The session cookie is no API token.
    let session = cookie.split_once('=').unwrap().1;
    let api = plain_http()
        .get(format!("{}/api/v1/incidents", engine.url))
        .bearer_auth(session)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401);
    // Nothing was acknowledged before signing in; after, the form works.
    let before: Value = plain_http()
        .get(format!("{}/api/v1/incidents/{id}", engine.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["status"], "triggered");
    let (status, location, _) = form(
        &engine,
        &format!("{back}/ack"),
        &[("by", "alice")],
        &[("cookie", &cookie)],
    )
    .await;
    assert_eq!((status, location.as_str()), (303, back.as_str()));
    // A bearer token works on the dashboard too (scripts, curl).
    let response = plain_http()
        .get(format!("{}{back}", engine.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("id=\"status\">acknowledged<"));
    // Signing out ends the session in the browser.
    let (status, _, _) = form(&engine, "/logout", &[], &[("cookie", &cookie)]).await;
    assert_eq!(status, 303);
    engine.stop().await;
}
