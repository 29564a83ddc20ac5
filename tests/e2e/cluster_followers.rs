//! Work through a follower: pushes and a resolve reach the leader, an input put in the
//! inbox is applied even when it commits late, and an ack link the leader signed
//! acknowledges through a follower.

use std::time::Duration;

use crate::support::{eventually, list_incidents, PgDatabase};
use serde_json::{json, Value};

use super::{http, push, role, Pair, Receiver};

/// Pushes and a resolve through a follower reach the leader: an alert
/// resolved while it still fires opens a new incident at its next push, and it is paged, as
/// on one engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_through_a_follower_does_not_hide_an_alert_that_still_fires() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let engines = Pair::start(&db.url, &receiver.url).await;
    let ports = engines.ports;
    let http = http();
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));

    push(&http, &url(1), "storage", "china-east").await;
    let first = list_incidents(&http, &url(1)).await[0]["id"]
        .as_i64()
        .unwrap();
    let response = http
        .post(format!("{}/api/v1/incidents/{first}/resolve", url(1)))
        .json(&json!({ "by": "carol" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let detail: Value = http
        .get(format!("{}/api/v1/incidents/{first}", url(1)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["status"], "resolved", "{detail:#}");
    assert_eq!(
        detail["impacts"][0]["cleared_at"],
        Value::Null,
        "{detail:#}"
    );
    let entry = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "resolved")
        .unwrap()
        .clone();
    assert_eq!(
        entry["data"]["still_firing"],
        json!([detail["impacts"][0]["id"]])
    );

    push(&http, &url(1), "storage", "china-east").await;
    let all = list_incidents(&http, &url(1)).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    assert_eq!(all[1]["status"], "triggered");
    let second = all[1]["id"].as_i64().unwrap();
    let paged = eventually(Duration::from_secs(10), || async {
        let pages = receiver.deduped(second);
        (!pages.is_empty()).then_some(pages)
    })
    .await
    .expect("the new incident is paged");
    assert_eq!(paged[0].event, "triggered", "{paged:?}");
    drop(engines);
    db.drop_db().await;
}

/// Each engine has its own folder and no `ack_secret_file`: the ack-link key is the store's,
/// so a link in the leader's page acknowledges through a follower.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_link_signed_by_the_leader_acknowledges_through_a_follower() {
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let engines = Pair::start(&db.url, &receiver.url).await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    assert_eq!(role(&http, &url(0)).await.as_deref(), Some("leader"));
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));

    push(&http, &url(0), "storage", "china-east").await;
    let page = eventually(Duration::from_secs(10), || async {
        receiver.got().into_iter().find(|g| g.event == "triggered")
    })
    .await
    .expect("the leader pages");
    let link = page.ack_url.expect("the page carries an ack link");
    let path = &link[link.find("/ack/").expect("an /ack/ link")..];
    let response = http.post(format!("{}{path}", url(1))).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert_eq!(
        status, 200,
        "the follower accepts the leader's link: {text}"
    );
    let incident = list_incidents(&http, &url(0)).await;
    assert_eq!(incident[0]["status"], "acknowledged", "{incident:?}");
    assert_eq!(incident[0]["acknowledged_by"], "oncall", "{incident:?}");
    drop(engines);
    db.drop_db().await;
}

/// An input whose insert took its id before another's and committed after it is applied
/// all the same: the leader's reader looks again for ids it skipped over. (The leader says
/// nowhere that it serves, so the follower's inputs go through the inbox.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_committed_after_a_later_one_is_applied_all_the_same() {
    use sqlx::Connection;
    let db = PgDatabase::create().await;
    let receiver = Receiver::start().await;
    let engines = Pair::start_with(&db.url, &receiver.url, "advertise_url: none").await;
    let ports = engines.ports;
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    let http = http();
    assert_eq!(role(&http, &url(1)).await.as_deref(), Some("follower"));

    // An input as a follower writes it: the push of storage's alert, taken from the inbox.
    push(&http, &url(1), "storage", "china-east").await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let storage: String = sqlx::query_scalar("SELECT input FROM inbox ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let sqldb = storage.replace("storage", "sqldb");
    assert_ne!(sqldb, storage);
    // sqldb's input takes its id, and commits only after a later input was applied.
    let mut slow = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    let slow_id: i64 =
        sqlx::query_scalar("INSERT INTO inbox (input, created_at) VALUES ($1, 0) RETURNING id")
            .bind(&sqldb)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    push(&http, &url(1), "storage", "china-north").await;
    tx.commit().await.unwrap();

    let applied = eventually(Duration::from_secs(10), || async {
        let done: Option<i64> = sqlx::query_scalar("SELECT processed_at FROM inbox WHERE id = $1")
            .bind(slow_id)
            .fetch_one(&pool)
            .await
            .unwrap();
        done.map(|_| ())
    })
    .await;
    assert!(applied.is_some(), "input {slow_id} was never applied");
    let incidents = list_incidents(&http, &url(0)).await;
    assert!(
        incidents
            .iter()
            .any(|i| i["services"].as_array().unwrap().contains(&json!("sqldb"))),
        "{incidents:#?}"
    );
    pool.close().await;
    drop(engines);
    db.drop_db().await;
}
