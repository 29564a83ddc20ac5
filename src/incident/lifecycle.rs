//! The incident lifecycle as pure transitions: open, attach an impact, merge, clear an
//! impact, reclassify, acknowledge, resolve, set or unpin the severity, and by hand:
//! declare and assign.
//!
//! Each takes the incident (and what it needs to decide) and the time, changes the
//! incident, and says what happened as a timeline [`Entry`]. The engine keeps the maps,
//! timers and the changes to persist, and calls these.

use chrono::{DateTime, Utc};

use super::model::{Impact, Incident, NameSet, Status};
use super::timeline::{ClearCause, Entry, TOCSIN};
use crate::config::ClassificationConfig;

/// Why a person's request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No open incident has that id.
    NotOpen(i64),
    Resolved(i64),
    AlreadyAcknowledged {
        id: i64,
        by: Option<String>,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotOpen(id) => write!(f, "incident {id} is not open"),
            Refusal::Resolved(id) => write!(f, "incident {id} is resolved"),
            Refusal::AlreadyAcknowledged { id, by } => write!(
                f,
                "incident {id} is already acknowledged by {}",
                by.as_deref().unwrap_or("someone")
            ),
        }
    }
}

/// A new incident `id` for its first impact, classified from that impact alone.
pub fn open(
    id: i64,
    impact: &Impact,
    thresholds: &ClassificationConfig,
    now: DateTime<Utc>,
) -> (Incident, Entry) {
    let (severity, reason) = super::classify(std::iter::once(impact), thresholds);
    let incident = Incident::opened_by(id, impact, severity, now);
    let entry = Entry::Opened {
        rule: impact.rule.to_string(),
        severity,
        reason,
        summary: impact.summary.to_string(),
    };
    (incident, entry)
}

/// Add `impact` (already naming the incident) to `incident`. Returns whether the
/// incident's stored row changed. A dependent impact (`inhibited_by`) is a symptom of the
/// incident, not more of it: it leaves its services, customers and severity as they are.
pub fn attach(incident: &mut Incident, impact: &Impact) -> bool {
    incident.impact_ids.push(impact.id);
    if impact.inhibited_by.is_some() {
        return false;
    }
    incident.absorb(impact)
}

/// The entry that tells impacts one rule added in one batch, starting with `impact`; the
/// engine adds the ids of the others to it.
pub fn impact_added(impact: &Impact) -> Entry {
    let first = format!(
        "{} ({}{})",
        impact.summary,
        impact.service.as_deref().unwrap_or("-"),
        impact
            .region
            .as_deref()
            .map(|r| format!(", {r}"))
            .unwrap_or_default()
    );
    Entry::ImpactAdded {
        rule: impact.rule.to_string(),
        first,
        impacts: vec![impact.id],
    }
}

/// Take in everything incident `source` holds: merging is transitive.
pub fn absorb_merged(target: &mut Incident, source: &Incident) {
    target.impact_ids.extend(source.impact_ids.iter().copied());
    target.impact_ids.sort_unstable();
    target.absorb_incident(source);
}

/// Close `source`, merged into incident `into`: the entries for it and for the target.
pub fn close_merged(source: &mut Incident, into: i64, now: DateTime<Utc>) -> [Entry; 2] {
    source.status = Status::Resolved;
    source.resolved_at = Some(now);
    source.resolved_by = Some(TOCSIN.into());
    source.merged_into = Some(into);
    source.queue = None;
    [
        Entry::MergedInto { into },
        Entry::MergedFrom {
            from: source.id,
            impacts: source.impact_ids.clone(),
        },
    ]
}

/// The impact's signal stopped (or its rule went): `None` when it was cleared already.
pub fn clear_impact(impact: &mut Impact, cause: ClearCause, now: DateTime<Utc>) -> Option<Entry> {
    if impact.cleared_at.is_some() {
        return None;
    }
    impact.cleared_at = Some(now);
    Some(Entry::ImpactCleared {
        rule: impact.rule.to_string(),
        impact: impact.id,
        summary: impact.summary.to_string(),
        cause,
    })
}

/// What reclassifying did.
#[derive(Clone, Debug, PartialEq)]
pub enum Reclassified {
    /// The impacts say no graver severity.
    Unchanged,
    /// They do, but a person pinned the severity: it stays.
    HeldByPin(Entry),
    /// The severity rose.
    Raised(Entry),
}

/// Severity from what the incident's impacts say (kept up to date as they join, see
/// `Incident::absorb`): it only rises on its own, and not while pinned. `cause` is the rule
/// or person that made it look again.
pub fn reclassify(
    incident: &mut Incident,
    thresholds: &ClassificationConfig,
    cause: &str,
) -> Reclassified {
    let (computed, reason) = incident.blast.severity(
        (
            incident.customers.len(),
            incident.regions.len(),
            incident.services.len(),
        ),
        thresholds,
    );
    let old = incident.severity;
    if computed >= old {
        return Reclassified::Unchanged;
    }
    if incident.pinned {
        return Reclassified::HeldByPin(Entry::SeverityHeldPinned {
            cause: cause.to_string(),
            computed,
            reason,
            pinned: old,
        });
    }
    incident.severity = computed;
    Reclassified::Raised(Entry::SeverityRaised {
        cause: cause.to_string(),
        from: old,
        to: computed,
        reason,
    })
}

/// The severity rose while the incident is acknowledged: the acknowledgement holds (the
/// acknowledger is told, and the graver policy's later levels wait for it to lapse). `None`
/// when it was not acknowledged.
pub fn ack_kept_on_rise(incident: &Incident) -> Option<Entry> {
    if incident.status != Status::Acknowledged {
        return None;
    }
    Some(Entry::AckKept {
        by: incident.acknowledged_by.clone().unwrap_or_default(),
    })
}

/// An acknowledgement ran out: the incident is triggered again.
pub fn ack_lapsed(incident: &mut Incident) -> Entry {
    Entry::AckLapsed {
        by: unacknowledge(incident),
    }
}

/// Back to triggered; returns who had acknowledged it.
fn unacknowledge(incident: &mut Incident) -> String {
    incident.status = Status::Triggered;
    incident.acknowledged_at = None;
    incident.acknowledged_by.take().unwrap_or_default()
}

/// `by` acknowledges the incident.
pub fn acknowledge(
    incident: &mut Incident,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Entry, Refusal> {
    match incident.status {
        Status::Resolved => return Err(Refusal::Resolved(incident.id)),
        Status::Acknowledged => {
            return Err(Refusal::AlreadyAcknowledged {
                id: incident.id,
                by: incident.acknowledged_by.clone(),
            })
        }
        Status::Triggered => {}
    }
    incident.status = Status::Acknowledged;
    incident.acknowledged_at = Some(now);
    incident.acknowledged_by = Some(by.to_string());
    Ok(Entry::Acknowledged { by: by.to_string() })
}

/// `by` (a person, or tocsin) resolves the incident; false when it was resolved already.
/// The timeline entry waits for what the engine finds still firing.
pub fn resolve(incident: &mut Incident, by: &str, now: DateTime<Utc>) -> bool {
    if !incident.is_open() {
        return false;
    }
    incident.status = Status::Resolved;
    incident.resolved_at = Some(now);
    incident.resolved_by = Some(by.to_string());
    incident.queue = None;
    true
}

/// What a person's severity change did.
#[derive(Clone, Debug, PartialEq)]
pub enum SeverityChange {
    /// The severity follows the impacts again (the engine reclassifies).
    Unpinned(Entry),
    /// Set and pinned.
    Set { from: u8, to: u8, entry: Entry },
}

/// `by` sets and pins the severity, or unpins it (`None`).
pub fn set_severity(
    incident: &mut Incident,
    severity: Option<u8>,
    by: &str,
    reason: Option<String>,
) -> Result<SeverityChange, Refusal> {
    if !incident.is_open() {
        return Err(Refusal::Resolved(incident.id));
    }
    let by = by.to_string();
    Ok(match severity {
        None => {
            incident.pinned = false;
            SeverityChange::Unpinned(Entry::SeverityUnpinned { by, reason })
        }
        Some(to) => {
            let from = incident.severity;
            incident.severity = to;
            incident.pinned = true;
            SeverityChange::Set {
                from,
                to,
                entry: Entry::SeveritySet {
                    by,
                    from,
                    to,
                    reason,
                },
            }
        }
    })
}

/// Whether a new impact that correlates with this resolved incident reopens it at `now`:
/// it resolved on its own (not by a person, not merged) less than `within` ago.
pub fn reopenable(incident: &Incident, now: DateTime<Utc>, within: chrono::Duration) -> bool {
    incident.status == Status::Resolved
        && incident.merged_into.is_none()
        && incident.resolved_by.as_deref() == Some(TOCSIN)
        && incident.resolved_at.is_some_and(|at| now - at < within)
}

/// A new impact (`by` its rule, `summary`) reopens an incident that resolved on its own:
/// triggered again (an acknowledgement ended with the resolve).
pub fn reopen(incident: &mut Incident, by: &str, summary: &str) -> Entry {
    let resolved_at = incident.resolved_at.take();
    incident.status = Status::Triggered;
    incident.resolved_by = None;
    incident.acknowledged_at = None;
    incident.acknowledged_by = None;
    Entry::Reopened {
        rule: by.to_string(),
        summary: summary.to_string(),
        resolved_at,
    }
}

/// What a person declares (`POST /api/v1/incidents`): checked by the API.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Declaration {
    pub title: String,
    /// Given: set and pinned; else computed from the blast radius.
    pub severity: Option<u8>,
    pub services: Vec<String>,
    pub regions: Vec<String>,
    /// Empty: the customers the catalog places on those services and regions.
    pub customers: Vec<String>,
    pub description: String,
    pub by: String,
}

/// The rule name a declared incident's impacts carry.
pub const MANUAL: &str = "manual";

/// The impacts of a declared incident: one per service and region (one per service when
/// it names no region, one per region when it names no service, one alone when neither),
/// ids from `first_id`. Their source is `manual`: no rule clears them and correlation
/// leaves them alone, so the incident ends only when a person resolves it. A person
/// declaring an outage says it matters: each is an outage of high business impact, and
/// the Sev table reads their spread. `customers` gives those of a service and region.
pub fn declared_impacts(
    declaration: &Declaration,
    first_id: i64,
    customers: impl Fn(Option<&str>, Option<&str>) -> NameSet,
    now: DateTime<Utc>,
) -> Vec<Impact> {
    // The description is each impact's `description` annotation, as an alert's would be.
    let description: crate::signal::Labels = std::sync::Arc::new(crate::signal::LabelSet::from(
        std::collections::BTreeMap::from_iter(
            (!declaration.description.is_empty())
                .then(|| ("description".to_string(), declaration.description.clone())),
        ),
    ));
    let services: Vec<Option<&str>> = match declaration.services.as_slice() {
        [] => vec![None],
        names => names.iter().map(|s| Some(s.as_str())).collect(),
    };
    let regions: Vec<Option<&str>> = match declaration.regions.as_slice() {
        [] => vec![None],
        names => names.iter().map(|r| Some(r.as_str())).collect(),
    };
    let summary: std::sync::Arc<str> = declaration.title.as_str().into();
    let rule: std::sync::Arc<str> = MANUAL.into();
    let mut impacts = Vec::new();
    for service in &services {
        for region in &regions {
            let mut labels = std::collections::BTreeMap::new();
            if let Some(service) = service {
                labels.insert("service".to_string(), service.to_string());
            }
            if let Some(region) = region {
                labels.insert("region".to_string(), region.to_string());
            }
            let fingerprint =
                crate::signal::Signal::new(crate::signal::SourceKind::Manual, labels.clone(), now)
                    .fingerprint();
            let customers = if declaration.customers.is_empty() {
                customers(*service, *region)
            } else {
                declaration.customers.iter().cloned().collect()
            };
            impacts.push(Impact {
                id: first_id + impacts.len() as i64,
                incident_id: 0,
                rule: rule.clone(),
                fingerprint,
                source: crate::signal::SourceKind::Manual,
                kind: crate::config::ImpactKind::Outage,
                sla_breach: false,
                business_impact: Some(crate::config::BusinessImpact::High),
                severity_floor: None,
                service: service.map(str::to_string),
                region: region.map(str::to_string),
                customers,
                labels: std::sync::Arc::new(crate::signal::LabelSet::from(labels)),
                annotations: description.clone(),
                inhibited_by: None,
                sla_measured: None,
                summary: summary.clone(),
                started_at: now,
                cleared_at: None,
                firing_at_resolve: false,
                cri: None,
            });
        }
    }
    impacts
}

/// A new incident `id`, declared by a person, holding `impacts` (from [`declared_impacts`]).
/// Its severity is the declaration's, pinned, or what the impacts' blast radius says.
pub fn declare(
    id: i64,
    declaration: &Declaration,
    impacts: &mut [Impact],
    thresholds: &ClassificationConfig,
    now: DateTime<Utc>,
) -> (Incident, Entry) {
    let (first, rest) = impacts
        .split_first_mut()
        .expect("a declaration has at least one impact");
    first.incident_id = id;
    let mut incident = Incident::opened_by(id, first, 4, now);
    for impact in rest {
        impact.incident_id = id;
        attach(&mut incident, impact);
    }
    incident.title = declaration.title.as_str().into();
    let (severity, reason) = match declaration.severity {
        Some(severity) => {
            incident.pinned = true;
            (severity, format!("set by {}", declaration.by))
        }
        None => incident.blast.severity(
            (
                incident.customers.len(),
                incident.regions.len(),
                incident.services.len(),
            ),
            thresholds,
        ),
    };
    incident.severity = severity;
    let entry = Entry::Declared {
        by: declaration.by.clone(),
        severity,
        reason,
        title: declaration.title.clone(),
        description: declaration.description.clone(),
    };
    (incident, entry)
}

/// `by` makes `responder` the incident's assignee.
pub fn assign(incident: &mut Incident, responder: &str, by: &str) -> Result<Entry, Refusal> {
    if !incident.is_open() {
        return Err(Refusal::Resolved(incident.id));
    }
    incident.assignee = Some(responder.to_string());
    Ok(Entry::Assigned {
        by: by.to_string(),
        responder: responder.to_string(),
    })
}

/// When the incident resolves by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoResolve {
    /// Some impact is active: it does not.
    Cancel,
    /// None of its impacts is known: leave its timer as it is.
    Leave,
    /// Every impact cleared: `resolve_after` after the last cleared.
    At(DateTime<Utc>),
}

/// When an open incident resolves by itself, every impact clear for `after`.
pub fn auto_resolve<'a>(
    incident: &Incident,
    impact: impl Fn(i64) -> Option<&'a Impact>,
    after: chrono::Duration,
) -> AutoResolve {
    let mut last_clear = None;
    for id in &incident.impact_ids {
        match impact(*id).map(|i| i.cleared_at) {
            Some(None) => return AutoResolve::Cancel,
            Some(Some(at)) => last_clear = last_clear.max(Some(at)),
            None => {}
        }
    }
    match last_clear {
        Some(at) => AutoResolve::At(at + after),
        None => AutoResolve::Leave,
    }
}

/// Every impact of the incident is clear (those no longer known count as clear).
pub fn all_clear<'a>(incident: &Incident, impact: impl Fn(i64) -> Option<&'a Impact>) -> bool {
    incident
        .impact_ids
        .iter()
        .all(|x| impact(*x).is_none_or(|m| !m.is_active()))
}

/// When the response deadline of a customer report falls due: only while the incident is
/// triggered and the deadline was not breached already.
pub fn respond_by(incident: &Incident, breached: bool) -> Option<DateTime<Utc>> {
    incident
        .respond_by
        .filter(|_| incident.status == Status::Triggered && !breached)
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
