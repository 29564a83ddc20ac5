//! Per-person notification rules (`responders[].notify`) end to end, with a real HTTP
//! receiver for the person's chat webhook and aiosmtpd for their email: the webhook at
//! once, the email two minutes later only while nobody has acknowledged (on tokio's paused
//! clock), the waiting step kept across a crash of the real binary, and `tocsin check`
//! naming a step through a channel the person does not have.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::paging::{header, storage_down, Answer, FrozenEngine, Receiver, Smtpd};
use crate::support::{eventually, free_port, run_tocsin, EngineProcess, TestDir, CATALOG};
use tocsin::engine::Input;

/// Alice is on the `oncall-slack` webhook at once and by email after `later`; bob (no
/// rules) is level 1, half an hour on.
fn config(receiver: &Receiver, smtpd: &Smtpd, later: &str) -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - id: alice
    email: alice@example.com
    webhook: oncall-slack
    notify:
      - {{ after: 0s, via: "webhook:oncall-slack" }}
      - {{ after: {later}, via: email }}
  - {{ id: bob, email: bob@example.com }}
escalation_policies:
  - name: storage
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
      - {{ after: 30m, notify: [ "responder:bob" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: storage }}
notifiers:
  email: {{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {port}, tls: none, timeout: 5s }} }}
  webhooks:
    - {{ name: oncall-slack, url: "{url}", timeout: 5s }}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#,
        port = smtpd.port,
        url = receiver.url,
    )
}

/// (event, recipient) of each page the receiver got, once per delivery id (a page in
/// flight at a crash goes again after the restart, with its id).
fn events(receiver: &Receiver) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    receiver
        .received()
        .iter()
        .filter(|r| seen.insert(r.header("X-Tocsin-Delivery")))
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["event"].as_str().unwrap_or_default().to_string(),
                body["recipient"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn mail_to(smtpd: &Smtpd) -> Vec<(String, String)> {
    smtpd
        .messages()
        .iter()
        .map(|m| {
            (
                header(m, "X-RcptTo").unwrap_or_default(),
                header(m, "Subject").unwrap_or_default(),
            )
        })
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[tokio::test]
async fn the_webhook_pages_at_once_and_the_email_only_after_two_unacknowledged_minutes() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver, &smtpd, "2m"),
        &[("default.yaml", &crate::support::default_rules())],
    );
    // The peers start in real time; from here on the clock moves only when told.
    tokio::time::pause();
    let start = chrono::Utc::now();
    let e = FrozenEngine::start_in(dir, start).await;
    let id = e.signal(storage_down()).await;
    e.settle().await;
    assert_eq!(events(&receiver), vec![pair("triggered", "alice")]);
    assert!(mail_to(&smtpd).is_empty(), "{:?}", mail_to(&smtpd));

    // A minute on: still only the webhook.
    e.advance_minutes(1).await;
    e.settle().await;
    assert!(mail_to(&smtpd).is_empty(), "{:?}", mail_to(&smtpd));

    // Two minutes on and nobody acknowledged: the email goes, and only to alice.
    e.advance_minutes(1).await;
    e.settle().await;
    assert_eq!(
        mail_to(&smtpd),
        vec![pair(
            "alice@example.com",
            "[Sev 2] storage down in china-east"
        )]
    );
    assert_eq!(events(&receiver), vec![pair("triggered", "alice")]);
    let timeline = e.engine.running.state.store.timeline_of(id).await.unwrap();
    let said: Vec<&str> = timeline.iter().map(|t| t.message.as_str()).collect();
    assert!(
        said.contains(&"alice's notification rules: email after 2m unless acknowledged first"),
        "{said:#?}"
    );
    assert!(
        said.contains(&"triggered: alice (email), the step after 2m: not acknowledged by then"),
        "{said:#?}"
    );

    // Her acknowledgement and the resolution reach her on both channels she was paged on.
    e.send(Input::Ack {
        incident_id: id,
        by: "alice".into(),
    })
    .await;
    e.settle().await;
    assert_eq!(
        events(&receiver),
        vec![pair("triggered", "alice"), pair("acknowledged", "alice")]
    );
    assert_eq!(mail_to(&smtpd).len(), 2, "{:?}", mail_to(&smtpd));
    e.stop().await;
}

#[tokio::test]
async fn an_acknowledgement_before_two_minutes_means_no_email_at_all() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver, &smtpd, "2m"),
        &[("default.yaml", &crate::support::default_rules())],
    );
    // The peers start in real time; from here on the clock moves only when told.
    tokio::time::pause();
    let start = chrono::Utc::now();
    let e = FrozenEngine::start_in(dir, start).await;
    let id = e.signal(storage_down()).await;
    e.advance_minutes(1).await;
    e.send(Input::Ack {
        incident_id: id,
        by: "alice".into(),
    })
    .await;
    // Well past her email step (and short of the ack-less level 1 at 30 minutes).
    e.advance_minutes(10).await;
    e.send(Input::Resolve {
        incident_id: id,
        by: "alice".into(),
        note: None,
    })
    .await;
    e.settle().await;
    assert_eq!(
        events(&receiver),
        vec![
            pair("triggered", "alice"),
            pair("acknowledged", "alice"),
            pair("resolved", "alice"),
        ]
    );
    assert!(mail_to(&smtpd).is_empty(), "{:?}", mail_to(&smtpd));
    let kinds = e.timeline_kinds(id).await;
    assert!(kinds.contains(&"steps_waiting".to_string()), "{kinds:?}");
    e.stop().await;
}

#[tokio::test]
async fn a_silence_made_after_the_page_holds_the_email_step_until_it_ends() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver, &smtpd, "2m"),
        &[("default.yaml", &crate::support::default_rules())],
    );
    tokio::time::pause();
    let start = chrono::Utc::now();
    let e = FrozenEngine::start_in(dir, start).await;
    e.signal(storage_down()).await;
    e.advance_minutes(1).await;
    // Someone silences storage for the next four minutes (until minute 5).
    let silence = tocsin::paging::Silence {
        id: "storage-work".into(),
        matchers: vec!["service=\"storage\"".parse().unwrap()],
        starts_at: e.clock.now(),
        ends_at: start + chrono::Duration::minutes(5),
        created_by: "bob".into(),
        comment: "failing over storage".into(),
        updated_at: e.clock.now(),
    };
    e.send(Input::PutSilence(silence)).await;
    e.advance_minutes(3).await;
    e.settle().await;
    assert!(mail_to(&smtpd).is_empty(), "{:?}", mail_to(&smtpd));
    // The silence ends at minute 5, and the email goes then.
    e.advance_minutes(1).await;
    e.settle().await;
    assert_eq!(
        mail_to(&smtpd),
        vec![pair(
            "alice@example.com",
            "[Sev 2] storage down in china-east"
        )]
    );
    let pages = e.pages(1).await;
    let email = pages
        .iter()
        .find(|p| p.page.recipient.channel == tocsin::paging::Channel::Email)
        .expect("the email page");
    assert_eq!((email.page.created_at - start).num_minutes(), 5);
    e.stop().await;
}

#[tokio::test]
async fn a_waiting_email_step_goes_out_after_the_engine_crashed_and_started_again() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver, &smtpd, "4s"),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = reqwest::Client::new();
    // No later than the page is made (the engine makes it while it takes the alert).
    let paged_at = tokio::time::Instant::now();
    let status = http
        .post(format!("{}/api/v2/alerts", engine.url))
        .json(
            &json!([{ "labels": { "alertname": "StorageDown", "severity": "critical",
            "service": "storage", "region": "china-east" },
            "annotations": { "summary": "storage down in china-east" } }]),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    eventually(Duration::from_secs(10), || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await
    .expect("the webhook page");
    // A crash before the email step's time, with the step waiting in the store.
    engine.kill();
    assert!(
        paged_at.elapsed() < Duration::from_secs(4),
        "the test needs the crash before the step"
    );
    assert!(mail_to(&smtpd).is_empty(), "{:?}", mail_to(&smtpd));

    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let mail = eventually(Duration::from_secs(20), || async {
        let mail = mail_to(&smtpd);
        (!mail.is_empty()).then_some(mail)
    })
    .await
    .expect("the email step after the restart");
    assert_eq!(
        mail,
        vec![pair(
            "alice@example.com",
            "[Sev 2] storage down in china-east"
        )]
    );

    // The webhook is not paged again.
    assert_eq!(events(&receiver), vec![pair("triggered", "alice")]);
    engine.kill();
}

#[tokio::test]
async fn check_names_a_step_through_a_channel_the_person_does_not_have() {
    let dir = TestDir::new(
        r#"
responders:
  - { id: bob, email: bob@example.com }
  - id: alice
    email: alice@example.com
    webhook: x
    notify:
      - { after: 0s, via: "webhook:x" }
      - { after: 2m, via: sms }
  - { id: carol, email: carol@example.com, notify: [] }
notifiers:
  email: { from: tocsin@example.com, file: { dir: outbox } }
  webhooks:
    - { name: x, url: "http://127.0.0.1:9/hook" }
"#,
        &[],
    );
    let (code, out, err) = run_tocsin(dir.path(), &["check", "--config", "config.yaml"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains(
            "config.yaml:9:27: responders[1].notify[1].via: alice has no channel \"sms\"; \
             alice has email, webhook:x"
        ),
        "{said}"
    );
    assert!(
        said.contains(
            "responders[2].notify: no steps, so carol would never be paged; leave notify: out \
             to reach carol on every channel at once"
        ),
        "{said}"
    );
}
