//! Rules: which signals matter, when they count as broken, and what impact they mean.
//!
//! Pure: a rule's state moves on observations and on the clock, never on I/O.

mod condition;
mod state;

use std::collections::BTreeMap;

use crate::config::{CelExpr, Config, Duration, ImpactConfig, Matcher};
use crate::signal::Signal;

pub use condition::evaluate_when;
pub use state::{Decision, RuleState};

/// When a holding condition becomes an impact.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Trigger {
    Immediate,
    For(Duration),
    Failures(u32),
}

/// When a stopped condition clears its impact.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clear {
    Immediate,
    For(Duration),
    Successes(u32),
}

#[derive(Clone, Debug)]
pub struct Rule {
    /// Shared with every impact the rule opens (`Impact::rule`).
    pub name: std::sync::Arc<str>,
    pub group: String,
    pub matchers: Vec<Matcher>,
    pub when: Option<CelExpr>,
    pub trigger: Trigger,
    pub clear: Clear,
    pub impact: ImpactConfig,
    pub labels: BTreeMap<String, String>,
    pub summary: Option<String>,
    /// `correlation: separate`: its impacts open incidents of their own.
    pub separate: bool,
    /// `availability: true`: its impacts count against their service's availability.
    pub availability: bool,
    /// The TSG of the incidents it opens (wins over their services').
    pub tsg: Option<crate::config::TsgConfig>,
}

impl Rule {
    pub fn matches(&self, signal: &Signal) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(|name| signal.lookup(name)))
    }

    /// Does the signal show the broken condition? `Err` when `when` cannot be evaluated.
    pub fn condition(&self, signal: &Signal) -> Result<bool, String> {
        use crate::signal::SourceKind;
        if signal.source != SourceKind::Probe && !signal.is_firing() {
            return Ok(false);
        }
        match &self.when {
            Some(when) => evaluate_when(when, signal),
            // A probe rule without `when` fires on failed probes; other signals on firing.
            None => Ok(match &signal.probe {
                Some(probe) => !probe.success,
                None => signal.is_firing(),
            }),
        }
    }
}

/// The rules of every rule file, in file order.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    pub fn new(config: &Config) -> Self {
        let rules = config
            .rules
            .iter()
            .map(|loaded| {
                let r = &loaded.rule;
                Rule {
                    name: r.name.as_str().into(),
                    group: loaded.group.clone(),
                    matchers: r.matchers.clone(),
                    when: r.when.clone(),
                    trigger: match (r.for_, r.failures) {
                        (Some(d), _) if !d.is_zero() => Trigger::For(d),
                        (_, Some(n)) if n > 1 => Trigger::Failures(n),
                        _ => Trigger::Immediate,
                    },
                    clear: match (r.clear_for, r.successes) {
                        (Some(d), _) if !d.is_zero() => Clear::For(d),
                        (_, Some(n)) if n > 1 => Clear::Successes(n),
                        _ => Clear::Immediate,
                    },
                    impact: r.impact.clone(),
                    labels: r.labels.clone(),
                    summary: r.summary.clone(),
                    separate: r.correlation.is_some(),
                    availability: r.availability,
                    tsg: r.tsg.clone(),
                }
            })
            .collect();
        RuleSet { rules }
    }

    /// Whether rule `name` keeps its impacts apart (`correlation: separate`).
    pub fn is_separate(&self, name: &str) -> bool {
        self.rules.iter().any(|r| r.separate && &*r.name == name)
    }

    pub fn get(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.name == name)
    }

    pub fn matching<'a>(&'a self, signal: &'a Signal) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| r.matches(signal))
    }
}
