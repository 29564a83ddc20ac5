//! The database goes away: a leader cut off from it stops paging and another takes over,
//! and a single engine stops paging and catches up, late and once, when it returns. The
//! server ends an engine's connections: it opens new ones and goes on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support;
use crate::support::{
    eventually, free_port, list_incidents, metric, EngineProcess, PgDatabase, TestDir,
};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{config, http, push, role, Proxy, Receiver, LEASE_SECS, LEVEL_GAP_SECS};

/// The leader's database connection is cut: it stops paging before the lease can pass, a
/// new leader pages the next level, and no page goes out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_database_stops_paging_and_another_takes_over() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let rules = support::default_rules();
    let proxies = [Proxy::start(&db.url).await, Proxy::start(&db.url).await];
    let dirs: Vec<TestDir> = proxies
        .iter()
        .map(|p| TestDir::new(&config(&p.url, &receiver.url), &[("default.yaml", &rules)]))
        .collect();
    let ports = [free_port(), free_port()];
    let http = http();
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let mut first = EngineProcess::spawn(&dirs[0], ports[0]);
    first.wait_ready().await;
    let mut second = EngineProcess::spawn(&dirs[1], ports[1]);
    second.wait_ready().await;
    assert_eq!(role(&http, &url(0)).await.as_deref(), Some("leader"));

    push(&http, &url(0), "storage", "china-east").await;
    let incident = list_incidents(&http, &url(0)).await[0]["id"]
        .as_i64()
        .unwrap();
    let level0 = eventually(Duration::from_secs(10), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(0))
    })
    .await
    .expect("level 0 paged");

    // Cut the leader off from the database.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut_at = Utc::now();
    proxies[0].cut();

    // It steps down when its fence runs out, before the lease can pass; cut off from the
    // store, it is then not ready and says it pages nothing.
    let stepped_down = eventually(Duration::from_secs(LEASE_SECS * 3), || async {
        let (status, text) = ready(&http, &url(0)).await;
        (status == 503 && text.contains("pages nothing")).then(Utc::now)
    })
    .await
    .expect("the cut-off leader steps down");
    let took_over = eventually(Duration::from_secs(LEASE_SECS * 4), || async {
        (role(&http, &url(1)).await.as_deref() == Some("leader")).then(Utc::now)
    })
    .await
    .expect("the other engine takes over");
    // The old leader stopped starting pages before the new one's term began, by each engine's
    // own record: the old one's fence end, the new one's term start (when it sent the lease
    // request that won it), both on this machine's clock.
    let metrics = http
        .get(format!("{}/metrics", url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let new_leader_metrics = http
        .get(format!("{}/metrics", url(1)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at = |seconds: f64| {
        DateTime::<Utc>::from_timestamp_millis((seconds * 1000.0).round() as i64).unwrap()
    };
    let stopped = at(
        metric(&metrics, "tocsin_leader_fence_end_timestamp_seconds")
            .expect("the old leader's fence end"),
    );
    let started = at(metric(
        &new_leader_metrics,
        "tocsin_leader_term_start_timestamp_seconds",
    )
    .expect("the new leader's term start"));
    println!(
        "after the cut: the old leader stopped starting pages at +{} ms, the new leader's term \
         began at +{} ms (seen by polling: stepped down +{} ms, took over +{} ms)",
        (stopped - cut_at).num_milliseconds(),
        (started - cut_at).num_milliseconds(),
        (stepped_down - cut_at).num_milliseconds(),
        (took_over - cut_at).num_milliseconds()
    );
    // Its last renewal before the cut gave it a fence that outlasted the cut.
    assert!(
        stopped > cut_at,
        "the old leader's fence ended at {stopped}, before the cut at {cut_at}"
    );
    assert!(
        stopped < started,
        "the old leader could start pages until {stopped}, but the new leader's term began at \
         {started}"
    );
    assert!(started <= took_over);
    assert_eq!(metric(&metrics, "tocsin_leader"), Some(0.0));
    let sent_by_old = metric(
        &metrics,
        "tocsin_pages_total{channel=\"webhook\",outcome=\"delivered\"}",
    );
    assert_eq!(sent_by_old, Some(1.0), "the old leader delivered level 0");

    // The new leader pages level 1 once.
    let level1 = eventually(Duration::from_secs(20), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(1))
    })
    .await
    .expect("level 1 paged by the new leader");
    assert!(
        level1.at
            >= level0.at + chrono::Duration::seconds(LEVEL_GAP_SECS)
                - chrono::Duration::milliseconds(300)
    );
    let metrics = http
        .get(format!("{}/metrics", url(0)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(
            &metrics,
            "tocsin_pages_total{channel=\"webhook\",outcome=\"delivered\"}"
        ),
        sent_by_old,
        "the cut-off engine sent nothing after stepping down"
    );

    // Healed, the old leader serves again as a follower; nothing went out twice.
    proxies[0].heal();
    let ack = eventually(Duration::from_secs(15), || async {
        let response = http
            .post(format!("{}/api/v1/incidents/{incident}/ack", url(0)))
            .json(&json!({ "by": "bob" }))
            .send()
            .await
            .ok()?;
        (response.status().as_u16() == 200).then_some(())
    })
    .await;
    assert!(ack.is_some(), "an ack through the healed engine lands");
    let mut by_kind: BTreeMap<(String, Option<u64>), BTreeSet<String>> = BTreeMap::new();
    for g in receiver
        .got()
        .into_iter()
        .filter(|g| g.incident == incident)
    {
        by_kind
            .entry((g.event.clone(), g.level))
            .or_default()
            .insert(g.delivery.clone());
    }
    for ((event, level), ids) in &by_kind {
        assert_eq!(
            ids.len(),
            1,
            "{event} level {level:?} went out as {} different pages",
            ids.len()
        );
    }
    drop((first, second));
    db.drop_db().await;
}

async fn ready(http: &reqwest::Client, url: &str) -> (u16, String) {
    match http.get(format!("{url}/-/ready")).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

async fn post_alert(
    http: &reqwest::Client,
    url: &str,
    service: &str,
    region: &str,
) -> (u16, String) {
    let ends = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let body = json!([{ "labels": { "alertname": "Down", "severity": "critical", "service": service, "region": region }, "endsAt": ends }]);
    let response = http
        .post(format!("{url}/api/v2/alerts"))
        .json(&body)
        .send()
        .await
        .expect("the engine answers");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// One engine on PostgreSQL, and the database goes away (every connection cut, new ones
/// refused). Nothing is paged without the store: the leader cannot renew its lease, so it
/// stops leading before the lease can pass, is not ready, and refuses inputs; an input it
/// took just before is answered 503 and lost. When the database returns it leads again and
/// pages what fell due meanwhile, late and once. See SECURITY.md, "Store trouble".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_engine_whose_database_goes_away_stops_paging_and_catches_up_when_it_returns() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let proxy = Proxy::start(&db.url).await;
    let dir = TestDir::new(
        &config(&proxy.url, &receiver.url),
        &[("default.yaml", &support::default_rules())],
    );
    let http = http();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let url = engine.url.clone();
    assert_eq!(role(&http, &url).await.as_deref(), Some("leader"));
    push(&http, &url, "storage", "china-east").await;
    let incident = list_incidents(&http, &url).await[0]["id"].as_i64().unwrap();
    let level0 = eventually(Duration::from_secs(10), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(0))
    })
    .await
    .expect("level 0 paged");

    // The database goes away between level 0 and level 1.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cut_at = Utc::now();
    proxy.cut();
    // An input taken while the leader still holds its fence: the store refuses it, so it
    // is answered 503 (the sender keeps it and sends it again).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, answer) = post_alert(&http, &url, "compute", "china-west").await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("not recorded"), "{answer}");

    // It is not ready from the first failed write, stops leading before its lease can pass,
    // and then says that it pages nothing.
    let (status, text) = ready(&http, &url).await;
    assert_eq!(status, 503, "{text}");
    let stepped_down = eventually(Duration::from_secs(LEASE_SECS * 3), || async {
        let (status, text) = ready(&http, &url).await;
        (status == 503 && text.contains("pages nothing")).then(|| (Utc::now(), text))
    })
    .await;
    let (stepped_down, text) = stepped_down.expect("/-/ready answers 503 once it stops leading");
    let took = (stepped_down - cut_at).num_milliseconds();
    println!("stopped leading {took} ms after the database went away (lease {LEASE_SECS} s)");
    assert!(
        took <= LEASE_SECS as i64 * 1000 + 750,
        "stepped down after {took} ms"
    );
    assert!(text.contains("the store is not answering"), "{text}");
    assert!(text.contains("pages nothing"), "{text}");
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&metrics, "tocsin_leader"), Some(0.0));
    let healthy = http.get(format!("{url}/-/healthy")).send().await.unwrap();
    assert_eq!(healthy.status().as_u16(), 200);

    // Inputs are refused now, not taken: nobody can record them.
    let (status, answer) = post_alert(&http, &url, "sqldb", "china-north").await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("not taken"), "{answer}");
    assert!(answer.contains("send it again"), "{answer}");

    // Level 1 falls due while the database is away: it is not paged.
    let due = level0.at + chrono::Duration::seconds(LEVEL_GAP_SECS);
    let wait = (due - Utc::now()).to_std().unwrap_or_default() + Duration::from_secs(2);
    tokio::time::sleep(wait).await;
    let got: Vec<(String, String)> = receiver
        .got()
        .iter()
        .map(|g| (g.event.clone(), g.incident.to_string()))
        .collect();
    assert_eq!(
        got,
        vec![("triggered".to_string(), incident.to_string())],
        "nothing is paged while the database is away"
    );

    // The database returns: the engine leads again and pages level 1, late, once.
    let healed_at = Utc::now();
    proxy.heal();
    let led_again = eventually(Duration::from_secs(LEASE_SECS * 4), || async {
        (role(&http, &url).await.as_deref() == Some("leader")).then(Utc::now)
    })
    .await
    .expect("it leads again");
    let level1 = eventually(Duration::from_secs(20), || async {
        receiver
            .deduped(incident)
            .into_iter()
            .find(|g| g.level == Some(1))
    })
    .await
    .expect("level 1 paged once the database is back");
    println!(
        "led again {} ms after the database came back; level 1 paged {} ms after it fell due",
        (led_again - healed_at).num_milliseconds(),
        (level1.at - due).num_milliseconds()
    );
    assert_eq!(level1.event, "escalated");
    assert!(
        level1.at >= healed_at,
        "level 1 went out before the database came back"
    );

    // The inputs answered 503 were not recorded; sent again, they land and page.
    let services: BTreeSet<String> = list_incidents(&http, &url)
        .await
        .iter()
        .map(|i| i["services"][0].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(services, BTreeSet::from(["storage".to_string()]));
    for (service, region) in [("compute", "china-west"), ("sqldb", "china-north")] {
        let (status, answer) = post_alert(&http, &url, service, region).await;
        assert_eq!(status, 200, "{answer}");
    }
    let paged = eventually(Duration::from_secs(10), || async {
        let triggered = receiver
            .got()
            .iter()
            .filter(|g| g.event == "triggered")
            .map(|g| g.incident)
            .collect::<BTreeSet<_>>();
        (triggered.len() == 3).then_some(())
    })
    .await;
    assert!(paged.is_some(), "{:?}", receiver.got());

    // Nothing went out twice, and every stored page was delivered.
    let mut by_kind: BTreeMap<(i64, String, Option<u64>), BTreeSet<String>> = BTreeMap::new();
    for g in receiver.got() {
        by_kind
            .entry((g.incident, g.event.clone(), g.level))
            .or_default()
            .insert(g.delivery.clone());
    }
    for (kind, ids) in &by_kind {
        assert_eq!(ids.len(), 1, "{kind:?} went out as {} pages", ids.len());
    }
    let store = tocsin::store::Store::open(&db.url).await.unwrap();
    let delivered = eventually(Duration::from_secs(10), || async {
        let mut all = Vec::new();
        for incident in store.all_incidents().await.ok()? {
            all.extend(store.pages_of(incident.id).await.ok()?);
        }
        all.iter()
            .all(|p| p.status == tocsin::store::OutboxStatus::Delivered)
            .then_some(all.len())
    })
    .await;
    let delivered = delivered.expect("every stored page is delivered");
    assert!(delivered >= 4, "{delivered} pages");
    store.close().await;
    drop(engine);
    db.drop_db().await;
}

/// The server ends every connection of a running engine (an administrator's
/// `pg_terminate_backend`, a restart behind a pooler, `idle_session_timeout`): the engine
/// opens new ones as it needs them, so the next alert is answered, stored and paged, and
/// the engine stays ready and leading throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_ends_are_opened_again_and_the_next_alert_pages() {
    use sqlx::Connection;
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let dir = TestDir::new(
        &config(&db.url, &receiver.url),
        &[("default.yaml", &support::default_rules())],
    );
    let http = http();
    let mut engine = EngineProcess::spawn(&dir, free_port());
    engine.wait_ready().await;
    let url = engine.url.clone();
    let triggered = || {
        receiver
            .got()
            .iter()
            .filter(|g| g.event == "triggered")
            .map(|g| g.incident)
            .collect::<BTreeSet<_>>()
    };
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for (round, (service, region)) in [("storage", "china-east"), ("compute", "china-west")]
        .into_iter()
        .enumerate()
    {
        // Right after the page before it: the engine's connections were all in use then.
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(
            ended >= 1,
            "round {round}: no connection of the engine ended"
        );
        let (status, answer) = post_alert(&http, &url, service, region).await;
        assert_eq!(status, 200, "round {round}: {answer}");
        let paged = eventually(Duration::from_secs(10), || async {
            (triggered().len() == round + 1).then_some(())
        })
        .await;
        assert!(paged.is_some(), "round {round}: {:?}", receiver.got());
        let (status, text) = ready(&http, &url).await;
        assert_eq!(status, 200, "round {round}: {text}");
        assert_eq!(role(&http, &url).await.as_deref(), Some("leader"));
    }
    let services: BTreeSet<String> = list_incidents(&http, &url)
        .await
        .iter()
        .map(|i| i["services"][0].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        services,
        BTreeSet::from(["compute".to_string(), "storage".to_string()])
    );
    admin.close().await.ok();
    drop(engine);
    db.drop_db().await;
}
