//! Every notifier, built from one config: the mailer, each webhook, and the retry policy.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use std::sync::Arc;

use super::templates::Templates;
use super::{email, webhook, NotifyError};
use crate::config::{Config, RetryConfig};
use crate::paging::{Channel, Page};
use crate::store::PerChannel;

/// The bound of an attempt that is a local write, or that fails at once (no such notifier).
const LOCAL_WRITE: std::time::Duration = std::time::Duration::from_secs(10);

/// Every notifier, built from one config. A reload builds a new set; attempts under way
/// finish with the set they started with.
pub struct Notifiers {
    email: Option<email::Mailer>,
    webhooks: HashMap<String, webhook::Webhook>,
    client: reqwest::Client,
    pub retry: RetryConfig,
    /// The notifiers' own templates (those that compiled; `tocsin check` names the rest).
    templates: Arc<Templates>,
    /// How long one attempt through each channel takes at most ([`attempt_limits`]).
    limits: PerChannel,
}

/// The longest one attempt takes, by the config: through the SMTP server or a webhook, its
/// timeout (which bounds the whole attempt); a local write (a folder of `.eml` files), or a
/// channel the config lacks, [`LOCAL_WRITE`].
pub fn attempt_limits(config: &Config) -> PerChannel {
    let time = |limit: std::time::Duration| {
        chrono::Duration::from_std(limit).unwrap_or(chrono::Duration::MAX)
    };
    let local = time(LOCAL_WRITE);
    PerChannel {
        email: config
            .notifiers
            .email
            .as_ref()
            .and_then(|email| email.smtp.as_ref())
            .map_or(local, |smtp| time(smtp.timeout.std())),
        webhooks: config
            .notifiers
            .webhooks
            .iter()
            .map(|hook| (hook.name.clone(), time(hook.timeout.std())))
            .collect(),
        otherwise: local,
    }
}

impl Notifiers {
    /// Build from the config, reading secret and password files now. A notifier whose
    /// secret cannot be read is kept and fails its attempts with a retryable error that
    /// says why, so the pages wait for a fixed config instead of being lost.
    pub fn new(config: &Config, client: reqwest::Client) -> Notifiers {
        let notifiers = &config.notifiers;
        let (templates, errors) = Templates::compile(config);
        for error in errors {
            tracing::error!(%error, "notifier template not used; pages use the built-in one");
        }
        let templates = Arc::new(templates);
        Notifiers {
            email: notifiers
                .email
                .as_ref()
                .map(|e| email::Mailer::new(config, e)),
            webhooks: notifiers
                .webhooks
                .iter()
                .map(|w| (w.name.clone(), webhook::Webhook::new(config, w)))
                .collect(),
            client,
            retry: notifiers.retry.clone(),
            templates,
            limits: attempt_limits(config),
        }
    }

    /// The longest one attempt to deliver `page` takes: its channel's timeout, which bounds
    /// the whole attempt. A local write (a folder of `.eml` files) gets `LOCAL_WRITE`.
    pub fn attempt_limit(&self, page: &Page) -> std::time::Duration {
        self.limits.of(page).to_std().unwrap_or(LOCAL_WRITE)
    }

    /// One attempt to deliver one page.
    pub async fn send(
        &self,
        page: &Page,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), NotifyError> {
        match page.recipient.channel {
            Channel::Email => match &self.email {
                Some(mailer) => mailer.send(page, &self.templates).await,
                None => Err(NotifyError::NoEmailNotifier {
                    to: page.recipient.address.clone(),
                }),
            },
            Channel::Webhook => match self.webhooks.get(&page.recipient.address) {
                Some(hook) => {
                    hook.send(&self.client, page, body, &self.templates, now)
                        .await
                }
                None => Err(NotifyError::UnknownWebhook {
                    webhook: page.recipient.address.clone(),
                }),
            },
        }
    }
}
