//! The crash test: a load of pushed alerts, acks and resolves against the real binary while
//! it is SIGKILLed at random moments; after every restart the store is compared with what
//! the engine acknowledged to its clients, and at the end the outbox and a receiver that
//! dedupes on `X-Tocsin-Delivery` with the incidents.
//!
//! Run in the suite with a few kills (`tests/e2e/reliability.rs`,
//! `crash_under_load_loses_nothing`); the long form is run by hand:
//!
//! ```sh
//! TOCSIN_CRASH_KILLS=20 cargo test --test e2e reliability::crash_under_load_long -- --ignored --nocapture
//! ```
//! `TOCSIN_CRASH_SEED=N` replays one run's random choices (the seed is printed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tocsin::store::{OutboxStatus, Store};

use super::{free_port, http, Proc, Recorder};

const RULES: &str = r#"
groups:
  - name: crash
    rules:
      - name: Down
        match: [ 'source="alert"', 'alertname="Down"' ]
        impact: { kind: outage, sla_breach: true }
"#;

fn config(hook: &str) -> String {
    format!(
        r#"
store: {{ url: "sqlite://data/tocsin.db" }}
rule_files: [ "rules/*.yaml" ]
server: {{ rate_limit: {{ per_client: 100000, burst: 100000 }} }}
correlation: {{ by: [service], window: 15m }}
escalation_policies:
  - name: crash
    levels:
      - {{ after: 0s, notify: [ "webhook:dedupe" ] }}
routes:
  - {{ match: [ 'severity=~"0|1|2|3|4"' ], policy: crash }}
notifiers:
  webhooks: [ {{ name: dedupe, url: "{hook}", timeout: 5s }} ]
  retry: {{ initial_backoff: 100ms, max_backoff: 1s, max_age: 1h }}
"#
    )
}

/// What the engine answered 2xx to: it promised these are stored.
#[derive(Default)]
struct Ledger {
    next: usize,
    pushed: BTreeSet<String>,
    acked: BTreeSet<String>,
    resolved: BTreeSet<String>,
    /// Service → incident id, as last listed.
    ids: BTreeMap<String, i64>,
    /// Requests that got no answer or not a 2xx/409 (the engine was down or restarting).
    unanswered: usize,
    ops: usize,
    /// The last request got no answer.
    backoff: bool,
}

/// The figures a run prints.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    pub seed: u64,
    pub kills: usize,
    pub requests: usize,
    pub unanswered: usize,
    pub pushes_acknowledged: usize,
    pub acks_acknowledged: usize,
    pub resolves_acknowledged: usize,
    pub incidents_in_store: usize,
    pub lost_incidents: usize,
    pub lost_acks: usize,
    pub lost_resolves: usize,
    pub pages_in_outbox: usize,
    pub pages_due_not_made: usize,
    pub pages_undelivered: usize,
    pub pages_missing_at_receiver: usize,
    pub receiver_requests: usize,
    pub receiver_distinct: usize,
    pub sent_again_after_crash: usize,
    pub duplicates_after_dedupe: usize,
    pub unknown_at_receiver: usize,
    /// Batches a restarted engine found in its redo log and not in SQLite (killed between
    /// the two): how often that window was hit, not a failure.
    pub batches_from_redo_log: usize,
}

impl Counts {
    pub fn print(&self) {
        println!("crash test (seed {}):", self.seed);
        for (name, value) in [
            ("kills (SIGKILL)", self.kills),
            ("operations (push, ack, resolve)", self.requests),
            ("operations unanswered (engine down)", self.unanswered),
            (
                "alerts pushed and acknowledged (2xx)",
                self.pushes_acknowledged,
            ),
            ("acks acknowledged (2xx)", self.acks_acknowledged),
            ("resolves acknowledged (2xx)", self.resolves_acknowledged),
            ("incidents in the store", self.incidents_in_store),
            ("LOST incidents", self.lost_incidents),
            ("LOST acks", self.lost_acks),
            ("LOST resolves", self.lost_resolves),
            ("pages in the outbox", self.pages_in_outbox),
            ("pages due but never made", self.pages_due_not_made),
            ("pages not delivered", self.pages_undelivered),
            (
                "pages the receiver never got",
                self.pages_missing_at_receiver,
            ),
            ("receiver: requests", self.receiver_requests),
            (
                "receiver: distinct X-Tocsin-Delivery",
                self.receiver_distinct,
            ),
            (
                "sent again after a crash (deduped)",
                self.sent_again_after_crash,
            ),
            ("DUPLICATES after dedupe", self.duplicates_after_dedupe),
            (
                "receiver got pages not in the outbox",
                self.unknown_at_receiver,
            ),
            (
                "batches committed from the redo log",
                self.batches_from_redo_log,
            ),
        ] {
            println!("  {name:<40} {value}");
        }
    }

    /// Nothing lost, nothing duplicated.
    pub fn clean(&self) -> bool {
        self.lost_incidents == 0
            && self.lost_acks == 0
            && self.lost_resolves == 0
            && self.pages_due_not_made == 0
            && self.pages_undelivered == 0
            && self.pages_missing_at_receiver == 0
            && self.duplicates_after_dedupe == 0
            && self.unknown_at_receiver == 0
    }
}

/// An outage of `service`, in a region of its own: outages of several services in one
/// region within minutes would be one regional incident, and the ledger counts one incident
/// per service.
fn alert(service: &str) -> Value {
    let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let region = format!("r-{service}");
    json!({ "labels": { "alertname": "Down", "service": service, "region": region },
            "annotations": { "summary": format!("{service} is down") }, "endsAt": ends })
}

/// One client: pushes new alerts, acks and resolves incidents, until told to stop.
async fn drive(url: String, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>, seed: u64) {
    let http = http();
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.load(Ordering::Relaxed) {
        let roll = rng.random_range(0..100);
        let op = ledger.lock().unwrap().ops;
        ledger.lock().unwrap().ops += 1;
        if op.is_multiple_of(8) {
            if let Ok(r) = http
                .get(format!("{url}/api/v1/incidents?limit=10000"))
                .send()
                .await
            {
                if let Ok(page) = r.json::<Value>().await {
                    let list = page["incidents"].as_array().cloned().unwrap_or_default();
                    let mut l = ledger.lock().unwrap();
                    for i in list {
                        if let (Some(service), Some(id)) =
                            (i["services"][0].as_str(), i["id"].as_i64())
                        {
                            l.ids.insert(service.to_string(), id);
                        }
                    }
                }
            }
        }
        if roll < 50 {
            let services: Vec<String> = {
                let mut l = ledger.lock().unwrap();
                (0..rng.random_range(1..=4))
                    .map(|_| {
                        l.next += 1;
                        format!("svc-{seed}-{}", l.next)
                    })
                    .collect()
            };
            let body = Value::Array(services.iter().map(|s| alert(s)).collect());
            let answer = http
                .post(format!("{url}/api/v2/alerts"))
                .json(&body)
                .send()
                .await;
            let mut l = ledger.lock().unwrap();
            match answer {
                Ok(r) if r.status().is_success() => l.pushed.extend(services),
                _ => {
                    l.unanswered += 1;
                    l.backoff = true;
                }
            }
        } else {
            let resolve = roll >= 75;
            let target = {
                let l = ledger.lock().unwrap();
                let open: Vec<(&String, &i64)> = l
                    .ids
                    .iter()
                    .filter(|(s, _)| !l.resolved.contains(*s) && (resolve || !l.acked.contains(*s)))
                    .collect();
                if open.is_empty() {
                    None
                } else {
                    let (s, id) = open[rng.random_range(0..open.len())];
                    Some((s.clone(), *id))
                }
            };
            if let Some((service, id)) = target {
                let (path, body) = if resolve {
                    ("resolve", json!({ "by": "crash-test", "note": "fixed" }))
                } else {
                    ("ack", json!({ "by": "crash-test" }))
                };
                let answer = http
                    .post(format!("{url}/api/v1/incidents/{id}/{path}"))
                    .json(&body)
                    .send()
                    .await;
                let mut l = ledger.lock().unwrap();
                match answer {
                    Ok(r) if r.status().is_success() => {
                        if resolve {
                            l.resolved.insert(service);
                        } else {
                            l.acked.insert(service);
                        }
                    }
                    // Already acknowledged or resolved: allowed, nothing promised.
                    Ok(r) if r.status().as_u16() == 409 => {}
                    _ => {
                        l.unanswered += 1;
                        l.backoff = true;
                    }
                }
            }
        }
        // While the engine is down, as a client would: try again a little later.
        let backoff = std::mem::take(&mut ledger.lock().unwrap().backoff);
        let pause = if backoff { 50..100 } else { 2..15 };
        tokio::time::sleep(Duration::from_millis(rng.random_range(pause))).await;
    }
}

/// Compare the store (through the API) with what the engine acknowledged so far.
async fn verify(proc: &Proc, ledger: &Mutex<Ledger>, counts: &mut Counts) {
    let (pushed, acked, resolved) = {
        let l = ledger.lock().unwrap();
        (l.pushed.clone(), l.acked.clone(), l.resolved.clone())
    };
    let (status, list) = proc.get_json("/api/v1/incidents?limit=10000").await;
    let list = list["incidents"].clone();
    assert_eq!(status, 200, "{list}");
    let by_service: BTreeMap<String, Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| Some((i["services"][0].as_str()?.to_string(), i.clone())))
        .collect();
    for service in &pushed {
        if !by_service.contains_key(service) {
            eprintln!("LOST incident of {service}");
            counts.lost_incidents += 1;
        }
    }
    for service in &acked {
        if by_service
            .get(service)
            .is_none_or(|i| i["acknowledged_at"].is_null())
        {
            eprintln!("LOST ack of {service}");
            counts.lost_acks += 1;
        }
    }
    for service in &resolved {
        if by_service
            .get(service)
            .is_none_or(|i| i["status"] != "resolved")
        {
            eprintln!("LOST resolve of {service}");
            counts.lost_resolves += 1;
        }
    }
}

/// Run the crash test with `kills` SIGKILLs; `scratch` is a folder of its own.
pub async fn run(kills: usize, seed: u64, scratch: &Path) -> Counts {
    let mut rng = StdRng::seed_from_u64(seed);
    let receiver = Recorder::start(200).await;
    std::fs::create_dir_all(scratch.join("rules")).unwrap();
    std::fs::write(scratch.join("rules/crash.yaml"), RULES).unwrap();
    std::fs::write(scratch.join("config.yaml"), config(&receiver.url)).unwrap();
    let mut proc = Proc::start(
        &scratch.join("config.yaml"),
        free_port(),
        &scratch.join("engine.log"),
        &[],
    );
    proc.wait_ready().await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = (0..2)
        .map(|i| {
            tokio::spawn(drive(
                proc.url.clone(),
                Arc::clone(&ledger),
                Arc::clone(&stop),
                seed.wrapping_mul(31).wrapping_add(i),
            ))
        })
        .collect();
    let mut counts = Counts {
        seed,
        kills,
        ..Counts::default()
    };
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        proc.kill();
        // Sometimes down for a while (clients fail meanwhile), sometimes back at once.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        proc.restart();
        proc.wait_ready().await;
        verify(&proc, &ledger, &mut counts).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for driver in drivers {
        driver.await.unwrap();
    }
    verify(&proc, &ledger, &mut counts).await;

    // Every page that fell due goes out: wait until the outbox has nothing pending.
    let db = format!("sqlite://{}", scratch.join("data/tocsin.db").display());
    let store = Store::open_read_only(&db).await.unwrap();
    let mut drained = false;
    for _ in 0..600 {
        if store.pending_pages(1).await.unwrap().is_empty() {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !drained {
        eprintln!("the outbox did not drain in 30 s");
    }
    let incidents = store.all_incidents().await.unwrap();
    let mut outbox = Vec::new();
    for incident in &incidents {
        let pages = store.pages_of(incident.id).await.unwrap();
        let events: Vec<&str> = pages.iter().map(|p| p.page.event.as_str()).collect();
        let mut due = vec!["triggered"];
        if incident.acknowledged_at.is_some() {
            due.push("acknowledged");
        }
        if incident.resolved_at.is_some() {
            due.push("resolved");
        }
        for event in due {
            if !events.contains(&event) {
                eprintln!("incident {}: no {event} page", incident.id);
                counts.pages_due_not_made += 1;
            }
        }
        outbox.extend(pages);
    }
    store.close().await;
    proc.kill();
    counts.batches_from_redo_log = proc
        .log_text()
        .matches("committed a batch from the redo log")
        .count();

    let per_delivery = receiver.per_delivery();
    let mut logical: BTreeMap<(i64, String, String), usize> = BTreeMap::new();
    for entry in &outbox {
        let page = &entry.page;
        *logical
            .entry((
                page.incident_id,
                page.event.as_str().to_string(),
                page.recipient.id.clone(),
            ))
            .or_insert(0) += 1;
        if entry.status != OutboxStatus::Delivered {
            counts.pages_undelivered += 1;
        }
        if !per_delivery.contains_key(&page.delivery_id) {
            counts.pages_missing_at_receiver += 1;
        }
    }
    // Two pages (two delivery ids) for one notification: the engine paged twice.
    let mut at_receiver: BTreeMap<(i64, String), usize> = BTreeMap::new();
    for got in receiver.deduped() {
        *at_receiver
            .entry((got.incident(), got.event.clone()))
            .or_insert(0) += 1;
    }
    counts.duplicates_after_dedupe = logical.values().map(|n| n - 1).sum::<usize>()
        + at_receiver.values().map(|n| n - 1).sum::<usize>();
    let known: BTreeSet<&str> = outbox.iter().map(|e| e.page.delivery_id.as_str()).collect();
    counts.unknown_at_receiver = per_delivery
        .keys()
        .filter(|d| !known.contains(d.as_str()))
        .count();
    counts.receiver_requests = per_delivery.values().sum();
    counts.receiver_distinct = per_delivery.len();
    counts.sent_again_after_crash = counts.receiver_requests - counts.receiver_distinct;
    counts.pages_in_outbox = outbox.len();
    counts.incidents_in_store = incidents.len();
    let l = ledger.lock().unwrap();
    counts.requests = l.ops;
    counts.unanswered = l.unanswered;
    counts.pushes_acknowledged = l.pushed.len();
    counts.acks_acknowledged = l.acked.len();
    counts.resolves_acknowledged = l.resolved.len();
    counts
}
