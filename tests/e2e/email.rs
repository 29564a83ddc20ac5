//! Email pages over SMTP with TLS, delivered to a real aiosmtpd: STARTTLS and implicit TLS,
//! the server's certificate (made by the test, for 127.0.0.1) trusted through
//! `notifiers.email.smtp.ca_file`, and SMTP AUTH. (Plain SMTP and a server without STARTTLS:
//! `tests/e2e/paging.rs`.)

use std::path::Path;

use crate::support;
use crate::support::paging::{
    count, delivery_config, header, open_incident, timeline, wait_count, wait_written, Smtpd,
    SmtpdTls,
};
use crate::support::{TestDir, TestEngine};
use tocsin::store::OutboxStatus;

const USER: &str = "tocsin";
const PASSWORD: &str = "pass-Wd-71c3";

/// `notifiers.email` for `smtpd`: `tls` mode, `ca_file` when given, logged in as USER with
/// the password in `smtp-password`.
fn email(smtpd: &Smtpd, tls: &str, ca_file: Option<&Path>) -> String {
    let ca = ca_file
        .map(|p| format!("ca_file: \"{}\", ", p.display()))
        .unwrap_or_default();
    format!(
        "{{ from: tocsin@example.com, smtp: {{ host: 127.0.0.1, port: {}, tls: {tls}, {ca}\
         username: {USER}, password_file: smtp-password, timeout: 5s }} }}",
        smtpd.port
    )
}

async fn engine_for(email: &str, password: &str) -> (TestDir, TestEngine) {
    let config = delivery_config("responder:alice", "responder:alice", email, "[]");
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    dir.write("smtp-password", &format!("{password}\n"));
    let engine = TestEngine::start(&dir).await;
    (dir, engine)
}

/// One page goes out over TLS, logged in: the server stored it with the TLS version of the
/// connection and the user that logged in, and the outbox and timeline say delivered.
async fn delivered_over_tls_with_auth(mode: SmtpdTls, tls: &str) {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start_tls(scratch.path(), mode, Some((USER, PASSWORD))).await;
    let email = email(&smtpd, tls, smtpd.ca_file.as_deref());
    let (_dir, engine) = engine_for(&email, PASSWORD).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "delivered", 1).await;
    wait_written(&engine, id, "delivered", 1).await;

    let messages = smtpd.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    let version = header(message, "X-Peer-TLS").unwrap_or_default();
    assert!(
        version == "TLSv1.2" || version == "TLSv1.3",
        "sent over {version:?}"
    );
    assert_eq!(header(message, "X-Authenticated-As").as_deref(), Some(USER));
    assert_eq!(
        header(message, "X-RcptTo").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(
        header(message, "Subject").as_deref(),
        Some("[Sev 2] storage down in china-east")
    );
    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Delivered);
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        header(message, "X-Tocsin-Delivery").as_deref(),
        Some(stored.page.delivery_id.as_str())
    );
    let log = smtpd.log_text();
    let logins: Vec<&str> = log.lines().filter(|l| l.starts_with("AUTH ")).collect();
    assert_eq!(logins.len(), 1, "{log}");
    assert!(logins[0].ends_with("tls=True ok=True"), "{log}");
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
    assert_eq!(count(&engine, "email", "retry"), 0);
    engine.stop().await;
}

#[tokio::test]
async fn starttls_with_auth_delivers_to_a_server_trusted_through_ca_file() {
    delivered_over_tls_with_auth(SmtpdTls::Starttls, "starttls").await;
}

#[tokio::test]
async fn implicit_tls_with_auth_delivers_to_a_server_trusted_through_ca_file() {
    delivered_over_tls_with_auth(SmtpdTls::Implicit, "tls").await;
}

/// Without `ca_file` the Mozilla roots decide, and they do not know the test's CA: the
/// handshake fails, the password is never sent, nothing is delivered, and the page is kept
/// for another attempt.
#[tokio::test]
async fn a_server_certificate_no_trusted_ca_signed_is_refused_before_auth() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start_tls(scratch.path(), SmtpdTls::Starttls, Some((USER, PASSWORD))).await;
    let (_dir, engine) = engine_for(&email(&smtpd, "starttls", None), PASSWORD).await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "retry", 2).await;
    wait_written(&engine, id, "delivery_attempt", 2).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Pending);
    let error = stored.last_error.clone().unwrap_or_default();
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(!error.contains(PASSWORD), "{error}");
    assert!(smtpd.messages().is_empty());
    let log = smtpd.log_text();
    assert!(
        !log.lines().any(|l| l.starts_with("AUTH ")),
        "credentials were offered: {log}"
    );
    assert_eq!(count(&engine, "email", "delivered"), 0);
    engine.stop().await;
}

/// A wrong password: the server refuses the login (535), nothing is sent, and the page is
/// kept (a login problem is a config mistake that a reload can fix).
#[tokio::test]
async fn a_wrong_smtp_password_is_refused_and_the_page_is_kept() {
    let scratch = tempfile::tempdir().unwrap();
    let smtpd = Smtpd::start_tls(scratch.path(), SmtpdTls::Implicit, Some((USER, PASSWORD))).await;
    let email = email(&smtpd, "tls", smtpd.ca_file.as_deref());
    let (_dir, engine) = engine_for(&email, "not-the-password").await;
    let id = open_incident(&engine).await;
    wait_count(&engine, "email", "retry", 2).await;
    wait_written(&engine, id, "delivery_attempt", 2).await;

    let stored = &engine.running.state.store.pages_of(id).await.unwrap()[0];
    assert_eq!(stored.status, OutboxStatus::Pending);
    let error = stored.last_error.clone().unwrap_or_default();
    assert!(error.contains("535"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    assert!(smtpd.messages().is_empty());
    let log = smtpd.log_text();
    assert!(log.contains("tls=True ok=False"), "{log}");
    assert!(!log.contains("ok=True"), "{log}");
    assert_eq!(count(&engine, "email", "failed"), 0);
    engine.stop().await;
}
