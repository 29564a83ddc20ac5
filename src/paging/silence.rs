//! Silences made at run time (through the API or amtool), as Alertmanager has them: label
//! matchers over each impact of an incident, from `starts_at` to `ends_at`. While one holds
//! an incident its pages wait; a new impact the silence does not match ends the hold.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::Matcher;
use crate::incident::{Impact, Incident};

/// One silence, as stored and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    /// When it was made, or last expired.
    pub updated_at: DateTime<Utc>,
}

/// Where a silence stands at a time (Alertmanager's `status.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SilenceState {
    /// Starts later: a maintenance window ahead.
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

impl Silence {
    pub fn state(&self, now: DateTime<Utc>) -> SilenceState {
        if self.ends_at <= now {
            SilenceState::Expired
        } else if self.starts_at > now {
            SilenceState::Pending
        } else {
            SilenceState::Active
        }
    }

    /// Does it match every one of `targets` (and is there one)?
    pub fn matches_all(&self, targets: &[BTreeMap<String, String>]) -> bool {
        !targets.is_empty()
            && targets
                .iter()
                .all(|labels| crate::config::matcher::all_match(&self.matchers, labels))
    }

    /// Expire it at `now`: it ends now (and one that had not started never starts).
    pub fn expire(&mut self, now: DateTime<Utc>) {
        self.starts_at = self.starts_at.min(now);
        self.ends_at = now;
        self.updated_at = now;
    }
}

/// The label sets a silence must match to hold an incident: one per impact (its labels
/// plus `severity`, `service`, `region` and `customer`), one per customer of an impact
/// that hurts several. An incident without impacts is seen through its own labels and names.
pub fn targets<'a>(
    incident: &Incident,
    impacts: impl IntoIterator<Item = &'a Impact>,
) -> Vec<BTreeMap<String, String>> {
    let severity = incident.severity.to_string();
    let mut out = Vec::new();
    let mut add = |labels: &crate::signal::LabelSet,
                   service: Option<&String>,
                   region: Option<&String>,
                   customers: &crate::incident::NameSet| {
        let mut base = BTreeMap::from(labels);
        base.insert("severity".into(), severity.clone());
        if let Some(s) = service {
            base.insert("service".into(), s.clone());
        }
        if let Some(r) = region {
            base.insert("region".into(), r.clone());
        }
        if customers.is_empty() {
            out.push(base);
        } else {
            for customer in customers.iter() {
                let mut one = base.clone();
                one.insert("customer".into(), customer.clone());
                out.push(one);
            }
        }
    };
    let mut any = false;
    for impact in impacts {
        any = true;
        add(
            &impact.labels,
            impact.service.as_ref(),
            impact.region.as_ref(),
            &impact.customers,
        );
    }
    if !any {
        add(
            &incident.labels,
            incident.services.iter().next(),
            incident.regions.iter().next(),
            &incident.customers,
        );
    }
    out
}

/// The silence holding an incident whose impacts are `targets` at `now`: of those active
/// and matching every target, the one that ends last (the hold lasts until it ends).
pub fn holding<'a>(
    silences: &'a [Silence],
    targets: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Option<&'a Silence> {
    silences
        .iter()
        .filter(|s| s.state(now) == SilenceState::Active && s.matches_all(targets))
        .max_by_key(|s| s.ends_at)
}

/// Why a silence asked for cannot be made, in the API's words.
pub fn check(
    matchers: &[Matcher],
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if matchers.is_empty() {
        return Err("`matchers` must hold at least one matcher, e.g. service=\"storage\"".into());
    }
    if matchers.iter().all(|m| m.matches_value("")) {
        return Err(
            "the matchers would match every incident (each matches an absent label); \
             name at least one label value, e.g. service=\"storage\""
                .into(),
        );
    }
    if ends_at <= starts_at {
        return Err(format!(
            "`ends_at` ({}) must be after `starts_at` ({})",
            ends_at.to_rfc3339(),
            starts_at.to_rfc3339()
        ));
    }
    if ends_at <= now {
        return Err(format!(
            "`ends_at` ({}) is in the past",
            ends_at.to_rfc3339()
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "silence_tests.rs"]
mod tests;
