//! Impacts, incidents and their timeline.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::blast::Blast;
use crate::config::{BusinessImpact, ImpactKind};
use crate::signal::{CriDetails, Fingerprint, Labels, SourceKind};

/// One rule's conclusion about one signal key: who is hurt and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impact {
    pub id: i64,
    pub incident_id: i64,
    pub rule: std::sync::Arc<str>,
    pub fingerprint: Fingerprint,
    pub source: SourceKind,
    pub kind: ImpactKind,
    pub sla_breach: bool,
    pub business_impact: Option<BusinessImpact>,
    pub severity_floor: Option<u8>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub customers: NameSet,
    pub labels: Labels,
    /// Shared with the title of the incident it opened: one string for both.
    pub summary: std::sync::Arc<str>,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub started_at: DateTime<Utc>,
    /// When its signal cleared (or the impact ended with its incident); `None` while it
    /// fires, which an impact of a resolved incident does when `firing_at_resolve`.
    #[serde(serialize_with = "crate::signal::rfc3339::serialize_opt")]
    pub cleared_at: Option<DateTime<Utc>>,
    /// A person resolved its incident while its signal still fired: `cleared_at` waits for
    /// the signal to clear. Left out of the row when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub firing_at_resolve: bool,
    #[serde(default)]
    pub cri: Option<Box<CriDetails>>,
    /// What its signal said about itself (`summary`, `description`, `runbook_url`, links,
    /// the alert's `generatorURL`) and what its rule's `annotations:` added. Shared with the
    /// signal when the rule adds none.
    #[serde(default, skip_serializing_if = "crate::signal::no_labels")]
    pub annotations: Labels,
    /// A dependent impact: it joined incident N because a service it depends on
    /// (`catalog.services[].depends_on`) is down there; it pages on its own when N resolves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inhibited_by: Option<i64>,
    /// For a rule's `sla_breach: auto`: what was measured when the burn rates said its
    /// service misses its SLA (and `sla_breach` became true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_measured: Option<Box<super::sla::Measurement>>,
}

impl Impact {
    pub fn is_active(&self) -> bool {
        self.cleared_at.is_none()
    }

    /// Major: breaches SLA or is an outage.
    pub fn is_major(&self) -> bool {
        self.sla_breach || self.kind == ImpactKind::Outage
    }

    /// What this impact says for the Sev table.
    pub fn blast(&self) -> Blast {
        Blast {
            disaster_kind: self.kind.is_disaster_kind(),
            major: self.is_major(),
            sla_breach: self.sla_breach,
            high_business_impact: self.business_impact == Some(BusinessImpact::High),
            floor: self.severity_floor,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Triggered,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Triggered => "triggered",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        match text {
            "triggered" => Some(Status::Triggered),
            "acknowledged" => Some(Status::Acknowledged),
            "resolved" => Some(Status::Resolved),
            _ => None,
        }
    }
}

/// A set of correlated impacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub title: std::sync::Arc<str>,
    pub severity: u8,
    pub pinned: bool,
    pub status: Status,
    /// Ascending. Not in the stored row: every impact row names its incident, and a row
    /// rewritten at each new impact would grow with the incident (`Store::load` fills it).
    #[serde(skip)]
    pub impact_ids: Vec<i64>,
    /// Labels every impact shares (Alertmanager's commonLabels).
    pub labels: Labels,
    pub services: NameSet,
    pub regions: NameSet,
    pub customers: NameSet,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub opened_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize_opt")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize_opt")]
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    #[serde(serialize_with = "crate::signal::rfc3339::serialize_opt")]
    pub respond_by: Option<DateTime<Utc>>,
    pub sr_severity: Option<String>,
    /// The triage queue it waits in (Sev 4 routes); the first of them when it waits in
    /// several (`queue: component` and several services hit). The store indexes this one.
    pub queue: Option<String>,
    /// The triage queues it waits in besides `queue`, in the order of its services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_queues: Vec<String>,
    /// Its troubleshooting guide: its opening rule's `tsg.url`, else that of the first
    /// service it hits that has one (`catalog.services[].tsg.url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsg: Option<String>,
    /// The run of its TSG's action, once tocsin called it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsg_action: Option<Box<super::tsg_action::TsgAction>>,
    pub merged_into: Option<i64>,
    /// The responder who owns it (assigned, or who took it from a triage queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// What its impacts say for the Sev table, kept up to date as they join (not stored:
    /// worked out again from the impacts on restart).
    #[serde(skip)]
    pub blast: Blast,
}

impl Incident {
    /// A new incident, opened at `now` for its first impact, at `severity`.
    pub fn opened_by(id: i64, impact: &Impact, severity: u8, now: DateTime<Utc>) -> Incident {
        Incident {
            id,
            title: impact.summary.clone(),
            severity,
            pinned: false,
            status: Status::Triggered,
            impact_ids: vec![impact.id],
            labels: impact.labels.clone(),
            services: impact.service.iter().cloned().collect(),
            regions: impact.region.iter().cloned().collect(),
            customers: impact.customers.clone(),
            opened_at: now,
            acknowledged_at: None,
            acknowledged_by: None,
            resolved_at: None,
            resolved_by: None,
            respond_by: impact.cri.as_ref().map(|c| c.respond_by),
            sr_severity: impact.cri.as_ref().map(|c| c.sr_severity.clone()),
            queue: None,
            other_queues: Vec::new(),
            merged_into: None,
            assignee: None,
            tsg: None,
            tsg_action: None,
            blast: impact.blast(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.status != Status::Resolved
    }

    /// Every triage queue it waits in, the first first.
    pub fn queues(&self) -> impl Iterator<Item = &String> {
        self.queue.iter().chain(self.other_queues.iter())
    }

    pub fn in_queue(&self, queue: &str) -> bool {
        self.queues().any(|q| q == queue)
    }

    /// Take in what a newly joined impact says: the names it hits, the labels it shares,
    /// its response deadline and its part of the blast radius. Every one of these only
    /// grows (or, for labels, narrows) as impacts join, so this gives what walking all the
    /// impacts again would. Returns whether the incident's stored row changed: most impacts
    /// that join an open incident hit what it already names, and its row need not be written
    /// again for them.
    pub fn absorb(&mut self, impact: &Impact) -> bool {
        let names = (
            self.services.len(),
            self.regions.len(),
            self.customers.len(),
        );
        let labels = std::sync::Arc::as_ptr(&self.labels);
        let deadline = self.respond_by;
        self.services.add_all(&impact.service);
        self.regions.add_all(&impact.region);
        self.customers.add_all(&impact.customers);
        self.share_labels(&impact.labels);
        if let Some(cri) = &impact.cri {
            self.take_deadline(cri.respond_by, &cri.sr_severity);
        }
        // Not stored: counted again from the impacts on restore.
        self.blast = self.blast.join(impact.blast());
        names
            != (
                self.services.len(),
                self.regions.len(),
                self.customers.len(),
            )
            || labels != std::sync::Arc::as_ptr(&self.labels)
            || deadline != self.respond_by
    }

    /// Take in everything `other` (merged into this one) took in from its impacts.
    pub fn absorb_incident(&mut self, other: &Incident) {
        self.services.add_all(&other.services);
        self.regions.add_all(&other.regions);
        self.customers.add_all(&other.customers);
        self.share_labels(&other.labels);
        if let (Some(at), Some(sr_severity)) = (other.respond_by, &other.sr_severity) {
            self.take_deadline(at, sr_severity);
        }
        self.blast = self.blast.join(other.blast);
    }

    /// Keep the labels `labels` shares with this incident's (Alertmanager's commonLabels).
    fn share_labels(&mut self, labels: &Labels) {
        if !self.labels.is_subset_of(labels) {
            self.labels = std::sync::Arc::new(self.labels.intersection(labels));
        }
    }

    /// The earliest response deadline of its customer-reported impacts wins.
    fn take_deadline(&mut self, at: DateTime<Utc>, sr_severity: &str) {
        if self.respond_by.is_none_or(|r| at < r) {
            self.respond_by = Some(at);
            self.sr_severity = Some(sr_severity.to_string());
        }
    }
}

/// The incident as the API, pages and the dashboard show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: i64,
    pub title: String,
    pub severity: u8,
    pub status: Status,
    pub pinned: bool,
    pub services: Vec<String>,
    pub regions: Vec<String>,
    pub customers: Vec<String>,
    pub customer_count: usize,
    pub labels: BTreeMap<String, String>,
    pub opened_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub respond_by: Option<DateTime<Utc>>,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Every triage queue it waits in (`queue` first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sr_severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsg: Option<String>,
    /// Its TSG action's run: called when, outcome and note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsg_action: Option<super::tsg_action::TsgAction>,
}

impl IncidentView {
    pub fn new(incident: &Incident, external_url: &str) -> Self {
        IncidentView {
            id: incident.id,
            title: incident.title.to_string(),
            severity: incident.severity,
            status: incident.status,
            pinned: incident.pinned,
            services: incident.services.iter().cloned().collect(),
            regions: incident.regions.iter().cloned().collect(),
            customers: incident.customers.iter().cloned().collect(),
            customer_count: incident.customers.len(),
            labels: incident.labels.as_ref().into(),
            opened_at: incident.opened_at,
            acknowledged_at: incident.acknowledged_at,
            acknowledged_by: incident.acknowledged_by.clone(),
            resolved_at: incident.resolved_at,
            respond_by: incident.respond_by,
            url: format!("{external_url}/incidents/{}", incident.id),
            queue: incident.queue.clone(),
            queues: incident.queues().cloned().collect(),
            sr_severity: incident.sr_severity.clone(),
            merged_into: incident.merged_into,
            assignee: incident.assignee.clone(),
            tsg: incident.tsg.clone(),
            tsg_action: incident.tsg_action.as_deref().cloned(),
        }
    }
}

/// Names (services, regions, customers) sorted, each once, in one exact-size allocation:
/// most incidents name one or two, where a `BTreeSet`'s first node takes ~280 bytes and
/// every open incident keeps three. A boxed slice: 16 bytes in the incident where a Vec takes
/// 24. (De)serialized as a list, like the set it replaces.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NameSet(Box<[String]>);

impl NameSet {
    pub fn new() -> Self {
        NameSet::default()
    }

    /// Add `name`; false when it was there already.
    pub fn insert(&mut self, name: String) -> bool {
        match self.0.binary_search(&name) {
            Ok(_) => false,
            Err(at) => {
                let mut names = std::mem::take(&mut self.0).into_vec();
                names.insert(at, name);
                self.0 = names.into_boxed_slice();
                true
            }
        }
    }

    /// Add a copy of each of `names` not there yet (and copy no other).
    pub fn add_all<'a>(&mut self, names: impl IntoIterator<Item = &'a String>) {
        for name in names {
            if !self.contains(name) {
                self.insert(name.clone());
            }
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|n| n.as_str().cmp(name)).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for NameSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl FromIterator<String> for NameSet {
    fn from_iter<I: IntoIterator<Item = String>>(names: I) -> Self {
        let set: BTreeSet<String> = names.into_iter().collect();
        NameSet(set.into_iter().collect())
    }
}

impl From<BTreeSet<String>> for NameSet {
    fn from(set: BTreeSet<String>) -> Self {
        NameSet(set.into_iter().collect())
    }
}

impl Extend<String> for NameSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, names: I) {
        for name in names {
            self.insert(name);
        }
    }
}

impl<'a> IntoIterator for &'a NameSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Serialize for NameSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for NameSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<String>::deserialize(deserializer).map(NameSet::from_iter)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::ClassificationConfig;
    use crate::incident::classify;
    use crate::signal::{Contact, Fingerprint, LabelSet, SourceKind};

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_571_200 + minutes * 60, 0).unwrap()
    }

    fn impact(id: i64, kind: ImpactKind, region: &str, customers: &[&str]) -> Impact {
        let labels: BTreeMap<String, String> = [
            ("service", "storage"),
            ("region", region),
            ("instance", &format!("host-{id}")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Impact {
            id,
            incident_id: 1,
            rule: "r".into(),
            fingerprint: Fingerprint(id as u64),
            source: SourceKind::Alert,
            kind,
            sla_breach: false,
            business_impact: None,
            severity_floor: None,
            service: Some("storage".into()),
            region: Some(region.into()),
            customers: customers.iter().map(|c| c.to_string()).collect(),
            labels: std::sync::Arc::new(LabelSet::from(labels)),
            summary: "s".into(),
            started_at: at(0),
            cleared_at: None,
            firing_at_resolve: false,
            annotations: Default::default(),
            cri: None,
            inhibited_by: None,
            sla_measured: None,
        }
    }

    /// As the engine opens an incident for its first impact.
    fn opened_by(impact: &Impact) -> Incident {
        Incident::opened_by(1, impact, 4, at(0))
    }

    fn severity(incident: &Incident) -> u8 {
        let counts = (
            incident.customers.len(),
            incident.regions.len(),
            incident.services.len(),
        );
        incident
            .blast
            .severity(counts, &ClassificationConfig::default())
            .0
    }

    fn with_deadline(mut impact: Impact, minutes: i64, sr_severity: &str) -> Impact {
        impact.cri = Some(Box::new(CriDetails {
            id: format!("cri-{}", impact.id),
            sr_severity: sr_severity.into(),
            contact: Contact::default(),
            received_at: at(0),
            respond_by: at(minutes),
        }));
        impact
    }

    #[test]
    fn absorbing_impacts_one_by_one_says_what_the_whole_set_says() {
        let impacts = [
            impact(1, ImpactKind::Degradation, "china-east", &["contoso"]),
            with_deadline(
                impact(2, ImpactKind::Latency, "china-east", &["fabrikam"]),
                60,
                "B",
            ),
            with_deadline(
                impact(3, ImpactKind::Outage, "china-north", &["contoso"]),
                30,
                "A",
            ),
        ];
        let mut incident = opened_by(&impacts[0]);
        assert_eq!(severity(&incident), 4);
        for impact in &impacts[1..] {
            incident.absorb(impact);
        }
        // Two customers, two regions and an outage: Sev 1, as classifying all three says.
        let whole = classify(impacts.iter(), &ClassificationConfig::default()).0;
        assert_eq!((severity(&incident), whole), (1, 1));
        let names = |set: &NameSet| set.iter().cloned().collect::<Vec<_>>();
        assert_eq!(names(&incident.customers), ["contoso", "fabrikam"]);
        assert_eq!(names(&incident.regions), ["china-east", "china-north"]);
        assert_eq!(names(&incident.services), ["storage"]);
        // Only the label all three share is left.
        assert_eq!(
            BTreeMap::from(incident.labels.as_ref()),
            BTreeMap::from([("service".to_string(), "storage".to_string())])
        );
        // The earliest deadline wins, with its SR severity.
        assert_eq!(incident.respond_by, Some(at(30)));
        assert_eq!(incident.sr_severity.as_deref(), Some("A"));
    }

    #[test]
    fn a_merged_incident_brings_everything_its_impacts_said() {
        let first = impact(1, ImpactKind::Degradation, "china-east", &["contoso"]);
        let second = with_deadline(
            impact(2, ImpactKind::Outage, "china-north", &["fabrikam"]),
            45,
            "A",
        );
        let mut into = opened_by(&first);
        into.absorb_incident(&opened_by(&second));
        let mut one_by_one = opened_by(&first);
        one_by_one.absorb(&second);
        assert_eq!(
            (
                &into.customers,
                &into.regions,
                &into.labels,
                into.respond_by,
                &into.sr_severity,
                into.blast
            ),
            (
                &one_by_one.customers,
                &one_by_one.regions,
                &one_by_one.labels,
                one_by_one.respond_by,
                &one_by_one.sr_severity,
                one_by_one.blast
            )
        );
        assert_eq!(severity(&into), 1);
    }
}
