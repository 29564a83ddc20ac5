//! Paging: the engine applies who is paged when.

use super::*;

impl Core {
    // ----- paging --------------------------------------------------------------------------

    /// Route the incident and start its escalation (or queue it, or record it unrouted).
    pub(super) fn start_paging(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let selected = route::select(&setup.paging.routes, &incident.labels, incident.severity);
        let severity = incident.severity;
        let old_queue = incident.queue.clone();
        let paging = self.paging.entry(incident_id).or_default();
        paging.escalation = None;
        paging.pause_noted = false;
        self.dirty.paging.insert(incident_id);
        self.timers.cancel(TimerKey::Escalation(incident_id));
        match selected {
            None => {
                self.set_queue(incident_id, None);
                self.timeline(incident_id, now, Entry::Unrouted { severity });
            }
            Some((index, r)) => {
                if let Some(queue) = &r.queue {
                    if old_queue.as_deref() != Some(queue) {
                        self.set_queue(incident_id, Some(queue.clone()));
                        let queue = queue.clone();
                        self.timeline(
                            incident_id,
                            now,
                            Entry::Queued {
                                route: index,
                                queue,
                            },
                        );
                    }
                    return;
                }
                self.set_queue(incident_id, None);
                let policy_name = r.policy.clone().unwrap_or_default();
                let Some(policy) = setup.paging.policies.get(&policy_name) else {
                    let entry = Entry::UnknownPolicy {
                        route: index,
                        policy: policy_name,
                    };
                    self.timeline(incident_id, now, entry);
                    return;
                };
                let escalation =
                    Escalation::start(policy.clone(), r.active_during.clone(), event, now);
                let entry = Entry::Routed {
                    route: index,
                    policy: policy_name,
                };
                self.timeline(incident_id, now, entry);
                if let Some(p) = self.paging.get_mut(&incident_id) {
                    p.escalation = Some(escalation);
                }
                self.drive_escalation(incident_id, now);
            }
        }
    }

    pub(super) fn set_queue(&mut self, incident_id: i64, queue: Option<String>) {
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            if incident.queue != queue {
                let before = Counted::of(incident);
                incident.queue = queue;
                self.open_counts.changed(before, Counted::of(incident));
                self.dirty.incidents.insert(incident_id);
                self.gauges_dirty = true;
            }
        }
    }

    /// Page whatever is due for the incident and set its next timer.
    pub(super) fn drive_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if !incident.is_open() {
            return;
        }
        let (labels, severity, status) =
            (incident.labels.clone(), incident.severity, incident.status);
        let Some(paging) = self.paging.get_mut(&incident_id) else {
            return;
        };
        let Some(escalation) = paging.escalation.as_mut() else {
            return;
        };

        // An acknowledgement that ran out puts the incident back to triggered.
        if escalation.acked && escalation.ack_lapses_at.is_some_and(|at| at <= now) {
            let windows = setup.paging.window_set(&escalation.active_during);
            let pages = escalation.lapse(now, &windows);
            self.dirty.paging.insert(incident_id);
            if let Some(incident) = self.incidents.get_mut(&incident_id) {
                let entry = lifecycle::ack_lapsed(incident);
                self.dirty.incidents.insert(incident_id);
                self.timeline(incident_id, now, entry);
            }
            self.schedule_respond_by(incident_id);
            self.page_levels(incident_id, pages, now);
            self.schedule_escalation(incident_id, now);
            return;
        }
        if status == Status::Acknowledged || escalation.acked {
            self.schedule_escalation(incident_id, now);
            return;
        }

        // A silence holds pages back while it is in force.
        let silence = route::silenced(&setup.paging.silences, &labels, severity, now, |w, t| {
            setup.paging.windows.get(w).and_then(|w| w.open_until(t))
        });
        if let Some((index, s, until)) = silence {
            let first = paging.silenced_by != Some(index);
            paging.silenced_by = Some(index);
            self.dirty.paging.insert(incident_id);
            if first {
                let entry = Entry::Silenced {
                    silence: index,
                    comment: s.comment.clone(),
                    until,
                };
                self.timeline(incident_id, now, entry);
            }
            self.timers
                .set_or_cancel(TimerKey::Escalation(incident_id), until);
            return;
        }
        if paging.silenced_by.take().is_some() {
            self.dirty.paging.insert(incident_id);
        }

        let windows = setup.paging.window_set(&escalation.active_during);
        let was_paused = escalation.is_paused();
        let pages = escalation.advance(now, &windows);
        let now_paused = escalation.is_paused();
        let resume_at = escalation.wake_at(now, &windows);
        let window_names = escalation.active_during.join(", ");
        self.dirty.paging.insert(incident_id);
        if now_paused && !was_paused && !paging.pause_noted {
            paging.pause_noted = true;
            let entry = Entry::Paused {
                windows: window_names,
                until: resume_at,
            };
            self.timeline(incident_id, now, entry);
        } else if !now_paused {
            paging.pause_noted = false;
        }
        self.page_levels(incident_id, pages, now);
        self.schedule_escalation(incident_id, now);
    }

    pub(super) fn schedule_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let wake = self.paging.get(&incident_id).and_then(|p| {
            let e = p.escalation.as_ref()?;
            let windows = setup.paging.window_set(&e.active_during);
            // A silence in force wakes at its end instead.
            match p.silenced_by {
                Some(_) => None,
                None => e.wake_at(now, &windows),
            }
        });
        let silenced_wake = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.silenced_by)
            .and(self.timers_for_silence(incident_id, now));
        self.timers
            .set_or_cancel(TimerKey::Escalation(incident_id), wake.or(silenced_wake));
    }

    pub(super) fn timers_for_silence(
        &self,
        incident_id: i64,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let incident = self.incidents.get(&incident_id)?;
        let setup = &self.setup;
        route::silenced(
            &setup.paging.silences,
            &incident.labels,
            incident.severity,
            now,
            |w, t| setup.paging.windows.get(w).and_then(|w| w.open_until(t)),
        )
        .and_then(|(_, _, until)| until)
    }

    pub(super) fn page_levels(
        &mut self,
        incident_id: i64,
        pages: Vec<LevelPage>,
        now: DateTime<Utc>,
    ) {
        for page in pages {
            self.page_level(incident_id, page.level, page.event, now);
        }
    }

    /// Page every target of one level.
    pub(super) fn page_level(
        &mut self,
        incident_id: i64,
        level: usize,
        event: PageEvent,
        now: DateTime<Utc>,
    ) {
        let setup = Arc::clone(&self.setup);
        let Some(escalation) = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.escalation.clone())
        else {
            return;
        };
        let Some(targets) = escalation
            .policy
            .levels
            .get(level)
            .map(|l| l.notify.clone())
        else {
            return;
        };
        self.metrics
            .escalations_total
            .with_label_values(&[&escalation.policy.name])
            .inc();
        let mut reached = Vec::new();
        for target in &targets {
            match setup.paging.recipients(target, now) {
                Ok(recipients) => {
                    for recipient in recipients {
                        reached.push(format!("{} ({})", recipient.id, recipient.channel.as_str()));
                        self.create_page(
                            incident_id,
                            recipient,
                            event,
                            Some(&escalation.policy.name),
                            Some(level),
                            now,
                        );
                    }
                }
                Err(why) => {
                    let target = target.clone();
                    self.timeline(incident_id, now, Entry::PageSkipped { level, target, why });
                }
            }
        }
        let entry = Entry::PagedLevel {
            event: event.as_str(),
            level,
            policy: escalation.policy.name.clone(),
            reached,
        };
        self.timeline(incident_id, now, entry);
    }

    /// Tell everyone paged so far (ack and resolve notices).
    pub(super) fn notify_paged(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
        let Some(paging) = self.paging.get(&incident_id) else {
            return;
        };
        let recipients: Vec<Recipient> = paging.paged.to_vec();
        let policy = paging.escalation.as_ref().map(|e| e.policy.name.clone());
        let level = paging.escalation.as_ref().and_then(|e| e.last_paged_level);
        if recipients.is_empty() {
            return;
        }
        let names: Vec<String> = recipients
            .iter()
            .map(|r| format!("{} ({})", r.id, r.channel.as_str()))
            .collect();
        for recipient in recipients {
            self.create_page(incident_id, recipient, event, policy.as_deref(), level, now);
        }
        let entry = Entry::Notified {
            event: event.as_str(),
            recipients: names,
        };
        self.timeline(incident_id, now, entry);
    }

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
        let setup = &self.setup;
        let ack_url = setup.ack_signer.as_ref().map(|signer| {
            let expires = now + setup.config.server.ack_link_ttl.chrono();
            format!(
                "{}/ack/{}",
                setup.external_url,
                signer.sign(incident_id, &recipient.id, expires)
            )
        });
        let id = self.next_page_id;
        self.next_page_id += 1;
        let page = Page {
            id,
            delivery_id: uuid::Uuid::new_v4().to_string(),
            incident_id,
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
            },
            recipient: recipient.clone(),
            created_at: now,
        };
        self.dirty.pages.push(page);
        let paging = self.paging.entry(incident_id).or_default();
        paging.add_paged(recipient);
        self.dirty.paging.insert(incident_id);
    }

    pub(super) fn respond_by_due(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if incident.status != Status::Triggered {
            return;
        }
        let sr = incident.sr_severity.clone().unwrap_or_else(|| "-".into());
        let respond_by = incident.respond_by;
        let paging = self.paging.entry(incident_id).or_default();
        if paging.response_breached {
            return;
        }
        paging.response_breached = true;
        self.dirty.paging.insert(incident_id);
        self.metrics
            .sr_response_breaches_total
            .with_label_values(&[&sr])
            .inc();
        let entry = Entry::ResponseBreached {
            sr_severity: sr,
            respond_by,
        };
        self.timeline(incident_id, now, entry);
        let levels = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.escalation.as_ref())
            .map(|e| e.current_and_next())
            .unwrap_or_default();
        if levels.is_empty() {
            self.timeline(incident_id, now, Entry::BreachUnpaged);
        }
        for level in levels {
            self.page_level(incident_id, level, PageEvent::ResponseBreached, now);
        }
    }
}
