//! Bearer-token auth and roles, when `server.auth.tokens_file` is set.
//!
//! Each line of the tokens file is `NAME ROLE TOKEN` (or a bare `TOKEN`: every role, no
//! name). Roles are ordered viewer < responder < admin, with `ingest` apart (pushing signals
//! only; responder and admin may ingest too): see [`Role::grants`].
//!
//! Two checks, one per layer:
//! - [`require_token`], a router's `route_layer`: 401 without a token of the file (every
//!   `/api/*` router has it).
//! - [`Need`], a handler's first argument, says which role the route needs: a handler that
//!   takes `Need<need::Responder>` answers 403 to a token without that role, naming the role
//!   needed, before its body is read. The [`Caller`] it holds says who acts (`by`) and from
//!   which address, for the audit log (`api::audit::record`). Every route that acts or reads
//!   takes one; a new route picks the role its action belongs to:
//!
//! ```ignore
//! async fn escalate(Need(caller, ..): Need<need::Responder>, State(state): State<AppState>, …)
//! ```
//!
//! With auth off every caller is nameless and holds every role.

use std::marker::PhantomData;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
pub use crate::config::secrets::{ApiToken, Role};

/// Does the presented token match one of the configured ones? Every token is compared, in
/// constant time, so timing tells nothing about which or how much matched.
pub fn token_matches(tokens: &[String], presented: &str) -> bool {
    tokens.iter().fold(false, |found, token| {
        found | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
    })
}

/// The configured token `presented` is, if any. Every token is compared in constant time,
/// as in [`token_matches`].
pub fn find_token<'a>(tokens: &'a [ApiToken], presented: &str) -> Option<&'a ApiToken> {
    tokens.iter().fold(None, |found, token| {
        let equal = bool::from(token.token.as_bytes().ct_eq(presented.as_bytes()));
        if equal {
            Some(token)
        } else {
            found
        }
    })
}

/// Who makes a request: the token's name and role (nameless and every role without auth, or
/// with a bare token), and the client's address.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: Option<String>,
    pub role: Role,
    pub address: String,
}

impl Caller {
    /// The caller a token stands for.
    pub fn of(token: Option<&ApiToken>, address: String) -> Caller {
        Caller {
            name: token.and_then(|t| t.name.clone()),
            role: token.map_or(Role::Admin, |t| t.role),
            address,
        }
    }

    /// Who acts: the token's name; a nameless caller is who the request says (`by`).
    pub fn by(&self, said: &str) -> String {
        self.name.clone().unwrap_or_else(|| said.to_string())
    }

    /// 403 unless this caller's role grants `needed`.
    pub fn need(&self, needed: Role) -> Result<(), ApiError> {
        if self.role.grants(needed) {
            return Ok(());
        }
        let whose = match &self.name {
            Some(name) => format!("the token of {name:?}"),
            None => "this token".to_string(),
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "this needs the {needed} role; {whose} has the {} role",
                self.role
            ),
        ))
    }
}

/// The bearer token a request presents, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The client's address (its IP), as the server saw it.
pub fn address(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default()
}

/// A handler argument: the client's address (see [`address`]).
pub struct ClientAddress(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(address(&parts.extensions)))
    }
}

/// Who presents these headers: 401 when tokens are configured and none of them is presented.
pub fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, ApiError> {
    let tokens = state.tokens();
    let address = address(&parts.extensions);
    if tokens.is_empty() {
        return Ok(Caller::of(None, address));
    }
    match find_token(&tokens, bearer(&parts.headers).unwrap_or("")) {
        Some(token) => Ok(Caller::of(Some(token), address)),
        None => Err(unauthorized()),
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
}

/// Middleware: 401 without a valid `Authorization: Bearer <token>` when tokens are configured.
pub async fn require_token(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let caller = authenticate(&state, &parts)?;
    let mut request = axum::extract::Request::from_parts(parts, body);
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The role a route needs, as a type: `Need<need::Admin>`.
pub trait Needed: Send + Sync {
    const ROLE: Role;
}

/// The roles as types, for [`Need`].
pub mod need {
    use super::{Needed, Role};

    pub struct Viewer;
    pub struct Ingest;
    pub struct Responder;
    pub struct Admin;

    impl Needed for Viewer {
        const ROLE: Role = Role::Viewer;
    }
    impl Needed for Ingest {
        const ROLE: Role = Role::Ingest;
    }
    impl Needed for Responder {
        const ROLE: Role = Role::Responder;
    }
    impl Needed for Admin {
        const ROLE: Role = Role::Admin;
    }
}

/// A handler argument: the request's caller, whose role grants `R` (else 401 or 403).
pub struct Need<R: Needed>(pub Caller, pub PhantomData<R>);

impl<R: Needed> FromRequestParts<AppState> for Need<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Authenticated already by `require_token` on /api/*; the admin plane's routes
        // (`/-/reload`) have no such layer.
        let caller = match parts.extensions.get::<Caller>() {
            Some(caller) => caller.clone(),
            None => authenticate(state, parts)?,
        };
        caller.need(R::ROLE)?;
        Ok(Need(caller, PhantomData))
    }
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

    #[test]
    fn finds_the_token_presented_with_its_name_and_role() {
        let tokens = crate::config::secrets::parse_tokens("vic viewer v1\nbare\n").unwrap();
        assert_eq!(
            find_token(&tokens, "v1").unwrap().name.as_deref(),
            Some("vic")
        );
        assert_eq!(find_token(&tokens, "bare").unwrap().role, Role::Admin);
        assert!(find_token(&tokens, "v").is_none());
        assert!(find_token(&tokens, "").is_none());
    }

    #[test]
    fn a_refusal_names_the_role_needed() {
        let token = ApiToken {
            name: Some("vic".into()),
            role: Role::Viewer,
            token: "t".into(),
        };
        let caller = Caller::of(Some(&token), "127.0.0.1".into());
        assert!(caller.need(Role::Viewer).is_ok());
        let refusal = caller.need(Role::Responder).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.message,
            "this needs the responder role; the token of \"vic\" has the viewer role"
        );
        assert_eq!(caller.by("someone else"), "vic");
        let nameless = Caller::of(None, String::new());
        assert_eq!(nameless.by("alice"), "alice");
        assert!(nameless.need(Role::Admin).is_ok());
    }
}
