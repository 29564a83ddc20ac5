//! Helpers for the paging tests: the engine on a frozen tokio clock, a scripted webhook
//! receiver, a real SMTP server (aiosmtpd), and enough MIME to read what it received.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use tocsin::engine::{Clock, Input, Reply};
use tocsin::signal::{Contact, CriDetails, Signal, SourceKind};
use tocsin::store::OutboxEntry;

use crate::support::{eventually, free_port, TestDir, TestEngine, CATALOG};

pub fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An alert as Prometheus would send it; `severity` picks the default rule (critical → an
/// SLA-breaching outage, warning → high business impact, anything else → low).
pub fn alert(
    severity: &str,
    service: &str,
    region: &str,
    summary: &str,
    at: DateTime<Utc>,
) -> Signal {
    let mut signal = Signal::new(
        SourceKind::Alert,
        labels(&[
            ("alertname", "Probe"),
            ("severity", severity),
            ("service", service),
            ("region", region),
        ]),
        at,
    );
    std::sync::Arc::make_mut(&mut signal.annotations).insert("summary".into(), summary.to_string());
    signal
}

/// A customer-reported incident, due for a first response at `respond_by`.
pub fn cri(
    customer: &str,
    sr_severity: &str,
    at: DateTime<Utc>,
    respond_by: DateTime<Utc>,
) -> Signal {
    Signal::customer_report(
        labels(&[
            ("customer", customer),
            ("service", "storage"),
            ("region", "china-east"),
            ("sr_severity", sr_severity),
        ]),
        Some(format!("{customer} cannot write to storage")),
        CriDetails {
            id: format!("cri-{customer}-{sr_severity}"),
            sr_severity: sr_severity.to_string(),
            contact: Contact {
                name: Some("Pat".into()),
                email: Some("pat@example.com".into()),
                phone: None,
            },
            received_at: at,
            respond_by,
        },
    )
}

/// The incidents each signal joined.
pub fn incidents_of(reply: Reply) -> Vec<i64> {
    match reply {
        Reply::Signals(per_signal) => per_signal.into_iter().flatten().collect(),
        other => panic!("expected incidents, got {other:?}"),
    }
}

// ----- the engine on a frozen clock -------------------------------------------------------

/// An engine on tokio's paused clock that moves only when the test says so.
///
/// Paused tokio time auto-advances to the next timer whenever the runtime waits, and the
/// runtime waits every time SQLite (a thread of its own) is asked something: the store's
/// acquire timeouts would fire and escalations would jump ahead of the test. A blocking task
/// held open for the whole test turns auto-advance off (tokio does so while any
/// `spawn_blocking` task runs); time then moves only through `tokio::time::advance`.
pub struct FrozenEngine {
    pub engine: TestEngine,
    pub clock: Clock,
    pub start: DateTime<Utc>,
    /// The engine's folder, removed when the engine is dropped.
    _dir: TestDir,
    hold: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<tokio::task::JoinHandle<()>>,
}

impl FrozenEngine {
    /// Call from `#[tokio::test(start_paused = true)]`.
    pub async fn start(config: &str, start: DateTime<Utc>) -> FrozenEngine {
        let dir = TestDir::new(
            config,
            &[("default.yaml", &crate::support::default_rules())],
        );
        Self::start_in(dir, start).await
    }

    /// Start on a folder of the test's own (its config, rules and store).
    pub async fn start_in(dir: TestDir, start: DateTime<Utc>) -> FrozenEngine {
        let (hold, release) = std::sync::mpsc::channel::<()>();
        let holder = tokio::task::spawn_blocking(move || {
            // Returns when the test drops `hold`.
            let _ = release.recv();
        });
        let clock = Clock::tokio_at(start);
        let engine = TestEngine::start_with(&dir, clock.clone()).await;
        FrozenEngine {
            engine,
            clock,
            start,
            _dir: dir,
            hold: Some(hold),
            holder: Some(holder),
        }
    }

    pub async fn send(&self, input: Input) -> Reply {
        self.engine
            .running
            .engine()
            .send(input)
            .await
            .expect("the engine takes the input")
    }

    pub async fn signal(&self, signal: Signal) -> i64 {
        let ids = incidents_of(self.send(Input::Signals(vec![signal])).await);
        assert_eq!(ids.len(), 1, "one incident: {ids:?}");
        ids[0]
    }

    /// Returns once the engine has handled and stored everything before it (the loop
    /// answers an input only after writing the batch it came in).
    pub async fn barrier(&self) {
        self.send(Input::Heartbeat(
            "barrier (not a configured heartbeat)".into(),
        ))
        .await;
    }

    /// Wait (in real time; the frozen clock does not move) until every page in the outbox
    /// has been handled by the delivery worker, so no store call of the worker is under way
    /// when the clock is next moved.
    pub async fn settle(&self) {
        let metrics = &self.engine.running.metrics;
        for _ in 0..20_000 {
            self.barrier().await;
            let mut pages = 0u64;
            // Pages attempted by an engine before a restart count too (its metrics are gone).
            let mut all_attempted = true;
            let mut ids: Vec<i64> = self
                .engine
                .running
                .state
                .store
                .all_incidents()
                .await
                .unwrap()
                .iter()
                .map(|i| i.id)
                .collect();
            // Pages about support cases.
            ids.push(0);
            for id in ids {
                let entries = self.pages(id).await;
                pages += entries.len() as u64;
                all_attempted &= entries
                    .iter()
                    .all(|e| e.status != tocsin::store::OutboxStatus::Pending || e.attempts > 0);
            }
            let handled: u64 = ["delivered", "retry", "failed"]
                .iter()
                .flat_map(|outcome| ["email", "webhook"].map(|channel| (channel, *outcome)))
                .map(|(channel, outcome)| {
                    metrics
                        .pages_total
                        .with_label_values(&[channel, outcome])
                        .get()
                })
                .sum();
            if handled >= pages || all_attempted {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the delivery worker did not settle");
    }

    /// Move the clock to `at` a minute at a time (the last step shorter), letting the engine
    /// handle each step, so every timer fires at its own minute.
    pub async fn advance_to(&self, at: DateTime<Utc>) {
        loop {
            let now = self.clock.now();
            if now >= at {
                return;
            }
            let step = (at - now).min(chrono::Duration::minutes(1));
            self.settle().await;
            tokio::time::advance(step.to_std().unwrap()).await;
            self.barrier().await;
        }
    }

    pub async fn advance_minutes(&self, minutes: i64) {
        self.advance_to(self.clock.now() + chrono::Duration::minutes(minutes))
            .await;
    }

    pub async fn pages(&self, incident: i64) -> Vec<OutboxEntry> {
        self.engine
            .running
            .state
            .store
            .pages_of(incident)
            .await
            .unwrap()
    }

    /// (event, recipient, level, minutes after start) of each page, in order.
    pub async fn page_list(&self, incident: i64) -> Vec<(String, String, Option<usize>, i64)> {
        self.pages(incident)
            .await
            .into_iter()
            .map(|e| {
                (
                    e.page.event.as_str().to_string(),
                    e.page.recipient.id.clone(),
                    e.page.level,
                    (e.page.created_at - self.start).num_minutes(),
                )
            })
            .collect()
    }

    pub async fn timeline_kinds(&self, incident: i64) -> Vec<String> {
        self.engine
            .running
            .state
            .store
            .timeline_of(incident)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }

    /// Stop the engine and start another on its folder and clock: a restart, with the
    /// clock where it was.
    pub async fn restart(self) -> FrozenEngine {
        self.settle().await;
        let FrozenEngine {
            engine,
            clock,
            start,
            _dir,
            hold,
            holder,
        } = self;
        engine.stop().await;
        let engine = TestEngine::start_with(&_dir, clock.clone()).await;
        FrozenEngine {
            engine,
            clock,
            start,
            _dir,
            hold,
            holder,
        }
    }

    pub async fn stop(mut self) {
        self.settle().await;
        self.engine.stop().await;
        drop(self.hold.take());
        if let Some(holder) = self.holder.take() {
            holder.await.unwrap();
        }
    }
}

// ----- delivery in real time ---------------------------------------------------------------

/// A config whose one policy pages `level0` at once and `level1` an hour later; retries
/// come fast.
pub fn delivery_config(level0: &str, level1: &str, email: &str, webhooks: &str) -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - name: storage
    levels:
      - {{ after: 0s, notify: [ "{level0}" ] }}
      - {{ after: 1h, notify: [ "{level1}" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: storage }}
notifiers:
  email: {email}
  webhooks: {webhooks}
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#
    )
}

pub fn storage_down() -> tocsin::signal::Signal {
    alert(
        "critical",
        "storage",
        "china-east",
        "storage down in china-east",
        chrono::Utc::now(),
    )
}

pub async fn open_incident(engine: &TestEngine) -> i64 {
    let reply = engine
        .running
        .engine()
        .send(Input::Signals(vec![storage_down()]))
        .await
        .unwrap();
    incidents_of(reply)[0]
}

pub fn count(engine: &TestEngine, channel: &str, outcome: &str) -> u64 {
    engine
        .running
        .metrics
        .pages_total
        .with_label_values(&[channel, outcome])
        .get()
}

pub async fn wait_count(engine: &TestEngine, channel: &str, outcome: &str, at_least: u64) {
    let reached = eventually(Duration::from_secs(20), || async {
        (count(engine, channel, outcome) >= at_least).then_some(())
    })
    .await;
    assert!(
        reached.is_some(),
        "pages_total{{channel={channel},outcome={outcome}}} stayed at {}",
        count(engine, channel, outcome)
    );
}

/// `pages_total` moves when an attempt ends; the outbox row and the timeline entry are
/// written together at the notifier's next idle turn. Wait for that write before
/// reading the store.
pub async fn wait_written(engine: &TestEngine, id: i64, kind: &str, at_least: usize) {
    let written = eventually(Duration::from_secs(10), || async {
        let entries = timeline(engine, id).await;
        let n = entries.iter().filter(|e| e.kind == kind).count();
        (n >= at_least).then_some(())
    })
    .await;
    assert!(
        written.is_some(),
        "fewer than {at_least} {kind} entries were written"
    );
}

pub async fn timeline(engine: &TestEngine, id: i64) -> Vec<tocsin::incident::TimelineEntry> {
    engine.running.state.store.timeline_of(id).await.unwrap()
}

// ----- a scripted webhook receiver ----------------------------------------------------------

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    Status(u16),
    StatusWith(u16, Vec<(&'static str, &'static str)>),
    /// Never answer (until the client gives up).
    Hang,
}

#[derive(Clone, Debug)]
pub struct Received {
    pub at: tokio::time::Instant,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct Script {
    answers: VecDeque<Answer>,
    /// Once the script is used up.
    then: Option<Answer>,
    received: Vec<Received>,
}

/// An HTTP server on 127.0.0.1 that records every POST and answers from a script.
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut s = script.lock().unwrap();
        s.received.push(Received {
            at: tokio::time::Instant::now(),
            headers,
            body,
        });
        let next = s.answers.pop_front();
        next.or_else(|| s.then.clone())
            .unwrap_or(Answer::Status(200))
    };
    match answer {
        Answer::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Answer::StatusWith(code, headers) => {
            let mut response = (StatusCode::from_u16(code).unwrap(), "try later").into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Answer::Hang => std::future::pending().await,
    }
}

impl Receiver {
    /// Answers `answers` in order, then `then` for every later request.
    pub async fn start(answers: Vec<Answer>, then: Answer) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            answers: answers.into(),
            then: Some(then),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(Arc::clone(&script));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            script,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ----- a real SMTP server ---------------------------------------------------------------

/// aiosmtpd on 127.0.0.1, storing every message it accepts in a Maildir: without TLS
/// ([`Smtpd::start`]: it offers no STARTTLS), or with it ([`Smtpd::start_tls`]). Killed
/// when dropped.
pub struct Smtpd {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
    log: PathBuf,
    /// The CA that signed the server's certificate ([`Smtpd::start_tls`]).
    pub ca_file: Option<PathBuf>,
}

impl Smtpd {
    pub async fn start(dir: &Path) -> Smtpd {
        let maildir = dir.join("maildir");
        let log = dir.join("smtpd.log");
        // Started again on another port if it exits first: `free_port` lets the port go
        // before aiosmtpd binds it, and a socket of another test can take it meanwhile.
        for _ in 0..5 {
            let port = free_port();
            // Debian's python3-aiosmtpd is installed for /usr/bin/python3 only.
            let child = Command::new("/usr/bin/python3")
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start aiosmtpd with /usr/bin/python3 (Debian package python3-aiosmtpd)");
            let mut smtpd = Smtpd {
                child,
                port,
                maildir: maildir.clone(),
                log: log.clone(),
                ca_file: None,
            };
            for _ in 0..200 {
                if matches!(smtpd.child.try_wait(), Ok(Some(_))) {
                    break;
                }
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return smtpd;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if !matches!(smtpd.child.try_wait(), Ok(Some(_))) {
                panic!(
                    "aiosmtpd did not listen on {port}: {}",
                    std::fs::read_to_string(&smtpd.log).unwrap_or_default()
                );
            }
        }
        panic!(
            "aiosmtpd exited at every start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// aiosmtpd with TLS (`tests/e2e/support/smtpd_tls.py`), its certificate for
    /// 127.0.0.1 signed by a CA of the test ([`make_certificates`] in `dir`). With `login`,
    /// a client must log in, over TLS, before it may send. Each stored message carries
    /// `X-Peer-TLS` (the connection's TLS version) and `X-Authenticated-As`.
    pub async fn start_tls(dir: &Path, tls: SmtpdTls, login: Option<(&str, &str)>) -> Smtpd {
        let maildir = dir.join("maildir");
        let log = dir.join("smtpd.log");
        let certs = make_certificates(dir);
        let mut command = Command::new("/usr/bin/python3");
        command
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/e2e/support/smtpd_tls.py"
            ))
            .arg(&maildir)
            .arg(&certs.server_cert)
            .arg(&certs.server_key)
            .arg(match tls {
                SmtpdTls::Starttls => "starttls",
                SmtpdTls::Implicit => "tls",
            });
        if let Some((user, password)) = login {
            command.args([user, password]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start aiosmtpd with /usr/bin/python3 (Debian package python3-aiosmtpd)");
        // The script binds port 0 and prints the port it got: no race for a free port.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
            let _ = tx.send(line);
        });
        let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
            .await
            .unwrap()
            .unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            panic!(
                "aiosmtpd (TLS) did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Smtpd {
            child,
            port,
            maildir,
            log,
            ca_file: Some(certs.ca),
        }
    }

    /// What the server wrote on stderr (the TLS server logs every AUTH attempt).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Every message received so far, raw.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .collect()
    }
}

/// How [`Smtpd::start_tls`] speaks TLS.
#[derive(Clone, Copy, Debug)]
pub enum SmtpdTls {
    /// Plain text until the client's STARTTLS (`tls: starttls`), which it requires.
    Starttls,
    /// TLS from the first byte (`tls: tls`, port 465's way).
    Implicit,
}

/// PEM files made by [`make_certificates`].
pub struct Certificates {
    /// The CA: what a client trusts (`ca_file`).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// A CA of its own and a certificate for 127.0.0.1 that it signed, written to `dir` as
/// `ca.pem`, `server.pem` and `server.key`.
pub fn make_certificates(dir: &Path) -> Certificates {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tocsin test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "127.0.0.1");
    let key = rcgen::KeyPair::generate().unwrap();
    let server = params.signed_by(&key, &ca).unwrap();
    let certs = Certificates {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&certs.ca, ca.pem()).unwrap();
    std::fs::write(&certs.server_cert, server.pem()).unwrap();
    std::fs::write(&certs.server_key, key.serialize_pem()).unwrap();
    certs
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- enough MIME to read a page ---------------------------------------------------------

/// A message's header (unfolded), by name.
pub fn header(message: &str, name: &str) -> Option<String> {
    let head = message
        .split("\r\n\r\n")
        .next()
        .unwrap_or(message)
        .split("\n\n")
        .next()
        .unwrap_or(message);
    let unfolded = head
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    unfolded
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
}

/// The decoded parts of a multipart message: (content type, text).
pub fn parts(message: &str) -> Vec<(String, String)> {
    let message = message.replace("\r\n", "\n");
    let content_type = header(&message, "Content-Type").expect("Content-Type");
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a multipart message")
        .trim_matches('"')
        .to_string();
    let delimiter = format!("--{boundary}");
    message
        .split(&delimiter)
        .skip(1)
        .filter(|part| !part.starts_with("--"))
        .map(|part| {
            let part = part.trim_start_matches('\n');
            let (head, body) = part.split_once("\n\n").unwrap_or((part, ""));
            let head = format!("{head}\n");
            let kind = header(&head, "Content-Type").unwrap_or_default();
            let encoding = header(&head, "Content-Transfer-Encoding")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let text = match encoding.as_str() {
                "quoted-printable" => quoted_printable(body),
                "base64" => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(body.split_whitespace().collect::<String>())
                        .unwrap(),
                )
                .unwrap(),
                _ => body.to_string(),
            };
            (kind, text)
        })
        .collect()
}

fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
