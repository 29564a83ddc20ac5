//! "Below SLA", measured, through the real binary: a real HTTP probe target that fails on
//! command, the availability and burn-rate metrics, an impact with `sla_breach: auto`
//! that rises to Sev 2 once both burn windows pass their thresholds, the page and the
//! timeline saying what was measured, and the availability kept across a restart.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;

use tocsin::engine::Input;
use tocsin::signal::{Signal, SignalState, SourceKind};

use crate::support::paging::{utc, Answer, FrozenEngine, Receiver};
use crate::support::sources::{metric, switchable_health};
use crate::support::{
    eventually, free_port, get_json, list_incidents, send_signal, EngineProcess, TestDir,
};

/// Storage's SLA of 90% leaves a 10% budget: a burn of 5x is half the probes failing.
/// With the thresholds at 5x over 1h and over 6h, a first failure after a few good probes
/// opens a Sev 4 (its burn is low) and the failures after it breach: one engine run shows
/// both sides of the thresholds in seconds.
fn config(target: &str, hook: &str) -> String {
    format!(
        r#"
catalog:
  services:
    - {{ name: storage, sla: 90, regions: [eu-west] }}
classification: {{ sla: {{ burn: {{ fast: 5, slow: 5 }} }} }}
probes:
  - {{ name: storage-eu, kind: http, url: "http://{target}/health", interval: 250ms, timeout: 200ms,
      labels: {{ service: storage, region: eu-west }} }}
responders:
  - {{ id: alice, email: alice@example.com, webhook: hook }}
escalation_policies:
  - {{ name: main, levels: [ {{ after: 0s, notify: [ "webhook:hook" ] }} ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2"' ], policy: main }}
  - {{ match: [ 'severity=~"3|4"' ], queue: component }}
notifiers:
  email: {{ from: tocsin@example.com, file: {{ dir: out }} }}
  webhooks: [ {{ name: hook, url: "{hook}" }} ]
"#
    )
}

const RULES: &str = r#"
groups:
  - name: sla
    rules:
      - name: StorageProbeErrors
        match: [ 'source="probe"', 'service="storage"' ]
        clear_for: 1h
        impact: { kind: degradation, sla_breach: auto }
        summary: "storage probes failing in {{ labels.region }}"
"#;

async fn metrics(http: &reqwest::Client, url: &str) -> String {
    http.get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .unwrap()
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

const RATIO: &str = r#"tocsin_service_availability_ratio{region="eu-west",service="storage"}"#;
const BURN_1H: &str =
    r#"tocsin_service_error_budget_burn_rate{region="eu-west",service="storage",window="1h"}"#;
const BURN_6H: &str =
    r#"tocsin_service_error_budget_burn_rate{region="eu-west",service="storage",window="6h"}"#;

#[tokio::test]
async fn a_failing_probe_target_burns_the_budget_into_a_measured_sev_2() {
    let (target, up) = switchable_health().await;
    let hook = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&target.to_string(), &hook.url),
        &[("sla.yaml", RULES)],
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let port = free_port();
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;

    // Healthy: every probe good, nothing burns.
    let healthy = eventually(Duration::from_secs(10), || async {
        let text = metrics(&http, &engine.url).await;
        let good = sample(&text, r#"tocsin_probe_success{probe="storage-eu"}"#) == Some(1.0);
        (good && sample(&text, RATIO) == Some(1.0)).then_some(text)
    })
    .await
    .expect("the healthy probes count as available");
    assert_eq!(sample(&healthy, BURN_1H), Some(0.0), "{healthy}");
    assert_eq!(sample(&healthy, BURN_6H), Some(0.0), "{healthy}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The service fails: the first failure opens a Sev 4 that waits in the triage queue.
    up.store(false, Ordering::SeqCst);
    let opened = eventually(Duration::from_secs(10), || async {
        list_incidents(&http, &engine.url).await.into_iter().next()
    })
    .await
    .expect("the failing probe opens an incident");
    let id = opened["id"].as_i64().unwrap();

    // Failing on, both windows pass 5x: the impact breaches SLA and the incident is Sev 2.
    let path = format!("{}/api/v1/incidents/{id}", engine.url);
    let breached = eventually(Duration::from_secs(15), || async {
        let (_, incident) = get_json(&http, &path).await;
        (incident["severity"] == 2).then_some(incident)
    })
    .await
    .expect("the burn rates breach the SLA");
    let timeline = breached["timeline"].as_array().expect("a timeline").clone();
    let entry = |kind: &str| -> Value {
        timeline
            .iter()
            .find(|e| e["kind"] == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} entry in {timeline:#?}"))
    };
    assert_eq!(
        entry("opened")["data"]["severity"],
        4,
        "a first failure burns little: {timeline:#?}"
    );
    let measured = entry("sla_breached");
    let message = measured["message"].as_str().unwrap();
    assert!(
        message.starts_with("below SLA, measured: storage/eu-west availability ")
            && message.contains("% over 30d (SLA 90%); burn ")
            && message.contains("x over 1h, ")
            && message.ends_with("x over 6h"),
        "{message}"
    );
    let burn_1h = measured["data"]["burn_rate_1h"].as_f64().unwrap();
    let burn_6h = measured["data"]["burn_rate_6h"].as_f64().unwrap();
    assert!(burn_1h > 5.0 && burn_6h > 5.0, "{measured}");
    assert!(
        measured["data"]["availability_ratio"].as_f64().unwrap() < 0.5,
        "more than half the probes failed: {measured}"
    );
    let raised = entry("severity_changed");
    assert_eq!(raised["data"]["from"], 4, "{raised}");
    assert_eq!(raised["data"]["to"], 2, "{raised}");

    // The page says what was measured.
    let page = eventually(Duration::from_secs(10), || async {
        hook.received().into_iter().find_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            (body["event"] == "severity_raised").then_some(body)
        })
    })
    .await
    .expect("the rise to Sev 2 pages");
    let reason = page["context"]["severity_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Sev 2: SLA breached")
            && reason.contains(
                "decided by rule StorageProbeErrors (degradation, below SLA, measured: \
                 storage/eu-west availability "
            ),
        "{reason}"
    );

    // /metrics: below the SLA, burning fast.
    let text = metrics(&http, &engine.url).await;
    let ratio = sample(&text, RATIO).expect("availability ratio");
    assert!(ratio < 0.9, "{text}");
    assert!(sample(&text, BURN_1H).unwrap() > 5.0, "{text}");
    assert!(sample(&text, BURN_6H).unwrap() > 5.0, "{text}");

    // Healthy again, the engine stops and starts: the failures are not forgotten.
    up.store(true, Ordering::SeqCst);
    send_signal(&engine.child, "TERM");
    let mut stopped = false;
    for _ in 0..150 {
        if matches!(engine.child.try_wait(), Ok(Some(_))) {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped, "the engine stops on SIGTERM within 15 s");
    let first_log = engine.log.clone();
    drop(engine);
    let mut engine = EngineProcess::spawn(&dir, port);
    engine.wait_ready().await;
    // (On PostgreSQL the engine restores its state once it leads, just after it is ready.)
    let after = eventually(Duration::from_secs(10), || async {
        sample(&metrics(&http, &engine.url).await, RATIO)
    })
    .await
    .expect("the availability is back");
    assert!(
        after < 0.9,
        "only good probes since the restart, and still below the SLA: {after}; the first \
         engine's log:\n{}",
        std::fs::read_to_string(&first_log).unwrap_or_default()
    );
    let (_, incident) = get_json(&http, &path).await;
    assert_eq!(incident["severity"], 2, "{incident}");
}

const INDICATOR_RULES: &str = r#"
groups:
  - name: sla
    rules:
      - name: SqlErrorRate
        match: [ 'source="alert"', 'alertname="SqlErrorRate"' ]
        availability: true
        impact: { kind: degradation, sla_breach: auto }
        summary: "sqldb errors in {{ labels.region }}"
"#;

fn sql_error_rate(state: SignalState, at: chrono::DateTime<chrono::Utc>) -> Signal {
    let labels: std::collections::BTreeMap<String, String> = [
        ("alertname", "SqlErrorRate"),
        ("service", "sqldb"),
        ("region", "eu-west"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut signal = Signal::new(SourceKind::Alert, labels, at);
    signal.state = state;
    signal
}

/// On the engine's own (paused) clock: a rule marked `availability: true` counts a minute
/// at a time, the engine stores the availability each minute, and ten minutes of its alert
/// firing after an hour of quiet breach sqldb's 99.5%.
#[tokio::test(start_paused = true)]
async fn an_availability_indicator_burns_minute_by_minute_on_the_engines_clock() {
    let config = r#"
catalog:
  services:
    - { name: sqldb, sla: 99.5, regions: [eu-west] }
sources: { resolve_timeout: 72h }
responders: [ { id: alice, email: alice@example.com } ]
escalation_policies: [ { name: main, levels: [ { after: 0s, notify: [ "responder:alice" ] } ] } ]
routes:
  - { match: [ 'severity=~"0|1|2"' ], policy: main }
  - { match: [ 'severity=~"3|4"' ], queue: component }
notifiers: { email: { from: tocsin@example.com, file: { dir: out } } }
"#;
    let dir = TestDir::new(config, &[("sla.yaml", INDICATOR_RULES)]);
    let start = utc("2026-01-05T10:00:00Z");
    let engine = FrozenEngine::start_in(dir, start).await;
    let ratio = r#"tocsin_service_availability_ratio{region="eu-west",service="sqldb"}"#;
    let burn =
        r#"tocsin_service_error_budget_burn_rate{region="eu-west",service="sqldb",window="1h"}"#;

    // The rule sees sqldb in eu-west, quiet: an hour of good minutes.
    engine
        .send(Input::Signals(vec![sql_error_rate(
            SignalState::Resolved,
            start,
        )]))
        .await;
    engine.advance_minutes(60).await;
    assert_eq!(metric(&engine.engine, ratio).await, Some(1.0));
    assert_eq!(metric(&engine.engine, burn).await, Some(0.0));
    let stored = engine
        .engine
        .running
        .state
        .store
        .source_state("availability")
        .await
        .unwrap()
        .expect("the availability is stored each minute");
    assert!(
        stored.contains(r#""service":"sqldb","region":"eu-west""#),
        "{stored}"
    );

    // It fires: a Sev 4 at first, Sev 2 once both windows burn past their thresholds.
    let id = engine
        .signal(sql_error_rate(SignalState::Firing, engine.clock.now()))
        .await;
    let path = format!("/api/v1/incidents/{id}");
    assert_eq!(engine.engine.get(&path).await.1["severity"], 4);
    engine.advance_minutes(10).await;
    let (_, incident) = engine.engine.get(&path).await;
    assert_eq!(incident["severity"], 2, "{incident:#}");
    let kinds = engine.timeline_kinds(id).await;
    assert!(kinds.contains(&"sla_breached".to_string()), "{kinds:?}");
    assert!(metric(&engine.engine, burn).await.unwrap() > 14.4);
    assert!(metric(&engine.engine, ratio).await.unwrap() < 0.995);
    let impact = &incident["impacts"][0];
    assert_eq!(impact["sla_breach"], true, "{impact}");
    assert_eq!(impact["sla_measured"]["service"], "sqldb", "{impact}");
    // The dashboard says it beside the impact.
    let html = engine
        .engine
        .http
        .get(format!("{}/incidents/{id}", engine.engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // (minijinja escapes "/" in HTML.)
    assert!(
        html.contains("degradation, SLA breach (measured: sqldb&#x2f;eu-west availability ")
            && html.contains("below SLA, measured: sqldb&#x2f;eu-west availability "),
        "{html}"
    );
    engine.stop().await;
}
