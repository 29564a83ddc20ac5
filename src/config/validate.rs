//! Checks that need the whole config: references between sections, duplicate names, and
//! values that parse but make no sense together. Pure: no I/O.

use std::collections::HashMap;

use super::locate::Path;
use super::report::FileReport;
use super::validate_paging::check_headers;
use super::{Config, ProbeKind};

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

    let burn = classification.key("sla").key("burn");
    for (name, value) in [
        ("fast", config.classification.sla.burn.fast),
        ("slow", config.classification.sla.burn.slow),
    ] {
        if !(value.is_finite() && value > 0.0) {
            report.at(
                burn.key(name),
                format!("invalid burn rate {value}: expected a number above 0 (such as 14.4)"),
            );
        }
    }
    let services = root.key("catalog").key("services");
    for (i, service) in config.catalog.services.iter().enumerate() {
        if let Some(sla) = service
            .sla
            .filter(|s| !(s.is_finite() && *s > 0.0 && *s < 100.0))
        {
            report.at(
                report.item(&services, i).key("sla"),
                format!(
                    "invalid sla {sla}: expected a percentage above 0 and below 100 (such as 99.9)"
                ),
            );
        }
    }

    super::validate_paging::check_paging(config, report);
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
    if let Some(url) = &config.server.advertise_url {
        let none = url == super::types::NO_ADVERTISE_URL;
        if !none && (reqwest::Url::parse(url).is_err() || !url.starts_with("http")) {
            report.at(
                server.key("advertise_url"),
                format!("invalid advertise_url {url:?}: expected an http(s) URL, or none"),
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
        if let Some(tsg) = &service.tsg {
            let at = report.item(&services, i).key("tsg");
            super::validate_paging::check_tsg(config, report, at, tsg);
        }
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

/// A notify target: `responder:ID`, `schedule:NAME` or `webhook:NAME`.
pub(super) fn check_target(
    config: &Config,
    report: &FileReport,
    target: &str,
) -> Result<(), String> {
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

pub(super) fn unknown(kind: &str, name: &str, section: &str) -> String {
    format!("unknown {kind} {name:?}: not defined in {section}")
}

pub(super) fn unique<'a>(
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

pub(super) fn unique_at<'a>(
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
        if let Some(tsg) = &rule.tsg {
            super::validate_paging::check_tsg(config, report, at.key("tsg"), tsg);
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
pub(super) fn check_case_routes(config: &Config, report: &mut FileReport, root: &Path) {
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
