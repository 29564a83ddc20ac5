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
