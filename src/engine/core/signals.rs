//! Signals through the rules, pushed alerts' leases and heartbeats.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use foldhash::{HashMap, HashMapExt};

use super::{Core, HeartbeatState, Lease, Reply};
use crate::engine::lease_expiries::LeaseExpiries;
use crate::engine::timers::TimerKey;
use crate::incident::timeline::ClearCause;
use crate::rules::{Decision, Rule, RuleState};
use crate::signal::{Fingerprint, Signal, SignalState, SourceKind};

impl Core {
    /// The pushed alerts' leases, from the signals their rule states hold: of each
    /// fingerprint, the signal observed last, if it is a firing alert with an end. An alert
    /// that no rule state keeps has no lease after a restart; its end would resolve nothing
    /// (and its sender pushes it again, as to an Alertmanager that restarted). Rows of the
    /// `leases` table, from a store written before, count as one more such signal each and
    /// are deleted with the first write.
    pub(super) fn restore_leases(
        &mut self,
        rows: Vec<(i64, Fingerprint, Lease)>,
        now: DateTime<Utc>,
    ) {
        let mut last: HashMap<Fingerprint, (Arc<Signal>, Option<DateTime<Utc>>)> = HashMap::new();
        let mut offer = |fingerprint: Fingerprint, signal: &Arc<Signal>, ends| {
            let entry = last
                .entry(fingerprint)
                .or_insert_with(|| (Arc::clone(signal), ends));
            if signal.observed_at > entry.0.observed_at {
                *entry = (Arc::clone(signal), ends);
            }
        };
        for ((_, fingerprint), state) in &self.rule_states {
            offer(*fingerprint, &state.signal, state.signal.expires_at);
        }
        for (row, fingerprint, lease) in &rows {
            offer(*fingerprint, &lease.signal, Some(lease.expires_at));
            self.dirty.deleted_leases.push(*row);
        }
        // Leases are refreshed in memory only; after a restart give senders a full
        // resolve_timeout to refresh them, as Alertmanager does after its restart.
        let grace = self.setup.config.sources.resolve_timeout.chrono();
        for (fingerprint, (signal, ends)) in last {
            if let (SourceKind::Alert, SignalState::Firing, Some(expires_at)) =
                (signal.source, signal.state, ends)
            {
                let expires_at = expires_at.max(now + grace);
                self.leases
                    .insert(fingerprint, Lease { expires_at, signal });
            }
        }
    }

    /// The leases taken from their instant `at` run out: each alert still firing with
    /// that end (not pushed again since, nor resolved) resolves.
    pub(super) fn leases_end(
        &mut self,
        at: DateTime<Utc>,
        fingerprints: Vec<Fingerprint>,
        now: DateTime<Utc>,
    ) {
        for fingerprint in fingerprints {
            let current = self
                .leases
                .get(&fingerprint)
                .is_some_and(|lease| LeaseExpiries::is_current(at, lease.expires_at));
            if let Some(lease) = current.then(|| self.leases.remove(&fingerprint)).flatten() {
                let mut signal = Arc::unwrap_or_clone(lease.signal);
                signal.state = SignalState::Resolved;
                signal.expires_at = None;
                signal.observed_at = now;
                self.on_signal(signal, now);
            }
        }
    }

    /// Run one signal through the rules; returns the incidents its impacts joined.
    pub(super) fn on_signal(&mut self, signal: Signal, now: DateTime<Utc>) -> Vec<i64> {
        self.metrics
            .signals_total
            .with_label_values(&[signal.source.as_str()])
            .inc();
        let fingerprint = signal.fingerprint();
        // One copy, shared by the lease and every rule state that keeps it.
        let signal = Arc::new(signal);
        if signal.source == SourceKind::Alert {
            self.track_lease(fingerprint, &signal);
        }
        self.probe_observed(&signal, now);
        let setup = Arc::clone(&self.setup);
        let mut touched = Vec::new();
        let mut matched = false;
        for (index, rule) in setup.rules.rules.iter().enumerate() {
            if !rule.matches(&signal) {
                continue;
            }
            matched = true;
            if rule.availability {
                self.indicator_seen(&rule.name, &signal, now);
            }
            let key = (index as u32, fingerprint);
            let known = self
                .rule_states
                .get(&key)
                .and_then(|state| state.known_condition(&signal));
            let condition = match known.map_or_else(|| rule.condition(&signal), Ok) {
                Ok(c) => c,
                Err(e) => {
                    self.metrics
                        .rule_evaluation_failures_total
                        .with_label_values(&[&rule.name])
                        .inc();
                    tracing::warn!(rule = %rule.name, error = %e, "rule evaluation failed");
                    continue;
                }
            };
            let existed = self.rule_states.contains_key(&key);
            if !existed && !condition {
                continue;
            }
            let next_row = &mut self.next_rule_state_row;
            let state = self.rule_states.entry(key).or_insert_with(|| RuleState {
                row: take_row(next_row),
                ..RuleState::new(Arc::clone(&signal), now)
            });
            let before = (
                state.condition,
                state.failures,
                state.successes,
                state.suppressed,
            );
            state.observe(condition, Arc::clone(&signal), now);
            cap_counts(state, rule);
            let after = (
                state.condition,
                state.failures,
                state.successes,
                state.suppressed,
            );
            if !existed || before != after {
                self.dirty.rule_states.push(key);
            }
            if let Some(incident) = self.step_rule(key.0, fingerprint, now) {
                touched.push(incident);
            } else if let Some(impact) = self.rule_states.get(&key).and_then(|s| s.impact) {
                touched.extend(self.impacts.get(&impact).map(|i| i.incident_id));
            }
        }
        self.probe_checked(&signal, now);
        if !matched && signal.source == SourceKind::Cri && signal.is_firing() {
            // A customer report is never dropped: without a rule it gets a default impact.
            let impact = self.open_impact(None, &signal, fingerprint, now);
            touched.extend(self.impacts.get(&impact).map(|i| i.incident_id));
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    pub(super) fn track_lease(&mut self, fingerprint: Fingerprint, signal: &Arc<Signal>) {
        match (signal.state, signal.expires_at) {
            (SignalState::Firing, Some(expires_at)) => {
                if let Some(lease) = self.leases.get_mut(&fingerprint) {
                    // A refresh: kept in memory only (see `restore`).
                    lease.signal = Arc::clone(signal);
                    if lease.expires_at != expires_at {
                        lease.expires_at = expires_at;
                        self.lease_ends_at(fingerprint, expires_at);
                    }
                    return;
                }
                // Stored with the rule states that keep the signal (see `Lease`).
                self.leases.insert(
                    fingerprint,
                    Lease {
                        expires_at,
                        signal: Arc::clone(signal),
                    },
                );
                self.lease_ends_at(fingerprint, expires_at);
            }
            _ => {
                // Its entry in `lease_expiries` goes stale.
                self.leases.remove(&fingerprint);
            }
        }
    }

    pub(super) fn lease_ends_at(&mut self, fingerprint: Fingerprint, at: DateTime<Utc>) {
        self.lease_expiries.add(fingerprint, at);
        if self.lease_expiries.needs_rebuild(self.leases.len()) {
            self.rebuild_lease_expiries();
        }
    }

    pub(super) fn rebuild_lease_expiries(&mut self) {
        self.lease_expiries
            .rebuild(self.leases.iter().map(|(f, lease)| (*f, lease.expires_at)));
    }

    /// Act on a rule state's decision; returns the incident of an impact it opened.
    pub(super) fn step_rule(
        &mut self,
        index: u32,
        fingerprint: Fingerprint,
        now: DateTime<Utc>,
    ) -> Option<i64> {
        let key = (index, fingerprint);
        let timer = TimerKey::Rule(index, fingerprint);
        let setup = Arc::clone(&self.setup);
        let rule = &setup.rules.rules[index as usize];
        let decision = self.rule_states.get(&key)?.decide(rule, now);
        let mut opened = None;
        match decision {
            Decision::OpenImpact => {
                self.timers.cancel(timer);
                let signal = self.rule_states[&key].signal.clone();
                let impact = self.open_impact(Some(rule), &signal, fingerprint, now);
                if let Some(state) = self.rule_states.get_mut(&key) {
                    state.impact = Some(impact);
                }
                self.dirty.rule_states.push(key);
                opened = self.impacts.get(&impact).map(|i| i.incident_id);
            }
            Decision::ClearImpact => {
                self.timers.cancel(timer);
                let cleared = self
                    .rule_states
                    .get_mut(&key)
                    .map(RuleState::take_cleared)
                    .unwrap_or_default();
                for impact in cleared {
                    self.clear_impact(
                        impact,
                        now,
                        ClearCause::ConditionStopped {
                            rule: rule.name.to_string(),
                        },
                    );
                }
                self.dirty.rule_states.push(key);
            }
            Decision::WakeAt(at) => self.timers.set(timer, at),
            Decision::Nothing => self.timers.cancel(timer),
        }
        let one_shot = self.rule_states[&key].signal.source == SourceKind::Cri;
        let state = &self.rule_states[&key];
        // A CRI reports once: when its impact is over, its state is too.
        if state.is_idle() || (one_shot && state.impact.is_none() && state.suppressed) {
            let row = state.row;
            self.rule_states.remove(&key);
            self.timers.cancel(timer);
            // Its key may be among the changed ones: a state no longer there is not taken.
            self.dirty.deleted_rule_states.push(row);
        }
        opened
    }

    pub(super) fn heartbeat(&mut self, name: &str, now: DateTime<Utc>) -> Reply {
        let Some(index) = self
            .setup
            .config
            .heartbeats
            .iter()
            .position(|h| h.name == name)
        else {
            return Reply::NotFound(format!("heartbeat {name:?} is not configured"));
        };
        let every = self.setup.config.heartbeats[index].every;
        let was_missed = self.heartbeats[index].missed;
        self.heartbeats[index] = HeartbeatState {
            last_ping: Some(now),
            missed: false,
        };
        self.dirty.heartbeats.insert(index as u32);
        self.timers
            .set(TimerKey::Heartbeat(index as u32), now + every.chrono());
        let mut signal = self.heartbeat_signal(index, now);
        signal.state = SignalState::Resolved;
        if was_missed
            || self
                .rule_states
                .keys()
                .any(|(_, f)| *f == signal.fingerprint())
        {
            self.on_signal(signal, now);
        } else {
            self.metrics
                .signals_total
                .with_label_values(&["heartbeat"])
                .inc();
        }
        Reply::Done
    }

    pub(super) fn heartbeat_signal(&self, index: usize, now: DateTime<Utc>) -> Signal {
        let hb = &self.setup.config.heartbeats[index];
        let mut labels = hb.labels.clone();
        labels.insert("heartbeat".into(), hb.name.clone());
        let mut signal = Signal::new(SourceKind::Heartbeat, labels, now);
        let last = self.heartbeats[index]
            .last_ping
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "never".into());
        Arc::make_mut(&mut signal.annotations).insert(
            "summary".into(),
            format!(
                "heartbeat {} missed: no ping within {} (last: {last})",
                hb.name, hb.every
            ),
        );
        signal
    }

    pub(super) fn heartbeat_missed(&mut self, index: usize, now: DateTime<Utc>) {
        if index >= self.heartbeats.len() {
            return;
        }
        self.heartbeats[index].missed = true;
        self.dirty.heartbeats.insert(index as u32);
        let signal = self.heartbeat_signal(index, now);
        self.on_signal(signal, now);
    }
}

/// The next row id of a table whose rows the engine numbers (rule states).
fn take_row(next: &mut i64) -> i64 {
    let row = *next;
    *next += 1;
    row
}

/// Keep counts from growing past what the rule needs, so steady signals write nothing.
fn cap_counts(state: &mut RuleState, rule: &Rule) {
    use crate::rules::{Clear, Trigger};
    let failure_cap = match rule.trigger {
        Trigger::Failures(n) => n,
        _ => 1,
    };
    let success_cap = match rule.clear {
        Clear::Successes(n) => n,
        _ => 1,
    };
    state.failures = state.failures.min(failure_cap);
    state.successes = state.successes.min(success_cap);
}
