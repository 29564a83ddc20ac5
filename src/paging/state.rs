//! What paging keeps for one open incident, stored with it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::escalate::Escalation;
use super::page::{PageEvent, Recipient};

/// Paging state of one open incident.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PagingState {
    pub escalation: Option<Escalation>,
    /// Everyone paged so far, sorted, each once: they hear of the ack and the resolution.
    /// A sorted `Vec` rather than a `BTreeSet`, whose first node alone takes ~500 bytes
    /// for the one or two recipients an incident usually has (stored the same way).
    pub paged: Vec<Recipient>,
    /// Index of the silence that held paging back, noted once.
    pub silenced_by: Option<usize>,
    /// Id of the run-time silence holding the pages back, noted once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// The pause outside the route's windows was noted in the timeline.
    pub pause_noted: bool,
    pub response_breached: bool,
    /// When everyone paged was last told of a change (`impact_added`, `reopened`, `merged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// An update held back until `update_interval` after `updated_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_update: Option<PageEvent>,
    /// Each page made, oldest first (at most [`MAX_HISTORY`]): the next pages say who was
    /// paged and when, and whether their recipient heard of the incident before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PagedEntry>,
    /// Steps of the paged people's notification rules still waiting, earliest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<super::steps::WaitingStep>,
    /// Incidents merged into this one that those paged have not heard of yet (the next
    /// `merged` update tells them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<MergedNews>,
}

/// An incident merged into another: what the `merged` update says of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedNews {
    pub incident: i64,
    pub title: String,
    /// The impacts it brought.
    pub impacts: Vec<i64>,
}

/// Pages an incident remembers; older ones are dropped first.
pub const MAX_HISTORY: usize = 64;

/// One page made about an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PagedEntry {
    /// The responder id (or `webhook:NAME`).
    pub recipient: String,
    pub channel: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<usize>,
    pub at: DateTime<Utc>,
    /// The incident's severity when the page was made.
    pub severity: u8,
}

impl PagedEntry {
    /// A page that asked its recipient to respond (not a notice of an ack or resolution).
    pub fn asks_response(&self) -> bool {
        !matches!(self.event.as_str(), "acknowledged" | "resolved")
    }
}

impl PagingState {
    /// Note that `recipient` was paged (once).
    pub fn add_paged(&mut self, recipient: Recipient) {
        if let Err(at) = self.paged.binary_search(&recipient) {
            // Room for this one only: a Vec's first growth makes room for four.
            self.paged.reserve_exact(1);
            self.paged.insert(at, recipient);
        }
    }

    /// Remember a page made (the oldest is dropped past [`MAX_HISTORY`]).
    pub fn remember(&mut self, entry: PagedEntry) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(0);
        }
        self.history.push(entry);
    }
}
