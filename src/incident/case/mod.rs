//! Support cases: a customer's service request (SR) as support works it, from the first
//! response to its close. A case has an owner, the customer's case-owner contact, an
//! initial-response deadline (`sr_response`) and, for SR A and B, an update cadence
//! (`sr_engagement`). When support needs engineering it is escalated to a CRI, and the case
//! and the incident name each other.
//!
//! Pure: `decide` says when a case next needs attention and what is due; the engine keeps
//! the open cases and their timers and applies what the transitions here say.

pub mod decide;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::signal::Contact;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Resolved,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::Resolved => "resolved",
        }
    }
}

/// One service request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: i64,
    pub customer: String,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    pub summary: String,
    /// The customer's case owner.
    pub contact: Contact,
    pub status: CaseStatus,
    pub opened_by: String,
    pub opened_at: DateTime<Utc>,
    /// Whoever took the case, else its opener.
    pub owner: String,
    #[serde(default)]
    pub taken_at: Option<DateTime<Utc>>,
    /// The initial-response deadline.
    pub respond_by: DateTime<Utc>,
    #[serde(default)]
    pub responded_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub responded_by: Option<String>,
    /// When the deadline was met: the case's first response, or an ack of its incident.
    #[serde(default)]
    pub deadline_met_at: Option<DateTime<Utc>>,
    /// The deadline passed unmet (it breaches once).
    #[serde(default)]
    pub response_breached: bool,
    /// The deadline is the incident's (a case made by `POST /api/v1/cri`): the incident's
    /// timer pages a breach, and the case's does not.
    #[serde(default)]
    pub deadline_on_incident: bool,
    /// The last response or update: the engagement cadence runs from here.
    #[serde(default)]
    pub last_update_at: Option<DateTime<Utc>>,
    /// Cadence intervals missed since the last update: 1 paged the owner
    /// (`engagement_due`), 2 escalated by the policy (`engagement_missed`).
    #[serde(default)]
    pub missed_intervals: u8,
    /// The customer asked to stop continuous work (SR B).
    #[serde(default)]
    pub customer_exit_at: Option<DateTime<Utc>>,
    /// The escalation policy of the first matching `case_routes:` entry when it opened.
    #[serde(default)]
    pub policy: Option<String>,
    /// The incident of the CRI it was escalated to (or made with).
    #[serde(default)]
    pub incident_id: Option<i64>,
    #[serde(default)]
    pub resolved_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub resolved_by: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
    /// The escalation of its last page by the policy's levels, while nobody has
    /// acknowledged it, responded or updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<CaseEscalation>,
    /// The last acknowledgement of one of its pages.
    #[serde(default)]
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub acknowledged_by: Option<String>,
}

/// A case page's escalation: the level paged last and when the next one is due.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseEscalation {
    /// The event of the page that started it (`triggered`, `response_breached`,
    /// `engagement_missed`).
    pub event: String,
    pub level: usize,
    pub next_at: DateTime<Utc>,
}

impl Case {
    pub fn is_open(&self) -> bool {
        self.status == CaseStatus::Open
    }

    /// The labels `case_routes:` match.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("sr_severity", &self.sr_severity),
            ("customer", &self.customer),
            ("service", &self.service),
            ("region", &self.region),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
    }
}

/// A case as support opens it (checked by `sources::case`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenCase {
    pub customer: String,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    pub summary: String,
    pub contact: Contact,
    pub by: String,
}

/// A step in a case's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseEntry {
    pub case_id: i64,
    pub at: DateTime<Utc>,
    /// `opened`, `taken`, `responded`, `update`, `customer_notified`, `response_breached`,
    /// `engagement_due`, `engagement_missed`, `customer_exit`, `escalated`, `acknowledged`,
    /// `incident_acknowledged`, `incident_resolved`, `paged`, `unrouted`, `resolved`.
    pub kind: String,
    pub actor: String,
    pub message: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// What a page about a case carries (in the page payload's `case`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CasePayload {
    pub id: i64,
    pub customer: String,
    pub service: String,
    pub region: String,
    pub sr_severity: String,
    pub status: CaseStatus,
    pub owner: String,
    pub respond_by: DateTime<Utc>,
    pub url: String,
    /// An update's text, for the update sent to the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CasePayload {
    pub fn new(case: &Case, external_url: &str) -> Self {
        CasePayload {
            id: case.id,
            customer: case.customer.clone(),
            service: case.service.clone(),
            region: case.region.clone(),
            sr_severity: case.sr_severity.clone(),
            status: case.status,
            owner: case.owner.clone(),
            respond_by: case.respond_by,
            url: format!("{external_url}/api/v1/cases/{}", case.id),
            text: None,
        }
    }
}
