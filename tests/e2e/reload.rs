//! Reload through the API and by SIGHUP to the real binary: a good config changes what the
//! engine does, a bad one is refused whole and the old config keeps running.

use std::time::Duration;

use crate::support::api::*;
use crate::support::{eventually, free_port, EngineProcess, TestEngine};
use serde_json::json;

/// A route that sends Sev 4 `reports` incidents to their own queue, and a rule that makes a
/// DiskFull alert at least Sev 2.
fn reloaded_routes() -> String {
    format!(
        "\nroutes:\n  - {{ match: [ 'service=\"reports\"', 'severity=\"4\"' ], queue: reports-triage }}\n{}",
        ROUTES.trim_start().trim_start_matches("routes:\n")
    )
}

const DISK_RULE: &str = r#"
groups:
  - name: disks
    rules:
      - name: DiskFull
        match: [ 'source="alert"', 'alertname="DiskFull"' ]
        impact: { kind: other, business_impact: low, severity: 2 }
        summary: "disk full on {{ labels.host }}"
"#;

fn disk_full(service: &str) -> tocsin::signal::Signal {
    alert(&[
        ("alertname", "DiskFull"),
        ("host", "db7"),
        ("service", service),
    ])
}

async fn severity_of(engine: &TestEngine, id: i64) -> i64 {
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    incident["severity"].as_i64().unwrap()
}

#[tokio::test]
async fn a_good_reload_changes_behaviour() {
    let (dir, engine) = engine(false).await;
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 404);
    let before = send(&engine, vec![disk_full("disk-a")]).await[0];
    assert_eq!(severity_of(&engine, before).await, 4);

    dir.write(
        "config.yaml",
        &format!(
            "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
            config_yaml(false, &reloaded_routes()),
            dir.store_url()
        ),
    );
    dir.write("rules/disks.yaml", DISK_RULE);
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");

    let (status, queue) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(ids(&queue), Vec::<i64>::new());
    let report = send(&engine, vec![minor("reports", "ReportLate")]).await[0];
    let (_, queue) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(ids(&queue), vec![report], "the new route took it");
    let (_, triage) = engine.get("/api/v1/queues/triage").await;
    assert!(!ids(&triage).contains(&report));
    let after = send(&engine, vec![disk_full("disk-b")]).await[0];
    assert_ne!(after, before);
    assert_eq!(
        severity_of(&engine, after).await,
        2,
        "the new rule took effect"
    );

    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "tocsin_rule_evaluation_failures_total{rule=\"DiskFull\"}"
        ),
        Some(0.0),
        "series of the new rule are there"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_bad_reload_is_refused_whole_and_the_old_config_keeps_running() {
    let (dir, engine) = engine(false).await;
    let good = format!(
        "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
        config_yaml(false, &reloaded_routes()),
        dir.store_url()
    );
    // A good new route and a good new rule, each next to one mistake: none of it may take
    // effect. First an unknown key in config.yaml, then a rule file with a typo.
    dir.write("rules/disks.yaml", DISK_RULE);
    dir.write("config.yaml", &format!("{good}routez: []\n"));
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 500, "{body}");
    let why = error_of(&body);
    assert!(why.contains("old config still running"), "{why}");
    assert!(
        why.contains("config.yaml:") && why.contains("routez"),
        "file:line:column and key: {why}"
    );

    dir.write("config.yaml", &good);
    dir.write(
        "rules/broken.yaml",
        "groups:\n  - name: x\n    rules:\n      - name: Y\n        mach: []\n",
    );
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 500, "{body}");
    let why = error_of(&body);
    assert!(
        why.contains("broken.yaml:5:") && why.contains("mach"),
        "file:line:column: {why}"
    );

    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(0.0)
    );
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 404, "the new route is not in force");
    let id = send(&engine, vec![disk_full("disk-a")]).await[0];
    assert_eq!(
        severity_of(&engine, id).await,
        4,
        "the new rule is not in force"
    );
    let report = send(&engine, vec![minor("reports", "ReportLate")]).await[0];
    let (_, triage) = engine.get("/api/v1/queues/triage").await;
    assert!(ids(&triage).contains(&report), "the old routes still work");

    // Fixed: the next reload succeeds and the gauge says so.
    std::fs::remove_file(dir.path().join("rules/broken.yaml")).unwrap();
    let (status, body) = engine.post("/-/reload", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let text = metrics_text(&engine.http, &engine.url).await;
    assert_eq!(
        metric(&text, "tocsin_config_last_reload_successful"),
        Some(1.0)
    );
    let (status, _) = engine.get("/api/v1/queues/reports-triage").await;
    assert_eq!(status, 200);
    engine.stop().await;
}

fn hangup(process: &EngineProcess) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &process.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn sighup_reloads_the_real_binary_and_refuses_a_bad_config() {
    let dir = test_dir(false);
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = plain_http();
    let url = engine.url.clone();
    let reload_ok = |want: f64| {
        let (http, url) = (&http, &url);
        async move {
            eventually(Duration::from_secs(20), || async {
                let text = metrics_text(http, url).await;
                (metric(&text, "tocsin_config_last_reload_successful") == Some(want)).then_some(())
            })
            .await
        }
    };
    let status_of = |path: &'static str| {
        let (http, url) = (&http, &url);
        async move {
            http.get(format!("{url}{path}"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };

    let good = format!(
        "{}\nstore: {{ url: \"{}\" }}\nrule_files: [ \"rules/*.yaml\" ]\n",
        config_yaml(false, &reloaded_routes()),
        dir.store_url()
    );
    dir.write("config.yaml", &format!("{good}bogus_section: 1\n"));
    hangup(&engine);
    assert!(
        reload_ok(0.0).await.is_some(),
        "log:\n{}",
        std::fs::read_to_string(&engine.log).unwrap()
    );
    assert!(
        engine.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the engine"
    );
    assert_eq!(status_of("/-/healthy").await, 200);
    assert_eq!(status_of("/api/v1/queues/triage").await, 200);
    assert_eq!(
        status_of("/api/v1/queues/reports-triage").await,
        404,
        "old config runs on"
    );
    let log = std::fs::read_to_string(&engine.log).unwrap();
    assert!(log.contains("bogus_section"), "the log says why:\n{log}");

    dir.write("config.yaml", &good);
    hangup(&engine);
    assert!(reload_ok(1.0).await.is_some());
    assert_eq!(
        status_of("/api/v1/queues/reports-triage").await,
        200,
        "new config in force"
    );
    engine.kill();
}
