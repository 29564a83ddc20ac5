//! Making one page about an incident: its words (the page context), its ack link, what the
//! engine remembers of it, and the pager load it adds.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Core;
use crate::incident::IncidentView;
use crate::paging::context::{self, PageContext};
use crate::paging::page::EscalationRef;
use crate::paging::{MergedNews, Page, PageEvent, PagePayload, PagedEntry, Recipient};

impl Core {
    pub(super) fn create_page(
        &mut self,
        incident_id: i64,
        recipient: Recipient,
        event: PageEvent,
        policy: Option<&str>,
        level: Option<usize>,
        now: DateTime<Utc>,
    ) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let entry = PagedEntry {
            recipient: recipient.id.clone(),
            channel: recipient.channel.as_str().to_string(),
            event: event.as_str().to_string(),
            level,
            at: now,
            severity: incident.severity,
        };
        let Some(page) = self.build_page(incident_id, recipient.clone(), event, policy, level, now)
        else {
            return;
        };
        self.dirty.pages.push(page);
        let rule = self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.impact_ids.first())
            .and_then(|id| self.impacts.get(id))
            .map(|i| Arc::clone(&i.rule));
        self.count_page(rule.as_deref().unwrap_or("-"), &recipient, event, now);
        if self.just_paged.0 != now {
            self.just_paged = (now, foldhash::HashMap::default());
        }
        let paged_now = self.just_paged.1.entry(incident_id).or_default();
        paged_now.push(recipient.clone());
        let paging = self.paging.entry(incident_id).or_default();
        paging.add_paged(recipient);
        paging.remember(entry);
        self.dirty.paging.insert(incident_id);
    }

    /// A page about the incident to `recipient`, with its words (the page context) and its
    /// ack link; the caller stores it.
    pub(super) fn build_page(
        &mut self,
        incident_id: i64,
        recipient: Recipient,
        event: PageEvent,
        policy: Option<&str>,
        level: Option<usize>,
        now: DateTime<Utc>,
    ) -> Option<Page> {
        let incident = self.incidents.get(&incident_id)?;
        let setup = &self.setup;
        let ack_url = setup.ack_signer.as_ref().map(|signer| {
            let expires = now + setup.config.server.ack_link_ttl.chrono();
            format!(
                "{}/ack/{}",
                setup.external_url,
                signer.sign(incident_id, &recipient.id, expires)
            )
        });
        let history: &[PagedEntry] = self
            .paging
            .get(&incident_id)
            .map(|p| p.history.as_slice())
            .unwrap_or_default();
        let merged: &[MergedNews] = self
            .paging
            .get(&incident_id)
            .filter(|_| event == PageEvent::Merged)
            .map(|p| p.merged.as_slice())
            .unwrap_or_default();
        let targets: &[String] = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.escalation.as_ref())
            .and_then(|e| e.policy.levels.get(level.unwrap_or(0)))
            .map(|l| l.notify.as_slice())
            .unwrap_or_default();
        let customers = &self.setup.config.catalog.customers;
        let customer_name = |id: &str| {
            customers
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.name.clone())
        };
        let incident_url = format!("{}/incidents/{}", setup.external_url, incident_id);
        let context = PageContext::build(context::Inputs {
            incident,
            impacts: incident
                .impact_ids
                .iter()
                .filter_map(|id| self.impacts.get(id).map(|i| &**i))
                .collect(),
            event,
            recipient: &recipient,
            history,
            merged,
            zone: setup.paging.zone_for(&recipient.id, targets),
            customer_name: &customer_name,
            thresholds: &setup.config.classification,
            incident_url,
            ack_url: ack_url.clone(),
            now,
        });
        let id = self.next_page_id;
        self.next_page_id += 1;
        let page = Page {
            id,
            delivery_id: uuid::Uuid::new_v4().to_string(),
            incident_id,
            case_id: None,
            event,
            level,
            payload: PagePayload {
                version: "1".into(),
                event,
                incident: IncidentView::new(incident, &setup.external_url),
                escalation: EscalationRef {
                    policy: policy.map(str::to_string),
                    level,
                },
                recipient: recipient.id.clone(),
                ack_url,
                context: Some(context),
                case: None,
                tsg_action: None,
            },
            recipient,
            created_at: now,
        };
        Some(page)
    }

    /// The pager load: a page that calls `recipient` to act, under `rule`, and whether it
    /// came at night on their clock.
    pub(super) fn count_page(
        &self,
        rule: &str,
        recipient: &Recipient,
        event: PageEvent,
        now: DateTime<Utc>,
    ) {
        if !event.calls_to_act() {
            return;
        }
        let labels = [rule, recipient.id.as_str()];
        self.metrics
            .pager_pages_total
            .with_label_values(&labels)
            .inc();
        let zone = self.setup.paging.zone_for(&recipient.id, &[]);
        if crate::paging::page::at_night(now, zone) {
            self.metrics
                .pages_at_night_total
                .with_label_values(&labels)
                .inc();
        }
    }
}
