//! No silent outage (issue 27 §2), through the real `tocsin` binary to a real webhook
//! receiver: new impacts and merges reach those paged, an acknowledgement holds through a
//! rise in severity and never hides a new impact.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::paging::{Answer, Receiver};
use crate::support::{default_rules, eventually, free_port, EngineProcess, TestDir, CATALOG};

const WAIT: Duration = Duration::from_secs(30);

/// Alice and carol get their pages by webhook; Sev 2 and 3 page alice, Sev 0 and 1 alice
/// and carol at once and bob 10 minutes on (never, in these tests).
fn config(receiver: &Receiver, extra: &str) -> String {
    // `catalog_extra: {}` in `extra` adds the service `web`, which runs on `sqldb`.
    let (catalog, extra) = match extra.strip_prefix("catalog_extra: {}\n") {
        Some(rest) => (
            CATALOG.replace(
                "    - { name: sqldb, regions: [china-east, china-north] }",
                "    - { name: sqldb, regions: [china-east, china-north] }\n    - { name: web, regions: [china-east, china-north], depends_on: [sqldb] }",
            ),
            rest,
        ),
        None => (CATALOG.to_string(), extra),
    };
    format!(
        r#"{catalog}
{extra}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: alice, webhook: hook }}
  - {{ id: carol, webhook: hook }}
  - {{ id: bob, webhook: hook }}
escalation_policies:
  - name: standard
    ack_timeout: 1h
    levels:
      - {{ after: 0s, notify: [ "responder:alice" ] }}
  - name: major
    ack_timeout: 1h
    levels:
      - {{ after: 0s, notify: [ "responder:alice", "responder:carol" ] }}
      - {{ after: 10m, notify: [ "responder:bob" ] }}
routes:
  - {{ match: [ 'severity=~"0|1"' ], policy: major }}
  - {{ match: [ 'severity=~"2|3"' ], policy: standard }}
notifiers:
  webhooks: [ {{ name: hook, url: "{}", timeout: 5s }} ]
  retry: {{ initial_backoff: 100ms, max_backoff: 200ms, max_age: 1h }}
"#,
        receiver.url
    )
}

struct Running {
    engine: EngineProcess,
    http: reqwest::Client,
    receiver: Receiver,
    _dir: TestDir,
}

async fn start() -> Running {
    start_with("").await
}

async fn start_with(extra: &str) -> Running {
    let receiver = Receiver::start(vec![], Answer::Status(200)).await;
    let dir = TestDir::new(
        &config(&receiver, extra),
        &[("default.yaml", &default_rules())],
    );
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    Running {
        engine,
        http,
        receiver,
        _dir: dir,
    }
}

impl Running {
    /// Push one alert as Prometheus does.
    async fn alert(&self, name: &str, severity: &str, service: &str, region: &str) {
        self.alert_ending(name, severity, service, region, None)
            .await
    }

    /// Push one alert that ends at `ends` (when given).
    async fn alert_ending(
        &self,
        name: &str,
        severity: &str,
        service: &str,
        region: &str,
        ends: Option<chrono::DateTime<chrono::Utc>>,
    ) {
        let mut alert = json!({
            "labels": {"alertname": name, "severity": severity, "service": service, "region": region},
            "annotations": {"summary": format!("{name} in {service} {region}")},
        });
        if let Some(ends) = ends {
            alert["endsAt"] = json!(ends.to_rfc3339());
        }
        let body = json!([alert]);
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.engine.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    async fn post(&self, path: &str, body: Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.engine.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap());
    }

    /// Incident `id` as the API shows it. A page may arrive a moment before its batch's
    /// commit is visible (on SQLite a paging batch's pages go while it commits), so a 404
    /// is asked again for a few seconds.
    async fn incident(&self, id: i64) -> Value {
        let url = format!("{}/api/v1/incidents/{id}", self.engine.url);
        let found = eventually(Duration::from_secs(5), || async {
            let r = self.http.get(&url).send().await.ok()?;
            if r.status() == 404 {
                return None;
            }
            r.json::<Value>().await.ok()
        })
        .await;
        found.unwrap_or_else(|| panic!("no incident {id} at {url}"))
    }

    /// The webhook bodies received so far, as (event, recipient, incident id).
    /// Each page once: a page in flight when the engine is killed goes again after the
    /// restart, with its delivery id (receivers dedupe on it, as the docs say).
    fn pages(&self) -> Vec<(String, String, i64)> {
        let mut seen = std::collections::HashSet::new();
        self.receiver
            .received()
            .iter()
            .filter(|r| seen.insert(r.header("x-tocsin-delivery")))
            .map(|r| {
                let body: Value = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(
                    r.header("x-tocsin-event").as_deref(),
                    body["event"].as_str(),
                    "the event header says the body's event"
                );
                (
                    body["event"].as_str().unwrap().to_string(),
                    body["recipient"].as_str().unwrap().to_string(),
                    body["incident"]["id"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    /// Wait until `n` pages were received; the pages, sorted.
    async fn wait_pages(&self, n: usize) -> Vec<(String, String, i64)> {
        let got = eventually(WAIT, || async {
            let pages = self.pages();
            (pages.len() >= n).then_some(pages)
        })
        .await;
        let mut pages = got.unwrap_or_else(|| {
            panic!(
                "fewer than {n} pages: {:?}\nlog:\n{}",
                self.pages(),
                std::fs::read_to_string(&self.engine.log).unwrap_or_default()
            )
        });
        pages.sort();
        pages
    }

    /// The body of the latest page with `event`.
    fn body_of(&self, event: &str) -> Value {
        self.receiver
            .received()
            .iter()
            .rev()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .find(|b| b["event"] == event)
            .unwrap_or_else(|| panic!("no {event} page"))
    }
}

fn page(event: &str, recipient: &str, id: i64) -> (String, String, i64) {
    (event.to_string(), recipient.to_string(), id)
}

#[tokio::test]
async fn an_impact_joining_an_acknowledged_incident_pages_those_paged_with_impact_added() {
    let mut t = start().await;
    t.alert("StorageSlow", "warning", "storage", "china-east")
        .await;
    assert_eq!(t.wait_pages(1).await, vec![page("triggered", "alice", 1)]);
    t.post("/api/v1/incidents/1/ack", json!({"by": "alice"}))
        .await;
    t.wait_pages(2).await;
    // Another alert on the same service: it joins the acknowledged incident, and alice,
    // who acknowledged it, hears of it.
    t.alert("StorageErrors", "warning", "storage", "china-north")
        .await;
    assert_eq!(
        t.wait_pages(3).await,
        vec![
            page("acknowledged", "alice", 1),
            page("impact_added", "alice", 1),
            page("triggered", "alice", 1),
        ]
    );
    let body = t.body_of("impact_added");
    assert_eq!(body["incident"]["status"], "acknowledged");
    assert_eq!(
        body["incident"]["regions"],
        json!(["china-east", "china-north"])
    );
    let incident = t.incident(1).await;
    assert_eq!(incident["status"], "acknowledged");
    t.engine.kill();
}

#[tokio::test]
async fn a_rise_in_severity_keeps_the_ack_tells_the_acknowledger_and_pages_the_new_level() {
    let mut t = start().await;
    t.alert("StorageDown", "critical", "storage", "china-east")
        .await;
    assert_eq!(t.wait_pages(1).await, vec![page("triggered", "alice", 1)]);
    t.post("/api/v1/incidents/1/ack", json!({"by": "alice"}))
        .await;
    t.wait_pages(2).await;
    // A second region: two customers in two regions with an outage is Sev 1.
    t.alert("StorageDown", "critical", "storage", "china-north")
        .await;
    assert_eq!(
        t.wait_pages(4).await,
        vec![
            page("acknowledged", "alice", 1),
            page("severity_raised", "alice", 1),
            page("severity_raised", "carol", 1),
            page("triggered", "alice", 1),
        ]
    );
    let incident = t.incident(1).await;
    assert_eq!(incident["severity"], 1);
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], "alice");
    // Nothing more: bob (the major policy's next level) waits for the ack to lapse, and
    // alice, told of the rise, gets no impact_added on top of it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(t.pages().len(), 4, "{:?}", t.pages());
    t.engine.kill();
}

#[tokio::test]
async fn a_merge_pages_those_paged_with_merged() {
    let mut t = start().await;
    // queue and cache have no customers: Sev 2, and merging them raises nothing.
    t.alert("QueueDown", "critical", "queue", "china-east")
        .await;
    t.alert("CacheDown", "critical", "cache", "china-north")
        .await;
    t.wait_pages(2).await;
    // cache down in china-east joins incident 2 by its service and incident 1 in its
    // region (two services down in one region within 2m): they merge into incident 1.
    t.alert("CacheDown", "critical", "cache", "china-east")
        .await;
    assert_eq!(
        t.wait_pages(3).await,
        vec![
            page("merged", "alice", 1),
            page("triggered", "alice", 1),
            page("triggered", "alice", 2),
        ]
    );
    let merged = t.incident(2).await;
    assert_eq!(merged["status"], "resolved");
    let body = t.body_of("merged");
    assert_eq!(body["incident"]["services"], json!(["cache", "queue"]));
    // What changed: which incident merged into which, and the impacts it brought.
    assert_eq!(
        body["context"]["what_changed"],
        "Incident #2 (CacheDown in cache china-north) was merged into #1, bringing 1 impact: \
         CacheDown in cache china-north (rule AlertCritical; cache, china-north)."
    );
    // `tocsin template render` says the same of the engine's incident.
    let (code, out, err) = crate::support::run_tocsin(
        t._dir.path(),
        &[
            "template",
            "render",
            "-c",
            "config.yaml",
            "--notifier",
            "hook",
            "--url",
            &t.engine.url,
            "--incident",
            "1",
            "--event",
            "merged",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "\"what_changed\": \"Incident #2 (CacheDown in cache china-north) was merged into #1, \
             bringing 1 impact: CacheDown in cache china-north (rule AlertCritical; cache, \
             china-north).\""
        ),
        "{out}"
    );
    t.engine.kill();
}

#[tokio::test]
async fn a_flapping_service_reopens_its_incident_across_a_restart() {
    let mut t = start_with("incidents: { resolve_after: 1s, reopen_within: 10m }\n").await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(1);
    t.alert_ending(
        "StorageDown",
        "critical",
        "storage",
        "china-east",
        Some(soon),
    )
    .await;
    // Cleared when its end passes, resolved on its own a second later.
    assert_eq!(
        t.wait_pages(2).await,
        vec![page("resolved", "alice", 1), page("triggered", "alice", 1)]
    );
    // A crash, and the engine starts again on the same store.
    t.engine.kill();
    let mut engine = EngineProcess::spawn(&t._dir, free_port());
    engine.wait_ready().await;
    t.engine = engine;
    t.alert("StorageDown", "critical", "storage", "china-east")
        .await;
    assert_eq!(
        t.wait_pages(3).await,
        vec![
            page("reopened", "alice", 1),
            page("resolved", "alice", 1),
            page("triggered", "alice", 1),
        ]
    );
    let incident = t.incident(1).await;
    assert_eq!(incident["status"], "triggered");
    let kinds: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"reopened"), "{kinds:?}");
    // No second incident: the reopened one is the only one there is.
    let incidents: Value = t
        .http
        .get(format!("{}/api/v1/incidents", t.engine.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        incidents["incidents"].as_array().unwrap().len(),
        1,
        "{incidents:#}"
    );
    let metrics = t
        .http
        .get(format!("{}/metrics", t.engine.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tocsin_incident_reopens_total 1"),
        "{metrics}"
    );
    t.engine.kill();
}

#[tokio::test]
async fn services_on_a_dead_database_join_its_incident_and_page_on_their_own_after_it() {
    // `web` runs on `sqldb`; the database's incident resolves a second after it clears.
    let mut t = start_with(
        "catalog_extra: {}\ncorrelation: { by: [service] }\nincidents: { resolve_after: 1s }\n",
    )
    .await;
    let soon = chrono::Utc::now() + chrono::Duration::seconds(6);
    t.alert_ending("SqlDown", "critical", "sqldb", "china-east", Some(soon))
        .await;
    assert_eq!(t.wait_pages(1).await, vec![page("triggered", "alice", 1)]);
    t.alert("WebDown", "critical", "web", "china-east").await;
    // One page for the database and a note of the dependent impact: no page of its own.
    assert_eq!(
        t.wait_pages(2).await,
        vec![
            page("impact_added", "alice", 1),
            page("triggered", "alice", 1)
        ]
    );
    let incident = t.incident(1).await;
    let inhibited = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message"].as_str().unwrap().contains("(inhibited by #1)"));
    assert!(inhibited, "{incident:#}");
    // The database recovers; web, still down, pages on its own.
    assert_eq!(
        t.wait_pages(4).await,
        vec![
            page("impact_added", "alice", 1),
            page("resolved", "alice", 1),
            page("triggered", "alice", 1),
            page("triggered", "alice", 2),
        ]
    );
    let web = t.incident(2).await;
    assert_eq!(web["services"], json!(["web"]));
    assert_eq!(web["status"], "triggered");
    t.engine.kill();
}
