//! Pushed alerts: Alertmanager's `POST /api/v2/alerts` body (what Prometheus sends its
//! alertmanagers) and Alertmanager's webhook payload (version 4). Each item is decoded on
//! its own: a bad item is named and rejected, the good items of the same batch are kept.

use chrono::{DateTime, Datelike, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::signal::{LabelSet, Signal, SignalState, SourceKind};

/// Most labels one alert may carry.
pub const MAX_LABELS: usize = 256;
/// Largest annotation (the summary included), in bytes.
pub const MAX_ANNOTATION: usize = 64 * 1024;

/// The body as a whole is not what the endpoint takes (400).
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("the body is not valid UTF-8")]
    NotUtf8,
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("expected {expected}, got {got}")]
    Shape { expected: &'static str, got: String },
    #[error("field {field:?}: expected {expected}, got {got}")]
    Field {
        field: &'static str,
        expected: &'static str,
        got: String,
    },
}

/// What is wrong with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// Not the shape an alert has (a missing field, a wrong type, a bad timestamp): 400.
    Type,
    /// Well-formed but not allowed (too many labels, a bad label name, too big): 422.
    Value,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub index: usize,
    pub problem: Problem,
    pub reason: String,
}

/// A decoded batch: the signals of the good items and why each bad one was rejected.
#[derive(Debug, Default)]
pub struct Decoded {
    pub signals: Vec<Signal>,
    pub rejected: Vec<Rejection>,
}

impl Decoded {
    /// The signals of the good items, and each bad item by its index.
    fn of(items: impl Iterator<Item = Result<Signal, (Problem, String)>>) -> Decoded {
        let mut decoded = Decoded::default();
        for (index, item) in items.enumerate() {
            match item {
                Ok(signal) => decoded.signals.push(signal),
                Err((problem, reason)) => decoded.rejected.push(Rejection {
                    index,
                    problem,
                    reason,
                }),
            }
        }
        decoded
    }
}

/// One item of `POST /api/v2/alerts` (Alertmanager's `postableAlert`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert {
    labels: LabelSet,
    #[serde(default)]
    annotations: Option<LabelSet>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

/// One alert of a webhook payload.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookAlert {
    status: WebhookStatus,
    labels: LabelSet,
    #[serde(default)]
    annotations: Option<LabelSet>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
}

#[derive(Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
enum WebhookStatus {
    Firing,
    Resolved,
}

/// `POST /api/v2/alerts`: `endsAt` is the alert's lease. In the past, the alert is resolved;
/// in the future, it fires until then unless refreshed; missing (or Go's zero time), it
/// fires for `resolve_timeout`, as Alertmanager does.
pub fn decode_alerts(
    body: &[u8],
    now: DateTime<Utc>,
    resolve_timeout: chrono::Duration,
) -> Result<Decoded, BodyError> {
    // Fast path: the whole batch in one pass, straight into the alerts' own types. Only a
    // batch with a bad item is read again item by item, to name each bad one.
    if let Ok(alerts) = serde_json::from_slice::<Vec<PostableAlert>>(body) {
        return Ok(Decoded::of(
            alerts
                .into_iter()
                .map(|alert| postable(alert, now, resolve_timeout)),
        ));
    }
    let items = match parse(body)? {
        Value::Array(items) => items,
        other => {
            return Err(BodyError::Shape {
                expected: "a JSON array of alerts",
                got: kind_of(&other),
            })
        }
    };
    Ok(Decoded::of(items.into_iter().map(|item| {
        typed(&item).and_then(|alert| postable(alert, now, resolve_timeout))
    })))
}

fn postable(
    alert: PostableAlert,
    now: DateTime<Utc>,
    resolve_timeout: chrono::Duration,
) -> Result<Signal, (Problem, String)> {
    let starts_at = match &alert.starts_at {
        None => None,
        Some(text) => timestamp("startsAt", text)?,
    };
    let ends_at = match &alert.ends_at {
        None => None,
        Some(text) => timestamp("endsAt", text)?,
    };
    ordered(starts_at, ends_at)?;
    let mut signal = alert_signal(alert.labels, alert.annotations, now)?;
    signal.set_generator_url(alert.generator_url.as_deref());
    match ends_at {
        Some(end) if end <= now => signal.state = SignalState::Resolved,
        Some(end) => signal.expires_at = Some(end),
        None => signal.expires_at = Some(now + resolve_timeout),
    }
    Ok(signal)
}

/// An alert that ends before it starts is refused, as Alertmanager refuses it (its
/// `Alert.Validate`: "start time must be before end time"); the same time is fine.
fn ordered(
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
) -> Result<(), (Problem, String)> {
    match (starts_at, ends_at) {
        (Some(start), Some(end)) if end < start => Err((
            Problem::Type,
            format!(
                "endsAt {} is before startsAt {}: start time must be before end time",
                end.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
                start.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            ),
        )),
        _ => Ok(()),
    }
}

/// `POST /api/v1/alertmanager`: Alertmanager tells when an alert resolves, so a firing one
/// carries no lease (its `endsAt` is the zero time while it fires).
pub fn decode_webhook(body: &[u8], now: DateTime<Utc>) -> Result<Decoded, BodyError> {
    let mut payload = match parse(body)? {
        Value::Object(payload) => payload,
        other => {
            return Err(BodyError::Shape {
                expected: "a webhook payload object",
                got: kind_of(&other),
            })
        }
    };
    match payload.get("version") {
        None => {}
        Some(Value::String(v)) if v == "4" => {}
        Some(other) => {
            return Err(BodyError::Field {
                field: "version",
                expected: "\"4\" (the webhook payload version tocsin reads)",
                got: match other {
                    Value::String(_) => format!("version {other}"),
                    other => kind_of(other),
                },
            })
        }
    }
    let items = match payload.remove("alerts") {
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(BodyError::Field {
                field: "alerts",
                expected: "an array of alerts",
                got: kind_of(&other),
            })
        }
        None => {
            return Err(BodyError::Field {
                field: "alerts",
                expected: "an array of alerts",
                got: "nothing (the field is missing)".into(),
            })
        }
    };
    Ok(Decoded::of(
        items.into_iter().map(|item| webhook_alert(item, now)),
    ))
}

fn webhook_alert(item: Value, now: DateTime<Utc>) -> Result<Signal, (Problem, String)> {
    let alert: WebhookAlert = typed(&item)?;
    let mut times = [None, None];
    for (i, (field, text)) in [("startsAt", &alert.starts_at), ("endsAt", &alert.ends_at)]
        .into_iter()
        .enumerate()
    {
        if let Some(text) = text {
            times[i] = timestamp(field, text)?;
        }
    }
    ordered(times[0], times[1])?;
    let mut signal = alert_signal(alert.labels, alert.annotations, now)?;
    signal.set_generator_url(alert.generator_url.as_deref());
    if alert.status == WebhookStatus::Resolved {
        signal.state = SignalState::Resolved;
    }
    Ok(signal)
}

fn parse(body: &[u8]) -> Result<Value, BodyError> {
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotUtf8)?;
    serde_json::from_str(text).map_err(|e| BodyError::NotJson(e.to_string()))
}

fn kind_of(value: &Value) -> String {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
    .to_string()
}

/// One item as an alert; the error names the field and what it should be.
fn typed<T: serde::de::DeserializeOwned>(item: &Value) -> Result<T, (Problem, String)> {
    crate::decode::from_value(item, "").map_err(|e| (Problem::Type, e.to_string()))
}

/// An RFC 3339 time; Go's zero time (`0001-01-01T00:00:00Z`, what Alertmanager sends for
/// "not set") reads as none.
fn timestamp(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, (Problem, String)> {
    let at = DateTime::parse_from_rfc3339(text).map_err(|_| {
        let shown: String = text.chars().take(64).collect();
        (
            Problem::Type,
            format!(
                "field {field:?}: expected an RFC 3339 time such as 2026-01-05T09:00:00Z, got \
                 {shown:?}"
            ),
        )
    })?;
    let at = at.with_timezone(&Utc);
    Ok((at.year() > 1).then_some(at))
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The signal of one alert, after the checks on its values.
fn alert_signal(
    labels: LabelSet,
    annotations: Option<LabelSet>,
    now: DateTime<Utc>,
) -> Result<Signal, (Problem, String)> {
    let value = |reason: String| (Problem::Value, reason);
    if labels.is_empty() {
        return Err(value("an alert needs at least one label".into()));
    }
    if labels.len() > MAX_LABELS {
        return Err(value(format!(
            "{} labels, at most {MAX_LABELS} allowed",
            labels.len()
        )));
    }
    if let Some(bad) = labels.keys().find(|name| !is_label_name(name)) {
        return Err(value(format!(
            "label name {bad:?} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]*"
        )));
    }
    let annotations = annotations.unwrap_or_default();
    if let Some(bad) = annotations.keys().find(|name| !is_label_name(name)) {
        return Err(value(format!(
            "annotation name {bad:?} is invalid: expected [a-zA-Z_][a-zA-Z0-9_]*"
        )));
    }
    if let Some((name, text)) = annotations.iter().find(|(_, v)| v.len() > MAX_ANNOTATION) {
        return Err(value(format!(
            "annotation {name:?} is {} bytes, at most {MAX_ANNOTATION} allowed",
            text.len()
        )));
    }
    let mut signal = Signal::new(SourceKind::Alert, labels, now);
    signal.annotations = std::sync::Arc::new(annotations);
    Ok(signal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
    }

    fn minutes(n: i64) -> chrono::Duration {
        chrono::Duration::minutes(n)
    }

    fn alerts(body: Value) -> Decoded {
        decode_alerts(body.to_string().as_bytes(), now(), minutes(5)).unwrap()
    }

    #[test]
    fn ends_at_is_the_lease() {
        let d = alerts(json!([
            { "labels": { "alertname": "Future" }, "endsAt": "2026-01-05T09:03:00Z" },
            { "labels": { "alertname": "Past" }, "endsAt": "2026-01-05T08:59:00+00:00" },
            { "labels": { "alertname": "Missing" } },
            { "labels": { "alertname": "Zero" }, "endsAt": "0001-01-01T00:00:00Z",
              "startsAt": "2026-01-05T08:00:00Z", "generatorURL": "http://prom/graph" },
        ]));
        assert!(d.rejected.is_empty(), "{:?}", d.rejected);
        let by_name = |n: &str| {
            d.signals
                .iter()
                .find(|s| s.label("alertname") == Some(n))
                .unwrap()
        };
        assert_eq!(by_name("Future").state, SignalState::Firing);
        assert_eq!(by_name("Future").expires_at, Some(now() + minutes(3)));
        assert_eq!(by_name("Past").state, SignalState::Resolved);
        assert_eq!(by_name("Missing").expires_at, Some(now() + minutes(5)));
        assert_eq!(by_name("Zero").expires_at, Some(now() + minutes(5)));
        assert_eq!(by_name("Zero").source, SourceKind::Alert);
    }

    #[test]
    fn a_web_generator_url_is_kept_among_the_annotations() {
        let d = alerts(json!([
            { "labels": { "alertname": "Web" }, "generatorURL": "http://prom:9090/graph?g0.expr=up" },
            { "labels": { "alertname": "Script" }, "generatorURL": "javascript:alert(1)" },
            { "labels": { "alertname": "Empty" }, "generatorURL": "" },
        ]));
        let url = |i: usize| d.signals[i].annotations.get(crate::signal::GENERATOR_URL);
        assert_eq!(url(0), Some("http://prom:9090/graph?g0.expr=up"));
        assert_eq!((url(1), url(2)), (None, None));
        let d = decode_webhook(
            json!({ "version": "4", "alerts": [{ "status": "firing",
                "labels": { "alertname": "A" }, "generatorURL": "https://prom/graph" }] })
            .to_string()
            .as_bytes(),
            now(),
        )
        .unwrap();
        assert_eq!(
            d.signals[0].annotations.get(crate::signal::GENERATOR_URL),
            Some("https://prom/graph")
        );
    }

    #[test]
    fn bad_items_are_named_and_good_ones_kept() {
        let many: std::collections::BTreeMap<String, String> = (0..=MAX_LABELS)
            .map(|i| (format!("l{i}"), "v".to_string()))
            .collect();
        let d = alerts(json!([
            { "labels": { "alertname": "Good" }, "annotations": { "summary": "fine" } },
            { "labels": { "alertname": 5 } },
            { "annotations": {} },
            { "labels": { "a": "b" }, "endsAt": "yesterday" },
            { "labels": many },
            { "labels": { "bad-name": "x" } },
            { "labels": { "a": "b" }, "annotations": { "summary": "x".repeat(MAX_ANNOTATION + 1) } },
            "not an object",
            { "labels": {} },
        ]));
        assert_eq!(d.signals.len(), 1);
        assert_eq!(&d.signals[0].annotations["summary"], "fine");
        let got: Vec<(usize, Problem)> = d.rejected.iter().map(|r| (r.index, r.problem)).collect();
        assert_eq!(
            got,
            [
                (1, Problem::Type),
                (2, Problem::Type),
                (3, Problem::Type),
                (4, Problem::Value),
                (5, Problem::Value),
                (6, Problem::Value),
                (7, Problem::Type),
                (8, Problem::Value),
            ]
        );
        assert!(
            d.rejected[0].reason.contains("labels.alertname"),
            "{:?}",
            d.rejected[0]
        );
        assert!(
            d.rejected[1].reason.contains("labels"),
            "{:?}",
            d.rejected[1]
        );
        assert!(
            d.rejected[2].reason.contains("endsAt"),
            "{:?}",
            d.rejected[2]
        );
        assert!(
            d.rejected[3].reason.contains("257 labels"),
            "{:?}",
            d.rejected[3]
        );
        assert!(
            d.rejected[4].reason.contains("bad-name"),
            "{:?}",
            d.rejected[4]
        );
        assert!(
            d.rejected[5].reason.contains("summary"),
            "{:?}",
            d.rejected[5]
        );
    }

    #[test]
    fn an_alert_that_ends_before_it_starts_is_refused_as_alertmanager_refuses_it() {
        let d = alerts(json!([
            { "labels": { "alertname": "Backwards" }, "startsAt": "2026-01-05T09:00:00Z",
              "endsAt": "2026-01-05T08:00:00Z" },
            { "labels": { "alertname": "Instant" }, "startsAt": "2026-01-05T08:00:00Z",
              "endsAt": "2026-01-05T08:00:00Z" },
            { "labels": { "alertname": "Zero" }, "startsAt": "2026-01-05T08:00:00Z",
              "endsAt": "0001-01-01T00:00:00Z" },
        ]));
        assert_eq!(d.signals.len(), 2, "{:?}", d.rejected);
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(
            (d.rejected[0].index, d.rejected[0].problem),
            (0, Problem::Type)
        );
        assert_eq!(
            d.rejected[0].reason,
            "endsAt 2026-01-05T08:00:00Z is before startsAt 2026-01-05T09:00:00Z: start time \
             must be before end time"
        );
    }

    #[test]
    fn a_body_that_is_not_a_json_array_is_refused_whole() {
        let decode = |b: &[u8]| decode_alerts(b, now(), minutes(5)).unwrap_err();
        assert_eq!(decode(b"\xff\xfe"), BodyError::NotUtf8);
        assert!(matches!(decode(b"{not json"), BodyError::NotJson(_)));
        assert!(matches!(decode(b"{}"), BodyError::Shape { .. }));
    }

    #[test]
    fn webhook_alerts_fire_without_a_lease_and_resolve_when_told() {
        let body = json!({
            "version": "4", "status": "firing", "receiver": "tocsin", "groupKey": "{}:{}",
            "truncatedAlerts": 0, "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "externalURL": "http://am",
            "alerts": [
                { "status": "firing", "labels": { "alertname": "Down" }, "annotations": {},
                  "startsAt": "2026-01-05T08:59:00Z", "endsAt": "0001-01-01T00:00:00Z",
                  "generatorURL": "", "fingerprint": "abc" },
                { "status": "resolved", "labels": { "alertname": "Old" },
                  "startsAt": "2026-01-05T08:00:00Z", "endsAt": "2026-01-05T08:30:00Z" },
                { "status": "weird", "labels": { "alertname": "X" } },
            ]
        });
        let d = decode_webhook(body.to_string().as_bytes(), now()).unwrap();
        assert_eq!(d.signals.len(), 2);
        assert_eq!(d.signals[0].state, SignalState::Firing);
        assert_eq!(d.signals[0].expires_at, None);
        assert_eq!(d.signals[1].state, SignalState::Resolved);
        assert_eq!(d.rejected.len(), 1);
        assert_eq!(
            (d.rejected[0].index, d.rejected[0].problem),
            (2, Problem::Type)
        );
        assert!(
            d.rejected[0].reason.contains("status"),
            "{:?}",
            d.rejected[0]
        );

        let old = json!({ "version": "3", "alerts": [] }).to_string();
        assert_eq!(
            decode_webhook(old.as_bytes(), now())
                .unwrap_err()
                .to_string(),
            "field \"version\": expected \"4\" (the webhook payload version tocsin reads), got \
             version \"3\""
        );
        assert!(decode_webhook(b"[]", now()).is_err());
    }

    /// The lease computed here, carried out by the engine core on a simulated clock: each
    /// pushed alert stays firing until its `endsAt` (or `resolve_timeout`), then resolves.
    #[test]
    fn leases_resolve_pushed_alerts_on_a_simulated_clock() {
        use crate::engine::{Core, Input, Setup};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(
            dir.path().join("rules/default.yaml"),
            include_str!("../../rules/default.yaml"),
        )
        .unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "rule_files: [ \"rules/*.yaml\" ]\nincidents: { resolve_after: 1m }\n",
        )
        .unwrap();
        let config = crate::config::load(&path).unwrap();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let mut core = Core::new(Setup::new(config, None), metrics, now());
        // Run the core's timers up to `until`, each at its own time, as the engine loop does.
        let advance = |core: &mut Core, until: DateTime<Utc>| {
            while let Some(at) = core.next_wake().filter(|at| *at <= until) {
                core.tick(at);
            }
        };
        let open = |core: &Core| {
            let mut titles: Vec<String> = core
                .open_incidents()
                .filter(|i| i.is_open())
                .map(|i| i.title.to_string())
                .collect();
            titles.sort();
            titles
        };
        let pushed = alerts(json!([
            { "labels": { "alertname": "Leased", "severity": "critical", "service": "a" },
              "annotations": { "summary": "leased" }, "endsAt": "2026-01-05T09:02:00Z" },
            { "labels": { "alertname": "Default", "severity": "critical", "service": "b" },
              "annotations": { "summary": "default" } },
        ]));
        core.handle(Input::Signals(pushed.signals), now());
        assert_eq!(open(&core), ["default", "leased"]);
        // The leased alert resolves at 09:02, its incident a minute later.
        advance(&mut core, now() + minutes(3) + chrono::Duration::seconds(1));
        assert_eq!(open(&core), ["default"]);
        // Refreshed before its lease ends, the other keeps firing past the first lease...
        let refreshed = decode_alerts(
            json!([{ "labels": { "alertname": "Default", "severity": "critical", "service": "b" },
                     "annotations": { "summary": "default" } }])
            .to_string()
            .as_bytes(),
            now() + minutes(4),
            minutes(5),
        )
        .unwrap();
        core.handle(Input::Signals(refreshed.signals), now() + minutes(4));
        advance(&mut core, now() + minutes(8));
        assert_eq!(open(&core), ["default"]);
        // ...and resolves once the refreshed lease (09:09) has run out.
        advance(
            &mut core,
            now() + minutes(10) + chrono::Duration::seconds(1),
        );
        assert!(open(&core).is_empty(), "{:?}", open(&core));
    }

    /// A refresh of an unchanged alert reuses the rule's last condition, but not across a
    /// reload: a rule whose `when` changed must judge the same alert again.
    #[test]
    fn a_reload_that_changes_when_judges_a_refreshed_alert_again() {
        use crate::engine::{Core, Input, Setup};
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(
            &config_path,
            "rule_files: [ \"rules/*.yaml\" ]\nincidents: { resolve_after: 1m }\n",
        )
        .unwrap();
        let load = |when: &str| {
            std::fs::write(
                dir.path().join("rules/r.yaml"),
                format!(
                    "groups:\n  - name: g\n    rules:\n      - name: Judged\n        \
                     match: [ 'source=\"alert\"' ]\n        when: \"{when}\"\n        \
                     impact: {{ kind: outage }}\n"
                ),
            )
            .unwrap();
            Setup::new(crate::config::load(&config_path).unwrap(), None)
        };
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let mut core = Core::new(load("labels.severity == 'critical'"), metrics, now());
        let open = |core: &Core| core.open_incidents().filter(|i| i.is_open()).count();
        let push = |core: &mut Core, at: DateTime<Utc>| {
            let body = json!([{ "labels": { "alertname": "A", "severity": "critical" } }]);
            let decoded = decode_alerts(body.to_string().as_bytes(), at, minutes(30)).unwrap();
            core.handle(Input::Signals(decoded.signals), at);
        };
        push(&mut core, now());
        assert_eq!(open(&core), 1);
        // The same alert again: still judged broken (from the known condition).
        push(&mut core, now() + minutes(1));
        assert_eq!(open(&core), 1);
        // The rule now asks for another severity: the same alert no longer matches `when`,
        // its impact clears and the incident resolves after `resolve_after`.
        core.reload(load("labels.severity == 'page'"), now() + minutes(2));
        push(&mut core, now() + minutes(3));
        let until = now() + minutes(5);
        while let Some(at) = core.next_wake().filter(|at| *at <= until) {
            core.tick(at);
        }
        assert_eq!(open(&core), 0);
    }
}
