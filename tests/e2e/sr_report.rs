//! The support report (`GET /api/v1/reports/sr`, `tocsin report sr`) and its metrics, from
//! known cases, incidents and pages on the engine's frozen clock.

use serde_json::{json, Value};

use crate::support::paging::{alert, utc, FrozenEngine};
use crate::support::{run_tocsin, TestDir, TestEngine, CATALOG};

/// Monday 03:00 UTC: 11:00 in Shanghai (erin's day), 03:00 in UTC (carol's night).
const START: &str = "2026-03-02T03:00:00Z";

fn config() -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: carol, email: carol@example.com, timezone: UTC }}
  - {{ id: erin, email: erin@example.com, timezone: Asia/Shanghai }}
escalation_policies:
  - name: support
    levels: [ {{ after: 0s, notify: [ "responder:erin" ] }} ]
  - name: engineering
    levels: [ {{ after: 0s, notify: [ "responder:carol" ] }} ]
routes:
  - {{ match: [ 'severity=~"0|1|2|3"' ], policy: engineering }}
case_routes:
  - {{ match: [ 'sr_severity=~"A|B|C"' ], policy: support }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: outbox }} }}
  retry: {{ initial_backoff: 1h, max_backoff: 1h, max_age: 7d }}
"#
    )
}

fn case_body(sr: &str) -> Value {
    json!({
        "customer": "contoso", "service": "storage", "region": "china-east",
        "sr_severity": sr, "summary": "uploads fail",
        "contact": { "name": "Dana", "email": "dana@contoso.example.com" },
        "by": "sam"
    })
}

async fn post(e: &FrozenEngine, path: &str, body: Value) -> Value {
    let (status, answer) = e.engine.post(path, &body).await;
    assert!(status == 200 || status == 201, "{path}: {status} {answer}");
    answer
}

/// The value of the series of `name` with these labels on /metrics.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} {labels:?} in the metrics"))
}

fn line<'a>(list: &'a Value, key: &str, value: Value) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|l| l[key] == value)
        .unwrap_or_else(|| panic!("no {key}={value} in {list}"))
}

#[tokio::test(start_paused = true)]
async fn the_report_counts_deadlines_cadence_mtta_mttr_and_the_pager_load() {
    let start = utc(START);
    let e = FrozenEngine::start(&config(), start).await;
    // Four cases at minute 0: SR A (#1), B (#2), C (#3), A (#4); each pages erin.
    let mut ids = Vec::new();
    for sr in ["A", "B", "C", "A"] {
        let case = post(&e, "/api/v1/cases", case_body(sr)).await;
        ids.push(case["id"].as_i64().unwrap());
    }
    let (a1, b2, _c3, a4) = (ids[0], ids[1], ids[2], ids[3]);
    // Two Sev 2 incidents page carol: one at minute 0, one at minute 60.
    let first = e
        .signal(alert(
            "critical",
            "storage",
            "china-east",
            "storage down",
            start,
        ))
        .await;
    e.advance_minutes(10).await;
    post(
        &e,
        &format!("/api/v1/incidents/{first}/ack"),
        json!({ "by": "carol" }),
    )
    .await;
    e.advance_minutes(20).await; // 30
    post(
        &e,
        &format!("/api/v1/cases/{a1}/respond"),
        json!({ "by": "sam", "text": "on it" }),
    )
    .await;
    e.advance_minutes(10).await; // 40
    post(
        &e,
        &format!("/api/v1/incidents/{first}/resolve"),
        json!({ "by": "carol" }),
    )
    .await;
    e.advance_minutes(20).await; // 60
    let second = e
        .signal(alert(
            "critical",
            "sqldb",
            "china-north",
            "sqldb down",
            e.clock.now(),
        ))
        .await;
    assert_ne!(first, second);
    // Minute 90: #1's update is due (erin paged); the second incident is acknowledged.
    e.advance_minutes(30).await;
    post(
        &e,
        &format!("/api/v1/incidents/{second}/ack"),
        json!({ "by": "carol" }),
    )
    .await;
    // Minute 120: #4 breaches its deadline. Minute 150: #1 misses a second interval; #4 is
    // answered late.
    e.advance_minutes(60).await; // 150
    post(
        &e,
        &format!("/api/v1/cases/{a4}/respond"),
        json!({ "by": "sam", "text": "late" }),
    )
    .await;
    e.advance_minutes(10).await; // 160
    post(
        &e,
        &format!("/api/v1/cases/{a1}/updates"),
        json!({ "by": "sam", "text": "still on it" }),
    )
    .await;
    e.advance_minutes(40).await; // 200
    post(
        &e,
        &format!("/api/v1/cases/{b2}/respond"),
        json!({ "by": "sam", "text": "looking" }),
    )
    .await;
    // Minute 210: #4's update is due; minute 220: #1's again.
    e.advance_minutes(15).await; // 215
    post(
        &e,
        &format!("/api/v1/cases/{a4}/resolve"),
        json!({ "by": "sam" }),
    )
    .await;
    e.advance_minutes(15).await; // 230
    post(
        &e,
        &format!("/api/v1/cases/{a1}/resolve"),
        json!({ "by": "sam" }),
    )
    .await;
    e.advance_minutes(70).await; // 300
    e.settle().await;

    let (status, report) = e
        .engine
        .get("/api/v1/reports/sr?from=2026-03-02&to=2026-03-03T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{report}");
    let a = line(&report["sr"], "sr_severity", json!("A"));
    assert_eq!(a["cases_opened"], 2);
    assert_eq!(a["cases_due"], 2);
    assert_eq!(a["responded_within_deadline"], 1);
    assert_eq!(a["share_within_deadline"], 0.5);
    // First responses after 30m and 150m.
    assert_eq!(a["first_response_seconds"]["count"], 2);
    assert_eq!(a["first_response_seconds"]["median"], 5400.0);
    assert_eq!(a["first_response_seconds"]["p90"], 8280.0);
    // #1 at minutes 90 and 220, #4 at 210; #1 went a second interval at 150.
    assert_eq!(a["engagement_gaps"], 3, "{a}");
    assert_eq!(a["engagement_missed"], 1);
    let b = line(&report["sr"], "sr_severity", json!("B"));
    assert_eq!(b["cases_opened"], 1);
    assert_eq!(b["share_within_deadline"], 1.0);
    assert_eq!(b["first_response_seconds"]["median"], 12000.0);
    let c = line(&report["sr"], "sr_severity", json!("C"));
    assert_eq!(c["cases_opened"], 1);
    assert_eq!(c["cases_due"], 0, "its 8h deadline is still ahead");
    assert_eq!(c["share_within_deadline"], Value::Null);

    let sev2 = line(&report["lsi"], "severity", json!(2));
    assert_eq!(sev2["incidents"], 2);
    assert_eq!(sev2["acknowledged"], 2);
    assert_eq!(sev2["mtta_seconds"], 1200.0, "10m and 30m");
    assert_eq!(sev2["resolved"], 1);
    assert_eq!(sev2["mttr_seconds"], 2400.0);
    assert_eq!(line(&report["lsi"], "severity", json!(0))["incidents"], 0);

    // Case pages: 4 opened, #1 due/missed/due, #4 breached/due = 9, erin's day in Shanghai;
    // incident pages: 2, carol's night in UTC. Acknowledged/resolved notices are not load.
    let pager = &report["pager"];
    assert_eq!(pager["pages"], 11, "{pager}");
    assert_eq!(pager["pages_at_night"], 2);
    let rule = line(&pager["by_rule"], "name", json!("(case)"));
    assert_eq!(
        (rule["pages"].clone(), rule["pages_at_night"].clone()),
        (json!(9), json!(0))
    );
    let rule = line(&pager["by_rule"], "name", json!("AlertCritical"));
    assert_eq!(
        (rule["pages"].clone(), rule["pages_at_night"].clone()),
        (json!(2), json!(2))
    );
    let carol = line(&pager["by_responder"], "name", json!("carol"));
    assert_eq!(carol["pages_at_night"], 2);
    let erin = line(&pager["by_responder"], "name", json!("erin"));
    assert_eq!(
        (erin["pages"].clone(), erin["pages_at_night"].clone()),
        (json!(9), json!(0))
    );

    // A range that holds none of it.
    let (_, empty) = e
        .engine
        .get("/api/v1/reports/sr?from=2026-03-03&to=2026-03-04")
        .await;
    assert_eq!(
        line(&empty["sr"], "sr_severity", json!("A"))["cases_opened"],
        0
    );
    assert_eq!(empty["pager"]["pages"], 0);

    // The same figures as metrics.
    let metrics = e.engine.running.metrics.render();
    let m = |name: &str, labels: &[(&str, &str)]| metric(&metrics, name, labels);
    assert_eq!(m("tocsin_cases_opened_total", &[("sr_severity", "A")]), 2.0);
    assert_eq!(
        m(
            "tocsin_sr_responses_total",
            &[("sr_severity", "A"), ("within_deadline", "true")]
        ),
        1.0
    );
    assert_eq!(
        m(
            "tocsin_sr_responses_total",
            &[("sr_severity", "A"), ("within_deadline", "false")]
        ),
        1.0
    );
    assert_eq!(
        m("tocsin_sr_engagement_gaps_total", &[("sr_severity", "A")]),
        3.0
    );
    assert_eq!(
        m("tocsin_sr_engagement_missed_total", &[("sr_severity", "A")]),
        1.0
    );
    assert_eq!(
        m(
            "tocsin_sr_first_response_seconds_count",
            &[("sr_severity", "A")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "tocsin_time_to_acknowledge_seconds_count",
            &[("severity", "2")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "tocsin_time_to_acknowledge_seconds_sum",
            &[("severity", "2")]
        ),
        2400.0
    );
    assert_eq!(
        m("tocsin_time_to_resolve_seconds_sum", &[("severity", "2")]),
        2400.0
    );
    let carol_pages = [("rule", "AlertCritical"), ("responder", "carol")];
    assert_eq!(m("tocsin_pager_pages_total", &carol_pages), 2.0);
    assert_eq!(m("tocsin_pages_at_night_total", &carol_pages), 2.0);
    let erin_pages = [("rule", "(case)"), ("responder", "erin")];
    assert_eq!(m("tocsin_pager_pages_total", &erin_pages), 9.0);
    assert!(!metrics.contains("tocsin_pages_at_night_total{responder=\"erin\""));
    e.stop().await;
}

/// Bad ranges are refused naming the parameter and what is expected; the CLI prints the
/// report's tables.
#[tokio::test]
async fn a_bad_range_is_refused_and_the_cli_prints_the_report() {
    let dir = TestDir::new(
        &config(),
        &[("default.yaml", &crate::support::default_rules())],
    );
    let engine = TestEngine::start(&dir).await;
    for (query, error) in [
        (
            "from=yesterday",
            "invalid from \"yesterday\": expected an RFC 3339 time (e.g. 2026-03-08T09:00:00Z) \
             or a date (2026-03-08, midnight UTC)",
        ),
        (
            "from=2026-03-02&to=2026-03-01",
            "from (2026-03-02T00:00:00+00:00) must be before to (2026-03-01T00:00:00+00:00)",
        ),
        (
            "from=2024-01-01&to=2026-01-01",
            "the range from 2024-01-01T00:00:00+00:00 to 2026-01-01T00:00:00+00:00 is over 366 \
             days: ask for a shorter one",
        ),
        (
            "since=2026-03-01",
            "unknown parameter \"since\": expected from or to",
        ),
    ] {
        let (status, body) = engine.get(&format!("/api/v1/reports/sr?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], error, "{query}");
    }
    engine.post("/api/v1/cases", &case_body("A")).await;
    let url = engine.url.clone();
    let (code, out, err) = run_tocsin(dir.path(), &["report", "sr", "--url", &url]).await;
    assert_eq!(code, 0, "{err}");
    let a = out
        .lines()
        .find(|l| l.starts_with("A "))
        .unwrap_or_else(|| panic!("no SR A line: {out}"));
    assert_eq!(a.split_whitespace().nth(1), Some("1"), "{out}");
    assert!(out.contains("(case)"), "{out}");
    let (code, _, err) = run_tocsin(
        dir.path(),
        &["report", "sr", "--url", &url, "--from", "soon"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("invalid from \"soon\""), "{err}");
    engine.stop().await;
}
