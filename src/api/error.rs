//! JSON errors: `{"error": "..."}` with the status code that says what went wrong.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::engine::{EngineError, Reply};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store read failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the store is not answering",
        )
    }
}

/// Map a core reply that is not a success to its status code.
pub fn reply_error(reply: Reply) -> Result<Reply, ApiError> {
    match reply {
        Reply::NotFound(m) => Err(ApiError::not_found(m)),
        Reply::Conflict(m) => Err(ApiError::new(StatusCode::CONFLICT, m)),
        other => Ok(other),
    }
}

/// Parse a JSON body; anything that is not what the endpoint takes is a 400 naming the field
/// and what it should be.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    use crate::decode::DecodeError;
    crate::decode::from_slice(body, "the body").map_err(|e| match e {
        DecodeError::NotUtf8 => ApiError::bad_request(e.to_string()),
        DecodeError::NotJson(why) | DecodeError::Invalid(why) => {
            ApiError::bad_request(format!("invalid JSON body: {why}"))
        }
    })
}

/// Parse a JSON object body into `T`. serde would also build a struct from a JSON array
/// (`["alice"]` as `{by}`), which no endpoint of ours takes: that is a 400 too.
pub fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if std::str::from_utf8(body).is_ok() && first != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid JSON body: expected a JSON object",
        ));
    }
    json_body(body)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such path")
}

/// Marks a response whose error body is meant as it is (e.g. the plain-text `/-/ready`
/// answer Prometheus tooling expects), so [`json_errors`] leaves it alone.
#[derive(Clone, Copy, Debug)]
pub struct KeepBody;

/// Error bodies larger than this are not worth echoing back.
const ECHO_LIMIT: usize = 4096;

/// `router` inside [`json_errors`], outside even its method routers: those add the `Allow`
/// header of a 405 after every layer of the router has seen the answer.
pub fn with_json_errors(router: axum::Router) -> axum::Router {
    axum::Router::new()
        .fallback_service(router)
        .layer(axum::middleware::map_response(json_errors))
}

/// Outermost layer: every error answer is `{"error": "..."}`, including those axum and
/// tower-http write themselves in plain text (413 from the body limit, 405 from the method
/// router, 400 from an extractor that could not parse the path or query). HTML pages (the
/// dashboard and ack links) and answers marked [`KeepBody`] pass through.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.extensions().get::<KeepBody>().is_some()
    {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let mut allowed = None;
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "request body too large: the limit is {} bytes (1 MiB)",
                super::MAX_BODY
            )
        }
        StatusCode::METHOD_NOT_ALLOWED => {
            let methods: Vec<String> = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            let message = format!("method not allowed here; allowed: {}", methods.join(", "));
            allowed = Some(methods);
            message
        }
        _ => {
            let text = axum::body::to_bytes(body, ECHO_LIMIT)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            if text.is_empty() {
                status.canonical_reason().unwrap_or("error").to_lowercase()
            } else {
                text
            }
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = match allowed {
        Some(methods) => serde_json::json!({ "error": message, "allowed": methods }),
        None => serde_json::json!({ "error": message }),
    }
    .to_string();
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn plain_text_errors_become_json() {
        let plain = (
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string",
        )
            .into_response();
        let out = json_errors(plain).await;
        assert_eq!(out.status(), StatusCode::BAD_REQUEST);
        assert_eq!(out.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_json(out).await["error"],
            "Failed to deserialize query string"
        );

        let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "length limit exceeded").into_response();
        let message = body_json(json_errors(too_large).await).await["error"].clone();
        assert!(message.as_str().unwrap().contains("1 MiB"), "{message}");

        let mut not_allowed = StatusCode::METHOD_NOT_ALLOWED.into_response();
        not_allowed
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        let out = json_errors(not_allowed).await;
        assert_eq!(out.headers()[header::ALLOW], "GET,HEAD");
        let body = body_json(out).await;
        assert_eq!(body["error"], "method not allowed here; allowed: GET, HEAD");
        assert_eq!(body["allowed"], serde_json::json!(["GET", "HEAD"]));
    }

    #[tokio::test]
    async fn json_html_successes_and_kept_bodies_pass_through() {
        let ok = (StatusCode::OK, "fine").into_response();
        assert!(json_errors(ok)
            .await
            .headers()
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let html = (StatusCode::FORBIDDEN, axum::response::Html("<p>no</p>")).into_response();
        let out = json_errors(html).await;
        assert!(out.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let mut kept = (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response();
        kept.extensions_mut().insert(KeepBody);
        let out = json_errors(kept).await;
        assert!(out.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }
}
