//! Real peers and small servers for the source tests: Prometheus and Alertmanager started
//! as processes on 127.0.0.1 (killed when dropped), and in-process HTTP, TLS and TCP
//! servers for the probes to measure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{eventually, wait_ready_or_start_again, Started, TestEngine};

/// A peer process with its own folder; killed and reaped when dropped.
pub struct Peer {
    child: Child,
    pub url: String,
    log: PathBuf,
    program: String,
    args: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Peer {
    /// `prometheus` with `config` (and `rules.yml` beside it when given), on `port`.
    pub fn prometheus(config: &str, rules: Option<&str>, port: u16) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        if let Some(rules) = rules {
            std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        }
        let args = vec![
            format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ),
            format!("--storage.tsdb.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            // An alert sent before the alertmanager is discovered is dropped, then re-sent
            // only after the resend delay (1 m by default).
            "--rules.alert.resend-delay=2s".to_string(),
        ];
        Peer::spawn("prometheus", &args, dir, port)
    }

    /// `prometheus-alertmanager` with `config`, gossip off, on `port`.
    pub fn alertmanager(config: &str, port: u16) -> Peer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alertmanager.yml"), config).unwrap();
        let args = vec![
            format!(
                "--config.file={}",
                dir.path().join("alertmanager.yml").display()
            ),
            format!("--storage.path={}", dir.path().join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".to_string(),
        ];
        Peer::spawn("prometheus-alertmanager", &args, dir, port)
    }

    fn spawn(program: &str, args: &[String], dir: tempfile::TempDir, port: u16) -> Peer {
        let log = dir.path().join("peer.log");
        Peer {
            child: start(program, args, &log),
            url: format!("http://127.0.0.1:{port}"),
            log,
            program: program.to_string(),
            args: args.to_vec(),
            _dir: dir,
        }
    }

    /// Wait (bounded; see `wait_ready_or_start_again`) until `/-/ready` answers 200.
    pub async fn wait_ready(&mut self) {
        if !wait_ready_or_start_again(self, Duration::from_secs(20)).await {
            panic!("peer not ready; log:\n{}", self.log());
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Started for Peer {
    fn ready_url(&self) -> String {
        format!("{}/-/ready", self.url)
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn port_was_taken(&self) -> bool {
        self.log().contains("address already in use")
    }

    fn start_again(&mut self) {
        self.child = start(&self.program, &self.args, &self.log);
    }
}

fn start(program: &str, args: &[String], log: &std::path::Path) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} ({e}); scripts/test-all.sh installs it"))
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A port nothing listens on: bound, then released.
pub fn closed_port() -> u16 {
    crate::support::free_port()
}

/// A self-signed certificate for `localhost` and 127.0.0.1 that expires in `days` days.
pub fn self_signed(days: i64) -> (rustls::pki_types::CertificateDer<'static>, rcgen::KeyPair) {
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.der().clone(), key)
}

/// An HTTPS server with a self-signed certificate expiring in `days` days that answers every
/// request `200 ok`.
pub async fn tls_server(days: i64) -> SocketAddr {
    let (cert, key) = self_signed(days);
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                read_request_head(&mut tls).await;
                let _ = tls
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

async fn read_request_head<S: AsyncReadExt + Unpin>(stream: &mut S) {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
}

/// A line server: answers `+PONG\r\n` to `PING`, then closes.
pub async fn pong_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 64];
                let mut seen = Vec::new();
                while let Ok(n) = tcp.read(&mut buffer).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    if seen.windows(4).any(|w| w == b"PING") {
                        let _ = tcp.write_all(b"+PONG\r\n").await;
                        let _ = tcp.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// The incidents of an engine, newest first.
pub async fn incidents(engine: &TestEngine) -> Vec<Value> {
    let (status, list) = engine.get("/api/v1/incidents").await;
    let list = list["incidents"].clone();
    assert_eq!(status, 200, "{list}");
    list.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {list}"))
}

/// Wait (bounded) for an incident that satisfies `matches`.
pub async fn wait_incident(
    engine: &TestEngine,
    timeout: Duration,
    what: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let found = eventually(timeout, || async {
        incidents(engine).await.into_iter().find(|i| matches(i))
    })
    .await;
    match found {
        Some(incident) => incident,
        None => panic!(
            "no incident {what} within {timeout:?}; incidents: {:#?}",
            incidents(engine).await
        ),
    }
}

/// Wait (bounded) until incident `id` is resolved.
pub async fn wait_resolved(engine: &TestEngine, id: &Value, timeout: Duration) -> Value {
    let path = format!("/api/v1/incidents/{id}");
    let resolved = eventually(timeout, || async {
        let (_, incident) = engine.get(&path).await;
        (incident["status"] == "resolved").then_some(incident)
    })
    .await;
    match resolved {
        Some(incident) => incident,
        None => panic!(
            "incident {id} not resolved within {timeout:?}: {:#}",
            engine.get(&path).await.1
        ),
    }
}

/// The value of one sample in the engine's /metrics, e.g. `tocsin_source_up{source="prom"}`.
pub async fn metric(engine: &TestEngine, sample: &str) -> Option<f64> {
    let text = engine
        .http
        .get(format!("{}/metrics", engine.url))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
}

/// Names of an incident's services, for assertions.
pub fn services(incident: &Value) -> Vec<String> {
    incident["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A health endpoint (`GET /health`) that answers 200, or 503 while its switch is off: a
/// service that fails on command. Stops when the test's runtime does.
pub async fn switchable_health() -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let up = Arc::new(AtomicBool::new(true));
    let state = Arc::clone(&up);
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let up = state.load(Ordering::SeqCst);
            async move {
                if up {
                    (axum::http::StatusCode::OK, "ok")
                } else {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down")
                }
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, up)
}
