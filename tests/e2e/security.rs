//! Security: no secret in logs or API output, token comparison in constant time, targets
//! only from config, a rate limit per client on the ingest endpoints. (Ack links that are
//! forged, expired or moved to another incident or recipient: tests/e2e/ack_links.rs.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support;
use crate::support::reliability::{eventually, free_port, http, Proc, Recorder};
use crate::support::{TestDir, TestEngine};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

// ===== no secret in logs or API output =======================================================

/// An SMTP server that offers AUTH, records what it is sent, and refuses the credentials
/// (535): the engine has to use the password, and then handle a failure.
struct FakeSmtp {
    port: u16,
    auth: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeSmtp {
    async fn start() -> FakeSmtp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let auth = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&auth);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 fake ESMTP\r\n").await;
                    let mut login_step = 0;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let upper = line.to_ascii_uppercase();
                        let answer: &[u8] = if login_step > 0 {
                            seen.lock().unwrap().push(line.clone());
                            login_step -= 1;
                            if login_step == 0 {
                                b"535 5.7.8 authentication failed\r\n"
                            } else {
                                b"334 UGFzc3dvcmQ6\r\n"
                            }
                        } else if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            b"250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 OK\r\n"
                        } else if upper.starts_with("AUTH PLAIN ") {
                            seen.lock().unwrap().push(line.clone());
                            b"535 5.7.8 authentication failed\r\n"
                        } else if upper.starts_with("AUTH LOGIN") {
                            login_step = 2;
                            b"334 VXNlcm5hbWU6\r\n"
                        } else if upper.starts_with("QUIT") {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            break;
                        } else {
                            b"250 OK\r\n"
                        };
                        if write.write_all(answer).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        FakeSmtp { port, auth, task }
    }

    /// Everything the client sent while authenticating, base64 decoded where it decodes.
    fn auth_decoded(&self) -> Vec<String> {
        self.auth
            .lock()
            .unwrap()
            .iter()
            .map(|line| {
                let b64 = line.rsplit(' ').next().unwrap_or(line);
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_else(|_| line.clone())
            })
            .collect()
    }
}

impl Drop for FakeSmtp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SMTP_PASSWORD: &str = "hunter2-SMTP-PASSWORD-9x8y";
const WEBHOOK_SECRET: &str = "whsec-WEBHOOK-SECRET-7d6c5b";
const TOKENS: [&str; 2] = [
    "tok-ALPHA-API-TOKEN-0123abcd",
    "tok-BETA-API-TOKEN-4567efgh",
];
const ACK_KEY: &str = "ack-KEY-SECRET-5a5a5a5a5a5a";
/// Chat webhook URLs often carry a token in their path.
const URL_TOKEN: &str = "URL-PATH-TOKEN-3e3e3e";

fn secure_config(smtp_port: u16, hook: &str) -> String {
    format!(
        r#"
store: {{ url: "sqlite://data/tocsin.db" }}
rule_files: [ "rules/*.yaml" ]
server:
  external_url: http://tocsin.test
  auth: {{ tokens_file: secrets/api-tokens }}
  ack_secret_file: secrets/ack-key
responders:
  - {{ id: alice, email: alice@example.com }}
escalation_policies:
  - name: p
    levels:
      - {{ after: 0s, notify: [ "responder:alice", "webhook:hook" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3|4"' ], policy: p }}
notifiers:
  email:
    from: tocsin@example.com
    smtp: {{ host: 127.0.0.1, port: {smtp_port}, tls: none, username: tocsin, password_file: secrets/smtp-password, timeout: 2s }}
  webhooks:
    - {{ name: hook, url: "{hook}/{URL_TOKEN}", secret_file: secrets/webhook, timeout: 2s }}
  retry: {{ initial_backoff: 100ms, max_backoff: 300ms, max_age: 1h }}
"#
    )
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Each secret in every form it could leak in: as is, base64 (SMTP AUTH), hex.
fn needles() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (what, secret) in [
        ("SMTP password", SMTP_PASSWORD),
        ("webhook secret", WEBHOOK_SECRET),
        ("API token 1", TOKENS[0]),
        ("API token 2", TOKENS[1]),
        ("ack key", ACK_KEY),
        ("webhook URL token", URL_TOKEN),
    ] {
        out.push((what.to_string(), secret.to_string()));
        out.push((format!("{what} (base64)"), b64(secret)));
        out.push((format!("{what} (hex)"), hex::encode(secret)));
    }
    // SMTP AUTH PLAIN sends base64("\0user\0password").
    out.push((
        "SMTP AUTH PLAIN".into(),
        b64(&format!("\0tocsin\0{SMTP_PASSWORD}")),
    ));
    out
}

#[tokio::test]
async fn no_secret_reaches_the_log_or_any_api_output() {
    let smtp = FakeSmtp::start().await;
    let receiver = Recorder::start(500).await;
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/default.yaml"), support::default_rules()).unwrap();
    let hook_base = receiver.url.trim_end_matches("/hook").to_string() + "/hook";
    std::fs::write(
        dir.join("config.yaml"),
        secure_config(smtp.port, &hook_base),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    for (file, text) in [
        ("smtp-password", format!("{SMTP_PASSWORD}\n")),
        ("webhook", format!("{WEBHOOK_SECRET}\n")),
        (
            "api-tokens",
            format!("# tokens\n{}\n{}\n", TOKENS[0], TOKENS[1]),
        ),
        ("ack-key", format!("{ACK_KEY}\n")),
    ] {
        std::fs::write(dir.join("secrets").join(file), text).unwrap();
    }
    // Debug, with every dependency's debug output too: the most a log can say.
    let mut engine = Proc::start(
        &dir.join("config.yaml"),
        free_port(),
        &dir.join("engine.log"),
        &[("TOCSIN_LOG", "debug")],
    );
    engine.wait_ready().await;
    let client = http();
    let bearer = format!("Bearer {}", TOKENS[1]);
    let mut outputs: BTreeMap<String, String> = BTreeMap::new();

    // Refused: no token, a wrong one (it is not a secret, but the answer is kept).
    for (name, auth) in [("no token", None), ("wrong token", Some("Bearer nope"))] {
        let mut request = client.get(format!("{}/api/v1/incidents", engine.url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{name}");
        outputs.insert(format!("401, {name}"), answer.text().await.unwrap());
    }
    // A page that fails on both channels, then gets through on the webhook.
    let answer = client
        .post(format!("{}/api/v2/alerts", engine.url))
        .header("authorization", &bearer)
        .json(
            &json!([{ "labels": { "alertname": "StorageDown", "severity": "critical",
                                    "service": "storage", "region": "china-east" } }]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    eventually(Duration::from_secs(10), || async {
        (receiver.got().len() >= 2 && smtp.auth_decoded().len() >= 2).then_some(())
    })
    .await
    .expect("both channels were tried and failed");
    receiver.set_status(200);
    eventually(Duration::from_secs(10), || async {
        (receiver.got().len() >= 3).then_some(())
    })
    .await
    .expect("the webhook got the page");

    // The secrets were really in use: a test that never sees them would prove nothing.
    assert!(
        smtp.auth_decoded()
            .iter()
            .any(|a| a.contains(SMTP_PASSWORD)),
        "the SMTP password was sent: {:?}",
        smtp.auth_decoded()
    );
    let got = receiver.got();
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&got[0].raw);
    assert_eq!(
        got[0].signature,
        format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        "signed with the webhook secret"
    );
    assert_eq!(got[0].path, format!("/hook/{URL_TOKEN}"));
    let body: Value = got[0].body.clone();
    let ack_url = body["ack_url"].as_str().expect("an ack link").to_string();
    let id = body["incident"]["id"].as_i64().unwrap();

    // Reloads, good and bad, by SIGHUP and by API.
    let pid = engine.child.as_ref().unwrap().id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let answer = client
        .post(format!("{}/-/reload", engine.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    outputs.insert("reload".into(), answer.text().await.unwrap());
    let good = std::fs::read_to_string(dir.join("config.yaml")).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        good.replace("secrets/webhook", "secrets/missing"),
    )
    .unwrap();
    let answer = client
        .post(format!("{}/-/reload", engine.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    outputs.insert(
        "reload with a missing secret".into(),
        answer.text().await.unwrap(),
    );
    std::fs::write(
        dir.join("config.yaml"),
        good.replace("notifiers:", "notifiers: ["),
    )
    .unwrap();
    let answer = client
        .post(format!("{}/-/reload", engine.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 500);
    outputs.insert("bad reload".into(), answer.text().await.unwrap());
    std::fs::write(dir.join("config.yaml"), &good).unwrap();
    let answer = client
        .post(format!("{}/-/reload", engine.url))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "back to the good config");

    // Acknowledge through the link in the page (the link's token is a credential too).
    let ack_path = ack_url.trim_start_matches("http://tocsin.test");
    let (status, page) = engine.get(ack_path).await;
    assert_eq!(status, 200, "{page}");
    outputs.insert("ack confirm page".into(), page);
    let answer = client
        .post(format!("{}{ack_path}", engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    outputs.insert("ack done page".into(), answer.text().await.unwrap());
    eventually(Duration::from_secs(10), || async {
        receiver
            .got()
            .iter()
            .any(|g| g.event == "acknowledged")
            .then_some(())
    })
    .await
    .expect("the ack was paged");

    // Everything a user can read.
    for path in [
        "/api/v1/incidents".to_string(),
        format!("/api/v1/incidents/{id}"),
        "/api/v1/oncall".into(),
        "/".into(),
        format!("/incidents/{id}"),
        "/metrics".into(),
        "/-/ready".into(),
        "/-/healthy".into(),
    ] {
        let answer = client
            .get(format!("{}{path}", engine.url))
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        outputs.insert(path, answer.text().await.unwrap());
    }
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .post(format!("{}/login", engine.url))
        .form(&[("token", TOKENS[0]), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303, "signed in");
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    outputs.insert("login cookies".into(), cookies.join("\n"));
    for (i, got) in receiver.got().iter().enumerate() {
        outputs.insert(format!("webhook request {i}"), got.body.to_string());
    }
    engine.kill();
    let log = engine.log_text();
    // The log did record the failures, retries and reloads it should.
    for said in [
        " DEBUG ",
        "will retry",
        "config reloaded",
        "authentication failed",
        "page delivered",
    ] {
        assert!(log.contains(said), "the log never says {said:?}:\n{log}");
    }
    outputs.insert("log".into(), log);
    let ack_token = ack_path.trim_start_matches("/ack/").to_string();
    let mut needles = needles();
    needles.push(("ack link token".into(), ack_token));
    for (what, secret) in &needles {
        for (name, text) in &outputs {
            if what == "ack link token"
                && (name.starts_with("webhook request") || name.starts_with("ack "))
            {
                continue; // the page and the link's own pages carry the link, by design
            }
            assert!(!text.contains(secret.as_str()), "{what} appears in {name}");
        }
    }
    assert!(outputs.len() >= 20, "{} outputs checked", outputs.len());
}

// ===== constant-time token comparison ========================================================

/// Median time of `rounds` calls, taken over interleaved samples so load on the machine
/// hits both sides alike.
fn timed(samples: usize, rounds: usize, tokens: &[String], presented: &[&str]) -> Vec<Duration> {
    let mut times = vec![Vec::new(); presented.len()];
    for _ in 0..samples {
        for (i, p) in presented.iter().enumerate() {
            let start = tokio::time::Instant::now();
            let mut matched = false;
            for _ in 0..rounds {
                matched ^= tocsin::api::auth::token_matches(
                    std::hint::black_box(tokens),
                    std::hint::black_box(p),
                );
            }
            std::hint::black_box(matched);
            times[i].push(start.elapsed());
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect()
}

#[tokio::test]
async fn token_comparison_takes_as_long_wherever_the_mismatch_is() {
    // Long tokens make any early exit stand out: a plain `==` (memcmp) stops at the first
    // differing byte, here a thousand times sooner for the first byte than for the last.
    let a: String = "a".repeat(16 * 1024);
    let b: String = "b".repeat(16 * 1024);
    let tokens = vec![a.clone(), b.clone()];
    let first_differs = format!("x{}", &a[1..]);
    let last_differs = format!("{}x", &a[..a.len() - 1]);
    let t = timed(15, 20, &tokens, &[&first_differs, &last_differs, &a, &b]);
    let ratio = |x: Duration, y: Duration| {
        x.as_secs_f64().max(y.as_secs_f64()) / x.as_secs_f64().min(y.as_secs_f64())
    };
    println!(
        "first byte differs {:?}, last byte {:?}, first token {:?}, second {:?}",
        t[0], t[1], t[2], t[3]
    );
    assert!(
        ratio(t[0], t[1]) < 1.5,
        "where the mismatch is shows: {t:?}"
    );
    // Every token is compared: matching the first is no quicker than matching the second.
    assert!(ratio(t[2], t[3]) < 1.5, "which token matched shows: {t:?}");
    assert!(ratio(t[0], t[2]) < 1.5, "a match shows: {t:?}");
    // And it is right.
    assert!(tocsin::api::auth::token_matches(&tokens, &b));
    assert!(!tocsin::api::auth::token_matches(&tokens, &last_differs));
    assert!(!tocsin::api::auth::token_matches(&tokens, ""));
}

// ===== targets only from config ===============================================================

/// Counts every connection anyone makes to it.
struct Canary {
    url: String,
    hits: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl Canary {
    async fn start() -> Canary {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(Mutex::new(0));
        let count = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            while let Ok((_stream, _)) = listener.accept().await {
                *count.lock().unwrap() += 1;
            }
        });
        Canary { url, hits, task }
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn urls_in_alerts_reports_and_actions_are_never_fetched() {
    let canary = Canary::start().await;
    let receiver = Recorder::start(200).await;
    let config = format!(
        r#"
responders: [ {{ id: alice, webhook: hook }} ]
escalation_policies:
  - {{ name: p, levels: [ {{ after: 0s, notify: [ "webhook:hook" ] }} ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3|4"' ], policy: p }}
notifiers:
  webhooks: [ {{ name: hook, url: "{}", timeout: 2s }} ]
"#,
        receiver.url
    );
    let dir = TestDir::new(&config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let url = |what: &str| format!("{}/{what}", canary.url);
    // Every place an API client can put text: labels, annotations, generatorURL, the
    // webhook's externalURL, a CRI's contact, names in actions and notes.
    let (status, answer) = engine
        .post(
            "/api/v2/alerts",
            &json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": "storage",
                                  "url": url("label"), "webhook": url("label-webhook") },
                      "annotations": { "summary": url("summary"), "runbook_url": url("runbook"),
                                       "callback": url("callback") },
                      "generatorURL": url("generator") }]),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = engine
        .post(
            "/api/v1/alertmanager",
            &json!({ "version": "4", "status": "firing", "externalURL": url("external"),
                     "alerts": [{ "status": "firing", "generatorURL": url("am-generator"),
                                  "labels": { "alertname": "Lag", "severity": "warning",
                                              "service": "sqldb", "url": url("am-label") },
                                  "annotations": { "runbook_url": url("am-runbook") } }] }),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = engine
        .post(
            "/api/v1/cri",
            &json!({ "customer": "contoso", "service": "storage", "region": "china-east",
                     "sr_severity": "A", "summary": url("cri-summary"),
                     "contact": { "name": url("cri-name"), "email": "pat@example.com",
                                  "phone": "+86 21 5555 0100" } }),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    let (_, list) = engine.get("/api/v1/incidents").await;
    let list = list["incidents"].clone();
    let id = list[0]["id"].as_i64().unwrap();
    let (status, _) = engine
        .post(
            &format!("/api/v1/incidents/{id}/notes"),
            &json!({ "by": url("note-by"), "text": url("note") }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = engine
        .post(
            &format!("/api/v1/incidents/{id}/ack"),
            &json!({ "by": url("ack-by") }),
        )
        .await;
    assert_eq!(status, 200);
    // The pages went to the configured receiver, carrying those texts as data...
    eventually(Duration::from_secs(10), || async {
        (receiver.got().len() >= 3).then_some(())
    })
    .await
    .expect("pages delivered to the configured webhook");
    assert!(receiver
        .got()
        .iter()
        .any(|g| g.body.to_string().contains(&url("label"))));
    // ...and nothing ever connected to any URL an API client wrote.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(canary.hits(), 0, "something fetched a URL from API input");
    engine.stop().await;
}

// ===== rate limit per client =================================================================

#[tokio::test]
async fn ingest_endpoints_are_rate_limited_per_client() {
    let config = "server: { rate_limit: { per_client: 2, burst: 5 } }\n";
    let dir = TestDir::new(config, &[("default.yaml", &support::default_rules())]);
    let engine = TestEngine::start(&dir).await;
    let client = http();
    let push = |client: reqwest::Client| {
        let url = format!("{}/api/v2/alerts", engine.url);
        async move {
            client
                .post(url)
                .json(&json!([{ "labels": { "alertname": "Flood", "service": "x" } }]))
                .send()
                .await
                .unwrap()
        }
    };
    // The burst, then 429 on every ingest endpoint (one bucket per client).
    for i in 0..5 {
        assert_eq!(push(client.clone()).await.status(), 200, "request {i}");
    }
    let refused = push(client.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    let body: Value = refused.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1") && error.contains("server.rate_limit"),
        "{error}"
    );
    for path in [
        "/api/v1/heartbeats/nightly",
        "/api/v1/cri",
        "/api/v1/alertmanager",
    ] {
        let answer = client
            .post(format!("{}{path}", engine.url))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 429, "{path}");
    }
    // Reading is not limited, nor is the admin plane.
    for _ in 0..20 {
        assert_eq!(engine.get("/api/v1/incidents").await.0, 200);
    }
    assert_eq!(engine.get("/-/healthy").await.0, 200);
    // Another client (another loopback address) has its own bucket.
    let other = reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    assert_eq!(push(other).await.status(), 200);
    // Tokens come back at per_client a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(push(client.clone()).await.status(), 200);
    let limited = engine.running.metrics.rate_limited_total.get();
    assert_eq!(limited, 4, "tocsin_rate_limited_total");
    engine.stop().await;
}

/// The limit comes before the token check: guessing tokens is limited too, and a wrong
/// token costs as much as a right one.
#[tokio::test]
async fn the_rate_limit_holds_before_the_token_check() {
    let config =
        "server: { rate_limit: { per_client: 1, burst: 3 }, auth: { tokens_file: tokens } }\n";
    let dir = TestDir::new(config, &[("default.yaml", &support::default_rules())]);
    dir.write("tokens", "tok-right-9f8e7d\n");
    let engine = TestEngine::start(&dir).await;
    let client = http();
    let push = |token: &'static str| {
        let request = client
            .post(format!("{}/api/v2/alerts", engine.url))
            .bearer_auth(token)
            .json(&json!([{ "labels": { "alertname": "Guess", "service": "x" } }]));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for guess in ["tok-guess-1", "tok-guess-2", "tok-guess-3"] {
        assert_eq!(push(guess).await, 401, "{guess}");
    }
    // The burst is spent on guesses: the next guess, and the right token too, wait.
    assert_eq!(push("tok-guess-4").await, 429);
    assert_eq!(push("tok-right-9f8e7d").await, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(push("tok-right-9f8e7d").await, 200);
    engine.stop().await;
}

// ===== sign-in redirects =====================================================================

/// After signing in, the dashboard goes back to `next`: only ever a path of this site. A tab
/// in it ("/\t/evil.example", which browsers read as "//evil.example") was let through as an
/// open redirect, and a newline made the sign-in answer 500.
#[tokio::test]
async fn sign_in_redirects_only_to_this_site() {
    let dir = TestDir::new(
        "server: { auth: { tokens_file: secrets/tokens } }\n",
        &[("default.yaml", &support::default_rules())],
    );
    dir.write("secrets/tokens", "tok-REDIRECT-TEST\n");
    let engine = TestEngine::start(&dir).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (next, expected) in [
        ("/incidents/7", "/incidents/7"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/\n/evil.example", "/"),
        ("/\r\nSet-Cookie: x=y", "/"),
    ] {
        let answer = client
            .post(format!("{}/login", engine.url))
            .form(&[("token", "tok-REDIRECT-TEST"), ("next", next)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("next {next:?}: {e}"));
        assert_eq!(answer.status(), 303, "next {next:?}");
        assert_eq!(answer.headers()["location"], expected, "next {next:?}");
    }
    assert_eq!(engine.get("/-/healthy").await.0, 200);
    engine.stop().await;
}
