//! The paging sections' checks for `validate`: responders, schedules, time windows,
//! escalation policies, routes, silences and notifiers, and what they name of each other.

use super::locate::Path;
use super::report::FileReport;
use super::validate::{check_case_routes, check_target, unique, unknown};
use super::{Config, NotifyStep, ResponderConfig, TsgConfig, WebhookFormat};

pub(super) fn check_paging(config: &Config, report: &mut FileReport) {
    let root = Path::root();
    let responders = root.key("responders");
    unique(
        report,
        &responders,
        "responder",
        config.responders.iter().map(|r| r.id.as_str()),
    );
    let webhooks = root.key("notifiers").key("webhooks");
    unique(
        report,
        &webhooks,
        "webhook",
        config.notifiers.webhooks.iter().map(|w| w.name.as_str()),
    );
    for (i, hook) in config.notifiers.webhooks.iter().enumerate() {
        check_headers(report, webhooks.index(i).key("headers"), &hook.headers);
        if !(hook.url.starts_with("http://") || hook.url.starts_with("https://"))
            || reqwest::Url::parse(&hook.url).is_err()
        {
            report.at(
                webhooks.index(i).key("url"),
                format!("invalid url {:?}: expected http:// or https://", hook.url),
            );
        }
        let at = webhooks.index(i);
        let format = hook.format.as_str();
        match (hook.format, &hook.topic) {
            (WebhookFormat::Ntfy, None) => report.at(
                at.key("format"),
                "format: ntfy needs topic: (the ntfy topic to publish to)",
            ),
            (WebhookFormat::Ntfy, Some(topic)) if !valid_ntfy_topic(topic) => report.at(
                at.key("topic"),
                format!("invalid topic {topic:?}: expected 1 to 64 of [A-Za-z0-9_-]"),
            ),
            (WebhookFormat::Ntfy, Some(_)) | (_, None) => {}
            (_, Some(_)) => report.at(
                at.key("topic"),
                format!("topic: is for format: ntfy, not format: {format}"),
            ),
        }
        match (hook.format, &hook.routing_key_file) {
            (WebhookFormat::Pagerduty, None) => report.at(
                at.key("format"),
                "format: pagerduty needs routing_key_file: (a file holding the Events API v2 \
                 integration key)",
            ),
            (WebhookFormat::Pagerduty, Some(_)) | (_, None) => {}
            (_, Some(_)) => report.at(
                at.key("routing_key_file"),
                format!("routing_key_file: is for format: pagerduty, not format: {format}"),
            ),
        }
    }
    for (i, responder) in config.responders.iter().enumerate() {
        let at = report.item(&responders, i);
        if let Some(hook) = &responder.webhook {
            if config.webhook(hook).is_none() && !report.is_broken("notifiers.webhooks", hook) {
                report.at(
                    at.key("webhook"),
                    unknown("webhook", hook, "notifiers.webhooks"),
                );
            }
        }
        if let Some(email) = &responder.email {
            if !email.contains('@') {
                report.at(at.key("email"), format!("invalid email address {email:?}"));
            } else if config.notifiers.email.is_none() {
                report.at(
                    at.key("email"),
                    format!(
                        "responder {:?} has an email address but notifiers.email is not configured",
                        responder.id
                    ),
                );
            }
        }
        if let Some(steps) = &responder.notify {
            check_notify_steps(report, at.key("notify"), responder, steps);
        }
        if responder.email.is_none() && responder.webhook.is_none() {
            report.at(
                at,
                format!(
                    "responder {:?} has neither email nor webhook: they cannot be paged",
                    responder.id
                ),
            );
        }
    }
    if let Some(email) = &config.notifiers.email {
        let at = root.key("notifiers").key("email");
        match (&email.smtp, &email.file) {
            (Some(_), Some(_)) => report.at(at.key("file"), "set either smtp or file, not both"),
            (None, None) => report.at(at.clone(), "notifiers.email needs smtp: or file:"),
            _ => {}
        }
        if !email.from.contains('@') {
            report.at(
                at.key("from"),
                format!("invalid from address {:?}", email.from),
            );
        }
        if let Some(smtp) = &email.smtp {
            let at = at.key("smtp");
            let password = smtp.password_file.is_some() || smtp.password_env.is_some();
            if smtp.password_file.is_some() && smtp.password_env.is_some() {
                report.at(
                    at.key("password_env"),
                    "set either password_file or password_env, not both",
                );
            } else if smtp.username.is_some() && !password {
                report.at(
                    at.key("username"),
                    "a username needs a password: set password_file or password_env",
                );
            } else if smtp.username.is_none() && password {
                let key = match smtp.password_file {
                    Some(_) => "password_file",
                    None => "password_env",
                };
                report.at(
                    at.key(key),
                    "a password needs a username: set notifiers.email.smtp.username",
                );
            }
        }
    }
    let retry = &config.notifiers.retry;
    if retry.initial_backoff.is_zero() || retry.initial_backoff > retry.max_backoff {
        report.at(
            root.key("notifiers").key("retry").key("initial_backoff"),
            "initial_backoff must be above 0s and no longer than max_backoff",
        );
    }

    let schedules = root.key("schedules");
    unique(
        report,
        &schedules,
        "schedule",
        config.schedules.iter().map(|s| s.name.as_str()),
    );
    for (i, schedule) in config.schedules.iter().enumerate() {
        let at = report.item(&schedules, i);
        if schedule.participants.is_empty() {
            report.at(
                at.key("participants"),
                "a schedule needs at least one participant",
            );
        }
        for (j, who) in schedule.participants.iter().enumerate() {
            if config.responder(who).is_none() && !report.is_broken("responders", who) {
                report.at(
                    at.key("participants").index(j),
                    unknown("responder", who, "responders"),
                );
            }
        }
        for (j, o) in schedule.overrides.iter().enumerate() {
            let at = at.key("overrides").index(j);
            if config.responder(&o.responder).is_none()
                && !report.is_broken("responders", &o.responder)
            {
                report.at(
                    at.key("responder"),
                    unknown("responder", &o.responder, "responders"),
                );
            }
            if o.start >= o.end {
                report.at(at.key("end"), "an override must end after it starts");
            }
        }
    }
    let windows = root.key("time_windows");
    unique(
        report,
        &windows,
        "time window",
        config.time_windows.iter().map(|w| w.name.as_str()),
    );
    for (i, window) in config.time_windows.iter().enumerate() {
        if window.duration.is_zero() {
            report.at(
                report.item(&windows, i).key("duration"),
                "duration must be longer than 0s",
            );
        }
    }
    let policies = root.key("escalation_policies");
    unique(
        report,
        &policies,
        "escalation policy",
        config.escalation_policies.iter().map(|p| p.name.as_str()),
    );
    for (i, policy) in config.escalation_policies.iter().enumerate() {
        let at = report.item(&policies, i);
        if policy.levels.is_empty() {
            report.at(
                at.key("levels"),
                "an escalation policy needs at least one level",
            );
        }
        if policy.ack_timeout.is_some_and(|d| d.is_zero()) {
            report.at(at.key("ack_timeout"), "ack_timeout must be longer than 0s");
        }
        for (j, level) in policy.levels.iter().enumerate() {
            let at = at.key("levels").index(j);
            if level.notify.is_empty() {
                report.at(
                    at.key("notify"),
                    "a level needs at least one target to notify",
                );
            }
            for (k, target) in level.notify.iter().enumerate() {
                if let Err(message) = check_target(config, report, target) {
                    report.at(at.key("notify").index(k), message);
                }
            }
        }
    }
    let routes = root.key("routes");
    for (i, route) in config.routes.iter().enumerate() {
        let at = report.item(&routes, i);
        match (&route.policy, &route.queue) {
            (Some(_), Some(_)) => report.at(
                at.key("queue"),
                "a route takes either policy or queue, not both",
            ),
            (None, None) => report.at(
                at.clone(),
                "a route needs policy: (page) or queue: (triage queue)",
            ),
            (Some(policy), None)
                if config.policy(policy).is_none()
                    && !report.is_broken("escalation_policies", policy) =>
            {
                report.at(
                    at.key("policy"),
                    unknown("escalation policy", policy, "escalation_policies"),
                )
            }
            _ => {}
        }
        for (j, window) in route.active_during.iter().enumerate() {
            if config.window(window).is_none() && !report.is_broken("time_windows", window) {
                report.at(
                    at.key("active_during").index(j),
                    unknown("time window", window, "time_windows"),
                );
            }
        }
    }
    check_case_routes(config, report, &root);
    let silences = root.key("silences");
    for (i, silence) in config.silences.iter().enumerate() {
        if let Some(window) = &silence.window {
            if config.window(window).is_none() && !report.is_broken("time_windows", window) {
                report.at(
                    report.item(&silences, i).key("window"),
                    unknown("time window", window, "time_windows"),
                );
            }
        }
    }
}

/// Request headers are valid HTTP: a bad one would fail every probe run or every page.
/// A value is never shown: it may be a credential.
pub(super) fn check_headers(
    report: &mut FileReport,
    at: Path,
    headers: &std::collections::BTreeMap<String, String>,
) {
    for (name, value) in headers {
        if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            report.at_key(
                at.key(name),
                format!(
                    "invalid header name {name:?}: expected letters, digits and - (e.g. \
                     X-Api-Key)"
                ),
            );
        } else if reqwest::header::HeaderValue::from_str(value).is_err() {
            report.at(
                at.key(name),
                format!(
                    "the value of header {name:?} is not valid in HTTP: no line breaks or \
                     control characters"
                ),
            );
        }
    }
}

/// An ntfy topic name, as ntfy accepts it.
fn valid_ntfy_topic(topic: &str) -> bool {
    (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A responder's notification rules: each step through a channel the person has, none twice.
fn check_notify_steps(
    report: &mut FileReport,
    at: Path,
    responder: &ResponderConfig,
    steps: &[NotifyStep],
) {
    let id = &responder.id;
    let channels = responder.channels();
    if steps.is_empty() {
        report.at(
            at.clone(),
            format!(
                "{at}: no steps, so {id} would never be paged; leave notify: out to reach {id} \
                 on every channel at once"
            ),
        );
    }
    for (j, step) in steps.iter().enumerate() {
        let via = at.index(j).key("via");
        if !channels.contains(&step.via) {
            let has = if channels.is_empty() {
                "none".to_string()
            } else {
                channels.join(", ")
            };
            report.at(
                via.clone(),
                format!(
                    "{via}: {id} has no channel {:?}; {id} has {has} (a step's via is email or \
                     webhook:NAME, one of the responder's own)",
                    step.via
                ),
            );
        }
        if steps[..j].contains(step) {
            report.at(
                at.index(j),
                format!(
                    "{}: the same step twice (after {}, via {})",
                    at.index(j),
                    step.after,
                    step.via
                ),
            );
        }
    }
}

/// A TSG (of a catalog service or a rule) at `at`: its URL is a web link, and its action
/// names a webhook of `notifiers.webhooks` that sends tocsin's own signed body.
pub(super) fn check_tsg(config: &Config, report: &mut FileReport, at: Path, tsg: &TsgConfig) {
    if !(tsg.url.starts_with("http://") || tsg.url.starts_with("https://")) {
        report.at(
            at.key("url"),
            format!("invalid url {:?}: expected http:// or https://", tsg.url),
        );
    }
    let Some(action) = &tsg.action else {
        return;
    };
    let at = at.key("action");
    match config.webhook(&action.webhook) {
        None if report.is_broken("notifiers.webhooks", &action.webhook) => {}
        None => report.at(
            at.key("webhook"),
            unknown("webhook", &action.webhook, "notifiers.webhooks"),
        ),
        Some(hook) if hook.format != WebhookFormat::Tocsin || hook.template.is_some() => report.at(
            at.key("webhook"),
            format!(
                "webhook {:?} sends format: {}{}: a TSG action needs tocsin's own body \
                     (format: tocsin, no template), which names the report-back URL",
                action.webhook,
                hook.format.as_str(),
                if hook.template.is_some() {
                    " with a template"
                } else {
                    ""
                }
            ),
        ),
        Some(_) => {}
    }
    if action.timeout.is_zero() {
        report.at(
            at.key("timeout"),
            "timeout must be more than 0s: the action's time to report back",
        );
    }
}
