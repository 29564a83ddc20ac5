//! Webhook pages with reqwest: the payload as JSON, signed when the webhook has a secret.

use std::collections::BTreeMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use sha2::Sha256;

use super::error::{chain, NotifyError};
use super::format;
use super::retry::parse_retry_after;
use super::templates::{body_name, header_name, Templates};
use crate::config::secrets::read_secret;
use crate::config::{Config, WebhookConfig, WebhookFormat};
use crate::paging::Page;

/// A webhook secret; its Debug output never shows it.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`, the value of `X-Tocsin-Signature`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One configured webhook, ready to send.
pub struct Webhook {
    name: String,
    /// Never put in a message or log: URLs of chat webhooks often carry a token.
    url: String,
    timeout: Duration,
    /// The secret, or why the secret file could not be read.
    secret: Result<Option<Secret>, String>,
    /// The configured `headers`, or why one of them is not a valid HTTP header.
    headers: Result<HeaderMap, String>,
    format: WebhookFormat,
    /// `format: pagerduty`: the routing key, or why its file could not be read.
    routing_key: Result<Option<Secret>, String>,
    topic: Option<String>,
    /// `template.headers`: each header's name and its template's name.
    header_templates: Vec<(HeaderName, String)>,
}

impl Webhook {
    pub fn new(config: &Config, hook: &WebhookConfig) -> Webhook {
        let secret = match &hook.secret_file {
            None => Ok(None),
            Some(file) => read_secret(&config.resolve_path(file))
                .map(|s| Some(Secret(s)))
                .map_err(|e| e.to_string()),
        };
        let routing_key = match &hook.routing_key_file {
            None => Ok(None),
            Some(file) => read_secret(&config.resolve_path(file))
                .map(|s| Some(Secret(s)))
                .map_err(|e| e.to_string()),
        };
        Webhook {
            name: hook.name.clone(),
            url: hook.url.clone(),
            timeout: hook.timeout.std(),
            secret,
            headers: header_map(&hook.headers),
            format: hook.format,
            routing_key,
            topic: hook.topic.clone(),
            header_templates: hook
                .template
                .iter()
                .flat_map(|t| t.headers.keys())
                .filter_map(|h| {
                    let name = HeaderName::from_bytes(h.as_bytes()).ok()?;
                    Some((name, header_name(&hook.name, h)))
                })
                .collect(),
        }
    }

    /// The body this webhook sends for `page`: `tocsin` sends the payload (`payload_body`,
    /// serialized once), the other formats their product's JSON.
    pub fn body(
        &self,
        page: &Page,
        payload_body: &[u8],
        templates: &Templates,
    ) -> Result<Vec<u8>, NotifyError> {
        match templates.render(&body_name(&self.name), &page.payload, &page.delivery_id) {
            Some(Ok(body)) => return Ok(body.into_bytes()),
            Some(Err(error)) => {
                tracing::error!(%error, "webhook body template failed; the format's body is sent")
            }
            None => {}
        }
        let routing_key = self
            .routing_key
            .as_ref()
            .map_err(|reason| NotifyError::Config {
                notifier: format!("webhook {:?}", self.name),
                reason: reason.clone(),
            })?;
        let key = routing_key
            .as_ref()
            .map(|Secret(k)| String::from_utf8_lossy(k).trim().to_string());
        let extras = format::Extras {
            routing_key: key.as_deref(),
            topic: self.topic.as_deref(),
        };
        match format::body(self.format, &page.payload, &extras) {
            None => Ok(payload_body.to_vec()),
            // Plain data with string keys: serializing cannot fail.
            Some(value) => Ok(serde_json::to_vec(&value).expect("a format body serializes")),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// POST the page's body (the same bytes on every attempt).
    pub async fn send(
        &self,
        client: &reqwest::Client,
        page: &Page,
        body: &[u8],
        templates: &Templates,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), NotifyError> {
        let config_error = |reason: &String| NotifyError::Config {
            notifier: format!("webhook {:?}", self.name),
            reason: reason.clone(),
        };
        let secret = self.secret.as_ref().map_err(config_error)?;
        let body = &self.body(page, body, templates)?[..];
        // Configured headers first, then ours, so the contract headers cannot be overridden.
        let mut headers = self.headers.as_ref().map_err(config_error)?.clone();
        for (name, template) in &self.header_templates {
            let rendered = templates.render(template, &page.payload, &page.delivery_id);
            match rendered.map(|r| r.map(|v| HeaderValue::from_str(v.trim()))) {
                Some(Ok(Ok(value))) => {
                    headers.insert(name.clone(), value);
                }
                Some(Ok(Err(_))) => tracing::error!(
                    webhook = %self.name,
                    header = %name,
                    "header template renders no valid header value; header left out"
                ),
                Some(Err(error)) => {
                    tracing::error!(%error, "header template failed; header left out")
                }
                None => {}
            }
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tocsin/", env!("CARGO_PKG_VERSION"))),
        );
        headers.insert(
            HeaderName::from_static("x-tocsin-event"),
            HeaderValue::from_static(page.event.as_str()),
        );
        headers.insert(
            HeaderName::from_static("x-tocsin-delivery"),
            HeaderValue::from_str(&page.delivery_id).map_err(|_| NotifyError::Internal {
                recipient: page.recipient.id.clone(),
                reason: "delivery id is not a valid header value".into(),
            })?,
        );
        if let Some(Secret(key)) = secret {
            let value = HeaderValue::from_str(&signature(key, body)).expect("hex is ASCII");
            headers.insert(HeaderName::from_static("x-tocsin-signature"), value);
        }
        let sent = client
            .post(&self.url)
            .headers(headers)
            .timeout(self.timeout)
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return Err(NotifyError::WebhookTimeout {
                    webhook: self.name.clone(),
                    timeout: self.timeout,
                })
            }
            Err(e) => {
                return Err(NotifyError::WebhookTransport {
                    webhook: self.name.clone(),
                    // Without the URL: it may carry a token.
                    reason: chain(&e.without_url()),
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let detail = answer_detail(response).await;
        let code = status.as_u16();
        // 5xx, 429 Too Many Requests and 408 Request Timeout may pass; any other answer
        // (4xx, or a redirect we do not follow) says the request itself is wrong.
        if status.is_server_error() || code == 429 || code == 408 {
            Err(NotifyError::Unavailable {
                webhook: self.name.clone(),
                status: code,
                detail,
                retry_after,
            })
        } else {
            Err(NotifyError::Rejected {
                webhook: self.name.clone(),
                status: code,
                detail,
            })
        }
    }
}

/// The start of the receiver's answer, for the timeline (`: text`), on one line.
async fn answer_detail(response: reqwest::Response) -> String {
    let reason = response
        .status()
        .canonical_reason()
        .map(|r| format!(" {r}"))
        .unwrap_or_default();
    // Only the start is shown: read at most this much of an answer of any size.
    const READ: usize = 4096;
    let mut response = response;
    let mut bytes = Vec::new();
    while bytes.len() < READ {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk[..chunk.len().min(READ - bytes.len())])
            }
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut snippet: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    snippet = snippet.trim().to_string();
    if snippet.is_empty() {
        reason
    } else {
        format!("{reason}: {snippet}")
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("header name {name:?} is not a valid HTTP header name"))?;
        // The value may be a credential: name the header, never show the value.
        let value = HeaderValue::from_str(value).map_err(|_| {
            format!("the value of header {name:?} is not a valid HTTP header value")
        })?;
        map.insert(header, value);
    }
    Ok(map)
}

/// The HTTP client every webhook shares.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Connections are kept between pages, as Alertmanager's client keeps its own: a burst
        // of pages to one receiver does not open a connection per page. A kept connection
        // the receiver has closed is dropped from the pool when its close arrives, and a
        // request that finds it closed before a byte was sent is sent again on a new one
        // (hyper), so a page does not fail for it. Idle ones go after 4 s, before the
        // shortest common server keep-alive (Node.js closes idle connections after 5 s), so
        // the pool rarely races a close.
        .pool_idle_timeout(Duration::from_secs(4))
        .pool_max_idle_per_host(8)
        // A redirected POST may turn into a GET; a webhook URL that redirects is wrong.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("the HTTP client builds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn bad_headers_name_the_header_not_the_value() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_string(), "Bearer s3cret\n".to_string());
        let err = header_map(&headers).unwrap_err();
        assert!(err.contains("Authorization"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let mut headers = BTreeMap::new();
        headers.insert("X-Team".to_string(), "storage".to_string());
        assert_eq!(header_map(&headers).unwrap()["x-team"], "storage");
    }

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(
            format!("{:?}", Secret(b"abc".to_vec())),
            "Secret(<redacted>)"
        );
    }
}
