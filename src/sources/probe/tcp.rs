//! The tcp probe: connect, optionally send a greeting, optionally wait for an answer that
//! contains the expected text.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{elapsed_ms, Answer, ProbeSetupError};
use crate::config::ProbeConfig;
use crate::signal::ProbeResult;

/// Why a tcp probe failed; the text is the probe's `error`.
#[derive(Debug, thiserror::Error)]
enum TcpProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot send to {addr}: {source}")]
    Send {
        addr: String,
        source: std::io::Error,
    },
    #[error("reading from {addr} failed: {source}")]
    Read {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} closed the connection without sending {expected:?}")]
    Closed { addr: String, expected: String },
    #[error("the answer of {addr} filled {cap} bytes without {expected:?}")]
    NotInAnswer {
        addr: String,
        expected: String,
        cap: usize,
    },
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
}

pub struct TcpProbe {
    host: String,
    port: u16,
    send: Option<Vec<u8>>,
    expect: Option<String>,
    timeout: Duration,
}

impl TcpProbe {
    pub fn new(probe: &ProbeConfig) -> Result<Self, ProbeSetupError> {
        let setup = |reason: String| ProbeSetupError {
            probe: probe.name.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&probe.url)
            .map_err(|e| setup(format!("invalid url {:?}: {e}", probe.url)))?;
        let host = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
            .ok_or_else(|| setup(format!("url {:?} has no host", probe.url)))?;
        let port = url.port().ok_or_else(|| {
            setup(format!(
                "url {:?} has no port: expected tcp://host:port",
                probe.url
            ))
        })?;
        Ok(TcpProbe {
            host,
            port,
            send: probe.send.as_ref().map(|s| s.as_bytes().to_vec()),
            expect: probe.expect.clone().filter(|e| !e.is_empty()),
            timeout: probe.timeout.std(),
        })
    }

    pub async fn run(&self) -> ProbeResult {
        let started = tokio::time::Instant::now();
        let mut result = ProbeResult::default();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(&mut result)).await;
        let outcome = outcome.unwrap_or(Err(TcpProbeError::Timeout(self.timeout)));
        result.latency_ms = elapsed_ms(started);
        match outcome {
            Ok(()) => result.success = true,
            Err(e) => result.error = Some(e.to_string()),
        }
        result
    }

    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    async fn exchange(&self, result: &mut ProbeResult) -> Result<(), TcpProbeError> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| TcpProbeError::Connect {
                addr: self.addr(),
                source,
            })?;
        if let Some(bytes) = &self.send {
            let _ = stream.set_nodelay(true);
            stream
                .write_all(bytes)
                .await
                .map_err(|source| TcpProbeError::Send {
                    addr: self.addr(),
                    source,
                })?;
        }
        let Some(expected) = &self.expect else {
            return Ok(());
        };
        let mut answer = Answer::default();
        let mut buffer = [0u8; 4096];
        // The body is updated after every read so a timeout still shows what came.
        loop {
            let read = stream
                .read(&mut buffer)
                .await
                .map_err(|source| TcpProbeError::Read {
                    addr: self.addr(),
                    source,
                })?;
            if read == 0 {
                return Err(TcpProbeError::Closed {
                    addr: self.addr(),
                    expected: expected.clone(),
                });
            }
            let room = answer.push(&buffer[..read]);
            let text = answer.text();
            let found = text.contains(expected.as_str());
            result.body = Some(serde_json::Value::String(text));
            if found {
                return Ok(());
            }
            if !room {
                return Err(TcpProbeError::NotInAnswer {
                    addr: self.addr(),
                    expected: expected.clone(),
                    cap: super::BODY_CAP,
                });
            }
        }
    }
}
