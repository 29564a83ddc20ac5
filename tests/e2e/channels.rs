//! The shipped webhook formats, sent by the engine to real HTTP receivers: each body holds
//! what its product documents as required (Slack incoming webhooks and Block Kit, a Teams
//! Workflows webhook with an Adaptive Card, PagerDuty Events API v2, ntfy's JSON publish),
//! the page's context, and the signed ack link where the product shows one.

use serde_json::{json, Value};

use crate::support::paging::{open_incident, wait_count, Answer, Receiver};
use crate::support::{TestDir, TestEngine, CATALOG};

const ROUTING_KEY: &str = "R0UTINGKEY0123456789abcdef012345";

fn config(urls: [&str; 5]) -> String {
    let [slack, teams, pagerduty, ntfy, tocsin] = urls;
    format!(
        r#"{CATALOG}
server: {{ external_url: "https://tocsin.test" }}
escalation_policies:
  - name: storage
    levels:
      - {{ after: 0s, notify: [ "webhook:slack", "webhook:teams", "webhook:pagerduty", "webhook:ntfy", "webhook:tocsin" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: storage }}
notifiers:
  webhooks:
    - {{ name: slack, url: "{slack}", format: slack }}
    - {{ name: teams, url: "{teams}", format: teams }}
    - {{ name: pagerduty, url: "{pagerduty}", format: pagerduty, routing_key_file: pd-key }}
    - {{ name: ntfy, url: "{ntfy}", format: ntfy, topic: storage-oncall }}
    - {{ name: tocsin, url: "{tocsin}" }}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#
    )
}

fn bodies(receiver: &Receiver) -> Vec<Value> {
    receiver
        .received()
        .iter()
        .map(|r| {
            assert_eq!(
                r.header("content-type").as_deref(),
                Some("application/json")
            );
            serde_json::from_slice(&r.body).expect("a JSON body")
        })
        .collect()
}

/// Slack: `text` (the fallback a message with blocks needs), blocks of known types within
/// Block Kit's limits, a colour bar, and buttons with a url.
fn check_slack(body: &Value) {
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(
        body["attachments"][0]["color"], "#f57c00",
        "Sev 2 is orange"
    );
    let mut blocks: Vec<Value> = body["blocks"].as_array().unwrap().clone();
    blocks.extend(body["attachments"][0]["blocks"].as_array().unwrap().clone());
    let mut buttons = Vec::new();
    for block in &blocks {
        match block["type"].as_str().unwrap() {
            "header" => assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150),
            "section" => {
                let text = block["text"]["text"].as_str().unwrap_or_default();
                assert!(text.chars().count() <= 3000);
                assert!(block["text"].is_object() || block["fields"].is_array());
            }
            "actions" => buttons.extend(block["elements"].as_array().unwrap().clone()),
            "context" => {}
            other => panic!("Block Kit has no block {other:?} here"),
        }
    }
    for button in &buttons {
        assert_eq!(button["type"], "button");
        assert_eq!(button["text"]["type"], "plain_text");
        assert!(button["url"].as_str().unwrap().starts_with("https://"));
    }
    if body["text"].as_str().unwrap().contains("ACKNOWLEDGED")
        || body["text"].as_str().unwrap().contains("RESOLVED")
    {
        // Nothing left to acknowledge.
        assert!(buttons.iter().all(|b| b["text"]["text"] != "Acknowledge"));
        return;
    }
    let ack = &buttons[0];
    assert_eq!(ack["text"]["type"], "plain_text");
    assert_eq!(ack["text"]["text"], "Acknowledge");
    assert!(ack["url"]
        .as_str()
        .unwrap()
        .starts_with("https://tocsin.test/ack/"));
}

#[tokio::test]
async fn each_format_sends_what_its_product_requires() {
    let receivers = [
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(202)).await,
        Receiver::start(vec![], Answer::Status(202)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
        Receiver::start(vec![], Answer::Status(200)).await,
    ];
    let urls = [0, 1, 2, 3, 4].map(|i| receivers[i].url.as_str());
    let dir = TestDir::new(
        &config(urls),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("pd-key", &format!("{ROUTING_KEY}\n"));
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 5).await;
    let [slack, teams, pagerduty, ntfy, tocsin] = &receivers;

    let slack = bodies(slack);
    assert_eq!(slack.len(), 1);
    check_slack(&slack[0]);
    assert_eq!(slack[0]["text"], "[Sev 2] storage down in china-east");
    assert!(
        slack[0].to_string().contains("*Why:* Sev 2: SLA breached"),
        "{}",
        slack[0]
    );

    let teams = bodies(teams);
    assert_eq!(teams[0]["type"], "message");
    let attachment = &teams[0]["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(
        card["body"][0]["text"],
        "[Sev 2] storage down in china-east"
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(card["actions"][0]["title"], "Acknowledge");
    assert!(card["actions"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://tocsin.test/ack/"));

    let ntfy = bodies(ntfy);
    assert_eq!(ntfy[0]["topic"], "storage-oncall");
    assert_eq!(ntfy[0]["title"], "[Sev 2] storage down in china-east");
    assert_eq!(ntfy[0]["priority"], 4);
    assert!(ntfy[0]["click"]
        .as_str()
        .unwrap()
        .starts_with("https://tocsin.test/ack/"));
    assert_eq!(ntfy[0]["actions"][0]["action"], "view");
    assert_eq!(ntfy[0]["actions"][0]["url"], ntfy[0]["click"]);

    // tocsin's own body is the payload, now with the page context in it.
    let tocsin = bodies(tocsin);
    assert_eq!(tocsin[0]["event"], "triggered");
    assert_eq!(
        tocsin[0]["context"]["subject"],
        "[Sev 2] storage down in china-east"
    );
    assert_eq!(
        tocsin[0]["context"]["impacts"][0]["summary"],
        "storage down in china-east"
    );

    // PagerDuty: trigger, then acknowledge and resolve on the same dedup key.
    let (status, _) = engine
        .post(
            &format!("/api/v1/incidents/{id}/ack"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 200);
    wait_count(&engine, "webhook", "delivered", 10).await;
    let (status, _) = engine
        .post(
            &format!("/api/v1/incidents/{id}/resolve"),
            &json!({ "by": "alice" }),
        )
        .await;
    assert_eq!(status, 200);
    wait_count(&engine, "webhook", "delivered", 15).await;
    let events = bodies(pagerduty);
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["event_action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
    for event in &events {
        assert_eq!(event["routing_key"], ROUTING_KEY);
        assert_eq!(event["dedup_key"], format!("tocsin-{id}"));
    }
    let trigger = &events[0];
    let summary = trigger["payload"]["summary"].as_str().unwrap();
    assert!(!summary.is_empty() && summary.chars().count() <= 1024);
    assert_eq!(trigger["payload"]["source"], "tocsin");
    assert_eq!(trigger["payload"]["severity"], "error");
    assert!(chrono::DateTime::parse_from_rfc3339(
        trigger["payload"]["timestamp"].as_str().unwrap()
    )
    .is_ok());
    assert_eq!(
        trigger["links"][0]["href"],
        format!("https://tocsin.test/incidents/{id}")
    );
    assert_eq!(
        trigger["payload"]["custom_details"]["regions"],
        json!(["china-east"])
    );
    // Slack hears of the ack and the resolution too; every message stays valid.
    let slack = bodies(&receivers[0]);
    assert_eq!(slack.len(), 3);
    slack.iter().for_each(check_slack);
    assert_eq!(
        slack[2]["text"],
        "[Sev 2] RESOLVED: storage down in china-east"
    );
    engine.stop().await;
}

/// A webhook with its own templates: `tocsin check` renders them against a sample page and
/// names an error by file, line and column; `tocsin template render` prints what would be
/// sent; the engine sends the rendered body and header to a real receiver.
#[tokio::test]
async fn a_webhook_template_is_checked_rendered_and_sent() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let config = format!(
        r#"{CATALOG}
server: {{ external_url: "https://tocsin.test" }}
escalation_policies:
  - {{ name: storage, levels: [ {{ after: 0s, notify: [ "webhook:chat" ] }} ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: storage }}
notifiers:
  webhooks:
    - name: chat
      url: "{}"
      template:
        body: {{ file: chat.json.j2 }}
        headers: {{ X-Severity: "sev{{{{ page.severity }}}}" }}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#,
        receiver.url
    );
    let dir = TestDir::new(
        &config,
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write(
        "chat.json.j2",
        "{\"title\": {{ page.subject }},\n \"why\": {{ page.severity_reason | nosuch }}}\n",
    );
    let (code, _, stderr) =
        crate::support::run_tocsin(dir.path(), &["check", "-c", "config.yaml"]).await;
    assert_eq!(code, 1, "{stderr}");
    let template = dir.path().join("chat.json.j2");
    assert!(
        stderr.contains(&format!(
            "{}:2:35: notifiers.webhooks[0].template.body: unknown filter",
            template.display()
        )),
        "{stderr}"
    );

    dir.write(
        "chat.json.j2",
        "{\"title\": {{ page.subject }},\n \"why\": {{ page.severity_reason }},\n \
         \"ack\": {{ ack_url }}, \"impacts\": {{ page.impacts | length }}}\n",
    );
    let (code, stdout, stderr) =
        crate::support::run_tocsin(dir.path(), &["check", "-c", "config.yaml"]).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let (code, stdout, stderr) = crate::support::run_tocsin(
        dir.path(),
        &[
            "template",
            "render",
            "-c",
            "config.yaml",
            "--notifier",
            "chat",
            "--sample",
            "--event",
            "severity_raised",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("X-Severity: sev1"), "{stdout}");
    assert!(
        stdout.contains(r#""title": "[Sev 1] storage down in china-east (raised from Sev 2)""#),
        "{stdout}"
    );
    assert!(stdout.contains(r#""impacts": 2"#), "{stdout}");

    let engine = TestEngine::start(&dir).await;
    open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    let received = receiver.received();
    assert_eq!(received[0].header("x-severity").as_deref(), Some("sev2"));
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["title"], "[Sev 2] storage down in china-east");
    assert!(body["ack"]
        .as_str()
        .unwrap()
        .starts_with("https://tocsin.test/ack/"));
    assert_eq!(body["impacts"], 1);
    engine.stop().await;
}
