//! Why a delivery attempt failed, and whether trying again can help.

use std::time::Duration;

/// A failed delivery attempt. Every message names the recipient or the webhook and never
/// carries a secret (no webhook URL, which may embed a token; no password; no header value).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotifyError {
    // ----- final: trying again cannot help ------------------------------------------------
    #[error("webhook {webhook:?} is not configured in notifiers.webhooks")]
    UnknownWebhook { webhook: String },
    #[error("webhook {webhook:?} answered HTTP {status}{detail}: not retried")]
    Rejected {
        webhook: String,
        status: u16,
        detail: String,
    },
    #[error("email to {to}: no email notifier is configured (notifiers.email)")]
    NoEmailNotifier { to: String },
    #[error("email to {to:?}: invalid address: {reason}")]
    InvalidAddress { to: String, reason: String },
    #[error("email to {to}: the SMTP server refused it permanently: {reason}")]
    SmtpPermanent { to: String, reason: String },
    #[error("email to {to}: cannot build the message: {reason}")]
    Message { to: String, reason: String },

    // ----- retryable ----------------------------------------------------------------------
    #[error("webhook {webhook:?} answered HTTP {status}{detail}")]
    Unavailable {
        webhook: String,
        status: u16,
        detail: String,
        /// The receiver's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    #[error("webhook {webhook:?} did not answer within {timeout:?}")]
    WebhookTimeout { webhook: String, timeout: Duration },
    #[error("webhook {webhook:?} could not be reached: {reason}")]
    WebhookTransport { webhook: String, reason: String },
    #[error(
        "email to {to}: SMTP server {server} does not offer STARTTLS, which `tls: starttls` \
         requires (nothing was sent; use `tls: tls` for implicit TLS or `tls: none` for plain \
         text)"
    )]
    StartTlsUnavailable { to: String, server: String },
    #[error("email to {to} via SMTP server {server}: {reason}")]
    Smtp {
        to: String,
        server: String,
        reason: String,
    },
    #[error("email to {to}: SMTP server {server} did not finish within {timeout:?}")]
    SmtpTimeout {
        to: String,
        server: String,
        timeout: Duration,
    },
    #[error("email to {to}: cannot write {path}: {reason}")]
    File {
        to: String,
        path: String,
        reason: String,
    },
    /// A notifier whose config could not be used (an unreadable secret file, a bad header):
    /// kept retrying so a fixed config (reload) delivers the page.
    #[error("{notifier}: {reason}")]
    Config { notifier: String, reason: String },
    #[error("the delivery task for {recipient} stopped unexpectedly: {reason}")]
    Internal { recipient: String, reason: String },
}

impl NotifyError {
    /// Would a later attempt possibly succeed?
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            NotifyError::UnknownWebhook { .. }
                | NotifyError::Rejected { .. }
                | NotifyError::NoEmailNotifier { .. }
                | NotifyError::InvalidAddress { .. }
                | NotifyError::SmtpPermanent { .. }
                | NotifyError::Message { .. }
        )
    }

    /// How long the receiver asked us to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error and its sources on one line (reqwest and lettre put the useful part in sources).
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_and_retryable() {
        let rejected = NotifyError::Rejected {
            webhook: "chatops".into(),
            status: 400,
            detail: String::new(),
        };
        assert!(!rejected.is_retryable());
        assert!(rejected.to_string().contains("chatops"));
        let busy = NotifyError::Unavailable {
            webhook: "chatops".into(),
            status: 429,
            detail: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert!(busy.is_retryable());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(3)));
        let starttls = NotifyError::StartTlsUnavailable {
            to: "alice@example.com".into(),
            server: "127.0.0.1:2525".into(),
        };
        assert!(starttls.is_retryable());
        assert!(starttls.to_string().contains("STARTTLS"), "{starttls}");
        assert!(starttls.to_string().contains("alice@example.com"));
    }
}
