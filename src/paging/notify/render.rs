//! The email a page becomes: subject, plain text and HTML, written from the same payload a
//! webhook receives.

use std::sync::OnceLock;

use minijinja::{context, AutoEscape, Environment};

use crate::paging::{PageEvent, PagePayload};

/// What a reader sees of the event, in the subject and the first line.
fn headline(event: PageEvent) -> Option<&'static str> {
    match event {
        // A page that asks for a response: the subject is just `[Sev N] title`.
        PageEvent::Triggered | PageEvent::Escalated => None,
        PageEvent::SeverityRaised => Some("SEVERITY RAISED"),
        PageEvent::Acknowledged => Some("ACKNOWLEDGED"),
        PageEvent::Resolved => Some("RESOLVED"),
        PageEvent::ResponseBreached => Some("RESPONSE OVERDUE"),
        PageEvent::EngagementDue => Some("UPDATE DUE"),
        PageEvent::EngagementMissed => Some("UPDATE MISSED"),
        PageEvent::CustomerUpdate => Some("UPDATE"),
    }
}

/// `[Sev N] title`, with the event after the severity when it is not a plain page.
pub fn subject(payload: &PagePayload) -> String {
    if let Some(case) = &payload.case {
        return super::case_render::subject(payload.event, case, headline(payload.event));
    }
    // A header cannot hold line breaks; a title with some still reads as one line.
    let title: String = payload
        .incident
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let severity = payload.incident.severity;
    match headline(payload.event) {
        None => format!("[Sev {severity}] {title}"),
        Some(what) => format!("[Sev {severity}] {what}: {title}"),
    }
}

const TEXT: &str = r#"{{ intro }}

Incident #{{ incident.id }}: {{ incident.title }}
Severity:  Sev {{ incident.severity }}
Status:    {{ incident.status }}
Event:     {{ event }}{% if escalation.policy %} (policy {{ escalation.policy }}{% if escalation.level is not none %}, level {{ escalation.level }}{% endif %}){% endif %}
Services:  {{ incident.services | join(", ") or "-" }}
Regions:   {{ incident.regions | join(", ") or "-" }}
Customers: {{ incident.customers | join(", ") or "-" }} ({{ incident.customer_count }})
Opened:    {{ incident.opened_at }}
{%- if incident.respond_by %}
Respond by: {{ incident.respond_by }}
{%- endif %}
{%- if incident.acknowledged_by %}
Acknowledged by {{ incident.acknowledged_by }} at {{ incident.acknowledged_at }}
{%- endif %}
{% if ack_url %}
Acknowledge: {{ ack_url }}
{%- endif %}
Incident:    {{ incident.url }}

Sent by tocsin to {{ recipient }}. Delivery {{ delivery_id }}.
"#;

const HTML: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: sans-serif">
<p><strong>{{ intro }}</strong></p>
<h2>Incident #{{ incident.id }}: {{ incident.title }}</h2>
<table>
<tr><th align="left">Severity</th><td>Sev {{ incident.severity }}</td></tr>
<tr><th align="left">Status</th><td>{{ incident.status }}</td></tr>
<tr><th align="left">Event</th><td>{{ event }}{% if escalation.policy %} (policy {{ escalation.policy }}{% if escalation.level is not none %}, level {{ escalation.level }}{% endif %}){% endif %}</td></tr>
<tr><th align="left">Services</th><td>{{ incident.services | join(", ") or "-" }}</td></tr>
<tr><th align="left">Regions</th><td>{{ incident.regions | join(", ") or "-" }}</td></tr>
<tr><th align="left">Customers</th><td>{{ incident.customers | join(", ") or "-" }} ({{ incident.customer_count }})</td></tr>
<tr><th align="left">Opened</th><td>{{ incident.opened_at }}</td></tr>
{%- if incident.respond_by %}
<tr><th align="left">Respond by</th><td>{{ incident.respond_by }}</td></tr>
{%- endif %}
{%- if incident.acknowledged_by %}
<tr><th align="left">Acknowledged</th><td>by {{ incident.acknowledged_by }} at {{ incident.acknowledged_at }}</td></tr>
{%- endif %}
</table>
{%- if ack_url %}
<p><a href="{{ ack_url }}">Acknowledge</a> ({{ ack_url }})</p>
{%- endif %}
<p><a href="{{ incident.url }}">Open the incident</a> ({{ incident.url }})</p>
<p style="color: #666">Sent by tocsin to {{ recipient }}. Delivery {{ delivery_id }}.</p>
</body></html>
"#;

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names are auto-escaped: an incident title cannot inject markup.
        env.add_template("page.txt", TEXT)
            .expect("the text template parses");
        env.add_template("page.html", HTML)
            .expect("the HTML template parses");
        // minijinja's HTML escaping also escapes `/`, which is safe but turns every link in
        // the HTML part into `http:&#x2f;&#x2f;…`; escape only what HTML needs escaped.
        env.set_formatter(|out, state, value| match value.as_str() {
            Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
                out.write_str(&escape_html(text))?;
                Ok(())
            }
            _ => minijinja::escape_formatter(out, state, value),
        });
        env
    })
}

fn escape_html(text: &str) -> String {
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

fn intro(payload: &PagePayload) -> String {
    let sev = payload.incident.severity;
    match payload.event {
        PageEvent::Triggered => format!("You are paged for a Sev {sev} incident."),
        PageEvent::Escalated => {
            format!("You are paged for a Sev {sev} incident: nobody has acknowledged it yet.")
        }
        PageEvent::SeverityRaised => format!("The incident's severity rose to Sev {sev}."),
        PageEvent::Acknowledged => format!(
            "The incident was acknowledged by {}.",
            payload
                .incident
                .acknowledged_by
                .as_deref()
                .unwrap_or("someone")
        ),
        PageEvent::Resolved => "The incident is resolved.".to_string(),
        PageEvent::ResponseBreached => {
            "The customer's initial-response deadline passed without an acknowledgement."
                .to_string()
        }
        // Pages about cases are written by `case_render`.
        PageEvent::EngagementDue | PageEvent::EngagementMissed | PageEvent::CustomerUpdate => {
            String::new()
        }
    }
}

/// The plain-text and HTML bodies.
pub fn bodies(payload: &PagePayload, delivery_id: &str) -> Result<(String, String), String> {
    if let Some(case) = &payload.case {
        return super::case_render::bodies(payload, case, delivery_id);
    }
    let ctx = context! {
        subject => subject(payload),
        intro => intro(payload),
        event => payload.event.as_str(),
        incident => &payload.incident,
        escalation => &payload.escalation,
        recipient => &payload.recipient,
        ack_url => &payload.ack_url,
        delivery_id => delivery_id,
    };
    let render = |name: &str| {
        templates()
            .get_template(name)
            .and_then(|t| t.render(&ctx))
            .map_err(|e| format!("template {name}: {e}"))
    };
    Ok((render("page.txt")?, render("page.html")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incident::{IncidentView, Status};
    use crate::paging::page::EscalationRef;

    fn payload(event: PageEvent) -> PagePayload {
        PagePayload {
            version: "1".into(),
            event,
            incident: IncidentView {
                id: 7,
                title: "storage <down>\nin china-east".into(),
                severity: 1,
                status: Status::Triggered,
                pinned: false,
                services: vec!["storage".into()],
                regions: vec!["china-east".into(), "china-north".into()],
                customers: vec!["contoso".into(), "fabrikam".into()],
                customer_count: 2,
                labels: Default::default(),
                opened_at: chrono::DateTime::from_timestamp(1_767_571_200, 0).unwrap(),
                acknowledged_at: None,
                acknowledged_by: None,
                resolved_at: None,
                respond_by: None,
                url: "http://tocsin/incidents/7".into(),
                queue: None,
                sr_severity: None,
                merged_into: None,
                assignee: None,
                tsg: None,
            },
            escalation: EscalationRef {
                policy: Some("storage".into()),
                level: Some(0),
            },
            recipient: "alice".into(),
            ack_url: Some("http://tocsin/ack/abc.def".into()),
            case: None,
        }
    }

    #[test]
    fn subject_is_severity_then_title() {
        assert_eq!(
            subject(&payload(PageEvent::Triggered)),
            "[Sev 1] storage <down> in china-east"
        );
        assert_eq!(
            subject(&payload(PageEvent::Resolved)),
            "[Sev 1] RESOLVED: storage <down> in china-east"
        );
    }

    #[test]
    fn both_bodies_carry_what_a_responder_needs() {
        let (text, html) = bodies(&payload(PageEvent::Triggered), "d-1").unwrap();
        for needle in [
            "storage",
            "china-east, china-north",
            "contoso, fabrikam",
            "http://tocsin/ack/abc.def",
            "http://tocsin/incidents/7",
            "triggered",
            "level 0",
        ] {
            assert!(text.contains(needle), "text lacks {needle}:\n{text}");
            assert!(html.contains(needle), "html lacks {needle}:\n{html}");
        }
        // The title is escaped in HTML.
        assert!(html.contains("storage &lt;down&gt;"), "{html}");
        assert!(!html.contains("<down>"));
        assert!(
            html.contains(r#"<a href="http://tocsin/ack/abc.def">"#),
            "{html}"
        );
    }

    #[test]
    fn no_ack_link_without_one() {
        let mut p = payload(PageEvent::Resolved);
        p.ack_url = None;
        let (text, html) = bodies(&p, "d-1").unwrap();
        assert!(!text.contains("Acknowledge:"), "{text}");
        assert!(!html.contains(">Acknowledge<"), "{html}");
    }
}
