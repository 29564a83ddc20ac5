//! `format: teams`: a Microsoft Teams message through a Workflows webhook ("Post to a
//! channel when a webhook request is received"): one attachment of content type
//! `application/vnd.microsoft.card.adaptive` whose `content` is an Adaptive Card (version
//! 1.4, which Teams renders), with an Acknowledge action that opens the signed ack link.

use serde_json::{json, Value};

use crate::paging::PagePayload;

/// The Adaptive Card text colour of a severity.
fn colour(severity: u8) -> &'static str {
    match severity {
        0..=2 => "attention",
        3 => "warning",
        _ => "accent",
    }
}

fn text(text: impl Into<String>) -> Value {
    json!({ "type": "TextBlock", "text": text.into(), "wrap": true })
}

pub fn body(payload: &PagePayload) -> Value {
    let page = payload.context();
    let or_dash = |names: &[String]| {
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut body = vec![
        json!({
            "type": "TextBlock", "text": page.subject, "wrap": true,
            "size": "Large", "weight": "Bolder", "color": colour(page.severity),
        }),
        json!({ "type": "TextBlock", "text": page.headline, "wrap": true, "weight": "Bolder" }),
    ];
    if let Some(changed) = &page.what_changed {
        body.push(text(format!("What changed: {changed}")));
    }
    let status = match &page.acknowledged {
        Some(ack) => format!("{} ({ack})", page.status),
        None => page.status.clone(),
    };
    body.push(json!({
        "type": "FactSet",
        "facts": [
            { "title": "Severity", "value": format!("Sev {}", page.severity) },
            { "title": "Why", "value": page.severity_reason },
            { "title": "Status", "value": status },
            { "title": "Services", "value": or_dash(&page.services) },
            { "title": "Regions", "value": or_dash(&page.regions) },
            { "title": "Customers", "value": or_dash(&page.customers) },
            { "title": "Opened", "value": page.opened_at },
        ]
    }));
    if !page.impacts.is_empty() {
        body.push(json!({
            "type": "TextBlock", "text": format!("What is broken ({}, newest first)", page.impacts_total),
            "weight": "Bolder", "wrap": true, "spacing": "Medium",
        }));
        for impact in &page.impacts {
            let mut line = format!(
                "- **{}** ({}), since {}",
                impact.summary, impact.kind, impact.started_at
            );
            if let Some(d) = &impact.description {
                line.push_str(&format!("\n\n  {d}"));
            }
            if let Some(url) = &impact.runbook_url {
                line.push_str(&format!("\n\n  [Runbook]({url})"));
            }
            if let Some(url) = &impact.generator_url {
                line.push_str(&format!(" [Alert source]({url})"));
            }
            body.push(text(line));
        }
    }
    let paged = if page.paged.is_empty() {
        "Nobody else has been paged about it.".to_string()
    } else {
        page.paged
            .iter()
            .map(|p| format!("- {} by {} at {} ({})", p.who, p.channel, p.at, p.event))
            .collect::<Vec<_>>()
            .join("\n")
    };
    body.push(text(format!("Also paged:\n{paged}")));
    body.push(json!({
        "type": "TextBlock", "text": format!("Times are in {}.", page.timezone),
        "isSubtle": true, "size": "Small", "wrap": true,
    }));
    let mut actions = Vec::new();
    if let Some(ack) = super::ack_button(payload) {
        actions.push(json!({ "type": "Action.OpenUrl", "title": "Acknowledge", "url": ack, "style": "destructive" }));
    }
    actions.push(json!({ "type": "Action.OpenUrl", "title": "Open the incident", "url": page.dashboard_url }));
    if let Some(link) = page.runbooks.first() {
        actions.push(json!({ "type": "Action.OpenUrl", "title": "Runbook", "url": link.url }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": { "width": "Full" },
                "body": body,
                "actions": actions,
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::notify::format::sample::payload;
    use crate::paging::PageEvent;

    /// What a Workflows webhook and the Adaptive Card schema require.
    pub fn assert_valid_card(body: &Value) {
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert!(card["version"].as_str().is_some());
        for element in card["body"].as_array().unwrap() {
            match element["type"].as_str().unwrap() {
                "TextBlock" => assert!(element["text"].as_str().is_some()),
                "FactSet" => {
                    for fact in element["facts"].as_array().unwrap() {
                        assert!(fact["title"].is_string() && fact["value"].is_string());
                    }
                }
                other => panic!("unexpected element {other}"),
            }
        }
        for action in card["actions"].as_array().unwrap() {
            assert_eq!(action["type"], "Action.OpenUrl");
            assert!(action["title"].is_string());
            assert!(action["url"].as_str().unwrap().starts_with("http"));
        }
    }

    #[test]
    fn a_teams_card_has_the_context_and_an_ack_action() {
        let body = body(&payload(PageEvent::Triggered));
        assert_valid_card(&body);
        let card = &body["attachments"][0]["content"];
        assert_eq!(
            card["body"][0]["text"],
            "[Sev 1] storage down in china-east"
        );
        assert_eq!(card["body"][0]["color"], "attention");
        assert_eq!(card["actions"][0]["title"], "Acknowledge");
        assert_eq!(
            card["actions"][0]["url"],
            "https://tocsin.example/ack/abc.def"
        );
        let text = body.to_string();
        assert!(
            text.contains("[Runbook](https://runbooks.example/storage)"),
            "{text}"
        );
        assert!(
            text.contains("bob by email at 2026-01-05 17:00:05 CST"),
            "{text}"
        );
    }
}
