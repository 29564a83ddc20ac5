//! Email pages with lettre: SMTP (`tls: none | starttls | tls`, optional auth), or `.eml`
//! files in a folder.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::error::{chain, NotifyError};
use super::render;
use super::templates::{email_name, Templates};
use crate::config::secrets::read_secret;
use crate::config::{Config, EmailConfig, SmtpConfig, SmtpTls};
use crate::paging::Page;

/// The email notifier, built from `notifiers.email`.
pub struct Mailer {
    /// The `From` address, or why it cannot be used.
    from: Result<Mailbox, String>,
    transport: Transport,
}

enum Transport {
    Smtp(Smtp),
    /// One `.eml` file per page in this folder.
    File(PathBuf),
    /// Neither `smtp:` nor `file:` (the config check refuses this; kept for safety).
    None,
}

struct Smtp {
    /// `host:port`, for messages.
    server: String,
    timeout: Duration,
    /// The transport, or why it could not be built (e.g. an unreadable password file).
    transport: Result<AsyncSmtpTransport<Tokio1Executor>, String>,
}

impl Mailer {
    pub fn new(config: &Config, email: &EmailConfig) -> Mailer {
        let from = email.from.parse::<Mailbox>().map_err(|e| {
            format!(
                "notifiers.email.from {:?} is not an address: {e}",
                email.from
            )
        });
        let transport = match (&email.smtp, &email.file) {
            (Some(smtp), _) => Transport::Smtp(Smtp::new(config, smtp)),
            (None, Some(file)) => Transport::File(config.resolve_path(&file.dir)),
            (None, None) => Transport::None,
        };
        Mailer { from, transport }
    }

    /// Send one page; the error says whether it is worth another attempt.
    pub async fn send(&self, page: &Page, templates: &Templates) -> Result<(), NotifyError> {
        let to = page.recipient.address.clone();
        let message = self.message(page, templates)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(&to, &message).await,
            Transport::File(dir) => write_eml(dir, &to, &page.delivery_id, &message).await,
            Transport::None => Err(NotifyError::NoEmailNotifier { to }),
        }
    }

    /// The message: `[Sev N] title`, text and HTML parts, a Message-ID and Date that stay the
    /// same on every retry (so a mail client shows a re-sent page once).
    pub fn message(&self, page: &Page, templates: &Templates) -> Result<Message, NotifyError> {
        let to_text = page.recipient.address.clone();
        let from = self.from.clone().map_err(|reason| NotifyError::Config {
            notifier: "email".into(),
            reason,
        })?;
        let to: Mailbox = to_text
            .parse()
            .map_err(
                |e: lettre::address::AddressError| NotifyError::InvalidAddress {
                    to: to_text.clone(),
                    reason: e.to_string(),
                },
            )?;
        let (text, html) = render::bodies(&page.payload, &page.delivery_id).map_err(|reason| {
            NotifyError::Message {
                to: to_text.clone(),
                reason,
            }
        })?;
        let own = |part: &str| {
            let rendered = templates.render(&email_name(part), &page.payload, &page.delivery_id)?;
            rendered
                .map_err(|error| {
                    tracing::error!(%error, "email template failed; the built-in part is sent");
                })
                .ok()
        };
        let text = own("text").unwrap_or(text);
        let html = own("html").unwrap_or(html);
        // A header holds one line.
        let subject = own("subject")
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| render::subject(&page.payload));
        let domain = from.email.domain().to_string();
        let mut builder = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .date(page.created_at.into())
            .message_id(Some(format!("<{}@{domain}>", page.delivery_id)));
        for (name, value) in [
            ("X-Tocsin-Event", page.event.as_str().to_string()),
            ("X-Tocsin-Delivery", page.delivery_id.clone()),
            ("X-Tocsin-Incident", page.incident_id.to_string()),
        ] {
            builder = builder.raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str(name),
                value,
            ));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| NotifyError::Message {
                to: to_text,
                reason: e.to_string(),
            })
    }
}

impl Smtp {
    fn new(config: &Config, smtp: &SmtpConfig) -> Smtp {
        let port = smtp.port.unwrap_or(match smtp.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        Smtp {
            server: format!("{}:{port}", smtp.host),
            timeout: smtp.timeout.std(),
            transport: build_transport(config, smtp, port),
        }
    }

    async fn send(&self, to: &str, message: &Message) -> Result<(), NotifyError> {
        let transport = self
            .transport
            .as_ref()
            .map_err(|reason| NotifyError::Config {
                notifier: format!("email (SMTP server {})", self.server),
                reason: reason.clone(),
            })?;
        // lettre's timeout bounds each command; this bounds the whole conversation, so one
        // attempt takes at most `timeout`.
        match tokio::time::timeout(self.timeout, transport.send(message.clone())).await {
            Err(_) => Err(NotifyError::SmtpTimeout {
                to: to.to_string(),
                server: self.server.clone(),
                timeout: self.timeout,
            }),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, to, &self.server)),
        }
    }
}

fn build_transport(
    config: &Config,
    smtp: &SmtpConfig,
    port: u16,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        // Required, not Opportunistic: a server that does not offer STARTTLS gets nothing,
        // neither credentials nor the page, rather than a silent downgrade to plain text.
        SmtpTls::Starttls => Tls::Required(tls_parameters(config, smtp)?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(config, smtp)?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(smtp.timeout.std()));
    if let Some(username) = &smtp.username {
        let password = password(config, smtp)?;
        builder = builder.credentials(Credentials::new(username.clone(), password));
    } else if smtp.password_file.is_some() || smtp.password_env.is_some() {
        return Err("a password is set but no username: set notifiers.email.smtp.username".into());
    }
    Ok(builder.build())
}

/// Whom to trust: the Mozilla roots, or only the CAs of `ca_file` (as a probe's
/// `tls.ca_file`: they replace the roots, they do not add to them).
fn tls_parameters(config: &Config, smtp: &SmtpConfig) -> Result<TlsParameters, String> {
    let host = &smtp.host;
    let mut builder = TlsParameters::builder(host.clone());
    if let Some(file) = &smtp.ca_file {
        let path = config.resolve_path(file);
        let pem = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read notifiers.email.smtp.ca_file {}: {e}",
                path.display()
            )
        })?;
        let blocks = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
        let certificate = match blocks {
            Ok(blocks) if !blocks.is_empty() => Certificate::from_pem(&pem).ok(),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "notifiers.email.smtp.ca_file {} holds no CA certificate \
                 (expected PEM \"CERTIFICATE\" blocks)",
                path.display()
            )
        })?;
        builder = builder
            .certificate_store(CertificateStore::None)
            .add_root_certificate(certificate);
    }
    builder
        .build()
        .map_err(|e| format!("TLS setup for {host}: {}", chain(&e)))
}

/// The SMTP password: `password_file` (without its trailing newline) or `password_env`.
fn password(config: &Config, smtp: &SmtpConfig) -> Result<String, String> {
    if let Some(file) = &smtp.password_file {
        let path = config.resolve_path(file);
        let bytes = read_secret(&path).map_err(|e| e.to_string())?;
        return String::from_utf8(bytes)
            .map_err(|_| format!("password file {} is not UTF-8", path.display()));
    }
    if let Some(var) = &smtp.password_env {
        return std::env::var(var)
            .map_err(|_| format!("environment variable {var} (password_env) is not set"));
    }
    Err("notifiers.email.smtp.username is set but neither password_file nor password_env".into())
}

/// Sort a lettre error into final or retryable, with a message an operator can act on.
fn classify(error: &lettre::transport::smtp::Error, to: &str, server: &str) -> NotifyError {
    let reason = chain(error);
    if error.is_client() && reason.contains("STARTTLS") {
        return NotifyError::StartTlsUnavailable {
            to: to.to_string(),
            server: server.to_string(),
        };
    }
    if error.is_permanent() {
        // 530/534/535/538 are about authentication or encryption: a config mistake that a
        // reload can fix, so keep the page. Other 5xx (unknown mailbox, policy) are final.
        let auth = error
            .status()
            .map(|code| code.to_string())
            .is_some_and(|code| matches!(code.as_str(), "530" | "534" | "535" | "538"));
        if !auth {
            return NotifyError::SmtpPermanent {
                to: to.to_string(),
                reason,
            };
        }
    }
    NotifyError::Smtp {
        to: to.to_string(),
        server: server.to_string(),
        reason,
    }
}

/// A write to the outbox folder that takes longer than this (a hung network filesystem)
/// counts as a failed attempt, so it does not hold an attempt slot forever.
const FILE_TIMEOUT: Duration = Duration::from_secs(30);

/// Write the message as `DIR/<delivery id>.eml`: a retry rewrites the same file instead of
/// adding a second one, and the rename makes the file appear whole or not at all.
async fn write_eml(
    dir: &std::path::Path,
    to: &str,
    delivery_id: &str,
    message: &Message,
) -> Result<(), NotifyError> {
    let path = dir.join(format!("{delivery_id}.eml"));
    let fail = |e: std::io::Error| NotifyError::File {
        to: to.to_string(),
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let partial = dir.join(format!(".{delivery_id}.eml.partial"));
    let write = async {
        tokio::fs::create_dir_all(dir).await?;
        tokio::fs::write(&partial, message.formatted()).await?;
        tokio::fs::rename(&partial, &path).await
    };
    match tokio::time::timeout(FILE_TIMEOUT, write).await {
        Ok(result) => result.map_err(fail),
        Err(_) => Err(fail(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("not written within {FILE_TIMEOUT:?}"),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as ConfigDuration;

    fn smtp(tls: SmtpTls) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: None,
            tls,
            username: None,
            password_file: None,
            password_env: None,
            timeout: ConfigDuration::from_secs(5),
            ca_file: None,
        }
    }

    fn config(dir: &std::path::Path) -> Config {
        let path = dir.join("config.yaml");
        std::fs::write(
            &path,
            "notifiers: { email: { from: t@example.com, file: { dir: out } } }\n",
        )
        .unwrap();
        crate::config::load(&path).expect("test config loads")
    }

    #[test]
    fn default_ports_follow_the_tls_mode() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        assert_eq!(Smtp::new(&c, &smtp(SmtpTls::None)).server, "127.0.0.1:25");
        assert_eq!(
            Smtp::new(&c, &smtp(SmtpTls::Starttls)).server,
            "127.0.0.1:587"
        );
        assert_eq!(Smtp::new(&c, &smtp(SmtpTls::Tls)).server, "127.0.0.1:465");
    }

    #[test]
    fn password_from_file_without_newline_or_from_env() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        std::fs::write(dir.path().join("pw"), "hunter2\n").unwrap();
        let mut s = smtp(SmtpTls::None);
        s.username = Some("tocsin".into());
        s.password_file = Some("pw".into());
        assert_eq!(password(&c, &s).unwrap(), "hunter2");
        s.password_file = None;
        s.password_env = Some("TOCSIN_TEST_SMTP_PASSWORD_UNSET".into());
        let err = password(&c, &s).unwrap_err();
        assert!(err.contains("TOCSIN_TEST_SMTP_PASSWORD_UNSET"), "{err}");
        s.password_env = None;
        assert!(build_transport(&c, &s, 25).is_err());
        // A missing password file is an error that names the file, not the password.
        s.password_file = Some("missing".into());
        let err = build_transport(&c, &s, 25).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn a_ca_file_missing_or_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let mut s = smtp(SmtpTls::Starttls);
        s.ca_file = Some("absent.pem".into());
        let err = build_transport(&c, &s, 587).err().unwrap();
        assert!(err.contains("notifiers.email.smtp.ca_file"), "{err}");
        assert!(err.contains("absent.pem"), "{err}");
        std::fs::write(dir.path().join("empty.pem"), "no PEM here\n").unwrap();
        s.ca_file = Some("empty.pem".into());
        let err = build_transport(&c, &s, 587).err().unwrap();
        assert!(err.contains("empty.pem holds no CA certificate"), "{err}");
        // Plain SMTP reads no ca_file.
        s.tls = SmtpTls::None;
        assert!(build_transport(&c, &s, 25).is_ok());
    }
}
