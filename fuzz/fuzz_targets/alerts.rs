//! The bodies of the ingest endpoints: `POST /api/v2/alerts`, the Alertmanager webhook
//! (`/api/v1/alertmanager`) and customer reports (`/api/v1/cri`), decoded exactly as the
//! handlers do. Any bytes: a decoded batch or an error, never a panic.
#![no_main]

use chrono::TimeZone;
use libfuzzer_sys::fuzz_target;
use tocsin::sources::{cri, push};

fuzz_target!(|data: &[u8]| {
    let now = chrono::Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
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
});
