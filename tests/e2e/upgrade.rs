//! Upgrades: today's `tocsin` starts on a store written by each earlier schema version, and
//! on one of today's, as their binaries left them (`tests/fixtures/`, made by
//! `tests/fixtures/make-fixtures.sh`; see the README there).
//!
//! For each fixture, on a copy: `tocsin check --store` names its schema version and the
//! migrations pending, and changes no byte of it; the real binary starts on it and shows
//! every incident, impact and timeline entry the old one showed, with the same content; it
//! delivers each page the old one left undelivered exactly once, sends none it had delivered
//! again, and fires each escalation level left pending (on the frozen clock: when it is due,
//! not before); after a restart nothing is sent again, and the store is up to date.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::support::paging::FrozenEngine;
use crate::support::reliability as reliability_support;
use crate::support::reliability::{eventually, free_port, http, Proc, Recorder};
use crate::support::upgrade::{
    check_line, check_store, copy_sqlite, differences, latest_schema, scenario_config,
    scenario_rules, snapshot, Fixture, Prepared, FIXTURES,
};
use crate::support::TestDir;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tocsin::store::{OutboxStatus, Store};

/// Every incident the old binary showed, shown the same by the engine at `base`, and no
/// other (but the test's own, of service [`MARK`], and a torn fixture's burst, see
/// [`assert_burst_kept`]).
async fn assert_incidents_kept(fixture: &Fixture, base: &str) {
    let http = http();
    let page: Value = http
        .get(format!("{base}/api/v1/incidents?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<Value> = page["incidents"].as_array().cloned().unwrap();
    let ids: BTreeSet<i64> = listed
        .iter()
        .filter(|i| !of_the_mark(&i["services"]) && !of_the_burst(&i["services"]))
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    let old = fixture.expected["incidents"].as_array().unwrap();
    let old_ids: BTreeSet<i64> = old.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        old_ids,
        "{}: the incidents listed: {}",
        fixture.name,
        serde_json::to_string_pretty(&listed).unwrap()
    );
    let mut found = Vec::new();
    for incident in old {
        let id = incident["id"].as_i64().unwrap();
        let got: Value = http
            .get(format!("{base}/api/v1/incidents/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        differences(incident, &got, &format!("incident {id}"), &mut found);
    }
    assert!(
        found.is_empty(),
        "{}: what today's engine shows differs from what the old one showed:\n{}",
        fixture.name,
        found.join("\n")
    );
}

/// The pages a torn fixture's burst sent before the kill (what the receiver got).
fn burst_paged(fixture: &Fixture) -> Vec<Value> {
    fixture.expected["burst"]["paged"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A torn fixture: the engine was killed while batches that paged were in its redo log and
/// not yet in SQLite. Each incident whose page went out before the kill is there, and every
/// incident of the burst has its impact (the log's records were written for the schema of
/// their day, and are committed at the next start).
async fn assert_burst_kept(fixture: &Fixture, base: &str) {
    if fixture.expected.get("burst").is_none() {
        return;
    }
    let http = http();
    let page: Value = http
        .get(format!("{base}/api/v1/incidents?limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<Value> = page["incidents"].as_array().cloned().unwrap();
    let burst: BTreeSet<i64> = listed
        .iter()
        .filter(|i| of_the_burst(&i["services"]))
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    let paged = burst_paged(fixture);
    assert!(
        !paged.is_empty(),
        "{}: the burst paged before the kill",
        fixture.name
    );
    for got in &paged {
        let id = got["incident"].as_i64().unwrap();
        assert!(
            burst.contains(&id),
            "{}: incident {id}, paged before the kill, is not listed",
            fixture.name
        );
    }
    for id in burst {
        let incident: Value = http
            .get(format!("{base}/api/v1/incidents/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let impacts = incident["impacts"].as_array().map_or(0, Vec::len);
        assert_eq!(
            impacts, 1,
            "{}: incident {id} of the burst has {impacts} impacts: {incident}",
            fixture.name
        );
    }
}

/// SIGTERM, and wait for the engine to exit (it stops cleanly within 30 s).
async fn terminate(proc: &mut Proc) {
    let mut child = proc.child.take().expect("running");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    for _ in 0..600 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                status.success(),
                "exit status {status}:\n{}",
                proc.log_text()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no exit within 30 s of SIGTERM:\n{}", proc.log_text());
}

/// Today's binary on a copy of `fixture`.
async fn starts_on(fixture: Fixture) {
    let latest = latest_schema(fixture.backend());
    let recorder = Recorder::start(200).await;
    let prepared = Prepared::new(&fixture, &recorder.url).await;

    // `check --store` says what the start will do, and changes nothing.
    let before = (!fixture.postgres()).then(|| snapshot(&prepared.dir.path().join("data")));
    let (code, stdout, stderr) = check_store(&prepared.config);
    assert_eq!(code, 0, "{}: check --store: {stdout}{stderr}", fixture.name);
    let line = check_line(fixture.schema_version(), latest);
    assert!(
        stdout.contains(&line),
        "{}: {stdout:?}, wanted {line:?}",
        fixture.name
    );
    if let Some(before) = before {
        let after = snapshot(&prepared.dir.path().join("data"));
        assert_eq!(
            after.keys().collect::<Vec<_>>(),
            before.keys().collect::<Vec<_>>(),
            "{}: check --store made or removed files",
            fixture.name
        );
        // A `-shm` (left by an engine that was killed) is SQLite's index of the WAL, which
        // every reader may rebuild: not the store.
        for name in before.keys().filter(|n| !n.ends_with("-shm")) {
            assert!(
                before[name] == after[name],
                "{}: check --store changed {name}",
                fixture.name
            );
        }
    }

    let log = prepared.dir.path().join("engine.log");
    let mut engine = Proc::start(&prepared.config, free_port(), &log, &[]);
    engine.wait_ready().await;
    assert_incidents_kept(&fixture, &engine.url).await;
    // Beside the running engine (it takes none of its locks), after its migrations.
    let (code, stdout, stderr) = check_store(&prepared.config);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&check_line(latest, latest)), "{stdout}");

    // What goes out: each undelivered page once, and each escalation level left to come
    // (now past due: the fixture was made before), none already delivered.
    let (delivered, undelivered) = fixture.delivered_and_not();
    let now = Utc::now();
    let due: Vec<(i64, u64)> = fixture
        .escalations()
        .into_iter()
        .filter(|(_, _, at)| *at <= now)
        .map(|(incident, level, _)| (incident, level))
        .collect();
    let escalated = |got: &[reliability_support::Got]| -> BTreeSet<(i64, u64)> {
        got.iter()
            .filter(|g| !undelivered.contains_key(&g.delivery) && !about_the_mark(g))
            .filter(|g| !of_the_burst(&g.body["incident"]["services"]))
            // Escalation pages; an update held before the stop (`impact_added`, from
            // schema 11 on) goes after it too, and is no level paged.
            .filter(|g| matches!(g.body["event"].as_str(), Some("triggered" | "escalated")))
            .filter_map(|g| Some((g.incident(), g.body["escalation"]["level"].as_u64()?)))
            .collect()
    };
    let arrived = eventually(Duration::from_secs(30), || async {
        let got = recorder.deduped();
        let pages = undelivered
            .keys()
            .all(|d| got.iter().any(|g| &g.delivery == d));
        let levels = due.iter().all(|l| escalated(&got).contains(l));
        (pages && levels).then_some(())
    })
    .await;
    assert!(
        arrived.is_some(),
        "{}: undelivered pages {:?} and levels {due:?} did not all arrive; got {:?}\n{}",
        fixture.name,
        undelivered.keys().collect::<Vec<_>>(),
        recorder.got(),
        engine.log_text()
    );
    for got in recorder.deduped() {
        if let Some(page) = undelivered.get(&got.delivery) {
            assert_eq!(
                got.path,
                format!("/hook/{}", page["recipient"].as_str().unwrap()),
                "{}: page {} to its receiver",
                fixture.name,
                page["id"]
            );
        }
    }

    assert_burst_kept(&fixture, &engine.url).await;

    // A new incident's page is a mark: what the delivery worker had due at the start went
    // out before it, so by then nothing is still to come of the old store's pages.
    let marker = |n: u32| {
        json!([{
            "labels": { "alertname": format!("After{n}"), "severity": "critical",
                        "service": format!("{MARK}{n}"), "region": "china-east" },
            "endsAt": "2099-01-01T00:00:00Z",
        }])
    };
    let (status, answer) = engine.post_json("/api/v2/alerts", &marker(1)).await;
    assert_eq!(status, 200, "{answer}");
    let waited = eventually(Duration::from_secs(30), || async {
        let got = recorder.got();
        got.iter().any(about_the_mark).then_some(())
    })
    .await;
    assert!(
        waited.is_some(),
        "{}: the new incident's page",
        fixture.name
    );
    let sent_again: Vec<_> = recorder
        .got()
        .into_iter()
        .filter(|g| delivered.contains(&g.delivery))
        .collect();
    assert!(
        sent_again.is_empty(),
        "{}: delivered pages sent again: {sent_again:?}",
        fixture.name
    );
    let twice: Vec<_> = recorder
        .per_delivery()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{}: pages sent twice: {twice:?}",
        fixture.name
    );
    let expected_levels: BTreeSet<(i64, u64)> = due.iter().copied().collect();
    assert_eq!(
        escalated(&recorder.got()),
        expected_levels,
        "{}: escalation levels paged (incident, level)",
        fixture.name
    );

    // Stopped and started again: what went out is recorded, nothing goes again.
    terminate(&mut engine).await;
    let store = Store::open(&prepared.store_url()).await.unwrap();
    for page in fixture.pages() {
        let id = page["id"].as_i64().unwrap();
        let entry = store.page(id).await.unwrap().expect("the page's row");
        assert_eq!(
            entry.status,
            OutboxStatus::Delivered,
            "{}: page {id} ({})",
            fixture.name,
            page["delivery"]
        );
        assert_eq!(entry.page.delivery_id, page["delivery"].as_str().unwrap());
    }
    for got in burst_paged(&fixture) {
        let incident = got["incident"].as_i64().unwrap();
        let pages = store.pages_of(incident).await.unwrap();
        assert!(
            pages
                .iter()
                .any(|p| p.page.delivery_id == got["delivery"]
                    && p.status == OutboxStatus::Delivered),
            "{}: incident {incident}'s page {} went out before the kill and is not stored \
             as delivered: {:?}",
            fixture.name,
            got["delivery"],
            pages
                .iter()
                .map(|p| (&p.page.delivery_id, p.status))
                .collect::<Vec<_>>()
        );
    }
    store.close().await;
    let sent = recorder.got().len();
    engine.restart();
    engine.wait_ready().await;
    assert_incidents_kept(&fixture, &engine.url).await;
    let (status, answer) = engine.post_json("/api/v2/alerts", &marker(2)).await;
    assert_eq!(status, 200, "{answer}");
    let waited = eventually(Duration::from_secs(30), || async {
        (recorder.got().len() > sent).then_some(())
    })
    .await;
    assert!(waited.is_some(), "{}: the second mark's page", fixture.name);
    let after: Vec<_> = recorder.got()[sent..].to_vec();
    assert!(
        after.iter().all(about_the_mark),
        "{}: sent after the restart: {after:?}",
        fixture.name
    );
    terminate(&mut engine).await;

    let (code, stdout, stderr) = check_store(&prepared.config);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&check_line(latest, latest)),
        "{}: {stdout}",
        fixture.name
    );
    prepared.drop_db().await;
}

/// The services of the alerts a test sends after the start (`marker-N`) begin so: no
/// fixture's incident has one.
const MARK: &str = "marker-";

/// Services of the incidents a torn fixture's burst opened (`burst-N`).
fn of_the_burst(services: &Value) -> bool {
    services[0]
        .as_str()
        .is_some_and(|s| s.starts_with("burst-"))
}

fn of_the_mark(services: &Value) -> bool {
    services[0].as_str().is_some_and(|s| s.starts_with(MARK))
}

/// A page about an incident of the test's own alerts: not one the old store left to send.
fn about_the_mark(got: &reliability_support::Got) -> bool {
    of_the_mark(&got.body["incident"]["services"])
}

/// On a frozen clock started where the fixture's engine stopped: each escalation level it
/// left pending is paged at its due time, not a minute before.
async fn escalates_when_due(fixture: Fixture) {
    let recorder = Recorder::start(200).await;
    // A webhook's answer may still be on its way when the clock takes a step: with the
    // scenario's 5 s timeout, a minute's step would time the request out.
    let config = scenario_config("sqlite://data/tocsin.db", &recorder.url)
        .replace("timeout: 5s", "timeout: 1h");
    let dir = TestDir::new(&config, &[("rules.yaml", &scenario_rules())]);
    copy_sqlite(&fixture, &dir.path().join("data"));
    let engine = FrozenEngine::start_in(dir, fixture.stopped_at()).await;
    let (_, undelivered) = fixture.delivered_and_not();
    let levels = |got: Vec<reliability_support::Got>| -> Vec<(i64, u64)> {
        got.iter()
            .filter(|g| !undelivered.contains_key(&g.delivery))
            .filter(|g| matches!(g.body["event"].as_str(), Some("triggered" | "escalated")))
            .filter_map(|g| Some((g.incident(), g.body["escalation"]["level"].as_u64()?)))
            .collect()
    };
    let escalations = fixture.escalations();
    assert!(
        !escalations.is_empty(),
        "{}: the scenario leaves levels to come",
        fixture.name
    );
    // Levels not due at `now` have not been paged; those due have.
    let check = |now: DateTime<Utc>| {
        let paged = levels(recorder.got());
        for (incident, level, due) in &escalations {
            let sent = paged.contains(&(*incident, *level));
            assert_eq!(
                sent,
                *due <= now,
                "{}: incident {incident}, level {level}, due {due}: paged by {now}: {sent}",
                fixture.name
            );
        }
    };
    let mut dues: Vec<DateTime<Utc>> = escalations.iter().map(|e| e.2).collect();
    dues.sort();
    for due in dues {
        advance(&engine, &recorder, due - chrono::Duration::minutes(1)).await;
        settle(&engine, &recorder).await;
        check(engine.clock.now());
        advance(&engine, &recorder, due + chrono::Duration::milliseconds(1)).await;
        settle(&engine, &recorder).await;
        check(engine.clock.now());
    }
    let twice: Vec<_> = recorder
        .per_delivery()
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{}: pages sent twice: {twice:?}",
        fixture.name
    );
    engine.engine.stop().await;
}

/// Let the engine and its delivery worker run (the clock does not move) until every page
/// due now that can go has reached `recorder` and its answer has been taken: a minute's step taken
/// while an answer is on its way would time its request out. (Its outcome may still wait
/// to be stored: a page can go before its batch is in SQLite, and its outcome is written
/// again 200 ms later, see `paging::notify`.)
async fn settle(engine: &FrozenEngine, recorder: &Recorder) {
    let store = &engine.engine.running.state.store;
    let delivered = engine
        .engine
        .running
        .metrics
        .pages_total
        .with_label_values(&["webhook", "delivered"]);
    // Bounded in real time: the store's threads (SQLite, its fsyncs) run on the real clock,
    // and a loaded machine can keep them for seconds. What waits on the frozen clock to try
    // the store again (the worker's first load after a pool timeout, an outcome deferred
    // until its batch is in SQLite) is let go by a nudge of 100 ms each second.
    let deadline = std::time::SystemTime::now() + Duration::from_secs(60);
    let mut nudge_at = std::time::SystemTime::now() + Duration::from_secs(1);
    while std::time::SystemTime::now() < deadline {
        if std::time::SystemTime::now() > nudge_at {
            tokio::time::advance(Duration::from_millis(100)).await;
            nudge_at = std::time::SystemTime::now() + Duration::from_secs(1);
        }
        let now = engine.clock.now();
        let pending = store.pending_pages(1000).await.unwrap();
        let got = recorder.got();
        let sent: BTreeSet<&str> = got.iter().map(|g| g.delivery.as_str()).collect();
        // Pages about one incident to one receiver go in order: only the first of each
        // such lane can be under way.
        let mut heads = BTreeMap::new();
        for p in &pending {
            heads
                .entry((p.page.incident_id, p.page.recipient.id.clone()))
                .or_insert(p);
        }
        if delivered.get() as usize == got.len()
            && heads
                .values()
                .all(|p| p.next_attempt_at > now || sent.contains(p.page.delivery_id.as_str()))
        {
            return;
        }
        engine.barrier().await;
        pause_for_real().await;
    }
    let pending = store.pending_pages(1000).await.unwrap();
    panic!(
        "the delivery worker did not settle at {}: {:?}",
        engine.clock.now(),
        pending
            .iter()
            .map(|p| (p.page.id, p.attempts, p.next_attempt_at, &p.last_error))
            .collect::<Vec<_>>()
    );
}

/// A millisecond of real time, off the runtime (whose clock is frozen), for the threads of
/// the store and the receiver to get the CPU.
async fn pause_for_real() {
    #[allow(clippy::disallowed_methods)] // on a blocking thread, not the runtime's
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(1)))
        .await
        .unwrap();
}

/// Move the frozen clock to `at` a minute at a time, letting the engine handle each step.
async fn advance(engine: &FrozenEngine, recorder: &Recorder, at: DateTime<Utc>) {
    loop {
        let now = engine.clock.now();
        if now >= at {
            return;
        }
        let step = (at - now).min(chrono::Duration::minutes(1));
        settle(engine, recorder).await;
        tokio::time::advance(step.to_std().unwrap()).await;
        engine.barrier().await;
    }
}

/// `starts_on` for each fixture; with a second name, `escalates_when_due` too (SQLite
/// fixtures: the engine runs in this process, on the frozen clock).
macro_rules! fixtures {
    ($($test:ident $(, $frozen:ident)? => $fixture:literal;)*) => {
        /// Every fixture folder this file tests.
        const TESTED: &[&str] = &[$($fixture),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                starts_on(Fixture::load($fixture)).await;
            }
            $(
                #[tokio::test(start_paused = true)]
                async fn $frozen() {
                    escalates_when_due(Fixture::load($fixture)).await;
                }
            )?
        )*
    };
}

fixtures! {
    sqlite_v1_stopped_upgrades, sqlite_v1_stopped_escalates_when_due => "sqlite-v1/stopped";
    sqlite_v1_killed_upgrades, sqlite_v1_killed_escalates_when_due => "sqlite-v1/killed";
    postgres_v1_upgrades => "postgres-v1/stopped";
    sqlite_v2_stopped_upgrades, sqlite_v2_stopped_escalates_when_due => "sqlite-v2/stopped";
    sqlite_v2_killed_upgrades, sqlite_v2_killed_escalates_when_due => "sqlite-v2/killed";
    postgres_v2_upgrades => "postgres-v2/stopped";
    sqlite_v3_stopped_upgrades, sqlite_v3_stopped_escalates_when_due => "sqlite-v3/stopped";
    sqlite_v3_killed_upgrades, sqlite_v3_killed_escalates_when_due => "sqlite-v3/killed";
    postgres_v3_upgrades => "postgres-v3/stopped";
    sqlite_v4_stopped_upgrades, sqlite_v4_stopped_escalates_when_due => "sqlite-v4/stopped";
    sqlite_v4_killed_upgrades, sqlite_v4_killed_escalates_when_due => "sqlite-v4/killed";
    postgres_v4_upgrades => "postgres-v4/stopped";
    sqlite_v5_stopped_upgrades, sqlite_v5_stopped_escalates_when_due => "sqlite-v5/stopped";
    sqlite_v5_killed_upgrades, sqlite_v5_killed_escalates_when_due => "sqlite-v5/killed";
    sqlite_v5_torn_upgrades, sqlite_v5_torn_escalates_when_due => "sqlite-v5/torn";
    postgres_v5_upgrades => "postgres-v5/stopped";
    sqlite_v6_stopped_upgrades, sqlite_v6_stopped_escalates_when_due => "sqlite-v6/stopped";
    sqlite_v6_killed_upgrades, sqlite_v6_killed_escalates_when_due => "sqlite-v6/killed";
    sqlite_v6_torn_upgrades, sqlite_v6_torn_escalates_when_due => "sqlite-v6/torn";
    postgres_v6_upgrades => "postgres-v6/stopped";
    sqlite_v7_stopped_upgrades, sqlite_v7_stopped_escalates_when_due => "sqlite-v7/stopped";
    sqlite_v7_killed_upgrades, sqlite_v7_killed_escalates_when_due => "sqlite-v7/killed";
    sqlite_v7_torn_upgrades, sqlite_v7_torn_escalates_when_due => "sqlite-v7/torn";
    postgres_v7_upgrades => "postgres-v7/stopped";
    sqlite_v8_stopped_upgrades, sqlite_v8_stopped_escalates_when_due => "sqlite-v8/stopped";
    sqlite_v8_killed_upgrades, sqlite_v8_killed_escalates_when_due => "sqlite-v8/killed";
    sqlite_v8_torn_upgrades, sqlite_v8_torn_escalates_when_due => "sqlite-v8/torn";
    postgres_v8_upgrades => "postgres-v8/stopped";
    sqlite_v9_stopped_upgrades, sqlite_v9_stopped_escalates_when_due => "sqlite-v9/stopped";
    sqlite_v9_killed_upgrades, sqlite_v9_killed_escalates_when_due => "sqlite-v9/killed";
    sqlite_v9_torn_upgrades, sqlite_v9_torn_escalates_when_due => "sqlite-v9/torn";
    postgres_v10_upgrades => "postgres-v10/stopped";
    sqlite_v11_stopped_upgrades, sqlite_v11_stopped_escalates_when_due => "sqlite-v11/stopped";
    sqlite_v11_killed_upgrades, sqlite_v11_killed_escalates_when_due => "sqlite-v11/killed";
    sqlite_v11_torn_upgrades, sqlite_v11_torn_escalates_when_due => "sqlite-v11/torn";
    postgres_v11_today => "postgres-v11/stopped";
    sqlite_v12_stopped_today, sqlite_v12_stopped_escalates_when_due => "sqlite-v12/stopped";
    sqlite_v12_killed_today, sqlite_v12_killed_escalates_when_due => "sqlite-v12/killed";
    sqlite_v12_torn_today, sqlite_v12_torn_escalates_when_due => "sqlite-v12/torn";
}

/// Schema versions no binary ran on: their migration landed in one merge with the next
/// one's (SQLite 0010 with 0011, PostgreSQL 0009 with 0010), so there is no store of theirs.
const NEVER_RAN: &[(&str, i64)] = &[("sqlite", 10), ("postgres", 9)];

/// Every schema version before today's that a binary ran on, and today's, has its fixtures,
/// each tested: a new migration cannot land without a store of the version before it.
#[test]
fn every_schema_version_has_fixtures() {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !(name.starts_with("sqlite-v") || name.starts_with("postgres-v")) {
            continue;
        }
        for variant in std::fs::read_dir(&path).unwrap() {
            let variant = variant.unwrap().file_name().to_string_lossy().to_string();
            found.insert(format!("{name}/{variant}"));
        }
    }
    let tested: BTreeSet<String> = TESTED.iter().map(|s| s.to_string()).collect();
    assert_eq!(found, tested, "fixture folders and the tests of them");
    let mut wanted = BTreeSet::new();
    let ran = |backend: &str, version: i64| !NEVER_RAN.contains(&(backend, version));
    for version in (1..=latest_schema("sqlite")).filter(|v| ran("sqlite", *v)) {
        wanted.insert(format!("sqlite-v{version}/stopped"));
        wanted.insert(format!("sqlite-v{version}/killed"));
        // Killed with records in the redo log (migration 0005) that SQLite lacked.
        if version >= 5 {
            wanted.insert(format!("sqlite-v{version}/torn"));
        }
    }
    for version in (1..=latest_schema("postgres")).filter(|v| ran("postgres", *v)) {
        wanted.insert(format!("postgres-v{version}/stopped"));
    }
    assert_eq!(found, wanted, "a fixture of each schema version");
    for name in &found {
        let fixture = Fixture::load(name);
        let version: i64 = name
            .split('/')
            .next()
            .and_then(|n| n.rsplit('v').next())
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert_eq!(fixture.schema_version(), version, "{name}/expected.json");
    }
}
