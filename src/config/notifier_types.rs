//! The typed shape of `notifiers:` (email, webhooks, retries) in `config/tocsin.yaml`, as
//! docs/configuration.md describes it; refusing unknown keys as the rest of the config does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::duration::Duration;
use super::types::labels;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifiersConfig {
    #[serde(default)]
    pub email: Option<EmailConfig>,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(default)]
    pub retry: RetryConfig,
    /// At most one update (`impact_added`, `reopened`) per recipient and incident this often.
    #[serde(default = "default_update_interval")]
    pub update_interval: Duration,
}

impl Default for NotifiersConfig {
    fn default() -> Self {
        NotifiersConfig {
            email: None,
            webhooks: Vec::new(),
            retry: RetryConfig::default(),
            update_interval: default_update_interval(),
        }
    }
}

fn default_update_interval() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub from: String,
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default)]
    pub file: Option<FileTransportConfig>,
    /// The notifier's own minijinja templates; the built-in ones where unset.
    #[serde(default)]
    pub template: Option<EmailTemplate>,
}

/// A template: its text, or `{file: PATH}` (relative to the config's folder).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum TemplateSource {
    Text(String),
    File { file: String },
}

/// `notifiers.email.template`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTemplate {
    #[serde(default)]
    pub subject: Option<TemplateSource>,
    #[serde(default)]
    pub text: Option<TemplateSource>,
    #[serde(default)]
    pub html: Option<TemplateSource>,
}

/// `notifiers.webhooks[].template`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTemplate {
    /// The body; each `{{ value }}` in it is written as JSON.
    #[serde(default)]
    pub body: Option<TemplateSource>,
    /// Headers added to the request, by name.
    #[serde(default)]
    pub headers: BTreeMap<String, TemplateSource>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<String>,
    /// Name of an environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout: Duration,
    /// PEM file of the CAs that may sign the server's certificate (`tls: starttls | tls`),
    /// instead of the Mozilla roots: for a server with a private CA or a self-signed one.
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTransportConfig {
    pub dir: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub secret_file: Option<String>,
    #[serde(default = "default_webhook_timeout")]
    pub timeout: Duration,
    #[serde(default, deserialize_with = "labels")]
    pub headers: BTreeMap<String, String>,
    /// The body the receiver takes: tocsin's own (signed), or a product's.
    #[serde(default)]
    pub format: WebhookFormat,
    /// `format: pagerduty`: the file holding the Events API v2 routing (integration) key.
    #[serde(default)]
    pub routing_key_file: Option<String>,
    /// `format: ntfy`: the topic to publish to.
    #[serde(default)]
    pub topic: Option<String>,
    /// The webhook's own minijinja templates (body, headers), instead of its format's body.
    #[serde(default)]
    pub template: Option<WebhookTemplate>,
}

/// What a webhook's body is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The page payload as JSON, signed with `secret_file` (docs/api.md).
    #[default]
    Tocsin,
    /// A Slack incoming webhook: Block Kit blocks, severity colour, an Acknowledge button.
    Slack,
    /// A Microsoft Teams Workflows webhook: an Adaptive Card.
    Teams,
    /// PagerDuty Events API v2: trigger, acknowledge and resolve.
    Pagerduty,
    /// ntfy: a JSON publish to the server's root.
    Ntfy,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Tocsin => "tocsin",
            WebhookFormat::Slack => "slack",
            WebhookFormat::Teams => "teams",
            WebhookFormat::Pagerduty => "pagerduty",
            WebhookFormat::Ntfy => "ntfy",
        }
    }
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(10)
}

/// How undelivered pages are retried.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    #[serde(default = "default_initial_backoff")]
    pub initial_backoff: Duration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// After this long undelivered, a page is given up: `delivery_failed`, next level.
    #[serde(default = "default_max_age")]
    pub max_age: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_backoff: default_initial_backoff(),
            max_backoff: default_max_backoff(),
            max_age: default_max_age(),
        }
    }
}

fn default_initial_backoff() -> Duration {
    Duration::from_secs(1)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_max_age() -> Duration {
    Duration::from_secs(3600)
}
