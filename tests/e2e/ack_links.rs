//! Ack links in pages, against the real engine on 127.0.0.1 with SQLite in a temporary
//! folder: GET shows a confirm page and never acknowledges, POST acknowledges as the link's
//! recipient once, and forged, expired or moved links are 403 and change nothing.

use crate::support::api::*;
use crate::support::TestEngine;
use serde_json::{json, Value};
use tocsin::paging::AckSigner;

fn signer() -> AckSigner {
    // The key file's content without its trailing newline, as the engine reads it.
    AckSigner::new(ACK_KEY.as_bytes())
}

async fn get_html(engine: &TestEngine, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = plain_http()
        .get(format!("{}{path}", engine.url))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}

async fn post_html(engine: &TestEngine, path: &str) -> (u16, String) {
    let response = plain_http()
        .post(format!("{}{path}", engine.url))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Timeline entries other than page deliveries (those arrive on their own schedule).
async fn timeline_len(engine: &TestEngine, id: i64) -> usize {
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["kind"].as_str().unwrap_or("").starts_with("deliver"))
        .count()
}

#[tokio::test]
async fn ack_link_get_shows_a_confirm_page_and_never_acknowledges() {
    let (_dir, engine) = engine(false).await;
    let id = open_sev1(&engine).await;
    // The link exactly as the page carries it.
    let pages = engine.running.state.store.pages_of(id).await.unwrap();
    let page = &pages.first().expect("the incident was paged").page;
    let recipient = page.recipient.id.clone();
    let ack_url = page
        .payload
        .ack_url
        .clone()
        .expect("pages carry an ack link");
    let token = ack_url.split("/ack/").nth(1).unwrap().to_string();
    let before = timeline_len(&engine, id).await;

    let (status, headers, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(
        headers["referrer-policy"], "same-origin",
        "the token must not leak to other sites"
    );
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("form-action 'self'"));
    assert!(
        html.contains("StorageDown") || html.contains(&format!("#{id}")),
        "{html}"
    );
    assert!(html.contains("Sev 1"), "{html}");
    assert!(html.contains(&recipient), "the recipient is named: {html}");
    // The confirm button posts back to the same link (minijinja writes `/` as `&#x2f;`).
    assert!(
        html.contains("<form method=\"post\"") && html.contains(&token),
        "{html}"
    );
    // Mail scanners fetch (and HEAD) links more than once.
    for _ in 0..3 {
        let (status, _, _) = get_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 200);
        let head = plain_http()
            .head(format!("{}/ack/{token}", engine.url))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status().as_u16(), 200);
    }
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(
        incident["status"], "triggered",
        "a GET must never acknowledge"
    );
    assert_eq!(incident["acknowledged_by"], Value::Null);
    assert_eq!(timeline_len(&engine, id).await, before);

    // The form's POST does, as the link's recipient.
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Acknowledged"), "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], recipient.as_str());
    engine.stop().await;
}

#[tokio::test]
async fn ack_link_post_acknowledges_as_its_recipient_once() {
    let (_dir, engine) = engine(false).await;
    let id = send(&engine, vec![storage_east()]).await[0];
    let token = signer().sign(id, "bob", chrono::Utc::now() + chrono::Duration::hours(1));
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 200, "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["status"], "acknowledged");
    assert_eq!(incident["acknowledged_by"], "bob");
    let (_, detail) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert!(detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "acknowledged" && t["actor"] == "bob"));

    // Used again, or opened after: the page says it is done already (409).
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("already acknowledged by bob"), "{html}");
    let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");

    // And for a resolved incident too.
    engine
        .post(
            &format!("/api/v1/incidents/{id}/resolve"),
            &json!({ "by": "carol" }),
        )
        .await;
    let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains("already resolved by carol"), "{html}");
    let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
    assert_eq!(status, 409, "{html}");
    let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(incident["acknowledged_by"], "bob");
    assert_eq!(incident["status"], "resolved");
    engine.stop().await;
}

#[tokio::test]
async fn forged_expired_and_moved_ack_links_are_403_and_change_nothing() {
    let (_dir, engine) = engine(false).await;
    let first = send(&engine, vec![storage_east()]).await[0];
    let second = send(&engine, vec![minor("sqldb", "ReplicaLag")]).await[0];
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    let good = signer().sign(first, "alice", soon);
    let other = signer().sign(second, "alice", soon);
    let mallory = signer().sign(first, "mallory", soon);
    let (good_body, good_sig) = good.split_once('.').unwrap();
    let (other_body, _) = other.split_once('.').unwrap();
    let (mallory_body, _) = mallory.split_once('.').unwrap();
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let forged: Vec<(&str, String)> = vec![
        ("signature changed", flipped),
        (
            "other key",
            AckSigner::new(b"not the key").sign(first, "alice", soon),
        ),
        (
            "moved to another incident",
            format!("{other_body}.{good_sig}"),
        ),
        (
            "moved to another recipient",
            format!("{mallory_body}.{good_sig}"),
        ),
        (
            "expired",
            signer().sign(
                first,
                "alice",
                chrono::Utc::now() - chrono::Duration::minutes(1),
            ),
        ),
        ("no signature", good_body.to_string()),
        ("garbage", "garbage".to_string()),
        ("empty signature", format!("{good_body}.")),
        ("not base64", "!!!.???".to_string()),
    ];
    let before = (
        timeline_len(&engine, first).await,
        timeline_len(&engine, second).await,
    );
    for (what, token) in &forged {
        let (status, _, html) = get_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 403, "GET {what}: {html}");
        let (status, html) = post_html(&engine, &format!("/ack/{token}")).await;
        assert_eq!(status, 403, "POST {what}: {html}");
        assert!(
            html.contains("not valid") || html.contains("expired"),
            "{what}: {html}"
        );
    }
    for id in [first, second] {
        let (_, incident) = engine.get(&format!("/api/v1/incidents/{id}")).await;
        assert_eq!(incident["status"], "triggered", "incident {id}");
        assert_eq!(incident["acknowledged_by"], Value::Null);
    }
    assert_eq!(
        (
            timeline_len(&engine, first).await,
            timeline_len(&engine, second).await
        ),
        before
    );
    // The genuine link still works.
    let (status, _) = post_html(&engine, &format!("/ack/{good}")).await;
    assert_eq!(status, 200);
    engine.stop().await;
}
