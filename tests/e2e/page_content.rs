//! What a page says, as a person receives it by email from a real SMTP server (aiosmtpd):
//! what is broken (newest first, with the alert's description, runbook and source link),
//! why it is this severity in words, the ack and dashboard links, who else was paged and
//! when, in the recipient's zone; and a raised severity that reaches someone new reads as
//! the whole story, not just "SEVERITY RAISED".

use serde_json::json;

use crate::support::paging::{header, parts, wait_count, wait_written, Smtpd};
use crate::support::{TestDir, TestEngine, CATALOG};

/// Sev 2 pages alice (on the `primary` schedule, in New York); Sev 1 pages bob (his own
/// zone, Shanghai). The alert rule adds a runbook link of its own.
fn config(smtpd: &Smtpd) -> String {
    format!(
        r#"{CATALOG}
  customers_names: []
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: alice, email: alice@example.com }}
  - {{ id: bob, email: bob@example.com, timezone: Asia/Shanghai }}
schedules:
  - {{ name: primary, timezone: America/New_York, handoff: '0 0 9 * * Mon', start: 2026-01-05T09:00:00Z, participants: [alice] }}
escalation_policies:
  - name: storage
    levels:
      - {{ after: 0s, notify: [ "schedule:primary" ] }}
  - name: major
    levels:
      - {{ after: 0s, notify: [ "responder:bob" ] }}
routes:
  - {{ match: [ 'severity="1"' ], policy: major }}
  - {{ match: [ 'severity=~"0|2"' ], policy: storage }}
notifiers:
  email: {{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: none, timeout: 5s }} }}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#,
        smtpd.port
    )
    .replace("  customers_names: []\n", "")
}

const RULES: &str = r#"
groups:
  - name: alerts
    rules:
      - name: StorageDown
        match: [ 'source="alert"', 'alertname="StorageDown"' ]
        impact: { kind: outage, sla_breach: true }
        summary: "storage down in {{ labels.region }}"
        annotations:
          runbook_url: "https://runbooks.example/storage/{{ labels.region }}"
"#;

fn alert(region: &str) -> serde_json::Value {
    json!({
        "labels": { "alertname": "StorageDown", "service": "storage", "region": region },
        "annotations": { "description": format!("5xx above 5% on every front end in {region}") },
        "generatorURL": format!("http://prometheus.test:9090/graph?g0.expr=up%7Bregion%3D%22{region}%22%7D"),
    })
}

/// The text part of the one message sent to `to`.
fn text_to(smtpd: &Smtpd, to: &str) -> (String, String, String) {
    let messages: Vec<String> = smtpd
        .messages()
        .into_iter()
        .filter(|m| header(m, "X-RcptTo").as_deref() == Some(to))
        .collect();
    assert_eq!(messages.len(), 1, "messages to {to}: {messages:?}");
    let message = &messages[0];
    let parts = parts(message);
    let text = parts
        .iter()
        .find(|(kind, _)| kind.starts_with("text/plain"))
        .map(|(_, t)| t.clone())
        .expect("a text part");
    let html = parts
        .iter()
        .find(|(kind, _)| kind.starts_with("text/html"))
        .map(|(_, t)| t.clone())
        .expect("an HTML part");
    (header(message, "Subject").unwrap_or_default(), text, html)
}

#[tokio::test]
async fn a_page_says_what_broke_why_and_who_else_was_paged_in_the_readers_zone() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let dir = TestDir::new(&config(&smtpd), &[("storage.yaml", RULES)]);
    let engine = TestEngine::start(&dir).await;

    // One region down: Sev 2 (the SLA is breached), alice is paged.
    let (status, _) = engine
        .post("/api/v2/alerts", &json!([alert("china-east")]))
        .await;
    assert_eq!(status, 200);
    wait_count(&engine, "email", "delivered", 1).await;
    let (subject, text, html) = text_to(&smtpd, "alice@example.com");
    assert_eq!(subject, "[Sev 2] storage down in china-east");
    for needle in [
        "You are paged for Sev 2 incident #1.",
        "Why:       Sev 2: SLA breached, hitting 2 customers (contoso and fabrikam) in 1 region \
         (china-east) of 1 service (storage); decided by rule StorageDown (outage, SLA breach)",
        "- storage down in china-east (outage, storage, china-east), since ",
        "  5xx above 5% on every front end in china-east",
        "  Runbook: https://runbooks.example/storage/china-east",
        "  Alert source: http://prometheus.test:9090/graph?g0.expr=up%7Bregion%3D%22china-east%22%7D",
        "Acknowledge: http://tocsin.test/ack/",
        "Dashboard:   http://tocsin.test/incidents/1",
        "Nobody else has been paged about it.",
        // Alice has no zone of her own: the schedule that paged her is in New York.
        "Times are in America/New_York.",
    ] {
        assert!(text.contains(needle), "the text lacks {needle:?}:\n{text}");
    }
    assert!(
        regex_like_time(&text, "Opened:    ", "EST (America/New_York)"),
        "{text}"
    );
    assert!(
        html.contains(r#"<a href="https://runbooks.example/storage/china-east">"#),
        "{html}"
    );

    // A second region: Sev 1, re-routed to bob, who never heard of the incident.
    let (status, _) = engine
        .post("/api/v2/alerts", &json!([alert("china-north")]))
        .await;
    assert_eq!(status, 200);
    wait_count(&engine, "email", "delivered", 2).await;
    wait_written(&engine, 1, "delivered", 2).await;
    let (subject, text, _) = text_to(&smtpd, "bob@example.com");
    assert_eq!(
        subject,
        "[Sev 1] storage down in china-east (raised from Sev 2)"
    );
    let alice_line = text
        .lines()
        .find(|l| l.starts_with("- alice by email at "))
        .unwrap_or_else(|| panic!("alice is not among those paged:\n{text}"));
    assert!(
        alice_line.ends_with("CST (Asia/Shanghai) (triggered, level 0)"),
        "{alice_line}"
    );
    let newest = text
        .find("- storage down in china-north")
        .expect("china-north");
    let oldest = text
        .find("- storage down in china-east")
        .expect("china-east");
    assert!(newest < oldest, "impacts are not newest first:\n{text}");
    for needle in [
        "You are paged for Sev 1 incident #1: its severity rose to Sev 1.",
        "What changed: Severity rose from Sev 2 to Sev 1, raised by the newest impact: storage \
         down in china-north (rule StorageDown; storage, china-north). Paged before and not \
         acknowledged: alice (email, ",
        "Why:       Sev 1: major impact (outage or SLA breach), hitting 2 customers",
        "  Runbook: https://runbooks.example/storage/china-north",
        "Times are in Asia/Shanghai.",
    ] {
        assert!(text.contains(needle), "the text lacks {needle:?}:\n{text}");
    }

    // The API keeps each impact's annotations, the alert's source link among them.
    let (status, detail) = engine.get("/api/v1/incidents/1").await;
    assert_eq!(status, 200);
    let annotations = &detail["impacts"][0]["annotations"];
    assert_eq!(
        annotations["runbook_url"],
        "https://runbooks.example/storage/china-east"
    );
    assert_eq!(
        annotations["description"],
        "5xx above 5% on every front end in china-east"
    );
    assert_eq!(
        annotations["generatorURL"],
        "http://prometheus.test:9090/graph?g0.expr=up%7Bregion%3D%22china-east%22%7D"
    );
    // The dashboard shows each impact's description and links.
    let html = engine
        .http
        .get(format!("{}/incidents/1", engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        // As a browser reads the attribute: the dashboard escapes `/` too.
        .replace("&#x2f;", "/");
    for needle in [
        "5xx above 5% on every front end in china-north",
        r#"<a class="annotation-link" href="https://runbooks.example/storage/china-east" rel="noopener noreferrer">Runbook</a>"#,
        r#"rel="noopener noreferrer">Alert source</a>"#,
    ] {
        assert!(
            html.contains(needle),
            "the dashboard lacks {needle:?}:\n{html}"
        );
    }
    engine.stop().await;
}

/// Whether the line starting with `prefix` holds a time to the second, then `zone`.
fn regex_like_time(text: &str, prefix: &str, zone: &str) -> bool {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .is_some_and(|rest| {
            let (time, tail) = rest.split_at(rest.len().min(19));
            chrono::NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S").is_ok()
                && tail.trim() == zone
        })
}
