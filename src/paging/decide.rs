//! Who is paged when: pure decisions on an incident's [`PagingState`], its labels,
//! severity and the time, each returned as a typed value with its reason.
//!
//! The gates an incident's paging passes, in order: its route (no route, a triage queue,
//! or an escalation policy); an acknowledgement, which holds paging until it lapses; a
//! silence in force; the route's time windows, which pause escalation; then the levels
//! due (first page, escalation, repeats). The engine applies each decision: it writes the
//! timeline, creates the pages and sets the timers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::escalate::{Escalation, LevelPage};
use super::page::{PageEvent, Recipient};
use super::state::PagingState;
use super::{route, Paging};
use crate::signal::LabelSet;

/// Where a route sends an incident.
#[derive(Clone, Debug, PartialEq)]
pub enum Routing {
    /// No route matches: recorded, not paged.
    Unrouted,
    /// A route with a triage queue: no page. `changed` when it was not in that queue.
    Queued {
        route: usize,
        queue: String,
        changed: bool,
    },
    /// The route names a policy that is not configured.
    UnknownPolicy { route: usize, policy: String },
    /// Escalate by the route's policy, from its first level.
    Escalate {
        route: usize,
        policy: String,
        escalation: Escalation,
    },
}

/// Route an incident at `severity` with `labels`, now in triage queue `queue`; `event`
/// is what its first page tells.
pub fn route(
    paging: &Paging,
    labels: &LabelSet,
    severity: u8,
    queue: Option<&str>,
    event: PageEvent,
    now: DateTime<Utc>,
) -> Routing {
    let Some((index, r)) = route::select(&paging.routes, labels, severity) else {
        return Routing::Unrouted;
    };
    if let Some(to) = &r.queue {
        return Routing::Queued {
            route: index,
            queue: to.clone(),
            changed: queue != Some(to.as_str()),
        };
    }
    let policy = r.policy.clone().unwrap_or_default();
    match paging.policies.get(&policy) {
        None => Routing::UnknownPolicy {
            route: index,
            policy,
        },
        Some(snapshot) => Routing::Escalate {
            route: index,
            escalation: Escalation::start(snapshot.clone(), r.active_during.clone(), event, now),
            policy,
        },
    }
}

/// A person lowered the severity: whether paging starts over (the route for the new
/// severity queues it or has no policy) rather than going on as it is.
pub fn reroute_after_lowering(paging: &Paging, labels: &LabelSet, severity: u8) -> bool {
    route::select(&paging.routes, labels, severity).is_none_or(|(_, r)| r.policy.is_none())
}

/// What the escalation of an incident does at `now`.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The acknowledgement ran out: the incident is triggered again, these levels are paged.
    AckLapsed { pages: Vec<LevelPage> },
    /// Acknowledged: nothing is paged until the acknowledgement lapses.
    HeldByAck,
    /// A silence in force holds the pages back until `until` (`None`: while it is
    /// configured). `first` when this silence was not noted yet.
    Silenced {
        silence: usize,
        comment: Option<String>,
        until: Option<DateTime<Utc>>,
        first: bool,
    },
    /// A silence made at run time holds the pages back until it ends. `first` when this
    /// silence was not noted yet.
    Held {
        silence: String,
        created_by: String,
        comment: String,
        until: DateTime<Utc>,
        first: bool,
    },
    /// Page the levels due (maybe none). `paused` when escalation newly waits for one of
    /// the route's windows to open.
    Advance {
        pages: Vec<LevelPage>,
        paused: Option<Pause>,
    },
}

/// Escalation waits outside the route's time windows.
#[derive(Clone, Debug, PartialEq)]
pub struct Pause {
    /// The windows' names, comma-separated.
    pub windows: String,
    /// When the next one opens.
    pub until: Option<DateTime<Utc>>,
}

/// Step the incident's escalation at `now`; `None` when it has none. `acknowledged` is the
/// incident's status; `targets` its impacts as run-time silences see them
/// ([`super::silence::targets`]; may be left empty when there are none).
pub fn step(
    state: &mut PagingState,
    paging: &Paging,
    labels: &LabelSet,
    severity: u8,
    acknowledged: bool,
    targets: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Option<Step> {
    let escalation = state.escalation.as_mut()?;
    if escalation.acked && escalation.ack_lapses_at.is_some_and(|at| at <= now) {
        let windows = paging.window_set(&escalation.active_during);
        let pages = escalation.lapse(now, &windows);
        return Some(Step::AckLapsed { pages });
    }
    if acknowledged || escalation.acked {
        return Some(Step::HeldByAck);
    }
    if let Some((silence, s, until)) = silence_in_force(paging, labels, severity, now) {
        let first = state.silenced_by != Some(silence);
        state.silenced_by = Some(silence);
        return Some(Step::Silenced {
            silence,
            comment: s.comment.clone(),
            until,
            first,
        });
    }
    state.silenced_by = None;
    if let Some(s) = super::silence::holding(&paging.live_silences, targets, now) {
        let first = state.held_by.as_deref() != Some(s.id.as_str());
        state.held_by = Some(s.id.clone());
        return Some(Step::Held {
            silence: s.id.clone(),
            created_by: s.created_by.clone(),
            comment: s.comment.clone(),
            until: s.ends_at,
            first,
        });
    }
    state.held_by = None;
    let windows = paging.window_set(&escalation.active_during);
    let was_paused = escalation.is_paused();
    let pages = escalation.advance(now, &windows);
    let now_paused = escalation.is_paused();
    let mut paused = None;
    if now_paused && !was_paused && !state.pause_noted {
        state.pause_noted = true;
        paused = Some(Pause {
            windows: escalation.active_during.join(", "),
            until: escalation.wake_at(now, &windows),
        });
    } else if !now_paused {
        state.pause_noted = false;
    }
    Some(Step::Advance { pages, paused })
}

/// The first silence in force at `now` for the incident, with its index and end.
/// Whether a silence (configured or made at run time) holds the incident's pages at `now`:
/// `Some(until)` when it does, `until` its end (`None`: not known, e.g. a window without
/// an end).
pub fn held_until(
    paging: &Paging,
    labels: &LabelSet,
    severity: u8,
    targets: &[BTreeMap<String, String>],
    now: DateTime<Utc>,
) -> Option<Option<DateTime<Utc>>> {
    if let Some((_, _, until)) = silence_in_force(paging, labels, severity, now) {
        return Some(until);
    }
    super::silence::holding(&paging.live_silences, targets, now).map(|s| Some(s.ends_at))
}

fn silence_in_force<'a>(
    paging: &'a Paging,
    labels: &LabelSet,
    severity: u8,
    now: DateTime<Utc>,
) -> Option<(
    usize,
    &'a crate::config::SilenceConfig,
    Option<DateTime<Utc>>,
)> {
    route::silenced(&paging.silences, labels, severity, now, |w, t| {
        paging.windows.get(w).and_then(|w| w.open_until(t))
    })
}

/// When the incident's escalation needs a look next: its next level, repeat or window,
/// or, while a silence holds it, the silence's end. `incident` (labels, severity) is
/// `None` when the incident is gone.
pub fn wake_at(
    state: &PagingState,
    paging: &Paging,
    incident: Option<(&LabelSet, u8)>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let escalation =
        state
            .escalation
            .as_ref()
            .and_then(|e| match (state.silenced_by, &state.held_by) {
                (None, None) => e.wake_at(now, &paging.window_set(&e.active_during)),
                _ => None,
            });
    if let Some(id) = &state.held_by {
        // Its end; one expired and gone meanwhile: now.
        return Some(
            paging
                .live_silences
                .iter()
                .find(|s| &s.id == id)
                .map_or(now, |s| s.ends_at.max(now)),
        );
    }
    let silence_ends = state.silenced_by.and_then(|_| {
        let (labels, severity) = incident?;
        silence_in_force(paging, labels, severity, now).and_then(|(_, _, until)| until)
    });
    escalation.or(silence_ends)
}

/// Whether an open incident's escalation pages schedule `name` at some level: its next
/// holder inherits it.
pub fn pages_schedule(state: &PagingState, name: &str) -> bool {
    let target = format!("schedule:{name}");
    state
        .escalation
        .as_ref()
        .is_some_and(|e| e.policy.levels.iter().any(|l| l.notify.contains(&target)))
}

/// Who one level of the escalation reaches at `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelPages {
    pub policy: String,
    /// Each recipient of each target, in the level's order.
    pub recipients: Vec<Recipient>,
    /// Targets that reach nobody, and why.
    pub skipped: Vec<(String, String)>,
}

/// Whom level `level` of the escalation pages at `now`; `None` when it has no such level.
pub fn level(
    paging: &Paging,
    escalation: &Escalation,
    level: usize,
    now: DateTime<Utc>,
) -> Option<LevelPages> {
    let targets = &escalation.policy.levels.get(level)?.notify;
    let mut out = LevelPages {
        policy: escalation.policy.name.clone(),
        recipients: Vec::new(),
        skipped: Vec::new(),
    };
    for target in targets {
        match paging.recipients(target, now) {
            Ok(recipients) => out.recipients.extend(recipients),
            Err(why) => out.skipped.push((target.clone(), why)),
        }
    }
    Some(out)
}

/// The response deadline of a triggered incident passed: the levels to page (the current
/// one and the next), or `None` when the breach was handled already.
pub fn response_breached(state: &mut PagingState) -> Option<Vec<usize>> {
    if state.response_breached {
        return None;
    }
    state.response_breached = true;
    Some(
        state
            .escalation
            .as_ref()
            .map(Escalation::current_and_next)
            .unwrap_or_default(),
    )
}

/// A page of level `level` was given up: when it was the last level paged, escalation
/// hurries to the next one now (true: step it).
pub fn delivery_given_up(
    state: &mut PagingState,
    level: Option<usize>,
    now: DateTime<Utc>,
) -> bool {
    let Some(escalation) = state.escalation.as_mut() else {
        return false;
    };
    if level.is_none() || level != escalation.last_paged_level {
        return false;
    }
    escalation.hurry(now);
    true
}

/// Why a person cannot escalate an incident now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EscalateRefusal {
    /// Its route queues it or pages nobody: there is no escalation to move on.
    NoEscalation,
    /// Every level of its policy was paged.
    NoLevelLeft { policy: String, levels: usize },
}

impl std::fmt::Display for EscalateRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EscalateRefusal::NoEscalation => {
                f.write_str("it has no escalation policy (its route queues it or pages nobody)")
            }
            EscalateRefusal::NoLevelLeft { policy, levels: 1 } => write!(
                f,
                "no level is left: policy {policy} has one level, and it was paged"
            ),
            EscalateRefusal::NoLevelLeft { policy, levels } => write!(
                f,
                "no level is left: all {levels} levels of policy {policy} were paged"
            ),
        }
    }
}

/// A person escalates now: the level to page at once (event `escalated`), or why not.
pub fn escalate_now(
    state: &mut PagingState,
    now: DateTime<Utc>,
) -> Result<LevelPage, EscalateRefusal> {
    let escalation = state
        .escalation
        .as_mut()
        .ok_or(EscalateRefusal::NoEscalation)?;
    match escalation.escalate_now(now) {
        Some(level) => Ok(LevelPage {
            level,
            event: PageEvent::Escalated,
        }),
        None => Err(EscalateRefusal::NoLevelLeft {
            policy: escalation.policy.name.clone(),
            levels: escalation.policy.levels.len(),
        }),
    }
}

/// Whom a responder a person adds (or assigns) is paged on at `now`: each of their
/// channels. Once paged they are among those who hear of the incident's updates.
pub fn responder_pages(
    paging: &Paging,
    responder: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Recipient>, String> {
    paging.recipients(&format!("responder:{responder}"), now)
}

/// Everyone paged so far hears of an ack or a resolve.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub recipients: Vec<Recipient>,
    pub policy: Option<String>,
    pub level: Option<usize>,
}

/// Who hears of an ack or a resolve; `None` when nobody was paged.
pub fn notice(state: &PagingState) -> Option<Notice> {
    if state.paged.is_empty() {
        return None;
    }
    Some(Notice {
        recipients: state.paged.clone(),
        policy: state.escalation.as_ref().map(|e| e.policy.name.clone()),
        level: state.escalation.as_ref().and_then(|e| e.last_paged_level),
    })
}

impl Notice {
    /// Leave out the recipients `skip` names (those paged about it a moment ago).
    pub fn without(mut self, skip: impl Fn(&Recipient) -> bool) -> Option<Notice> {
        self.recipients.retain(|r| !skip(r));
        (!self.recipients.is_empty()).then_some(self)
    }
}

/// What to do about a change everyone paged should hear of.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    /// Nobody was paged yet (or nothing is held): the first page tells it all.
    Nobody,
    /// Tell them now.
    Send { event: PageEvent, notice: Notice },
    /// They were told less than `update_interval` ago: held until `until`.
    Held { until: DateTime<Utc> },
}

/// Of two updates held for one incident, the one to send: a reopen says more than a new
/// impact.
fn graver(held: Option<PageEvent>, event: PageEvent) -> PageEvent {
    match held {
        Some(PageEvent::Reopened) => PageEvent::Reopened,
        _ => event,
    }
}

/// A change to a paged incident: `impact_added` and `reopened` go out at most once per
/// `interval` (later ones wait, folded into one); `merged` goes out at once.
pub fn update(
    state: &mut PagingState,
    event: PageEvent,
    interval: chrono::Duration,
    now: DateTime<Utc>,
) -> Update {
    let Some(notice) = notice(state) else {
        return Update::Nobody;
    };
    if event != PageEvent::Merged {
        if let Some(until) = state.updated_at.map(|at| at + interval) {
            if now < until {
                state.pending_update = Some(graver(state.pending_update, event));
                return Update::Held { until };
            }
        }
    }
    state.updated_at = Some(now);
    state.pending_update = None;
    Update::Send { event, notice }
}

/// The held update at `now`: sent once `interval` has passed since the last.
pub fn held_update(
    state: &mut PagingState,
    interval: chrono::Duration,
    now: DateTime<Utc>,
) -> Update {
    let Some(event) = state.pending_update else {
        return Update::Nobody;
    };
    if let Some(until) = state.updated_at.map(|at| at + interval) {
        if now < until {
            return Update::Held { until };
        }
    }
    state.pending_update = None;
    update(state, event, interval, now)
}

/// When the held update falls due.
pub fn update_due(state: &PagingState, interval: chrono::Duration) -> Option<DateTime<Utc>> {
    state.pending_update?;
    Some(state.updated_at? + interval)
}

/// Who hears of a rise in severity while the incident stays acknowledged: the person who
/// acknowledged it (`acknowledger`, their channels), and the new policy's first level
/// (`level0`) where it reaches someone not paged yet. Never `raised_by`, the person who
/// raised it: nobody is paged about their own change.
pub fn raised_while_acknowledged(
    level0: Vec<Recipient>,
    paged: &[Recipient],
    acknowledger: Vec<Recipient>,
    raised_by: Option<&str>,
) -> Vec<Recipient> {
    let mut out: Vec<Recipient> = acknowledger;
    out.extend(
        level0
            .into_iter()
            .filter(|r| paged.binary_search(r).is_err()),
    );
    out.retain(|r| Some(r.id.as_str()) != raised_by);
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
