//! Checks that need the whole config: references between sections, duplicate names, and
//! values that parse but make no sense together. Pure: no I/O.

use std::collections::HashMap;

use super::locate::Path;
use super::report::FileReport;
use super::{Config, ProbeKind, WebhookFormat};

pub(super) fn validate(config: &Config, report: &mut FileReport, rule_reports: &mut [FileReport]) {
    let root = Path::root();
    check_server_and_store(config, report);
    check_catalog(config, report);

    let probes = root.key("probes");
    unique(
        report,
        &probes,
        "probe",
        config.probes.iter().map(|p| p.name.as_str()),
    );
    for (i, probe) in config.probes.iter().enumerate() {
        let at = report.item(&probes, i);
        if probe.interval.is_zero() {
            report.at(at.key("interval"), "interval must be longer than 0s");
        }
        if probe.timeout >= probe.interval {
            report.at(
                at.key("timeout"),
                format!(
                    "timeout {} must be shorter than the interval {} of probe {:?}",
                    probe.timeout, probe.interval, probe.name
                ),
            );
        }
        let scheme_ok = match probe.kind {
            ProbeKind::Http => {
                probe.url.starts_with("http://") || probe.url.starts_with("https://")
            }
            ProbeKind::Tcp => probe.url.starts_with("tcp://"),
        };
        if !scheme_ok {
            let expected = match probe.kind {
                ProbeKind::Http => "an http:// or https:// URL",
                ProbeKind::Tcp => "a tcp://host:port URL",
            };
            report.at(
                at.key("url"),
                format!("invalid url {:?}: expected {expected}", probe.url),
            );
        } else if reqwest::Url::parse(&probe.url)
            .map(|u| u.host().is_none())
            .unwrap_or(true)
        {
            report.at(
                at.key("url"),
                format!("invalid url {:?}: no host", probe.url),
            );
        }
        check_headers(report, at.key("headers"), &probe.headers);
        if let Some(method) = &probe.method {
            if reqwest::Method::from_bytes(method.as_bytes()).is_err() {
                report.at(at.key("method"), format!("invalid HTTP method {method:?}"));
            }
        }
    }
    if config.probing.max_in_flight == 0 {
        report.at(
            root.key("probing").key("max_in_flight"),
            "max_in_flight must be at least 1",
        );
    }

    let sources = root.key("sources");
    let pull_names = config
        .sources
        .prometheus
        .iter()
        .map(|s| s.name.as_str())
        .chain(config.sources.alertmanager.iter().map(|s| s.name.as_str()));
    let mut pull_paths = Vec::new();
    for (kind, list) in [
        ("prometheus", &config.sources.prometheus),
        ("alertmanager", &config.sources.alertmanager),
    ] {
        for (i, source) in list.iter().enumerate() {
            let at = report.item(&sources.key(kind), i);
            pull_paths.push(at.key("name"));
            if source.timeout >= source.interval {
                report.at(
                    at.key("timeout"),
                    format!(
                        "timeout {} must be shorter than the interval {} of source {:?}",
                        source.timeout, source.interval, source.name
                    ),
                );
            }
            if !(source.url.starts_with("http://") || source.url.starts_with("https://")) {
                report.at(
                    at.key("url"),
                    format!("invalid url {:?}: expected http:// or https://", source.url),
                );
            }
        }
    }
    unique_at(report, pull_paths, "source", pull_names);

    let heartbeats = root.key("heartbeats");
    unique(
        report,
        &heartbeats,
        "heartbeat",
        config.heartbeats.iter().map(|h| h.name.as_str()),
    );
    for (i, hb) in config.heartbeats.iter().enumerate() {
        if hb.every.is_zero() {
            report.at(
                report.item(&heartbeats, i).key("every"),
                "every must be longer than 0s",
            );
        }
    }

    if config.correlation.by.is_empty() {
        report.at(
            root.key("correlation").key("by"),
            "correlation.by needs at least one label name",
        );
    }
    let classification = root.key("classification");
    for (name, value) in [
        ("major_customers", config.classification.major_customers),
        ("multi_regions", config.classification.multi_regions),
        ("multi_services", config.classification.multi_services),
    ] {
        if value == 0 {
            report.at(
                classification.key(name),
                format!("{name} must be at least 1"),
            );
        }
    }

    check_paging(config, report);
    check_rules(config, rule_reports);
}

fn check_server_and_store(config: &Config, report: &mut FileReport) {
    let server = Path::root().key("server");
    if config
        .server
        .listen
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        report.at(
            server.key("listen"),
            format!(
                "invalid listen address {:?}: expected host:port such as 127.0.0.1:9470",
                config.server.listen
            ),
        );
    }
    if let Some(url) = &config.server.external_url {
        if reqwest::Url::parse(url).is_err() || !url.starts_with("http") {
            report.at(
                server.key("external_url"),
                format!("invalid external_url {url:?}: expected an http(s) URL"),
            );
        }
    }
    if let Some(watchdog) = &config.watchdog {
        let at = Path::root().key("watchdog");
        let url = &watchdog.url;
        if reqwest::Url::parse(url).is_err() || !url.starts_with("http") {
            report.at(
                at.key("url"),
                format!("invalid watchdog url {url:?}: expected an http(s) URL"),
            );
        }
        if watchdog.every < crate::config::Duration::from_secs(1) {
            report.at(
                at.key("every"),
                format!(
                    "watchdog every {} is too short: at least 1s (e.g. 1m)",
                    watchdog.every
                ),
            );
        }
    }
    if config.store.lease < crate::config::Duration::from_secs(1) {
        report.at(
            Path::root().key("store").key("lease"),
            format!(
                "lease {} is too short: at least 1s (renewals happen every fifth of it)",
                config.store.lease
            ),
        );
    }
    if config.store.retention < crate::config::Duration::from_secs(24 * 3600) {
        report.at(
            Path::root().key("store").key("retention"),
            format!(
                "retention {} is too short: at least 1d (incidents resolved longer ago are removed)",
                config.store.retention
            ),
        );
    }
    let rate = &config.server.rate_limit;
    let rate_path = server.key("rate_limit");
    if !(rate.per_client.is_finite() && rate.per_client > 0.0) {
        report.at(
            rate_path.key("per_client"),
            format!(
                "invalid per_client {}: expected requests per second per client, more than 0 \
                 (e.g. 100)",
                rate.per_client
            ),
        );
    }
    if rate.burst == 0 {
        report.at(
            rate_path.key("burst"),
            "invalid burst 0: expected how many requests a client may make at once, at least 1",
        );
    }
    let url = &config.store.url;
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://"))
    {
        report.at(
            Path::root().key("store").key("url"),
            format!("invalid store url {url:?}: expected sqlite://PATH or postgres://…"),
        );
    }
}

fn check_catalog(config: &Config, report: &mut FileReport) {
    let catalog = Path::root().key("catalog");
    let services = catalog.key("services");
    unique(
        report,
        &services,
        "service",
        config.catalog.services.iter().map(|s| s.name.as_str()),
    );
    for (i, service) in config.catalog.services.iter().enumerate() {
        for (j, name) in service.depends_on.iter().enumerate() {
            let at = report.item(&services, i).key("depends_on").index(j);
            if name == &service.name {
                report.at(at, format!("service {name:?} cannot depend on itself"));
            } else if !config.catalog.services.iter().any(|s| &s.name == name) {
                report.at(
                    at,
                    format!("unknown service {name:?}: not in catalog.services"),
                );
            }
        }
    }
    let customers = catalog.key("customers");
    unique(
        report,
        &customers,
        "customer",
        config.catalog.customers.iter().map(|c| c.id.as_str()),
    );
    for (i, customer) in config.catalog.customers.iter().enumerate() {
        for (j, sub) in customer.subscriptions.iter().enumerate() {
            let at = report.item(&customers, i).key("subscriptions").index(j);
            let Some(service) = config
                .catalog
                .services
                .iter()
                .find(|s| s.name == sub.service)
            else {
                report.at(
                    at.key("service"),
                    format!("unknown service {:?}: not in catalog.services", sub.service),
                );
                continue;
            };
            for (k, region) in sub.regions.iter().enumerate() {
                if !service.regions.is_empty() && !service.regions.contains(region) {
                    report.at(
                        at.key("regions").index(k),
                        format!(
                            "service {:?} does not run in region {region:?}; its regions are {}",
                            service.name,
                            service.regions.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

fn check_paging(config: &Config, report: &mut FileReport) {
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
fn check_headers(
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

/// A notify target: `responder:ID`, `schedule:NAME` or `webhook:NAME`.
fn check_target(config: &Config, report: &FileReport, target: &str) -> Result<(), String> {
    let known = |exists: bool, list: &str, name: &str| exists || report.is_broken(list, name);
    match target.split_once(':') {
        Some(("responder", id)) if known(config.responder(id).is_some(), "responders", id) => {
            Ok(())
        }
        Some(("responder", id)) => Err(unknown("responder", id, "responders")),
        Some(("schedule", name)) if known(config.schedule(name).is_some(), "schedules", name) => {
            Ok(())
        }
        Some(("schedule", name)) => Err(unknown("schedule", name, "schedules")),
        Some(("webhook", name))
            if known(config.webhook(name).is_some(), "notifiers.webhooks", name) =>
        {
            Ok(())
        }
        Some(("webhook", name)) => Err(unknown("webhook", name, "notifiers.webhooks")),
        _ => Err(format!(
            "invalid target {target:?}: expected responder:ID, schedule:NAME or webhook:NAME"
        )),
    }
}

fn unknown(kind: &str, name: &str, section: &str) -> String {
    format!("unknown {kind} {name:?}: not defined in {section}")
}

fn unique<'a>(
    report: &mut FileReport,
    list: &Path,
    kind: &str,
    names: impl Iterator<Item = &'a str>,
) {
    let names: Vec<&str> = names.collect();
    let paths: Vec<Path> = (0..names.len()).map(|i| report.item(list, i)).collect();
    let field = if kind == "responder" || kind == "customer" {
        "id"
    } else {
        "name"
    };
    unique_at(
        report,
        paths
            .into_iter()
            .take(names.len())
            .map(|p| p.key(field))
            .collect(),
        kind,
        names.into_iter(),
    );
}

fn unique_at<'a>(
    report: &mut FileReport,
    paths: Vec<Path>,
    kind: &str,
    names: impl Iterator<Item = &'a str>,
) {
    let mut seen: HashMap<&str, Path> = HashMap::new();
    for (name, path) in names.zip(paths) {
        if let Some(first) = seen.get(name) {
            let (line, column) = report.position(first, false);
            report.at(
                path,
                format!(
                    "duplicate {kind} {name:?} (first defined at line {line}, column {column})"
                ),
            );
        } else {
            seen.insert(name, path);
        }
    }
}

fn check_rules(config: &Config, rule_reports: &mut [FileReport]) {
    let mut first_seen: HashMap<&str, (usize, Path)> = HashMap::new();
    let env = minijinja::Environment::new();
    for loaded in &config.rules {
        let Some(file_index) = rule_reports.iter().position(|r| r.file == loaded.file) else {
            continue;
        };
        let (g, r) = loaded.index;
        let at = Path::root().key("groups").index(g).key("rules").index(r);
        let rule = &loaded.rule;
        if let Some((other_file, other_path)) = first_seen.get(rule.name.as_str()) {
            let other = &rule_reports[*other_file];
            let (line, column) = other.position(other_path, false);
            let message = format!(
                "duplicate rule name {:?} (first defined at {}:{line}:{column})",
                rule.name,
                other.file.display()
            );
            rule_reports[file_index].at(at.key("name"), message);
        } else {
            first_seen.insert(&rule.name, (file_index, at.key("name")));
        }
        let report = &mut rule_reports[file_index];
        if rule.for_.is_some() && rule.failures.is_some() {
            report.at(
                at.key("failures"),
                "set either for: (a duration) or failures: (a count), not both",
            );
        }
        if rule.clear_for.is_some() && rule.successes.is_some() {
            report.at(
                at.key("successes"),
                "set either clear_for: (a duration) or successes: (a count), not both",
            );
        }
        if rule.failures == Some(0) {
            report.at(at.key("failures"), "failures must be at least 1");
        }
        if rule.successes == Some(0) {
            report.at(at.key("successes"), "successes must be at least 1");
        }
        for key in rule.labels.keys() {
            if !is_label_name(key) {
                report.at_key(
                    at.key("labels").key(key),
                    format!("invalid label name {key:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"),
                );
            }
        }
        for (name, template) in &rule.annotations {
            if !is_label_name(name) {
                report.at_key(
                    at.key("annotations").key(name),
                    format!("invalid annotation name {name:?}: expected [a-zA-Z_][a-zA-Z0-9_]*"),
                );
            } else if let Err(e) = env.template_from_str(template) {
                report.at(
                    at.key("annotations").key(name),
                    format!(
                        "invalid annotation template: {}",
                        e.detail().unwrap_or("syntax error")
                    ),
                );
            }
        }
        if let Some(summary) = &rule.summary {
            if let Err(e) = env.template_from_str(summary) {
                report.at(
                    at.key("summary"),
                    format!(
                        "invalid summary template: {}",
                        e.detail().unwrap_or("syntax error")
                    ),
                );
            }
        }
    }
    // Group names repeat across files freely, but not within one.
    for report in rule_reports.iter_mut() {
        let mut groups: Vec<(usize, &str)> = config
            .rules
            .iter()
            .filter(|r| r.file == report.file)
            .map(|r| (r.index.0, r.group.as_str()))
            .collect();
        groups.dedup();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut dups = Vec::new();
        for (index, name) in groups {
            match seen.get(name) {
                Some(first) if *first != index => dups.push((index, name.to_string(), *first)),
                _ => {
                    seen.insert(name, index);
                }
            }
        }
        for (index, name, first) in dups {
            let (line, column) =
                report.position(&Path::root().key("groups").index(first).key("name"), false);
            report.at(
                Path::root().key("groups").index(index).key("name"),
                format!(
                    "duplicate group name {name:?} (first defined at line {line}, column {column})"
                ),
            );
        }
    }
}

pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `case_routes:` page support: each names a policy (a case has no triage queue) and only
/// the labels a case carries.
fn check_case_routes(config: &Config, report: &mut FileReport, root: &Path) {
    let routes = root.key("case_routes");
    for (i, route) in config.case_routes.iter().enumerate() {
        let at = report.item(&routes, i);
        if route.queue.is_some() {
            report.at(
                at.key("queue"),
                "a case route pages a policy: cases do not go to triage queues",
            );
        }
        match &route.policy {
            None => report.at(
                at.clone(),
                "a case route needs policy: (the policy to page)",
            ),
            Some(policy)
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
        for (j, matcher) in route.matchers.iter().enumerate() {
            if !CASE_LABELS.contains(&matcher.name.as_str()) {
                report.at(
                    at.key("match").index(j),
                    format!(
                        "a case has no label {:?}: case routes match {}",
                        matcher.name,
                        CASE_LABELS.join(", ")
                    ),
                );
            }
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
}

/// The labels a case is routed by.
const CASE_LABELS: [&str; 4] = ["sr_severity", "customer", "service", "region"];
