//! The data the store persists: what the engine hands it to write ([`Changes`]) and what
//! it reads back to go on after a restart ([`Snapshot`]). Plain data the engine fills.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::incident::case::{Case, CaseEntry};
use crate::incident::{Impact, Incident, TimelineEntry};
use crate::paging::{Page, PagingState, ScheduleOverride, Silence};
use crate::rules::RuleState;
use crate::signal::{Fingerprint, Signal};

/// A pushed alert's lease: when it resolves unless it is pushed again.
///
/// Not a row of its own: the store keeps it as the signal its rule states hold, `expires_at`
/// included, and a restart takes it from there (see the engine core's `restore`): a row of its
/// own would write the whole signal a second time for each new alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lease {
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub expires_at: DateTime<Utc>,
    /// The same signal the rule states hold, not a copy.
    pub signal: Arc<Signal>,
}

/// A heartbeat's last ping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatState {
    pub last_ping: Option<DateTime<Utc>>,
    pub missed: bool,
}

/// Durable state, as written to and read back from the store.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub incidents: Vec<Incident>,
    /// Those of the open incidents, and those a person resolved while they fired (see
    /// `RuleState::resolved_firing`).
    pub impacts: Vec<Impact>,
    pub paging: Vec<(i64, PagingState)>,
    /// In the order of their rows: a key found twice is the later row's (see `restore`).
    pub rule_states: Vec<(String, Fingerprint, RuleState)>,
    /// Rows of the `leases` table (`leases.id`), where stores written before leases were
    /// taken from rule states kept them: read once after the upgrade, then deleted.
    pub leases: Vec<(i64, Fingerprint, Lease)>,
    pub heartbeats: Vec<(String, HeartbeatState)>,
    pub next_incident_id: i64,
    pub next_impact_id: i64,
    pub next_rule_state_row: i64,
    pub next_page_id: i64,
    /// Incidents that resolved on their own lately (see [`crate::store::Store::reopenable`]),
    /// with their paging and impacts: a new impact may reopen one.
    pub reopenable: Vec<(Incident, Option<PagingState>, Vec<Impact>)>,
    /// Run-time silences not yet ended, and on-call overrides, in the order made.
    pub silences: Vec<Silence>,
    pub overrides: Vec<ScheduleOverride>,
    /// Resolved incidents whose paging row outlived the time they could reopen in.
    pub stale_paging: Vec<i64>,
    /// Open support cases.
    pub cases: Vec<Case>,
    pub next_case_id: i64,
    /// The services' availability (JSON of `incident::sla::Availability`), when stored.
    pub availability: Option<String>,
}

/// What changed since the engine core's last `take_changes`; `None` means deleted.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Without their impact ids (each impact names its incident).
    pub incidents: Vec<Incident>,
    pub impacts: Vec<Impact>,
    /// Impacts that joined an incident in this batch (new ones, and those a merge moved),
    /// by incident, in id order: how the store finds an incident's impacts.
    pub impact_links: Vec<(i64, Vec<i64>)>,
    pub timeline: Vec<TimelineEntry>,
    pub paging: Vec<(i64, Option<PagingState>)>,
    /// Rule states to write whole (each to its `row`), and rows of rule states gone.
    pub rule_states: Vec<(String, Fingerprint, RuleState)>,
    pub deleted_rule_states: Vec<i64>,
    /// Rows of the `leases` table to delete (see [`Snapshot::leases`]).
    pub deleted_leases: Vec<i64>,
    pub heartbeats: Vec<(String, HeartbeatState)>,
    pub pages: Vec<Page>,
    /// Inbox inputs handled in this batch, with their replies (JSON): marked done in the
    /// same transaction as their effects, so a takeover neither loses nor repeats them.
    pub inbox: Vec<(i64, String)>,
    /// Run-time silences made or expired (each written whole).
    pub silences: Vec<Silence>,
    /// On-call overrides made (`Some`) or deleted, by id.
    pub overrides: Vec<(String, Option<ScheduleOverride>)>,
    /// Support cases to write whole, and their new timeline entries.
    pub cases: Vec<Case>,
    pub case_timeline: Vec<CaseEntry>,
    /// The services' availability to store (JSON of `incident::sla::Availability`).
    pub availability: Option<String>,
    /// Where the rows the store has never held begin; `None` when not known.
    pub first_new: Option<FirstNew>,
}

/// The first impact id and rule-state row the engine numbered after its previous batch:
/// rows from these on are new to the store. PostgreSQL writes them as plain inserts, which
/// take less of its time than an update-or-insert of a row that may be there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstNew {
    pub impact: i64,
    pub rule_state_row: i64,
}

impl FirstNew {
    pub fn is_new_impact(&self, id: i64) -> bool {
        id >= self.impact
    }

    pub fn is_new_rule_state(&self, row: i64) -> bool {
        row >= self.rule_state_row
    }
}

impl Changes {
    /// Rows this batch writes, about (one per change).
    pub fn rows(&self) -> usize {
        self.inbox.len()
            + self.incidents.len()
            + self.impacts.len()
            + self.impact_links.len()
            + self.timeline.len()
            + self.paging.len()
            + self.rule_states.len()
            + self.deleted_rule_states.len()
            + self.deleted_leases.len()
            + self.heartbeats.len()
            + self.pages.len()
            + self.silences.len()
            + self.overrides.len()
            + self.cases.len()
            + self.case_timeline.len()
            + usize::from(self.availability.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.rows() == 0
    }
}
