//! Server-rendered HTML: minijinja templates embedded at compile time, auto-escaped (every
//! title, label and name comes from alerts, configs or people), and the headers every page
//! carries.

use std::sync::OnceLock;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::Environment;

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("index.html", include_str!("templates/index.html")),
    ("row.html", include_str!("templates/row.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("ack.html", include_str!("templates/ack.html")),
    ("case_ack.html", include_str!("templates/case_ack.html")),
    ("message.html", include_str!("templates/message.html")),
    ("login.html", include_str!("templates/login.html")),
    ("name.html", include_str!("templates/name.html")),
    ("history.html", include_str!("templates/history.html")),
    ("queues.html", include_str!("templates/queues.html")),
    ("silences.html", include_str!("templates/silences.html")),
    ("overrides.html", include_str!("templates/overrides.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("status.html", include_str!("templates/status.html")),
];

pub const CSS: &str = include_str!("static/dashboard.css");
pub const JS: &str = include_str!("static/dashboard.js");

/// Built once: the templates are constants of the binary. minijinja escapes HTML in every
/// template whose name ends in `.html`.
fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.add_filter("when", when);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("template {name} does not parse: {e}"));
        }
        env
    })
}

/// Render `name` with `context` as a page with `status`.
pub fn page(status: StatusCode, name: &str, context: minijinja::Value) -> Response {
    match templates()
        .get_template(name)
        .and_then(|t| t.render(context))
    {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>tocsin</title><p>This page failed to render; the engine log says why.</p>".to_string()),
            )
                .into_response()
        }
    }
}

/// A short page that says what happened, with a way on.
pub fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    page(
        status,
        "message.html",
        minijinja::context! {
            title => title,
            text => text,
            link_href => link.map(|l| l.0),
            link_text => link.map(|l| l.1),
        },
    )
}

/// Headers on every HTML page: no framing, no inline or foreign scripts or styles, forms post
/// only here, and no Referer to other sites (an ack link's token must not leak to whatever
/// page comes next). Not `no-referrer`: with it browsers send `Origin: null` even on
/// same-origin form posts, which would blind the CSRF check.
pub async fn html_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// `{{ t|when }}`: a time of [`time`] as a `<time>` element that carries it in UTC (its
/// `datetime`, and its title, shown on hover); `static/dashboard.js` writes it in the
/// viewer's time zone. Anything else is shown as it is (escaped).
fn when(value: minijinja::Value) -> minijinja::Value {
    let Some(text) = value.as_str() else {
        return if value.is_none() || value.is_undefined() {
            minijinja::Value::from("")
        } else {
            value
        };
    };
    match chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S UTC") {
        // Digits and punctuation only: nothing to escape.
        Ok(t) => minijinja::Value::from_safe_string(format!(
            "<time datetime=\"{}\" title=\"{text}\">{text}</time>",
            t.and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
        Err(_) => minijinja::Value::from(text),
    }
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn opt_time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(time)
}

/// "45s", "12m", "3h 5m", "2d 4h": how long ago, at a glance.
pub fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let secs = (now - then).num_seconds().max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match () {
        _ if d > 0 => format!("{d}d {h}h"),
        _ if h > 0 => format!("{h}h {m}m"),
        _ if m > 0 => format!("{m}m"),
        _ => format!("{secs}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            templates().get_template(name).unwrap();
        }
    }

    #[test]
    fn text_is_escaped() {
        let response = message(
            StatusCode::OK,
            "<script>alert(1)</script>",
            "a & b \"quoted\"",
            None,
        );
        let html = futures::executor::block_on(axum::body::to_bytes(response.into_body(), 1 << 20))
            .unwrap();
        let html = String::from_utf8(html.to_vec()).unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
        assert!(html.contains("a &amp; b &quot;quoted&quot;"), "{html}");
    }

    #[test]
    fn times_carry_utc_for_the_script_and_the_hover() {
        // A template named *.html, so that it escapes as the pages do.
        let mut env = Environment::new();
        env.add_filter("when", when);
        env.add_template("t.html", "{{ t|when }}").unwrap();
        let render = |_: &str, v: minijinja::Value| {
            env.get_template("t.html")
                .unwrap()
                .render(minijinja::context! { t => v })
                .unwrap()
        };
        assert_eq!(
            render("{{ t|when }}", "2026-01-05 10:00:00 UTC".into()),
            "<time datetime=\"2026-01-05T10:00:00Z\" title=\"2026-01-05 10:00:00 UTC\">\
             2026-01-05 10:00:00 UTC</time>"
        );
        assert_eq!(render("{{ t|when }}", minijinja::Value::from(())), "");
        assert_eq!(render("{{ t|when }}", "<b>".into()), "&lt;b&gt;");
    }

    #[test]
    fn ages_read_at_a_glance() {
        let now = DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let ago = |s: i64| age(now, now - chrono::Duration::seconds(s));
        assert_eq!(ago(45), "45s");
        assert_eq!(ago(12 * 60 + 5), "12m");
        assert_eq!(ago(3 * 3600 + 5 * 60), "3h 5m");
        assert_eq!(ago(2 * 86_400 + 4 * 3600), "2d 4h");
        assert_eq!(age(now, now + chrono::Duration::seconds(5)), "0s");
    }
}
