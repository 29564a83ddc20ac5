//! Bearer-token auth on /api/* when `server.auth.tokens_file` is set.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// Does the presented token match one of the configured ones? Every token is compared, in
/// constant time, so timing tells nothing about which or how much matched.
pub fn token_matches(tokens: &[String], presented: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// Middleware: 401 without a valid `Authorization: Bearer <token>` when tokens are configured.
pub async fn require_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: axum::extract::Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !state.tokens().is_empty() {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !token_matches(&state.tokens(), presented) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token",
            ));
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_whole_tokens() {
        let tokens = vec!["s3cret".to_string(), "other".to_string()];
        assert!(token_matches(&tokens, "s3cret"));
        assert!(token_matches(&tokens, "other"));
        assert!(!token_matches(&tokens, "s3cre"));
        assert!(!token_matches(&tokens, ""));
        assert!(!token_matches(&[], "x"));
    }
}
