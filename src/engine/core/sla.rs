//! The services' availability (`incident::sla`) kept up to date, and impacts with
//! `sla_breach: auto` breaching their SLA when the burn rates say so.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::Core;
use crate::config::SlaBreach;
use crate::engine::timers::TimerKey;
use crate::incident::sla::{Availability, Measurement, Thresholds};
use crate::incident::{Entry, Impact};
use crate::signal::{Signal, SourceKind};

impl Core {
    /// Pick up the availability a previous engine stored.
    pub(super) fn restore_availability(&mut self, stored: Option<&str>, now: DateTime<Utc>) {
        if let Some(text) = stored {
            match Availability::from_json(text) {
                Ok(availability) => self.availability = availability,
                Err(e) => {
                    tracing::warn!(error = %e, "stored availability unreadable: measuring afresh")
                }
            }
        }
        self.forget_unmarked_indicators();
        self.availability.prune(now);
        self.rewatch_sla();
        self.availability_gauges(now);
    }

    /// Watch every active impact whose rule now says `sla_breach: auto` (after a restart or
    /// a reload, which may have changed the rules).
    pub(super) fn rewatch_sla(&mut self) {
        self.sla_watch = self
            .impacts
            .values()
            .filter(|i| self.watches(i))
            .map(|i| i.id)
            .collect();
    }

    /// Indicators of rules no longer marked `availability: true` count no more.
    pub(super) fn forget_unmarked_indicators(&mut self) {
        let marked: BTreeSet<&str> = self
            .setup
            .rules
            .rules
            .iter()
            .filter(|r| r.availability)
            .map(|r| &*r.name)
            .collect();
        self.availability
            .retain_indicators(|rule| marked.contains(rule));
    }

    fn sla_auto(&self, rule: &str) -> bool {
        self.rule_index(rule)
            .is_some_and(|i| self.rule(i).impact.sla_breach == SlaBreach::Auto)
    }

    /// An impact whose SLA breach is still to be measured.
    fn watches(&self, impact: &Impact) -> bool {
        impact.is_active()
            && !impact.sla_breach
            && impact.inhibited_by.is_none()
            && self.sla_auto(&impact.rule)
    }

    fn thresholds(&self) -> Thresholds {
        let burn = self.setup.config.classification.sla.burn;
        Thresholds {
            fast: burn.fast,
            slow: burn.slow,
        }
    }

    /// What is measured of `service` in `region` now, when the catalog gives it an SLA.
    pub(super) fn measure(
        &self,
        service: Option<&str>,
        region: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Measurement> {
        let service = service?;
        let sla = self.setup.catalog.sla(service)?;
        self.availability
            .measure(service, region.unwrap_or(""), sla, now)
    }

    /// For an impact a rule with `sla_breach: auto` opens: what was measured, when it
    /// breaches already.
    pub(super) fn breach_at_open(
        &self,
        service: Option<&str>,
        region: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<Measurement> {
        self.measure(service, region, now)
            .filter(|m| m.breaches(self.thresholds()))
    }

    /// A new impact: say what was measured if it breached at once, else watch it.
    pub(super) fn sla_opened(&mut self, impact_id: i64, now: DateTime<Utc>) {
        let Some(impact) = self.impacts.get(&impact_id) else {
            return;
        };
        if let Some(measured) = impact.sla_measured.as_deref() {
            let entry = Entry::SlaBreached {
                rule: impact.rule.to_string(),
                impact: impact_id,
                measured: measured.clone(),
            };
            self.timeline(impact.incident_id, now, entry);
        } else if self.watches(impact) {
            self.sla_watch.insert(impact_id);
        }
    }

    /// A probe's result is one good or bad event for its service in its region (counted
    /// before the rules see it, so an impact it opens is measured with it).
    pub(super) fn probe_observed(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let (SourceKind::Probe, Some(probe), Some(service)) =
            (signal.source, &signal.probe, signal.labels.get("service"))
        else {
            return;
        };
        let region = signal.labels.get("region").unwrap_or("");
        self.availability
            .record(service, region, probe.success, now);
        self.arm_availability(now);
        self.series_gauges(service, region, now);
    }

    /// After the rules saw a probe's result: the watched impacts of its service and region.
    pub(super) fn probe_checked(&mut self, signal: &Signal, now: DateTime<Utc>) {
        let (SourceKind::Probe, Some(service)) = (signal.source, signal.labels.get("service"))
        else {
            return;
        };
        if self.sla_watch.is_empty() {
            return;
        }
        let region = signal.labels.get("region").unwrap_or("");
        let watched: Vec<i64> = self
            .sla_watch
            .iter()
            .copied()
            .filter(|id| {
                self.impacts.get(id).is_some_and(|i| {
                    i.service.as_deref() == Some(service)
                        && i.region.as_deref().unwrap_or("") == region
                })
            })
            .collect();
        self.check_sla(watched, now);
    }

    /// A signal an availability rule matched: the rule watches its service and region.
    pub(super) fn indicator_seen(&mut self, rule: &str, signal: &Signal, now: DateTime<Utc>) {
        let Some(service) = signal.labels.get("service") else {
            return;
        };
        let region = signal.labels.get("region").unwrap_or("");
        self.availability.add_indicator(rule, service, region);
        self.arm_availability(now);
    }

    /// The availability needs its minute timer while it has anything to count.
    pub(super) fn arm_availability(&mut self, now: DateTime<Utc>) {
        if self.availability.is_empty() {
            return;
        }
        let minute = TimeDelta::minutes(1);
        let next = now.duration_trunc(minute).unwrap_or(now) + minute;
        self.timers.set(TimerKey::Availability, next);
    }

    /// A minute has passed: count it for the indicators, drop what left the windows,
    /// check the watched impacts, refresh the gauges and store it all.
    pub(super) fn availability_minute(&mut self, now: DateTime<Utc>) {
        let setup = Arc::clone(&self.setup);
        let marked: BTreeSet<&str> = setup
            .rules
            .rules
            .iter()
            .filter(|r| r.availability)
            .map(|r| &*r.name)
            .collect();
        // Only with availability rules: each minute looks at every active impact.
        let bad: BTreeSet<(String, String, String)> = if marked.is_empty() {
            BTreeSet::new()
        } else {
            self.impacts
                .values()
                .filter(|i| i.is_active() && i.inhibited_by.is_none())
                .filter(|i| marked.contains(&*i.rule))
                .map(|i| {
                    (
                        i.rule.to_string(),
                        i.service.clone().unwrap_or_default(),
                        i.region.clone().unwrap_or_default(),
                    )
                })
                .collect()
        };
        self.availability.count_minute(now, |key| bad.contains(key));
        self.availability.prune(now);
        let watched: Vec<i64> = self.sla_watch.iter().copied().collect();
        self.check_sla(watched, now);
        self.availability_gauges(now);
        self.dirty.availability = true;
        self.arm_availability(now);
    }

    /// Breach the SLA of each watched impact whose service's burn rates say so.
    fn check_sla(&mut self, ids: Vec<i64>, now: DateTime<Utc>) {
        let thresholds = self.thresholds();
        for id in ids {
            let measured = match self.impacts.get(&id) {
                Some(impact) if self.watches(impact) => {
                    self.measure(impact.service.as_deref(), impact.region.as_deref(), now)
                }
                _ => {
                    self.sla_watch.remove(&id);
                    continue;
                }
            };
            if let Some(measured) = measured.filter(|m| m.breaches(thresholds)) {
                self.sla_watch.remove(&id);
                self.breach_sla(id, measured, now);
            }
        }
    }

    fn breach_sla(&mut self, id: i64, measured: Measurement, now: DateTime<Utc>) {
        let Some(impact) = self.impacts.get_mut(&id) else {
            return;
        };
        impact.sla_breach = true;
        impact.sla_measured = Some(Box::new(measured.clone()));
        let (incident_id, rule, blast) = (impact.incident_id, impact.rule.clone(), impact.blast());
        self.dirty.impacts.insert(id);
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            incident.blast = incident.blast.join(blast);
        }
        // A major impact now: regional correlation finds it too.
        self.index_impact(incident_id, id);
        self.timeline(
            incident_id,
            now,
            Entry::SlaBreached {
                rule: rule.to_string(),
                impact: id,
                measured,
            },
        );
        match &mut self.deferred_reclassify {
            Some(pending) => {
                pending
                    .entry(incident_id)
                    .or_insert_with(|| rule.to_string());
            }
            None => self.reclassify(incident_id, now, &rule),
        }
    }

    fn series_gauges(&self, service: &str, region: &str, now: DateTime<Utc>) {
        use crate::incident::sla::Window;
        let labels = [service, region];
        let metrics = &self.metrics;
        match self
            .availability
            .counts(service, region, Window::ThirtyDays, now)
            .ratio()
        {
            Some(ratio) => metrics
                .service_availability_ratio
                .with_label_values(&labels)
                .set(ratio),
            None => {
                let _ = metrics
                    .service_availability_ratio
                    .remove_label_values(&labels);
            }
        }
        let measured = self.measure(Some(service), Some(region), now);
        for (window, burn) in [
            ("1h", measured.as_ref().map(|m| m.burn_1h)),
            ("6h", measured.as_ref().map(|m| m.burn_6h)),
        ] {
            let labels = [service, region, window];
            match burn {
                Some(burn) => metrics
                    .service_error_budget_burn_rate
                    .with_label_values(&labels)
                    .set(burn),
                None => {
                    let _ = metrics
                        .service_error_budget_burn_rate
                        .remove_label_values(&labels);
                }
            }
        }
    }

    /// Every series' gauges; those of series gone are removed.
    fn availability_gauges(&self, now: DateTime<Utc>) {
        self.metrics.service_availability_ratio.reset();
        self.metrics.service_error_budget_burn_rate.reset();
        for (service, region) in self.availability.series() {
            self.series_gauges(service, region, now);
        }
    }

    /// Have the next batch store the availability (an engine about to stop).
    pub fn store_availability(&mut self) {
        if !self.availability.is_empty() {
            self.dirty.availability = true;
        }
    }
}
