//! Notifiers' own minijinja templates: `notifiers.email.template: {subject, text, html}` and
//! `notifiers.webhooks[].template: {body, headers}`, each the text or `{file: PATH}`.
//!
//! Every template sees what [`render::template_context`] gives: `page` (the page context),
//! `incident`, `event`, `escalation`, `recipient`, `ack_url`, `delivery_id`. In `html`
//! templates values are HTML-escaped; in a webhook `body` each `{{ value }}` is written as
//! JSON (a string comes out quoted). `tocsin check` compiles and renders each against a
//! sample page and names errors by `file:line:column`.

use std::collections::HashMap;
use std::path::PathBuf;

use minijinja::{AutoEscape, Environment};

use super::render;
use crate::config::{Config, TemplateSource};
use crate::paging::{PageEvent, PagePayload};

/// Where a template's text came from, to name an error's place.
#[derive(Clone, Debug)]
struct Origin {
    /// The file holding the text: the template file, or the config for inline text.
    file: PathBuf,
    /// Line and column (1-based) in `file` where the text starts.
    start: (usize, usize),
    /// The config key, e.g. `notifiers.email.template.subject`.
    key: String,
}

/// A template that failed to load, compile or render.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for TemplateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.key,
            self.message
        )
    }
}

/// Every notifier template of one config, compiled.
pub struct Templates {
    env: Environment<'static>,
    origins: HashMap<String, Origin>,
}

/// Template names: `email.subject`, `email.text`, `email.html`, `webhook.NAME.body`,
/// `webhook.NAME.header.HEADER`.
pub fn email_name(part: &str) -> String {
    format!("email.{part}")
}

pub fn body_name(webhook: &str) -> String {
    format!("webhook.{webhook}.body")
}

pub fn header_name(webhook: &str, header: &str) -> String {
    format!("webhook.{webhook}.header.{header}")
}

impl Templates {
    /// Read and compile every template the config sets; errors name their place.
    pub fn compile(config: &Config) -> (Templates, Vec<TemplateError>) {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else if name.ends_with(".body") {
                AutoEscape::Json
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(render::html_formatter);
        let config_text = std::fs::read_to_string(&config.path).unwrap_or_default();
        let mut templates = Templates {
            env,
            origins: HashMap::new(),
        };
        let mut errors = Vec::new();
        let mut wanted: Vec<(String, String, crate::config::locate::Path, &TemplateSource)> =
            Vec::new();
        let root = crate::config::locate::Path::root().key("notifiers");
        if let Some(t) = config
            .notifiers
            .email
            .as_ref()
            .and_then(|e| e.template.as_ref())
        {
            let at = root.key("email").key("template");
            for (part, source) in [
                ("subject", &t.subject),
                ("text", &t.text),
                ("html", &t.html),
            ] {
                if let Some(source) = source {
                    let key = format!("notifiers.email.template.{part}");
                    wanted.push((email_name(part), key, at.key(part), source));
                }
            }
        }
        for (i, hook) in config.notifiers.webhooks.iter().enumerate() {
            let Some(t) = &hook.template else { continue };
            let at = root.key("webhooks").index(i).key("template");
            if let Some(body) = &t.body {
                let key = format!("notifiers.webhooks[{i}].template.body");
                wanted.push((body_name(&hook.name), key, at.key("body"), body));
            }
            for (header, source) in &t.headers {
                let key = format!("notifiers.webhooks[{i}].template.headers.{header}");
                let path = at.key("headers").key(header);
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    let (line, column) = crate::config::locate::locate(&config_text, &path, true);
                    errors.push(TemplateError {
                        file: config.path.clone(),
                        line,
                        column,
                        key,
                        message: format!("{header:?} is not a valid HTTP header name"),
                    });
                    continue;
                }
                wanted.push((header_name(&hook.name, header), key, path, source));
            }
        }
        for (name, key, path, source) in wanted {
            let (origin, text) = match source {
                TemplateSource::Text(text) => {
                    let start = crate::config::locate::locate(&config_text, &path, false);
                    let origin = Origin {
                        file: config.path.clone(),
                        start: inline_start(&config_text, start),
                        key,
                    };
                    (origin, text.clone())
                }
                TemplateSource::File { file } => {
                    let resolved = config.resolve_path(file);
                    let origin = Origin {
                        file: resolved.clone(),
                        start: (1, 1),
                        key,
                    };
                    match std::fs::read_to_string(&resolved) {
                        Ok(text) => (origin, text),
                        Err(e) => {
                            let (line, column) =
                                crate::config::locate::locate(&config_text, &path, false);
                            errors.push(TemplateError {
                                file: config.path.clone(),
                                line,
                                column,
                                key: origin.key,
                                message: format!(
                                    "cannot read template file {}: {e}",
                                    resolved.display()
                                ),
                            });
                            continue;
                        }
                    }
                }
            };
            if let Err(e) = templates.env.add_template_owned(name.clone(), text.clone()) {
                errors.push(place(&origin, &text, &e));
                continue;
            }
            templates.origins.insert(name, origin);
        }
        (templates, errors)
    }

    pub fn has(&self, name: &str) -> bool {
        self.origins.contains_key(name)
    }

    /// Render template `name` for a page; `None` when the config sets no such template.
    pub fn render(
        &self,
        name: &str,
        payload: &PagePayload,
        delivery_id: &str,
    ) -> Option<Result<String, TemplateError>> {
        let origin = self.origins.get(name)?;
        let template = self.env.get_template(name).ok()?;
        let ctx = render::template_context(payload, delivery_id);
        Some(template.render(ctx).map_err(|e| {
            let source = template.source().to_string();
            place(origin, &source, &e)
        }))
    }

    /// Render every template against `payload`: the errors, each with its place.
    pub fn check(&self, payload: &PagePayload) -> Vec<TemplateError> {
        let mut names: Vec<&String> = self.origins.keys().collect();
        names.sort();
        let mut errors = Vec::new();
        for name in names {
            match self.render(name, payload, "sample-delivery") {
                Some(Err(e)) => errors.push(e),
                Some(Ok(text)) if name.ends_with(".body") => {
                    if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                        let origin = &self.origins[name.as_str()];
                        errors.push(TemplateError {
                            file: origin.file.clone(),
                            line: origin.start.0,
                            column: origin.start.1,
                            key: origin.key.clone(),
                            message: format!(
                                "renders as no JSON ({e}); it renders as: {}",
                                super::format::clip(&text, 200)
                            ),
                        });
                    }
                }
                _ => {}
            }
        }
        errors
    }
}

/// Where inline text starts: a block scalar (`|`, `>`) starts on the next line.
fn inline_start(config_text: &str, (line, column): (usize, usize)) -> (usize, usize) {
    let at = config_text
        .lines()
        .nth(line.saturating_sub(1))
        .and_then(|l| l.get(column.saturating_sub(1)..))
        .unwrap_or_default();
    if at.starts_with('|') || at.starts_with('>') {
        let indent = config_text
            .lines()
            .nth(line)
            .map(|l| l.len() - l.trim_start().len())
            .unwrap_or(0);
        (line + 1, indent + 1)
    } else if at.starts_with('"') || at.starts_with('\'') {
        (line, column + 1)
    } else {
        (line, column)
    }
}

/// The error's place in the file: the template's line and column, moved to where its text
/// starts.
fn place(origin: &Origin, source: &str, error: &minijinja::Error) -> TemplateError {
    let line = error.line().unwrap_or(1).max(1);
    let column = error
        .range()
        .map(|range| {
            let line_start = source[..range.start.min(source.len())]
                .rfind('\n')
                .map(|i| i + 1)
                .unwrap_or(0);
            range.start - line_start + 1
        })
        .unwrap_or(1);
    let (line, column) = if line == 1 {
        (origin.start.0, origin.start.1 + column - 1)
    } else {
        (origin.start.0 + line - 1, column + origin.start.1 - 1)
    };
    let message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    TemplateError {
        file: origin.file.clone(),
        line,
        column,
        key: origin.key.clone(),
        message,
    }
}

/// A page about a sample incident (storage down in two regions, two customers), for
/// `tocsin check` and `tocsin template render --sample`.
pub fn sample_payload(config: &Config, event: PageEvent, recipient: &str) -> PagePayload {
    use crate::config::ImpactKind;
    use crate::incident::{lifecycle, Impact};
    use crate::paging::context::{self, PageContext};
    use crate::paging::page::EscalationRef;
    use crate::paging::{Channel, Recipient};
    use crate::signal::{Fingerprint, LabelSet, SourceKind};
    use std::sync::Arc;

    let now = chrono::DateTime::from_timestamp(1_767_603_600, 0).expect("a fixed time");
    let impact = |id: i64, region: &str, customers: &[&str]| Impact {
        id,
        incident_id: 1,
        rule: "AlertCritical".into(),
        fingerprint: Fingerprint(id as u64),
        source: SourceKind::Alert,
        kind: ImpactKind::Outage,
        sla_breach: true,
        business_impact: None,
        severity_floor: None,
        service: Some("storage".into()),
        region: Some(region.into()),
        customers: customers.iter().map(|c| c.to_string()).collect(),
        labels: Arc::new(LabelSet::from_iter([
            ("service", "storage"),
            ("region", region),
        ])),
        summary: format!("storage down in {region}").into(),
        started_at: now + chrono::Duration::seconds(id * 60),
        cleared_at: None,
        firing_at_resolve: false,
        cri: None,
        inhibited_by: None,
        sla_measured: None,
        annotations: Arc::new(LabelSet::from_iter([
            ("description", "5xx above 5% on every front end"),
            ("runbook_url", "https://runbooks.example/storage-down"),
            (
                crate::signal::GENERATOR_URL,
                "http://prometheus.example:9090/graph?g0.expr=up",
            ),
        ])),
    };
    let impacts = [
        impact(1, "china-east", &["contoso"]),
        impact(2, "china-north", &["fabrikam"]),
    ];
    let thresholds = &config.classification;
    let (mut incident, _) = lifecycle::open(1, &impacts[0], thresholds, now);
    lifecycle::attach(&mut incident, &impacts[1]);
    incident.severity = crate::incident::classify(impacts.iter(), thresholds).0;
    let external = config.external_url();
    let ack_url = Some(format!("{external}/ack/sample-signed-token"));
    let who = Recipient {
        id: recipient.to_string(),
        channel: Channel::Email,
        address: format!("{recipient}@example.com"),
    };
    let customers = &config.catalog.customers;
    let customer_name = |id: &str| {
        customers
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.name.clone())
    };
    let page = PageContext::build(context::Inputs {
        incident: &incident,
        impacts: impacts.iter().collect(),
        event,
        recipient: &who,
        // Bob was paged when the first region went down, at Sev 2.
        history: &[crate::paging::PagedEntry {
            recipient: "bob".into(),
            channel: "webhook".into(),
            event: "triggered".into(),
            level: Some(0),
            at: now + chrono::Duration::seconds(65),
            severity: 2,
        }],
        // For `merged`: the outage in the second region had an incident of its own.
        merged: &[crate::paging::MergedNews {
            incident: 2,
            title: impacts[1].summary.to_string(),
            impacts: vec![impacts[1].id],
        }],
        zone: chrono_tz::Tz::UTC,
        customer_name: &customer_name,
        thresholds,
        incident_url: format!("{external}/incidents/1"),
        ack_url: ack_url.clone(),
        now: now + chrono::Duration::minutes(3),
    });
    PagePayload {
        case: Default::default(),
        tsg_action: None,
        version: "1".into(),
        event,
        incident: crate::incident::IncidentView::new(&incident, &external),
        escalation: EscalationRef {
            policy: Some("sample".into()),
            level: Some(0),
        },
        recipient: recipient.to_string(),
        ack_url,
        context: Some(page),
    }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
