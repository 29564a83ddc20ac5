//! Pages about support cases against real webhook receivers: each carries a signed ack
//! link, and a page nobody takes up escalates to the case policy's next level on its timer.

use serde_json::{json, Value};

use crate::cases::{case_body, case_kinds, case_pages, page, START};
use crate::support::paging::{utc, Answer, FrozenEngine, Receiver};
use crate::support::CATALOG;

/// Support's policy over webhooks to real receivers: erin at once, dave 30 minutes later.
fn webhook_config(erin: &str, dave: &str) -> String {
    format!(
        r#"{CATALOG}
server: {{ external_url: "http://tocsin.test" }}
responders:
  - {{ id: erin, webhook: erin_hook }}
  - {{ id: dave, webhook: dave_hook }}
escalation_policies:
  - name: support
    levels:
      - {{ after: 0s, notify: [ "responder:erin" ] }}
      - {{ after: 30m, notify: [ "responder:dave" ] }}
case_routes:
  - {{ match: [ 'sr_severity=~"A|B|C"' ], policy: support }}
notifiers:
  webhooks:
    - {{ name: erin_hook, url: "{erin}" }}
    - {{ name: dave_hook, url: "{dave}" }}
  retry: {{ initial_backoff: 1h, max_backoff: 1h, max_age: 7d }}
"#
    )
}

/// (event, case id, ack link) of each page a receiver got.
fn received(receiver: &Receiver) -> Vec<(String, i64, Option<String>)> {
    receiver
        .received()
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            (
                body["event"].as_str().unwrap().to_string(),
                body["case"]["id"].as_i64().unwrap(),
                body["ack_url"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A case page carries a signed ack link; an unanswered page escalates to the policy's next
/// level on its timer, and an acknowledged or answered one does not.
#[tokio::test(start_paused = true)]
async fn a_case_page_escalates_on_its_timer_until_its_ack_link_is_used() {
    let erin = Receiver::start(vec![], Answer::Status(200)).await;
    let dave = Receiver::start(vec![], Answer::Status(200)).await;
    let e = FrozenEngine::start(&webhook_config(&erin.url, &dave.url), utc(START)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, case) = e.engine.post("/api/v1/cases", &case_body("A")).await;
        assert_eq!(status, 201, "{case}");
        ids.push(case["id"].as_i64().unwrap());
    }
    let (ignored, acked, answered) = (ids[0], ids[1], ids[2]);
    e.settle().await;
    let pages = received(&erin);
    assert_eq!(pages.len(), 3, "{pages:?}");
    for (event, _, link) in &pages {
        assert_eq!(event, "triggered");
        assert!(
            link.as_deref()
                .is_some_and(|l| l.starts_with("http://tocsin.test/ack/")),
            "{link:?}"
        );
    }
    let link = |case: i64| {
        pages
            .iter()
            .find(|p| p.1 == case)
            .unwrap()
            .2
            .clone()
            .unwrap()
            .trim_start_matches("http://tocsin.test")
            .to_string()
    };

    e.advance_minutes(5).await;
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{answered}/respond"),
            &json!({ "by": "erin", "text": "looking" }),
        )
        .await;
    assert_eq!(status, 200);
    // The link's GET only asks; its POST acknowledges as erin.
    let http = &e.engine.http;
    let path = link(acked);
    let confirm = http
        .get(format!("{}{path}", e.engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status().as_u16(), 200);
    let html = confirm.text().await.unwrap();
    assert!(
        html.contains(&format!("Acknowledge support case #{acked}?")),
        "{html}"
    );
    assert!(!case_kinds(&e.engine, acked)
        .await
        .contains(&"acknowledged".to_string()));
    let done = http
        .post(format!("{}{path}", e.engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 200);
    assert!(done
        .text()
        .await
        .unwrap()
        .contains("Escalation has stopped"));
    let (_, case) = e.engine.get(&format!("/api/v1/cases/{acked}")).await;
    assert_eq!(case["acknowledged_by"], "erin");
    assert!(case_kinds(&e.engine, acked)
        .await
        .contains(&"acknowledged".to_string()));
    // A link changed by one character acknowledges nothing.
    let mut forged = link(ignored);
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let refused = http
        .post(format!("{}{forged}", e.engine.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 403);

    e.advance_minutes(24).await; // 29
    e.settle().await;
    assert_eq!(received(&dave), vec![]);
    e.advance_minutes(1).await; // 30
    e.settle().await;
    let escalated = received(&dave);
    assert_eq!(
        escalated.len(),
        1,
        "only the page nobody took up: {escalated:?}"
    );
    assert_eq!(
        (escalated[0].0.as_str(), escalated[0].1),
        ("escalated", ignored)
    );
    assert!(
        escalated[0].2.is_some(),
        "an escalated page has its ack link too"
    );
    assert_eq!(
        case_pages(&e, ignored).await,
        [page("triggered", "erin", 0), page("escalated", "dave", 30)]
    );
    // The policy has no third level: nothing more.
    e.advance_minutes(60).await;
    e.settle().await;
    assert_eq!(received(&dave).len(), 1);

    // A resolved case's link has nothing left to acknowledge.
    e.engine
        .post(
            &format!("/api/v1/cases/{ignored}/resolve"),
            &json!({ "by": "sam" }),
        )
        .await;
    let late = http
        .post(format!("{}{}", e.engine.url, link(ignored)))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status().as_u16(), 409);
    e.stop().await;
}

/// A case page's escalation timer is kept in the store: after a restart the unanswered page
/// still escalates at its time, once, and an acknowledgement after the restart still stops it.
#[tokio::test(start_paused = true)]
async fn a_case_page_escalates_on_time_after_a_restart() {
    let erin = Receiver::start(vec![], Answer::Status(200)).await;
    let dave = Receiver::start(vec![], Answer::Status(200)).await;
    let e = FrozenEngine::start(&webhook_config(&erin.url, &dave.url), utc(START)).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (status, case) = e.engine.post("/api/v1/cases", &case_body("A")).await;
        assert_eq!(status, 201, "{case}");
        ids.push(case["id"].as_i64().unwrap());
    }
    let (ignored, acked) = (ids[0], ids[1]);
    e.settle().await;
    assert_eq!(received(&erin).len(), 2);

    e.advance_minutes(10).await;
    let e = e.restart().await;
    let (status, _) = e
        .engine
        .post(
            &format!("/api/v1/cases/{acked}/ack"),
            &json!({ "by": "erin" }),
        )
        .await;
    assert_eq!(status, 200);
    e.advance_minutes(19).await; // 29
    e.settle().await;
    assert_eq!(received(&dave), vec![], "not before its level's 30 minutes");
    e.advance_minutes(1).await; // 30
    e.settle().await;
    let escalated = received(&dave);
    assert_eq!(escalated.len(), 1, "{escalated:?}");
    assert_eq!(
        (escalated[0].0.as_str(), escalated[0].1),
        ("escalated", ignored)
    );
    assert_eq!(
        case_pages(&e, ignored).await,
        [page("triggered", "erin", 0), page("escalated", "dave", 30)]
    );
    e.advance_minutes(60).await;
    e.settle().await;
    assert_eq!(received(&dave).len(), 1, "escalated once");
    e.stop().await;
}
