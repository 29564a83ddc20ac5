//! Notifier templates end to end: an email with its own subject, text and HTML templates
//! (inline and from a file) as aiosmtpd receives it, and `tocsin template render` printing
//! what the email notifier would send for an incident of a running engine (`--incident`),
//! for the sample incident (`--sample`) and for another event (`--event`).

use serde_json::json;

use crate::support::paging::{header, parts, wait_count, Smtpd};
use crate::support::{run_tocsin, TestDir, TestEngine, CATALOG};

/// The email notifier to aiosmtpd with its own templates: the subject and the text inline,
/// the HTML from `page.html.j2`.
fn config(smtpd: &Smtpd) -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "https://tocsin.test" }}
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - {{ name: storage, levels: [ {{ after: 0s, notify: [ "responder:alice" ] }} ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: storage }}
notifiers:
  email:
    from: tocsin@example.com
    smtp: {{ host: 127.0.0.1, port: {port}, tls: none, timeout: 5s }}
    template:
      subject: "{{{{ page.subject }}}} [{{{{ page.services | join(',') }}}}]"
      text: |
        {{{{ page.headline }}}}
        Why: {{{{ page.severity_reason }}}}
        Event: {{{{ event }}}}
        Ack: {{{{ ack_url }}}}
      html: {{ file: page.html.j2 }}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#,
        port = smtpd.port
    )
}

const HTML: &str = r#"<h1>{{ page.title }}</h1>
<p class="why">{{ page.severity_reason }}</p>
<ul>{% for i in page.impacts %}<li>{{ i.summary }}</li>{% endfor %}</ul>
<a href="{{ ack_url }}">Acknowledge</a>
"#;

fn dir(smtpd: &Smtpd) -> TestDir {
    let dir = TestDir::new(
        &config(smtpd),
        &[("default.yaml", &crate::support::default_rules())],
    );
    dir.write("page.html.j2", HTML);
    dir
}

/// Storage down in china-east, its summary with characters HTML must escape.
fn alert() -> serde_json::Value {
    json!([{
        "labels": { "alertname": "StorageDown", "severity": "critical", "service": "storage",
                    "region": "china-east" },
        "annotations": { "summary": "storage <down> & out in china-east" },
    }])
}

const WHY: &str = "Sev 2: SLA breached, hitting 2 customers (contoso and fabrikam) in 1 region \
                   (china-east) of 1 service (storage); decided by rule AlertCritical (outage, \
                   SLA breach)";

#[tokio::test]
async fn an_email_with_its_own_templates_arrives_rendered_at_a_real_smtp_server() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let dir = dir(&smtpd);
    let (code, out, err) = run_tocsin(dir.path(), &["check", "-c", "config.yaml"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let engine = TestEngine::start(&dir).await;
    let (status, _) = engine.post("/api/v2/alerts", &alert()).await;
    assert_eq!(status, 200);
    wait_count(&engine, "email", "delivered", 1).await;

    let messages = smtpd.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert_eq!(
        header(message, "X-RcptTo").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        header(message, "Subject").as_deref(),
        Some("[Sev 2] storage <down> & out in china-east [storage]")
    );
    let parts = parts(message);
    let part = |kind: &str| {
        parts
            .iter()
            .find(|(k, _)| k.starts_with(kind))
            .map(|(_, t)| t.replace("\r\n", "\n"))
            .unwrap_or_else(|| panic!("no {kind} part in {parts:?}"))
    };
    let text = part("text/plain");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "You are paged for Sev 2 incident #1.");
    assert_eq!(lines[1], format!("Why: {WHY}"));
    assert_eq!(lines[2], "Event: triggered");
    assert!(
        lines[3].starts_with("Ack: https://tocsin.test/ack/"),
        "{text}"
    );
    let html = part("text/html");
    // The HTML part is the file's template, its values escaped.
    assert!(
        html.contains("<h1>storage &lt;down&gt; &amp; out in china-east</h1>"),
        "{html}"
    );
    assert!(
        html.contains(&format!("<p class=\"why\">{WHY}</p>")),
        "{html}"
    );
    assert!(
        html.contains("<li>storage &lt;down&gt; &amp; out in china-east</li>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"https://tocsin.test/ack/"),
        "{html}"
    );
    // The link in the mail acknowledges the incident (by a POST, as its confirm page does).
    let ack = lines[3].trim_start_matches("Ack: ");
    let path = ack.trim_start_matches("https://tocsin.test");
    let response = engine
        .http
        .post(format!("{}{path}", engine.url))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let (_, incident) = engine.get("/api/v1/incidents/1").await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], "alice");
    engine.stop().await;
}

#[tokio::test]
async fn template_render_prints_the_email_for_a_running_engines_incident_and_the_sample() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let dir = dir(&smtpd);
    let engine = TestEngine::start(&dir).await;
    let (status, _) = engine.post("/api/v2/alerts", &alert()).await;
    assert_eq!(status, 200);
    wait_count(&engine, "email", "delivered", 1).await;

    let render = |extra: &[&str]| {
        let mut args = vec![
            "template",
            "render",
            "-c",
            "config.yaml",
            "--notifier",
            "email",
            "--url",
            &engine.url,
        ];
        args.extend_from_slice(extra);
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let cwd = dir.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tocsin(&cwd, &args).await
        }
    };

    // The engine's incident 1, as the page for its trigger.
    let (code, out, err) = render(&["--incident", "1"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        header(&out, "Subject").as_deref(),
        Some("[Sev 2] storage <down> & out in china-east [storage]"),
        "{out}"
    );
    let printed = parts(&out);
    let text = &printed
        .iter()
        .find(|(k, _)| k.starts_with("text/plain"))
        .expect("a text part")
        .1;
    assert!(
        text.contains("You are paged for Sev 2 incident #1.\nWhy: "),
        "{text}"
    );
    assert!(text.contains(&format!("Why: {WHY}")), "{text}");
    assert!(text.contains("Event: triggered"), "{text}");
    let html = &printed
        .iter()
        .find(|(k, _)| k.starts_with("text/html"))
        .expect("an HTML part")
        .1;
    assert!(
        html.contains("<h1>storage &lt;down&gt; &amp; out in china-east</h1>"),
        "{html}"
    );

    // The same incident as its resolution notice would read.
    let (code, out, err) = render(&["--incident", "1", "--event", "resolved"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        header(&out, "Subject").as_deref(),
        Some("[Sev 2] storage <down> & out in china-east (resolved) [storage]"),
        "{out}"
    );
    assert!(out.contains("Event: resolved"), "{out}");

    // An incident the engine does not have.
    let (code, _, err) = render(&["--incident", "99"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    // The sample incident, as a merge page.
    let (code, out, err) = render(&["--sample", "--event", "merged"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        header(&out, "Subject").as_deref(),
        Some("[Sev 1] storage down in china-east (merged) [storage]"),
        "{out}"
    );
    assert!(out.contains("Event: merged"), "{out}");

    // Nothing was sent by rendering: aiosmtpd still holds the one page.
    assert_eq!(smtpd.messages().len(), 1);
    engine.stop().await;
}
