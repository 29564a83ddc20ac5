//! `tocsin template render --notifier NAME [--incident ID | --sample] [--event E]`: what a
//! notifier would send for a page, printed instead of sent: the email's subject, text and
//! HTML, or a webhook's headers and body (its template's, else its format's).

use std::path::Path;
use std::process::ExitCode;

use super::ApiArgs;
use crate::config::Config;
use crate::incident::{Impact, Incident, IncidentView};
use crate::output::outln;
use crate::paging::notify::templates::{self, Templates};
use crate::paging::notify::{email, webhook};
use crate::paging::page::EscalationRef;
use crate::paging::{Channel, Page, PageContext, PageEvent, PagePayload, Recipient};

pub struct RenderArgs<'a> {
    pub config: &'a Path,
    pub notifier: &'a str,
    pub incident: Option<i64>,
    pub event: Option<&'a str>,
    pub api: &'a ApiArgs,
}

pub async fn render(args: RenderArgs<'_>) -> ExitCode {
    match run(args).await {
        Ok(text) => {
            outln!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tocsin template render: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_event(text: &str) -> Result<PageEvent, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|_| {
        format!(
            "unknown --event {text:?}: expected triggered, escalated, severity_raised, \
             acknowledged, resolved, response_breached, impact_added, merged, reopened, \
             assigned or responder_added"
        )
    })
}

async fn run(args: RenderArgs<'_>) -> Result<String, String> {
    let config = crate::config::load(args.config).map_err(|errors| {
        let lines: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
        lines.join("\n")
    })?;
    let event = parse_event(args.event.unwrap_or("triggered"))?;
    let payload = match args.incident {
        None => templates::sample_payload(&config, event, "alice"),
        Some(id) => fetched_payload(&config, args.api, id, event).await?,
    };
    let (templates, errors) = Templates::compile(&config);
    if let Some(error) = errors.first() {
        return Err(error.to_string());
    }
    let channel = if args.notifier == "email" {
        Channel::Email
    } else if config.webhook(args.notifier).is_some() {
        Channel::Webhook
    } else {
        let mut names = vec!["email".to_string()];
        names.extend(config.notifiers.webhooks.iter().map(|w| w.name.clone()));
        return Err(format!(
            "no notifier {:?}: expected one of {}",
            args.notifier,
            names.join(", ")
        ));
    };
    let page = Page {
        case_id: Default::default(),
        id: 0,
        delivery_id: "rendered-not-sent".into(),
        incident_id: payload.incident.id,
        event,
        recipient: Recipient {
            id: payload.recipient.clone(),
            channel,
            address: match channel {
                Channel::Email => format!("{}@example.com", payload.recipient),
                Channel::Webhook => args.notifier.to_string(),
            },
        },
        level: payload.escalation.level,
        payload,
        created_at: chrono::Utc::now(),
    };
    match channel {
        Channel::Email => {
            let Some(email_config) = &config.notifiers.email else {
                return Err("notifiers.email is not configured".into());
            };
            let mailer = email::Mailer::new(&config, email_config);
            let message = mailer
                .message(&page, &templates)
                .map_err(|e| e.to_string())?;
            Ok(String::from_utf8_lossy(&message.formatted()).into_owned())
        }
        Channel::Webhook => {
            let hook = config.webhook(args.notifier).expect("checked above");
            let sender = webhook::Webhook::new(&config, hook);
            let payload_body = serde_json::to_vec(&page.payload).expect("a payload serializes");
            let body = sender
                .body(&page, &payload_body, &templates)
                .map_err(|e| e.to_string())?;
            let shown = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let mut out = format!(
                "POST (webhook {:?}, format {})\n",
                hook.name,
                hook.format.as_str()
            );
            for (name, _) in hook.template.iter().flat_map(|t| t.headers.iter()) {
                let rendered = templates.render(
                    &templates::header_name(&hook.name, name),
                    &page.payload,
                    &page.delivery_id,
                );
                if let Some(value) = rendered {
                    let value = value.map_err(|e| e.to_string())?;
                    out.push_str(&format!("{name}: {}\n", value.trim()));
                }
            }
            out.push('\n');
            out.push_str(&shown);
            Ok(out)
        }
    }
}

/// A page about incident `id` as the running engine has it (through its API).
async fn fetched_payload(
    config: &Config,
    api: &ApiArgs,
    id: i64,
    event: PageEvent,
) -> Result<PagePayload, String> {
    let detail = incident_detail(api, id).await?;
    // A merge page tells of the latest incident merged into this one, and what it brought.
    let mut merged = Vec::new();
    if event == PageEvent::Merged {
        let merge = detail["timeline"].as_array().and_then(|entries| {
            entries
                .iter()
                .rev()
                .find(|e| e["kind"] == "merged" && e["data"]["from"].is_i64())
                .cloned()
        });
        if let Some(merge) = merge {
            let from = merge["data"]["from"].as_i64().unwrap_or_default();
            let source = incident_detail(api, from).await?;
            merged.push(crate::paging::MergedNews {
                incident: from,
                title: source["title"].as_str().unwrap_or_default().to_string(),
                impacts: merge["data"]["impacts"]
                    .as_array()
                    .map(|list| list.iter().filter_map(|i| i.as_i64()).collect())
                    .unwrap_or_default(),
            });
        }
    }
    let view: IncidentView = serde_json::from_value(detail.clone())
        .map_err(|e| format!("the engine's answer is not an incident: {e}"))?;
    let impacts: Vec<Impact> = serde_json::from_value(detail["impacts"].clone())
        .map_err(|e| format!("the engine's answer holds no impacts: {e}"))?;
    let first = impacts
        .first()
        .ok_or_else(|| format!("incident {id} has no impacts"))?;
    let mut incident = Incident::opened_by(id, first, view.severity, view.opened_at);
    for impact in &impacts[1..] {
        incident.absorb(impact);
    }
    incident.title = view.title.as_str().into();
    incident.status = view.status;
    incident.pinned = view.pinned;
    incident.acknowledged_at = view.acknowledged_at;
    incident.acknowledged_by = view.acknowledged_by.clone();
    let recipient = Recipient {
        id: "alice".into(),
        channel: Channel::Email,
        address: "alice@example.com".into(),
    };
    let customers = &config.catalog.customers;
    let customer_name = |id: &str| {
        customers
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.name.clone())
    };
    let ack_url = Some(format!("{}/ack/sample-signed-token", config.external_url()));
    let context = PageContext::build(crate::paging::context::Inputs {
        incident: &incident,
        impacts: impacts.iter().collect(),
        event,
        recipient: &recipient,
        history: &[],
        merged: &merged,
        zone: chrono_tz::Tz::UTC,
        customer_name: &customer_name,
        thresholds: &config.classification,
        incident_url: view.url.clone(),
        ack_url: ack_url.clone(),
        now: chrono::Utc::now(),
    });
    Ok(PagePayload {
        case: Default::default(),
        tsg_action: None,
        version: "1".into(),
        event,
        incident: view,
        escalation: EscalationRef {
            policy: None,
            level: None,
        },
        recipient: recipient.id,
        ack_url,
        context: Some(context),
    })
}

/// `GET /api/v1/incidents/{id}` of the running engine.
async fn incident_detail(api: &ApiArgs, id: i64) -> Result<serde_json::Value, String> {
    let url = format!("{}/api/v1/incidents/{id}", api.url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let mut request = client.get(&url);
    if let Some(token) = &api.token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("cannot reach the engine at {}: {e}", api.url))?;
    if !response.status().is_success() {
        return Err(format!("GET {url} answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}
