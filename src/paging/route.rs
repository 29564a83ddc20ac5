//! Routes and silences: which policy (or queue) an incident goes to, and whether it is hushed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::config::{Matcher, RouteConfig, SilenceConfig};
use crate::signal::LabelSet;

/// Incident labels plus `severity`, as routes and silences see them.
pub fn route_labels(labels: &LabelSet, severity: u8) -> BTreeMap<String, String> {
    let mut all = BTreeMap::from(labels);
    all.insert("severity".into(), severity.to_string());
    all
}

fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    crate::config::matcher::all_match(matchers, labels)
}

/// The first route whose matchers all hold.
pub fn select<'a>(
    routes: &'a [RouteConfig],
    labels: &LabelSet,
    severity: u8,
) -> Option<(usize, &'a RouteConfig)> {
    let labels = route_labels(labels, severity);
    routes
        .iter()
        .enumerate()
        .find(|(_, r)| all_match(&r.matchers, &labels))
}

/// The first silence in force at `now` for these labels; `window_open` answers for windows.
pub fn silenced<'a>(
    silences: &'a [SilenceConfig],
    labels: &LabelSet,
    severity: u8,
    now: DateTime<Utc>,
    window_open_until: impl Fn(&str, DateTime<Utc>) -> Option<DateTime<Utc>>,
) -> Option<(usize, &'a SilenceConfig, Option<DateTime<Utc>>)> {
    let labels = route_labels(labels, severity);
    silences.iter().enumerate().find_map(|(i, s)| {
        if !all_match(&s.matchers, &labels) {
            return None;
        }
        match &s.window {
            None => Some((i, s, None)),
            Some(w) => window_open_until(w, now).map(|until| (i, s, Some(until))),
        }
    })
}
