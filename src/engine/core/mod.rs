//! The engine's core: rules, incidents and paging decisions as one state machine.
//!
//! `Core` is pure: it is handed inputs and the current time, and it answers with what
//! changed. It does no I/O, spawns nothing and never reads a clock, so the running engine,
//! `tocsin test` and `tocsin replay` all drive this same code (the first on tokio's clock,
//! the others on a simulated one). What must outlive a crash leaves through
//! [`Core::take_changes`], which the runtime writes to the store before anything is sent.
//!
//! The core owns the maps, timers and change log; the decisions are made in their stages
//! and applied here: `incident::lifecycle` (open, attach, merge, ack, resolve, severity)
//! in `incidents.rs`, incidents by hand (declare, escalate, add a responder, assign) in
//! `manual.rs`, `paging::decide` (who is paged when) in `paging.rs`, the rules in
//! `signals.rs`; `changes.rs` hands the batch to the store.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
// The core's maps are keyed by fingerprints and ids, looked up several times per signal:
// foldhash hashes them faster than std's SipHash, and is seeded per process too, so keys
// sent in cannot aim at one bucket.
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};

mod case_pages;
mod cases;
mod changes;
mod incidents;
mod live;
mod manual;
mod pages;
mod paging;
mod reopen;
mod signals;
mod sla;
mod steps;
mod tsg;

use super::lease_expiries::LeaseExpiries;
use super::open_counts::OpenCounts;
use super::setup::Setup;
use super::timers::{TimerKey, Timers};
use crate::incident::case::Case;
use crate::incident::lifecycle::{self, Declaration, Refusal};
use crate::incident::timeline::{ClearCause, TOCSIN};
use crate::incident::{Entry, Impact, Incident, TimelineEntry};

use crate::metrics::Metrics;
/// Stored with the incidents; defined by paging, which decides on it.
pub use crate::paging::PagingState;
use crate::paging::{Page, PageEvent};
use crate::rules::{Rule, RuleState};
use crate::signal::{Fingerprint, Signal};
/// The data the core hands the store and reads back from it.
pub use crate::store::model::{Changes, FirstNew, HeartbeatState, Lease, Snapshot};
pub use cases::CaseInput;

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
    /// A person declares an incident: answered with [`Reply::Declared`].
    Declare(Declaration),
    /// A person pages the next level of the incident's escalation now.
    Escalate {
        incident_id: i64,
        by: String,
    },
    /// A person adds a responder: paged now, and told of the incident's updates from then.
    AddResponder {
        incident_id: i64,
        responder: String,
        by: String,
    },
    /// A person makes a responder the incident's assignee, and pages them.
    Assign {
        incident_id: i64,
        responder: String,
        by: String,
    },
    /// Swap in a new config (a reload). Local only: never goes through the inbox.
    #[serde(skip)]
    Reload(Arc<Setup>),
    /// A silence made at run time (a new id, or one replacing the silence of that id).
    PutSilence(crate::paging::Silence),
    /// Expire a run-time silence now.
    ExpireSilence {
        id: String,
    },
    /// An on-call override made at run time.
    PutOverride(crate::paging::ScheduleOverride),
    DeleteOverride {
        id: String,
    },
    /// A page was given up after its retries: record it and go on to the next level.
    DeliveryFailed {
        incident_id: i64,
        level: Option<usize>,
        recipient: String,
        reason: String,
        /// The page's event (absent from inputs written by older versions).
        #[serde(default)]
        event: Option<PageEvent>,
    },
    /// Something done to a support case.
    Case(CaseInput),
    /// Take the oldest unassigned incident of a triage queue.
    TakeFromQueue {
        queue: String,
        by: String,
    },
    /// An incident's TSG action reports how its mitigation went.
    TsgReport {
        incident_id: i64,
        outcome: crate::incident::TsgOutcome,
        note: Option<String>,
        by: String,
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
    /// The id of the incident a person declared.
    Declared(i64),
    /// The support case after the input.
    Case(Box<Case>),
    /// The incident an input was about (taken from a queue).
    Incident(i64),
}

#[derive(Default)]
struct Dirty {
    incidents: BTreeSet<i64>,
    impacts: BTreeSet<i64>,
    /// (incident, impact): impacts that joined an incident (see [`Changes::impact_links`]).
    linked: Vec<(i64, i64)>,
    /// Rendered to rows when the batch is taken.
    timeline: Vec<(i64, DateTime<Utc>, Entry)>,
    /// Impacts a rule added to an incident in this batch, by (incident, rule): the index of
    /// the one timeline entry that tells them all (see [`Core::attach`]).
    added: HashMap<(i64, Arc<str>), usize>,
    paging: BTreeSet<i64>,
    /// Rule states changed, a key once or more (deduplicated when the batch is taken): a
    /// set kept in key order would cost each new alert inserts at random places, for an
    /// order the rows do not use.
    rule_states: Vec<(u32, Fingerprint)>,
    /// Rows of rule states gone.
    deleted_rule_states: Vec<i64>,
    /// Rows of the `leases` table read at the restart.
    deleted_leases: Vec<i64>,
    heartbeats: BTreeSet<u32>,
    pages: Vec<Page>,
    /// Resolved incidents to drop from memory once written.
    closed: BTreeSet<i64>,
    /// Run-time silences made or expired, and overrides made (`Some`) or deleted.
    silences: Vec<crate::paging::Silence>,
    overrides: Vec<(String, Option<crate::paging::ScheduleOverride>)>,
    /// Support cases changed (a case once or more), their timeline, and those resolved.
    cases: Vec<i64>,
    case_timeline: Vec<crate::incident::case::CaseEntry>,
    closed_cases: Vec<i64>,
    /// Incident timeline rows written as they are (case links).
    incident_rows: Vec<TimelineEntry>,
    /// The services' availability is to be stored (once a minute).
    availability: bool,
}

pub struct Core {
    setup: Arc<Setup>,
    /// The config's paging with the silences and overrides made at run time: what the
    /// paging decisions see (see `live.rs`).
    live_paging: Arc<crate::paging::Paging>,
    /// Run-time silences not yet ended, and on-call overrides.
    silences: Vec<crate::paging::Silence>,
    overrides: Vec<crate::paging::ScheduleOverride>,
    /// Shifts that began up to here have had their notice (a new engine starts from its
    /// start: shifts under way then are not announced again).
    shifts_noted_until: DateTime<Utc>,
    metrics: Arc<Metrics>,
    rule_states: HashMap<(u32, Fingerprint), RuleState>,
    leases: HashMap<Fingerprint, Lease>,
    /// When the leases end (each lease says when it ends now; see `lease_expiries`).
    lease_expiries: LeaseExpiries,
    heartbeats: Vec<HeartbeatState>,
    /// Deadline of each heartbeat; missed ones wait for a ping.
    // Boxed: a hash table keeps up to twice its entries' room, and more while it grows;
    // for these ~400-byte values that room costs more than the values themselves.
    incidents: HashMap<i64, Box<Incident>>,
    impacts: HashMap<i64, Box<Impact>>,
    paging: HashMap<i64, Box<PagingState>>,
    /// Open support cases.
    cases: HashMap<i64, Box<Case>>,
    next_case_id: i64,
    timers: Timers,
    next_incident_id: i64,
    next_impact_id: i64,
    next_page_id: i64,
    next_rule_state_row: i64,
    /// The first impact id and rule-state row the next batch holds that the store has not.
    first_new: FirstNew,
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
    /// Reclassifying per attached impact would make a push of many new alerts into one
    /// incident quadratic in its size.
    deferred_reclassify: Option<BTreeMap<i64, String>>,
    /// Changes those paged about an incident hear of once the input is handled (one per
    /// incident: a merge before a new impact), so a storm of impacts is one update.
    updates: BTreeMap<i64, PageEvent>,
    /// While a person's severity change is applied: who made it (never paged about it).
    raised_by: Option<String>,
    /// Who was paged about which incident at this instant (the time): an update at the
    /// same instant would only repeat what their page says.
    just_paged: (DateTime<Utc>, HashMap<i64, Vec<crate::paging::Recipient>>),
    /// Incidents that resolved on their own less than `incidents.reopen_within` ago: a new
    /// impact that correlates with one reopens it.
    reopenable: HashMap<i64, Reopenable>,
    /// `reopenable` by the (label, value) pairs of their impacts' `correlation.by` labels.
    reopen_index: HashMap<u64, Vec<i64>>,
    /// Each service's availability per region (see `sla.rs`).
    availability: crate::incident::sla::Availability,
    /// Impacts with `sla_breach: auto` that have not breached yet.
    sla_watch: BTreeSet<i64>,
}

/// A recently resolved incident that may reopen, with its paging (kept in the store too).
pub(super) struct Reopenable {
    incident: Box<Incident>,
    paging: Option<Box<PagingState>>,
    /// The `correlation.by` (label, value) pairs of its impacts.
    labels: Vec<(String, String)>,
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
            live_paging: Arc::new(setup.paging.clone()),
            silences: Vec::new(),
            overrides: Vec::new(),
            shifts_noted_until: now,
            setup,
            metrics,
            rule_states: HashMap::new(),
            leases: HashMap::new(),
            lease_expiries: LeaseExpiries::default(),
            heartbeats,
            incidents: HashMap::new(),
            impacts: HashMap::new(),
            paging: HashMap::new(),
            cases: HashMap::new(),
            next_case_id: 1,
            timers: Timers::default(),
            next_incident_id: 1,
            next_impact_id: 1,
            next_page_id: 1,
            next_rule_state_row: 1,
            first_new: FirstNew {
                impact: 1,
                rule_state_row: 1,
            },
            started_at: now,
            dirty: Dirty::default(),
            correlation_index: HashMap::new(),
            gauges_dirty: true,
            open_counts: OpenCounts::default(),
            deferred_reclassify: None,
            updates: BTreeMap::new(),
            raised_by: None,
            just_paged: (now, HashMap::new()),
            reopenable: HashMap::new(),
            reopen_index: HashMap::new(),
            availability: Default::default(),
            sla_watch: BTreeSet::new(),
        };
        core.rebuild_timers(now);
        core
    }

    /// Pick up where a previous engine stopped.
    pub fn restore(&mut self, snapshot: Snapshot, now: DateTime<Utc>) {
        self.silences = snapshot.silences.clone();
        self.overrides = snapshot.overrides.clone();
        self.rebuild_live(now);
        self.next_incident_id = snapshot.next_incident_id.max(1);
        self.next_impact_id = snapshot.next_impact_id.max(1);
        self.next_page_id = snapshot.next_page_id.max(1);
        self.next_rule_state_row = snapshot.next_rule_state_row.max(1);
        self.first_new = self.next_first_new();
        self.next_case_id = snapshot.next_case_id.max(1);
        for case in snapshot.cases.into_iter().filter(Case::is_open) {
            self.cases.insert(case.id, Box::new(case));
        }
        for incident in snapshot.incidents.into_iter().filter(Incident::is_open) {
            self.incidents.insert(incident.id, Box::new(incident));
        }
        let mut resolved_firing = Vec::new();
        for impact in snapshot.impacts {
            if let Some(incident) = self.incidents.get_mut(&impact.incident_id) {
                // Not stored: the Sev table's view of the impacts is worked out again
                // (without dependent impacts, which leave it as it is).
                if impact.inhibited_by.is_none() {
                    incident.blast = incident.blast.join(impact.blast());
                }
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
        // configured stay in the store, unused.
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
        self.restore_reopenable(snapshot.reopenable, now);
        // Paging rows kept for a reopen that can no longer happen go with the first batch.
        for id in snapshot.stale_paging {
            if !self.reopenable.contains_key(&id) && !self.incidents.contains_key(&id) {
                self.dirty.paging.insert(id);
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
        self.restore_availability(snapshot.availability.as_deref(), now);
        self.rebuild_timers(now);
    }

    /// Swap in a new config. Running escalations keep the policy they started with.
    pub fn reload(&mut self, setup: Arc<Setup>, now: DateTime<Utc>) {
        let old = std::mem::replace(&mut self.setup, setup);
        self.rebuild_live(now);
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
                            ClearCause::RuleRemoved {
                                rule: name.to_string(),
                            },
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
        self.forget_unmarked_indicators();
        self.rewatch_sla();
        self.gauges_dirty = true;
        self.rebuild_timers(now);
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
            self.schedule_update(id);
            self.schedule_steps(id);
            self.schedule_tsg_action(id);
        }
        self.arm_shift_timer(now);
        self.arm_availability(now);
        let cases: Vec<i64> = self.cases.keys().copied().collect();
        for id in cases {
            self.schedule_case(id);
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
                // At one instant rule timers go first, then leases, then the rest: a fixed
                // order, so what an instant does never depends on which was set first. A
                // `for:` that runs out as its alert's lease ends opens the impact, which the
                // lease's end then clears.
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
        self.send_updates(now);
    }

    fn fire(&mut self, key: TimerKey, now: DateTime<Utc>) {
        match key {
            TimerKey::Rule(index, fingerprint) => {
                self.step_rule(index, fingerprint, now);
            }
            TimerKey::Heartbeat(index) => self.heartbeat_missed(index as usize, now),
            TimerKey::AutoResolve(id) => {
                let impacts = &self.impacts;
                let all_clear = self.incidents.get(&id).is_some_and(|i| {
                    lifecycle::all_clear(i, |x| {
                        impacts
                            .get(&x)
                            .map(|m| &**m)
                            .filter(|m| m.inhibited_by.is_none())
                    })
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
            TimerKey::Update(id) => self.held_update_due(id, now),
            TimerKey::ReopenEnds(id) => self.reopen_ends(id),
            TimerKey::ShiftStart => self.shifts_due(now),
            TimerKey::Case(id) => self.case_due(id, now),
            TimerKey::Step(id) => self.steps_due(id, now),
            TimerKey::Availability => self.availability_minute(now),
            TimerKey::TsgAction(id) => self.tsg_timed_out(id, now),
        }
    }

    /// Handle one input at `now`.
    pub fn handle(&mut self, input: Input, now: DateTime<Utc>) -> Reply {
        let reply = self.apply(input, now);
        self.send_updates(now);
        reply
    }

    fn apply(&mut self, input: Input, now: DateTime<Utc>) -> Reply {
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
                self.recheck_linked(now);
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
                None => incidents::refused(Refusal::NotOpen(incident_id)),
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
                    return incidents::refused(Refusal::NotOpen(incident_id));
                }
                self.timeline(incident_id, now, Entry::Note { by, text });
                Reply::Done
            }
            Input::PutSilence(silence) => self.put_silence(silence, now),
            Input::ExpireSilence { id } => self.expire_silence(&id, now),
            Input::PutOverride(o) => self.put_override(o, now),
            Input::DeleteOverride { id } => self.delete_override(&id, now),
            Input::Declare(declaration) => self.declare(declaration, now),
            Input::Escalate { incident_id, by } => self.escalate_now(incident_id, &by, now),
            Input::AddResponder {
                incident_id,
                responder,
                by,
            } => self.add_responder(incident_id, &responder, &by, now),
            Input::Assign {
                incident_id,
                responder,
                by,
            } => self.assign(incident_id, &responder, &by, now),
            // A page about a support case (incident 0): its outbox row keeps its fate.
            Input::DeliveryFailed { incident_id: 0, .. } => Reply::Done,
            Input::DeliveryFailed {
                incident_id,
                level,
                recipient,
                reason,
                event,
            } => {
                // Recorded even when the incident was resolved meanwhile: the timeline keeps
                // every page's fate.
                self.timeline(
                    incident_id,
                    now,
                    Entry::DeliveryFailed {
                        recipient,
                        level,
                        reason,
                    },
                );
                if event == Some(PageEvent::TsgAction) {
                    self.tsg_call_lost(incident_id, now);
                } else {
                    self.delivery_failed(incident_id, level, now);
                }
                Reply::Done
            }
            Input::Case(input) => self.handle_case(input, now),
            Input::TakeFromQueue { queue, by } => self.take_from_queue(&queue, &by, now),
            Input::TsgReport {
                incident_id,
                outcome,
                note,
                by,
            } => self.tsg_report(incident_id, outcome, note, &by, now),
        }
    }

    fn timeline(&mut self, incident_id: i64, at: DateTime<Utc>, entry: Entry) {
        self.dirty.timeline.push((incident_id, at, entry));
    }
}
