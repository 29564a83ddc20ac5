//! `format: ntfy`: a JSON publish to the ntfy server's root (docs.ntfy.sh, "Publish as
//! JSON"): `topic` (required), `title`, `message`, `priority` by severity, `tags`, `click`
//! and a `view` action, both opening the signed ack link.

use serde_json::{json, Value};

use super::clip;
use crate::paging::{PageEvent, PagePayload};

/// ntfy's priority (1 min … 5 max) for a page: urgent for Sev 0-1, a notice quieter.
pub fn priority(severity: u8, event: PageEvent) -> u8 {
    match event {
        PageEvent::Acknowledged | PageEvent::Resolved => 3,
        _ => match severity {
            0 | 1 => 5,
            2 => 4,
            3 => 3,
            _ => 2,
        },
    }
}

pub fn body(payload: &PagePayload, topic: &str) -> Value {
    let page = payload.context();
    let mut message = page.headline.clone();
    if let Some(changed) = &page.what_changed {
        message.push_str(&format!("\nWhat changed: {changed}"));
    }
    message.push_str(&format!("\nWhy: {}", page.severity_reason));
    for impact in &page.impacts {
        message.push_str(&format!(
            "\n- {} ({}), since {}",
            impact.summary, impact.kind, impact.started_at
        ));
    }
    if let Some(link) = page.runbooks.first() {
        message.push_str(&format!("\nRunbook: {}", link.url));
    }
    if !page.paged.is_empty() {
        let names: Vec<String> = page
            .paged
            .iter()
            .map(|p| format!("{} at {}", p.who, p.at))
            .collect();
        message.push_str(&format!("\nAlso paged: {}", names.join(", ")));
    }
    let click = super::ack_button(payload)
        .map(str::to_string)
        .unwrap_or_else(|| page.dashboard_url.clone());
    let mut actions = Vec::new();
    if let Some(ack) = super::ack_button(payload) {
        actions
            .push(json!({ "action": "view", "label": "Acknowledge", "url": ack, "clear": true }));
    }
    actions.push(json!({ "action": "view", "label": "Open incident", "url": page.dashboard_url }));
    json!({
        "topic": topic,
        "title": clip(&page.subject, 250),
        // ntfy keeps a message of up to 4096 bytes as text.
        "message": clip(&message, 3000),
        "priority": priority(page.severity, payload.event),
        "tags": [match payload.event {
            PageEvent::Resolved => "white_check_mark",
            PageEvent::Acknowledged => "eyes",
            _ => "rotating_light",
        }, format!("sev{}", page.severity).as_str()],
        "click": click,
        "actions": actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::notify::format::sample::payload;

    /// What ntfy's JSON publishing requires.
    pub fn assert_valid_publish(body: &Value) {
        assert!(body["topic"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(body["message"].as_str().unwrap().len() <= 4096);
        let p = body["priority"].as_u64().unwrap();
        assert!((1..=5).contains(&p));
        for action in body["actions"].as_array().unwrap() {
            assert_eq!(action["action"], "view");
            assert!(action["label"].is_string());
            assert!(action["url"].as_str().unwrap().starts_with("http"));
        }
        assert!(body["actions"].as_array().unwrap().len() <= 3);
    }

    #[test]
    fn an_ntfy_publish_names_its_topic_priority_and_ack_link() {
        let body = body(&payload(PageEvent::Triggered), "oncall-storage");
        assert_valid_publish(&body);
        assert_eq!(body["topic"], "oncall-storage");
        assert_eq!(body["title"], "[Sev 1] storage down in china-east");
        assert_eq!(body["priority"], 5);
        assert_eq!(body["click"], "https://tocsin.example/ack/abc.def");
        assert_eq!(
            body["actions"][0]["url"],
            "https://tocsin.example/ack/abc.def"
        );
        assert!(body["message"]
            .as_str()
            .unwrap()
            .contains("Runbook: https://runbooks.example/storage"));
        assert_eq!(priority(4, PageEvent::Triggered), 2);
        assert_eq!(priority(1, PageEvent::Resolved), 3);
    }
}
