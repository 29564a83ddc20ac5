//! The bodies of the fuzz targets, one function per target, each taking any bytes.
//!
//! Two callers compile this same file, so the targets cannot drift apart: `tests/fuzz.rs`
//! (`cargo test`, inputs from a seeded RNG) and the cargo-fuzz targets in `fuzz/` (libFuzzer,
//! for longer runs). A target answers by returning; a panic (including a failed `assert!`
//! about what the parser answered) is a finding.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::TimeZone;
use tocsin::config::{CelExpr, Matcher};
use tocsin::signal::{ProbeResult, Signal, SourceKind};
use tocsin::sources::{cri, push};

/// A target: any bytes in, a panic if it finds something wrong.
pub type Target = fn(&[u8]);

/// Every target, by the name cargo-fuzz and the corpus folders use.
pub const TARGETS: [(&str, Target); 5] = [
    ("config", config),
    ("rules", rules),
    ("matcher", matcher),
    ("alerts", alerts),
    ("cel", cel),
];

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap()
}

/// The config loader on any text: `tocsin check` and every reload run this. It answers Ok or
/// `file:line:column` errors, never a panic.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `rule_files` globs the filesystem (a pattern like "/**" walks all of it): that is I/O,
    // not parsing, and the `rules` target covers rule files. The other files a config names
    // are read too, but only regular ones and at most 16 MiB each: bounded.
    if text.contains("rule_files") {
        return;
    }
    let path = Path::new("/nonexistent/tocsin-fuzz/config.yaml");
    if let Err(errors) = tocsin::config::load_str(path, text) {
        for e in &errors.0 {
            assert!(e.line >= 1 && e.column >= 1, "{e}");
            assert!(!e.message.is_empty());
        }
    }
}

/// One rule file's text: YAML, rule fields, matchers, CEL `when`, durations, templates.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent/tocsin-fuzz/rules/fuzz.yaml");
    match tocsin::config::load_rules_str(path, text) {
        Ok(rules) => {
            for loaded in &rules {
                assert!(!loaded.rule.name.is_empty());
            }
        }
        Err(errors) => {
            for e in &errors.0 {
                assert!(e.line >= 1 && e.column >= 1, "{e}");
            }
        }
    }
}

/// Alertmanager-style matchers (`name="value"`, `=~`, `!=`, `!~`): parse, then match the
/// input itself and a few values; what parses prints back as the same matcher.
pub fn matcher(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(matcher) = text.parse::<Matcher>() {
        for value in ["", "storage", "china-east", text, &text.repeat(4)] {
            let _ = matcher.matches_value(value);
        }
        let again: Matcher = matcher
            .to_string()
            .parse()
            .expect("a printed matcher parses");
        assert_eq!(again, matcher);
    }
}

/// The bodies of the ingest endpoints: `POST /api/v2/alerts`, the Alertmanager webhook
/// (`/api/v1/alertmanager`) and customer reports (`/api/v1/cri`), decoded as the handlers
/// do. Any bytes: a decoded batch or an error.
pub fn alerts(data: &[u8]) {
    let now = now();
    if let Ok(decoded) = push::decode_alerts(data, now, chrono::Duration::minutes(5)) {
        for signal in &decoded.signals {
            assert!(!signal.labels.is_empty());
            assert!(signal.labels.len() <= push::MAX_LABELS);
        }
    }
    let _ = push::decode_webhook(data, now);
    if let Ok(report) = cri::parse(data) {
        let sr = tocsin::config::SrResponseConfig::default();
        let _ = report.into_signal(now, &sr);
    }
}

/// A rule's CEL `when`: compiled with tocsin's limits, then evaluated against an alert and a
/// probe result.
pub fn cel(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(when) = CelExpr::compile(text) else {
        return;
    };
    let labels: BTreeMap<String, String> = [
        ("alertname", "Down"),
        ("service", "storage"),
        ("region", "china-east"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut alert = Signal::new(SourceKind::Alert, labels.clone(), now());
    std::sync::Arc::make_mut(&mut alert.annotations)
        .insert("summary".into(), "storage is down".into());
    alert.value = Some(42.5);
    let _ = tocsin::rules::evaluate_when(&when, &alert);
    let mut probe = Signal::new(SourceKind::Probe, labels, now());
    probe.probe = Some(Box::new(ProbeResult {
        success: false,
        status_code: Some(503),
        latency_ms: 2500.0,
        body: Some(serde_json::json!({
            "status": "degraded", "items": [1, 2, 3], "nested": { "a": [true, null] }
        })),
        ..Default::default()
    }));
    let _ = tocsin::rules::evaluate_when(&when, &probe);
}
