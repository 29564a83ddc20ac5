//! A follower hands the inputs it takes to the leader over HTTP, where the leader says it
//! serves (`server.advertise_url`); the store's inbox takes them when the leader cannot be
//! reached, and the leader takes them only from an engine that holds the store's key.

use std::time::Duration;

use crate::support::api::metrics_text;
use crate::support::{eventually, list_incidents, metric, PgDatabase};
use serde_json::{json, Value};

use super::{http, push, role, Pair, Receiver};

/// `tocsin_follower_inputs_total{via}` of the engine at `url`.
async fn follower_inputs(http: &reqwest::Client, url: &str, via: &str) -> f64 {
    let text = metrics_text(http, url).await;
    metric(
        &text,
        &format!("tocsin_follower_inputs_total{{via=\"{via}\"}}"),
    )
    .unwrap_or_else(|| panic!("no tocsin_follower_inputs_total{{via=\"{via}\"}} in\n{text}"))
}

async fn inbox_rows(db: &PgDatabase) -> i64 {
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

/// The leader listens on 127.0.0.1, so it says it serves there; once the follower has heard
/// so, a push to the follower is handed over directly: the leader opens and pages the
/// incident, and the store's inbox gets no row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_to_a_follower_is_handed_to_the_leader_over_http() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let engines = Pair::start(&db.url, &receiver.url).await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));

    // The leader says where it serves every second: the follower hears it within a few.
    let heard = eventually(Duration::from_secs(10), || async {
        push(&http, &url(1), "storage", "china-east").await;
        (follower_inputs(&http, &url(1), "http").await >= 1.0).then_some(())
    })
    .await;
    assert!(heard.is_some(), "no push was handed over directly");

    let (http_before, inbox_before) = (
        follower_inputs(&http, &url(1), "http").await,
        follower_inputs(&http, &url(1), "inbox").await,
    );
    let rows_before = inbox_rows(&db).await;
    push(&http, &url(1), "compute", "china-west").await;
    assert_eq!(
        follower_inputs(&http, &url(1), "http").await,
        http_before + 1.0
    );
    assert_eq!(
        follower_inputs(&http, &url(1), "inbox").await,
        inbox_before,
        "nothing through the inbox"
    );
    assert_eq!(inbox_rows(&db).await, rows_before, "no inbox row");
    let incidents = list_incidents(&http, &url(1)).await;
    let compute = incidents
        .iter()
        .find(|i| {
            i["services"]
                .as_array()
                .unwrap()
                .contains(&json!("compute"))
        })
        .unwrap_or_else(|| panic!("the leader opened compute's incident: {incidents:#?}"));
    let id = compute["id"].as_i64().unwrap();
    let paged = eventually(Duration::from_secs(10), || async {
        let pages = receiver.deduped(id);
        (!pages.is_empty()).then_some(pages)
    })
    .await
    .expect("the leader pages compute's incident");
    assert_eq!(paged[0].event, "triggered", "{paged:?}");
    // The leader's own counter stays at zero: it took those inputs as its own.
    assert_eq!(follower_inputs(&http, &url(0), "http").await, 0.0);
    drop(engines);
    db.drop_db().await;
}

/// A leader that says it serves where nothing listens: the follower cannot reach it, puts
/// its inputs in the inbox, and they are applied as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_cannot_reach_the_leader_uses_the_inbox() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    // Port 1 refuses connections on loopback.
    let engines = Pair::start_with(
        &db.url,
        &receiver.url,
        "advertise_url: \"http://127.0.0.1:1\"",
    )
    .await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));
    // Time for the follower to hear where the leader says it serves.
    tokio::time::sleep(Duration::from_secs(3)).await;

    push(&http, &url(1), "storage", "china-east").await;
    push(&http, &url(1), "compute", "china-west").await;
    assert_eq!(follower_inputs(&http, &url(1), "inbox").await, 2.0);
    assert_eq!(follower_inputs(&http, &url(1), "http").await, 0.0);
    assert!(
        inbox_rows(&db).await >= 2,
        "the inputs went through the inbox"
    );
    let incidents = list_incidents(&http, &url(0)).await;
    assert_eq!(incidents.len(), 2, "{incidents:#?}");
    drop(engines);
    db.drop_db().await;
}

/// `/-/cluster/input` takes an input only with the store's key, and only on the leader; a
/// caller without it is refused in the API's words and nothing is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_takes_handed_over_inputs_only_with_the_stores_key() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let engines = Pair::start(&db.url, &receiver.url).await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let key: String =
        sqlx::query_scalar("SELECT value FROM stored_secrets WHERE name = 'forward_key'")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    let unreadable = json!({ "kind": "nothing_we_know" });
    let heartbeat = json!({ "input": "heartbeat", "with": "nightly-backup" });
    let post = |i: usize, key: Option<String>, input: &Value| {
        let mut request = http.post(format!("{}/-/cluster/input", url(i))).json(input);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    for presented in [None, Some("not-the-key".to_string())] {
        let (status, body) = post(0, presented, &heartbeat).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(
            body["error"], "not an engine of this store: missing or wrong key",
            "{body}"
        );
    }
    // With the key, an input this engine cannot read is refused before it is taken.
    let (status, body) = post(0, Some(key.clone()), &unreadable).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("this engine cannot read the input"),
        "{body}"
    );
    // A follower with the key takes nothing: it does not lead.
    let (status, body) = post(1, Some(key.clone()), &heartbeat).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "this engine does not lead", "{body}");
    // The leader applies it and answers with the core's reply.
    let (status, body) = post(0, Some(key), &heartbeat).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("reply").is_some(), "{body}");
    assert!(list_incidents(&http, &url(0)).await.is_empty());
    drop(engines);
    db.drop_db().await;
}

/// An engine that starts listening asks where the leader serves, and the leader says so at
/// once. Here the leader says it unasked only once an hour, and the second store starts
/// listening after the first time: it hears of the leader only because it asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_that_starts_listening_hears_at_once_where_the_leader_serves() {
    let db = PgDatabase::create().await;
    let leader_store = tocsin::store::Store::open(&db.url).await.unwrap();
    let mut heard_by_leader = leader_store.leader_urls().expect("a shared store");
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let serves = tocsin::store::LeaderUrl {
        term: 7,
        url: "http://127.0.0.1:9470".into(),
    };
    tokio::spawn(tocsin::engine::forward::announce(
        leader_store.clone(),
        serves.term,
        serves.url.clone(),
        Duration::from_secs(3600),
        stop,
    ));
    // The first announcement is over: the leader's own listener has heard it.
    tokio::time::timeout(
        Duration::from_secs(10),
        heard_by_leader.wait_for(Option::is_some),
    )
    .await
    .expect("the leader's first announcement")
    .unwrap();

    let other = tocsin::store::Store::open(&db.url).await.unwrap();
    let mut heard = other.leader_urls().expect("a shared store");
    let leader = tokio::time::timeout(Duration::from_secs(10), heard.wait_for(Option::is_some))
        .await
        .expect("the new engine hears where the leader serves without waiting an hour")
        .unwrap()
        .clone();
    assert_eq!(leader, Some(serves));
    stop_tx.send(true).unwrap();
    drop((leader_store, other));
    db.drop_db().await;
}
