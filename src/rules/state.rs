//! The state of one rule for one signal key, and how it moves.
//!
//! ```text
//!   quiet ──condition holds──▶ pending ──for:/failures: met──▶ impact open
//!     ▲                          │                               │
//!     └──────condition stops─────┘     condition stops ──▶ clearing ──clear_for:/successes: met──▶ quiet
//! ```
//! A person who resolves the incident closes the impact while the condition may still hold.
//! The trouble then goes on: the impact stays uncleared (`resolved_firing`) until the
//! condition clears as the rule says, and the next observation that the condition still
//! holds opens a new impact at once, its `for:`/`failures:` having been met already (as
//! PagerDuty opens a new incident for an event after a resolve). Until that observation the
//! state is `suppressed`, so a timer alone never reopens what the person just closed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Clear, Rule, Trigger};
use crate::signal::Signal;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RuleState {
    /// The condition as last observed.
    pub condition: bool,
    /// When the condition took its current value.
    #[serde(serialize_with = "crate::signal::rfc3339::serialize")]
    pub since: DateTime<Utc>,
    /// Consecutive observations with the condition holding / not holding.
    pub failures: u32,
    pub successes: u32,
    /// The open impact this state produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<i64>,
    /// The impact was closed by a person while the condition held, and no observation came
    /// since. Always stored: an earlier version requires it when it reads the row (a
    /// rollback, or a standby of that version taking over the store); the fields left out
    /// when empty are read as absent by every version (an earlier one ignores those it
    /// does not know).
    #[serde(default)]
    pub suppressed: bool,
    /// Impacts a person resolved while the condition held: cleared when the condition
    /// clears, not before (see [`RuleState::held`]). Boxed: few states ever hold one; a
    /// `Vec` in place would take 24 bytes of every state (one per alert and rule), the box 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_firing: Option<Box<Vec<i64>>>,
    /// The latest signal, kept to describe the impact when a timer opens it.
    pub signal: Arc<Signal>,
    /// `condition` came from the rules now in force (not so after a reload or a restart):
    /// only then may a signal observed again unchanged reuse it instead of running `when`.
    #[serde(skip)]
    pub evaluated: bool,
    /// Its row in the store (`rule_states.id`), given by the engine when the state began.
    #[serde(skip)]
    pub row: i64,
}

/// Equal in what is stored in the row's data; `evaluated` is the engine's own cache.
impl PartialEq for RuleState {
    fn eq(&self, other: &Self) -> bool {
        self.condition == other.condition
            && self.since == other.since
            && self.failures == other.failures
            && self.successes == other.successes
            && self.impact == other.impact
            && self.suppressed == other.suppressed
            && self.resolved_firing == other.resolved_firing
            && self.signal == other.signal
    }
}

/// What the state asks the incident stage to do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    Nothing,
    OpenImpact,
    ClearImpact,
    /// Look again at this time (a `for:` or `clear_for:` timer).
    WakeAt(DateTime<Utc>),
}

impl RuleState {
    pub fn new(signal: Arc<Signal>, now: DateTime<Utc>) -> Self {
        RuleState {
            condition: false,
            since: now,
            failures: 0,
            successes: 0,
            impact: None,
            suppressed: false,
            resolved_firing: None,
            signal,
            evaluated: false,
            row: 0,
        }
    }

    /// The condition already known for `signal`: it is the signal last observed, unchanged
    /// in everything `when` can read, and the rules have not changed since.
    pub fn known_condition(&self, signal: &Signal) -> Option<bool> {
        (self.evaluated && self.signal.same_observation(signal)).then_some(self.condition)
    }

    /// Record one observation of the condition. It ends `suppressed`: firing, it is the
    /// observation after a person's resolve that opens anew; clear, the trouble stopped.
    pub fn observe(&mut self, condition: bool, signal: Arc<Signal>, now: DateTime<Utc>) {
        if condition != self.condition {
            self.condition = condition;
            self.since = now;
        }
        if condition {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        } else {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        }
        self.suppressed = false;
        self.signal = signal;
        self.evaluated = true;
    }

    /// A person resolved the incident of this state's open impact `impact`: it closes. True
    /// when the condition still holds: the impact then waits in `resolved_firing` for the
    /// condition to clear, and the next firing observation opens a new one. A signal that
    /// reports once (`one_shot`, a CRI) ends with the resolve.
    pub fn resolved_by_person(&mut self, impact: i64, one_shot: bool) -> bool {
        if self.impact != Some(impact) {
            return false;
        }
        self.impact = None;
        self.suppressed = self.condition;
        let firing = self.condition && !one_shot;
        if firing {
            self.resolved_firing.get_or_insert_default().push(impact);
        }
        firing
    }

    /// The impacts a person resolved while the condition held, not cleared yet.
    pub fn held(&self) -> &[i64] {
        self.resolved_firing.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The impacts a [`Decision::ClearImpact`] clears: the open one and those a person
    /// resolved while the condition held.
    pub fn take_cleared(&mut self) -> Vec<i64> {
        let mut cleared = self
            .resolved_firing
            .take()
            .map_or_else(Vec::new, |held| *held);
        cleared.extend(self.impact.take());
        cleared
    }

    /// What should happen now, given the rule's `for:`/`failures:` and `clear_for:`/`successes:`.
    pub fn decide(&self, rule: &Rule, now: DateTime<Utc>) -> Decision {
        let uncleared = self.impact.is_some() || !self.held().is_empty();
        match (self.impact.is_some(), self.condition) {
            // Observed firing again after a person resolved it: the trouble never stopped.
            (false, true) if !self.suppressed && !self.held().is_empty() => Decision::OpenImpact,
            (false, true) if !self.suppressed => match rule.trigger {
                Trigger::Immediate => Decision::OpenImpact,
                Trigger::Failures(n) if self.failures >= n => Decision::OpenImpact,
                Trigger::Failures(_) => Decision::Nothing,
                Trigger::For(d) => {
                    let due = self.since + d.chrono();
                    if now >= due {
                        Decision::OpenImpact
                    } else {
                        Decision::WakeAt(due)
                    }
                }
            },
            (_, false) if uncleared => match rule.clear {
                Clear::Immediate => Decision::ClearImpact,
                Clear::Successes(n) if self.successes >= n => Decision::ClearImpact,
                Clear::Successes(_) => Decision::Nothing,
                Clear::For(d) => {
                    let due = self.since + d.chrono();
                    if now >= due {
                        Decision::ClearImpact
                    } else {
                        Decision::WakeAt(due)
                    }
                }
            },
            _ => Decision::Nothing,
        }
    }

    /// Nothing worth keeping: no impact, no pending condition, no counts.
    pub fn is_idle(&self) -> bool {
        self.impact.is_none() && !self.condition && !self.suppressed && self.held().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Duration, ImpactConfig, ImpactKind};
    use crate::signal::SourceKind;

    fn rule(trigger: Trigger, clear: Clear) -> Rule {
        Rule {
            name: "r".into(),
            group: "g".into(),
            matchers: vec![],
            when: None,
            trigger,
            clear,
            impact: ImpactConfig {
                kind: ImpactKind::Outage,
                sla_breach: crate::config::SlaBreach::Yes,
                business_impact: None,
                severity: None,
            },
            labels: Default::default(),
            summary: None,
            separate: false,
            availability: false,
            tsg: None,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    fn signal() -> Arc<Signal> {
        Arc::new(Signal::new(
            SourceKind::Probe,
            std::collections::BTreeMap::new(),
            t(0),
        ))
    }

    #[test]
    fn for_waits_then_opens() {
        let r = rule(Trigger::For(Duration::from_secs(60)), Clear::Immediate);
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        assert_eq!(s.decide(&r, t(0)), Decision::WakeAt(t(60)));
        s.observe(true, signal(), t(30));
        assert_eq!(s.decide(&r, t(30)), Decision::WakeAt(t(60)));
        assert_eq!(s.decide(&r, t(60)), Decision::OpenImpact);
    }

    #[test]
    fn flapping_restarts_for() {
        let r = rule(Trigger::For(Duration::from_secs(60)), Clear::Immediate);
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.observe(false, signal(), t(30));
        assert_eq!(s.decide(&r, t(60)), Decision::Nothing);
        s.observe(true, signal(), t(40));
        assert_eq!(s.decide(&r, t(60)), Decision::WakeAt(t(100)));
    }

    #[test]
    fn failures_and_successes_count_consecutive() {
        let r = rule(Trigger::Failures(3), Clear::Successes(2));
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.observe(true, signal(), t(1));
        assert_eq!(s.decide(&r, t(1)), Decision::Nothing);
        s.observe(true, signal(), t(2));
        assert_eq!(s.decide(&r, t(2)), Decision::OpenImpact);
        s.impact = Some(1);
        s.observe(false, signal(), t(3));
        assert_eq!(s.decide(&r, t(3)), Decision::Nothing);
        s.observe(true, signal(), t(4));
        s.observe(false, signal(), t(5));
        assert_eq!(s.decide(&r, t(5)), Decision::Nothing);
        s.observe(false, signal(), t(6));
        assert_eq!(s.decide(&r, t(6)), Decision::ClearImpact);
    }

    #[test]
    fn clear_for_waits() {
        let r = rule(Trigger::Immediate, Clear::For(Duration::from_secs(120)));
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.impact = Some(7);
        s.observe(false, signal(), t(10));
        assert_eq!(s.decide(&r, t(10)), Decision::WakeAt(t(130)));
        assert_eq!(s.decide(&r, t(130)), Decision::ClearImpact);
    }

    /// A resolve while the condition holds keeps the impact uncleared; no timer reopens it,
    /// and the next firing observation opens a new impact at once, not `for:` later.
    #[test]
    fn the_next_firing_observation_after_a_resolve_opens_at_once() {
        let r = rule(
            Trigger::For(Duration::from_secs(600)),
            Clear::For(Duration::from_secs(300)),
        );
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        assert_eq!(s.decide(&r, t(600)), Decision::OpenImpact);
        s.impact = Some(1);
        assert!(s.resolved_by_person(1, false), "still firing");
        assert_eq!((s.impact, s.held()), (None, &[1][..]));
        assert_eq!(
            s.decide(&r, t(660)),
            Decision::Nothing,
            "no observation yet"
        );
        assert!(!s.is_idle());
        s.observe(true, signal(), t(720));
        assert_eq!(s.decide(&r, t(720)), Decision::OpenImpact);
        s.impact = Some(2);
        // The signal clears: the new impact and the resolved one clear together.
        s.observe(false, signal(), t(800));
        assert_eq!(s.decide(&r, t(800)), Decision::WakeAt(t(1100)));
        assert_eq!(s.decide(&r, t(1100)), Decision::ClearImpact);
        assert_eq!(s.take_cleared(), vec![1, 2]);
        assert!(s.is_idle());
    }

    #[test]
    fn failures_are_not_counted_again_after_a_resolve() {
        let r = rule(Trigger::Failures(3), Clear::Successes(2));
        let mut s = RuleState::new(signal(), t(0));
        for at in 0..3 {
            s.observe(true, signal(), t(at));
        }
        assert_eq!(s.decide(&r, t(2)), Decision::OpenImpact);
        s.impact = Some(1);
        assert!(s.resolved_by_person(1, false));
        s.observe(true, signal(), t(3));
        assert_eq!(s.decide(&r, t(3)), Decision::OpenImpact);
    }

    /// The signal clears before it is observed firing again: the resolved impact clears as
    /// the rule says, and nothing opens; firing again within `clear_for:` is the same trouble.
    #[test]
    fn a_resolved_impact_clears_when_its_condition_clears() {
        let r = rule(Trigger::Immediate, Clear::For(Duration::from_secs(60)));
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.impact = Some(1);
        assert!(s.resolved_by_person(1, false));
        s.observe(false, signal(), t(10));
        assert_eq!(s.decide(&r, t(10)), Decision::WakeAt(t(70)));
        s.observe(true, signal(), t(20));
        assert_eq!(s.decide(&r, t(20)), Decision::OpenImpact);
        s.impact = Some(2);
        s.observe(false, signal(), t(30));
        assert_eq!(s.decide(&r, t(90)), Decision::ClearImpact);
        assert_eq!(s.take_cleared(), vec![1, 2]);

        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.impact = Some(3);
        assert!(s.resolved_by_person(3, false));
        s.observe(false, signal(), t(10));
        assert_eq!(s.decide(&r, t(70)), Decision::ClearImpact);
        assert_eq!(s.take_cleared(), vec![3]);
        assert!(s.is_idle());
    }

    /// Already clearing (the condition stopped), or a report made once (a CRI): the resolve
    /// ends the impact, and nothing is left to clear.
    #[test]
    fn a_resolve_after_the_condition_stopped_or_of_a_report_ends_the_impact() {
        let r = rule(Trigger::Immediate, Clear::For(Duration::from_secs(60)));
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.impact = Some(1);
        s.observe(false, signal(), t(10));
        assert!(!s.resolved_by_person(1, false));
        assert_eq!(s.decide(&r, t(10)), Decision::Nothing);
        assert!(s.is_idle());

        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.impact = Some(2);
        assert!(!s.resolved_by_person(2, true));
        assert!(s.held().is_empty() && s.suppressed);
        assert!(!s.resolved_by_person(7, false), "not its impact");
    }

    /// A row an earlier version wrote at a resolve while firing (`suppressed`, nothing
    /// else): the next firing observation opens at once too.
    #[test]
    fn a_suppressed_state_of_an_earlier_version_opens_at_the_next_firing_observation() {
        let r = rule(Trigger::For(Duration::from_secs(600)), Clear::Immediate);
        let mut s = RuleState::new(signal(), t(0));
        s.observe(true, signal(), t(0));
        s.suppressed = true;
        assert_eq!(s.decide(&r, t(900)), Decision::Nothing);
        s.observe(true, signal(), t(900));
        assert_eq!(s.decide(&r, t(900)), Decision::OpenImpact);
    }

    /// A stored state leaves out what its signal lacks, an impact it has not and an empty
    /// `resolved_firing`, keeps `suppressed` (see its doc), and reads back the same, as do
    /// rows that earlier versions wrote with those fields.
    #[test]
    fn a_stored_state_leaves_out_empty_fields_and_reads_back_the_same() {
        let mut quiet = RuleState::new(signal(), t(0));
        quiet.observe(true, signal(), t(5));
        let json = serde_json::to_string(&quiet).unwrap();
        assert!(json.contains("\"suppressed\":false"), "{json}");
        for absent in ["\"value\":", "\"probe\":", "\"cri\":", "\"impact\":"] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        let back: RuleState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, quiet);
        // As the last version without this change reads a row: every field required but
        // the `Option`s (and the signal's, which have defaults there too).
        #[derive(Deserialize)]
        #[allow(dead_code)]
        struct Before {
            condition: bool,
            since: DateTime<Utc>,
            failures: u32,
            successes: u32,
            impact: Option<i64>,
            suppressed: bool,
            signal: Signal,
        }
        let before: Before = serde_json::from_str(&json).unwrap();
        assert_eq!(before.signal, *quiet.signal);

        assert!(!json.contains("resolved_firing"), "{json}");
        let mut set = quiet.clone();
        set.suppressed = true;
        set.resolved_firing = Some(Box::new(vec![4, 9]));
        let mut with_value = Signal::clone(&set.signal);
        with_value.value = Some(0.5);
        set.signal = Arc::new(with_value);
        let json = serde_json::to_string(&set).unwrap();
        assert!(json.contains("\"suppressed\":true") && json.contains("\"value\":0.5"));
        assert!(json.contains("\"resolved_firing\":[4,9]"), "{json}");
        let back: RuleState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, set);
        // The earlier version reads it too, without what it does not know.
        let before: Before = serde_json::from_str(&json).unwrap();
        assert!(before.suppressed);

        let older = serde_json::to_string(&quiet)
            .unwrap()
            .replace(
                "\"state\":",
                "\"value\":null,\"probe\":null,\"cri\":null,\"state\":",
            )
            .replace("\"signal\":", "\"impact\":null,\"signal\":")
            .replace("\"observed_at\":", "\"expires_at\":null,\"observed_at\":");
        assert!(older.contains("\"probe\":null") && older.contains("\"expires_at\":null"));
        let back: RuleState = serde_json::from_str(&older).unwrap();
        assert_eq!(back, quiet);
    }
}
