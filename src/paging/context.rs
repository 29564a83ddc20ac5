//! What a page says, worked out once: every format (email, the tocsin webhook body, Slack,
//! Teams, PagerDuty, ntfy, a notifier's own template) renders from this one value.
//!
//! Pure: built from the incident, its impacts, who was paged before and the recipient's
//! zone, at the moment the page is made. It is stored with the page, so every retry sends
//! the same words.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::page::{PageEvent, Recipient};
use super::state::{MergedNews, PagedEntry};
use crate::config::ClassificationConfig;
use crate::incident::{classify, Impact, Incident, IncidentView};
use crate::signal::{is_web_link, GENERATOR_URL};

/// Impacts a page lists; the rest are counted.
pub const MAX_IMPACTS: usize = 10;

/// The annotations a page shows under their own heading, not as links.
const RUNBOOK_KEYS: [&str; 3] = ["runbook_url", "runbook", "tsg_url"];

/// Everything a page says, in words and links, times in the recipient's zone.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageContext {
    pub event: String,
    /// The recipient's first page about this incident: it carries the whole story.
    pub first_page: bool,
    pub subject: String,
    /// One line: what this page is ("You are paged for …", "Severity rose …").
    pub headline: String,
    /// What changed since the last page (severity raised, escalated, merged), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub what_changed: Option<String>,
    pub incident_id: i64,
    pub title: String,
    pub severity: u8,
    /// Why it is this severity, in words: customers by name, regions, services, and the
    /// rule or impact kind that decided it.
    pub severity_reason: String,
    pub status: String,
    pub services: Vec<String>,
    pub regions: Vec<String>,
    /// Customers by name (their catalog name, else their id).
    pub customers: Vec<String>,
    /// Newest first, at most [`MAX_IMPACTS`].
    pub impacts: Vec<ImpactLine>,
    pub impacts_total: usize,
    /// Runbook or TSG links of the impacts, each once.
    pub runbooks: Vec<Link>,
    /// Other links the impacts carry (dashboards, the alert's expression), each once.
    pub links: Vec<Link>,
    pub dashboard_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_url: Option<String>,
    /// Who else was paged about it, and when, oldest first.
    pub paged: Vec<PagedLine>,
    pub opened_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<String>,
    /// The zone the times are in (an IANA name).
    pub timezone: String,
    pub recipient: String,
}

/// One impact as a page lists it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImpactLine {
    pub id: i64,
    pub summary: String,
    pub rule: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub customers: Vec<String>,
    pub started_at: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub title: String,
    pub url: String,
}

/// Someone paged about the incident before this page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PagedLine {
    pub who: String,
    pub channel: String,
    pub event: String,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
}

/// What a page context is built from.
pub struct Inputs<'a> {
    pub incident: &'a Incident,
    /// The incident's impacts, in any order.
    pub impacts: Vec<&'a Impact>,
    pub event: PageEvent,
    pub recipient: &'a Recipient,
    /// Pages made about the incident before this one, oldest first.
    pub history: &'a [PagedEntry],
    /// Incidents merged into this one since those paged last heard (for `merged`).
    pub merged: &'a [MergedNews],
    pub zone: Tz,
    /// A customer's name for its id, when the catalog gives one.
    pub customer_name: &'a dyn Fn(&str) -> Option<String>,
    pub thresholds: &'a ClassificationConfig,
    pub incident_url: String,
    pub ack_url: Option<String>,
    pub now: DateTime<Utc>,
}

/// A time to the second in `zone`, the zone named: `2026-01-05 17:00:00 CST (Asia/Shanghai)`.
pub fn local_time(at: DateTime<Utc>, zone: Tz) -> String {
    let local = at.with_timezone(&zone);
    if zone == Tz::UTC {
        return local.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    }
    format!("{} ({})", local.format("%Y-%m-%d %H:%M:%S %Z"), zone.name())
}

impl PageContext {
    pub fn build(inputs: Inputs<'_>) -> PageContext {
        let Inputs {
            incident,
            mut impacts,
            event,
            recipient,
            history,
            merged,
            zone,
            customer_name,
            thresholds,
            incident_url,
            ack_url,
            now,
        } = inputs;
        // Newest first: what broke last is what the reader most likely has not seen.
        impacts.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        let name_of = |id: &String| customer_name(id).unwrap_or_else(|| id.clone());
        let customers: Vec<String> = incident.customers.iter().map(name_of).collect();
        let services: Vec<String> = incident.services.iter().cloned().collect();
        let regions: Vec<String> = incident.regions.iter().cloned().collect();
        let first_page = !history
            .iter()
            .any(|h| h.recipient == recipient.id && h.at < now);
        let severity_reason = severity_reason(
            incident,
            &impacts,
            thresholds,
            (&customers, &regions, &services),
        );
        // The incident's TSG (its rule's or its services') leads the runbooks.
        let mut runbooks: Vec<Link> = incident
            .tsg
            .iter()
            .map(|url| Link {
                title: "TSG".to_string(),
                url: url.clone(),
            })
            .collect();
        let mut links: Vec<Link> = Vec::new();
        for impact in &impacts {
            for (key, value) in impact.annotations.iter() {
                if !is_web_link(value) {
                    continue;
                }
                let (list, title) = if RUNBOOK_KEYS.contains(&key) {
                    (&mut runbooks, format!("Runbook: {}", impact.summary))
                } else if key == GENERATOR_URL {
                    (&mut links, format!("Alert source: {}", impact.summary))
                } else {
                    (&mut links, format!("{key}: {}", impact.summary))
                };
                if !list.iter().any(|l| l.url == value) {
                    list.push(Link {
                        title,
                        url: value.to_string(),
                    });
                }
            }
        }
        let lines: Vec<ImpactLine> = impacts
            .iter()
            .take(MAX_IMPACTS)
            .map(|i| impact_line(i, zone, &name_of))
            .collect();
        // Others only: the reader knows they were paged themselves.
        let paged: Vec<PagedLine> = history
            .iter()
            .filter(|h| h.recipient != recipient.id)
            .map(|h| PagedLine {
                who: h.recipient.clone(),
                channel: h.channel.clone(),
                event: h.event.clone(),
                at: local_time(h.at, zone),
                level: h.level,
            })
            .collect();
        let title = incident.title.to_string();
        let severity = incident.severity;
        let previous_severity = history.last().map(|h| h.severity);
        let what_changed = what_changed(
            event,
            incident,
            &impacts,
            merged,
            previous_severity,
            history,
            zone,
        );
        let subject = subject(event, severity, &title, first_page, previous_severity);
        let headline = headline(event, incident, first_page);
        PageContext {
            event: event.as_str().to_string(),
            first_page,
            subject,
            headline,
            what_changed,
            incident_id: incident.id,
            title,
            severity,
            severity_reason,
            status: incident.status.as_str().to_string(),
            services,
            regions,
            customers,
            impacts_total: impacts.len(),
            impacts: lines,
            runbooks,
            links,
            dashboard_url: incident_url,
            ack_url,
            paged,
            opened_at: local_time(incident.opened_at, zone),
            acknowledged: incident.acknowledged_at.map(|at| {
                format!(
                    "by {} at {}",
                    incident.acknowledged_by.as_deref().unwrap_or("someone"),
                    local_time(at, zone)
                )
            }),
            timezone: zone.name().to_string(),
            recipient: recipient.id.clone(),
        }
    }

    /// A context from the incident alone, for a page stored before pages carried one: its
    /// reader still gets the incident, its severity, its names and its links.
    pub fn from_view(
        event: PageEvent,
        incident: &IncidentView,
        recipient: &str,
        ack_url: Option<&str>,
    ) -> PageContext {
        let title = incident.title.clone();
        PageContext {
            event: event.as_str().to_string(),
            first_page: true,
            subject: subject(event, incident.severity, &title, true, None),
            headline: format!(
                "Tocsin pages you about a Sev {} incident.",
                incident.severity
            ),
            what_changed: None,
            incident_id: incident.id,
            title,
            severity: incident.severity,
            severity_reason: format!("Sev {}", incident.severity),
            status: incident.status.as_str().to_string(),
            services: incident.services.clone(),
            regions: incident.regions.clone(),
            customers: incident.customers.clone(),
            impacts: Vec::new(),
            impacts_total: 0,
            runbooks: incident
                .tsg
                .iter()
                .map(|url| Link {
                    title: "TSG".to_string(),
                    url: url.clone(),
                })
                .collect(),
            links: Vec::new(),
            dashboard_url: incident.url.clone(),
            ack_url: ack_url.map(str::to_string),
            paged: Vec::new(),
            opened_at: local_time(incident.opened_at, Tz::UTC),
            acknowledged: incident.acknowledged_at.map(|at| {
                format!(
                    "by {} at {}",
                    incident.acknowledged_by.as_deref().unwrap_or("someone"),
                    local_time(at, Tz::UTC)
                )
            }),
            timezone: "UTC".into(),
            recipient: recipient.to_string(),
        }
    }
}

fn impact_line(impact: &Impact, zone: Tz, name_of: &dyn Fn(&String) -> String) -> ImpactLine {
    let annotation = |key: &str| impact.annotations.get(key).map(str::to_string);
    let link = |key: &str| annotation(key).filter(|u| is_web_link(u));
    ImpactLine {
        id: impact.id,
        summary: impact.summary.to_string(),
        rule: impact.rule.to_string(),
        kind: impact.kind.as_str().to_string(),
        service: impact.service.clone(),
        region: impact.region.clone(),
        customers: impact.customers.iter().map(name_of).collect(),
        started_at: local_time(impact.started_at, zone),
        active: impact.is_active(),
        description: annotation("description").filter(|d| !d.trim().is_empty()),
        runbook_url: RUNBOOK_KEYS.iter().find_map(|k| link(k)),
        generator_url: link(GENERATOR_URL),
    }
}

/// `a, b and c`; `-` for none.
fn words(names: &[String]) -> String {
    match names {
        [] => "-".into(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn counted(n: usize, one: &str, many: &str, names: &[String]) -> String {
    let noun = if n == 1 { one } else { many };
    if names.is_empty() {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun} ({})", words(names))
    }
}

/// Why the incident is at its severity, in words.
fn severity_reason(
    incident: &Incident,
    impacts: &[&Impact],
    thresholds: &ClassificationConfig,
    (customers, regions, services): (&[String], &[String], &[String]),
) -> String {
    let (computed, reason) = classify(impacts.iter().copied(), thresholds);
    // The Sev table's row, without the counts the names below say again.
    let reason = if reason.starts_with("major impact") {
        "major impact (outage or SLA breach)".to_string()
    } else if reason.starts_with("data loss") {
        "data loss, corruption or security impact".to_string()
    } else {
        reason
    };
    let reach = format!(
        "{} in {} of {}",
        counted(customers.len(), "customer", "customers", customers),
        counted(regions.len(), "region", "regions", regions),
        counted(services.len(), "service", "services", services),
    );
    let deciding: Vec<&Impact> = impacts
        .iter()
        .copied()
        .filter(|i| decides(i, computed))
        .collect();
    let mut rules: Vec<String> = Vec::new();
    for impact in deciding
        .iter()
        .filter(|i| i.is_active())
        .chain(deciding.iter())
    {
        let what = format!(
            "rule {} ({}{})",
            impact.rule,
            impact.kind.as_str().replace('_', " "),
            match (&impact.sla_measured, impact.sla_breach) {
                (Some(measured), _) => format!(", below SLA, measured: {measured}"),
                (None, true) => ", SLA breach".to_string(),
                (None, false) => String::new(),
            }
        );
        if !rules.contains(&what) {
            rules.push(what);
        }
    }
    let decided = if rules.is_empty() {
        String::new()
    } else {
        format!("; decided by {}", words(&rules))
    };
    let severity = incident.severity;
    if incident.pinned || severity != computed {
        format!(
            "Sev {severity} set by a person; the impacts alone say Sev {computed}: {reason}, \
             hitting {reach}{decided}"
        )
    } else {
        format!("Sev {severity}: {reason}, hitting {reach}{decided}")
    }
}

/// Whether `impact` is one that puts the incident at `severity` (the row of the Sev table
/// it meets).
fn decides(impact: &Impact, severity: u8) -> bool {
    if impact.severity_floor == Some(severity) {
        return true;
    }
    match severity {
        0 => impact.kind.is_disaster_kind(),
        1 => impact.is_major(),
        2 => impact.sla_breach || impact.kind.is_disaster_kind(),
        3 => impact.business_impact == Some(crate::config::BusinessImpact::High),
        _ => true,
    }
}

/// What a subject says of the event beside the title (case pages too); `None` for a plain
/// page.
pub fn subject_tag(event: PageEvent) -> Option<&'static str> {
    match event {
        PageEvent::Triggered | PageEvent::Escalated => None,
        PageEvent::SeverityRaised => Some("SEVERITY RAISED"),
        PageEvent::Acknowledged => Some("ACKNOWLEDGED"),
        PageEvent::Resolved => Some("RESOLVED"),
        PageEvent::ResponseBreached => Some("RESPONSE OVERDUE"),
        PageEvent::ImpactAdded => Some("NEW IMPACT"),
        PageEvent::Merged => Some("MERGED"),
        PageEvent::Reopened => Some("REOPENED"),
        PageEvent::Test => Some("TEST PAGE"),
        PageEvent::ShiftStarted => Some("ON CALL"),
        PageEvent::Assigned => Some("ASSIGNED TO YOU"),
        PageEvent::ResponderAdded => Some("YOU ARE ADDED"),
        PageEvent::EngagementDue => Some("UPDATE DUE"),
        PageEvent::EngagementMissed => Some("UPDATE MISSED"),
        PageEvent::CustomerUpdate => Some("UPDATE"),
        PageEvent::TsgAction => Some("TSG ACTION"),
    }
}

fn subject(
    event: PageEvent,
    severity: u8,
    title: &str,
    first_page: bool,
    previous: Option<u8>,
) -> String {
    // A header cannot hold line breaks; a title with some still reads as one line.
    let title: String = title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let tag = subject_tag(event);
    match (tag, first_page, event) {
        (None, _, _) => format!("[Sev {severity}] {title}"),
        // Someone who never heard of the incident reads what it is first.
        (Some(_), true, PageEvent::SeverityRaised) => match previous {
            Some(from) if from != severity => {
                format!("[Sev {severity}] {title} (raised from Sev {from})")
            }
            _ => format!("[Sev {severity}] {title} (severity raised)"),
        },
        (Some(tag), true, _) => format!("[Sev {severity}] {title} ({})", tag.to_lowercase()),
        (Some(tag), false, _) => format!("[Sev {severity}] {tag}: {title}"),
    }
}

fn headline(event: PageEvent, incident: &Incident, first_page: bool) -> String {
    let sev = incident.severity;
    let id = incident.id;
    match event {
        PageEvent::Triggered => format!("You are paged for Sev {sev} incident #{id}."),
        PageEvent::Escalated => {
            format!("You are paged for Sev {sev} incident #{id}: nobody has acknowledged it yet.")
        }
        PageEvent::SeverityRaised if first_page => {
            format!("You are paged for Sev {sev} incident #{id}: its severity rose to Sev {sev}.")
        }
        PageEvent::SeverityRaised => format!("Incident #{id}'s severity rose to Sev {sev}."),
        PageEvent::Acknowledged => format!(
            "Incident #{id} was acknowledged by {}.",
            incident.acknowledged_by.as_deref().unwrap_or("someone")
        ),
        PageEvent::Resolved => format!("Incident #{id} is resolved."),
        PageEvent::ResponseBreached => format!(
            "Incident #{id}: the customer's initial-response deadline passed without an \
             acknowledgement."
        ),
        PageEvent::ImpactAdded => format!(
            "A new impact joined Sev {sev} incident #{id}{}.",
            acknowledged_by(incident)
        ),
        PageEvent::Merged => format!(
            "Another incident was merged into Sev {sev} incident #{id}{}.",
            acknowledged_by(incident)
        ),
        PageEvent::Reopened => format!("Sev {sev} incident #{id} failed again and is reopened."),
        PageEvent::Test => {
            "This is a test page from tocsin: this contact method reaches you.".to_string()
        }
        PageEvent::ShiftStarted => "Your on-call shift has begun.".to_string(),
        PageEvent::Assigned => format!("Sev {sev} incident #{id} is assigned to you."),
        PageEvent::ResponderAdded => {
            format!("You are added to Sev {sev} incident #{id}: its updates reach you from now on.")
        }
        // Case pages are written by `notify::case_render`; these read sensibly if one is not.
        PageEvent::EngagementDue => "A support case needs its next update.".to_string(),
        PageEvent::EngagementMissed => {
            "A support case went a second interval without an update.".to_string()
        }
        PageEvent::CustomerUpdate => "An update on a support case.".to_string(),
        PageEvent::TsgAction => format!(
            "Sev {sev} incident #{id} opened: run the mitigation of its TSG and report back."
        ),
    }
}

/// " (acknowledged by X)", so whoever acknowledged it knows the news is theirs.
fn acknowledged_by(incident: &Incident) -> String {
    incident
        .acknowledged_by
        .as_deref()
        .map(|by| format!(" (acknowledged by {by})"))
        .unwrap_or_default()
}

/// An impact in one line: "storage down in china-north (rule StorageDown; storage,
/// china-north)".
fn impact_text(i: &Impact) -> String {
    let place = [i.service.as_deref(), i.region.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
    format!("{} (rule {}; {place})", i.summary, i.rule)
}

/// Impacts a `merged` page names, per incident merged; the rest are counted.
const MERGED_IMPACTS: usize = 5;

/// "Incident #5 (storage down in china-north) was merged into #3, bringing 1 impact: …".
fn merged_text(into: i64, news: &MergedNews, impacts: &[&Impact]) -> String {
    let brought: Vec<String> = news
        .impacts
        .iter()
        .filter_map(|id| impacts.iter().find(|i| i.id == *id))
        .take(MERGED_IMPACTS)
        .map(|i| impact_text(i))
        .collect();
    let count = news.impacts.len();
    let more = count.saturating_sub(brought.len());
    let mut text = format!(
        "Incident #{} ({}) was merged into #{into}, bringing {count} impact{}",
        news.incident,
        news.title,
        if count == 1 { "" } else { "s" }
    );
    if !brought.is_empty() {
        text.push_str(&format!(": {}", brought.join("; ")));
    }
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

fn what_changed(
    event: PageEvent,
    incident: &Incident,
    impacts: &[&Impact],
    merged: &[MergedNews],
    previous_severity: Option<u8>,
    history: &[PagedEntry],
    zone: Tz,
) -> Option<String> {
    let newest_text = impacts.first().map(|i| impact_text(i));
    // Those paged to respond who have not acknowledged: the incident is still triggered.
    let unanswered = || {
        let mut names: Vec<String> = Vec::new();
        for h in history.iter().filter(|h| h.asks_response()) {
            let line = format!(
                "{} ({}, {})",
                h.recipient,
                h.channel,
                local_time(h.at, zone)
            );
            if !names
                .iter()
                .any(|n| n.starts_with(&format!("{} (", h.recipient)))
            {
                names.push(line);
            }
        }
        names
    };
    match event {
        PageEvent::SeverityRaised => {
            let from = previous_severity
                .filter(|s| *s != incident.severity)
                .map(|s| format!(" from Sev {s}"))
                .unwrap_or_default();
            let by = newest_text
                .map(|t| format!(", raised by the newest impact: {t}"))
                .unwrap_or_default();
            let mut text = format!("Severity rose{from} to Sev {}{by}.", incident.severity);
            let before = unanswered();
            if incident.status == crate::incident::Status::Triggered && !before.is_empty() {
                text.push_str(&format!(
                    " Paged before and not acknowledged: {}.",
                    before.join(", ")
                ));
            }
            Some(text)
        }
        PageEvent::ImpactAdded | PageEvent::Reopened => {
            newest_text.map(|t| format!("New impact: {t}."))
        }
        PageEvent::Merged => {
            let lines: Vec<String> = merged
                .iter()
                .map(|news| merged_text(incident.id, news, impacts))
                .collect();
            (!lines.is_empty()).then(|| format!("{}.", lines.join(". ")))
        }
        PageEvent::Escalated => {
            let before = unanswered();
            (!before.is_empty()).then(|| {
                format!(
                    "Escalated: paged before and not acknowledged: {}.",
                    before.join(", ")
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
