//! The email a page becomes: subject, plain text and HTML, written from the same payload a
//! webhook receives.

use std::sync::OnceLock;

use minijinja::{context, AutoEscape, Environment};

use crate::paging::context::subject_tag;
use crate::paging::PagePayload;

/// The subject: `[Sev N] title`, with what happened when it is not a plain page (and, to
/// someone who never heard of the incident, after the title, never instead of it).
pub fn subject(payload: &PagePayload) -> String {
    if let Some(case) = &payload.case {
        return super::case_render::subject(payload.event, case, subject_tag(payload.event));
    }
    payload.context().subject.clone()
}

/// What every template is rendered with: `page` (the page context: what broke, why this
/// severity, links, who else was paged), `incident` (the incident as the API shows it),
/// `event`, `escalation`, `recipient`, `ack_url` and `delivery_id`.
pub fn template_context(payload: &PagePayload, delivery_id: &str) -> minijinja::Value {
    let page = payload.context();
    context! {
        page => &*page,
        subject => &page.subject,
        event => payload.event.as_str(),
        incident => &payload.incident,
        escalation => &payload.escalation,
        recipient => &payload.recipient,
        ack_url => &payload.ack_url,
        delivery_id => delivery_id,
    }
}

const TEXT: &str = r#"{{ page.headline }}
{%- if page.what_changed %}

What changed: {{ page.what_changed }}
{%- endif %}

Incident #{{ page.incident_id }}: {{ page.title }}
Severity:  Sev {{ page.severity }}
Why:       {{ page.severity_reason }}
Status:    {{ page.status }}{% if page.acknowledged %} ({{ page.acknowledged }}){% endif %}
Opened:    {{ page.opened_at }}
Services:  {{ page.services | join(", ") or "-" }}
Regions:   {{ page.regions | join(", ") or "-" }}
Customers: {{ page.customers | join(", ") or "-" }} ({{ page.customers | length }})
{%- if incident.respond_by %}
Respond by: {{ incident.respond_by }}
{%- endif %}
{% if ack_url %}
Acknowledge: {{ ack_url }}
{%- endif %}
Dashboard:   {{ page.dashboard_url }}
{%- for link in page.runbooks %}
Runbook:     {{ link.url }}
{%- endfor %}
{%- if page.impacts %}

What is broken ({{ page.impacts_total }} impact{% if page.impacts_total != 1 %}s{% endif %}, newest first):
{%- for impact in page.impacts %}
- {{ impact.summary }} ({{ impact.kind }}{% if impact.service %}, {{ impact.service }}{% endif %}{% if impact.region %}, {{ impact.region }}{% endif %}), since {{ impact.started_at }}{% if not impact.active %}, cleared{% endif %}
{%- if impact.customers %}
  Customers: {{ impact.customers | join(", ") }}
{%- endif %}
{%- if impact.description %}
  {{ impact.description }}
{%- endif %}
{%- if impact.runbook_url %}
  Runbook: {{ impact.runbook_url }}
{%- endif %}
{%- if impact.generator_url %}
  Alert source: {{ impact.generator_url }}
{%- endif %}
{%- endfor %}
{%- if page.impacts_total > page.impacts | length %}
- and {{ page.impacts_total - page.impacts | length }} more on the dashboard
{%- endif %}
{%- endif %}
{%- if page.links %}

Links:
{%- for link in page.links %}
- {{ link.title }}: {{ link.url }}
{%- endfor %}
{%- endif %}

{% if page.paged %}Also paged:
{%- for p in page.paged %}
- {{ p.who }} by {{ p.channel }} at {{ p.at }} ({{ p.event }}{% if p.level is not none %}, level {{ p.level }}{% endif %})
{%- endfor %}
{% else %}Nobody else has been paged about it.
{% endif %}
Event: {{ event }}{% if escalation.policy %} (policy {{ escalation.policy }}{% if escalation.level is not none %}, level {{ escalation.level }}{% endif %}){% endif %}
Times are in {{ page.timezone }}.
Sent by tocsin to {{ recipient }}. Delivery {{ delivery_id }}.
"#;

const HTML: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1d1c1d; max-width: 720px">
<div style="border-left: 6px solid {{ colour }}; padding: 4px 12px; margin-bottom: 12px">
<p style="margin: 4px 0"><strong>{{ page.headline }}</strong></p>
{%- if page.what_changed %}
<p style="margin: 4px 0"><strong>What changed:</strong> {{ page.what_changed }}</p>
{%- endif %}
</div>
<h2 style="margin: 8px 0">Incident #{{ page.incident_id }}: {{ page.title }}</h2>
{%- if ack_url %}
<p><a href="{{ ack_url }}" style="background: {{ colour }}; color: #fff; padding: 8px 16px; border-radius: 4px; text-decoration: none; font-weight: bold">Acknowledge</a>
&nbsp; <a href="{{ page.dashboard_url }}">Open the incident</a></p>
{%- else %}
<p><a href="{{ page.dashboard_url }}">Open the incident</a></p>
{%- endif %}
<table cellpadding="3">
<tr><th align="left">Severity</th><td>Sev {{ page.severity }}</td></tr>
<tr><th align="left">Why</th><td>{{ page.severity_reason }}</td></tr>
<tr><th align="left">Status</th><td>{{ page.status }}{% if page.acknowledged %} ({{ page.acknowledged }}){% endif %}</td></tr>
<tr><th align="left">Opened</th><td>{{ page.opened_at }}</td></tr>
<tr><th align="left">Services</th><td>{{ page.services | join(", ") or "-" }}</td></tr>
<tr><th align="left">Regions</th><td>{{ page.regions | join(", ") or "-" }}</td></tr>
<tr><th align="left">Customers</th><td>{{ page.customers | join(", ") or "-" }} ({{ page.customers | length }})</td></tr>
{%- if incident.respond_by %}
<tr><th align="left">Respond by</th><td>{{ incident.respond_by }}</td></tr>
{%- endif %}
{%- for link in page.runbooks %}
<tr><th align="left">Runbook</th><td><a href="{{ link.url }}">{{ link.url }}</a></td></tr>
{%- endfor %}
</table>
{%- if page.impacts %}
<h3>What is broken ({{ page.impacts_total }} impact{% if page.impacts_total != 1 %}s{% endif %}, newest first)</h3>
<ul>
{%- for impact in page.impacts %}
<li><strong>{{ impact.summary }}</strong> ({{ impact.kind }}{% if impact.service %}, {{ impact.service }}{% endif %}{% if impact.region %}, {{ impact.region }}{% endif %}), since {{ impact.started_at }}{% if not impact.active %}, cleared{% endif %}
{%- if impact.customers %}<br>Customers: {{ impact.customers | join(", ") }}{% endif %}
{%- if impact.description %}<br>{{ impact.description }}{% endif %}
{%- if impact.runbook_url %}<br><a href="{{ impact.runbook_url }}">Runbook</a>{% endif %}
{%- if impact.generator_url %}<br><a href="{{ impact.generator_url }}">Alert source</a>{% endif %}
</li>
{%- endfor %}
{%- if page.impacts_total > page.impacts | length %}
<li>and {{ page.impacts_total - page.impacts | length }} more on the <a href="{{ page.dashboard_url }}">dashboard</a></li>
{%- endif %}
</ul>
{%- endif %}
{%- if page.links %}
<h3>Links</h3>
<ul>
{%- for link in page.links %}
<li><a href="{{ link.url }}">{{ link.title }}</a></li>
{%- endfor %}
</ul>
{%- endif %}
<h3>Who else was paged</h3>
{%- if page.paged %}
<ul>
{%- for p in page.paged %}
<li>{{ p.who }} by {{ p.channel }} at {{ p.at }} ({{ p.event }}{% if p.level is not none %}, level {{ p.level }}{% endif %})</li>
{%- endfor %}
</ul>
{%- else %}
<p>Nobody else has been paged about it.</p>
{%- endif %}
<p style="color: #666">Event {{ event }}{% if escalation.policy %} (policy {{ escalation.policy }}{% if escalation.level is not none %}, level {{ escalation.level }}{% endif %}){% endif %}. Times are in {{ page.timezone }}.
Sent by tocsin to {{ recipient }}. Delivery {{ delivery_id }}.
{%- if ack_url %}<br>Acknowledge link: {{ ack_url }}{% endif %}</p>
</body></html>
"#;

/// The colour of a severity, as the Slack and Teams formats and the HTML email show it.
pub fn severity_colour(severity: u8) -> &'static str {
    match severity {
        0 => "#7b1fa2",
        1 => "#d32f2f",
        2 => "#f57c00",
        3 => "#fbc02d",
        _ => "#1976d2",
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        // `.html` names are auto-escaped: an incident title cannot inject markup.
        env.add_template("page.txt", TEXT)
            .expect("the text template parses");
        env.add_template("page.html", HTML)
            .expect("the HTML template parses");
        env.set_formatter(html_formatter);
        env
    })
}

/// minijinja's formatter, but HTML escaping escapes only what HTML needs escaped: its own
/// also escapes `/`, which is safe but turns every link in an HTML part into
/// `http:&#x2f;&#x2f;…`.
pub fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    match value.as_str() {
        Some(text) if state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            out.write_str(&escape_html(text))?;
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
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

/// The plain-text and HTML bodies.
pub fn bodies(payload: &PagePayload, delivery_id: &str) -> Result<(String, String), String> {
    if let Some(case) = &payload.case {
        return super::case_render::bodies(payload, case, delivery_id);
    }
    let ctx = template_context(payload, delivery_id);
    let colour = severity_colour(payload.incident.severity);
    let ctx = context! { colour, ..ctx };
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
    use crate::paging::PageEvent;

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
                queues: Vec::new(),
                sr_severity: None,
                merged_into: None,
                assignee: None,
                tsg: None,
                tsg_action: None,
            },
            escalation: EscalationRef {
                policy: Some("storage".into()),
                level: Some(0),
            },
            recipient: "alice".into(),
            ack_url: Some("http://tocsin/ack/abc.def".into()),
            context: None,
            case: None,
            tsg_action: None,
        }
    }

    #[test]
    fn subject_is_severity_then_title() {
        assert_eq!(
            subject(&payload(PageEvent::Triggered)),
            "[Sev 1] storage <down> in china-east"
        );
        // A page stored without a context reads as one to someone new to the incident.
        assert_eq!(
            subject(&payload(PageEvent::Resolved)),
            "[Sev 1] storage <down> in china-east (resolved)"
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
            html.contains(r#"<a href="http://tocsin/ack/abc.def""#),
            "{html}"
        );
    }

    #[test]
    fn both_bodies_carry_the_page_context() {
        use crate::paging::context::{ImpactLine, Link, PagedLine};
        let mut p = payload(PageEvent::SeverityRaised);
        p.context = Some(crate::paging::PageContext {
            subject: "[Sev 1] storage down (raised from Sev 2)".into(),
            headline: "You are paged for Sev 1 incident #7.".into(),
            what_changed: Some("Severity rose from Sev 2 to Sev 1".into()),
            severity: 1,
            severity_reason: "Sev 1: major impact, 2 customers (Contoso Ltd and fabrikam)".into(),
            customers: vec!["Contoso Ltd".into(), "fabrikam".into()],
            impacts: vec![ImpactLine {
                summary: "storage down in china-north".into(),
                kind: "outage".into(),
                started_at: "2026-01-05 17:01:30 CST (Asia/Shanghai)".into(),
                active: true,
                description: Some("5xx <above> 5%".into()),
                runbook_url: Some("https://runbooks.example/storage".into()),
                generator_url: Some("http://prom/graph?g0.expr=up&x=1".into()),
                ..Default::default()
            }],
            impacts_total: 3,
            runbooks: vec![Link {
                title: "Runbook".into(),
                url: "https://runbooks.example/storage".into(),
            }],
            paged: vec![PagedLine {
                who: "bob".into(),
                channel: "webhook".into(),
                event: "triggered".into(),
                at: "2026-01-05 17:00:05 CST (Asia/Shanghai)".into(),
                level: Some(0),
            }],
            dashboard_url: "http://tocsin/incidents/7".into(),
            timezone: "Asia/Shanghai".into(),
            ..Default::default()
        });
        assert_eq!(subject(&p), "[Sev 1] storage down (raised from Sev 2)");
        let (text, html) = bodies(&p, "d-1").unwrap();
        for needle in [
            "What changed:",
            "Severity rose from Sev 2 to Sev 1",
            "Contoso Ltd and fabrikam",
            "storage down in china-north",
            "https://runbooks.example/storage",
            "http://tocsin/incidents/7",
            "bob by webhook at 2026-01-05 17:00:05 CST (Asia/Shanghai)",
            "and 2 more",
            "Times are in Asia/Shanghai",
        ] {
            assert!(text.contains(needle), "text lacks {needle}:\n{text}");
            assert!(html.contains(needle), "html lacks {needle}:\n{html}");
        }
        assert!(text.contains("5xx <above> 5%"), "{text}");
        assert!(html.contains("5xx &lt;above&gt; 5%"), "{html}");
        assert!(
            html.contains(r#"<a href="http://prom/graph?g0.expr=up&amp;x=1">Alert source</a>"#),
            "{html}"
        );
    }

    /// A page without its context of the moment (stored by an older version) reads as a
    /// first page: the title first, then the event.
    #[test]
    fn updates_say_what_changed_and_who_acknowledged() {
        for (event, tag) in [
            (PageEvent::ImpactAdded, "new impact"),
            (PageEvent::Merged, "merged"),
            (PageEvent::Reopened, "reopened"),
        ] {
            assert_eq!(
                subject(&payload(event)),
                format!("[Sev 1] storage <down> in china-east ({tag})")
            );
        }
        let (text, _) = bodies(&payload(PageEvent::ImpactAdded), "d-1").unwrap();
        assert!(text.contains("Event: impact_added"), "{text}");
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
