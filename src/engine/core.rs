//! The engine's core: rules, incidents and paging decisions as one state machine.
//!
//! `Core` is pure: it is handed inputs and the current time, and it answers with what
//! changed. It does no I/O, spawns nothing and never reads a clock, so the running engine,
//! `tocsin test` and `tocsin replay` all drive this same code (the first on tokio's clock,
//! the others on a simulated one). What must outlive a crash leaves through
//! [`Core::take_changes`], which the runtime writes to the store before anything is sent.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
// The core's maps are keyed by fingerprints and ids, looked up several times per signal:
// hashing (std's SipHash) and probing in them were ~7 % of the ingest benchmark's samples,
// most of them on the engine's loop. foldhash is seeded per process too, so keys sent in cannot aim at one bucket.
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

use super::lease_expiries::LeaseExpiries;
use super::open_counts::{Counted, OpenCounts};
use super::setup::Setup;
use super::timers::{TimerKey, Timers};
use crate::config::{BusinessImpact, ImpactKind};
use crate::incident::{
    classify, correlate, resolution, Blast, Impact, Incident, IncidentView, Status, TimelineEntry,
};
use crate::metrics::Metrics;
use crate::paging::escalate::LevelPage;
use crate::paging::page::EscalationRef;
use crate::paging::{route, Escalation, Page, PageEvent, PagePayload, Recipient};
use crate::rules::{Decision, Rule, RuleState};
use crate::signal::{Fingerprint, Signal, SignalState, SourceKind};
pub use crate::store::model::{Changes, HeartbeatState, Lease, PagingState, Snapshot};

/// Something the core is asked to do. Serializable: an engine that does not lead writes it
/// to the store's inbox for the leader.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "input", content = "with", rename_all = "snake_case")]
pub enum Input {
    Signals(Vec<Signal>),
    Heartbeat(String),
    Ack {
        incident_id: i64,
        by: String,
    },
    Resolve {
        incident_id: i64,
        by: String,
        note: Option<String>,
    },
    /// `None` unpins the severity.
    SetSeverity {
        incident_id: i64,
        severity: Option<u8>,
        by: String,
        reason: Option<String>,
    },
    Note {
        incident_id: i64,
        by: String,
        text: String,
    },
    /// Swap in a new config (a reload). Local only: never goes through the inbox.
    #[serde(skip)]
    Reload(Arc<Setup>),
    /// A page was given up after its retries: record it and go on to the next level.
    DeliveryFailed {
        incident_id: i64,
        level: Option<usize>,
        recipient: String,
        reason: String,
    },
}

/// The core's answer to an input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "detail", rename_all = "snake_case")]
pub enum Reply {
    Done,
    /// For each signal, the incidents its impacts joined.
    Signals(Vec<Vec<i64>>),
    NotFound(String),
    Conflict(String),
}

impl PagingState {
    fn add_paged(&mut self, recipient: Recipient) {
        if let Err(at) = self.paged.binary_search(&recipient) {
            // Room for this one only: a Vec's first growth makes room for four.
            self.paged.reserve_exact(1);
            self.paged.insert(at, recipient);
        }
    }
}

#[derive(Default)]
struct Dirty {
    incidents: BTreeSet<i64>,
    impacts: BTreeSet<i64>,
    /// (incident, impact): impacts that joined an incident (see [`Changes::impact_links`]).
    linked: Vec<(i64, i64)>,
    timeline: Vec<TimelineEntry>,
    /// Impacts a rule added to an incident in this batch, by (incident, rule): one timeline
    /// entry tells them all, described when the batch is taken (see [`Core::attach`]).
    added: HashMap<(i64, Arc<str>), Added>,
    paging: BTreeSet<i64>,
    /// Rule states changed, a key once or more (deduplicated when the batch is taken). A set
    /// kept in key order cost each new alert two inserts at random places (~3 % of the
    /// samples in the ingest benchmark's first pass), for an order the rows do not use.
    rule_states: Vec<(u32, Fingerprint)>,
    /// Rows of rule states gone.
    deleted_rule_states: Vec<i64>,
    /// Rows of the `leases` table read at the restart.
    deleted_leases: Vec<i64>,
    heartbeats: BTreeSet<u32>,
    pages: Vec<Page>,
    /// Resolved incidents to drop from memory once written.
    closed: BTreeSet<i64>,
}

const TOCSIN: &str = "tocsin";

/// Impacts added to an incident by one rule within one batch, and their timeline entry.
struct Added {
    /// The entry's index in the batch's timeline.
    entry: usize,
    /// The first impact: its summary, service and region.
    first: String,
    impacts: Vec<i64>,
}

impl Added {
    /// "impact added by R: …" for one impact, as always; for more, one entry that counts
    /// them and lists their ids (each impact is in the incident with all it says).
    fn describe(&self, rule: &str) -> (String, serde_json::Value) {
        match self.impacts.as_slice() {
            [one] => (
                format!("impact added by {rule}: {}", self.first),
                serde_json::json!({ "impact": one }),
            ),
            all => (
                format!(
                    "{} impacts added by {rule}: {} and {} more",
                    all.len(),
                    self.first,
                    all.len() - 1
                ),
                serde_json::json!({ "impacts": all }),
            ),
        }
    }
}

pub struct Core {
    setup: Arc<Setup>,
    metrics: Arc<Metrics>,
    rule_states: HashMap<(u32, Fingerprint), RuleState>,
    leases: HashMap<Fingerprint, Lease>,
    /// When the leases end (each lease says when it ends now; see `lease_expiries`).
    lease_expiries: LeaseExpiries,
    heartbeats: Vec<HeartbeatState>,
    /// Deadline of each heartbeat; missed ones wait for a ping.
    // Boxed: a hash table keeps up to twice its entries' room, and more while it grows;
    // for these ~400-byte values that room cost more than the values themselves.
    incidents: HashMap<i64, Box<Incident>>,
    impacts: HashMap<i64, Box<Impact>>,
    paging: HashMap<i64, Box<PagingState>>,
    timers: Timers,
    next_incident_id: i64,
    next_impact_id: i64,
    next_page_id: i64,
    next_rule_state_row: i64,
    started_at: DateTime<Utc>,
    dirty: Dirty,
    /// Open incidents by (label, value) of their impacts' `correlation.by` labels, so a new
    /// impact finds its candidates without scanning every open incident. Keyed by a hash
    /// of the pair, not the two strings (~110 bytes less per open incident): a collision
    /// only adds a candidate, and `correlate::candidates` compares the labels themselves.
    /// The ids are kept sorted in a Vec: usually one, where a BTreeSet's node would take
    /// ~100 bytes.
    correlation_index: HashMap<u64, Vec<i64>>,
    gauges_dirty: bool,
    /// What those gauges show, kept as incidents change (see `open_counts`).
    open_counts: OpenCounts,
    /// While a batch of signals is handled: incidents that took impacts and must be
    /// reclassified (with the rule that caused it), once each at the end of the batch.
    /// Reclassifying walks every impact of the incident; doing it per attached impact made
    /// a push of 10,000 new alerts quadratic in the size of each incident (ingest benchmark).
    deferred_reclassify: Option<BTreeMap<i64, String>>,
}

impl Core {
    pub fn new(setup: Arc<Setup>, metrics: Arc<Metrics>, now: DateTime<Utc>) -> Self {
        let heartbeats = setup
            .config
            .heartbeats
            .iter()
            .map(|_| HeartbeatState {
                last_ping: None,
                missed: false,
            })
            .collect();
        let mut core = Core {
            setup,
            metrics,
            rule_states: HashMap::new(),
            leases: HashMap::new(),
            lease_expiries: LeaseExpiries::default(),
            heartbeats,
            incidents: HashMap::new(),
            impacts: HashMap::new(),
            paging: HashMap::new(),
            timers: Timers::default(),
            next_incident_id: 1,
            next_impact_id: 1,
            next_page_id: 1,
            next_rule_state_row: 1,
            started_at: now,
            dirty: Dirty::default(),
            correlation_index: HashMap::new(),
            gauges_dirty: true,
            open_counts: OpenCounts::default(),
            deferred_reclassify: None,
        };
        core.rebuild_timers(now);
        core
    }

    /// Pick up where a previous engine stopped.
    pub fn restore(&mut self, snapshot: Snapshot, now: DateTime<Utc>) {
        self.next_incident_id = snapshot.next_incident_id.max(1);
        self.next_impact_id = snapshot.next_impact_id.max(1);
        self.next_page_id = snapshot.next_page_id.max(1);
        self.next_rule_state_row = snapshot.next_rule_state_row.max(1);
        for incident in snapshot.incidents.into_iter().filter(Incident::is_open) {
            self.incidents.insert(incident.id, Box::new(incident));
        }
        let mut resolved_firing = Vec::new();
        for impact in snapshot.impacts {
            if let Some(incident) = self.incidents.get_mut(&impact.incident_id) {
                // Not stored: the Sev table's view of the impacts is worked out again.
                incident.blast = incident.blast.join(Blast::of(&impact));
                self.impacts.insert(impact.id, Box::new(impact));
            } else if impact.is_active() {
                resolved_firing.push(impact);
            }
        }
        for (id, state) in snapshot.paging {
            if self.incidents.contains_key(&id) {
                self.paging.insert(id, Box::new(state));
            }
        }
        // The store does not keep a key to one row (the engine does): should a key have two
        // rows, the later one is the state, and the earlier goes. States of rules no longer
        // configured stay in the store, unused, as they did before rows had ids.
        for (rule, fingerprint, state) in snapshot.rule_states {
            if let Some(index) = self.rule_index(&rule) {
                if let Some(earlier) = self.rule_states.insert((index, fingerprint), state) {
                    self.dirty.deleted_rule_states.push(earlier.row);
                }
            }
        }
        // Impacts a person resolved while they fired wait for their rule state to clear them.
        let held: BTreeSet<i64> = self
            .rule_states
            .values()
            .flat_map(|state| state.held().iter().copied())
            .collect();
        for impact in resolved_firing {
            if held.contains(&impact.id) {
                self.impacts.insert(impact.id, Box::new(impact));
            }
        }
        self.restore_leases(snapshot.leases, now);
        for (name, state) in snapshot.heartbeats {
            if let Some(i) = self
                .setup
                .config
                .heartbeats
                .iter()
                .position(|h| h.name == name)
            {
                self.heartbeats[i] = state;
            }
        }
        // Right after a restart, before any batch: /metrics must already tell the truth.
        self.open_counts = OpenCounts::of(self.incidents.values().map(|i| &**i));
        self.gauges_dirty = true;
        self.refresh_gauges();
        self.rebuild_correlation_index();
        self.rebuild_timers(now);
    }

    /// The pushed alerts' leases, from the signals their rule states hold: of each
    /// fingerprint, the signal observed last, if it is a firing alert with an end. An alert
    /// that no rule state keeps has no lease after a restart; its end would resolve nothing
    /// (and its sender pushes it again, as to an Alertmanager that restarted). Rows of the
    /// `leases` table, from a store written before, count as one more such signal each and
    /// are deleted with the first write.
    fn restore_leases(&mut self, rows: Vec<(i64, Fingerprint, Lease)>, now: DateTime<Utc>) {
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

    /// Swap in a new config. Running escalations keep the policy they started with.
    pub fn reload(&mut self, setup: Arc<Setup>, now: DateTime<Utc>) {
        let old = std::mem::replace(&mut self.setup, setup);
        // Rule states follow their rule by name; states of removed rules clear their impacts.
        let states = std::mem::take(&mut self.rule_states);
        for ((index, fingerprint), mut state) in states {
            let name = &old.rules.rules[index as usize].name;
            match self.rule_index(name) {
                Some(new_index) => {
                    // Its `when` may have changed: the next signal runs it again.
                    state.evaluated = false;
                    self.rule_states.insert((new_index, fingerprint), state);
                }
                None => {
                    for impact_id in state.take_cleared() {
                        self.clear_impact(
                            impact_id,
                            now,
                            &format!("rule {name} removed by a reload"),
                        );
                    }
                    self.dirty.deleted_rule_states.push(state.row);
                }
            }
        }
        let old_heartbeats = std::mem::take(&mut self.heartbeats);
        self.heartbeats = self
            .setup
            .config
            .heartbeats
            .iter()
            .map(|h| {
                old.config
                    .heartbeats
                    .iter()
                    .position(|o| o.name == h.name)
                    .map(|i| old_heartbeats[i].clone())
                    .unwrap_or(HeartbeatState {
                        last_ping: Some(now),
                        missed: false,
                    })
            })
            .collect();
        self.rebuild_correlation_index();
        self.gauges_dirty = true;
        self.rebuild_timers(now);
    }

    /// The (label, value) pairs of an impact that correlation looks at.
    fn correlation_keys(&self, impact: &Impact) -> Vec<u64> {
        self.setup
            .config
            .correlation
            .by
            .iter()
            .filter_map(|name| {
                let value = impact.labels.get(name).filter(|v| !v.is_empty())?;
                let mut hasher = std::hash::DefaultHasher::new();
                (name.as_str(), value).hash(&mut hasher);
                Some(hasher.finish())
            })
            .collect()
    }

    fn index_impact(&mut self, incident_id: i64, impact_id: i64) {
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

    fn unindex_incident(&mut self, incident_id: i64, impact_ids: &[i64]) {
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

    fn rebuild_correlation_index(&mut self) {
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

    pub fn setup(&self) -> &Arc<Setup> {
        &self.setup
    }

    fn rule_index(&self, name: &str) -> Option<u32> {
        self.setup
            .rules
            .rules
            .iter()
            .position(|r| &*r.name == name)
            .map(|i| i as u32)
    }

    fn rule(&self, index: u32) -> &Rule {
        &self.setup.rules.rules[index as usize]
    }

    /// Recompute every timer from state (after a restore or reload).
    fn rebuild_timers(&mut self, now: DateTime<Utc>) {
        self.timers.clear();
        let keys: Vec<(u32, Fingerprint)> = self.rule_states.keys().copied().collect();
        for (index, fingerprint) in keys {
            // Look at every live state at once: a `for:` that fell due while the engine was
            // down opens its impact now, one still pending gets its timer back.
            self.timers.set(TimerKey::Rule(index, fingerprint), now);
        }
        self.rebuild_lease_expiries();
        for (i, hb) in self.setup.config.heartbeats.iter().enumerate() {
            let state = &self.heartbeats[i];
            if !state.missed {
                let from = state.last_ping.unwrap_or(self.started_at);
                self.timers
                    .set(TimerKey::Heartbeat(i as u32), from + hb.every.chrono());
            }
        }
        let ids: Vec<i64> = self.incidents.keys().copied().collect();
        for id in ids {
            self.schedule_auto_resolve(id);
            self.schedule_respond_by(id);
            self.schedule_escalation(id, now);
        }
    }

    /// When the core next needs [`Core::tick`].
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        match (self.timers.next(), self.lease_expiries.next()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timers and leases waiting to run out.
    pub fn pending_timers(&self) -> usize {
        self.timers.len() + self.leases.len()
    }

    pub fn open_incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values().map(|i| &**i)
    }

    pub fn impact(&self, id: i64) -> Option<&Impact> {
        self.impacts.get(&id).map(|i| &**i)
    }

    /// Fire every timer due at or before `now`, each at its own time.
    pub fn tick(&mut self, now: DateTime<Utc>) {
        // Bounded: a timer that re-arms itself in the past cannot spin forever.
        for _ in 0..1_000_000 {
            // A timer that fell due while the engine was down (or busy) fires now, once.
            let timer = self.timers.peek().filter(|(at, _)| *at <= now);
            let leases = self.lease_expiries.next().filter(|at| *at <= now);
            match (timer, leases) {
                (None, None) => break,
                // At one instant rule timers go first, then leases, then the rest: the order
                // they had when leases were timers too.
                (Some((at, key)), leases)
                    if leases.is_none_or(|l| {
                        at < l || (at == l && matches!(key, TimerKey::Rule(..)))
                    }) =>
                {
                    self.timers.pop_due(now);
                    self.fire(key, now);
                }
                _ => {
                    if let Some((at, fingerprints)) = self.lease_expiries.take_due(now) {
                        self.leases_end(at, fingerprints, now);
                    }
                }
            }
        }
    }

    /// The leases taken from their instant `at` run out: each alert still firing with
    /// that end (not pushed again since, nor resolved) resolves.
    fn leases_end(
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

    fn fire(&mut self, key: TimerKey, now: DateTime<Utc>) {
        match key {
            TimerKey::Rule(index, fingerprint) => {
                self.step_rule(index, fingerprint, now);
            }
            TimerKey::Heartbeat(index) => self.heartbeat_missed(index as usize, now),
            TimerKey::AutoResolve(id) => {
                let all_clear = self.incidents.get(&id).is_some_and(|i| {
                    i.impact_ids
                        .iter()
                        .all(|x| self.impacts.get(x).is_none_or(|m| !m.is_active()))
                });
                if all_clear {
                    let after = self.setup.config.incidents.resolve_after;
                    self.resolve(
                        id,
                        TOCSIN,
                        Some(format!("every impact clear for {after}")),
                        now,
                    );
                }
            }
            TimerKey::Escalation(id) => self.drive_escalation(id, now),
            TimerKey::RespondBy(id) => self.respond_by_due(id, now),
        }
    }

    /// Handle one input at `now`.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Reply {
        match input {
            Input::Signals(signals) => {
                let mut out = Vec::with_capacity(signals.len());
                self.deferred_reclassify = Some(BTreeMap::new());
                for signal in signals {
                    out.push(self.on_signal(signal, now));
                }
                // An incident merged into another meanwhile is gone: reclassify skips it.
                for (incident_id, cause) in self.deferred_reclassify.take().unwrap_or_default() {
                    self.reclassify(incident_id, now, &cause);
                }
                Reply::Signals(out)
            }
            Input::Heartbeat(name) => self.heartbeat(&name, now),
            Input::Reload(setup) => {
                self.reload(setup, now);
                Reply::Done
            }
            Input::Ack { incident_id, by } => self.acknowledge(incident_id, &by, now),
            Input::Resolve {
                incident_id,
                by,
                note,
            } => match self.incidents.get(&incident_id) {
                None => Reply::NotFound(format!("incident {incident_id} is not open")),
                Some(_) => {
                    self.resolve(incident_id, &by, note, now);
                    Reply::Done
                }
            },
            Input::SetSeverity {
                incident_id,
                severity,
                by,
                reason,
            } => self.set_severity(incident_id, severity, &by, reason, now),
            Input::Note {
                incident_id,
                by,
                text,
            } => {
                if !self.incidents.contains_key(&incident_id) {
                    return Reply::NotFound(format!("incident {incident_id} is not open"));
                }
                self.timeline(incident_id, now, "note", &by, text, serde_json::Value::Null);
                Reply::Done
            }
            Input::DeliveryFailed {
                incident_id,
                level,
                recipient,
                reason,
            } => {
                // Recorded even when the incident was resolved meanwhile: the timeline keeps
                // every page's fate.
                self.timeline(
                    incident_id,
                    now,
                    "delivery_failed",
                    TOCSIN,
                    format!("page to {recipient} given up: {reason}"),
                    serde_json::json!({ "recipient": recipient, "level": level }),
                );
                if self.incidents.contains_key(&incident_id) {
                    let last = self
                        .paging
                        .get(&incident_id)
                        .and_then(|p| p.escalation.as_ref())
                        .and_then(|e| e.last_paged_level);
                    if level.is_some() && level == last {
                        if let Some(esc) = self
                            .paging
                            .get_mut(&incident_id)
                            .and_then(|p| p.escalation.as_mut())
                        {
                            esc.hurry(now);
                        }
                        self.drive_escalation(incident_id, now);
                    }
                }
                Reply::Done
            }
        }
    }

    // ----- signals and rules -------------------------------------------------------------

    /// Run one signal through the rules; returns the incidents its impacts joined.
    fn on_signal(&mut self, signal: Signal, now: DateTime<Utc>) -> Vec<i64> {
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
        let setup = Arc::clone(&self.setup);
        let mut touched = Vec::new();
        let mut matched = false;
        for (index, rule) in setup.rules.rules.iter().enumerate() {
            if !rule.matches(&signal) {
                continue;
            }
            matched = true;
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
        if !matched && signal.source == SourceKind::Cri && signal.is_firing() {
            // A customer report is never dropped: without a rule it gets a default impact.
            let impact = self.open_impact(None, &signal, fingerprint, now);
            touched.extend(self.impacts.get(&impact).map(|i| i.incident_id));
        }
        touched.sort_unstable();
        touched.dedup();
        touched
    }

    fn track_lease(&mut self, fingerprint: Fingerprint, signal: &Arc<Signal>) {
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

    fn lease_ends_at(&mut self, fingerprint: Fingerprint, at: DateTime<Utc>) {
        self.lease_expiries.add(fingerprint, at);
        if self.lease_expiries.needs_rebuild(self.leases.len()) {
            self.rebuild_lease_expiries();
        }
    }

    fn rebuild_lease_expiries(&mut self) {
        self.lease_expiries
            .rebuild(self.leases.iter().map(|(f, lease)| (*f, lease.expires_at)));
    }

    /// Act on a rule state's decision; returns the incident of an impact it opened.
    fn step_rule(
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
                        &format!("rule {} condition stopped", rule.name),
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

    // ----- impacts and incidents ---------------------------------------------------------

    /// Open an impact for a signal (from a rule, or the default for an unmatched CRI) and
    /// put it in an incident. Returns the impact id.
    fn open_impact(
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
                rule.impact.sla_breach,
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
        };
        let window = setup.config.correlation.window.chrono();
        // Usually one key with one or two incidents: a sorted Vec, not a tree built for them.
        let mut indexed: Vec<i64> = self
            .correlation_keys(&impact)
            .iter()
            .filter_map(|key| self.correlation_index.get(key))
            .flatten()
            .copied()
            .collect();
        indexed.sort_unstable();
        indexed.dedup();
        let candidates = correlate::candidates(
            &impact,
            indexed
                .iter()
                .filter_map(|id| self.incidents.get(id).map(|i| &**i)),
            |x| self.impacts.get(&x).map(|i| &**i),
            &setup.config.correlation.by,
            window,
            now,
        );
        let incident_id = match candidates.first() {
            None => self.open_incident(impact, now),
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
        id
    }

    fn open_incident(&mut self, mut impact: Impact, now: DateTime<Utc>) -> i64 {
        let id = self.next_incident_id;
        self.next_incident_id += 1;
        impact.incident_id = id;
        let (severity, reason) =
            classify(std::iter::once(&impact), &self.setup.config.classification);
        let incident = Incident::opened_by(id, &impact, severity, now);
        let rule = impact.rule.clone();
        let summary = impact.summary.clone();
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
        self.timeline(
            id,
            now,
            "opened",
            &rule,
            format!("opened at Sev {severity} ({reason}): {summary}"),
            serde_json::json!({ "severity": severity }),
        );
        self.gauges_dirty = true;
        self.schedule_respond_by(id);
        self.start_paging(id, PageEvent::Triggered, now);
        id
    }

    /// Add `impact` to incident `incident_id`. Impacts a rule adds to one incident within
    /// one batch share one timeline entry: a storm of alerts into an incident reads as one
    /// line, not hundreds, and the store writes one row (a timeline row for each new alert
    /// was ~10 % of the ingest benchmark's first pass).
    fn attach(&mut self, incident_id: i64, mut impact: Impact, now: DateTime<Utc>) {
        impact.incident_id = incident_id;
        let impact_id = impact.id;
        match self.dirty.added.entry((incident_id, impact.rule.clone())) {
            std::collections::hash_map::Entry::Occupied(mut added) => {
                added.get_mut().impacts.push(impact_id);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                let added = Added {
                    entry: self.dirty.timeline.len(),
                    first: format!(
                        "{} ({}{})",
                        impact.summary,
                        impact.service.as_deref().unwrap_or("-"),
                        impact
                            .region
                            .as_deref()
                            .map(|r| format!(", {r}"))
                            .unwrap_or_default()
                    ),
                    impacts: vec![impact_id],
                };
                slot.insert(added);
                // Its message and data are written when the batch is taken: by then it
                // knows every impact it tells.
                self.timeline(
                    incident_id,
                    now,
                    "impact_added",
                    &impact.rule,
                    String::new(),
                    serde_json::Value::Null,
                );
            }
        }
        self.dirty.impacts.insert(impact.id);
        self.dirty.linked.push((incident_id, impact_id));
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            incident.impact_ids.push(impact_id);
            if incident.absorb(&impact) {
                self.dirty.incidents.insert(incident_id);
            }
        }
        self.impacts.insert(impact.id, Box::new(impact));
        self.index_impact(incident_id, impact_id);
        self.timers.cancel(TimerKey::AutoResolve(incident_id));
    }

    /// Fold incident `from` into `into`: the relation is transitive.
    fn merge(&mut self, from: i64, into: i64, now: DateTime<Utc>) {
        let Some(mut source) = self.incidents.remove(&from) else {
            return;
        };
        self.unindex_incident(from, &source.impact_ids.clone());
        for impact_id in &source.impact_ids {
            if let Some(impact) = self.impacts.get_mut(impact_id) {
                impact.incident_id = into;
                self.dirty.impacts.insert(*impact_id);
                self.dirty.linked.push((into, *impact_id));
            }
        }
        for impact_id in &source.impact_ids {
            self.index_impact(into, *impact_id);
        }
        if let Some(target) = self.incidents.get_mut(&into) {
            target.impact_ids.extend(source.impact_ids.iter().copied());
            target.impact_ids.sort_unstable();
            target.absorb_incident(&source);
            self.dirty.incidents.insert(into);
        }
        if let Some(paging) = self.paging.remove(&from) {
            let target = self.paging.entry(into).or_default();
            for recipient in paging.paged {
                target.add_paged(recipient);
            }
            self.dirty.paging.insert(into);
        }
        self.dirty.paging.insert(from);
        for key in [
            TimerKey::Escalation(from),
            TimerKey::AutoResolve(from),
            TimerKey::RespondBy(from),
        ] {
            self.timers.cancel(key);
        }
        self.open_counts.changed(Counted::of(&source), None);
        source.status = Status::Resolved;
        source.resolved_at = Some(now);
        source.resolved_by = Some(TOCSIN.into());
        source.merged_into = Some(into);
        source.queue = None;
        self.timeline(
            from,
            now,
            "merged",
            TOCSIN,
            format!("merged into incident {into}"),
            serde_json::json!({ "into": into }),
        );
        self.timeline(
            into,
            now,
            "merged",
            TOCSIN,
            format!("incident {from} merged into this one"),
            serde_json::json!({ "from": from }),
        );
        self.dirty.incidents.insert(from);
        self.dirty.closed.insert(from);
        // Keep the merged incident's final state for the store.
        self.incidents.insert(from, source);
        self.schedule_respond_by(into);
        self.gauges_dirty = true;
    }

    fn clear_impact(&mut self, impact_id: i64, now: DateTime<Utc>, why: &str) {
        let Some(impact) = self.impacts.get_mut(&impact_id) else {
            return;
        };
        if impact.cleared_at.is_some() {
            return;
        }
        impact.cleared_at = Some(now);
        let incident_id = impact.incident_id;
        let rule = impact.rule.clone();
        let summary = impact.summary.clone();
        self.dirty.impacts.insert(impact_id);
        self.timeline(
            incident_id,
            now,
            "impact_cleared",
            &rule,
            format!("impact cleared ({why}): {summary}"),
            serde_json::json!({ "impact": impact_id }),
        );
        self.schedule_auto_resolve(incident_id);
    }

    fn schedule_auto_resolve(&mut self, incident_id: i64) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        if !incident.is_open() {
            return;
        }
        let mut last_clear = None;
        for id in &incident.impact_ids {
            match self.impacts.get(id).map(|i| i.cleared_at) {
                Some(None) => {
                    self.timers.cancel(TimerKey::AutoResolve(incident_id));
                    return;
                }
                Some(Some(at)) => last_clear = last_clear.max(Some(at)),
                None => {}
            }
        }
        let Some(last_clear) = last_clear else { return };
        let after = self.setup.config.incidents.resolve_after.chrono();
        self.timers
            .set(TimerKey::AutoResolve(incident_id), last_clear + after);
    }

    fn schedule_respond_by(&mut self, incident_id: i64) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let breached = self
            .paging
            .get(&incident_id)
            .is_some_and(|p| p.response_breached);
        match incident.respond_by {
            Some(at) if incident.status == Status::Triggered && !breached => {
                self.timers.set(TimerKey::RespondBy(incident_id), at)
            }
            _ => self.timers.cancel(TimerKey::RespondBy(incident_id)),
        }
    }

    /// Severity from what the incident's impacts say (kept up to date as they join, see
    /// `Incident::absorb`): it only rises on its own, and not while pinned.
    fn reclassify(&mut self, incident_id: i64, now: DateTime<Utc>, cause: &str) {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return;
        };
        let (computed, reason) = incident.blast.severity(
            (
                incident.customers.len(),
                incident.regions.len(),
                incident.services.len(),
            ),
            &self.setup.config.classification,
        );
        // Its row is written by whoever changed what it holds (`attach`, `merge`); here only
        // when the severity moves.
        let old = incident.severity;
        if computed < old {
            if incident.pinned {
                let message = format!(
                    "impacts now say Sev {computed} ({reason}); severity stays pinned at Sev {old}"
                );
                self.timeline(
                    incident_id,
                    now,
                    "severity_pinned",
                    cause,
                    message,
                    serde_json::json!({ "computed": computed }),
                );
                return;
            }
            let before = Counted::of(incident);
            incident.severity = computed;
            self.open_counts.changed(before, Counted::of(incident));
            self.dirty.incidents.insert(incident_id);
            self.metrics.incident_severity_changes_total.inc();
            self.timeline(
                incident_id,
                now,
                "severity_changed",
                cause,
                format!("severity raised from Sev {old} to Sev {computed} ({reason})"),
                serde_json::json!({ "from": old, "to": computed }),
            );
            self.gauges_dirty = true;
            self.severity_raised(incident_id, now);
        }
        self.schedule_respond_by(incident_id);
    }

    /// A rise re-routes: the new route's policy starts at its first level.
    fn severity_raised(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let acked_by = self
            .incidents
            .get(&incident_id)
            .and_then(|i| i.acknowledged_by.clone());
        if let Some(incident) = self.incidents.get_mut(&incident_id) {
            if incident.status == Status::Acknowledged {
                // Paging resumes for the graver incident, so the ack no longer holds.
                incident.status = Status::Triggered;
                incident.acknowledged_at = None;
                incident.acknowledged_by = None;
                let by = acked_by.unwrap_or_default();
                self.timeline(
                    incident_id,
                    now,
                    "ack_cleared",
                    TOCSIN,
                    format!("acknowledgement by {by} cleared: severity rose"),
                    serde_json::Value::Null,
                );
            }
        }
        self.start_paging(incident_id, PageEvent::SeverityRaised, now);
    }

    fn resolve(&mut self, incident_id: i64, by: &str, note: Option<String>, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return;
        };
        if !incident.is_open() {
            return;
        }
        self.open_counts.changed(Counted::of(incident), None);
        incident.status = Status::Resolved;
        incident.resolved_at = Some(now);
        incident.resolved_by = Some(by.to_string());
        incident.queue = None;
        let severity = incident.severity;
        let opened_at = incident.opened_at;
        let impact_ids = incident.impact_ids.clone();
        self.unindex_incident(incident_id, &impact_ids);
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
            if let Some(index) = self.rule_index(&rule) {
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
                still_firing.push((impact_id, impact.summary.clone()));
                self.dirty.impacts.insert(impact_id);
            } else if impact.cleared_at.is_none() {
                impact.cleared_at = Some(now);
                self.dirty.impacts.insert(impact_id);
            }
        }
        let named: Vec<(i64, &str)> = still_firing.iter().map(|(id, s)| (*id, &**s)).collect();
        let (message, data) = resolution::resolved_entry(by, note.as_deref(), &named);
        self.timeline(incident_id, now, "resolved", by, message, data);
        self.notify_paged(incident_id, PageEvent::Resolved, now);
        for key in [
            TimerKey::Escalation(incident_id),
            TimerKey::AutoResolve(incident_id),
            TimerKey::RespondBy(incident_id),
        ] {
            self.timers.cancel(key);
        }
        self.dirty.paging.insert(incident_id);
        self.dirty.closed.insert(incident_id);
        self.gauges_dirty = true;
    }

    fn acknowledge(&mut self, incident_id: i64, by: &str, now: DateTime<Utc>) -> Reply {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return Reply::NotFound(format!("incident {incident_id} is not open"));
        };
        match incident.status {
            Status::Resolved => {
                return Reply::Conflict(format!("incident {incident_id} is resolved"))
            }
            Status::Acknowledged => {
                return Reply::Conflict(format!(
                    "incident {incident_id} is already acknowledged by {}",
                    incident.acknowledged_by.as_deref().unwrap_or("someone")
                ))
            }
            Status::Triggered => {}
        }
        incident.status = Status::Acknowledged;
        incident.acknowledged_at = Some(now);
        incident.acknowledged_by = Some(by.to_string());
        let severity = incident.severity;
        let opened_at = incident.opened_at;
        self.dirty.incidents.insert(incident_id);
        self.metrics
            .time_to_acknowledge_seconds
            .with_label_values(&[&severity.to_string()])
            .observe((now - opened_at).num_milliseconds() as f64 / 1000.0);
        self.timeline(
            incident_id,
            now,
            "acknowledged",
            by,
            format!("acknowledged by {by}"),
            serde_json::Value::Null,
        );
        if let Some(esc) = self
            .paging
            .get_mut(&incident_id)
            .and_then(|p| p.escalation.as_mut())
        {
            esc.acknowledge(now);
            self.dirty.paging.insert(incident_id);
        }
        self.timers.cancel(TimerKey::RespondBy(incident_id));
        self.notify_paged(incident_id, PageEvent::Acknowledged, now);
        self.schedule_escalation(incident_id, now);
        Reply::Done
    }

    fn set_severity(
        &mut self,
        incident_id: i64,
        severity: Option<u8>,
        by: &str,
        reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Reply {
        let Some(incident) = self.incidents.get_mut(&incident_id) else {
            return Reply::NotFound(format!("incident {incident_id} is not open"));
        };
        if !incident.is_open() {
            return Reply::Conflict(format!("incident {incident_id} is resolved"));
        }
        let old = incident.severity;
        let reason_text = reason
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        match severity {
            None => {
                incident.pinned = false;
                self.dirty.incidents.insert(incident_id);
                self.timeline(
                    incident_id,
                    now,
                    "severity_unpinned",
                    by,
                    format!("severity unpinned by {by}{reason_text}"),
                    serde_json::Value::Null,
                );
                self.reclassify(incident_id, now, by);
            }
            Some(new) => {
                let before = Counted::of(incident);
                incident.severity = new;
                incident.pinned = true;
                self.open_counts.changed(before, Counted::of(incident));
                self.dirty.incidents.insert(incident_id);
                if new != old {
                    self.metrics.incident_severity_changes_total.inc();
                }
                self.timeline(
                    incident_id,
                    now,
                    "severity_changed",
                    by,
                    format!(
                        "severity set from Sev {old} to Sev {new} and pinned by {by}{reason_text}"
                    ),
                    serde_json::json!({ "from": old, "to": new, "pinned": true, "reason": reason }),
                );
                self.gauges_dirty = true;
                if new < old {
                    self.severity_raised(incident_id, now);
                } else if new > old {
                    self.severity_lowered(incident_id, now);
                }
            }
        }
        Reply::Done
    }

    /// A person lowered the severity: nobody new is paged; a queue or no route stops paging.
    fn severity_lowered(&mut self, incident_id: i64, now: DateTime<Utc>) {
        let Some(incident) = self.incidents.get(&incident_id) else {
            return;
        };
        let selected = route::select(
            &self.setup.paging.routes,
            &incident.labels,
            incident.severity,
        )
        .map(|(i, r)| (i, r.clone()));
        match selected {
            Some((_, r)) if r.policy.is_some() => {}
            _ => self.start_paging(incident_id, PageEvent::Triggered, now),
        }
    }

    // ----- heartbeats ----------------------------------------------------------------------

    fn heartbeat(&mut self, name: &str, now: DateTime<Utc>) -> Reply {
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

    fn heartbeat_signal(&self, index: usize, now: DateTime<Utc>) -> Signal {
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

    fn heartbeat_missed(&mut self, index: usize, now: DateTime<Utc>) {
        if index >= self.heartbeats.len() {
            return;
        }
        self.heartbeats[index].missed = true;
        self.dirty.heartbeats.insert(index as u32);
        let signal = self.heartbeat_signal(index, now);
        self.on_signal(signal, now);
    }

    // ----- paging --------------------------------------------------------------------------

    /// Route the incident and start its escalation (or queue it, or record it unrouted).
    fn start_paging(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
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
                self.timeline(
                    incident_id,
                    now,
                    "unrouted",
                    TOCSIN,
                    format!("no route matches Sev {severity}: recorded, not paged"),
                    serde_json::Value::Null,
                );
            }
            Some((index, r)) => {
                if let Some(queue) = &r.queue {
                    if old_queue.as_deref() != Some(queue) {
                        self.set_queue(incident_id, Some(queue.clone()));
                        self.timeline(
                            incident_id,
                            now,
                            "queued",
                            TOCSIN,
                            format!("route {index} put it in triage queue {queue}: no page"),
                            serde_json::json!({ "queue": queue }),
                        );
                    }
                    return;
                }
                self.set_queue(incident_id, None);
                let policy_name = r.policy.clone().unwrap_or_default();
                let Some(policy) = setup.paging.policies.get(&policy_name) else {
                    self.timeline(
                        incident_id,
                        now,
                        "unrouted",
                        TOCSIN,
                        format!("route {index} names unknown policy {policy_name}"),
                        serde_json::Value::Null,
                    );
                    return;
                };
                let escalation =
                    Escalation::start(policy.clone(), r.active_during.clone(), event, now);
                self.timeline(
                    incident_id,
                    now,
                    "routed",
                    TOCSIN,
                    format!("route {index} → escalation policy {policy_name}"),
                    serde_json::json!({ "route": index, "policy": policy_name }),
                );
                if let Some(p) = self.paging.get_mut(&incident_id) {
                    p.escalation = Some(escalation);
                }
                self.drive_escalation(incident_id, now);
            }
        }
    }

    fn set_queue(&mut self, incident_id: i64, queue: Option<String>) {
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
    fn drive_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
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
            let by = self
                .incidents
                .get(&incident_id)
                .and_then(|i| i.acknowledged_by.clone())
                .unwrap_or_default();
            if let Some(incident) = self.incidents.get_mut(&incident_id) {
                incident.status = Status::Triggered;
                incident.acknowledged_at = None;
                incident.acknowledged_by = None;
                self.dirty.incidents.insert(incident_id);
            }
            self.timeline(
                incident_id,
                now,
                "ack_lapsed",
                TOCSIN,
                format!("acknowledgement by {by} lapsed: escalation resumes"),
                serde_json::Value::Null,
            );
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
                let until_text = until
                    .map(|u| format!(" until {}", u.to_rfc3339()))
                    .unwrap_or_default();
                let comment = s
                    .comment
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default();
                self.timeline(
                    incident_id,
                    now,
                    "silenced",
                    TOCSIN,
                    format!(
                        "silenced by silence {index}{comment}{until_text}: recorded, not paged"
                    ),
                    serde_json::json!({ "silence": index }),
                );
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
            let at = resume_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "never".into());
            self.timeline(
                incident_id,
                now,
                "paused",
                TOCSIN,
                format!("outside {window_names}: paging waits until {at}"),
                serde_json::Value::Null,
            );
        } else if !now_paused {
            paging.pause_noted = false;
        }
        self.page_levels(incident_id, pages, now);
        self.schedule_escalation(incident_id, now);
    }

    fn schedule_escalation(&mut self, incident_id: i64, now: DateTime<Utc>) {
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

    fn timers_for_silence(&self, incident_id: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
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

    fn page_levels(&mut self, incident_id: i64, pages: Vec<LevelPage>, now: DateTime<Utc>) {
        for page in pages {
            self.page_level(incident_id, page.level, page.event, now);
        }
    }

    /// Page every target of one level.
    fn page_level(&mut self, incident_id: i64, level: usize, event: PageEvent, now: DateTime<Utc>) {
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
                    self.timeline(
                        incident_id,
                        now,
                        "page_skipped",
                        TOCSIN,
                        format!("level {level} target {target}: {why}"),
                        serde_json::Value::Null,
                    );
                }
            }
        }
        let who = if reached.is_empty() {
            "nobody".to_string()
        } else {
            reached.join(", ")
        };
        self.timeline(
            incident_id,
            now,
            "paged",
            TOCSIN,
            format!(
                "{event}: level {level} of {} → {who}",
                escalation.policy.name
            ),
            serde_json::json!({ "event": event, "level": level, "policy": escalation.policy.name }),
        );
    }

    /// Tell everyone paged so far (ack and resolve notices).
    fn notify_paged(&mut self, incident_id: i64, event: PageEvent, now: DateTime<Utc>) {
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
        self.timeline(
            incident_id,
            now,
            "paged",
            TOCSIN,
            format!("{event} sent to {}", names.join(", ")),
            serde_json::json!({ "event": event }),
        );
    }

    fn create_page(
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

    fn respond_by_due(&mut self, incident_id: i64, now: DateTime<Utc>) {
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
        let deadline = respond_by.map(|t| t.to_rfc3339()).unwrap_or_default();
        self.timeline(
            incident_id,
            now,
            "response_breached",
            TOCSIN,
            format!("SR {sr} initial response due {deadline} breached: not acknowledged"),
            serde_json::json!({ "sr_severity": sr }),
        );
        let levels = self
            .paging
            .get(&incident_id)
            .and_then(|p| p.escalation.as_ref())
            .map(|e| e.current_and_next())
            .unwrap_or_default();
        if levels.is_empty() {
            self.timeline(
                incident_id,
                now,
                "page_skipped",
                TOCSIN,
                "response_breached: no escalation policy to notify".to_string(),
                serde_json::Value::Null,
            );
        }
        for level in levels {
            self.page_level(incident_id, level, PageEvent::ResponseBreached, now);
        }
    }

    // ----- bookkeeping ---------------------------------------------------------------------

    fn timeline(
        &mut self,
        incident_id: i64,
        at: DateTime<Utc>,
        kind: &str,
        actor: &str,
        message: String,
        data: serde_json::Value,
    ) {
        self.dirty.timeline.push(TimelineEntry {
            incident_id,
            at,
            kind: kind.to_string(),
            actor: actor.to_string(),
            message,
            data,
        });
    }

    /// Set the open-incident and queue gauges if anything they count changed since. The
    /// engine loop calls it once a batch and its pages are on their way, and before it
    /// answers the batch's inputs.
    pub fn refresh_gauges(&mut self) {
        if std::mem::take(&mut self.gauges_dirty) {
            self.count_gauges();
        }
    }

    fn count_gauges(&self) {
        // Tests run debug builds: there every batch checks the counts against a fresh count.
        debug_assert_eq!(
            self.open_counts.without_empty_queues(),
            OpenCounts::of(self.incidents.values().map(|i| &**i)).without_empty_queues(),
            "the open-incident counts drifted from the incidents"
        );
        let mut queues: BTreeMap<&str, i64> = self.open_counts.queues().collect();
        for queue in self
            .setup
            .config
            .routes
            .iter()
            .filter_map(|r| r.queue.as_deref())
        {
            queues.insert(queue, self.open_counts.in_queue(queue));
        }
        for (severity, count) in self.open_counts.by_severity().iter().enumerate() {
            self.metrics
                .incidents_open
                .with_label_values(&[&severity.to_string()])
                .set(*count);
        }
        for (queue, count) in queues {
            self.metrics
                .triage_queue_length
                .with_label_values(&[queue])
                .set(count);
        }
    }

    /// Everything that changed since the last call, ready to be written in one transaction.
    pub fn take_changes(&mut self) -> Changes {
        let mut dirty = std::mem::take(&mut self.dirty);
        for ((_, rule), added) in &dirty.added {
            let entry = &mut dirty.timeline[added.entry];
            (entry.message, entry.data) = added.describe(rule);
        }
        let mut changes = Changes {
            timeline: dirty.timeline,
            pages: dirty.pages,
            ..Changes::default()
        };
        for id in &dirty.incidents {
            if let Some(incident) = self.incidents.get_mut(id) {
                // Without its impact ids, which the store does not keep in the incident's
                // row: copying them for every batch that touches it grew with the incident.
                let impact_ids = std::mem::take(&mut incident.impact_ids);
                changes.incidents.push(Incident::clone(incident));
                incident.impact_ids = impact_ids;
            }
        }
        for id in &dirty.impacts {
            if let Some(impact) = self.impacts.get(id) {
                changes.impacts.push(Impact::clone(impact));
                // Resolved while it fired, then cleared: it leaves memory once written.
                if !impact.is_active() && !self.incidents.contains_key(&impact.incident_id) {
                    self.impacts.remove(id);
                }
            }
        }
        dirty.linked.sort_unstable();
        dirty.linked.dedup();
        for chunk in dirty.linked.chunk_by(|a, b| a.0 == b.0) {
            let ids = chunk.iter().map(|(_, impact)| *impact).collect();
            changes.impact_links.push((chunk[0].0, ids));
        }
        for id in &dirty.paging {
            let open = self.incidents.get(id).is_some_and(|i| i.is_open());
            changes.paging.push((
                *id,
                if open {
                    self.paging.get(id).map(|p| PagingState::clone(p))
                } else {
                    None
                },
            ));
        }
        changes.deleted_rule_states = dirty.deleted_rule_states;
        // In the order of their rows: new rows then go at the end of their table one after
        // the other. In the order of their keys (hashes), each landed in the middle of the
        // batch's earlier rows, splitting pages: the table took ~15 % more pages. A state's
        // row is its own, so sorting by row also brings a key's repeats together; the keys
        // come mostly in the order their rows were given, which the sort runs through.
        let mut changed: Vec<(&(u32, Fingerprint), &RuleState)> = dirty
            .rule_states
            .iter()
            .filter_map(|key| Some((key, self.rule_states.get(key)?)))
            .collect();
        changed.sort_unstable_by_key(|(_, state)| state.row);
        changed.dedup_by_key(|(_, state)| state.row);
        for ((rule, fingerprint), state) in changed {
            let name = self.rule(*rule).name.to_string();
            changes
                .rule_states
                .push((name, *fingerprint, state.clone()));
        }
        changes.deleted_leases = dirty.deleted_leases;
        for index in &dirty.heartbeats {
            let name = self.setup.config.heartbeats[*index as usize].name.clone();
            changes
                .heartbeats
                .push((name, self.heartbeats[*index as usize].clone()));
        }
        // Resolved incidents leave memory once their final state is written, and so do their
        // impacts but those still firing (see `resolve`).
        for id in dirty.closed {
            if let Some(incident) = self.incidents.remove(&id) {
                for impact in &incident.impact_ids {
                    if self
                        .impacts
                        .get(impact)
                        .is_some_and(|i| i.incident_id == id && !i.is_active())
                    {
                        self.impacts.remove(impact);
                    }
                }
            }
            self.paging.remove(&id);
        }
        changes
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
