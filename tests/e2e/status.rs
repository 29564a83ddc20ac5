//! Customer status pages (`/status/{token}`, `tocsin status-link`): each customer sees its
//! own open incidents and cases and the updates sent to it, and nothing of another
//! customer; a token changed or moved to another customer is a 404.

use serde_json::{json, Value};

use crate::support::{run_tocsin, TestDir, TestEngine, CATALOG};

fn config() -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: carol, email: carol@example.com }}
  - {{ id: erin, email: erin@example.com }}
escalation_policies:
  - name: support
    levels: [ {{ after: 0s, notify: [ "responder:erin" ] }} ]
  - name: engineering
    levels: [ {{ after: 0s, notify: [ "responder:carol" ] }} ]
routes:
  - {{ match: [ 'severity=~"0|1|2|3"' ], policy: engineering }}
case_routes:
  - {{ match: [ 'sr_severity=~"A|B|C"' ], policy: support }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: outbox }} }}
"#
    )
}

fn report(customer: &str, service: &str, region: &str, summary: &str) -> Value {
    json!({
        "customer": customer, "service": service, "region": region,
        "sr_severity": "A", "summary": summary,
        "contact": { "name": "Dana", "email": format!("ops@{customer}.example.com") },
    })
}

/// The status link of `customer`, as the CLI prints it.
async fn status_link(dir: &TestDir, url: &str, customer: &str) -> String {
    let (code, out, err) = run_tocsin(dir.path(), &["status-link", customer, "--url", url]).await;
    assert_eq!(code, 0, "{err}");
    let link = out.trim().to_string();
    assert!(link.starts_with("http://tocsin.test/status/"), "{link}");
    link.trim_start_matches("http://tocsin.test").to_string()
}

/// The page at `path`: status, content type and body.
async fn fetch(engine: &TestEngine, path: &str, json: bool) -> (u16, String, String) {
    let accept = if json {
        "application/json"
    } else {
        "text/html"
    };
    let response = engine
        .http
        .get(format!("{}{path}", engine.url))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn each_customer_sees_exactly_its_own_incidents_and_cases() {
    let dir = TestDir::new(
        &config(),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    // contoso and fabrikam report the same outage (one incident); northwind another.
    let summaries = [
        "contoso: blob uploads 503, our tenant 7781",
        "fabrikam: same 503s on storage",
        "northwind: sqldb timeouts",
        "fabrikam: SR C question about quotas",
    ];
    let (status, a) = engine
        .post(
            "/api/v1/cri",
            &report("contoso", "storage", "china-east", summaries[0]),
        )
        .await;
    assert_eq!(status, 201, "{a}");
    let (_, b) = engine
        .post(
            "/api/v1/cri",
            &report("fabrikam", "storage", "china-east", summaries[1]),
        )
        .await;
    assert_eq!(
        a["incident_id"], b["incident_id"],
        "one incident, two customers"
    );
    let (_, c) = engine
        .post(
            "/api/v1/cri",
            &report("northwind", "sqldb", "china-north", summaries[2]),
        )
        .await;
    assert_ne!(c["incident_id"], a["incident_id"]);
    let mut own = report("fabrikam", "sqldb", "china-east", summaries[3]);
    own["by"] = json!("sam");
    own["sr_severity"] = json!("C");
    let (status, d) = engine.post("/api/v1/cases", &own).await;
    assert_eq!(status, 201, "{d}");
    let fabrikam_case = d["id"].as_i64().unwrap();
    let post = |path: String, body: Value| {
        let engine = &engine;
        async move {
            let (status, body) = engine.post(&path, &body).await;
            assert!(status == 200 || status == 201, "{path}: {status} {body}");
        }
    };
    post(
        format!("/api/v1/cases/{fabrikam_case}/respond"),
        json!({ "by": "sam", "text": "internal: ask the quota team" }),
    )
    .await;
    post(
        format!("/api/v1/cases/{fabrikam_case}/updates"),
        json!({ "by": "sam", "text": "internal: quota team says tenant is fine" }),
    )
    .await;
    post(
        format!("/api/v1/cases/{fabrikam_case}/updates"),
        json!({ "by": "sam", "text": "Your quota is 5 TB; raise it in the portal.", "notify_customer": true }),
    )
    .await;

    let url = engine.url.clone();
    let shared = a["incident_id"].as_i64().unwrap();
    let expected = [
        (
            "contoso",
            vec![shared],
            vec![a["case_id"].as_i64().unwrap()],
        ),
        (
            "fabrikam",
            vec![shared],
            vec![fabrikam_case, b["case_id"].as_i64().unwrap()],
        ),
        (
            "northwind",
            vec![c["incident_id"].as_i64().unwrap()],
            vec![c["case_id"].as_i64().unwrap()],
        ),
    ];
    let mut links = Vec::new();
    for (customer, incidents, cases) in &expected {
        let path = status_link(&dir, &url, customer).await;
        let (status, kind, text) = fetch(&engine, &path, true).await;
        assert_eq!(status, 200, "{text}");
        assert!(kind.starts_with("application/json"), "{kind}");
        let page: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(page["customer"], *customer);
        assert_eq!(ids(&page["incidents"]), *incidents, "{customer}: {page}");
        assert_eq!(ids(&page["cases"]), *cases, "{customer}: {page}");
        for other in ["contoso", "fabrikam", "northwind"] {
            if other != *customer {
                assert!(!text.contains(other), "{customer} sees {other}: {text}");
            }
        }
        for written in summaries.iter().chain(&["internal:"]) {
            assert!(
                !text.contains(written),
                "{customer} sees {written:?}: {text}"
            );
        }
        let (status, kind, html) = fetch(&engine, &path, false).await;
        assert_eq!(status, 200);
        assert!(kind.starts_with("text/html"), "{kind}");
        assert!(html.contains("width=device-width"), "readable on a phone");
        for id in incidents {
            assert!(html.contains(&format!("Incident {id}")), "{html}");
        }
        for other in ["contoso", "fabrikam", "northwind"] {
            if other != *customer {
                assert!(!html.contains(other), "{customer} sees {other}: {html}");
            }
        }
        links.push(path);
    }

    // What a customer sees of the shared incident: its own service and region, and its
    // own case; of its case, the deadline and the update sent to it alone.
    let (_, _, text) = fetch(&engine, &links[1], true).await;
    let fabrikam: Value = serde_json::from_str(&text).unwrap();
    let incident = &fabrikam["incidents"][0];
    assert_eq!(incident["services"], json!(["storage"]));
    assert_eq!(incident["regions"], json!(["china-east"]));
    assert_eq!(incident["status"], "triggered");
    assert_eq!(incident["cases"], json!([b["case_id"]]));
    let case = &fabrikam["cases"][0];
    assert_eq!(case["sr_severity"], "C");
    assert!(case["respond_by"].is_string() && case["responded_at"].is_string());
    let updates: Vec<&str> = case["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["text"].as_str().unwrap())
        .collect();
    assert_eq!(updates, ["Your quota is 5 TB; raise it in the portal."]);
    let (_, _, html) = fetch(&engine, &links[1], false).await;
    assert!(html.contains("Your quota is 5 TB; raise it in the portal."));

    // A changed token, or contoso's signature on fabrikam's name, is a 404.
    let contoso = links[0].trim_start_matches("/status/");
    let (_, signature) = contoso.split_once('.').unwrap();
    let fabrikam_name = links[1]
        .trim_start_matches("/status/")
        .split_once('.')
        .unwrap()
        .0;
    let moved = format!("/status/{fabrikam_name}.{signature}");
    let mut changed = links[0].clone();
    let last = changed.pop().unwrap();
    changed.push(if last == 'A' { 'B' } else { 'A' });
    for path in [moved, changed, "/status/contoso".to_string()] {
        let (status, _, text) = fetch(&engine, &path, true).await;
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("storage"), "{text}");
        let (status, _, _) = fetch(&engine, &path, false).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, body) = engine.get("/api/v1/customers/initech/status-link").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no customer \"initech\" in the catalog");

    // Resolved, the incident leaves the page; the cases stay, as they are.
    post(
        format!("/api/v1/incidents/{shared}/resolve"),
        json!({ "by": "carol" }),
    )
    .await;
    let (_, _, text) = fetch(&engine, &links[0], true).await;
    let contoso: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ids(&contoso["incidents"]), Vec::<i64>::new());
    assert_eq!(ids(&contoso["cases"]), [a["case_id"].as_i64().unwrap()]);
    engine.stop().await;
}

/// With auth on, a link is made by support (the responder role), never by a viewer; the
/// page itself needs no token.
#[tokio::test]
async fn a_status_link_needs_the_responder_role_and_the_page_none() {
    let dir = TestDir::new(
        &config().replace("server: {", "server: { auth: { tokens_file: tokens }, "),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("tokens", "vic viewer v-token\nsam responder s-token\n");
    let engine = TestEngine::start(&dir).await;
    let link = |token: &'static str| {
        let engine = &engine;
        async move {
            engine
                .http
                .get(format!(
                    "{}/api/v1/customers/contoso/status-link",
                    engine.url
                ))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(link("v-token").await.status().as_u16(), 403);
    let made: Value = link("s-token").await.json().await.unwrap();
    let path = made["url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://tocsin.test")
        .to_string();
    let (status, _, text) = fetch(&engine, &path, true).await;
    assert_eq!(status, 200, "{text}");
    engine.stop().await;
}
