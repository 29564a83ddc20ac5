//! Paging end to end: delivery to real receivers (aiosmtpd, an HTTP server, `.eml` files)
//! with real time and short backoffs. Who is paged when, on tokio's paused clock, is in
//! `paging_escalation.rs`.

use std::time::Duration;

use crate::support;
use crate::support::paging as paging_support;
use crate::support::paging::{
    count, delivery_config, header, open_incident, parts, storage_down, timeline, utc, wait_count,
    wait_written, Answer, Receiver, Smtpd,
};
use crate::support::{eventually, TestDir, TestEngine};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tocsin::engine::{Clock, Input};
use tocsin::store::{OutboxStatus, Store};

#[path = "paging_escalation.rs"]
mod escalation;

/// Monday 2026-03-02, 11:00 in Shanghai: inside business hours.
const MONDAY_MORNING: &str = "2026-03-02T03:00:00Z";

const FILE_EMAIL: &str = "{ from: tocsin@example.com, file: { dir: outbox } }";

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn a_real_smtp_server_receives_the_page_with_subject_parts_and_ack_link() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let email = format!(
        "{{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: none, timeout: 5s }} }}",
        smtpd.port
    );
    let config = delivery_config("responder:alice", "responder:alice", &email, "[]");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let messages = smtpd.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Delivered);
    // aiosmtpd's Mailbox handler records the envelope recipient.
    assert_eq!(
        header(message, "X-RcptTo").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(header(message, "To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        header(message, "From").as_deref(),
        Some("tocsin@example.com")
    );
    assert_eq!(
        header(message, "Subject").as_deref(),
        Some("[Sev 2] storage down in china-east")
    );
    assert_eq!(
        header(message, "X-Tocsin-Delivery").as_deref(),
        Some(stored.page.delivery_id.as_str())
    );
    let ack_url = stored.page.payload.ack_url.clone().expect("an ack link");
    assert!(ack_url.starts_with("http://tocsin.test/ack/"), "{ack_url}");
    let parts = parts(message);
    let kinds: Vec<&str> = parts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(kinds[0].starts_with("text/plain"), "{kinds:?}");
    assert!(kinds[1].starts_with("text/html"), "{kinds:?}");
    for (kind, text) in &parts {
        for needle in [
            ack_url.as_str(),
            "storage",
            "china-east",
            "contoso, fabrikam",
            &format!("http://tocsin.test/incidents/{id}"),
        ] {
            assert!(text.contains(needle), "{kind} lacks {needle}:\n{text}");
        }
    }
    let delivered: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivered")
        .map(|e| e.message)
        .collect();
    assert_eq!(
        delivered,
        vec!["triggered delivered to alice by email after 1 attempt"]
    );
    engine.stop().await;
}

#[tokio::test]
async fn starttls_against_a_server_without_it_fails_clearly_and_is_retried() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start(scratch.path()).await;
    let email = format!(
        "{{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: starttls, timeout: 5s }} }}",
        smtpd.port
    );
    let config = delivery_config("responder:alice", "responder:alice", &email, "[]");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "retry", 3).await;
    wait_written(&engine, id, "delivery_attempt", 3).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(
        stored.status,
        OutboxStatus::Pending,
        "still to be delivered"
    );
    assert!(stored.attempts >= 3, "attempts {}", stored.attempts);
    let error = stored.last_error.clone().unwrap_or_default();
    assert!(error.contains("does not offer STARTTLS"), "{error}");
    assert!(error.contains("alice@example.com"), "{error}");
    let attempts: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_attempt")
        .map(|e| e.message)
        .collect();
    assert!(attempts.len() >= 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|m| m.contains("STARTTLS")),
        "{attempts:?}"
    );
    assert_eq!(count(&engine, "email", "failed"), 0);
    assert_eq!(count(&engine, "email", "delivered"), 0);
    // Nothing was sent in plain text.
    assert!(smtpd.messages().is_empty());
    engine.stop().await;
}

#[tokio::test]
async fn a_webhook_failing_three_times_gets_one_delivery_id_four_times_and_valid_signatures() {
    let receiver = Receiver::start(vec![Answer::Status(500); 3], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", secret_file: secrets/hook, timeout: 5s, headers: {{ X-Team: storage }} }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    // The key is the file's content without its trailing newline.
    dir.write("secrets/hook", "s3cret\n");
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Delivered);
    assert_eq!(stored.attempts, 4);
    let got = receiver.received();
    assert_eq!(got.len(), 4);
    for request in &got {
        assert_eq!(
            request.header("x-tocsin-delivery").as_deref(),
            Some(stored.page.delivery_id.as_str())
        );
        assert_eq!(request.body, got[0].body, "the same bytes on every attempt");
        assert_eq!(
            request.header("x-tocsin-signature"),
            Some(hmac_hex(b"s3cret", &request.body))
        );
        assert_eq!(
            request.header("x-tocsin-event").as_deref(),
            Some("triggered")
        );
        assert_eq!(
            request.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(request.header("x-team").as_deref(), Some("storage"));
    }
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["version"], "1");
    assert_eq!(body["event"], "triggered");
    assert_eq!(body["incident"]["id"], id);
    assert_eq!(body["incident"]["severity"], 2);
    assert_eq!(body["incident"]["title"], "storage down in china-east");
    assert_eq!(body["escalation"]["policy"], "storage");
    assert_eq!(body["escalation"]["level"], 0);
    assert_eq!(body["recipient"], "webhook:hook");
    assert!(body["ack_url"]
        .as_str()
        .unwrap()
        .starts_with("http://tocsin.test/ack/"));

    let entries = timeline(&engine, id).await;
    let kinds = |kind: &str| -> Vec<String> {
        entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.message.clone())
            .collect()
    };
    assert_eq!(
        kinds("delivered"),
        vec!["triggered delivered to webhook:hook by webhook after 4 attempts"]
    );
    let attempts = kinds("delivery_attempt");
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(
        attempts.iter().all(|m| m.contains("HTTP 500")),
        "{attempts:?}"
    );
    assert!(
        entries.iter().all(|e| !e.message.contains("s3cret")),
        "the secret never reaches the timeline"
    );
    assert_eq!(count(&engine, "webhook", "retry"), 3);
    assert_eq!(count(&engine, "webhook", "delivered"), 1);
    let metrics = engine.running.metrics.render();
    assert!(
        metrics.contains("tocsin_page_delivery_seconds_count{channel=\"webhook\"} 1"),
        "{metrics}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_429_with_retry_after_waits_at_least_that_long() {
    let receiver = Receiver::start(
        vec![Answer::StatusWith(429, vec![("retry-after", "1")])],
        Answer::Status(200),
    )
    .await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let gap = got[1].at - got[0].at;
    // The backoff alone would be 100ms.
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert!(
        got[0].header("x-tocsin-signature").is_none(),
        "no secret, no signature"
    );
    let attempts: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_attempt")
        .map(|e| e.message)
        .collect();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].contains("HTTP 429"), "{attempts:?}");
    engine.stop().await;
}

#[tokio::test]
async fn a_receiver_hears_of_an_incident_in_order_even_while_a_page_is_retried() {
    // The triggered page meets a 503 and waits a second; the incident is resolved meanwhile.
    let receiver = Receiver::start(
        vec![Answer::StatusWith(503, vec![("retry-after", "1")])],
        Answer::Status(200),
    )
    .await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    engine
        .running
        .engine()
        .send(Input::Resolve {
            incident_id: id,
            by: "alice".into(),
            note: None,
        })
        .await
        .unwrap();
    wait_count(&engine, "webhook", "delivered", 2).await;

    let got = receiver.received();
    let events: Vec<String> = got
        .iter()
        .map(|r| r.header("x-tocsin-event").unwrap())
        .collect();
    assert_eq!(events, vec!["triggered", "triggered", "resolved"]);
    let ids: Vec<String> = got
        .iter()
        .map(|r| r.header("x-tocsin-delivery").unwrap())
        .collect();
    assert_eq!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2], "each page has its own delivery id");
    engine.stop().await;
}

/// A webhook secret file that is missing is refused at start and on a reload, naming the
/// file: pages are never sent unsigned, and never wait on a secret the engine lacks. The
/// secret in force meanwhile signs them.
#[tokio::test]
async fn a_missing_webhook_secret_is_refused_at_start_and_on_reload_and_the_old_one_signs() {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", secret_file: secrets/hook, timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let refused = tocsin::app::start(tocsin::app::Options {
        config_path: dir.config_path(),
        clock: Clock::System,
        listen: Some("127.0.0.1:0".into()),
    })
    .await
    .err()
    .expect("no start without the webhook secret")
    .to_string();
    assert!(
        refused.contains("config.yaml:")
            && refused.contains("webhook secret file \"secrets/hook\"")
            && refused.contains("does not exist"),
        "{refused}"
    );

    dir.write("secrets/hook", "0ld-key\n");
    let engine = TestEngine::start(&dir).await;
    open_incident(&engine).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].header("x-tocsin-signature"),
        Some(hmac_hex(b"0ld-key", &got[0].body))
    );
    // Gone while the engine runs: the reload is refused and the key in force stays.
    std::fs::remove_file(dir.path().join("secrets/hook")).unwrap();
    let (status, answer) = engine.post("/-/reload", &serde_json::json!({})).await;
    assert_eq!(status, 500, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("secrets/hook") && error.contains("does not exist"),
        "{answer}"
    );
    assert_eq!(
        engine.running.metrics.config_last_reload_successful.get(),
        0
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_400_is_final_and_the_next_level_is_paged_at_once() {
    let receiver = Receiver::start(vec![], Answer::Status(400)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 5s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "webhook", "failed", 1).await;
    // Level 1 is due an hour later, but the lost page moves escalation on now.
    wait_count(&engine, "email", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].status, OutboxStatus::Failed);
    assert_eq!(pages[0].attempts, 1, "a 400 is not retried");
    assert!(
        pages[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("400"),
        "{:?}",
        pages[0].last_error
    );
    assert_eq!(pages[1].page.event.as_str(), "escalated");
    assert_eq!(pages[1].page.recipient.id, "alice");
    assert_eq!(pages[1].page.level, Some(1));
    assert!(pages[1].page.created_at - pages[0].page.created_at < chrono::Duration::seconds(30));
    assert_eq!(pages[1].status, OutboxStatus::Delivered);
    let eml = dir
        .path()
        .join("outbox")
        .join(format!("{}.eml", pages[1].page.delivery_id));
    assert!(eml.exists(), "{} was written", eml.display());

    let failed: Vec<String> = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivery_failed")
        .map(|e| e.message)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].contains("webhook:hook") && failed[0].contains("HTTP 400"),
        "{failed:?}"
    );
    // Still exactly one request: final means final.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
    engine.stop().await;
}

#[tokio::test]
async fn the_default_config_writes_eml_files() {
    // config/tocsin.yaml and rules/default.yaml as shipped, in a folder of their own (their
    // relative paths then point inside it).
    let root = tempfile::tempdir().unwrap();
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(root.path().join("config")).unwrap();
    std::fs::create_dir_all(root.path().join("rules")).unwrap();
    std::fs::copy(
        manifest.join("config/tocsin.yaml"),
        root.path().join("config/tocsin.yaml"),
    )
    .unwrap();
    std::fs::copy(
        manifest.join("rules/default.yaml"),
        root.path().join("rules/default.yaml"),
    )
    .unwrap();
    let options = tocsin::app::Options {
        config_path: root.path().join("config/tocsin.yaml"),
        // Monday 11:00 in Shanghai: alice is on call in the default schedule.
        clock: Clock::tokio_at(utc(MONDAY_MORNING)),
        listen: Some("127.0.0.1:0".into()),
    };
    let running = tocsin::app::start(options).await.expect("engine starts");
    let reply = running
        .engine()
        .send(Input::Signals(vec![storage_down()]))
        .await
        .unwrap();
    let id = paging_support::incidents_of(reply)[0];
    let delivered = eventually(Duration::from_secs(20), || async {
        (running
            .metrics
            .pages_total
            .with_label_values(&["email", "delivered"])
            .get()
            >= 1)
            .then_some(())
    })
    .await;
    assert!(delivered.is_some(), "the page was not written");

    let stored = &running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.page.recipient.id, "alice");
    let outbox = root.path().join("data/outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files, vec![format!("{}.eml", stored.page.delivery_id)]);
    let message = std::fs::read_to_string(outbox.join(&files[0])).unwrap();
    assert_eq!(
        header(&message, "From").as_deref(),
        Some("tocsin@example.com")
    );
    assert_eq!(header(&message, "To").as_deref(), Some("alice@example.com"));
    assert_eq!(
        header(&message, "Subject").as_deref(),
        Some("[Sev 2] storage down in china-east")
    );
    assert_eq!(
        header(&message, "X-Tocsin-Event").as_deref(),
        Some("triggered")
    );
    assert!(header(&message, "Date").is_some());
    assert!(header(&message, "Message-ID")
        .unwrap()
        .contains(&stored.page.delivery_id));
    let ack_url = stored.page.payload.ack_url.clone().unwrap();
    let parts = parts(&message);
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|(_, text)| text.contains(&ack_url)));
    running.stop().await;
}

#[tokio::test]
async fn pages_pending_at_start_are_delivered_once_after_a_restart() {
    // The first attempt hangs; the engine stops while it is under way.
    let receiver = Receiver::start(vec![Answer::Hang], Answer::Status(200)).await;
    let webhooks = format!(
        "[ {{ name: hook, url: \"{}\", timeout: 30s }} ]",
        receiver.url
    );
    let config = delivery_config("webhook:hook", "responder:alice", FILE_EMAIL, &webhooks);
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let id = open_incident(&engine).await;
    let started = eventually(Duration::from_secs(20), || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    assert!(started.is_some(), "the first attempt was made");
    let stopping = tokio::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(10), engine.stop())
        .await
        .expect("a hung receiver does not hold up shutdown");
    assert!(stopping.elapsed() < Duration::from_secs(5));

    // Stopped: the page is still pending in the outbox.
    let store = Store::open(&dir.store_url()).await.unwrap();
    let pending = store.pages_of(id).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, OutboxStatus::Pending);
    store.close().await;

    let engine = TestEngine::start(&dir).await;
    wait_count(&engine, "webhook", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;
    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    assert_eq!(pages.len(), 1, "level 0 is not paged again by the restart");
    assert_eq!(pages[0].status, OutboxStatus::Delivered);
    let got = receiver.received();
    assert_eq!(got.len(), 2);
    for request in &got {
        assert_eq!(
            request.header("x-tocsin-delivery").as_deref(),
            Some(pending[0].page.delivery_id.as_str())
        );
    }
    let delivered = timeline(&engine, id)
        .await
        .into_iter()
        .filter(|e| e.kind == "delivered")
        .count();
    assert_eq!(delivered, 1);
    engine.stop().await;
}
