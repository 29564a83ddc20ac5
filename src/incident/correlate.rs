//! Which open incidents a new impact belongs to.
//!
//! Two impacts belong together when both are active within the correlation window and they
//! share a value of any label named in `correlation.by`. The relation is transitive: an impact
//! that links two incidents merges them.

use chrono::{DateTime, Duration, Utc};

use super::model::{Impact, Incident};

/// Do two impacts share any of the `by` labels (present and non-empty on both)?
pub fn related(a: &Impact, b: &Impact, by: &[String]) -> bool {
    by.iter()
        .any(|name| match (a.labels.get(name), b.labels.get(name)) {
            (Some(x), Some(y)) => !x.is_empty() && x == y,
            _ => false,
        })
}

/// Is the impact active now, or cleared no longer than `window` ago?
pub fn within_window(impact: &Impact, now: DateTime<Utc>, window: Duration) -> bool {
    match impact.cleared_at {
        None => true,
        Some(cleared) => now - cleared <= window,
    }
}

/// The open incidents the new impact correlates with, oldest first.
pub fn candidates<'a>(
    new: &Impact,
    incidents: impl Iterator<Item = &'a Incident>,
    impact_of: impl Fn(i64) -> Option<&'a Impact>,
    by: &[String],
    window: Duration,
    now: DateTime<Utc>,
) -> Vec<i64> {
    let mut ids: Vec<i64> = incidents
        .filter(|incident| incident.is_open())
        .filter(|incident| {
            incident
                .impact_ids
                .iter()
                .filter_map(|id| impact_of(*id))
                .any(|existing| within_window(existing, now, window) && related(existing, new, by))
        })
        .map(|incident| incident.id)
        .collect();
    ids.sort_unstable();
    ids
}
