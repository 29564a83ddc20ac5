//! The http probe: one request on a connection of its own, timed from connect to the last
//! byte of the body read, with the certificates of the peer chain when it speaks TLS.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, HOST, USER_AGENT,
};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::tls::{self, earliest_expiry_days};
use super::{elapsed_ms, Answer, ProbeSetupError};
use crate::config::{Config, ProbeConfig};
use crate::signal::ProbeResult;

/// Why an http probe failed; the text is the probe's `error`.
#[derive(Debug, thiserror::Error)]
enum HttpProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("status {got}, expected {expected}")]
    Status { got: u16, expected: String },
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

/// An http probe, built once from its config and run every interval.
pub struct HttpProbe {
    host: String,
    port: u16,
    path_and_query: Uri,
    /// The address to connect to when the host is an IP address (no lookup per run).
    ip: Option<SocketAddr>,
    method: Method,
    /// Every request header (`Host`, `User-Agent`, `Connection` and the probe's own), built
    /// once.
    headers: HeaderMap,
    body: Bytes,
    expect_status: Vec<u16>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl HttpProbe {
    pub fn new(probe: &ProbeConfig, config: &Config) -> Result<Self, ProbeSetupError> {
        let setup = |reason: String| ProbeSetupError {
            probe: probe.name.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&probe.url)
            .map_err(|e| setup(format!("invalid url {:?}: {e}", probe.url)))?;
        // An IPv6 host is written `[::1]` in the URL and `::1` to connect.
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .ok_or_else(|| setup(format!("url {:?} has no host", probe.url)))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| setup(format!("url {:?} has no port", probe.url)))?;
        let authority = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            _ => url.host_str().unwrap_or(&host).to_string(),
        };
        let mut target = url.path().to_string();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let path_and_query: Uri = target
            .parse()
            .map_err(|e| setup(format!("invalid path {target:?}: {e}")))?;
        let method = match &probe.method {
            None => Method::GET,
            Some(m) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| setup(format!("invalid method {m:?}")))?,
        };
        let mut headers = HeaderMap::new();
        // `Host`: the host, with the port when it is not the scheme's default.
        headers.insert(HOST, header_value(&authority));
        headers.insert(USER_AGENT, HeaderValue::from_static("tocsin-probe"));
        // One request per connection: the server need not keep it open for us.
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
        for (name, value) in &probe.headers {
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| setup(format!("invalid header name {name:?}")))?;
            // The value is a secret as often as not (Authorization): never echo it.
            let value = HeaderValue::from_str(value).map_err(|_| {
                setup(format!(
                    "header {name:?} has a value that is not valid in HTTP"
                ))
            })?;
            headers.insert(header, value);
        }
        let tls = if url.scheme() == "https" {
            let settings = probe.tls.as_ref();
            let ca_file = settings
                .and_then(|t| t.ca_file.as_deref())
                .map(|f| config.resolve_path(f));
            let client = tls::client_config(settings, ca_file.as_deref())
                .map_err(|e| setup(e.to_string()))?;
            let name = settings
                .and_then(|t| t.server_name.clone())
                .unwrap_or_else(|| host.clone());
            let server_name = ServerName::try_from(name.clone())
                .map_err(|_| setup(format!("invalid TLS server name {name:?}")))?;
            Some((TlsConnector::from(client), server_name))
        } else {
            None
        };
        let ip = host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, port));
        Ok(HttpProbe {
            ip,
            host,
            port,
            path_and_query,
            method,
            headers,
            body: Bytes::from(probe.body.clone().unwrap_or_default()),
            expect_status: probe.expect_status.clone(),
            tls,
            timeout: probe.timeout.std(),
        })
    }

    /// Probe once; `now` is when it started, for the certificates' remaining days.
    pub async fn run(&self, now: DateTime<Utc>) -> ProbeResult {
        let started = tokio::time::Instant::now();
        let mut result = ProbeResult::default();
        // On a timeout the exchange is dropped, but what it had measured (the certificate,
        // the status) stays in `result`.
        let outcome = tokio::time::timeout(self.timeout, self.exchange(&mut result, now)).await;
        let outcome = outcome.unwrap_or(Err(HttpProbeError::Timeout(self.timeout)));
        result.latency_ms = elapsed_ms(started);
        match outcome {
            Ok(()) => result.success = true,
            Err(e) => {
                result.success = false;
                result.error = Some(e.to_string());
            }
        }
        result
    }

    async fn exchange(
        &self,
        result: &mut ProbeResult,
        now: DateTime<Utc>,
    ) -> Result<(), HttpProbeError> {
        let tcp = match self.ip {
            Some(addr) => TcpStream::connect(addr).await,
            // A name is looked up on every run, as it may move.
            None => TcpStream::connect((self.host.as_str(), self.port)).await,
        };
        let tcp = tcp.map_err(|source| HttpProbeError::Connect {
            addr: format!("{}:{}", self.host, self.port),
            source,
        })?;
        // Nagle would hold the request back waiting for an ACK; the request is all we send.
        let _ = tcp.set_nodelay(true);
        let Some((connector, server_name)) = &self.tls else {
            return self.request(tcp, result).await;
        };
        let stream = connector
            .connect(server_name.clone(), tcp)
            .await
            .map_err(|source| HttpProbeError::Tls {
                host: self.host.clone(),
                source,
            })?;
        if let Some(chain) = stream.get_ref().1.peer_certificates() {
            result.cert_expiry_days = earliest_expiry_days(chain, now);
        }
        self.request(stream, result).await
    }

    async fn request<S>(&self, stream: S, result: &mut ProbeResult) -> Result<(), HttpProbeError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.path_and_query.clone();
        *request.headers_mut() = self.headers.clone();
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let answer = read_capped(response.into_body()).await?;
            Ok::<_, hyper::Error>((status, content_type, answer))
        };
        // The connection must be polled for the exchange to progress; we drive both here
        // rather than spawning, so nothing outlives the probe's timeout.
        let mut connection = std::pin::pin!(connection);
        let mut exchange = std::pin::pin!(exchange);
        let (status, content_type, answer) = tokio::select! {
            done = &mut exchange => done?,
            closed = &mut connection => {
                closed?;
                exchange.await?
            }
        };
        result.status_code = Some(status);
        result.body = Some(answer.into_value(&content_type));
        if !self.status_expected(status) {
            return Err(HttpProbeError::Status {
                got: status,
                expected: self.expected_text(),
            });
        }
        Ok(())
    }

    fn status_expected(&self, status: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..300).contains(&status)
        } else {
            self.expect_status.contains(&status)
        }
    }

    fn expected_text(&self) -> String {
        match self.expect_status.as_slice() {
            [] => "2xx".to_string(),
            [one] => one.to_string(),
            many => {
                let list: Vec<String> = many.iter().map(u16::to_string).collect();
                format!("one of {}", list.join(", "))
            }
        }
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// Read the body, keeping at most [`BODY_CAP`] bytes.
async fn read_capped(mut body: hyper::body::Incoming) -> Result<Answer, hyper::Error> {
    let mut answer = Answer::default();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if !answer.push(&data) {
                break;
            }
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(yaml: &str) -> Result<HttpProbe, ProbeSetupError> {
        let probe: ProbeConfig = serde_yaml::from_str(yaml).unwrap();
        HttpProbe::new(&probe, &Config::default())
    }

    #[test]
    fn the_request_target_and_host_come_from_the_url() {
        let p =
            probe("{ name: p, kind: http, url: 'http://example.com:8080/health?deep=1' }").unwrap();
        assert_eq!(p.host, "example.com");
        assert_eq!(p.port, 8080);
        assert_eq!(p.headers[HOST], "example.com:8080");
        assert_eq!(p.path_and_query.to_string(), "/health?deep=1");
        assert_eq!(p.method, Method::GET);
        let p = probe("{ name: p, kind: http, url: 'https://[::1]/', method: post }").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 443));
        assert_eq!(p.headers[HOST], "[::1]");
        assert_eq!(p.method, Method::POST);
        assert!(p.tls.is_some());
    }

    #[test]
    fn success_is_any_2xx_unless_codes_are_listed() {
        let p = probe("{ name: p, kind: http, url: 'http://h/' }").unwrap();
        assert!(p.status_expected(204));
        assert!(!p.status_expected(301));
        assert_eq!(p.expected_text(), "2xx");
        let p =
            probe("{ name: p, kind: http, url: 'http://h/', expect_status: [301, 404] }").unwrap();
        assert!(p.status_expected(404));
        assert!(!p.status_expected(200));
        assert_eq!(p.expected_text(), "one of 301, 404");
    }

    #[test]
    fn a_bad_header_is_refused_without_echoing_its_value() {
        let err = probe(
            "{ name: p, kind: http, url: 'http://h/', headers: { Authorization: \"Bearer s3cret\\n\" } }",
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("\"p\"") && text.contains("Authorization"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}
