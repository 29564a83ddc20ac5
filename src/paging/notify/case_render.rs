//! The email a page about a support case becomes. Support's pages carry the case's
//! routing facts; the update sent to a customer carries the case id and the update's text
//! only: nothing support wrote for itself.

use super::super::{PageEvent, PagePayload};
use crate::incident::case::CasePayload;

/// `[SR A] WHAT: Case #N customer service region`, or for the customer
/// `[Case #N] Update on your service request`.
pub fn subject(event: PageEvent, case: &CasePayload, headline: Option<&str>) -> String {
    if event == PageEvent::CustomerUpdate {
        return format!("[Case #{}] Update on your service request", case.id);
    }
    let what = oneline(&format!(
        "Case #{} {} {} {}",
        case.id, case.customer, case.service, case.region
    ));
    match headline {
        Some(h) => format!("[SR {}] {h}: {what}", case.sr_severity),
        None => format!("[SR {}] {what}", case.sr_severity),
    }
}

fn oneline(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn intro(event: PageEvent, case: &CasePayload) -> String {
    match event {
        PageEvent::ResponseBreached => format!(
            "The case's initial-response deadline ({}) passed without a response.",
            case.respond_by.to_rfc3339()
        ),
        PageEvent::EngagementDue => format!(
            "An update is due on this SR {} case: post one to the case.",
            case.sr_severity
        ),
        PageEvent::EngagementMissed => format!(
            "This SR {} case went two update intervals without an update.",
            case.sr_severity
        ),
        PageEvent::Escalated => format!(
            "Nobody took up this SR {} case's page: it is escalated to you.",
            case.sr_severity
        ),
        _ => "A new support case needs a first response.".to_string(),
    }
}

/// The plain-text and HTML bodies.
pub fn bodies(
    payload: &PagePayload,
    case: &CasePayload,
    delivery_id: &str,
) -> Result<(String, String), String> {
    if payload.event == PageEvent::CustomerUpdate {
        let text = case.text.as_deref().unwrap_or_default();
        let plain = format!(
            "An update on your service request, case #{}:\n\n{text}\n\nPlease quote case #{} \
             in any reply.\n",
            case.id, case.id
        );
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
             <body style=\"font-family: sans-serif\">\n<p>An update on your service request, \
             case #{}:</p>\n<p style=\"white-space: pre-wrap\">{}</p>\n<p>Please quote case #{} \
             in any reply.</p>\n</body></html>\n",
            case.id,
            escape(text),
            case.id
        );
        return Ok((plain, html));
    }
    let intro = intro(payload.event, case);
    let policy = payload
        .escalation
        .policy
        .as_deref()
        .map(|p| format!(" (policy {p})"))
        .unwrap_or_default();
    let rows = [
        ("Customer", case.customer.clone()),
        ("Service", case.service.clone()),
        ("Region", case.region.clone()),
        ("SR severity", case.sr_severity.clone()),
        ("Owner", case.owner.clone()),
        ("Respond by", case.respond_by.to_rfc3339()),
        ("Event", format!("{}{policy}", payload.event)),
    ];
    let mut plain = format!("{intro}\n\nCase #{}\n", case.id);
    for (name, value) in &rows {
        plain.push_str(&format!("{name}: {}\n", oneline(value)));
    }
    plain.push_str(&format!("Case: {}\n", case.url));
    if let Some(ack) = &payload.ack_url {
        plain.push_str(&format!("Acknowledge (stops the escalation): {ack}\n"));
    }
    plain.push_str(&format!(
        "\nSent by tocsin to {}. Delivery {delivery_id}.\n",
        payload.recipient
    ));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\
         <body style=\"font-family: sans-serif\">\n<p><strong>{}</strong></p>\n<h2>Case #{}</h2>\n<table>\n",
        escape(&intro),
        case.id
    );
    for (name, value) in &rows {
        html.push_str(&format!(
            "<tr><th align=\"left\">{name}</th><td>{}</td></tr>\n",
            escape(value)
        ));
    }
    let ack = payload
        .ack_url
        .as_deref()
        .map(|url| {
            format!(
                "<p><a href=\"{0}\">Acknowledge</a> (stops the escalation)</p>\n",
                escape(url)
            )
        })
        .unwrap_or_default();
    html.push_str(&format!(
        "</table>\n<p><a href=\"{0}\">Open the case</a> ({0})</p>\n{ack}<p style=\"color: #666\">Sent \
         by tocsin to {1}. Delivery {2}.</p>\n</body></html>\n",
        escape(&case.url),
        escape(&payload.recipient),
        escape(delivery_id)
    ));
    Ok((plain, html))
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
