//! An incident's timeline: the kinds of entry, with their data, and how each reads.
//!
//! Every transition and paging decision says what happened as an [`Entry`]; this file alone
//! turns one into the stored row ([`TimelineEntry`]): its `kind`, message and JSON data.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The actor of entries the engine writes on its own.
pub const TOCSIN: &str = "tocsin";

/// Summaries a `resolved` message names; its data lists every id.
const NAMED: usize = 3;

/// One line of an incident's history as stored and shown: what happened, when, and who or
/// which rule did it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub incident_id: i64,
    pub at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub message: String,
    #[serde(default)]
    pub data: Value,
}

/// Why an impact cleared.
#[derive(Clone, Debug, PartialEq)]
pub enum ClearCause {
    /// Its rule's condition stopped holding.
    ConditionStopped { rule: String },
    /// A reload removed its rule.
    RuleRemoved { rule: String },
}

/// What happened to an incident, with what the entry tells.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    Opened {
        rule: String,
        severity: u8,
        reason: String,
        summary: String,
    },
    /// Impacts one rule added within one batch; `first` is the first one's summary, service
    /// and region.
    ImpactAdded {
        rule: String,
        first: String,
        impacts: Vec<i64>,
    },
    /// An impact on a service that depends on one down in this incident joined it instead
    /// of paging on its own.
    DependentAdded {
        rule: String,
        impact: i64,
        summary: String,
        service: String,
        region: String,
        incident: i64,
    },
    /// The dependent impact still fails after this incident resolved: it pages on its own.
    DependentReleased {
        impact: i64,
        summary: String,
        into: i64,
    },
    ImpactCleared {
        rule: String,
        impact: i64,
        summary: String,
        cause: ClearCause,
    },
    MergedInto {
        into: i64,
    },
    /// A new impact reopened the incident that had resolved on its own at `resolved_at`.
    Reopened {
        rule: String,
        summary: String,
        resolved_at: Option<DateTime<Utc>>,
    },
    MergedFrom {
        from: i64,
        /// The impacts it brought.
        impacts: Vec<i64>,
    },
    SeverityRaised {
        cause: String,
        from: u8,
        to: u8,
        reason: String,
    },
    /// The impacts say a graver severity, but a person pinned it.
    SeverityHeldPinned {
        cause: String,
        computed: u8,
        reason: String,
        pinned: u8,
    },
    SeveritySet {
        by: String,
        from: u8,
        to: u8,
        reason: Option<String>,
    },
    SeverityUnpinned {
        by: String,
        reason: Option<String>,
    },
    Acknowledged {
        by: String,
    },
    /// The severity rose: the acknowledgement holds.
    AckKept {
        by: String,
    },
    /// An acknowledgement ran out: escalation resumes.
    AckLapsed {
        by: String,
    },
    Resolved {
        by: String,
        note: Option<String>,
        /// Impacts whose signal still fired at the resolve (id and summary, in id order).
        still_firing: Vec<(i64, String)>,
    },
    Note {
        by: String,
        text: String,
    },
    Unrouted {
        severity: u8,
    },
    UnknownPolicy {
        route: usize,
        policy: String,
    },
    Queued {
        route: usize,
        queue: String,
    },
    Routed {
        route: usize,
        policy: String,
    },
    Silenced {
        silence: usize,
        comment: Option<String>,
        until: Option<DateTime<Utc>>,
    },
    /// A silence made at run time holds the pages until it ends.
    Held {
        silence: String,
        created_by: String,
        comment: String,
        until: DateTime<Utc>,
    },
    /// Outside the route's time windows: paging waits.
    Paused {
        windows: String,
        until: Option<DateTime<Utc>>,
    },
    /// One level was paged; `reached` names each recipient and channel.
    PagedLevel {
        event: &'static str,
        level: usize,
        policy: String,
        reached: Vec<String>,
    },
    /// Everyone paged so far heard of an ack or a resolve.
    Notified {
        event: &'static str,
        recipients: Vec<String>,
    },
    /// A person's notification rules hold some of their channels back: each step
    /// ("email after 2m") goes unless the incident is acknowledged first.
    StepsWaiting {
        responder: String,
        steps: Vec<String>,
    },
    /// A person's waiting step came due with the incident still unacknowledged.
    StepPaged {
        event: &'static str,
        reached: String,
        after: String,
    },
    PageSkipped {
        level: usize,
        target: String,
        why: String,
    },
    /// A response deadline passed with no policy to page.
    BreachUnpaged,
    ResponseBreached {
        sr_severity: String,
        respond_by: Option<DateTime<Utc>>,
    },
    DeliveryFailed {
        recipient: String,
        level: Option<usize>,
        reason: String,
    },
    /// A person declared the incident (`POST /api/v1/incidents`).
    Declared {
        by: String,
        severity: u8,
        /// Why this severity: the blast radius's reason, or "set by …".
        reason: String,
        title: String,
        description: String,
    },
    /// A person made `responder` the assignee.
    Assigned {
        by: String,
        responder: String,
    },
    /// A person added `responder`, who follows the incident from now on.
    ResponderAdded {
        by: String,
        responder: String,
    },
    /// A person escalated to `level` at once.
    EscalatedByHand {
        by: String,
        level: usize,
    },
    /// An impact with `sla_breach: auto` breaches its service's SLA: the burn rates say so.
    SlaBreached {
        rule: String,
        impact: i64,
        measured: super::sla::Measurement,
    },
    /// A step of the incident's TSG action.
    Tsg(super::tsg_action::TsgStep),
}

impl Entry {
    /// The row's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Entry::Opened { .. } => "opened",
            Entry::ImpactAdded { .. } | Entry::DependentAdded { .. } => "impact_added",
            Entry::DependentReleased { .. } => "dependent_released",
            Entry::ImpactCleared { .. } => "impact_cleared",
            Entry::MergedInto { .. } | Entry::MergedFrom { .. } => "merged",
            Entry::Reopened { .. } => "reopened",
            Entry::SeverityRaised { .. } | Entry::SeveritySet { .. } => "severity_changed",
            Entry::SeverityHeldPinned { .. } => "severity_pinned",
            Entry::SeverityUnpinned { .. } => "severity_unpinned",
            Entry::Acknowledged { .. } => "acknowledged",
            Entry::AckKept { .. } => "ack_kept",
            Entry::AckLapsed { .. } => "ack_lapsed",
            Entry::Resolved { .. } => "resolved",
            Entry::Note { .. } => "note",
            Entry::Unrouted { .. } | Entry::UnknownPolicy { .. } => "unrouted",
            Entry::Queued { .. } => "queued",
            Entry::Routed { .. } => "routed",
            Entry::Silenced { .. } | Entry::Held { .. } => "silenced",
            Entry::Paused { .. } => "paused",
            Entry::PagedLevel { .. } | Entry::Notified { .. } | Entry::StepPaged { .. } => "paged",
            Entry::StepsWaiting { .. } => "steps_waiting",
            Entry::PageSkipped { .. } | Entry::BreachUnpaged => "page_skipped",
            Entry::ResponseBreached { .. } => "response_breached",
            Entry::DeliveryFailed { .. } => "delivery_failed",
            Entry::Declared { .. } => "opened",
            Entry::Assigned { .. } => "assigned",
            Entry::ResponderAdded { .. } => "responder_added",
            Entry::EscalatedByHand { .. } => "escalated",
            Entry::SlaBreached { .. } => "sla_breached",
            Entry::Tsg(step) => step.kind(),
        }
    }

    /// Who or which rule did it.
    pub fn actor(&self) -> &str {
        match self {
            Entry::Opened { rule, .. }
            | Entry::Reopened { rule, .. }
            | Entry::DependentAdded { rule, .. }
            | Entry::ImpactAdded { rule, .. }
            | Entry::ImpactCleared { rule, .. }
            | Entry::SlaBreached { rule, .. } => rule,
            Entry::SeverityRaised { cause, .. } | Entry::SeverityHeldPinned { cause, .. } => cause,
            Entry::SeveritySet { by, .. }
            | Entry::SeverityUnpinned { by, .. }
            | Entry::Acknowledged { by }
            | Entry::Resolved { by, .. }
            | Entry::Note { by, .. }
            | Entry::Declared { by, .. }
            | Entry::Assigned { by, .. }
            | Entry::ResponderAdded { by, .. }
            | Entry::EscalatedByHand { by, .. } => by,
            Entry::Tsg(step) => step.actor().unwrap_or(TOCSIN),
            _ => TOCSIN,
        }
    }

    /// The message a person reads.
    pub fn message(&self) -> String {
        match self {
            Entry::Opened {
                severity,
                reason,
                summary,
                ..
            } => format!("opened at Sev {severity} ({reason}): {summary}"),
            Entry::ImpactAdded {
                rule,
                first,
                impacts,
            } => match impacts.len() {
                1 => format!("impact added by {rule}: {first}"),
                n => format!(
                    "{n} impacts added by {rule}: {first} and {} more",
                    n.saturating_sub(1)
                ),
            },
            Entry::DependentAdded {
                summary,
                service,
                region,
                incident,
                ..
            } => format!(
                "dependent impact added ({service}, {region}): {summary} (inhibited by #{incident})"
            ),
            Entry::DependentReleased {
                impact,
                summary,
                into,
            } => format!(
                "dependent impact {impact} still fails after the resolve: {summary} (pages on its own as #{into})"
            ),
            Entry::ImpactCleared { summary, cause, .. } => {
                let why = match cause {
                    ClearCause::ConditionStopped { rule } => {
                        format!("rule {rule} condition stopped")
                    }
                    ClearCause::RuleRemoved { rule } => format!("rule {rule} removed by a reload"),
                };
                format!("impact cleared ({why}): {summary}")
            }
            Entry::MergedInto { into } => format!("merged into incident {into}"),
            Entry::Reopened {
                summary,
                resolved_at,
                ..
            } => {
                let at = resolved_at
                    .map(|t| format!(" (resolved on its own at {})", t.to_rfc3339()))
                    .unwrap_or_default();
                format!("reopened{at}: {summary}")
            }
            Entry::MergedFrom { from, .. } => format!("incident {from} merged into this one"),
            Entry::SeverityRaised {
                from, to, reason, ..
            } => format!("severity raised from Sev {from} to Sev {to} ({reason})"),
            Entry::SeverityHeldPinned {
                computed,
                reason,
                pinned,
                ..
            } => format!(
                "impacts now say Sev {computed} ({reason}); severity stays pinned at Sev {pinned}"
            ),
            Entry::SeveritySet {
                by,
                from,
                to,
                reason,
            } => format!(
                "severity set from Sev {from} to Sev {to} and pinned by {by}{}",
                reason_text(reason)
            ),
            Entry::SeverityUnpinned { by, reason } => {
                format!("severity unpinned by {by}{}", reason_text(reason))
            }
            Entry::Acknowledged { by } => format!("acknowledged by {by}"),
            Entry::AckKept { by } => format!(
                "severity rose; acknowledgement by {by} kept: later levels wait for it to lapse"
            ),
            Entry::AckLapsed { by } => {
                format!("acknowledgement by {by} lapsed: escalation resumes")
            }
            Entry::Resolved {
                by,
                note,
                still_firing,
            } => resolved_message(by, note.as_deref(), still_firing),
            Entry::Note { text, .. } => text.clone(),
            Entry::Unrouted { severity } => {
                format!("no route matches Sev {severity}: recorded, not paged")
            }
            Entry::UnknownPolicy { route, policy } => {
                format!("route {route} names unknown policy {policy}")
            }
            Entry::Queued { route, queue } => {
                format!("route {route} put it in triage queue {queue}: no page")
            }
            Entry::Routed { route, policy } => {
                format!("route {route} → escalation policy {policy}")
            }
            Entry::Silenced {
                silence,
                comment,
                until,
            } => {
                let until = until
                    .map(|u| format!(" until {}", u.to_rfc3339()))
                    .unwrap_or_default();
                let comment = comment
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                format!("silenced by silence {silence}{comment}{until}: recorded, not paged")
            }
            Entry::Held {
                silence,
                created_by,
                comment,
                until,
            } => format!(
                "held by silence {silence} of {created_by} ({comment}) until {}: recorded, \
                 not paged until then",
                until.to_rfc3339()
            ),
            Entry::Paused { windows, until } => {
                let at = until
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_else(|| "never".into());
                format!("outside {windows}: paging waits until {at}")
            }
            Entry::PagedLevel {
                event,
                level,
                policy,
                reached,
            } => {
                let who = if reached.is_empty() {
                    "nobody".to_string()
                } else {
                    reached.join(", ")
                };
                format!("{event}: level {level} of {policy} → {who}")
            }
            Entry::Notified { event, recipients } => {
                format!("{event} sent to {}", recipients.join(", "))
            }
            Entry::StepsWaiting { responder, steps } => format!(
                "{responder}'s notification rules: {} unless acknowledged first",
                steps.join(", ")
            ),
            Entry::StepPaged {
                event,
                reached,
                after,
            } => format!("{event}: {reached}, the step after {after}: not acknowledged by then"),
            Entry::PageSkipped { level, target, why } => {
                format!("level {level} target {target}: {why}")
            }
            Entry::BreachUnpaged => "response_breached: no escalation policy to notify".to_string(),
            Entry::ResponseBreached {
                sr_severity,
                respond_by,
            } => {
                let deadline = respond_by.map(|t| t.to_rfc3339()).unwrap_or_default();
                format!(
                    "SR {sr_severity} initial response due {deadline} breached: not acknowledged"
                )
            }
            Entry::DeliveryFailed {
                recipient, reason, ..
            } => format!("page to {recipient} given up: {reason}"),
            Entry::Declared {
                by,
                severity,
                reason,
                title,
                description,
            } => {
                let description = if description.is_empty() {
                    String::new()
                } else {
                    format!(" — {description}")
                };
                format!("declared by {by} at Sev {severity} ({reason}): {title}{description}")
            }
            Entry::Assigned { by, responder } => format!("assigned to {responder} by {by}"),
            Entry::ResponderAdded { by, responder } => {
                format!("{responder} added by {by}: paged now, and follows the incident")
            }
            Entry::EscalatedByHand { by, level } => {
                format!("escalated by {by}: level {level} paged now")
            }
            Entry::SlaBreached { measured, .. } => {
                format!("below SLA, measured: {measured}")
            }
            Entry::Tsg(step) => step.message(),
        }
    }

    /// The row's JSON data.
    pub fn data(&self) -> Value {
        match self {
            Entry::Opened { severity, .. } => json!({ "severity": severity }),
            Entry::ImpactAdded { impacts, .. } => match impacts.as_slice() {
                [one] => json!({ "impact": one }),
                all => json!({ "impacts": all }),
            },
            Entry::ImpactCleared { impact, .. } => json!({ "impact": impact }),
            Entry::DependentAdded {
                impact, incident, ..
            } => json!({ "impact": impact, "inhibited_by": incident }),
            Entry::DependentReleased { impact, into, .. } => {
                json!({ "impact": impact, "into": into })
            }
            Entry::MergedInto { into } => json!({ "into": into }),
            Entry::Reopened { resolved_at, .. } => json!({ "resolved_at": resolved_at }),
            Entry::MergedFrom { from, impacts } => json!({ "from": from, "impacts": impacts }),
            Entry::SeverityRaised { from, to, .. } => json!({ "from": from, "to": to }),
            Entry::SeverityHeldPinned { computed, .. } => json!({ "computed": computed }),
            Entry::SeveritySet {
                from, to, reason, ..
            } => json!({ "from": from, "to": to, "pinned": true, "reason": reason }),
            Entry::Resolved {
                note, still_firing, ..
            } => {
                if still_firing.is_empty() {
                    json!({ "note": note })
                } else {
                    let ids: Vec<i64> = still_firing.iter().map(|(id, _)| *id).collect();
                    json!({ "note": note, "still_firing": ids })
                }
            }
            Entry::Queued { queue, .. } => json!({ "queue": queue }),
            Entry::Routed { route, policy } => json!({ "route": route, "policy": policy }),
            Entry::Silenced { silence, .. } => json!({ "silence": silence }),
            Entry::Held { silence, until, .. } => {
                json!({ "silence": silence, "until": until.to_rfc3339() })
            }
            Entry::PagedLevel {
                event,
                level,
                policy,
                ..
            } => json!({ "event": event, "level": level, "policy": policy }),
            Entry::Notified { event, .. } => json!({ "event": event }),
            Entry::StepsWaiting { responder, steps } => {
                json!({ "responder": responder, "steps": steps })
            }
            Entry::StepPaged {
                event,
                reached,
                after,
            } => json!({ "event": event, "recipient": reached, "after": after }),
            Entry::ResponseBreached { sr_severity, .. } => json!({ "sr_severity": sr_severity }),
            Entry::DeliveryFailed {
                recipient, level, ..
            } => json!({ "recipient": recipient, "level": level }),
            Entry::Declared {
                severity,
                description,
                ..
            } => json!({ "severity": severity, "declared": true, "description": description }),
            Entry::Assigned { responder, .. } | Entry::ResponderAdded { responder, .. } => {
                json!({ "responder": responder })
            }
            Entry::EscalatedByHand { level, .. } => json!({ "level": level }),
            Entry::SlaBreached {
                impact, measured, ..
            } => json!({
                "impact": impact,
                "service": measured.service,
                "region": measured.region,
                "sla": measured.sla,
                "availability_ratio": measured.availability,
                "burn_rate_1h": measured.burn_1h,
                "burn_rate_6h": measured.burn_6h,
            }),
            Entry::Tsg(step) => step.data(),
            Entry::SeverityUnpinned { .. }
            | Entry::Acknowledged { .. }
            | Entry::AckKept { .. }
            | Entry::AckLapsed { .. }
            | Entry::Note { .. }
            | Entry::Unrouted { .. }
            | Entry::UnknownPolicy { .. }
            | Entry::Paused { .. }
            | Entry::PageSkipped { .. }
            | Entry::BreachUnpaged => Value::Null,
        }
    }

    /// The stored row of this entry in incident `incident_id` at `at`.
    pub fn row(&self, incident_id: i64, at: DateTime<Utc>) -> TimelineEntry {
        TimelineEntry {
            incident_id,
            at,
            kind: self.kind().to_string(),
            actor: self.actor().to_string(),
            message: self.message(),
            data: self.data(),
        }
    }
}

/// ": reason" when a person gave one.
fn reason_text(reason: &Option<String>) -> String {
    reason
        .as_deref()
        .filter(|r| !r.is_empty())
        .map(|r| format!(": {r}"))
        .unwrap_or_default()
}

/// Who resolved it, their note, and the impacts whose signal still fired at that moment.
/// Those stay uncleared until their signal clears, and their next firing observation opens
/// a new incident: the entry says so, so nobody takes the resolve for the end of it.
fn resolved_message(by: &str, note: Option<&str>, still_firing: &[(i64, String)]) -> String {
    let mut message = match note {
        Some(n) if !n.is_empty() => format!("resolved by {by}: {n}"),
        _ => format!("resolved by {by}"),
    };
    if !still_firing.is_empty() {
        let named: Vec<String> = still_firing
            .iter()
            .take(NAMED)
            .map(|(id, summary)| format!("{summary} (impact {id})"))
            .collect();
        let more = match still_firing.len().saturating_sub(NAMED) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        let next = if still_firing.len() == 1 {
            "its next firing observation opens a new incident"
        } else {
            "their next firing observations open a new incident"
        };
        message.push_str(&format!(
            "; still firing at resolve: {}{more} ({next})",
            named.join(", ")
        ));
    }
    message
}

#[cfg(test)]
#[path = "timeline_tests.rs"]
mod tests;
