//! Incidents by hand: the engine applies a person's declaration (`incident::lifecycle::
//! declare`), escalation (`paging::decide::escalate_now`), added responder and assignee
//! (`paging::decide::responder_pages`).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::incidents::refused;
use super::{Core, Reply};
use crate::engine::open_counts::Counted;
use crate::incident::lifecycle::{self, Declaration, Refusal};
use crate::incident::Entry;
use crate::paging::decide;
use crate::paging::PageEvent;

impl Core {
    /// Open the declared incident with its manual impacts, and route and page it like any
    /// other. Its impacts stay out of the correlation index: nothing joins it on its own.
    pub(super) fn declare(&mut self, declaration: Declaration, now: DateTime<Utc>) -> Reply {
        let setup = Arc::clone(&self.setup);
        let id = self.next_incident_id;
        self.next_incident_id += 1;
        let mut impacts = lifecycle::declared_impacts(
            &declaration,
            self.next_impact_id,
            |service, region| setup.catalog.customers(None, service, region).into(),
            now,
        );
        self.next_impact_id += impacts.len() as i64;
        let (incident, entry) = lifecycle::declare(
            id,
            &declaration,
            &mut impacts,
            &setup.config.classification,
            now,
        );
        let severity = incident.severity;
        for impact in impacts {
            self.dirty.impacts.insert(impact.id);
            self.dirty.linked.push((id, impact.id));
            self.impacts.insert(impact.id, Box::new(impact));
        }
        self.open_counts.changed(None, Counted::of(&incident));
        self.incidents.insert(id, Box::new(incident));
        self.dirty.incidents.insert(id);
        self.metrics
            .incidents_total
            .with_label_values(&[&severity.to_string()])
            .inc();
        self.timeline(id, now, entry);
        self.gauges_dirty = true;
        self.start_paging(id, PageEvent::Triggered, now);
        Reply::Declared(id)
    }

    /// Page the next level of the escalation now; a conflict when there is none.
    pub(super) fn escalate_now(&mut self, incident_id: i64, by: &str, now: DateTime<Utc>) -> Reply {
        if !self.incidents.contains_key(&incident_id) {
            return refused(Refusal::NotOpen(incident_id));
        }
        let paging = self.paging.entry(incident_id).or_default();
        let page = match decide::escalate_now(paging, now) {
            Ok(page) => page,
            Err(why) => {
                return Reply::Conflict(format!("incident {incident_id} cannot escalate: {why}"))
            }
        };
        self.dirty.paging.insert(incident_id);
        let entry = Entry::EscalatedByHand {
            by: by.to_string(),
            level: page.level,
        };
        self.timeline(incident_id, now, entry);
        self.page_level(incident_id, page.level, page.event, now);
        self.schedule_escalation(incident_id, now);
        Reply::Done
    }

    /// Page `responder` now; being paged, they hear of every update after.
    pub(super) fn add_responder(
        &mut self,
        incident_id: i64,
        responder: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Reply {
        if !self.incidents.contains_key(&incident_id) {
            return refused(Refusal::NotOpen(incident_id));
        }
        let entry = Entry::ResponderAdded {
            by: by.to_string(),
            responder: responder.to_string(),
        };
        self.timeline(incident_id, now, entry);
        self.page_responder(incident_id, responder, PageEvent::ResponderAdded, now);
        Reply::Done
    }

    /// Make `responder` the assignee and page them (event `assigned`).
    pub(super) fn assign(
        &mut self,
        incident_id: i64,
        responder: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return refused(Refusal::NotOpen(incident_id));
        };
        let entry = match lifecycle::assign(incident, responder, by) {
            Ok(entry) => entry,
            Err(refusal) => return refused(refusal),
        };
        self.dirty.incidents.insert(incident_id);
        self.timeline(incident_id, now, entry);
        self.page_responder(incident_id, responder, PageEvent::Assigned, now);
        Reply::Done
    }

    /// A page to each of `responder`'s channels, or a timeline entry saying why none went.
    fn page_responder(
        &mut self,
        incident_id: i64,
        responder: &str,
        event: PageEvent,
        now: DateTime<Utc>,
    ) {
        match decide::responder_pages(&self.setup.paging, responder, now) {
            Ok(recipients) => {
                let reached = self.reach(incident_id, recipients, event, None, None, now);
                let names: Vec<String> = reached
                    .iter()
                    .map(|r| format!("{} ({})", r.id, r.channel.as_str()))
                    .collect();
                // Nobody at once: their notification rules' entry says when they will be.
                if !names.is_empty() {
                    let entry = Entry::Notified {
                        event: event.as_str(),
                        recipients: names,
                    };
                    self.timeline(incident_id, now, entry);
                }
            }
            Err(why) => {
                let entry = Entry::PageSkipped {
                    level: 0,
                    target: format!("responder:{responder}"),
                    why,
                };
                self.timeline(incident_id, now, entry);
            }
        }
    }
}
