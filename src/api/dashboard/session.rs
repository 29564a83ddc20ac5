//! How the dashboard knows who may look and act when API auth is on.
//!
//! The same bearer tokens as `/api/*`: a request may carry `Authorization: Bearer <token>`,
//! or a person signs in once on `/login` and gets an HttpOnly cookie. The cookie does not hold
//! the token itself but an HMAC derived from it, so a leaked cookie cannot call the API, and
//! it stops working when its token is removed from the tokens file. Forms post only from the
//! dashboard's own pages: cookies are SameSite=Lax and a cross-site Origin is refused.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::super::auth::{bearer, find_token, Caller, Role};
use super::super::AppState;

pub const SESSION_COOKIE: &str = "tocsin_session";
/// The name this browser acts under when its token has none: asked once (`/name`, or the
/// header's field) and recorded as `by` on every action.
pub const BY_COOKIE: &str = "tocsin_by";
/// One on-call shift.
const SESSION_SECONDS: u32 = 12 * 3600;

/// The cookie value that stands for `token`.
fn session_value(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"tocsin dashboard session v1");
    hex::encode(mac.finalize().into_bytes())
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Who makes this dashboard request: by bearer token or session cookie; `None` when auth is
/// on and neither is valid. Without auth, a nameless caller with every role.
pub fn caller(state: &AppState, headers: &HeaderMap, address: String) -> Option<Caller> {
    let tokens = state.tokens();
    if tokens.is_empty() {
        return Some(Caller::of(None, address));
    }
    if let Some(token) = bearer(headers) {
        return find_token(&tokens, token).map(|t| Caller::of(Some(t), address));
    }
    let presented = cookie(headers, SESSION_COOKIE)?;
    // Every token is tried, in constant time, as for bearer tokens.
    let found = tokens.iter().fold(None, |found, token| {
        let equal = bool::from(
            session_value(&token.token)
                .as_bytes()
                .ct_eq(presented.as_bytes()),
        );
        if equal {
            Some(token)
        } else {
            found
        }
    });
    found.map(|t| Caller::of(Some(t), address))
}

/// May this request see the dashboard?
pub fn authorized(state: &AppState, headers: &HeaderMap) -> bool {
    caller(state, headers, String::new()).is_some_and(|c| c.role.grants(Role::Viewer))
}

/// The redirect to `/login` when the request may not see the dashboard.
pub fn login_needed(state: &AppState, headers: &HeaderMap, here: &str) -> Option<Response> {
    (!authorized(state, headers))
        .then(|| Redirect::to(&format!("/login?next={}", encode(here))).into_response())
}

/// Browsers say where a form was posted from; refuse posts from other sites (CSRF).
/// `Sec-Fetch-Site` is trusted when present (a page cannot forge it); otherwise `Origin` must
/// name this host. Requests with neither (curl, scripts) are judged by their credentials alone.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // "none": the user's own doing (typed, bookmarked); "same-site" would let another
        // port or subdomain post here, so it is refused too.
        return site == "same-origin" || site == "none";
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

pub fn forbidden_cross_site() -> Response {
    super::render::message(
        StatusCode::FORBIDDEN,
        "Refused",
        "This form was posted from another site. Open the dashboard and try again there.",
        Some(("/", "Open the dashboard")),
    )
}

/// Sign in with `token`: the cookie on success, `None` when the token is not accepted.
pub fn login_cookie(state: &AppState, token: &str) -> Option<HeaderValue> {
    find_token(&state.tokens(), token)?;
    let secure = if state.setup().external_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={SESSION_SECONDS}{secure}",
        session_value(token)
    ))
    .ok()
}

pub fn logout_cookie() -> HeaderValue {
    HeaderValue::from_static("tocsin_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

pub fn by_cookie(by: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{BY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000",
        encode(by)
    ))
    .ok()
}

/// The name this browser acts under (empty when it has not given one).
pub fn remembered_by(headers: &HeaderMap) -> String {
    cookie(headers, BY_COOKIE)
        .and_then(|v| decode(&v))
        .unwrap_or_default()
}

/// Only paths of this site: `/x`, not `//evil.example` or `https://…` (open redirects).
pub fn safe_next(next: &str) -> &str {
    // Browsers drop tabs and newlines from a URL before reading it, so "/\t/evil.example"
    // would become "//evil.example": no control character may pass either.
    if next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
    {
        next
    } else {
        "/"
    }
}

/// Percent-encode everything but unreserved characters and `/`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn session_values_differ_from_the_token_and_between_tokens() {
        let a = session_value("token-a");
        assert_ne!(a, "token-a");
        assert!(!a.contains("token-a"));
        assert_ne!(a, session_value("token-b"));
        assert_eq!(a, session_value("token-a"));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = headers(&[("cookie", "a=1; tocsin_by=al%20ice"), ("cookie", "b=2")]);
        assert_eq!(cookie(&h, "a").as_deref(), Some("1"));
        assert_eq!(cookie(&h, "b").as_deref(), Some("2"));
        assert_eq!(remembered_by(&h), "al ice");
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:9470"),
            ("host", "127.0.0.1:9470")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:9470")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "null"),
            ("host", "127.0.0.1:9470")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        // The browser's own word wins over an Origin a referrer policy blanked out.
        assert!(same_origin(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "null")
        ])));
    }

    #[test]
    fn redirects_stay_on_this_site() {
        assert_eq!(safe_next("/incidents/3"), "/incidents/3");
        assert_eq!(safe_next("//evil.example/x"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
        assert_eq!(safe_next("/\t/evil.example"), "/");
        assert_eq!(safe_next("/\n/evil.example"), "/");
        assert_eq!(safe_next("/\r\n/evil.example"), "/");
    }

    #[test]
    fn encoding_round_trips() {
        for text in ["alice", "Zoë O'Brien", "a;b=c, d", "/incidents/1?x=y"] {
            assert_eq!(decode(&encode(text)).as_deref(), Some(text));
        }
        assert_eq!(decode("%zz"), None);
    }
}
