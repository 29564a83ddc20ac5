//! Impacts and incidents: the engine applies the lifecycle's transitions.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Core, Reply};
use crate::config::{BusinessImpact, ImpactKind};
use crate::engine::open_counts::Counted;
use crate::engine::timers::TimerKey;
use crate::incident::lifecycle::{self, AutoResolve, Reclassified, Refusal, SeverityChange};
use crate::incident::timeline::{ClearCause, TOCSIN};
use crate::incident::{correlate, Entry, Impact};
use crate::paging::PageEvent;
use crate::rules::Rule;
use crate::signal::{Fingerprint, Signal, SourceKind};

impl Core {
    /// The (label, value) pairs of an impact that correlation looks at, and for a major
    /// impact its region (regional correlation). None for a rule's `correlation: separate`,
    /// nor for the impacts of a declared incident, which nothing joins on its own.
    pub(super) fn correlation_keys(&self, impact: &Impact) -> Vec<u64> {
        if impact.source == SourceKind::Manual || self.setup.rules.is_separate(&impact.rule) {
            return Vec::new();
        }
        let mut keys: Vec<u64> = self
            .setup
            .config
            .correlation
            .by
            .iter()
            .filter_map(|name| {
                let value = impact.labels.get(name).filter(|v| !v.is_empty())?;
                Some(key_of(name, value))
            })
            .collect();
        if let Some(region) = impact.region.as_deref().filter(|_| impact.is_major()) {
            keys.push(key_of(REGIONAL, region));
        }
        keys
    }

    /// The incidents indexed under any of `keys`, in id order, each once. Usually one key
    /// with one or two incidents: a sorted Vec, not a tree built for them.
    fn indexed<'k>(&self, keys: impl Iterator<Item = &'k u64>) -> Vec<i64> {
        let mut ids: Vec<i64> = keys
            .filter_map(|key| self.correlation_index.get(key))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub(super) fn index_impact(&mut self, incident_id: i64, impact_id: i64) {
        let Some(impact) = self.impacts.get(&impact_id) else {
            return;
        };
        for key in self.correlation_keys(impact) {
            let ids = self.correlation_index.entry(key).or_default();
            if let Err(at) = ids.binary_search(&incident_id) {
                ids.reserve_exact(1);
                ids.insert(at, incident_id);
            }
        }
    }

    pub(super) fn unindex_incident(&mut self, incident_id: i64, impact_ids: &[i64]) {
        for impact_id in impact_ids {
            let Some(impact) = self.impacts.get(impact_id) else {
                continue;
            };
            for key in self.correlation_keys(impact) {
                if let Some(ids) = self.correlation_index.get_mut(&key) {
                    ids.retain(|id| *id != incident_id);
                    if ids.is_empty() {
                        self.correlation_index.remove(&key);
                    }
                }
            }
        }
    }

    pub(super) fn rebuild_correlation_index(&mut self) {
        self.correlation_index.clear();
        let pairs: Vec<(i64, i64)> = self
            .incidents
            .values()
            .filter(|i| i.is_open())
            .flat_map(|i| i.impact_ids.iter().map(move |m| (i.id, *m)))
            .collect();
        for (incident_id, impact_id) in pairs {
            self.index_impact(incident_id, impact_id);
        }
    }

    /// Open an impact for a signal (from a rule, or the default for an unmatched CRI) and
    /// put it in an incident. Returns the impact id.
    pub(super) fn open_impact(
        &mut self,
        rule: Option<&Rule>,
        signal: &Signal,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
    ) -> i64 {
        let setup = Arc::clone(&self.setup);
        // The signal's own map, shared, unless the rule adds labels.
        let mut labels = Arc::clone(&signal.labels);
        if let Some(rule) = rule.filter(|r| !r.labels.is_empty()) {
            let added = rule.labels.iter().map(|(k, v)| (k.clone(), v.clone()));
            Arc::make_mut(&mut labels).extend(added);
        }
        let service = labels.get("service").map(str::to_string);
        let region = labels.get("region").map(str::to_string);
        let customers = setup.catalog.customers(
            labels.get("customer"),
            service.as_deref(),
            region.as_deref(),
        );
        let (rule_name, kind, sla_breach, business_impact, floor) = match rule {
            Some(rule) => (
                rule.name.clone(),
                rule.impact.kind,
                rule.impact.sla_breach.declared(),
                rule.impact.business_impact,
                rule.impact.severity.map(|s| s.0),
            ),
            None => default_cri_impact(signal),
        };
        let summary = rule
            .and_then(|r| {
                setup
                    .summaries
                    .render(&r.name, &labels, &signal.annotations, signal.value)
            })
            .filter(|s| !s.trim().is_empty())
            .or_else(|| signal.annotations.get("summary").map(str::to_string))
            .unwrap_or_else(|| rule_name.to_string());
        let annotations = match rule {
            Some(r) => {
                setup
                    .summaries
                    .annotate(&r.name, &labels, &signal.annotations, signal.value)
            }
            None => Arc::clone(&signal.annotations),
        };
        // `sla_breach: auto`: breached already when the burn rates say so now.
        let sla_measured = rule
            .filter(|r| r.impact.sla_breach == crate::config::SlaBreach::Auto)
            .and_then(|_| self.breach_at_open(service.as_deref(), region.as_deref(), now))
            .map(Box::new);
        let sla_breach = sla_breach || sla_measured.is_some();
        let id = self.next_impact_id;
        self.next_impact_id += 1;
        let impact = Impact {
            id,
            incident_id: 0,
            rule: rule_name.clone(),
            fingerprint,
            source: signal.source,
            kind,
            sla_breach,
            business_impact,
            severity_floor: floor,
            service,
            region,
            customers: customers.into(),
            labels,
            summary: summary.into(),
            started_at: now,
            cleared_at: None,
            firing_at_resolve: false,
            cri: signal.cri.clone(),
            annotations,
            inhibited_by: None,
            sla_measured,
        };
        // A service whose dependency is down in its region joins that incident instead.
        if let Some(target) = self.dependency_incident(&impact) {
            let mut impact = impact;
            impact.inhibited_by = Some(target);
            self.attach(target, impact, now);
            match &mut self.deferred_reclassify {
                Some(pending) => {
                    pending
                        .entry(target)
                        .or_insert_with(|| rule_name.to_string());
                }
                None => self.reclassify(target, now, &rule_name),
            }
            return id;
        }
        let window = setup.config.correlation.window.chrono();
        let keys = self.correlation_keys(&impact);
        let regional_key = impact.region.as_deref().map(|r| key_of(REGIONAL, r));
        // The incidents sharing a `correlation.by` label, and those with a major impact in
        // the region: only the first can correlate, only the second form a regional one (a
        // region with many services down holds many incidents none of which shares a label).
        let by_ids = self.indexed(keys.iter().filter(|k| Some(**k) != regional_key));
        let regional_ids = self.indexed(keys.iter().filter(|k| Some(**k) == regional_key));
        let mut candidates = correlate::candidates(
            &impact,
            by_ids
                .iter()
                .filter_map(|id| self.incidents.get(id).map(|i| &**i)),
            |x| self.impacts.get(&x).map(|i| &**i),
            &setup.config.correlation.by,
            window,
            now,
        );
        candidates.extend(correlate::regional(
            &impact,
            regional_ids
                .iter()
                .filter_map(|id| self.incidents.get(id).map(|i| &**i)),
            |x| self.impacts.get(&x).map(|i| &**i),
            setup.config.classification.multi_services,
            setup.config.correlation.regional.window.chrono(),
            now,
        ));
        candidates.sort_unstable();
        candidates.dedup();
        let incident_id = match candidates.first() {
            None => match self.reopen_candidate(&impact, now) {
                Some(resolved) => {
                    self.reopen(resolved, impact, now);
                    resolved
                }
                None => self.open_incident(impact, now),
            },
            Some(&target) => {
                self.attach(target, impact, now);
                for other in candidates[1..].iter() {
                    self.merge(*other, target, now);
                }
                match &mut self.deferred_reclassify {
                    Some(pending) => {
                        pending
                            .entry(target)
                            .or_insert_with(|| rule_name.to_string());
                    }
                    None => self.reclassify(target, now, &rule_name),
                }
                target
            }
        };
        let _ = incident_id;
        self.sla_opened(id, now);
        id
    }

    pub(super) fn open_incident(&mut self, mut impact: Impact, now: DateTime<Utc>) -> i64 {
        let id = self.next_incident_id;
        self.next_incident_id += 1;
        impact.incident_id = id;
        let (incident, entry) =
            lifecycle::open(id, &impact, &self.setup.config.classification, now);
        let severity = incident.severity;
        let impact_id = impact.id;
        self.dirty.impacts.insert(impact.id);
        self.dirty.linked.push((id, impact_id));
        self.impacts.insert(impact.id, Box::new(impact));
        self.open_counts.changed(None, Counted::of(&incident));
        self.incidents.insert(id, Box::new(incident));
        self.index_impact(id, impact_id);
        self.dirty.incidents.insert(id);
        self.metrics
            .incidents_total
            .with_label_values(&[&severity.to_string()])
            .inc();
        self.timeline(id, now, entry);
        self.gauges_dirty = true;
        self.schedule_respond_by(id);
        self.start_paging(id, PageEvent::Triggered, now);
        id
    }

    /// Add `impact` to incident `incident_id`. Impacts a rule adds to one incident within
    /// one batch share one timeline entry: a storm of alerts into an incident reads as one
    /// line, not hundreds, and the store writes one row, not one per new alert.
    pub(super) fn attach(&mut self, incident_id: i64, mut impact: Impact, now: DateTime<Utc>) {
        impact.incident_id = incident_id;
        let impact_id = impact.id;
        if impact.inhibited_by.is_some() {
            let entry = Entry::DependentAdded {
                rule: impact.rule.to_string(),
                impact: impact_id,
                summary: impact.summary.to_string(),
                service: impact.service.clone().unwrap_or_default(),
                region: impact.region.clone().unwrap_or_default(),
                incident: incident_id,
            };
            self.timeline(incident_id, now, entry);
        } else {
            match self.dirty.added.entry((incident_id, impact.rule.clone())) {
                std::collections::hash_map::Entry::Occupied(added) => {
                    if let Some((_, _, Entry::ImpactAdded { impacts, .. })) =
                        self.dirty.timeline.get_mut(*added.get())
                    {
                        impacts.push(impact_id);
                    }
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(self.dirty.timeline.len());
                    self.timeline(incident_id, now, lifecycle::impact_added(&impact));
                }
            }
        }
        self.dirty.impacts.insert(impact.id);
        self.dirty.linked.push((incident_id, impact_id));
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            if lifecycle::attach(incident, &impact) {
                self.dirty.incidents.insert(incident_id);
            }
        }
        self.impacts.insert(impact.id, Box::new(impact));
        self.index_impact(incident_id, impact_id);
        self.timers.cancel(TimerKey::AutoResolve(incident_id));
        // Those already paged hear of it, acknowledged or not.
        self.note_update(incident_id, PageEvent::ImpactAdded);
    }

    /// Fold incident `from` into `into`: the relation is transitive.
    pub(super) fn merge(&mut self, from: i64, into: i64, now: DateTime<Utc>) {
        let Some(mut source) = self.incidents.remove(&from) else {
            return;
        };
        self.unindex_incident(from, &source.impact_ids.clone());
        for impact_id in &source.impact_ids {
            if let Some(impact) = self.impacts.get_mut(impact_id) {
                impact.incident_id = into;
                if impact.inhibited_by == Some(from) {
                    impact.inhibited_by = Some(into);
                }
                self.dirty.impacts.insert(*impact_id);
                self.dirty.linked.push((into, *impact_id));
            }
        }
        for impact_id in &source.impact_ids {
            self.index_impact(into, *impact_id);
        }
        if let Some(target) = self.incidents.get_mut(&into) {
            lifecycle::absorb_merged(target, &source);
            self.dirty.incidents.insert(into);
        }
        self.timers.cancel(TimerKey::Step(from));
        let news = crate::paging::MergedNews {
            incident: from,
            title: source.title.to_string(),
            impacts: source.impact_ids.clone(),
        };
        self.paging.entry(into).or_default().merged.push(news);
        self.dirty.paging.insert(into);
        let into_triggered = self
            .incidents
            .get(&into)
            .is_some_and(|i| i.status == crate::incident::Status::Triggered);
        if let Some(paging) = self.paging.remove(&from) {
            let target = self.paging.entry(into).or_default();
            for recipient in paging.paged {
                target.add_paged(recipient);
            }
            // Those still to be reached about the merged incident are, about this one,
            // while nobody has acknowledged it.
            if into_triggered && !paging.steps.is_empty() {
                target.steps.extend(paging.steps);
                target.steps.sort_by_key(|s| s.at);
            }
            self.dirty.paging.insert(into);
            self.schedule_steps(into);
        }
        self.dirty.paging.insert(from);
        for key in [
            TimerKey::Escalation(from),
            TimerKey::AutoResolve(from),
            TimerKey::RespondBy(from),
            TimerKey::Update(from),
        ] {
            self.timers.cancel(key);
        }
        self.updates.remove(&from);
        self.note_update(into, PageEvent::Merged);
        self.open_counts.changed(Counted::of(&source), None);
        let [merged_into, merged_from] = lifecycle::close_merged(&mut source, into, now);
        self.timeline(from, now, merged_into);
        self.timeline(into, now, merged_from);
        self.dirty.incidents.insert(from);
        self.dirty.closed.insert(from);
        // Keep the merged incident's final state for the store.
        self.incidents.insert(from, source);
        self.schedule_respond_by(into);
        self.gauges_dirty = true;
    }

    pub(super) fn clear_impact(&mut self, impact_id: i64, now: DateTime<Utc>, cause: ClearCause) {
        let Some(impact) = self.impacts.get_mut(&impact_id) else {
            return;
        };
        let Some(entry) = lifecycle::clear_impact(impact, cause, now) else {
            return;
        };
        let incident_id = impact.incident_id;
        self.dirty.impacts.insert(impact_id);
        self.timeline(incident_id, now, entry);
        self.schedule_auto_resolve(incident_id);
    }

    pub(super) fn schedule_auto_resolve(&mut self, incident_id: i64) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if !incident.is_open() {
            return;
        }
        let after = self.setup.config.incidents.resolve_after.chrono();
        let impacts = &self.impacts;
        // Dependent impacts do not hold it open: they page on their own once it resolves.
        let decision = lifecycle::auto_resolve(
            incident,
            |id| {
                impacts
                    .get(&id)
                    .map(|i| &**i)
                    .filter(|i| i.inhibited_by.is_none())
            },
            after,
        );
        let timer = TimerKey::AutoResolve(incident_id);
        match decision {
            AutoResolve::Cancel => self.timers.cancel(timer),
            AutoResolve::Leave => {}
            AutoResolve::At(at) => self.timers.set(timer, at),
        }
    }

    pub(super) fn schedule_respond_by(&mut self, incident_id: i64) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let breached = self
            .paging
            .get(&incident_id)
            .is_some_and(|p| p.response_breached);
        let at = lifecycle::respond_by(incident, breached);
        self.timers
            .set_or_cancel(TimerKey::RespondBy(incident_id), at);
    }

    /// Severity from what the incident's impacts say (kept up to date as they join, see
    /// `Incident::absorb`): it only rises on its own, and not while pinned.
    pub(super) fn reclassify(&mut self, incident_id: i64, now: DateTime<Utc>, cause: &str) {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return;
        };
        let before = Counted::of(incident);
        // Its row is written by whoever changed what it holds (`attach`, `merge`); here only
        // when the severity moves.
        match lifecycle::reclassify(incident, &self.setup.config.classification, cause) {
            Reclassified::Unchanged => {
                // Impacts joined: with `queue: component` it waits in the queue of each
                // service it hits now.
                if incident.queue.is_some() {
                    self.requeue(incident_id, now);
                }
            }
            Reclassified::HeldByPin(entry) => {
                self.timeline(incident_id, now, entry);
                return;
            }
            Reclassified::Raised(entry) => {
                self.open_counts.changed(before, Counted::of(incident));
                self.dirty.incidents.insert(incident_id);
                self.metrics.incident_severity_changes_total.inc();
                self.timeline(incident_id, now, entry);
                self.gauges_dirty = true;
                self.severity_raised(incident_id, now);
            }
        }
        self.schedule_respond_by(incident_id);
    }

    /// A rise re-routes: the new route's policy starts at its first level. An
    /// acknowledgement holds through it (see `raise_acknowledged`).
    pub(super) fn severity_raised(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let kept = self
            .incidents
            .get(&incident_id)
            .and_then(|i| lifecycle::ack_kept_on_rise(i));
        if let Some(entry) = kept {
            if self.raise_acknowledged(incident_id, now) {
                self.timeline(incident_id, now, entry);
                return;
            }
        }
        self.start_paging(incident_id, PageEvent::SeverityRaised, now);
    }

    pub(super) fn resolve(
        &mut self,
        incident_id: i64,
        by: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return;
        };
        let before = Counted::of(incident);
        if !lifecycle::resolve(incident, by, now) {
            return;
        }
        self.open_counts.changed(before, None);
        self.cases_incident_resolved(incident_id, now);
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let severity = incident.severity;
        let opened_at = incident.opened_at;
        let mut impact_ids = incident.impact_ids.clone();
        self.unindex_incident(incident_id, &impact_ids);
        let dependents: Vec<i64> = impact_ids
            .iter()
            .copied()
            .filter(|id| {
                self.impacts
                    .get(id)
                    .is_some_and(|i| i.inhibited_by == Some(incident_id) && i.is_active())
            })
            .collect();
        impact_ids.retain(|id| !dependents.contains(id));
        self.dirty.incidents.insert(incident_id);
        self.metrics
            .time_to_resolve_seconds
            .with_label_values(&[&severity.to_string()])
            .observe((now - opened_at).num_milliseconds() as f64 / 1000.0);
        // Impacts still active close with it, but those whose signal still fires stay
        // uncleared (their rule state clears them with the signal), and their next firing
        // observation opens a new incident: a resolve never hides trouble that goes on.
        let mut still_firing = Vec::new();
        for impact_id in impact_ids {
            let Some(impact) = self.impacts.get(&impact_id) else {
                continue;
            };
            let (rule, fingerprint) = (impact.rule.clone(), impact.fingerprint);
            let one_shot = impact.source == SourceKind::Cri;
            let mut firing = false;
            // A declared incident's impacts have no rule (a rule may share their name).
            let index = match impact.source {
                SourceKind::Manual => None,
                _ => self.rule_index(&rule),
            };
            if let Some(index) = index {
                let key = (index, fingerprint);
                if let Some(state) = self.rule_states.get_mut(&key) {
                    if state.impact == Some(impact_id) {
                        firing = state.resolved_by_person(impact_id, one_shot);
                        self.dirty.rule_states.push(key);
                        self.step_rule(index, fingerprint, now);
                    }
                }
            }
            let Some(impact) = self.impacts.get_mut(&impact_id) else {
                continue;
            };
            if firing {
                impact.firing_at_resolve = true;
                still_firing.push((impact_id, impact.summary.to_string()));
                self.dirty.impacts.insert(impact_id);
            } else if impact.cleared_at.is_none() {
                impact.cleared_at = Some(now);
                self.dirty.impacts.insert(impact_id);
            }
        }
        let entry = Entry::Resolved {
            by: by.to_string(),
            note,
            still_firing,
        };
        self.timeline(incident_id, now, entry);
        self.notify_paged(incident_id, PageEvent::Resolved, now);
        self.updates.remove(&incident_id);
        self.drop_steps(incident_id);
        // A held `merged` update is not sent once the incident is resolved.
        if let Some(paging) = self.paging.get_mut(&incident_id) {
            paging.merged.clear();
        }
        for key in [
            TimerKey::Escalation(incident_id),
            TimerKey::AutoResolve(incident_id),
            TimerKey::RespondBy(incident_id),
            TimerKey::Update(incident_id),
        ] {
            self.timers.cancel(key);
        }
        self.dirty.paging.insert(incident_id);
        self.dirty.closed.insert(incident_id);
        self.gauges_dirty = true;
        for impact_id in dependents {
            self.release_dependent(incident_id, impact_id, now);
        }
        if by == TOCSIN {
            self.keep_reopenable(incident_id, now);
        }
    }

    /// The open major incident of a service the impact's service depends on, in its region.
    fn dependency_incident(&self, impact: &Impact) -> Option<i64> {
        let service = impact.service.as_deref()?;
        let region = impact.region.as_deref()?;
        let depends_on = self.setup.catalog.depends_on(service);
        if depends_on.is_empty() || self.setup.rules.is_separate(&impact.rule) {
            return None;
        }
        let ids = self.correlation_index.get(&key_of(REGIONAL, region))?;
        correlate::dependency(
            impact,
            depends_on,
            ids.iter()
                .filter_map(|id| self.incidents.get(id).map(|i| &**i)),
            |x| self.impacts.get(&x).map(|i| &**i),
        )
    }

    /// Incident `from` resolved while its dependent impact still fails: the impact leaves
    /// it and pages on its own.
    fn release_dependent(&mut self, from: i64, impact_id: i64, now: DateTime<Utc>) {
        let Some(mut impact) = self.impacts.remove(&impact_id) else {
            return;
        };
        if let Some(incident) = self.incidents.get_mut(&from) {
            incident.impact_ids.retain(|id| *id != impact_id);
        }
        impact.inhibited_by = None;
        let summary = impact.summary.to_string();
        let into = self.open_incident(*impact, now);
        let entry = Entry::DependentReleased {
            impact: impact_id,
            summary,
            into,
        };
        self.timeline(from, now, entry);
    }

    pub(super) fn acknowledge(&mut self, incident_id: i64, by: &str, now: DateTime<Utc>) -> Reply {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return refused(Refusal::NotOpen(incident_id));
        };
        let entry = match lifecycle::acknowledge(incident, by, now) {
            Ok(entry) => entry,
            Err(refusal) => return refused(refusal),
        };
        let severity = incident.severity;
        let opened_at = incident.opened_at;
        self.dirty.incidents.insert(incident_id);
        self.metrics
            .time_to_acknowledge_seconds
            .with_label_values(&[&severity.to_string()])
            .observe((now - opened_at).num_milliseconds() as f64 / 1000.0);
        self.timeline(incident_id, now, entry);
        if let Some(esc) = self
            .paging
            .get_mut(&incident_id)
            .and_then(|p| p.escalation.as_mut())
        {
            esc.acknowledge(now);
            self.dirty.paging.insert(incident_id);
        }
        self.timers.cancel(TimerKey::RespondBy(incident_id));
        self.drop_steps(incident_id);
        self.cases_incident_acknowledged(incident_id, by, now);
        self.notify_paged(incident_id, PageEvent::Acknowledged, now);
        self.schedule_escalation(incident_id, now);
        Reply::Done
    }

    pub(super) fn set_severity(
        &mut self,
        incident_id: i64,
        severity: Option<u8>,
        by: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return refused(Refusal::NotOpen(incident_id));
        };
        let before = Counted::of(incident);
        let change = match lifecycle::set_severity(incident, severity, by, reason) {
            Ok(change) => change,
            Err(refusal) => return refused(refusal),
        };
        self.dirty.incidents.insert(incident_id);
        self.raised_by = Some(by.to_string());
        match change {
            SeverityChange::Unpinned(entry) => {
                self.timeline(incident_id, now, entry);
                self.reclassify(incident_id, now, by);
            }
            SeverityChange::Set { from, to, entry } => {
                self.open_counts.changed(before, Counted::of(incident));
                if to != from {
                    self.metrics.incident_severity_changes_total.inc();
                }
                self.timeline(incident_id, now, entry);
                self.gauges_dirty = true;
                if to < from {
                    self.severity_raised(incident_id, now);
                } else if to > from {
                    self.severity_lowered(incident_id, now);
                }
            }
        }
        self.raised_by = None;
        Reply::Done
    }
}

/// The pseudo-label of regional correlation's index keys (no label has this name).
const REGIONAL: &str = "\0region";

/// The index key of one (label, value) pair.
pub(super) fn key_of(name: &str, value: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    (name, value).hash(&mut hasher);
    hasher.finish()
}

/// A refused request as the core's reply: an id no open incident has is not found.
pub(super) fn refused(refusal: Refusal) -> Reply {
    match refusal {
        Refusal::NotOpen(_) => Reply::NotFound(refusal.to_string()),
        _ => Reply::Conflict(refusal.to_string()),
    }
}

/// The impact of a CRI that no rule matched: SR A breaches SLA, B is high business impact,
/// C low; `kind` is taken from the report.
fn default_cri_impact(
    signal: &Signal,
) -> (
    Arc<str>,
    ImpactKind,
    bool,
    Option<BusinessImpact>,
    Option<u8>,
) {
    let sr = signal.label("sr_severity").unwrap_or("C");
    let kind = signal
        .label("kind")
        .and_then(ImpactKind::parse)
        .unwrap_or(ImpactKind::Other);
    let (sla, business) = match sr {
        "A" => (true, Some(BusinessImpact::High)),
        "B" => (false, Some(BusinessImpact::High)),
        _ => (false, Some(BusinessImpact::Low)),
    };
    ("cri-default".into(), kind, sla, business, None)
}
