//! When a case next needs attention, and what is due then. Pure: the engine sets one timer
//! per open case at [`next_wake`] and calls [`fire`] when it runs out.

use chrono::{DateTime, Utc};

use super::Case;
use crate::config::SrEngagementConfig;

/// What a case's timer found due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// The initial-response deadline passed unmet: page the case's policy.
    ResponseBreached,
    /// One cadence interval went by without an update: page the owner.
    EngagementDue,
    /// A second interval went by: escalate by the case's policy.
    EngagementMissed,
}

impl Fired {
    pub fn as_str(self) -> &'static str {
        match self {
            Fired::ResponseBreached => "response_breached",
            Fired::EngagementDue => "engagement_due",
            Fired::EngagementMissed => "engagement_missed",
        }
    }
}

/// The deadline, while it can still breach here: unmet, not breached yet, and the case's own
/// (not its incident's).
fn deadline(case: &Case) -> Option<DateTime<Utc>> {
    (case.is_open()
        && case.deadline_met_at.is_none()
        && !case.response_breached
        && !case.deadline_on_incident)
        .then_some(case.respond_by)
}

/// When the next update is due, while the case needs continuous work: SR A until resolved,
/// SR B until resolved or the customer exits, SR C never; counted from the last response or
/// update, one interval per missed update, two at most.
fn engagement(case: &Case, cadence: &SrEngagementConfig) -> Option<DateTime<Utc>> {
    if !case.is_open() || case.missed_intervals >= 2 {
        return None;
    }
    if case.sr_severity == "B" && case.customer_exit_at.is_some() {
        return None;
    }
    let every = cadence.cadence(&case.sr_severity)?;
    if every.is_zero() {
        return None;
    }
    let last = case.last_update_at?;
    Some(last + every.chrono() * (i32::from(case.missed_intervals) + 1))
}

/// When the case's timer should next run; `None` when nothing more is due.
pub fn next_wake(case: &Case, cadence: &SrEngagementConfig) -> Option<DateTime<Utc>> {
    [deadline(case), engagement(case, cadence), escalation(case)]
        .into_iter()
        .flatten()
        .min()
}

/// When the next level of the case's page escalation is due, while the case is open.
fn escalation(case: &Case) -> Option<DateTime<Utc>> {
    case.escalation
        .as_ref()
        .filter(|_| case.is_open())
        .map(|e| e.next_at)
}

/// The level of the case's escalation due at `now`, if one is.
pub fn escalation_due(case: &Case, now: DateTime<Utc>) -> Option<usize> {
    let due = escalation(case).is_some_and(|at| at <= now);
    case.escalation
        .as_ref()
        .filter(|_| due)
        .map(|e| e.level + 1)
}

/// Someone took up the case's page (an ack, a response or an update): escalation stops.
/// True when one was running.
pub fn stop_escalation(case: &mut Case) -> bool {
    case.escalation.take().is_some()
}

/// What is due at `now`, recorded on the case (each thing is due once).
pub fn fire(case: &mut Case, cadence: &SrEngagementConfig, now: DateTime<Utc>) -> Option<Fired> {
    if deadline(case).is_some_and(|at| at <= now) {
        case.response_breached = true;
        return Some(Fired::ResponseBreached);
    }
    if engagement(case, cadence).is_some_and(|at| at <= now) {
        case.missed_intervals += 1;
        return Some(if case.missed_intervals == 1 {
            Fired::EngagementDue
        } else {
            Fired::EngagementMissed
        });
    }
    None
}

/// The first response, or a later update: the cadence starts again from `now`. True when
/// this met the deadline.
pub fn updated(case: &mut Case, by: &str, now: DateTime<Utc>) -> bool {
    let first = case.responded_at.is_none();
    if first {
        case.responded_at = Some(now);
        case.responded_by = Some(by.to_string());
    }
    case.last_update_at = Some(now);
    case.missed_intervals = 0;
    stop_escalation(case);
    meet_deadline(case, now)
}

/// The deadline is met at `now` (a first response, or an ack of the case's incident); true
/// when it was not met before.
pub fn meet_deadline(case: &mut Case, now: DateTime<Utc>) -> bool {
    if case.deadline_met_at.is_some() {
        return false;
    }
    case.deadline_met_at = Some(now);
    true
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
