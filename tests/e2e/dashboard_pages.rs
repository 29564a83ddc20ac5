//! The dashboard for 3 a.m., in a real headless Chromium: ten incidents on a laptop screen
//! with Ack from the list, the name asked once, times in the viewer's zone, the history
//! search, the silences, overrides, queues and audit pages with their role rules, the
//! refused-reload banner, the pages of the timeline with their delivery state, and a
//! severity heading that says the reason the incident recorded. Each scenario saves
//! screenshots under `target/test-artifacts/` (printed).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures::FutureExt;
use serde_json::{json, Value};

use super::{artifacts, form, with_summary};
use crate::support::api::*;
use crate::support::peers::ChromeDriver;
use crate::support::webdriver::Browser;
use crate::support::{eventually, TestDir, TestEngine};

/// Run `scenario` in a fresh headless Chromium of `width`×`height`; the browser is closed
/// (and the driver stopped) whatever happens, and a failure is passed on.
async fn in_chromium<F, Fut>(dir: &Path, width: u32, height: u32, scenario: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = Browser>,
{
    let driver = ChromeDriver::start(dir).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = Browser::open(&driver.url, profile.path(), width, height).await;
    let session = browser.session_url();
    let outcome = AssertUnwindSafe(scenario(browser)).catch_unwind().await;
    match outcome {
        Ok(browser) => browser.quit().await,
        Err(panic) => {
            Browser::end(&session).await;
            drop(driver);
            std::panic::resume_unwind(panic);
        }
    }
}

/// Save a screenshot named `name` and say where it is.
async fn screenshot(browser: &Browser, name: &str) {
    let path = artifacts().join(name);
    browser.screenshot(&path).await.unwrap();
    println!("screenshot: {}", path.display());
}

/// Wait until `css` shows text that `done` accepts; its text.
async fn wait_text(browser: &Browser, css: &str, done: impl Fn(&str) -> bool) -> String {
    let found = eventually(Duration::from_secs(20), || async {
        browser.text(css).await.ok().filter(|t| done(t))
    })
    .await;
    match found {
        Some(text) => text,
        None => {
            let url = browser.current_url().await.unwrap_or_default();
            let body = browser.text("body").await.unwrap_or_default();
            panic!("{css} never showed what was awaited; at {url}:\n{body}");
        }
    }
}

async fn wait_url(browser: &Browser, done: impl Fn(&str) -> bool) -> String {
    eventually(Duration::from_secs(20), || async {
        browser.current_url().await.ok().filter(|u| done(u))
    })
    .await
    .expect("the browser reached the page awaited")
}

/// `POST /api/v1/incidents`: an incident declared by hand; its id.
async fn declare(engine: &TestEngine, body: &Value) -> i64 {
    let (status, made) = engine.post("/api/v1/incidents", body).await;
    assert_eq!(status, 201, "{made}");
    made["id"].as_i64().unwrap()
}

#[tokio::test]
async fn ten_incidents_fit_a_laptop_screen_with_ack_from_the_list_and_local_times() {
    let (dir, engine) = engine(false).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        let (service, region) = [
            ("storage", "china-east"),
            ("sqldb", "china-north"),
            ("storage", "china-north"),
        ][n % 3];
        ids.push(
            declare(
                &engine,
                &json!({
                    "title": format!("Replica {n} of the {service} cluster is not answering health checks"),
                    "severity": 1 + (n % 3),
                    "services": [service], "regions": [region], "customers": ["contoso"],
                    "by": "erin",
                }),
            )
            .await,
        );
    }
    let target = ids[4];

    in_chromium(dir.path(), 1400, 1000, |browser| async {
        // A viewer in New York: times are shown in their zone, UTC on hover.
        browser
            .devtools(
                "Emulation.setTimezoneOverride",
                json!({ "timezoneId": "America/New_York" }),
            )
            .await
            .unwrap();
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        let rows = browser
            .execute(
                "return [window.innerHeight, Array.from(document.querySelectorAll('article.incident.row')).map(r => r.getBoundingClientRect().bottom)];",
                vec![],
            )
            .await
            .unwrap();
        let height = rows[0].as_f64().unwrap();
        let bottoms: Vec<f64> = rows[1].as_array().unwrap().iter().map(|b| b.as_f64().unwrap()).collect();
        assert_eq!(bottoms.len(), 10, "{rows}");
        assert!(
            bottoms.iter().all(|b| *b <= height),
            "every row within the {height}px viewport: {bottoms:?}"
        );
        // No form asks for a name; the page asks once, at the top.
        let by_fields = browser
            .execute("return document.querySelectorAll('input[name=by]').length;", vec![])
            .await
            .unwrap();
        assert_eq!(by_fields, json!(0));
        assert!(browser.find("#your-name").await.is_ok());
        screenshot(&browser, "dashboard-ten-incidents.png").await;

        // Ack from the list before giving a name: a clear refusal, nothing acknowledged.
        browser.click(&format!("#ack-{target}")).await.unwrap();
        let refusal = wait_text(&browser, "#message-text", |t| !t.is_empty()).await;
        assert!(refusal.contains("does not know your name yet"), "{refusal}");
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        browser.type_into("#your-name", "dana").await.unwrap();
        browser.click("#save-name").await.unwrap();
        wait_text(&browser, "#who-name", |t| t == "dana").await;
        browser.click(&format!("#ack-{target}")).await.unwrap();
        let row = wait_text(&browser, &format!("#incident-{target}"), |t| t.contains("acked dana")).await;
        assert!(row.contains("acknowledged"), "{row}");
        assert!(browser.current_url().await.unwrap().ends_with('/'), "back on the list");
        assert!(browser.find(&format!("#ack-{target}")).await.is_err(), "no Ack once acked");
        // The name stays: another page knows it without asking.
        browser.goto(&format!("{}/incidents/{}", engine.url, ids[0])).await.unwrap();
        assert_eq!(browser.text("#who-name").await.unwrap(), "dana");
        assert!(browser.find("#your-name").await.is_err());

        // The opening time: in New York's zone on the page, in UTC on hover.
        let utc = browser.attribute("#opened-at time", "datetime").await.unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(&utc).unwrap().with_timezone(&Utc);
        let local = chrono_tz::America::New_York.from_utc_datetime(&at.naive_utc());
        let shown = browser.text("#opened-at time").await.unwrap();
        assert_eq!(shown, local.format("%Y-%m-%d %H:%M:%S %Z").to_string());
        assert_ne!(local.format("%H").to_string(), at.format("%H").to_string());
        let hover = browser.attribute("#opened-at time", "title").await.unwrap();
        assert_eq!(hover, at.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        screenshot(&browser, "dashboard-incident-new-york.png").await;
        browser
    })
    .await;
    let (_, acked) = engine.get(&format!("/api/v1/incidents/{target}")).await;
    assert_eq!(acked["acknowledged_by"], "dana");
    engine.stop().await;
}

/// How many incidents the history page lists.
async fn rows_shown(browser: &Browser) -> u64 {
    browser
        .execute(
            "return document.querySelectorAll('#history tbody tr[id]').length;",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn history_searches_resolved_incidents_and_pages_with_the_cursor() {
    let (dir, engine) = engine(false).await;
    for n in 0..26 {
        let id = declare(
            &engine,
            &json!({ "title": format!("disk full on node {n}"), "severity": 3,
                     "services": ["storage"], "regions": ["china-east"], "customers": ["contoso"], "by": "erin" }),
        )
        .await;
        engine
            .post(
                &format!("/api/v1/incidents/{id}/resolve"),
                &json!({ "by": "erin" }),
            )
            .await;
    }
    let kafka = declare(
        &engine,
        &json!({ "title": "kafka lag behind", "severity": 2, "services": ["sqldb"],
                 "regions": ["china-north"], "customers": ["northwind"], "by": "erin" }),
    )
    .await;
    engine
        .post(
            &format!("/api/v1/incidents/{kafka}/resolve"),
            &json!({ "by": "fay" }),
        )
        .await;
    let still_open = declare(
        &engine,
        &json!({ "title": "kafka broker down", "severity": 1, "services": ["sqldb"],
                 "regions": ["china-north"], "customers": ["fabrikam"], "by": "erin" }),
    )
    .await;

    in_chromium(dir.path(), 1400, 1000, |browser| async {
        browser
            .devtools("Emulation.setTimezoneOverride", json!({ "timezoneId": "Asia/Tokyo" }))
            .await
            .unwrap();
        // Resolved incidents, newest first, 25 a page; the open one is not among them.
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        browser.click("#nav-history").await.unwrap();
        wait_url(&browser, |u| u.contains("/history")).await;
        assert_eq!(rows_shown(&browser).await, 25);
        let first = browser.text("#history tbody tr").await.unwrap();
        assert!(first.contains(&format!("#{kafka} kafka lag behind")) && first.contains("fay"), "{first}");
        assert!(browser.find(&format!("#history-{still_open}")).await.is_err());
        screenshot(&browser, "dashboard-history.png").await;
        browser.click("#older-page").await.unwrap();
        wait_url(&browser, |u| u.contains("cursor=")).await;
        assert_eq!(rows_shown(&browser).await, 2);
        assert!(browser.find("#older-page").await.is_err());
        assert!(browser.find("#newest-page").await.is_ok());

        // Search by text, and by all incidents.
        browser.goto(&format!("{}/history", engine.url)).await.unwrap();
        browser.type_into("#search-q", "kafka").await.unwrap();
        browser.click("#search-button").await.unwrap();
        wait_url(&browser, |u| u.contains("q=kafka")).await;
        assert_eq!(rows_shown(&browser).await, 1);
        let select = |id: &'static str, value: &'static str| {
            format!("document.getElementById('{id}').value = '{value}';")
        };
        browser.execute(&select("search-status", "all"), vec![]).await.unwrap();
        browser.click("#search-button").await.unwrap();
        wait_url(&browser, |u| u.contains("status=all")).await;
        assert_eq!(rows_shown(&browser).await, 2);
        // By customer, region, service and severity.
        for (query, expected) in [
            ("/history?status=all&customer=fabrikam", vec![still_open]),
            ("/history?status=all&region=china-north", vec![still_open, kafka]),
            ("/history?service=sqldb", vec![kafka]),
            ("/history?status=all&severity=1", vec![still_open]),
        ] {
            browser.goto(&format!("{}{query}", engine.url)).await.unwrap();
            let shown = browser
                .execute(
                    "return Array.from(document.querySelectorAll('#history tbody tr[id]')).map(r => parseInt(r.id.slice(8)));",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(shown, json!(expected), "{query}");
        }
        // By time: the viewer types Tokyo time; the page sends UTC.
        let tokyo = chrono_tz::Asia::Tokyo;
        for (offset, expect_rows) in [(-1i64, true), (1, false)] {
            browser.goto(&format!("{}/history?status=all", engine.url)).await.unwrap();
            let from = (Utc::now() + chrono::Duration::hours(offset)).with_timezone(&tokyo);
            let field = from.format("%Y-%m-%dT%H:%M").to_string();
            browser
                .execute("document.getElementById('search-from').value = arguments[0];", vec![json!(field)])
                .await
                .unwrap();
            browser.click("#search-button").await.unwrap();
            let url = wait_url(&browser, |u| u.contains("from=")).await;
            let sent = from.with_timezone(&Utc).format("%Y-%m-%dT%H%%3A%M%%3A00Z").to_string();
            assert!(url.contains(&sent), "{url} sends {sent}");
            if expect_rows {
                assert_eq!(rows_shown(&browser).await, 25);
                // The field shows the viewer's time again.
                let shown = browser
                    .execute("return document.getElementById('search-from').value;", vec![])
                    .await
                    .unwrap();
                assert_eq!(shown, json!(field));
            } else {
                assert!(browser.find("#no-match").await.is_ok());
            }
        }
        browser
    })
    .await;
    engine.stop().await;
}

/// Tokens of three people, one a role.
const TOKENS: &str = "vic viewer tok-viewer\nrita responder tok-responder\nada admin tok-admin\n";

async fn sign_in(browser: &Browser, url: &str, token: &str) {
    browser.goto(&format!("{url}/login?next=/")).await.unwrap();
    browser.type_into("#token", token).await.unwrap();
    browser.click("form.confirm button").await.unwrap();
    wait_url(browser, |u| u.ends_with(':') || !u.contains("/login")).await;
}

async fn sign_out(browser: &Browser) {
    browser
        .click("header form.inline button.quiet")
        .await
        .unwrap();
    wait_url(browser, |u| u.contains("/login")).await;
}

#[tokio::test]
async fn silences_overrides_queues_and_audit_with_their_roles() {
    let dir = test_dir(true);
    dir.write("secrets/api-tokens", TOKENS);
    let engine = TestEngine::start(&dir).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let queued = send(
        &engine,
        vec![with_summary(minor("sqldb", "Lag"), "replica lag")],
    )
    .await[0];

    in_chromium(dir.path(), 1400, 1000, |browser| async {
        // A responder: named by the token, never asked; silences an incident from its page.
        sign_in(&browser, &engine.url, "tok-responder").await;
        browser.goto(&format!("{}/incidents/{id}", engine.url)).await.unwrap();
        assert_eq!(browser.text("#who-name").await.unwrap(), "rita");
        assert!(browser.find("#your-name").await.is_err() && browser.find("#change-name").await.is_err());
        assert!(browser.find("#severity-form").await.is_err(), "pinning a severity is the admin's");
        browser.click("#silence-button").await.unwrap();
        wait_url(&browser, |u| u.contains(&format!("/silences/new?incident={id}"))).await;
        let matchers = browser
            .execute("return document.getElementById('silence-matchers').value;", vec![])
            .await
            .unwrap();
        assert_eq!(
            matchers,
            json!("alertname=\"StorageDown\"\nservice=\"storage\"\nregion=\"china-east\"")
        );
        browser.type_into("#silence-comment", "disk swap in progress").await.unwrap();
        browser.click("#silence-submit").await.unwrap();
        wait_url(&browser, |u| u.ends_with("/silences")).await;
        let table = wait_text(&browser, "#silences tbody tr", |t| t.contains("active")).await;
        assert!(table.contains("rita") && table.contains("disk swap in progress"), "{table}");
        screenshot(&browser, "dashboard-silences.png").await;
        browser.click("#silences .expire-button").await.unwrap();
        wait_text(&browser, "#silences tbody tr .state", |t| t == "expired").await;

        // The queue: the responder takes the oldest; the page says who took what.
        browser.goto(&format!("{}/queues", engine.url)).await.unwrap();
        let waiting = browser.text(&format!("#waiting-{queued}")).await.unwrap();
        assert!(waiting.contains("replica lag"), "{waiting}");
        browser.click("#take-triage").await.unwrap();
        let taken = wait_text(&browser, &format!("#taken-{queued}"), |t| t.contains("rita")).await;
        assert!(taken.contains("triage") && taken.contains("ago"), "{taken}");
        assert!(browser.find(&format!("#waiting-{queued}")).await.is_err());
        screenshot(&browser, "dashboard-queues.png").await;

        // Overrides are the admin's: hidden from the responder, refused when posted anyway.
        browser.goto(&format!("{}/overrides", engine.url)).await.unwrap();
        let note = browser.text("#admin-note").await.unwrap();
        assert!(note.contains("needs the admin role"), "{note}");
        assert!(browser.find("#override-add-primary").await.is_err());
        sign_out(&browser).await;

        // The admin adds an override for bob now, sees him on call, and deletes it.
        sign_in(&browser, &engine.url, "tok-admin").await;
        browser.goto(&format!("{}/overrides", engine.url)).await.unwrap();
        let local = |t: chrono::DateTime<Utc>| json!(t.format("%Y-%m-%dT%H:%M").to_string());
        browser
            .execute(
                "const f = document.getElementById('override-add-primary');\
                 f.responder.value = 'bob'; f.start.value = arguments[0]; f.end.value = arguments[1];",
                vec![local(Utc::now() - chrono::Duration::hours(1)), local(Utc::now() + chrono::Duration::hours(2))],
            )
            .await
            .unwrap();
        browser.click("#override-add-primary button").await.unwrap();
        let on_call = wait_text(&browser, "#schedule-primary .on-call", |t| t == "bob").await;
        assert_eq!(on_call, "bob");
        let row = browser.text("#schedule-primary table.overrides tbody tr").await.unwrap();
        assert!(row.contains("bob (now)") && row.contains("ada"), "{row}");
        screenshot(&browser, "dashboard-overrides.png").await;
        browser.click("#schedule-primary .delete-button").await.unwrap();
        wait_text(&browser, "#schedule-primary table.overrides", |t| t.contains("No overrides ahead")).await;
        sign_out(&browser).await;

        // A viewer sees every page, and no form to act with.
        sign_in(&browser, &engine.url, "tok-viewer").await;
        browser.goto(&format!("{}/silences", engine.url)).await.unwrap();
        assert!(browser.text("#viewer-note").await.unwrap().contains("needs the responder role"));
        assert!(browser.find("#silence-create").await.is_err());
        assert!(browser.find(".expire-button").await.is_err());
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        assert!(browser.find(&format!("#ack-{id}")).await.is_err(), "no Ack for a viewer");
        browser.goto(&format!("{}/audit", engine.url)).await.unwrap();
        let audit = browser.text("#audit").await.unwrap();
        for expected in [
            "rita silence_create",
            "rita silence_expire",
            "rita take",
            "ada override_create",
            "ada override_remove",
        ] {
            assert!(audit.contains(expected), "{expected:?} in the audit log:\n{audit}");
        }
        screenshot(&browser, "dashboard-audit.png").await;
        browser
    })
    .await;

    // Posted without the role anyway: refused, naming the role.
    let (status, _, html) = form(
        &engine,
        "/overrides/primary",
        &[
            ("responder", "bob"),
            ("start", "2030-01-01T00:00:00Z"),
            ("end", "2030-01-02T00:00:00Z"),
        ],
        &[("authorization", "Bearer tok-responder")],
    )
    .await;
    assert_eq!(status, 403, "{html}");
    assert!(
        html.contains(
            "this needs the admin role; the token of &quot;rita&quot; has the responder role"
        ),
        "{html}"
    );
    let (status, _, html) = form(
        &engine,
        &format!("/incidents/{id}/ack"),
        &[],
        &[("authorization", "Bearer tok-viewer")],
    )
    .await;
    assert_eq!(status, 403, "{html}");
    engine.stop().await;
}

#[tokio::test]
async fn a_refused_reload_shows_a_banner_on_every_page() {
    let (dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let good = std::fs::read_to_string(dir.config_path()).unwrap();
    dir.write("config.yaml", &format!("{good}\nbogus_section: 1\n"));
    let reload = plain_http()
        .post(format!("{}/-/reload", engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 500);

    in_chromium(dir.path(), 1400, 1000, |browser| async {
        for path in [
            "/".to_string(),
            format!("/incidents/{id}"),
            "/history".into(),
            "/silences".into(),
            "/overrides".into(),
            "/queues".into(),
            "/audit".into(),
        ] {
            browser
                .goto(&format!("{}{path}", engine.url))
                .await
                .unwrap();
            let banner = browser
                .text("#reload-banner")
                .await
                .unwrap_or_else(|_| panic!("no banner on {path}"));
            assert!(
                banner.contains("Config reload refused") && banner.contains("bogus_section"),
                "{path}: {banner}"
            );
        }
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        screenshot(&browser, "dashboard-reload-refused.png").await;
        // Fixed and reloaded: the banner goes.
        dir.write("config.yaml", &good);
        let reload = plain_http()
            .post(format!("{}/-/reload", engine.url))
            .send()
            .await
            .unwrap();
        assert_eq!(reload.status(), 200);
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        assert!(browser.find("#reload-banner").await.is_err());
        browser
    })
    .await;
    engine.stop().await;
}

/// A rule that sets a severity floor: an `alertname="Fire"` alert is at least Sev 1.
const FLOOR_RULE: &str = r#"
groups:
  - name: floors
    rules:
      - name: FireFloor
        match: [ 'source="alert"', 'alertname="Fire"' ]
        impact: { kind: other, severity: 1 }
        summary: "fire alarm in {{ labels.service }}"
"#;

#[tokio::test]
async fn the_timeline_shows_each_page_with_its_delivery_and_the_heading_its_reason() {
    // Pages go to the schedule by email (written to files) and to a webhook nobody listens
    // on, which fails until it is given up; storage has a TSG.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let catalog = crate::support::CATALOG.replace(
        "{ name: storage, sla: 99.9, regions: [china-east, china-north] }",
        "{ name: storage, sla: 99.9, regions: [china-east, china-north], \
         tsg: { url: \"https://wiki.example.com/tsg/storage\" } }",
    );
    let paging = PAGING
        .replace(
            "notify: [ \"schedule:primary\" ]",
            "notify: [ \"schedule:primary\", \"webhook:pager\" ]",
        )
        .replace(
            "    file: { dir: data/outbox }\n",
            &format!(
                "    file: {{ dir: data/outbox }}\n  webhooks:\n    - {{ name: pager, url: \"{dead_url}\", timeout: 1s }}\n  \
                 retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 3s }}\n"
            ),
        );
    let config = format!("server:\n  ack_secret_file: secrets/ack-key\n{catalog}{paging}{ROUTES}");
    let dir = TestDir::new(
        &config,
        &[
            ("default.yaml", &crate::support::default_rules()),
            ("floor.yaml", FLOOR_RULE),
        ],
    );
    dir.write("secrets/ack-key", &format!("{ACK_KEY}\n"));
    let engine = TestEngine::start(&dir).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let floor = send(
        &engine,
        vec![alert(&[("alertname", "Fire"), ("service", "sqldb")])],
    )
    .await[0];
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{floor}")).await;
    assert_eq!(detail["severity"], 1, "{detail}");

    in_chromium(dir.path(), 1400, 1100, |browser| async {
        let page = format!("{}/incidents/{id}", engine.url);
        browser.goto(&page).await.unwrap();
        // The webhook page keeps failing, then is given up: red, with its last error.
        let dead = eventually(Duration::from_secs(30), || async {
            browser.goto(&page).await.ok()?;
            browser.text("#timeline li.delivery-dead").await.ok()
        })
        .await
        .expect("the webhook page is shown as dead");
        assert!(dead.contains("webhook") && dead.contains("dead") && dead.contains("last error:"), "{dead}");
        let colour = browser
            .execute(
                "return getComputedStyle(document.querySelector('#timeline li.delivery-dead')).borderLeftColor;",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(colour, json!("rgb(255, 77, 109)"), "red");
        // One row per page: as many as the outbox holds, and no separate "paged" or delivery
        // lines (the failing webhook made many attempts before it was given up).
        let pages = engine.running.state.store.pages_of(id).await.unwrap();
        let shown = browser
            .execute("return document.querySelectorAll('#timeline li.kind-page').length;", vec![])
            .await
            .unwrap();
        assert_eq!(shown, json!(pages.len()));
        let stray = browser
            .execute(
                "return Array.from(document.querySelectorAll('#timeline li.kind-paged, #timeline li.kind-delivery_failed, #timeline li.kind-delivery_attempt, #timeline li.kind-delivered')).map(l => l.textContent);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(stray, json!([]));
        let sent = browser.text("#timeline li.delivery-sent").await.unwrap();
        assert!(sent.contains("email") && sent.contains("sent"), "{sent}");
        // The TSG of storage.
        assert_eq!(
            browser.attribute("#tsg-link", "href").await.unwrap(),
            "https://wiki.example.com/tsg/storage"
        );
        browser
            .execute("document.querySelector('#timeline li.delivery-dead').scrollIntoView();", vec![])
            .await
            .unwrap();
        screenshot(&browser, "dashboard-timeline-dead-page.png").await;

        // A Sev 1 set by a rule's floor says so, and claims no spread it does not have.
        browser.goto(&format!("{}/incidents/{floor}", engine.url)).await.unwrap();
        let heading = browser.text("#severity-heading").await.unwrap();
        assert_eq!(heading, "Sev 1 · severity floor 1 set by a rule");
        browser.goto(&format!("{}/", engine.url)).await.unwrap();
        let row = browser.text(&format!("#incident-{floor} .reason")).await.unwrap();
        assert_eq!(row, "severity floor 1 set by a rule");
        let sev1 = browser.text("#sev1").await.unwrap();
        assert!(!sev1.contains("region"), "{sev1}");
        screenshot(&browser, "dashboard-severity-floor.png").await;
        browser
    })
    .await;
    engine.stop().await;
}
