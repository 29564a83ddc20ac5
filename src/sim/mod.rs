//! Running the engine's core on a simulated clock, for `tocsin test` and `tocsin replay`.
//! This is the very same [`Core`] the daemon runs; only the clock and the store differ.

pub mod input;
pub mod replay;
pub mod test_files;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::engine::{Core, Input, Reply, Setup};
use crate::incident::case::{Case, CaseEntry};
use crate::incident::{Impact, Incident, TimelineEntry};
use crate::metrics::Metrics;
use crate::paging::Page;

/// A core on a simulated clock, with everything it wrote kept in memory.
pub struct Simulation {
    core: Core,
    now: DateTime<Utc>,
    pub incidents: BTreeMap<i64, Incident>,
    pub impacts: BTreeMap<i64, Impact>,
    pub timeline: Vec<TimelineEntry>,
    pub pages: Vec<Page>,
    pub cases: BTreeMap<i64, Case>,
    pub case_timeline: Vec<CaseEntry>,
}

impl Simulation {
    pub fn new(setup: Arc<Setup>, start: DateTime<Utc>) -> Self {
        Simulation {
            core: Core::new(setup, Arc::new(Metrics::new()), start),
            now: start,
            incidents: BTreeMap::new(),
            impacts: BTreeMap::new(),
            timeline: Vec::new(),
            pages: Vec::new(),
            cases: BTreeMap::new(),
            case_timeline: Vec::new(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Move the clock to `t`, firing every timer at its own time on the way.
    pub fn advance_to(&mut self, t: DateTime<Utc>) {
        // Bounded: each pass fires at least one timer.
        for _ in 0..10_000_000 {
            match self.core.next_wake() {
                Some(wake) if wake <= t => {
                    self.now = self.now.max(wake);
                    self.core.tick(self.now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }

    /// Hand an input to the core at the current simulated time.
    pub fn input(&mut self, input: Input) -> Reply {
        let reply = self.core.handle(input, self.now);
        self.core.tick(self.now);
        self.collect();
        reply
    }

    fn collect(&mut self) {
        let changes = self.core.take_changes();
        for incident in changes.incidents {
            self.incidents.insert(incident.id, incident);
        }
        for impact in changes.impacts {
            self.impacts.insert(impact.id, impact);
        }
        self.timeline.extend(changes.timeline);
        self.pages.extend(changes.pages);
        for case in changes.cases {
            self.cases.insert(case.id, case);
        }
        self.case_timeline.extend(changes.case_timeline);
    }
}

/// An incident in the words the CLI uses: "Sev 1 incident #1 (pinned), resolved:
/// StorageDown in storage china-east; services storage; regions china-east, china-north;
/// 2 customers".
pub fn describe(incident: &Incident) -> String {
    let names = |set: &crate::incident::NameSet| match set.len() {
        0 => "none".to_string(),
        _ => set.iter().cloned().collect::<Vec<_>>().join(", "),
    };
    format!(
        "Sev {} incident #{}{}, {}: {}; services {}; regions {}; {}",
        incident.severity,
        incident.id,
        if incident.pinned { " (pinned)" } else { "" },
        incident.status.as_str(),
        incident.title,
        names(&incident.services),
        names(&incident.regions),
        crate::words::count(incident.customers.len(), "customer", "customers"),
    )
}

/// A timeline entry as a line: "Sev 2 incident #1 opened: StorageDown in storage
/// china-east (SLA breached)", "incident #1 acknowledged by alice".
pub fn describe_entry(entry: &TimelineEntry) -> String {
    let id = entry.incident_id;
    if entry.kind == "opened" {
        // "opened at Sev 2 (reason): title" and "declared by bob at Sev 2 (reason): title".
        let (how, rest) = match entry.message.strip_prefix("opened at ") {
            Some(rest) => ("opened".to_string(), rest),
            None => match entry.message.split_once(" at ") {
                Some((how, rest)) if how.starts_with("declared by ") => (how.to_string(), rest),
                _ => (String::new(), ""),
            },
        };
        let parsed = rest
            .strip_prefix("Sev ")
            .and_then(|r| r.split_once(" ("))
            .and_then(|(sev, r)| r.split_once("): ").map(|(why, title)| (sev, why, title)));
        if let Some((severity, why, title)) = parsed {
            return format!("Sev {severity} incident #{id} {how}: {title} ({why})");
        }
    }
    let words = entry.kind.replace('_', " ");
    let lead = words.split(' ').next().unwrap_or_default();
    if entry.message.starts_with(lead) {
        format!("incident #{id} {}", entry.message)
    } else {
        format!("incident #{id} {words}: {}", entry.message)
    }
}

/// A page as a line: "incident #1: alice paged by email (triggered, level 0)".
pub fn describe_page(page: &Page) -> String {
    let about = match page.case_id {
        Some(case) => format!("case #{case}"),
        None => format!("incident #{}", page.incident_id),
    };
    format!(
        "{about}: {} paged by {} ({}{})",
        page.recipient.id,
        page.recipient.channel.as_str(),
        page.event.as_str().replace('_', " "),
        page.level
            .map(|l| format!(", level {l}"))
            .unwrap_or_default()
    )
}
