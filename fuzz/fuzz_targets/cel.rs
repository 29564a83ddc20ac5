//! A rule's CEL `when`: compiled with tocsin's limits, then evaluated against an alert and a
//! probe result. Whatever compiles must evaluate quickly (libFuzzer's -timeout catches a
//! slow one) and without a panic.
#![no_main]

use std::collections::BTreeMap;

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use tocsin::config::CelExpr;
use tocsin::signal::{ProbeResult, Signal, SourceKind};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(when) = CelExpr::compile(text) else {
        return;
    };
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
    let labels: BTreeMap<String, String> = [
        ("alertname", "Down"),
        ("service", "storage"),
        ("region", "china-east"),
        ("severity", "critical"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut alert = Signal::new(SourceKind::Alert, labels.clone(), now);
    alert
        .annotations
        .insert("summary".into(), "storage is down".into());
    alert.value = Some(42.5);
    let _ = tocsin::rules::evaluate_when(&when, &alert);
    let mut probe = Signal::new(SourceKind::Probe, labels, now);
    probe.probe = Some(ProbeResult {
        success: false,
        status_code: Some(503),
        latency_ms: 2500.0,
        body: Some(serde_json::json!({
            "status": "degraded", "items": [1, 2, 3], "nested": { "a": [true, null] }
        })),
        ..Default::default()
    });
    let _ = tocsin::rules::evaluate_when(&when, &probe);
});
