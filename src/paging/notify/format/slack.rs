//! `format: slack`: a Slack incoming webhook message. Block Kit blocks say what broke, why
//! it is this severity and who else was paged; an attachment's bar carries the severity
//! colour; the Acknowledge button opens the signed ack link. `text` is the notification's
//! fallback, as Slack asks of a message with blocks.
//!
//! Slack's limits (api.slack.com/reference/block-kit/blocks): a header's text at most 150
//! characters, a section's text at most 3000, at most 10 fields of 2000 each, a button's
//! text at most 75 and its url at most 3000.

use serde_json::{json, Value};

use super::clip;
use crate::paging::notify::render::severity_colour;
use crate::paging::PagePayload;

/// Slack's mrkdwn escapes `&`, `<` and `>`; everything else is text.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `<url|text>`, or the text alone when the url cannot sit in a Slack link.
fn link(url: &str, text: &str) -> String {
    if url.contains(['|', '>', '<', ' ']) {
        escape(text)
    } else {
        format!("<{url}|{}>", escape(text))
    }
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": clip(&text, 3000) } })
}

pub fn body(payload: &PagePayload) -> Value {
    let page = payload.context();
    let blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": clip(&page.subject, 150), "emoji": false }
    })];
    let mut intro = format!("*{}*", escape(&page.headline));
    if let Some(changed) = &page.what_changed {
        intro.push_str(&format!("\n*What changed:* {}", escape(changed)));
    }
    let mut attached = vec![section(intro)];
    let field = |name: &str, value: String| json!({ "type": "mrkdwn", "text": clip(&format!("*{name}*\n{}", escape(&value)), 2000) });
    let or_dash = |names: &[String]| {
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    };
    let status = match &page.acknowledged {
        Some(ack) => format!("{} ({ack})", page.status),
        None => page.status.clone(),
    };
    attached.push(json!({
        "type": "section",
        "fields": [
            field("Severity", format!("Sev {}", page.severity)),
            field("Status", status),
            field("Services", or_dash(&page.services)),
            field("Regions", or_dash(&page.regions)),
            field("Customers", or_dash(&page.customers)),
            field("Opened", page.opened_at.clone()),
        ]
    }));
    attached.push(section(format!("*Why:* {}", escape(&page.severity_reason))));
    if !page.impacts.is_empty() {
        let mut text = format!(
            "*What is broken* ({} impact{}, newest first)",
            page.impacts_total,
            if page.impacts_total == 1 { "" } else { "s" }
        );
        for impact in &page.impacts {
            let place = [impact.service.as_deref(), impact.region.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ");
            text.push_str(&format!(
                "\n• *{}* ({}{}{}), since {}{}",
                escape(&impact.summary),
                impact.kind,
                if place.is_empty() { "" } else { ", " },
                escape(&place),
                escape(&impact.started_at),
                if impact.active { "" } else { ", cleared" }
            ));
            if let Some(description) = &impact.description {
                text.push_str(&format!("\n    {}", escape(description)));
            }
            let links: Vec<String> = [
                impact.runbook_url.as_deref().map(|u| link(u, "Runbook")),
                impact
                    .generator_url
                    .as_deref()
                    .map(|u| link(u, "Alert source")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if !links.is_empty() {
                text.push_str(&format!("\n    {}", links.join(" · ")));
            }
        }
        if page.impacts_total > page.impacts.len() {
            text.push_str(&format!(
                "\n• and {} more on the dashboard",
                page.impacts_total - page.impacts.len()
            ));
        }
        attached.push(section(text));
    }
    if !page.runbooks.is_empty() || !page.links.is_empty() {
        let lines: Vec<String> = page
            .runbooks
            .iter()
            .chain(page.links.iter())
            .map(|l| format!("• {}", link(&l.url, &l.title)))
            .collect();
        attached.push(section(format!("*Links*\n{}", lines.join("\n"))));
    }
    let paged = if page.paged.is_empty() {
        "Nobody else has been paged about it.".to_string()
    } else {
        page.paged
            .iter()
            .map(|p| {
                format!(
                    "• {} by {} at {} ({})",
                    escape(&p.who),
                    p.channel,
                    escape(&p.at),
                    p.event
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    attached.push(section(format!("*Also paged*\n{paged}")));
    let mut buttons = Vec::new();
    if let Some(ack) = super::ack_button(payload) {
        buttons.push(json!({
            "type": "button",
            "text": { "type": "plain_text", "text": "Acknowledge" },
            "style": "danger",
            "url": ack,
            "action_id": "acknowledge",
        }));
    }
    buttons.push(json!({
        "type": "button",
        "text": { "type": "plain_text", "text": "Open the incident" },
        "url": page.dashboard_url,
        "action_id": "open",
    }));
    attached.push(json!({ "type": "actions", "elements": buttons }));
    attached.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": format!(
            "Times are in {}. Sent by tocsin to {}.",
            escape(&page.timezone),
            escape(&payload.recipient)
        ) }]
    }));
    json!({
        "text": clip(&page.subject, 3000),
        "blocks": blocks,
        "attachments": [{
            "color": severity_colour(page.severity),
            "fallback": clip(&page.subject, 3000),
            "blocks": attached,
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::notify::format::sample::payload;
    use crate::paging::PageEvent;

    /// What Slack's Block Kit reference requires of each block and element used.
    pub fn assert_valid_slack(body: &Value) {
        assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
        let mut blocks: Vec<&Value> = body["blocks"].as_array().unwrap().iter().collect();
        for attachment in body["attachments"].as_array().unwrap() {
            let colour = attachment["color"].as_str().unwrap();
            assert!(colour.starts_with('#') && colour.len() == 7, "{colour}");
            blocks.extend(attachment["blocks"].as_array().unwrap());
        }
        assert!(blocks.len() <= 50);
        for block in blocks {
            match block["type"].as_str().unwrap() {
                "header" => {
                    assert_eq!(block["text"]["type"], "plain_text");
                    assert!(block["text"]["text"].as_str().unwrap().chars().count() <= 150);
                }
                "section" => {
                    if let Some(fields) = block["fields"].as_array() {
                        assert!(fields.len() <= 10);
                        for f in fields {
                            assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
                        }
                    } else {
                        assert_eq!(block["text"]["type"], "mrkdwn");
                        let text = block["text"]["text"].as_str().unwrap();
                        assert!(!text.is_empty() && text.chars().count() <= 3000);
                    }
                }
                "actions" => {
                    for button in block["elements"].as_array().unwrap() {
                        assert_eq!(button["type"], "button");
                        assert_eq!(button["text"]["type"], "plain_text");
                        assert!(button["text"]["text"].as_str().unwrap().len() <= 75);
                        assert!(button["url"].as_str().unwrap().len() <= 3000);
                        assert!(button["action_id"].as_str().unwrap().len() <= 255);
                    }
                }
                "context" => assert!(!block["elements"].as_array().unwrap().is_empty()),
                other => panic!("unexpected block type {other}"),
            }
        }
    }

    #[test]
    fn a_slack_message_has_the_context_colour_and_an_ack_button() {
        let body = body(&payload(PageEvent::Triggered));
        assert_valid_slack(&body);
        assert_eq!(body["text"], "[Sev 1] storage down in china-east");
        assert_eq!(
            body["blocks"][0]["text"]["text"],
            "[Sev 1] storage down in china-east"
        );
        assert_eq!(body["attachments"][0]["color"], "#d32f2f");
        let text = body.to_string();
        for needle in [
            "across 2 regions",
            "&lt;&amp;&gt;",
            "<https://runbooks.example/storage|Runbook>",
            "<http://prom:9090/graph?g0.expr=up|Alert source>",
            "bob by email at 2026-01-05 17:00:05 CST (Asia/Shanghai)",
            "Contoso Ltd, fabrikam",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let actions = body["attachments"][0]["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .unwrap();
        assert_eq!(actions["elements"][0]["text"]["text"], "Acknowledge");
        assert_eq!(
            actions["elements"][0]["url"],
            "https://tocsin.example/ack/abc.def"
        );
    }

    #[test]
    fn a_long_title_is_clipped_to_what_slack_takes() {
        let mut p = payload(PageEvent::Resolved);
        p.ack_url = None;
        p.context.as_mut().unwrap().subject = "x".repeat(400);
        let body = body(&p);
        assert_valid_slack(&body);
        assert!(!body.to_string().contains("Acknowledge"));
    }
}
